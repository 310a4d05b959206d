//! Creating, finding, listing and cancelling uploads.

use super::rows::{
    COLUMNS, Upload, UploadView, delete_row, from_row, load, not_found, save_progress, too_many, usage, view,
};
use crate::db::blocking;
use crate::error::Error;
use crate::ingest::{self};
use crate::recordings::{self as rec, Recording};
use crate::state::AppState;
use crate::storage::{self, Storage};
use rusqlite::params;
use std::fs::File;
use uuid::Uuid;

/// Saves an upload's progress; `durable`: flushed through the WAL before it returns (an offset
/// about to be acknowledged).
pub(super) async fn save(state: &AppState, upload: &Upload, durable: bool) -> Result<bool, Error> {
    let row = upload.clone();
    if durable {
        state.db.run_durably(move |conn| save_progress(conn, &row)).await
    } else {
        state.db.run(move |conn| save_progress(conn, &row)).await
    }
}

// ---------------------------------------------------------------------------------------------
// Operations.

/// What a client asks for when it creates an upload.
#[derive(Debug, Default, Clone)]
pub struct NewUpload {
    pub length: Option<u64>,
    pub name: Option<String>,
    pub recorded_at: Option<i64>,
    pub keep_partial: bool,
    pub idempotency_key: Option<String>,
    /// Marks made while recording (tus metadata `marks`).
    pub marks: Vec<i64>,
}

/// Creates an upload resource and its empty file.
pub async fn create(state: &AppState, user_id: &str, new: NewUpload) -> Result<Upload, Error> {
    let max = state.config.storage.max_upload_size;
    if let Some(length) = new.length {
        // `Upload-Length: 0` makes an upload that can never complete (no bytes are never a
        // recording): it is created as tus asks and expires like any incomplete upload.
        if length > max {
            return Err(ingest::too_large(max));
        }
        if length > ingest::space_budget(state).await? {
            return Err(storage::insufficient_storage());
        }
    }
    let now = state.clock.now_ms();
    let upload = Upload {
        id: Uuid::now_v7().hyphenated().to_string(),
        user_id: user_id.to_string(),
        name: new.name,
        recorded_at: new.recorded_at,
        length: new.length,
        received: 0,
        keep_partial: new.keep_partial,
        idempotency_key: new.idempotency_key,
        marks: new.marks,
        created_at: now,
        updated_at: now,
        expires_at: now + state.config.upload_expire_ms(),
        recording_id: None,
    };
    let cap = state.config.uploads.max_incomplete;
    let (db, storage, row) = (state.db.clone(), state.storage.clone(), upload.clone());
    blocking(move || {
        let mut conn = db.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let (open, _) = usage(&tx, &row.user_id, now)?;
        if open >= u64::from(cap) {
            return Err(too_many(cap));
        }
        tx.execute(
            "INSERT INTO uploads (id, user_id, name, recorded_at, length, received, keep_partial, created_at,
                                  updated_at, expires_at, idempotency_key, marks)
             VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, ?7, ?8, ?9, ?10)",
            params![
                row.id,
                row.user_id,
                row.name,
                row.recorded_at,
                row.length.map(|n| n as i64),
                row.keep_partial,
                row.created_at,
                row.expires_at,
                row.idempotency_key,
                crate::bookmarks::marks_text(&row.marks)
            ],
        )?;
        // The file before the commit: a row never exists without its file. (A crash in between
        // leaves a file without a row, which startup removes.)
        let path = storage.upload_path(&row.id);
        File::create_new(&path)
            .and_then(|f| f.sync_all())
            .and_then(|()| ingest::sync_parent(&path))
            .map_err(storage::disk_error)?;
        tx.commit()?;
        Ok(())
    })
    .await?;
    Ok(upload)
}

/// One of the user's uploads, or 404.
pub async fn find(state: &AppState, user_id: &str, id: &str) -> Result<Upload, Error> {
    let id = parse_id(id)?;
    let (user_id, now) = (user_id.to_string(), state.clock.now_ms());
    state.db.run(move |conn| load(conn, &user_id, &id, now)).await?.ok_or_else(not_found)
}

pub(super) fn parse_id(id: &str) -> Result<String, Error> {
    Uuid::parse_str(id).map(|u| u.hyphenated().to_string()).map_err(|_| not_found())
}

/// The JSON view of one upload.
pub async fn describe(state: &AppState, upload: Upload) -> Result<UploadView, Error> {
    state.db.run(move |conn| view(conn, &upload)).await
}

/// The user's incomplete uploads, newest first.
pub async fn list(state: &AppState, user_id: &str) -> Result<Vec<UploadView>, Error> {
    let (user_id, now) = (user_id.to_string(), state.clock.now_ms());
    state
        .db
        .run(move |conn| {
            let sql = format!(
                "SELECT {COLUMNS} FROM uploads WHERE user_id = ?1 AND recording_id IS NULL AND expires_at > ?2
                 ORDER BY id DESC LIMIT 1000"
            );
            let mut stmt = conn.prepare(&sql)?;
            let uploads = stmt.query_map(params![user_id, now], from_row)?.collect::<Result<Vec<_>, _>>()?;
            uploads.iter().map(|u| view(conn, u)).collect()
        })
        .await
}

/// Where an upload stands after a request: the answer's offset, and the recording once complete.
#[derive(Debug)]
pub struct Progress {
    pub upload: Upload,
    /// The recording, when the upload is complete.
    pub recording: Option<Recording>,
    /// This request completed it (a retry of a completion is `false`).
    pub completed_now: bool,
}

pub(super) async fn recording_of(state: &AppState, upload: &Upload) -> Result<Option<Recording>, Error> {
    let (user_id, rid) = (upload.user_id.clone(), upload.recording_id.clone());
    match rid {
        Some(rid) => state.db.run(move |conn| rec::get(conn, &user_id, &rid)).await,
        None => Ok(None),
    }
}

/// Deletes an upload and its bytes (a completed upload's recording stays).
pub async fn cancel(state: &AppState, user_id: &str, id: &str) -> Result<(), Error> {
    let id = parse_id(id)?;
    find(state, user_id, &id).await?;
    let _turn = state.uploads.take_turn(&id).await;
    let upload = find(state, user_id, &id).await?;
    drop_upload(state, &upload.id).await
}

pub(super) async fn drop_upload(state: &AppState, id: &str) -> Result<(), Error> {
    let (db, storage, owned) = (state.db.clone(), state.storage.clone(), id.to_string());
    blocking(move || {
        delete_row(&*db.conn()?, &owned)?;
        remove_file(&storage, &owned);
        Ok(())
    })
    .await?;
    state.uploads.forget(id);
    Ok(())
}

pub(super) fn remove_file(storage: &Storage, id: &str) {
    let path = storage.upload_path(id);
    if let Err(e) = std::fs::remove_file(&path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        log::warn!("cannot remove {}: {e}; the next start removes it", path.display());
    }
}
