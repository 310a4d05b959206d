//! Recording metadata: the `recordings` and `pending_unlinks` tables. Every query is scoped by
//! the owner, so another user's recording is simply not found.
//!
//! Permanent deletion never leaves a row without its file: the row is deleted and its path
//! queued in `pending_unlinks` in one transaction, the file unlinked after the commit, and the
//! queue entry removed last. Startup finishes whatever a crash interrupted.

use crate::clock::rfc3339;
use crate::error::Error;
use crate::storage::Storage;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde::Serialize;
use uuid::Uuid;

/// A recording as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Recording {
    pub id: String,
    pub name: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    pub duration_ms: Option<i64>,
    pub recorded_at: Option<String>,
    pub created_at: String,
    pub deleted_at: Option<String>,
    pub purge_at: Option<String>,
    /// Why `recorder check --repair` moved it to the trash: `missing_file`, `size_mismatch` or
    /// `hash_mismatch`; null for a healthy recording.
    pub problem: Option<String>,
    /// The background analysis: `pending`, `ready` (the waveform can be fetched and the
    /// duration is the decoded one) or `failed`.
    pub waveform: &'static str,
    /// Transcription: `off` (no model, or stored while there was none), `pending`, `ready` or
    /// `failed`.
    pub transcript: &'static str,
    /// Why a search (`q`) listed it: only in search results.
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    pub matched: Option<Match>,
    /// Milliseconds, for Last-Modified; not part of the JSON.
    #[serde(skip)]
    pub created_ms: i64,
    #[serde(skip)]
    pub deleted_ms: Option<i64>,
    /// Which store holds the bytes; not part of the JSON.
    #[serde(skip)]
    pub store: crate::storage::store::Backend,
}

/// What matched a search: the name, or words of the transcript (with the segment's text and
/// where it starts).
#[derive(Debug, Clone, Serialize)]
pub struct Match {
    pub field: &'static str,
    pub snippet: String,
    pub start_ms: Option<i64>,
}

/// A page of recordings.
#[derive(Debug, Serialize)]
pub struct Page {
    pub recordings: Vec<Recording>,
    pub next_cursor: Option<String>,
}

/// A new recording's metadata, once its file is in place.
#[derive(Debug, Clone)]
pub struct NewRecording {
    pub id: Uuid,
    pub user_id: String,
    pub name: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    pub duration_ms: Option<i64>,
    pub recorded_at: Option<i64>,
    pub created_at: i64,
    pub idempotency_key: Option<String>,
    /// The store its bytes were put in.
    pub store: crate::storage::store::Backend,
}

const COLUMNS: &str = "id, name, content_type, size, sha256, duration_ms, recorded_at, created_at, deleted_at, purge_at, problem, waveform, transcript, store";

fn from_row(row: &Row<'_>) -> rusqlite::Result<Recording> {
    let created_ms: i64 = row.get(7)?;
    let deleted_ms: Option<i64> = row.get(8)?;
    Ok(Recording {
        id: row.get(0)?,
        name: row.get(1)?,
        content_type: row.get(2)?,
        size: row.get(3)?,
        sha256: row.get(4)?,
        duration_ms: row.get(5)?,
        recorded_at: row.get::<_, Option<i64>>(6)?.map(rfc3339),
        created_at: rfc3339(created_ms),
        deleted_at: deleted_ms.map(rfc3339),
        purge_at: row.get::<_, Option<i64>>(9)?.map(rfc3339),
        problem: row.get(10)?,
        waveform: match row.get::<_, Option<String>>(11)?.as_deref() {
            Some("ready") => "ready",
            Some("failed") => "failed",
            // Queued, running, or stored before analysis existed and not yet queued.
            _ => "pending",
        },
        transcript: match row.get::<_, Option<String>>(12)?.as_deref() {
            Some("pending") => "pending",
            Some("ready") => "ready",
            Some("failed") => "failed",
            _ => "off",
        },
        store: row.get(13)?,
        matched: None,
        created_ms,
        deleted_ms,
    })
}

/// Trims and checks a recording name: non-empty, at most 255 bytes, no control characters.
pub fn normalize_name(input: &str) -> Result<String, Error> {
    let name = input.trim();
    if name.is_empty() || name.len() > 255 || name.chars().any(|c| c.is_control() || deceptive(c)) {
        return Err(Error::rule(
            "invalid_name",
            "names are 1 to 255 bytes after trimming, without control characters, bidirectional \
             controls or invisible characters",
        ));
    }
    Ok(name.to_string())
}

/// Characters that make a name read otherwise than it is: the bidirectional controls (a
/// right-to-left override turns "memo\u{202E}vaw.exe" into "memoexe.wav" on screen) and
/// characters with no width. The zero-width joiner and non-joiner stay allowed: emoji
/// sequences and scripts such as Persian need them.
pub fn deceptive(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'                      // ARABIC LETTER MARK
            | '\u{200B}'                // ZERO WIDTH SPACE
            | '\u{200E}' | '\u{200F}'   // LEFT-TO-RIGHT and RIGHT-TO-LEFT MARK
            | '\u{202A}'..='\u{202E}'   // embeddings and overrides
            | '\u{2060}'..='\u{2064}'   // WORD JOINER and invisible operators
            | '\u{2066}'..='\u{2069}'   // isolates
            | '\u{FEFF}'                // ZERO WIDTH NO-BREAK SPACE
    )
}

/// Parses a recording id from a path; anything else is simply not found.
pub fn parse_id(id: &str) -> Result<Uuid, Error> {
    Uuid::parse_str(id).map_err(|_| not_found())
}

pub fn not_found() -> Error {
    Error::not_found("no recording with that id")
}

/// Inserts a recording inside the caller's transaction (no durability change of its own).
pub fn insert_in(conn: &Connection, new: &NewRecording) -> Result<Result<Recording, Recording>, Error> {
    let inserted = conn.execute(
        "INSERT INTO recordings (id, user_id, name, content_type, size, sha256, duration_ms, recorded_at,
                                 created_at, idempotency_key, waveform, store)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'pending', ?11)",
        params![
            new.id.hyphenated().to_string(),
            new.user_id,
            new.name,
            new.content_type,
            new.size,
            new.sha256,
            new.duration_ms,
            new.recorded_at,
            new.created_at,
            new.idempotency_key,
            new.store.as_str(),
        ],
    );
    match inserted {
        Ok(_) => {
            let id = new.id.hyphenated().to_string();
            get(conn, &new.user_id, &id)?.map(Ok).ok_or_else(|| Error::internal("insert", "row vanished"))
        }
        Err(rusqlite::Error::SqliteFailure(f, _)) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
            let key = new.idempotency_key.as_deref().unwrap_or_default();
            match by_idempotency_key(conn, &new.user_id, key)? {
                Some(existing) => Ok(Err(existing)),
                None => Err(Error::internal("insert recording", "constraint violation")),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// The recording a user created with an idempotency key.
pub fn by_idempotency_key(conn: &Connection, user_id: &str, key: &str) -> Result<Option<Recording>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM recordings WHERE user_id = ?1 AND idempotency_key = ?2");
    Ok(conn.query_row(&sql, params![user_id, key], from_row).optional()?)
}

/// One of the user's recordings (in the trash or not).
pub fn get(conn: &Connection, user_id: &str, id: &str) -> Result<Option<Recording>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM recordings WHERE id = ?1 AND user_id = ?2");
    Ok(conn.query_row(&sql, params![id, user_id], from_row).optional()?)
}

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

fn encode_cursor(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

fn bad_cursor() -> Error {
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
fn list_sql(cmp: &str, dir: &str, after: bool, q: bool) -> String {
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

const TRASH_FIRST: &str = "WHERE user_id = ?1 AND deleted_at IS NOT NULL ORDER BY deleted_at DESC, id DESC LIMIT ?2";
const TRASH_AFTER: &str = "WHERE user_id = ?1 AND deleted_at IS NOT NULL AND (deleted_at, id) < (?3, ?4)
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
fn by_rowid(conn: &Connection, user_id: &str, rowid: i64) -> Result<Option<Recording>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM recordings WHERE rowid = ?1 AND user_id = ?2 AND deleted_at IS NULL");
    Ok(conn.prepare_cached(&sql)?.query_row(params![rowid, user_id], from_row).optional()?)
}

/// Name matches (a substring, as always) merged with transcript matches (words, through the
/// full-text index), in the list's order. Each side fetches one page past the cursor; the page is
/// the first `limit` of both.
fn search(conn: &Connection, user_id: &str, query: &ListQuery, q: &str) -> Result<Page, Error> {
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
fn name_matches(conn: &Connection, user_id: &str, query: &ListQuery, q: &str) -> Result<(Vec<Recording>, bool), Error> {
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

fn list_by_id(conn: &Connection, user_id: &str, query: &ListQuery) -> Result<Page, Error> {
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

/// Renames a recording.
pub fn rename(conn: &Connection, user_id: &str, id: &str, name: &str) -> Result<Option<Recording>, Error> {
    let changed =
        conn.execute("UPDATE recordings SET name = ?1 WHERE id = ?2 AND user_id = ?3", params![name, id, user_id])?;
    if changed == 0 { Ok(None) } else { get(conn, user_id, id) }
}

/// Moves a recording to the trash; false when the user has no such recording. A recording
/// already in the trash stays as it is.
pub fn trash(conn: &Connection, user_id: &str, id: &str, now: i64, retention_ms: i64) -> Result<bool, Error> {
    let changed = conn.execute(
        "UPDATE recordings SET deleted_at = ?1, purge_at = ?2 WHERE id = ?3 AND user_id = ?4 AND deleted_at IS NULL",
        params![now, now + retention_ms, id, user_id],
    )?;
    Ok(changed > 0 || get(conn, user_id, id)?.is_some())
}

/// Takes a recording out of the trash.
pub fn restore(conn: &Connection, user_id: &str, id: &str) -> Result<Option<Recording>, Error> {
    let changed = conn.execute(
        "UPDATE recordings SET deleted_at = NULL, purge_at = NULL
         WHERE id = ?1 AND user_id = ?2 AND deleted_at IS NOT NULL",
        params![id, user_id],
    )?;
    if changed == 0 { Ok(None) } else { get(conn, user_id, id) }
}

/// A transaction that takes the write lock at its start. One that reads first and writes later
/// (as a purge does: which ids, then delete them) cannot wait for its turn once another
/// connection has committed since its read: SQLite answers BUSY at once (the snapshot is stale),
/// whatever the busy timeout. Taking the lock first makes it wait instead.
pub fn write_transaction(conn: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
}

/// Moves several of the user's recordings to the trash in one transaction, as [`trash`] does
/// each: for every id, whether the user has it (an id in the trash already stays as it is).
pub fn trash_many(
    conn: &mut Connection,
    user_id: &str,
    ids: &[String],
    now: i64,
    retention_ms: i64,
) -> Result<Vec<bool>, Error> {
    let tx = write_transaction(conn)?;
    let done = ids.iter().map(|id| trash(&tx, user_id, id, now, retention_ms)).collect::<Result<_, _>>()?;
    tx.commit()?;
    Ok(done)
}

/// Takes several of the user's recordings out of the trash in one transaction: for every id,
/// whether it was in the user's trash.
pub fn restore_many(conn: &mut Connection, user_id: &str, ids: &[String]) -> Result<Vec<bool>, Error> {
    let tx = write_transaction(conn)?;
    let done = ids.iter().map(|id| Ok(restore(&tx, user_id, id)?.is_some())).collect::<Result<_, Error>>()?;
    tx.commit()?;
    Ok(done)
}

/// Several of the user's recordings outside the trash, in the order asked; `None` when any id
/// is not one of them (unknown, someone else's or in the trash).
pub fn live_many(conn: &Connection, user_id: &str, ids: &[String]) -> Result<Option<Vec<Recording>>, Error> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM recordings WHERE id = ?1 AND user_id = ?2 AND deleted_at IS NULL"
    ))?;
    let mut found = Vec::with_capacity(ids.len());
    for id in ids {
        match stmt.query_row(params![id, user_id], from_row).optional()? {
            Some(recording) => found.push(recording),
            None => return Ok(None),
        }
    }
    Ok(Some(found))
}

/// Counts and bytes in the list and in the trash.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub recordings: i64,
    pub bytes: i64,
    pub trash_recordings: i64,
    pub trash_bytes: i64,
}

/// The user's totals, from the counters the `recordings` triggers keep (one indexed row,
/// whatever the number of recordings).
pub fn usage(conn: &Connection, user_id: &str) -> Result<Usage, Error> {
    let mut stmt =
        conn.prepare_cached("SELECT recordings, bytes, trash_recordings, trash_bytes FROM usage WHERE user_id = ?1")?;
    let usage = stmt
        .query_row([user_id], |r| {
            Ok(Usage { recordings: r.get(0)?, bytes: r.get(1)?, trash_recordings: r.get(2)?, trash_bytes: r.get(3)? })
        })
        .optional()?;
    Ok(usage.unwrap_or_default())
}

/// The user's totals summed from the rows themselves (a scan of their recordings): what the
/// counters must equal.
pub fn usage_from_rows(conn: &Connection, user_id: &str) -> Result<Usage, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT deleted_at IS NULL, count(*), coalesce(sum(size), 0) FROM recordings WHERE user_id = ?1
         GROUP BY deleted_at IS NULL",
    )?;
    let mut usage = Usage::default();
    let rows = stmt.query_map([user_id], |r| Ok((r.get::<_, bool>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))?;
    for row in rows {
        match row? {
            (true, n, bytes) => (usage.recordings, usage.bytes) = (n, bytes),
            (false, n, bytes) => (usage.trash_recordings, usage.trash_bytes) = (n, bytes),
        }
    }
    Ok(usage)
}

/// Sets the user's counters to the sums of their rows, in one transaction (safe beside a
/// running server: the triggers' increments wait for it).
pub fn recount_usage(conn: &mut Connection, user_id: &str) -> Result<Usage, Error> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let usage = usage_from_rows(&tx, user_id)?;
    tx.execute(
        "INSERT INTO usage (user_id, recordings, bytes, trash_recordings, trash_bytes) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (user_id) DO UPDATE SET recordings = excluded.recordings, bytes = excluded.bytes,
         trash_recordings = excluded.trash_recordings, trash_bytes = excluded.trash_bytes",
        params![user_id, usage.recordings, usage.bytes, usage.trash_recordings, usage.trash_bytes],
    )?;
    tx.commit()?;
    Ok(usage)
}

/// Which recordings a permanent delete takes.
pub enum Purge {
    /// One recording, wherever it is.
    One(String),
    /// One recording, only if it is in the trash.
    OneInTrash(String),
    /// The user's whole trash.
    Trash,
}

fn queue(tx: &Transaction<'_>, ids: &[String], now: i64) -> Result<Vec<String>, Error> {
    let mut paths = Vec::with_capacity(ids.len());
    let mut delete = tx.prepare_cached("DELETE FROM recordings WHERE id = ?1")?;
    let mut pending = tx.prepare_cached("INSERT OR IGNORE INTO pending_unlinks (path, created_at) VALUES (?1, ?2)")?;
    let mut store = tx.prepare_cached("SELECT store FROM recordings WHERE id = ?1")?;
    for id in ids {
        let Ok(uuid) = Uuid::parse_str(id) else { continue };
        let backend = store.query_row([id], |r| r.get(0)).optional()?.unwrap_or_default();
        let path = crate::storage::store::pending_path(backend, &uuid);
        pending.execute(params![path, now])?;
        delete.execute([id])?;
        paths.push(path);
    }
    Ok(paths)
}

fn ids(tx: &Transaction<'_>, sql: &str, params: impl rusqlite::Params) -> Result<Vec<String>, Error> {
    let mut stmt = tx.prepare(sql)?;
    let rows = stmt.query_map(params, |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Deletes the rows a purge takes and queues their files; commit, then `finish_unlinks`.
pub fn queue_purge(conn: &mut Connection, user_id: &str, which: Purge, now: i64) -> Result<Vec<String>, Error> {
    crate::db::durably(conn, |conn| queue_purge_in(conn, user_id, which, now))
}

fn queue_purge_in(conn: &mut Connection, user_id: &str, which: Purge, now: i64) -> Result<Vec<String>, Error> {
    let tx = write_transaction(conn)?;
    let ids = match which {
        Purge::One(id) => ids(&tx, "SELECT id FROM recordings WHERE id = ?1 AND user_id = ?2", params![id, user_id])?,
        Purge::OneInTrash(id) => ids(
            &tx,
            "SELECT id FROM recordings WHERE id = ?1 AND user_id = ?2 AND deleted_at IS NOT NULL",
            params![id, user_id],
        )?,
        Purge::Trash => ids(&tx, "SELECT id FROM recordings WHERE user_id = ?1 AND deleted_at IS NOT NULL", [user_id])?,
    };
    let paths = queue(&tx, &ids, now)?;
    tx.commit()?;
    Ok(paths)
}

/// Deletes several of the user's recordings (in the trash or not) and queues their files, in one
/// transaction; commit, then `finish_unlinks` with the paths. For every id, whether the user had
/// it.
pub fn queue_purge_many(
    conn: &mut Connection,
    user_id: &str,
    ids: &[String],
    now: i64,
) -> Result<(Vec<bool>, Vec<String>), Error> {
    crate::db::durably(conn, |conn| queue_purge_many_in(conn, user_id, ids, now))
}

fn queue_purge_many_in(
    conn: &mut Connection,
    user_id: &str,
    ids: &[String],
    now: i64,
) -> Result<(Vec<bool>, Vec<String>), Error> {
    let tx = write_transaction(conn)?;
    let mut owned = Vec::with_capacity(ids.len());
    {
        let mut stmt = tx.prepare_cached("SELECT 1 FROM recordings WHERE id = ?1 AND user_id = ?2")?;
        for id in ids {
            owned.push(stmt.exists(params![id, user_id])?);
        }
    }
    let taken: Vec<String> = ids.iter().zip(&owned).filter(|(_, own)| **own).map(|(id, _)| id.clone()).collect();
    let paths = queue(&tx, &taken, now)?;
    tx.commit()?;
    Ok((owned, paths))
}

/// Queues every file of a user inside the caller's transaction (account deletion).
pub fn queue_unlinks_for_user(tx: &Transaction<'_>, user_id: &str, now: i64) -> Result<Vec<String>, Error> {
    let ids = ids(tx, "SELECT id FROM recordings WHERE user_id = ?1", [user_id])?;
    queue(tx, &ids, now)
}

/// Deletes up to `batch` trashed recordings whose time is up; commit, then `finish_unlinks`.
pub fn queue_expired(conn: &mut Connection, now: i64, batch: u32) -> Result<Vec<String>, Error> {
    crate::db::durably(conn, |conn| {
        let tx = write_transaction(conn)?;
        let ids = ids(&tx, "SELECT id FROM recordings WHERE purge_at <= ?1 LIMIT ?2", params![now, batch])?;
        let paths = queue(&tx, &ids, now)?;
        tx.commit()?;
        Ok(paths)
    })
}

/// Every path still queued (after a crash).
pub fn pending_unlinks(conn: &Connection) -> Result<Vec<String>, Error> {
    let mut stmt = conn.prepare("SELECT path FROM pending_unlinks")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Unlinks queued files and then forgets them; a failed unlink stays queued for the next try.
pub fn finish_unlinks(conn: &Connection, storage: &Storage, paths: &[String]) -> Result<usize, Error> {
    let mut done = 0;
    let mut forget = conn.prepare_cached("DELETE FROM pending_unlinks WHERE path = ?1")?;
    for path in paths {
        match storage.unlink_pending(path) {
            Ok(()) => {
                forget.execute([path])?;
                done += 1;
            }
            Err(e) => log::error!("cannot delete {path}: {e}; will retry within the hour"),
        }
    }
    Ok(done)
}

/// Whether a recording's row names this store (a copy in the other one is what an interrupted
/// migration leaves).
pub fn in_store(conn: &Connection, id: &str, backend: crate::storage::store::Backend) -> Result<bool, Error> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM recordings WHERE id = ?1 AND store = ?2")?
        .exists(params![id, backend.as_str()])?)
}

/// Whether any row, in either store, has this id.
pub fn exists(conn: &Connection, id: &str) -> Result<bool, Error> {
    Ok(conn.prepare_cached("SELECT 1 FROM recordings WHERE id = ?1")?.exists([id])?)
}

/// What a recording's bytes keep for recovery, from its row (a copy made by a migration or a
/// backup keeps its current name).
pub fn keep_of(conn: &Connection, id: &str) -> Result<Option<crate::storage::store::Keep>, Error> {
    Ok(conn
        .prepare_cached(
            "SELECT u.username, r.user_id, r.name, r.recorded_at, r.created_at
             FROM recordings r JOIN users u ON u.id = r.user_id WHERE r.id = ?1",
        )?
        .query_row([id], |r| {
            Ok(crate::storage::store::Keep {
                owner: r.get(0)?,
                user_id: r.get(1)?,
                name: Some(r.get(2)?),
                recorded_at: r.get(3)?,
                created_at: r.get(4)?,
            })
        })
        .optional()?)
}

/// Which of these ids have rows (for the orphan sweep).
pub fn existing_ids(conn: &Connection, ids: &[String]) -> Result<std::collections::HashSet<String>, Error> {
    let mut found = std::collections::HashSet::new();
    let mut stmt = conn.prepare_cached("SELECT 1 FROM recordings WHERE id = ?1")?;
    for id in ids {
        if stmt.exists([id])? {
            found.insert(id.clone());
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_checked() {
        assert_eq!(normalize_name("  memo.m4a ").ok().as_deref(), Some("memo.m4a"));
        assert!(normalize_name("   ").is_err());
        assert!(normalize_name("a\nb").is_err());
        assert!(normalize_name(&"é".repeat(128)).is_err());
        assert!(normalize_name(&"é".repeat(127)).is_ok());
        assert!(normalize_name("../../etc/passwd").is_ok(), "names never touch paths");
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let id = Uuid::now_v7().to_string();
        assert_eq!(decode_list_cursor(&encode_cursor(&id)).ok(), Some(id.clone()));
        assert!(decode_list_cursor("!!!").is_err());
        assert!(decode_list_cursor(&encode_cursor("not-a-uuid")).is_err());
        let trash = encode_cursor(&format!("123:{id}"));
        assert_eq!(decode_trash_cursor(&trash).ok(), Some((123, id)));
    }
}
