//! Listing, searching and finding by name: pages with cursors, newest or oldest first, and
//! the names WebDAV shows.

use crate::error::Error;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use super::row::{COLUMNS, Match, Page, Recording, from_row};

/// List order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Newest,
    Oldest,
}

/// A checked list query.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub limit: u32,
    pub after: Option<String>,
    pub order: Order,
    pub q: Option<String>,
}

pub(super) fn encode_cursor(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

pub(super) fn bad_cursor() -> Error {
    Error::invalid("`cursor` is not a cursor this server gave out")
}

/// Decodes a list cursor (an id).
pub fn decode_list_cursor(cursor: &str) -> Result<String, Error> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad_cursor())?;
    let text = String::from_utf8(bytes).map_err(|_| bad_cursor())?;
    Uuid::parse_str(&text).map_err(|_| bad_cursor())?;
    Ok(text)
}

/// Decodes a trash cursor (deletion time and id).
pub fn decode_trash_cursor(cursor: &str) -> Result<(i64, String), Error> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad_cursor())?;
    let text = String::from_utf8(bytes).map_err(|_| bad_cursor())?;
    let (at, id) = text.split_once(':').ok_or_else(bad_cursor)?;
    let at = at.parse().map_err(|_| bad_cursor())?;
    Uuid::parse_str(id).map_err(|_| bad_cursor())?;
    Ok((at, id.to_string()))
}

/// The list statement. Each combination gets its own, so the planner sees a plain range on the
/// index (an `?2 IS NULL OR id < ?2` form would make deep pages scan from the top).
pub(super) fn list_sql(cmp: &str, dir: &str, after: bool, q: bool) -> String {
    let mut sql = format!("SELECT {COLUMNS} FROM recordings WHERE user_id = ?1 AND deleted_at IS NULL");
    let mut n = 1;
    if after {
        n += 1;
        sql.push_str(&format!(" AND id {cmp} ?{n}"));
    }
    if q {
        n += 1;
        sql.push_str(&format!(" AND instr(fold(name), ?{n}) > 0"));
    }
    sql.push_str(&format!(" ORDER BY id {dir} LIMIT ?{}", n + 1));
    sql
}

pub(super) const TRASH_FIRST: &str =
    "WHERE user_id = ?1 AND deleted_at IS NOT NULL ORDER BY deleted_at DESC, id DESC LIMIT ?2";
pub(super) const TRASH_AFTER: &str = "WHERE user_id = ?1 AND deleted_at IS NOT NULL AND (deleted_at, id) < (?3, ?4)
                           ORDER BY deleted_at DESC, id DESC LIMIT ?2";

/// `EXPLAIN QUERY PLAN` of every list and trash statement: (statement, plan details).
pub fn explain_list_queries(conn: &Connection) -> Result<Vec<(String, String)>, Error> {
    let mut statements = Vec::new();
    for (cmp, dir) in [("<", "DESC"), (">", "ASC")] {
        for after in [false, true] {
            statements.push(list_sql(cmp, dir, after, false));
        }
    }
    statements.push(format!("SELECT {COLUMNS} FROM recordings {TRASH_FIRST}"));
    statements.push(format!("SELECT {COLUMNS} FROM recordings {TRASH_AFTER}"));
    let mut out = Vec::new();
    for sql in statements {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
        let n = stmt.parameter_count();
        let nulls: Vec<Option<i64>> = vec![None; n];
        let details: Vec<String> =
            stmt.query_map(rusqlite::params_from_iter(nulls), |r| r.get(3))?.collect::<Result<_, _>>()?;
        out.push((sql, details.join("; ")));
    }
    Ok(out)
}

/// A page of the user's recordings outside the trash, by keyset on the time-ordered id. With
/// `q`, the recordings whose name holds it or whose transcript has its words, each with what
/// matched.
pub fn list(conn: &Connection, user_id: &str, query: &ListQuery) -> Result<Page, Error> {
    match &query.q {
        Some(q) => search(conn, user_id, query, q),
        None => list_by_id(conn, user_id, query),
    }
}

/// A live recording by its rowid (a transcript search hit).
pub(super) fn by_rowid(conn: &Connection, user_id: &str, rowid: i64) -> Result<Option<Recording>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM recordings WHERE rowid = ?1 AND user_id = ?2 AND deleted_at IS NULL");
    Ok(conn.prepare_cached(&sql)?.query_row(params![rowid, user_id], from_row).optional()?)
}

/// Name matches (a substring, as always) merged with transcript matches (words, through the
/// full-text index), in the list's order. Each side fetches one page past the cursor; the page is
/// the first `limit` of both.
pub(super) fn search(conn: &Connection, user_id: &str, query: &ListQuery, q: &str) -> Result<Page, Error> {
    let limit = query.limit as usize;
    let newest = query.order == Order::Newest;
    let (names, mut more) = name_matches(conn, user_id, query, q)?;
    let mut found: Vec<Recording> = names
        .into_iter()
        .map(|mut r| {
            r.matched = Some(Match { field: "name", snippet: r.name.clone(), start_ms: None });
            r
        })
        .collect();
    if let Some(fts) = crate::transcription::index::fts_query(user_id, q) {
        let after = query.after.as_deref();
        let mut before = match after {
            Some(id) => crate::transcription::index::rowid_of(conn, user_id, id)?,
            None => None,
        };
        let mut spoken: Vec<Recording> = Vec::new();
        loop {
            let want = limit + 1 - spoken.len();
            let hits = crate::transcription::index::search(conn, &fts, before, want, newest)?;
            let exhausted = hits.len() < want;
            for hit in hits {
                before = Some(hit.recording_rowid);
                let Some(mut r) = by_rowid(conn, user_id, hit.recording_rowid)? else { continue };
                // The cursor is an id; rowids follow ids but for uploads that raced each other.
                let past_cursor = after.is_none_or(|a| if newest { r.id.as_str() < a } else { r.id.as_str() > a });
                if past_cursor {
                    r.matched = Some(Match { field: "transcript", snippet: hit.snippet, start_ms: Some(hit.start_ms) });
                    spoken.push(r);
                }
            }
            if spoken.len() > limit || exhausted {
                break;
            }
        }
        more |= spoken.len() > limit;
        for r in spoken {
            if !found.iter().any(|n| n.id == r.id) {
                found.push(r);
            }
        }
    }
    found.sort_by(|a, b| if newest { b.id.cmp(&a.id) } else { a.id.cmp(&b.id) });
    if found.len() > limit {
        found.truncate(limit);
        more = true;
    }
    let next_cursor = if more { found.last().map(|r| encode_cursor(&r.id)) } else { None };
    Ok(Page { recordings: found, next_cursor })
}

/// Recordings whose name holds `q`, in the list's order after its cursor: through the trigram
/// index (`name_fts`) for 3 characters or more, else by the list's own name filter (a short `q`
/// matches so many names that the scan stops early). Returns up to `limit` and whether more match.
pub(super) fn name_matches(
    conn: &Connection,
    user_id: &str,
    query: &ListQuery,
    q: &str,
) -> Result<(Vec<Recording>, bool), Error> {
    let limit = query.limit as usize;
    // The trigram index needs 3 characters; control characters are left to the plain filter.
    if q.chars().count() < 3 || q.chars().any(char::is_control) {
        let page = list_by_id(conn, user_id, query)?;
        return Ok((page.recordings, page.next_cursor.is_some()));
    }
    let newest = query.order == Order::Newest;
    let after = query.after.as_deref();
    let phrase = format!("name : \"{}\"", q.replace('"', "\"\""));
    let sql = if newest {
        "SELECT rowid FROM name_fts WHERE name_fts MATCH ?1 AND owner = ?2 AND rowid < ?3 ORDER BY rowid DESC LIMIT ?4"
    } else {
        "SELECT rowid FROM name_fts WHERE name_fts MATCH ?1 AND owner = ?2 AND rowid > ?3 ORDER BY rowid ASC LIMIT ?4"
    };
    let mut bound = match after {
        Some(id) => crate::transcription::index::rowid_of(conn, user_id, id)?,
        None => None,
    }
    .unwrap_or(if newest { i64::MAX } else { 0 });
    let mut stmt = conn.prepare_cached(sql)?;
    let mut found = Vec::new();
    const CHUNK: i64 = 128;
    loop {
        let rowids: Vec<i64> =
            stmt.query_map(params![phrase, user_id, bound, CHUNK], |r| r.get(0))?.collect::<Result<_, _>>()?;
        let exhausted = (rowids.len() as i64) < CHUNK;
        for rowid in rowids {
            bound = rowid;
            let Some(r) = by_rowid(conn, user_id, rowid)? else { continue };
            // The cursor is an id; rowids follow ids but for uploads that raced each other.
            if after.is_none_or(|a| if newest { r.id.as_str() < a } else { r.id.as_str() > a }) {
                found.push(r);
            }
            if found.len() > limit {
                found.truncate(limit);
                return Ok((found, true));
            }
        }
        if exhausted {
            return Ok((found, false));
        }
    }
}

pub(super) fn list_by_id(conn: &Connection, user_id: &str, query: &ListQuery) -> Result<Page, Error> {
    let (cmp, dir) = match query.order {
        Order::Newest => ("<", "DESC"),
        Order::Oldest => (">", "ASC"),
    };
    let mut args: Vec<Box<dyn rusqlite::ToSql>> = vec![Box::new(user_id.to_string())];
    if let Some(after) = &query.after {
        args.push(Box::new(after.clone()));
    }
    if let Some(q) = &query.q {
        args.push(Box::new(q.to_lowercase()));
    }
    args.push(Box::new(i64::from(query.limit) + 1));
    let sql = list_sql(cmp, dir, query.after.is_some(), query.q.is_some());
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), from_row)?;
    let mut recordings: Vec<Recording> = rows.collect::<Result<_, _>>()?;
    let next_cursor = if recordings.len() > query.limit as usize {
        recordings.truncate(query.limit as usize);
        recordings.last().map(|r| encode_cursor(&r.id))
    } else {
        None
    };
    Ok(Page { recordings, next_cursor })
}

/// A page of the user's trash, most recently deleted first.
pub fn list_trash(conn: &Connection, user_id: &str, limit: u32, after: Option<(i64, String)>) -> Result<Page, Error> {
    let mut stmt = match &after {
        None => conn.prepare_cached(&format!("SELECT {COLUMNS} FROM recordings {TRASH_FIRST}"))?,
        Some(_) => conn.prepare_cached(&format!("SELECT {COLUMNS} FROM recordings {TRASH_AFTER}"))?,
    };
    let limit_plus_one = i64::from(limit) + 1;
    let rows = match &after {
        None => stmt.query_map(params![user_id, limit_plus_one], from_row)?,
        Some((at, id)) => stmt.query_map(params![user_id, limit_plus_one, at, id], from_row)?,
    };
    let mut recordings: Vec<Recording> = rows.collect::<Result<_, _>>()?;
    let next_cursor = if recordings.len() > limit as usize {
        recordings.truncate(limit as usize);
        recordings.last().map(|r| encode_cursor(&format!("{}:{}", r.deleted_ms.unwrap_or(0), r.id)))
    } else {
        None
    };
    Ok(Page { recordings, next_cursor })
}

/// Which of a user's two folders: the live recordings or the trash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Folder {
    Live,
    Trash,
}

impl Folder {
    /// The `deleted_at` term each name query repeats, so the folder's partial index is used.
    fn term(self) -> &'static str {
        match self {
            Folder::Live => "deleted_at IS NULL",
            Folder::Trash => "deleted_at IS NOT NULL",
        }
    }
}

/// Up to `limit` of a folder's recordings in (name, id) order, after `after` (the last one of
/// the previous page): a keyset page over the folder's name index, whose cost does not grow with
/// the folder.
pub fn by_name_page(
    conn: &Connection,
    user_id: &str,
    folder: Folder,
    after: Option<(&str, &str)>,
    limit: u32,
) -> Result<Vec<Recording>, Error> {
    let term = folder.term();
    let rows = match after {
        None => {
            let sql =
                format!("SELECT {COLUMNS} FROM recordings WHERE user_id = ?1 AND {term} ORDER BY name, id LIMIT ?2");
            let mut stmt = conn.prepare_cached(&sql)?;
            stmt.query_map(params![user_id, limit], from_row)?.collect::<Result<Vec<_>, _>>()?
        }
        Some((name, id)) => {
            let sql = format!(
                "SELECT {COLUMNS} FROM recordings WHERE user_id = ?1 AND {term} AND (name, id) > (?2, ?3)
                 ORDER BY name, id LIMIT ?4"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            stmt.query_map(params![user_id, name, id, limit], from_row)?.collect::<Result<Vec<_>, _>>()?
        }
    };
    Ok(rows)
}

/// A folder's recordings with exactly this name, oldest first.
pub fn named(conn: &Connection, user_id: &str, folder: Folder, name: &str) -> Result<Vec<Recording>, Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM recordings WHERE user_id = ?1 AND {} AND name = ?2 ORDER BY id LIMIT 10000",
        folder.term()
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![user_id, name], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The user's live recordings with exactly this name, oldest first.
pub fn live_by_name(conn: &Connection, user_id: &str, name: &str) -> Result<Vec<Recording>, Error> {
    named(conn, user_id, Folder::Live, name)
}

/// `name` if no live recording has it, else the first free "stem (n).ext" (as phones name a
/// second file of the same name), n from 2. Each try is one lookup in the name index.
pub fn free_name(conn: &Connection, user_id: &str, name: &str) -> Result<String, Error> {
    let taken = |candidate: &str| -> Result<bool, Error> {
        let sql = "SELECT EXISTS (SELECT 1 FROM recordings WHERE user_id = ?1 AND deleted_at IS NULL AND name = ?2)";
        Ok(conn.query_row(sql, params![user_id, candidate], |r| r.get(0))?)
    };
    if !taken(name)? {
        return Ok(name.to_string());
    }
    let (stem, ext) = split_extension(name);
    for n in 2..10_000u32 {
        let candidate = format!("{stem} ({n}){ext}");
        if candidate.len() <= 255 && !taken(&candidate)? {
            return Ok(candidate);
        }
    }
    // Ten thousand copies of one name: the id-like suffix is free.
    Ok(format!("{stem} ({}){ext}", Uuid::now_v7().simple()))
}

/// "memo.m4a" → ("memo", ".m4a"); "memo" and ".hidden" have no extension.
pub fn split_extension(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(dot) if dot > 0 && name.len() - dot <= 6 && !name[dot + 1..].contains(' ') => name.split_at(dot),
        _ => (name, ""),
    }
}
