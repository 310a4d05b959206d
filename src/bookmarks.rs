//! Bookmarks: moments in a recording with an optional note. Made in the player, or as marks
//! while recording (tus metadata `marks`, the `X-Recording-Marks` header), which become
//! bookmarks in the transaction that stores the recording. They stay with the recording's row:
//! into the trash and back, into a backup, and go when it is deleted for good.

use crate::clock::rfc3339;
use crate::error::Error;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use uuid::Uuid;

/// Bookmarks a recording may have.
pub const MAX_PER_RECORDING: usize = 1000;
/// A note's length, in characters.
pub const MAX_NOTE_CHARS: usize = 500;
/// The latest moment a mark may name: 30 days into a recording.
const MAX_AT_MS: i64 = 30 * 86_400_000;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Bookmark {
    pub id: String,
    pub at_ms: i64,
    pub note: String,
    pub created_at: String,
}

/// Marks made while recording: comma-separated milliseconds (digits and commas only; empty: no
/// marks), at most [`MAX_PER_RECORDING`].
pub fn parse_marks(text: &str) -> Result<Vec<i64>, Error> {
    let bad = || {
        Error::invalid(format!(
            "marks are a comma-separated list of at most {MAX_PER_RECORDING} whole milliseconds, such as 1500,62000"
        ))
    };
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let mut marks = Vec::new();
    for part in text.split(',') {
        if marks.len() == MAX_PER_RECORDING
            || part.is_empty()
            || part.len() > 12
            || !part.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let at: i64 = part.parse().map_err(|_| bad())?;
        if at > MAX_AT_MS {
            return Err(bad());
        }
        marks.push(at);
    }
    marks.sort_unstable();
    Ok(marks)
}

/// Marks as the uploads table keeps them.
pub fn marks_text(marks: &[i64]) -> Option<String> {
    (!marks.is_empty()).then(|| marks.iter().map(i64::to_string).collect::<Vec<_>>().join(","))
}

/// Adds a new recording's marks as bookmarks, in its transaction (its `created` change says it).
pub fn add_marks(tx: &Transaction<'_>, recording_id: &str, marks: &[i64], now: i64) -> Result<(), Error> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO bookmarks (id, recording_id, at_ms, note, created_at) VALUES (?1, ?2, ?3, '', ?4)",
    )?;
    for at in marks.iter().take(MAX_PER_RECORDING) {
        insert.execute(params![Uuid::now_v7().hyphenated().to_string(), recording_id, at, now])?;
    }
    Ok(())
}

/// The recording's bookmarks changed: an `updated` recording in its owner's changes feed, in the
/// change's transaction (as the triggers on `recordings` write the rest of the feed).
fn feed_updated(tx: &Transaction<'_>, recording_id: &str) -> Result<(), Error> {
    tx.execute(
        "INSERT INTO feeds (user_id, seq) SELECT user_id, 1 FROM recordings WHERE id = ?1
            ON CONFLICT (user_id) DO UPDATE SET seq = seq + 1",
        [recording_id],
    )?;
    tx.execute(
        "INSERT INTO changes (user_id, seq, type, recording_id, at)
         SELECT r.user_id, f.seq, 'updated', r.id, CAST(unixepoch('subsec') * 1000 AS INTEGER)
         FROM recordings r JOIN feeds f ON f.user_id = r.user_id WHERE r.id = ?1",
        [recording_id],
    )?;
    Ok(())
}

fn note_of(note: Option<&str>) -> Result<String, Error> {
    let note = note.unwrap_or("").trim();
    if note.chars().count() > MAX_NOTE_CHARS || note.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(Error::invalid(format!(
            "a bookmark's note is at most {MAX_NOTE_CHARS} characters, without control characters"
        )));
    }
    Ok(note.to_string())
}

/// The recording's length when known; 404 when the user has no such live recording.
fn live_duration(conn: &Connection, user_id: &str, recording_id: &str) -> Result<Option<i64>, Error> {
    conn.query_row(
        "SELECT duration_ms FROM recordings WHERE id = ?1 AND user_id = ?2 AND deleted_at IS NULL",
        params![recording_id, user_id],
        |r| r.get::<_, Option<i64>>(0),
    )
    .optional()?
    .ok_or_else(not_found_recording)
}

fn not_found_recording() -> Error {
    Error::not_found("no such recording")
}

fn not_found() -> Error {
    Error::not_found("no such bookmark")
}

fn check_at(at_ms: i64, duration: Option<i64>) -> Result<(), Error> {
    let limit = duration.unwrap_or(MAX_AT_MS);
    if at_ms < 0 || at_ms > limit {
        return Err(Error::invalid(format!("`at_ms` must be within the recording (0 to {limit})")));
    }
    Ok(())
}

/// A live recording's bookmarks in order.
pub fn list(conn: &Connection, user_id: &str, recording_id: &str) -> Result<Vec<Bookmark>, Error> {
    live_duration(conn, user_id, recording_id)?;
    let mut stmt = conn.prepare_cached(
        "SELECT id, at_ms, note, created_at FROM bookmarks WHERE recording_id = ?1 ORDER BY at_ms, id",
    )?;
    let rows = stmt.query_map([recording_id], |r| {
        Ok(Bookmark { id: r.get(0)?, at_ms: r.get(1)?, note: r.get(2)?, created_at: rfc3339(r.get(3)?) })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Adds a bookmark; 409 `too_many` past [`MAX_PER_RECORDING`].
pub fn add(
    conn: &mut Connection,
    user_id: &str,
    recording_id: &str,
    at_ms: i64,
    note: Option<&str>,
    now: i64,
) -> Result<Bookmark, Error> {
    let note = note_of(note)?;
    let tx = crate::recordings::write_transaction(conn)?;
    check_at(at_ms, live_duration(&tx, user_id, recording_id)?)?;
    let count: i64 =
        tx.query_row("SELECT COUNT(*) FROM bookmarks WHERE recording_id = ?1", [recording_id], |r| r.get(0))?;
    if count as usize >= MAX_PER_RECORDING {
        return Err(Error::Conflict {
            code: "too_many",
            message: format!("a recording has at most {MAX_PER_RECORDING} bookmarks").into(),
        });
    }
    let id = Uuid::now_v7().hyphenated().to_string();
    tx.execute(
        "INSERT INTO bookmarks (id, recording_id, at_ms, note, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, recording_id, at_ms, note, now],
    )?;
    feed_updated(&tx, recording_id)?;
    tx.commit()?;
    Ok(Bookmark { id, at_ms, note, created_at: rfc3339(now) })
}

/// Changes a bookmark's moment or note.
pub fn update(
    conn: &mut Connection,
    user_id: &str,
    recording_id: &str,
    id: &str,
    at_ms: Option<i64>,
    note: Option<&str>,
) -> Result<Bookmark, Error> {
    let note = note.map(|n| note_of(Some(n))).transpose()?;
    let tx = crate::recordings::write_transaction(conn)?;
    let duration = live_duration(&tx, user_id, recording_id)?;
    if let Some(at) = at_ms {
        check_at(at, duration)?;
    }
    let changed = tx.execute(
        "UPDATE bookmarks SET at_ms = coalesce(?1, at_ms), note = coalesce(?2, note) WHERE id = ?3 AND recording_id = ?4",
        params![at_ms, note, id, recording_id],
    )?;
    if changed == 0 {
        return Err(not_found());
    }
    let bookmark = tx.query_row("SELECT id, at_ms, note, created_at FROM bookmarks WHERE id = ?1", [id], |r| {
        Ok(Bookmark { id: r.get(0)?, at_ms: r.get(1)?, note: r.get(2)?, created_at: rfc3339(r.get(3)?) })
    })?;
    feed_updated(&tx, recording_id)?;
    tx.commit()?;
    Ok(bookmark)
}

/// Deletes a bookmark.
pub fn delete(conn: &mut Connection, user_id: &str, recording_id: &str, id: &str) -> Result<(), Error> {
    let tx = crate::recordings::write_transaction(conn)?;
    live_duration(&tx, user_id, recording_id)?;
    let changed = tx.execute("DELETE FROM bookmarks WHERE id = ?1 AND recording_id = ?2", params![id, recording_id])?;
    if changed == 0 {
        return Err(not_found());
    }
    feed_updated(&tx, recording_id)?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_milliseconds_in_order_and_bounded() {
        assert_eq!(parse_marks("").expect("none"), Vec::<i64>::new());
        assert_eq!(parse_marks("62000,1500,0").expect("three"), vec![0, 1500, 62000]);
        for bad in ["-1", "1.5", "a", "1,,2", "1,", " 1", "1, 2", "9999999999999", &format!("{}", MAX_AT_MS + 1)] {
            assert!(parse_marks(bad).is_err(), "{bad}");
        }
        let many = vec!["1"; MAX_PER_RECORDING].join(",");
        assert_eq!(parse_marks(&many).expect("the most").len(), MAX_PER_RECORDING);
        assert!(parse_marks(&format!("{many},2")).is_err());
        assert_eq!(marks_text(&[0, 1500]).as_deref(), Some("0,1500"));
        assert_eq!(marks_text(&[]), None);
    }
}
