//! The full-text index of transcripts (`transcript_fts`): each user's rows marked with a token
//! of their own, searched a page at a time.

use crate::error::Error;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

/// FTS rowids: a recording's rowid times this, plus the segment's index.
const ROWS_PER_RECORDING: i64 = 1 << 20;

/// The search token of a user: one word, so `owner : u…` matches that user's rows only.
fn owner_token(user_id: &str) -> String {
    format!("u{}", user_id.replace('-', ""))
}

/// Replaces a recording's rows in the full-text index with `segments` (each one's words and
/// where it starts).
pub fn reindex<'a>(
    tx: &Transaction<'_>,
    recording_id: &str,
    segments: impl Iterator<Item = (&'a str, i64)>,
) -> Result<(), Error> {
    let (rowid, user_id): (i64, String) =
        tx.query_row("SELECT rowid, user_id FROM recordings WHERE id = ?1", [recording_id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let base = rowid * ROWS_PER_RECORDING;
    tx.execute(
        "DELETE FROM transcript_fts WHERE rowid >= ?1 AND rowid < ?2",
        params![base, base + ROWS_PER_RECORDING],
    )?;
    let owner = owner_token(&user_id);
    let mut insert =
        tx.prepare_cached("INSERT INTO transcript_fts (rowid, owner, body, start_ms) VALUES (?1, ?2, ?3, ?4)")?;
    for (i, (text, start_ms)) in segments.enumerate() {
        if text.trim().is_empty() {
            continue;
        }
        insert.execute(params![base + i as i64, owner, text, start_ms])?;
    }
    Ok(())
}

/// The FTS5 query for what a user typed: each word a prefix, all of them in one segment, only
/// among the user's own rows. `None` when there is no word to look for.
pub fn fts_query(user_id: &str, q: &str) -> Option<String> {
    let words: Vec<String> = q
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(16)
        .map(|w| format!("\"{w}\"*"))
        .collect();
    if words.is_empty() {
        return None;
    }
    Some(format!("owner : \"{}\" AND body : ({})", owner_token(user_id), words.join(" AND ")))
}

/// A recording whose transcript matched: its first matching segment.
#[derive(Debug, Clone)]
pub struct Hit {
    pub recording_rowid: i64,
    pub start_ms: i64,
    pub snippet: String,
}

/// Recordings whose transcripts match, newest (highest rowid) first, below `before` (a
/// recording rowid), at most `want` of them: each with its earliest matching segment. Reads
/// only the rows of the recordings it returns (and one more), however many match further on.
pub fn search(
    conn: &Connection,
    query: &str,
    before: Option<i64>,
    want: usize,
    newest_first: bool,
) -> Result<Vec<Hit>, Error> {
    let sql = if newest_first {
        "SELECT rowid, start_ms, snippet(transcript_fts, 1, '', '', '…', 12) FROM transcript_fts
         WHERE transcript_fts MATCH ?1 AND rowid < ?2 ORDER BY rowid DESC LIMIT ?3"
    } else {
        "SELECT rowid, start_ms, snippet(transcript_fts, 1, '', '', '…', 12) FROM transcript_fts
         WHERE transcript_fts MATCH ?1 AND rowid >= ?2 ORDER BY rowid ASC LIMIT ?3"
    };
    let mut stmt = conn.prepare_cached(sql)?;
    let mut bound = match (before, newest_first) {
        (Some(r), true) => r * ROWS_PER_RECORDING,
        (None, true) => i64::MAX,
        (Some(r), false) => (r + 1) * ROWS_PER_RECORDING,
        (None, false) => 0,
    };
    let mut hits: Vec<Hit> = Vec::new();
    const CHUNK: i64 = 256;
    loop {
        let rows: Vec<(i64, i64, String)> = stmt
            .query_map(params![query, bound, CHUNK], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        let exhausted = (rows.len() as i64) < CHUNK;
        for (rowid, start_ms, snippet) in rows {
            bound = if newest_first { rowid } else { rowid + 1 };
            let recording = rowid / ROWS_PER_RECORDING;
            match hits.last_mut() {
                Some(last) if last.recording_rowid == recording => {
                    // Walking down a recording's segments: the earlier one is its first hit.
                    if newest_first {
                        last.start_ms = start_ms;
                        last.snippet = snippet;
                    }
                }
                _ => {
                    if hits.len() == want {
                        return Ok(hits);
                    }
                    hits.push(Hit { recording_rowid: recording, start_ms, snippet });
                }
            }
        }
        if exhausted {
            return Ok(hits);
        }
    }
}

/// The rowid of one of the user's recordings (the search cursor's position).
pub fn rowid_of(conn: &Connection, user_id: &str, recording_id: &str) -> Result<Option<i64>, Error> {
    Ok(conn
        .query_row("SELECT rowid FROM recordings WHERE id = ?1 AND user_id = ?2", params![recording_id, user_id], |r| {
            r.get(0)
        })
        .optional()?)
}
