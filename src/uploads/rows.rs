//! The `uploads` table: an upload resource, its rows and what they answer.

use crate::clock::rfc3339;
use crate::error::Error;
use crate::recordings::{self as rec, Recording};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

/// An upload resource.
#[derive(Debug, Clone)]
pub struct Upload {
    pub id: String,
    pub user_id: String,
    pub name: Option<String>,
    pub recorded_at: Option<i64>,
    pub length: Option<u64>,
    /// Durable bytes: the offset.
    pub received: u64,
    pub keep_partial: bool,
    pub idempotency_key: Option<String>,
    /// Marks made while recording, to become bookmarks.
    pub marks: Vec<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub expires_at: i64,
    /// Set when the last byte arrived and the recording was stored.
    pub recording_id: Option<String>,
}

impl Upload {
    pub fn is_complete(&self) -> bool {
        self.recording_id.is_some()
    }
}

/// An upload as `GET /api/v1/uploads[/{id}]` shows it.
#[derive(Debug, Serialize)]
pub struct UploadView {
    pub id: String,
    pub offset: u64,
    pub length: Option<u64>,
    pub name: Option<String>,
    /// When it expires, what arrived is stored as a recording.
    pub keep_partial: bool,
    pub created_at: String,
    pub expires_at: String,
    pub recording: Option<Recording>,
}

pub(super) const COLUMNS: &str = "id, user_id, name, recorded_at, length, received, keep_partial, created_at, updated_at, \
                       expires_at, recording_id, idempotency_key, marks";

pub(super) fn from_row(row: &Row<'_>) -> rusqlite::Result<Upload> {
    Ok(Upload {
        id: row.get(0)?,
        user_id: row.get(1)?,
        name: row.get(2)?,
        recorded_at: row.get(3)?,
        length: row.get::<_, Option<i64>>(4)?.map(|n| n.max(0) as u64),
        received: row.get::<_, i64>(5)?.max(0) as u64,
        keep_partial: row.get(6)?,
        created_at: row.get(7)?,
        updated_at: row.get(8)?,
        expires_at: row.get(9)?,
        recording_id: row.get(10)?,
        idempotency_key: row.get(11)?,
        // Checked when the upload was made.
        marks: row
            .get::<_, Option<String>>(12)?
            .map(|text| crate::bookmarks::parse_marks(&text).unwrap_or_default())
            .unwrap_or_default(),
    })
}

pub fn not_found() -> Error {
    Error::not_found("no upload with that id (it may have expired)")
}

/// 409 with the offset the client must continue from.
pub fn conflict(offset: u64) -> Error {
    Error::OffsetMismatch { offset, complete: false }
}

pub(super) fn too_many(max: u32) -> Error {
    Error::TooMany {
        message: format!("at most {max} incomplete uploads at once: finish or delete one first").into(),
        retry_after: None,
    }
}

// ---------------------------------------------------------------------------------------------
// Rows.

pub(super) fn load(conn: &Connection, user_id: &str, id: &str, now: i64) -> Result<Option<Upload>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM uploads WHERE id = ?1 AND user_id = ?2");
    let upload = conn.query_row(&sql, params![id, user_id], from_row).optional()?;
    // Expired is gone, whether or not the sweep has been by yet.
    Ok(upload.filter(|u| u.expires_at > now))
}

/// Moves the durable offset (and the length, once known) forward. False when the upload is gone
/// or complete.
pub(super) fn save_progress(conn: &Connection, upload: &Upload) -> Result<bool, Error> {
    let updated = conn.execute(
        "UPDATE uploads SET received = ?1, length = ?2, updated_at = ?3, expires_at = ?4
         WHERE id = ?5 AND recording_id IS NULL",
        params![
            upload.received as i64,
            upload.length.map(|n| n as i64),
            upload.updated_at,
            upload.expires_at,
            upload.id
        ],
    )?;
    Ok(updated == 1)
}

pub(super) fn delete_row(conn: &Connection, id: &str) -> Result<(), Error> {
    conn.execute("DELETE FROM uploads WHERE id = ?1", [id])?;
    Ok(())
}

pub(super) fn view(conn: &Connection, upload: &Upload) -> Result<UploadView, Error> {
    let recording = match &upload.recording_id {
        Some(id) => rec::get(conn, &upload.user_id, id)?,
        None => None,
    };
    Ok(UploadView {
        id: upload.id.clone(),
        offset: upload.received,
        length: upload.length,
        name: upload.name.clone(),
        keep_partial: upload.keep_partial,
        created_at: rfc3339(upload.created_at),
        expires_at: rfc3339(upload.expires_at),
        recording,
    })
}

/// Deletes a user's uploads in the caller's transaction and queues their files in
/// `pending_unlinks` (account deletion); returns the paths to unlink after the commit.
pub fn queue_unlinks_for_user(tx: &rusqlite::Transaction<'_>, user_id: &str, now: i64) -> Result<Vec<String>, Error> {
    let ids: Vec<String> = {
        let mut stmt = tx.prepare("SELECT id FROM uploads WHERE user_id = ?1")?;
        stmt.query_map([user_id], |r| r.get(0))?.collect::<Result<_, _>>()?
    };
    let mut pending = tx.prepare_cached("INSERT OR IGNORE INTO pending_unlinks (path, created_at) VALUES (?1, ?2)")?;
    let mut paths = Vec::with_capacity(ids.len());
    for id in ids {
        let path = format!("uploads/{id}");
        pending.execute(params![path, now])?;
        paths.push(path);
    }
    tx.execute("DELETE FROM uploads WHERE user_id = ?1", [user_id])?;
    Ok(paths)
}

/// A user's incomplete uploads: how many and their durable bytes (counted in `GET /me`).
pub fn usage(conn: &Connection, user_id: &str, now: i64) -> Result<(u64, u64), Error> {
    let (count, bytes): (i64, i64) = conn.query_row(
        "SELECT count(*), coalesce(sum(received), 0) FROM uploads
         WHERE user_id = ?1 AND recording_id IS NULL AND expires_at > ?2",
        params![user_id, now],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok((count.max(0) as u64, bytes.max(0) as u64))
}
