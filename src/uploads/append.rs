//! A request's bytes appended durably, and the recording stored when they are the last.

use super::registry::Turn;
use super::resource::{Progress, drop_upload, find, parse_id, recording_of, remove_file, save};
use super::rows::{Upload, conflict, not_found};
use crate::body::Body;
use crate::db::{Db, blocking};
use crate::error::Error;
use crate::ingest::{self, Draft, Place, Stored};
use crate::recordings::Recording;
use crate::state::AppState;
use crate::storage::{self, Checksum, Storage, StreamError};
use rusqlite::params;
use sha2::Sha256;
use std::fs::File;
use std::io::{Seek, SeekFrom};
use tokio::io::AsyncReadExt;

/// Inside one long request, the file is fsynced and the offset moved forward every this many
/// bytes: a connection that breaks keeps everything up to the last such point.
pub(super) const CHECKPOINT: u64 = 16 << 20;
/// How much of a refused request's body is read and dropped before answering (a client's
/// resumable chunk is typically up to 8 MiB).
pub(super) const DRAIN_ON_REFUSAL: u64 = 16 << 20;

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
pub(super) enum Ended {
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
    body: Option<impl Body>,
) -> Result<Progress, Error> {
    let mut body = body;
    let result = append_body(state, user_id, id, req, &mut body).await;
    if result.is_err()
        && let Some(data) = body.take()
    {
        // Refused before reading: read (a bounded amount of) what the client is sending, so a
        // small request sees the answer instead of a connection reset.
        crate::body::discard(data).await;
    }
    result
}

pub(super) async fn append_body(
    state: &AppState,
    user_id: &str,
    id: &str,
    req: Append,
    body: &mut Option<impl Body>,
) -> Result<Progress, Error> {
    let id = parse_id(id)?;
    // Ownership before the turn: taking it stops the request that holds it.
    find(state, user_id, &id).await?;
    let mut turn = state.uploads.take_turn(&id).await;
    let mut upload = find(state, user_id, &id).await?;
    let max = state.config.storage.max_upload_size;

    if upload.is_complete() {
        // A retried completion with nothing more to add answers what the first one did.
        if req.offset == upload.received && req.content_length.unwrap_or(0) == 0 {
            return settle(state, &mut turn, upload).await;
        }
        return Err(Error::OffsetMismatch { offset: upload.received, complete: true });
    }
    if req.offset != upload.received {
        return Err(conflict(upload.received));
    }
    if let Some(length) = req.length {
        if upload.length.is_some_and(|known| known != length) {
            return Err(Error::invalid(format!(
                "the upload's length is {}; it cannot change",
                upload.length.unwrap_or_default()
            )));
        }
        if length < upload.received {
            return Err(Error::invalid("the length is less than the bytes already received"));
        }
        if length > max {
            return Err(ingest::too_large(max));
        }
        upload.length = Some(length);
    }
    if let (true, Some(content_length)) = (req.last, req.content_length) {
        let total = upload.received.saturating_add(content_length);
        if upload.length.is_some_and(|known| known != total) {
            return Err(Error::invalid("Upload-Length and the request's length disagree"));
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
        let body = data.open(limit - upload.received + 1);
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

pub(super) fn past_limit(length: Option<u64>, max: u64) -> Error {
    match length {
        Some(length) if length < max => {
            Error::too_large(format!("the request goes past the upload's length, {length} bytes"))
        }
        _ => ingest::too_large(max),
    }
}

/// Reads a request's body into the upload's file. Returns how it ended; `upload.received` is
/// then the durable offset (bytes of a refused request or of a failed checksum are cut off).
pub(super) async fn stream_body(
    state: &AppState,
    turn: &mut Turn,
    upload: &mut Upload,
    checksum: Option<(Checksum, Vec<u8>)>,
    body: impl tokio::io::AsyncRead + Unpin + Send,
    limit: u64,
) -> Result<Ended, Error> {
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
        open().map_err(|e| Error::internal(&format!("open {}", path.display()), e))
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

pub fn checksum_mismatch() -> Error {
    Error::ChecksumMismatch
}

/// Cuts an upload's file back to its durable offset.
pub(super) async fn cut_back(state: &AppState, id: &str, len: u64) -> Result<(), Error> {
    let path = state.storage.upload_path(id);
    blocking(move || {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(len))
            .map_err(|e| Error::internal(&format!("truncate {}", path.display()), e))
    })
    .await
}

/// Stores a complete upload as a recording (the caller holds its turn).
pub(super) async fn complete(state: &AppState, turn: &mut Turn, upload: Upload) -> Result<Progress, Error> {
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
        Err(e @ Error::NotAudio(_)) => {
            drop_upload(state, &upload.id).await?;
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// The blocking part of completion: hash (unless known), then [`ingest::record`] with the
/// upload marked complete in the recording's transaction. `Ok(None)`: it was already complete.
/// With `expired_before`, only an upload still expired and unchanged is stored (the sweep).
pub(super) fn store(
    db: &Db,
    storage: &Storage,
    upload: &Upload,
    hasher: Option<Sha256>,
    now: i64,
    expired_before: Option<i64>,
) -> Result<Option<Recording>, Error> {
    use sha2::Digest as _;
    let path = storage.upload_path(&upload.id);
    let size = std::fs::metadata(&path).map_err(|e| Error::internal("upload file", e))?.len();
    if size != upload.received {
        return Err(Error::internal(
            "completing upload",
            format!("{} holds {size} bytes, {} expected", path.display(), upload.received),
        ));
    }
    let sha256 = match hasher {
        Some(hasher) => storage::hex(&hasher.finalize()),
        None => storage::hash_file(&path).map_err(|e| Error::internal("hashing upload", e))?,
    };
    let draft = Draft {
        user_id: upload.user_id.clone(),
        name: upload.name.clone(),
        recorded_at: upload.recorded_at,
        idempotency_key: upload.idempotency_key.clone(),
        file_name: false,
        streamed: None,
        marks: upload.marks.clone(),
    };
    // A completed upload stays findable as long as an incomplete one would have.
    let keep_until = now + (upload.expires_at - upload.updated_at).max(3_600_000);
    let mut conn = db.conn()?;
    let mut mark = |tx: &rusqlite::Transaction<'_>, recording: &Recording| -> Result<bool, Error> {
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

/// Takes the upload's turn (stopping an older request on it) and answers where it stands; an
/// upload whose last byte is durable but was not yet stored (a crash in between) is stored now.
pub async fn status(state: &AppState, user_id: &str, id: &str) -> Result<Progress, Error> {
    let id = parse_id(id)?;
    // Whose upload it is, first: another user's request must not stop the owner's.
    find(state, user_id, &id).await?;
    let mut turn = state.uploads.take_turn(&id).await;
    let upload = find(state, user_id, &id).await?;
    settle(state, &mut turn, upload).await
}

async fn settle(state: &AppState, turn: &mut Turn, upload: Upload) -> Result<Progress, Error> {
    if upload.is_complete() {
        let recording = recording_of(state, &upload).await?;
        return Ok(Progress { upload, recording, completed_now: false });
    }
    if upload.length == Some(upload.received) && upload.received > 0 {
        return complete(state, turn, upload).await;
    }
    Ok(Progress { upload, recording: None, completed_now: false })
}
