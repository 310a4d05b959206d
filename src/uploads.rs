//! Resumable uploads: the upload resources tus 1.0 and the IETF draft share (`routes/uploads.rs`
//! speaks both protocols over these).
//!
//! An upload is a row in `uploads` and a file `uploads/<id>` in the data directory. Its durable
//! offset is `received`: bytes are written, the file fsynced, and only then is `received` moved
//! forward, so any offset the server reports survives `kill -9` and power loss. Bytes past
//! `received` (a request cut off by a crash) were never acknowledged; the next request (and
//! startup) cuts them off.
//!
//! One request works on an upload at a time. Each request takes the upload's *turn*; a newer
//! request asks the one holding it to stop (a phone that switched networks while its old
//! connection hangs), and the older one keeps what it durably wrote and lets go.
//!
//! When the last byte is durable, [`crate::ingest::record`] stores the file as a recording and
//! marks the upload complete in the same transaction: exactly once, whatever the retries.

use crate::clock::rfc3339;
use crate::db::{Db, blocking};
use crate::error::ApiError;
use crate::ingest::{self, Draft, Place, Stored};
use crate::recordings::{self as rec, Recording};
use crate::state::AppState;
use crate::storage::{self, Checksum, Storage, StreamError};
use rocket::data::{DataStream, ToByteUnit};
use rocket::http::Status;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;
use sha2::Sha256;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::sync::{Arc, Mutex};
use tokio::io::AsyncReadExt;
use tokio::sync::{OwnedMutexGuard, watch};
use uuid::Uuid;

/// Inside one long request, the file is fsynced and the offset moved forward every this many
/// bytes: a connection that breaks keeps everything up to the last such point.
const CHECKPOINT: u64 = 16 << 20;
/// How much of a refused request's body is read and dropped before answering (a client's
/// resumable chunk is typically up to 8 MiB).
const DRAIN_ON_REFUSAL: u64 = 16 << 20;

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

const COLUMNS: &str = "id, user_id, name, recorded_at, length, received, keep_partial, created_at, updated_at, \
                       expires_at, recording_id, idempotency_key";

fn from_row(row: &Row<'_>) -> rusqlite::Result<Upload> {
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
    })
}

pub fn not_found() -> ApiError {
    ApiError::not_found("no upload with that id (it may have expired)")
}

/// 409 with the offset the client must continue from.
pub fn conflict(offset: u64) -> ApiError {
    ApiError::new(
        Status::Conflict,
        "conflict",
        format!("Upload-Offset does not match the upload's offset, {offset}: continue from there"),
    )
    .with_header("Upload-Offset", offset.to_string())
}

fn too_many(max: u32) -> ApiError {
    ApiError::new(
        Status::TooManyRequests,
        "too_many_requests",
        format!("at most {max} incomplete uploads at once: finish or delete one first"),
    )
}

// ---------------------------------------------------------------------------------------------
// Turns: one request per upload at a time, the newest wins.

/// Per-upload coordination, alive while the server runs. Small: a few words per upload.
#[derive(Default, Clone)]
pub struct Registry {
    slots: Arc<Mutex<HashMap<String, Arc<Slot>>>>,
}

struct Slot {
    turn: Arc<tokio::sync::Mutex<Live>>,
    /// Bumped by every request that wants the turn; the holder stops when it changes.
    latest: watch::Sender<u64>,
}

/// What the turn holder knows beyond the row: the SHA-256 of the first `at` bytes, so a
/// completed upload is not read again to hash it.
#[derive(Default)]
struct Live {
    hashed: Option<(u64, Sha256)>,
}

/// The right to work on one upload.
struct Turn {
    live: OwnedMutexGuard<Live>,
    mine: u64,
    newer: watch::Receiver<u64>,
    _slot: Arc<Slot>,
}

impl Registry {
    fn slot(&self, id: &str) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .entry(id.to_string())
            .or_insert_with(|| {
                Arc::new(Slot { turn: Arc::new(tokio::sync::Mutex::new(Live::default())), latest: watch::channel(0).0 })
            })
            .clone()
    }

    fn forget(&self, id: &str) {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }

    /// Takes the upload's turn, asking whoever holds it to stop.
    async fn take_turn(&self, id: &str) -> Turn {
        let slot = self.slot(id);
        let mut mine = 0;
        slot.latest.send_modify(|v| {
            *v += 1;
            mine = *v;
        });
        let newer = slot.latest.subscribe();
        let live = slot.turn.clone().lock_owned().await;
        Turn { live, mine, newer, _slot: slot }
    }

    /// The turn if nobody holds it (the expiry sweep never waits for a request).
    fn try_turn(&self, id: &str) -> Option<Turn> {
        let slot = self.slot(id);
        let live = slot.turn.clone().try_lock_owned().ok()?;
        let mine = *slot.latest.borrow();
        let newer = slot.latest.subscribe();
        Some(Turn { live, mine, newer, _slot: slot })
    }
}

impl Turn {
    /// Resolves when a newer request wants this upload.
    async fn superseded(&mut self) {
        let mine = self.mine;
        if self.newer.wait_for(|v| *v != mine).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    fn hasher_at(&mut self, offset: u64) -> Option<Sha256> {
        match self.live.hashed.take() {
            Some((at, hasher)) if at == offset => Some(hasher),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rows.

fn load(conn: &Connection, user_id: &str, id: &str, now: i64) -> Result<Option<Upload>, ApiError> {
    let sql = format!("SELECT {COLUMNS} FROM uploads WHERE id = ?1 AND user_id = ?2");
    let upload = conn.query_row(&sql, params![id, user_id], from_row).optional()?;
    // Expired is gone, whether or not the sweep has been by yet.
    Ok(upload.filter(|u| u.expires_at > now))
}

/// Moves the durable offset (and the length, once known) forward. False when the upload is gone
/// or complete.
fn save_progress(conn: &Connection, upload: &Upload) -> Result<bool, ApiError> {
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

/// Saves an upload's progress; `durable`: flushed through the WAL before it returns (an offset
/// about to be acknowledged).
async fn save(state: &AppState, upload: &Upload, durable: bool) -> Result<bool, ApiError> {
    let row = upload.clone();
    if durable {
        state.db.run_durably(move |conn| save_progress(conn, &row)).await
    } else {
        state.db.run(move |conn| save_progress(conn, &row)).await
    }
}

fn delete_row(conn: &Connection, id: &str) -> Result<(), ApiError> {
    conn.execute("DELETE FROM uploads WHERE id = ?1", [id])?;
    Ok(())
}

fn view(conn: &Connection, upload: &Upload) -> Result<UploadView, ApiError> {
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
pub fn queue_unlinks_for_user(
    tx: &rusqlite::Transaction<'_>,
    user_id: &str,
    now: i64,
) -> Result<Vec<String>, ApiError> {
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
pub fn usage(conn: &Connection, user_id: &str, now: i64) -> Result<(u64, u64), ApiError> {
    let (count, bytes): (i64, i64) = conn.query_row(
        "SELECT count(*), coalesce(sum(received), 0) FROM uploads
         WHERE user_id = ?1 AND recording_id IS NULL AND expires_at > ?2",
        params![user_id, now],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok((count.max(0) as u64, bytes.max(0) as u64))
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
}

/// Creates an upload resource and its empty file.
pub async fn create(state: &AppState, user_id: &str, new: NewUpload) -> Result<Upload, ApiError> {
    let max = state.config.max_upload_size;
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
        created_at: now,
        updated_at: now,
        expires_at: now + state.config.upload_expire_ms(),
        recording_id: None,
    };
    let cap = state.config.max_incomplete_uploads;
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
                                  updated_at, expires_at, idempotency_key)
             VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, ?7, ?8, ?9)",
            params![
                row.id,
                row.user_id,
                row.name,
                row.recorded_at,
                row.length.map(|n| n as i64),
                row.keep_partial,
                row.created_at,
                row.expires_at,
                row.idempotency_key
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
pub async fn find(state: &AppState, user_id: &str, id: &str) -> Result<Upload, ApiError> {
    let id = parse_id(id)?;
    let (user_id, now) = (user_id.to_string(), state.clock.now_ms());
    state.db.run(move |conn| load(conn, &user_id, &id, now)).await?.ok_or_else(not_found)
}

fn parse_id(id: &str) -> Result<String, ApiError> {
    Uuid::parse_str(id).map(|u| u.hyphenated().to_string()).map_err(|_| not_found())
}

/// The JSON view of one upload.
pub async fn describe(state: &AppState, upload: Upload) -> Result<UploadView, ApiError> {
    state.db.run(move |conn| view(conn, &upload)).await
}

/// The user's incomplete uploads, newest first.
pub async fn list(state: &AppState, user_id: &str) -> Result<Vec<UploadView>, ApiError> {
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

/// Takes the upload's turn (stopping an older request on it) and answers where it stands; an
/// upload whose last byte is durable but was not yet stored (a crash in between) is stored now.
pub async fn status(state: &AppState, user_id: &str, id: &str) -> Result<Progress, ApiError> {
    let id = parse_id(id)?;
    // Whose upload it is, first: another user's request must not stop the owner's.
    find(state, user_id, &id).await?;
    let mut turn = state.uploads.take_turn(&id).await;
    let upload = find(state, user_id, &id).await?;
    settle(state, &mut turn, upload).await
}

async fn settle(state: &AppState, turn: &mut Turn, upload: Upload) -> Result<Progress, ApiError> {
    if upload.is_complete() {
        let recording = recording_of(state, &upload).await?;
        return Ok(Progress { upload, recording, completed_now: false });
    }
    if upload.length == Some(upload.received) && upload.received > 0 {
        return complete(state, turn, upload).await;
    }
    Ok(Progress { upload, recording: None, completed_now: false })
}

async fn recording_of(state: &AppState, upload: &Upload) -> Result<Option<Recording>, ApiError> {
    let (user_id, rid) = (upload.user_id.clone(), upload.recording_id.clone());
    match rid {
        Some(rid) => state.db.run(move |conn| rec::get(conn, &user_id, &rid)).await,
        None => Ok(None),
    }
}

/// Deletes an upload and its bytes (a completed upload's recording stays).
pub async fn cancel(state: &AppState, user_id: &str, id: &str) -> Result<(), ApiError> {
    let id = parse_id(id)?;
    find(state, user_id, &id).await?;
    let _turn = state.uploads.take_turn(&id).await;
    let upload = find(state, user_id, &id).await?;
    drop_upload(state, &upload.id).await
}

async fn drop_upload(state: &AppState, id: &str) -> Result<(), ApiError> {
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

fn remove_file(storage: &Storage, id: &str) {
    let path = storage.upload_path(id);
    if let Err(e) = std::fs::remove_file(&path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        log::warn!("cannot remove {}: {e}; the next start removes it", path.display());
    }
}

/// One request's bytes for an upload.
pub struct Append {
    /// Where the client says it continues from.
    pub offset: u64,
    /// The total length, if the client says it now (deferred length, or the IETF draft).
    pub length: Option<u64>,
    /// The request's body is the end of the upload (IETF `Upload-Complete: ?1`).
    pub last: bool,
    /// `Content-Length`, when given: refused before reading when it cannot fit.
    pub content_length: Option<u64>,
    /// A checksum of the request's bytes and its expected value (tus `Upload-Checksum`).
    pub checksum: Option<(Checksum, Vec<u8>)>,
}

/// How the read of a request's body ended.
enum Ended {
    /// The whole body arrived.
    Done,
    /// A newer request on the same upload asked this one to stop.
    Superseded,
    Failed(StreamError),
}

/// Appends a request's bytes to an upload at `offset`, durably, and stores the recording when
/// they are the last.
pub async fn append(
    state: &AppState,
    user_id: &str,
    id: &str,
    req: Append,
    body: Option<rocket::Data<'_>>,
) -> Result<Progress, ApiError> {
    let mut body = body;
    let result = append_body(state, user_id, id, req, &mut body).await;
    if result.is_err()
        && let Some(data) = body.take()
    {
        // Refused before reading: read (a bounded amount of) what the client is sending, so a
        // small request sees the answer instead of a connection reset.
        let _ = data.open(1.mebibytes()).stream_to(tokio::io::sink()).await;
    }
    result
}

async fn append_body(
    state: &AppState,
    user_id: &str,
    id: &str,
    req: Append,
    body: &mut Option<rocket::Data<'_>>,
) -> Result<Progress, ApiError> {
    let id = parse_id(id)?;
    // Ownership before the turn: taking it stops the request that holds it.
    find(state, user_id, &id).await?;
    let mut turn = state.uploads.take_turn(&id).await;
    let mut upload = find(state, user_id, &id).await?;
    let max = state.config.max_upload_size;

    if upload.is_complete() {
        // A retried completion with nothing more to add answers what the first one did.
        if req.offset == upload.received && req.content_length.unwrap_or(0) == 0 {
            return settle(state, &mut turn, upload).await;
        }
        return Err(conflict(upload.received).with_header("Upload-Complete", "?1"));
    }
    if req.offset != upload.received {
        return Err(conflict(upload.received));
    }
    if let Some(length) = req.length {
        if upload.length.is_some_and(|known| known != length) {
            return Err(ApiError::bad_request(format!(
                "the upload's length is {}; it cannot change",
                upload.length.unwrap_or_default()
            )));
        }
        if length < upload.received {
            return Err(ApiError::bad_request("the length is less than the bytes already received"));
        }
        if length > max {
            return Err(ingest::too_large(max));
        }
        upload.length = Some(length);
    }
    if let (true, Some(content_length)) = (req.last, req.content_length) {
        let total = upload.received.saturating_add(content_length);
        if upload.length.is_some_and(|known| known != total) {
            return Err(ApiError::bad_request("Upload-Length and the request's length disagree"));
        }
        upload.length = Some(total);
    }
    let budget = ingest::space_budget(state).await?;
    let room = upload.length.unwrap_or(max).min(max);
    if let Some(content_length) = req.content_length
        && upload.received.saturating_add(content_length) > room
    {
        return Err(past_limit(upload.length, max));
    }
    if req.content_length.unwrap_or(0) > budget {
        return Err(storage::insufficient_storage());
    }
    let limit = room.min(upload.received.saturating_add(budget));

    let received_before = upload.received;
    let mut ended = Ended::Done;
    if let Some(data) = body.take() {
        let body = data.open((limit - upload.received + 1).bytes());
        ended = stream_body(state, &mut turn, &mut upload, req.checksum, body, limit).await?;
    }
    let now = state.clock.now_ms();
    upload.updated_at = now;
    upload.expires_at = now + state.config.upload_expire_ms();
    if !save(state, &upload, true).await? {
        return Err(not_found());
    }
    match ended {
        Ended::Done => {}
        Ended::Superseded => return Ok(Progress { upload, recording: None, completed_now: false }),
        Ended::Failed(StreamError::NotAudio) => {
            drop_upload(state, &upload.id).await?;
            return Err(ingest::not_audio());
        }
        Ended::Failed(StreamError::TooLarge) if received_before + budget < room => {
            return Err(storage::insufficient_storage());
        }
        Ended::Failed(StreamError::TooLarge) => return Err(past_limit(upload.length, max)),
        Ended::Failed(e) => return Err(ingest::stream_error(e, max, budget, upload.received)),
    }
    if req.last {
        if upload.received == 0 {
            return Err(ingest::empty_body());
        }
        upload.length = Some(upload.received);
    }
    settle(state, &mut turn, upload).await
}

fn past_limit(length: Option<u64>, max: u64) -> ApiError {
    match length {
        Some(length) if length < max => {
            ApiError::payload_too_large(format!("the request goes past the upload's length, {length} bytes"))
        }
        _ => ingest::too_large(max),
    }
}

/// Reads a request's body into the upload's file. Returns how it ended; `upload.received` is
/// then the durable offset (bytes of a refused request or of a failed checksum are cut off).
async fn stream_body(
    state: &AppState,
    turn: &mut Turn,
    upload: &mut Upload,
    checksum: Option<(Checksum, Vec<u8>)>,
    body: DataStream<'_>,
    limit: u64,
) -> Result<Ended, ApiError> {
    let start = upload.received;
    let path = state.storage.upload_path(&upload.id);
    // Open at the durable offset, cutting off anything a crash left past it; keep the first
    // bytes for the audio check.
    let (file, head) = blocking(move || {
        let open = || -> std::io::Result<(File, Vec<u8>)> {
            let mut file = std::fs::OpenOptions::new().read(true).write(true).open(&path)?;
            file.set_len(start)?;
            let mut head = vec![0u8; (start as usize).min(storage::HEAD_LEN)];
            std::io::Read::read_exact(&mut file, &mut head)?;
            file.seek(SeekFrom::Start(start))?;
            Ok((file, head))
        };
        open().map_err(|e| ApiError::internal(&format!("open {}", path.display()), e))
    })
    .await?;
    let hasher = turn.hasher_at(start);
    let (check, expected) = match checksum {
        Some((check, expected)) => (Some(check), Some(expected)),
        None => (None, None),
    };
    let verified = check.is_some();
    let mut writer =
        storage::Upload::resume(&state.storage, file, start, head, hasher.clone(), check, ingest::head_is_plausible);
    let mut body = body;
    let mut durable = start;
    let ended = loop {
        let read = tokio::select! {
            biased;
            () = turn.superseded() => break Ended::Superseded,
            read = body.read_buf(writer.spare()) => read,
        };
        match read {
            Ok(0) => break Ended::Done,
            Ok(n) => {
                if let Err(e) = writer.took(n, limit).await {
                    break Ended::Failed(e);
                }
            }
            Err(e) => break Ended::Failed(StreamError::Client(e)),
        }
        // Bytes under a checksum are not kept until the checksum is checked.
        if !verified && writer.size() - durable >= CHECKPOINT {
            if let Err(e) = writer.sync().await {
                break Ended::Failed(StreamError::Disk(e));
            }
            durable = writer.size();
            upload.received = durable;
            upload.updated_at = state.clock.now_ms();
            if !save(state, upload, false).await? {
                return Err(not_found());
            }
        }
    };
    // Refused mid-body (not audio, too long): read on through (a bounded amount of) what the
    // client is still sending, so it reads the refusal instead of a reset connection, which a
    // client would take for a network error and retry.
    if matches!(ended, Ended::Failed(StreamError::NotAudio | StreamError::TooLarge)) {
        let _ = tokio::io::copy(&mut (&mut body).take(DRAIN_ON_REFUSAL), &mut tokio::io::sink()).await;
    }
    // What to keep: a refused request keeps nothing of its own; a broken or stopped one keeps
    // what arrived (unless a checksum cannot vouch for it).
    let keep_all = match &ended {
        Ended::Done => true,
        Ended::Superseded | Ended::Failed(StreamError::Client(_)) => !verified,
        Ended::Failed(_) => false,
    };
    if keep_all {
        match writer.close().await {
            Ok(appended) => {
                let mismatch = match (appended.check, &expected) {
                    (Some(check), Some(expected)) => check.finalize() != *expected,
                    _ => false,
                };
                if mismatch && matches!(ended, Ended::Done) {
                    cut_back(state, &upload.id, durable).await?;
                    turn.live.hashed = if durable == start { hasher.map(|h| (start, h)) } else { None };
                    upload.received = durable;
                    return Err(checksum_mismatch());
                }
                upload.received = appended.size;
                turn.live.hashed = appended.hasher.map(|h| (appended.size, h));
                Ok(ended)
            }
            // The bytes since the last durable point are lost; the offset stays there.
            Err(e) => {
                log::warn!("upload {}: keeping {durable} bytes after a write failure", upload.id);
                upload.received = durable;
                Ok(Ended::Failed(StreamError::Disk(e)))
            }
        }
    } else {
        drop(writer);
        cut_back(state, &upload.id, durable).await?;
        turn.live.hashed = if durable == start { hasher.map(|h| (start, h)) } else { None };
        upload.received = durable;
        Ok(ended)
    }
}

pub fn checksum_mismatch() -> ApiError {
    ApiError::new(
        Status::new(460),
        "checksum_mismatch",
        "Upload-Checksum does not match the request's bytes; they were dropped, send them again",
    )
}

/// Cuts an upload's file back to its durable offset.
async fn cut_back(state: &AppState, id: &str, len: u64) -> Result<(), ApiError> {
    let path = state.storage.upload_path(id);
    blocking(move || {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(len))
            .map_err(|e| ApiError::internal(&format!("truncate {}", path.display()), e))
    })
    .await
}

/// Stores a complete upload as a recording (the caller holds its turn).
async fn complete(state: &AppState, turn: &mut Turn, upload: Upload) -> Result<Progress, ApiError> {
    let hasher = turn.hasher_at(upload.received);
    let (db, storage, now) = (state.db.clone(), state.storage.clone(), state.clock.now_ms());
    let row = upload.clone();
    let stored = blocking(move || store(&db, &storage, &row, hasher, now, None)).await;
    match stored {
        Ok(Some(recording)) => {
            state.metrics.uploaded(recording.size.max(0) as u64);
            state.jobs.wake();
            state.changes.user(&upload.user_id);
            state.uploads.forget(&upload.id);
            let mut upload = upload;
            upload.recording_id = Some(recording.id.clone());
            Ok(Progress { upload, recording: Some(recording), completed_now: true })
        }
        // Someone else stored it first (cannot happen while we hold the turn, but the row says).
        Ok(None) => {
            let fresh = find(state, &upload.user_id, &upload.id).await?;
            let recording = recording_of(state, &fresh).await?;
            Ok(Progress { upload: fresh, recording, completed_now: false })
        }
        Err(e) if e.code == "unsupported_media_type" => {
            drop_upload(state, &upload.id).await?;
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// The blocking part of completion: hash (unless known), then [`ingest::record`] with the
/// upload marked complete in the recording's transaction. `Ok(None)`: it was already complete.
/// With `expired_before`, only an upload still expired and unchanged is stored (the sweep).
fn store(
    db: &Db,
    storage: &Storage,
    upload: &Upload,
    hasher: Option<Sha256>,
    now: i64,
    expired_before: Option<i64>,
) -> Result<Option<Recording>, ApiError> {
    use sha2::Digest as _;
    let path = storage.upload_path(&upload.id);
    let size = std::fs::metadata(&path).map_err(|e| ApiError::internal("upload file", e))?.len();
    if size != upload.received {
        return Err(ApiError::internal(
            "completing upload",
            format!("{} holds {size} bytes, {} expected", path.display(), upload.received),
        ));
    }
    let sha256 = match hasher {
        Some(hasher) => storage::hex(&hasher.finalize()),
        None => storage::hash_file(&path).map_err(|e| ApiError::internal("hashing upload", e))?,
    };
    let draft = Draft {
        user_id: upload.user_id.clone(),
        name: upload.name.clone(),
        recorded_at: upload.recorded_at,
        idempotency_key: upload.idempotency_key.clone(),
        file_name: false,
        streamed: None,
    };
    // A completed upload stays findable as long as an incomplete one would have.
    let keep_until = now + (upload.expires_at - upload.updated_at).max(3_600_000);
    let mut conn = db.conn()?;
    let mut mark = |tx: &rusqlite::Transaction<'_>, recording: &Recording| -> Result<bool, ApiError> {
        let changed = tx.execute(
            "UPDATE uploads SET recording_id = ?1, completed_at = ?2, expires_at = ?3, length = ?4
             WHERE id = ?5 AND recording_id IS NULL AND received = ?4 AND (?6 IS NULL OR expires_at <= ?6)",
            params![recording.id, now, keep_until, upload.received as i64, upload.id, expired_before],
        )?;
        Ok(changed == 1)
    };
    let stored = ingest::record(&mut conn, storage, now, &path, size, sha256, Place::Link, &draft, &mut mark)?;
    match stored {
        Stored::Created(recording) => {
            remove_file(storage, &upload.id);
            Ok(Some(recording))
        }
        // The same idempotency key made a recording already (a retried creation): this upload
        // is that one, and its own bytes are not kept twice.
        Stored::Existing(existing) => {
            conn.execute(
                "UPDATE uploads SET recording_id = ?1, completed_at = ?2, expires_at = ?3
                 WHERE id = ?4 AND recording_id IS NULL",
                params![existing.id, now, keep_until, upload.id],
            )?;
            remove_file(storage, &upload.id);
            Ok(Some(existing))
        }
        Stored::Declined => Ok(None),
    }
}

// ---------------------------------------------------------------------------------------------
// Startup and the sweep.

/// At startup: removes upload files without an incomplete upload, and cuts every upload's file
/// back to its durable offset. Blocking.
pub fn recover(db: &Db, storage: &Storage) -> Result<(), ApiError> {
    let conn = db.conn()?;
    let mut open: HashMap<String, u64> = HashMap::new();
    {
        let mut stmt = conn.prepare("SELECT id, received FROM uploads WHERE recording_id IS NULL")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (id, received) = row?;
            open.insert(id, received.max(0) as u64);
        }
    }
    let listing = |e| ApiError::internal("listing uploads/", e);
    for entry in std::fs::read_dir(storage.uploads_dir()).map_err(listing)? {
        let entry = entry.map_err(listing)?;
        let name = entry.file_name().to_string_lossy().to_string();
        if !open.contains_key(&name) {
            remove_file(storage, &name);
        }
    }
    for (id, received) in open {
        let path = storage.upload_path(&id);
        match std::fs::metadata(&path) {
            Ok(meta) if meta.len() > received => {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(received))
                    .map_err(|e| ApiError::internal(&format!("truncate {}", path.display()), e))?;
            }
            Ok(meta) if meta.len() == received => {}
            found => {
                // The file lost bytes it had acknowledged (or is gone): the disk failed under us.
                // Invalidate the upload rather than report an offset that is not there.
                log::error!(
                    "upload {id}: its file does not hold the {received} bytes acknowledged ({found:?}); removing it"
                );
                delete_row(&conn, &id)?;
                remove_file(storage, &id);
            }
        }
    }
    Ok(())
}

/// What one sweep of uploads did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Incomplete uploads removed.
    pub expired: usize,
    /// Incomplete `keep_partial` uploads stored as recordings.
    pub kept: usize,
}

/// Removes expired uploads; an expired `keep_partial` upload whose bytes are audio becomes a
/// recording instead. Uploads a request is working on are left for the next sweep. Blocking.
pub fn sweep(db: &Db, storage: &Storage, registry: &Registry, now: i64) -> Result<Swept, ApiError> {
    let mut swept = Swept::default();
    let expired: Vec<Upload> = {
        let conn = db.conn()?;
        let sql = format!("SELECT {COLUMNS} FROM uploads WHERE expires_at <= ?1 ORDER BY expires_at LIMIT 1000");
        let mut stmt = conn.prepare(&sql)?;
        stmt.query_map([now], from_row)?.collect::<Result<_, _>>()?
    };
    for upload in expired {
        let Some(_turn) = registry.try_turn(&upload.id) else { continue };
        if upload.keep_partial && !upload.is_complete() && upload.received > 0 {
            match store(db, storage, &upload, None, now, Some(now)) {
                Ok(Some(recording)) => {
                    log::info!(
                        "upload {} expired; its {} bytes were kept as recording {}",
                        upload.id,
                        upload.received,
                        recording.id
                    );
                    swept.kept += 1;
                    registry.forget(&upload.id);
                    continue;
                }
                Ok(None) => continue,
                Err(e) => log::info!("expired upload {} is not kept: {}", upload.id, e.message),
            }
        }
        let conn = db.conn()?;
        let removed =
            conn.execute("DELETE FROM uploads WHERE id = ?1 AND expires_at <= ?2", params![upload.id, now])?;
        if removed == 1 {
            remove_file(storage, &upload.id);
            registry.forget(&upload.id);
            if !upload.is_complete() {
                swept.expired += 1;
            }
        }
    }
    Ok(swept)
}
