//! A recording's row: what the API shows, how a new one is inserted, and the checks of its
//! name and id.

use crate::clock::rfc3339;
use crate::error::Error;
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
    /// How many bookmarks it has.
    pub bookmarks: i64,
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

pub(super) const COLUMNS: &str = "id, name, content_type, size, sha256, duration_ms, recorded_at, created_at, deleted_at, purge_at, problem, waveform, transcript, store, \
     (SELECT COUNT(*) FROM bookmarks WHERE bookmarks.recording_id = recordings.id)";

pub(super) fn from_row(row: &Row<'_>) -> rusqlite::Result<Recording> {
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
        bookmarks: row.get(14)?,
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

/// A transaction that takes the write lock at its start. One that reads first and writes later
/// (as a purge does: which ids, then delete them) cannot wait for its turn once another
/// connection has committed since its read: SQLite answers BUSY at once (the snapshot is stale),
/// whatever the busy timeout. Taking the lock first makes it wait instead.
pub fn write_transaction(conn: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
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
