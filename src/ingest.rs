//! The one way a recording comes in: stream → sniff → hash → durable bytes → row, exactly once.
//!
//! A one-shot upload (`POST /api/v1/recordings`, raw or multipart, and the original app's
//! `PUT /upload/record/{name}`) streams into `tmp/` here and is stored by [`record`]. A resumable
//! upload (tus, the IETF draft; see `uploads.rs`) appends to its own file request by request and
//! is stored by the same [`record`] when its last byte arrives. Nothing else creates recordings.

use crate::audio::{self, Sniff};
use crate::body::{Body, discard};
use crate::clock::{name_stamp, parse_rfc3339};
use crate::db::blocking;
use crate::error::Error;
use crate::recordings::{self as rec, NewRecording, Recording};
use crate::state::AppState;
use crate::storage::{self, Storage, StreamError, Upload, sync_dir};
use rusqlite::{Connection, OptionalExtension as _, Transaction};
use std::path::Path;
use tokio_util::io::ReaderStream;
use uuid::Uuid;

/// What the client said about a one-shot upload, besides its bytes.
#[derive(Debug, Default, Clone)]
pub struct UploadHeaders {
    pub content_type: Option<String>,
    pub content_length: Option<u64>,
    pub idempotency_key: Option<String>,
    /// `X-Recording-Marks`: moments marked while recording, to become bookmarks.
    pub marks: Option<String>,
}

/// The metadata a new recording starts from; the server adds the rest from the bytes.
#[derive(Debug, Clone)]
pub struct Draft {
    pub user_id: String,
    /// Normalised; `None`: named from the time and the detected container.
    pub name: Option<String>,
    pub recorded_at: Option<i64>,
    pub idempotency_key: Option<String>,
    /// The name is a file name (WebDAV): the same bytes under the same name are the recording
    /// already there (nothing new is stored), and other bytes under a taken name get the next
    /// free ` (2)` suffix instead of a second file of that name. Decided in the row's
    /// transaction, so racing uploads cannot both take one name.
    pub file_name: bool,
    /// The bytes already streamed to the current store under this recording id while they
    /// arrived (see [`crate::storage::Finished::object`]); `None`: `record` puts them there.
    pub streamed: Option<Uuid>,
    /// Marks made while recording (milliseconds): bookmarks in the row's transaction.
    pub marks: Vec<i64>,
}

/// How finished bytes become a recording's: a one-shot upload's temp file is moved (renamed
/// into place on disk), a resumable upload's file is kept until the row is committed (hard-linked
/// on disk), so its bytes survive a crash between the store and the row.
pub use crate::storage::store::Place;

/// What [`record`] did.
#[derive(Debug)]
pub enum Stored {
    Created(Recording),
    /// An earlier upload with the same idempotency key, or (for a file name) the same bytes
    /// already under that name; nothing new was stored.
    Existing(Recording),
    /// The caller's own check in the transaction said no; nothing was stored.
    Declined,
}

pub fn not_audio() -> Error {
    Error::not_audio(
        "that is not a recognised audio file (wav, mp3, m4a/mp4/3gp, aac, ogg/opus, webm, flac, amr, caf, aiff)",
    )
}

/// The first bytes decide early whether to keep reading.
pub fn head_is_plausible(head: &[u8]) -> bool {
    !matches!(audio::sniff(head, false), Sniff::NotAudio)
}

pub fn parse_recorded_at(text: &str) -> Result<i64, Error> {
    parse_rfc3339(text).ok_or_else(|| Error::invalid("`recorded_at` must be an RFC 3339 timestamp"))
}

pub fn too_large(max: u64) -> Error {
    Error::too_large(format!("uploads are at most {max} bytes"))
}

pub fn empty_body() -> Error {
    Error::rule("empty_body", "the upload has no bytes")
}

/// Bytes an upload may still take without leaving less than `storage.min_free_space`.
pub async fn space_budget(state: &AppState) -> Result<u64, Error> {
    let storage = state.storage.clone();
    let available = blocking(move || storage.available_space().map_err(|e| Error::internal("free space", e))).await?;
    Ok(available.saturating_sub(state.config.storage.min_free_space))
}

/// Detects the container of fsynced bytes at `file`, puts them in place as a new recording's file
/// and inserts its row; `also` runs in the row's transaction and may decline (then nothing is
/// kept). Not audio: 415, and `file` is left to the caller. Blocking.
#[allow(clippy::too_many_arguments)]
pub fn record(
    conn: &mut Connection,
    storage: &Storage,
    now: i64,
    file: &Path,
    size: u64,
    sha256: String,
    place: Place,
    draft: &Draft,
    also: &mut dyn FnMut(&Transaction<'_>, &Recording) -> Result<bool, Error>,
) -> Result<Stored, Error> {
    let store = storage.current();
    let backend = store.backend();
    let detected =
        audio::detect(file).map_err(|e| Error::internal("reading upload", e)).and_then(|d| d.ok_or_else(not_audio));
    let detected = match detected {
        Ok(detected) => detected,
        Err(e) => {
            if let Some(id) = draft.streamed {
                forget(conn, store, &id, &format!("an upload refused as {}", e.code()));
            }
            return Err(e);
        }
    };
    let id = match draft.streamed {
        Some(id) => {
            // Already in the store: a one-shot upload's temp file has done its job.
            if place == Place::Move
                && let Err(e) = std::fs::remove_file(file)
            {
                log::warn!("cannot remove {}: {e}", file.display());
            }
            id
        }
        None => {
            let id = Uuid::now_v7();
            // Noted before the bytes are in place: only this note lets a sweep delete them if
            // the row never arrives.
            crate::inflight::note(conn, &id, backend, crate::inflight::Kind::New, now)?;
            let keep = keep_for(conn, &draft.user_id, draft.name.as_deref(), draft.recorded_at, now)?;
            if let Err(e) = store.put_file(file, &id, place, keep.as_ref()) {
                forget(conn, store, &id, "a failed store");
                return Err(e.api("storing an upload"));
            }
            id
        }
    };
    let name = draft.name.clone().unwrap_or_else(|| {
        format!("Recording {}.{}", name_stamp(draft.recorded_at.unwrap_or(now)), detected.container.ext)
    });
    let new = NewRecording {
        id,
        user_id: draft.user_id.clone(),
        name,
        content_type: detected.container.content_type.to_string(),
        size: size as i64,
        sha256,
        duration_ms: detected.duration_ms,
        recorded_at: draft.recorded_at,
        created_at: now,
        idempotency_key: draft.idempotency_key.clone(),
        store: store.backend(),
    };
    let stored = insert_durably(conn, new, draft.file_name, &draft.marks, also);
    if !matches!(stored, Ok(Stored::Created(_))) {
        forget(conn, store, &id, "an upload that made no recording");
    }
    stored
}

/// Deletes the bytes this process stored under a new id that no row took, then their in-flight
/// note (kept when the delete fails: the next start finishes it).
fn forget(conn: &Connection, store: &dyn crate::storage::store::Store, id: &Uuid, what: &str) {
    match store.delete(id) {
        Ok(()) => {
            if let Err(e) = crate::inflight::clear(conn, id, store.backend()) {
                log::warn!("cannot clear the in-flight note of {id}: {}", e);
            }
        }
        Err(e) => {
            log::warn!("{what} left bytes for {id} in {} ({e}); they are removed at the next start", store.describe())
        }
    }
}

/// What a new recording's bytes keep for recovery: owner, name and times.
pub fn keep_for(
    conn: &Connection,
    user_id: &str,
    name: Option<&str>,
    recorded_at: Option<i64>,
    now: i64,
) -> Result<Option<crate::storage::store::Keep>, Error> {
    let owner: Option<String> = conn
        .prepare_cached("SELECT username FROM users WHERE id = ?1")?
        .query_row([user_id], |r| r.get(0))
        .optional()?;
    Ok(owner.map(|owner| crate::storage::store::Keep {
        owner,
        user_id: user_id.to_string(),
        name: name.map(str::to_string),
        recorded_at,
        created_at: now,
    }))
}

/// Starts an upload's temp file. When the object store is the current store the bytes also
/// stream there as they arrive, under a new id noted in flight first.
pub async fn start_upload(
    state: &AppState,
    user_id: &str,
    name: Option<&str>,
    recorded_at: Option<i64>,
) -> Result<Upload, Error> {
    let stream_as = if state.storage.streams() {
        let id = Uuid::now_v7();
        let (db, user, name, now) =
            (state.db.clone(), user_id.to_string(), name.map(str::to_string), state.clock.now_ms());
        let keep = blocking(move || {
            let conn = db.conn()?;
            crate::inflight::note(&conn, &id, crate::storage::store::Backend::S3, crate::inflight::Kind::New, now)?;
            keep_for(&conn, &user, name.as_deref(), recorded_at, now)
        })
        .await?;
        Some((id, keep))
    } else {
        None
    };
    Upload::start(&state.storage, head_is_plausible, stream_as).await
}

/// The row and the caller's own change in one transaction, flushed through the WAL at once: an
/// acknowledged upload survives power loss, not just a crash.
pub(crate) fn insert_durably(
    conn: &mut Connection,
    mut new: NewRecording,
    file_name: bool,
    marks: &[i64],
    also: &mut dyn FnMut(&Transaction<'_>, &Recording) -> Result<bool, Error>,
) -> Result<Stored, Error> {
    crate::db::durably(conn, |conn| {
        // The write lock from the start: a name chosen here is still free at the insert.
        let tx = rec::write_transaction(conn)?;
        if file_name {
            if let Some(same) = rec::live_by_name(&tx, &new.user_id, &new.name)?
                .into_iter()
                .find(|r| r.sha256 == new.sha256 && r.size == new.size)
            {
                return Ok(Stored::Existing(same));
            }
            new.name = rec::free_name(&tx, &new.user_id, &new.name)?;
        }
        let stored = match rec::insert_in(&tx, &new)? {
            Ok(recording) if also(&tx, &recording)? => {
                crate::bookmarks::add_marks(&tx, &recording.id, marks, new.created_at)?;
                let recording = Recording { bookmarks: marks.len() as i64, ..recording };
                // The bytes have their row: no longer in flight.
                crate::inflight::clear(&tx, &new.id, new.store)?;
                // Its analysis is queued with it: no recording is ever stored without its job.
                // (The row was inserted `pending`, so the recording read back is current.)
                crate::jobs::enqueue(&tx, crate::jobs::ANALYSIS, &recording.id, new.created_at)?;
                // With transcription on, it waits for its transcript from the start (the job is
                // queued when its analysis has finished).
                let transcribe = tx.execute(
                    "UPDATE recordings SET transcript = 'pending' WHERE id = ?1
                       AND EXISTS (SELECT 1 FROM settings WHERE key = 'transcription_on')",
                    [&recording.id],
                )? == 1;
                Stored::Created(Recording { transcript: if transcribe { "pending" } else { "off" }, ..recording })
            }
            Ok(_) => return Ok(Stored::Declined),
            Err(existing) => return Ok(Stored::Existing(existing)),
        };
        tx.commit()?;
        Ok(stored)
    })
}

/// Stores a one-shot upload: `POST /api/v1/recordings` (raw or multipart) and the original app's
/// `PUT`. 201 with the new recording, or 200 with the one an earlier retry created.
pub async fn one_shot(
    state: &AppState,
    user_id: &str,
    headers: &UploadHeaders,
    name: Option<String>,
    recorded_at: Option<String>,
    data: impl Body,
) -> Result<Received, Error> {
    let config = &state.config;
    let marks = match headers.marks.as_deref().map(crate::bookmarks::parse_marks).transpose() {
        Ok(marks) => marks.unwrap_or_default(),
        Err(e) => {
            discard(data).await;
            return Err(e);
        }
    };
    let checked = check_params(state, user_id, headers, name, recorded_at).await;
    let (mut name, mut recorded_at) = match checked {
        Ok(Ok(params)) => params,
        // Answered without storing the body: read (a bounded amount of) what the client is
        // sending first, so a small upload sees this answer instead of a connection reset.
        Ok(Err(existing)) => {
            discard(data).await;
            return Ok(Received { recording: existing, created: false });
        }
        Err(e) => {
            discard(data).await;
            return Err(e);
        }
    };
    let max = config.storage.max_upload_size;
    if headers.content_length.is_some_and(|len| len > max) {
        return Err(too_large(max));
    }
    let budget = space_budget(state).await?;
    if headers.content_length.unwrap_or(1) > budget {
        return Err(storage::insufficient_storage());
    }
    let limit = max.min(budget);

    let mut upload = start_upload(state, user_id, name.as_deref(), recorded_at).await?;
    let content_type = headers.content_type.clone().unwrap_or_default();
    let is_multipart = content_type.to_ascii_lowercase().starts_with("multipart/form-data");
    let streamed = if is_multipart {
        read_multipart(&mut upload, data, &content_type, limit).await
    } else {
        let mut body = data.open(limit + 1);
        upload.read_all(&mut body, limit).await.map(|()| BodyMeta::default())
    };
    let meta = streamed.map_err(|e| stream_error(e, max, budget, upload.size()))?;
    if let Some(text) = meta.recorded_at {
        recorded_at = Some(parse_recorded_at(&text)?);
    }
    if name.is_none()
        && let Some(n) = meta.name.as_deref().or(meta.filename.as_deref().map(base_name))
    {
        name = Some(rec::normalize_name(n)?);
    }
    if upload.size() == 0 {
        return Err(empty_body());
    }
    let mut finished = upload.finish().await?;
    let streamed = finished.object().await?;

    let draft = Draft {
        user_id: user_id.to_string(),
        name,
        recorded_at,
        idempotency_key: headers.idempotency_key.clone(),
        file_name: false,
        streamed,
        marks,
    };
    let (db, storage, now) = (state.db.clone(), state.storage.clone(), state.clock.now_ms());
    let temp_path = finished.temp.path().to_path_buf();
    let (size, sha256) = (finished.size, finished.sha256.clone());
    // Detect, move into place and insert in one trip to the blocking pool; a refusal leaves the
    // temp file to its drop guard.
    let stored = blocking(move || {
        let mut conn = db.conn()?;
        record(&mut conn, &storage, now, &temp_path, size, sha256, Place::Move, &draft, &mut |_, _| Ok(true))
    })
    .await;
    match stored? {
        Stored::Created(recording) => {
            finished.temp.disarm();
            state.jobs.wake();
            state.changes.user(user_id);
            state.metrics.uploaded(recording.size.max(0) as u64);
            Ok(Received { recording, created: true })
        }
        // Lost a race with the same Idempotency-Key: the first one stays.
        Stored::Existing(existing) => Ok(Received { recording: existing, created: false }),
        Stored::Declined => Err(Error::internal("one-shot upload", "declined without a check")),
    }
}

/// What a one-shot upload stored: a new recording, or the one an earlier retry created.
pub struct Received {
    pub recording: Recording,
    pub created: bool,
}

/// The recording an earlier upload with this idempotency key created, if any (the key is checked).
pub async fn earlier_upload(state: &AppState, user_id: &str, key: &str) -> Result<Option<Recording>, Error> {
    check_idempotency_key(key)?;
    let (user, key) = (user_id.to_string(), key.to_string());
    state.db.run(move |conn| rec::by_idempotency_key(conn, &user, &key)).await
}

fn check_idempotency_key(key: &str) -> Result<(), Error> {
    if (1..=128).contains(&key.len()) && key.bytes().all(|b| (0x20..0x7F).contains(&b)) {
        Ok(())
    } else {
        Err(Error::invalid("Idempotency-Key must be 1 to 128 printable ASCII characters"))
    }
}

/// Checks the query and headers; `Ok(Err(existing))` for a retry of a finished upload.
async fn check_params(
    state: &AppState,
    user_id: &str,
    headers: &UploadHeaders,
    name: Option<String>,
    recorded_at: Option<String>,
) -> Result<Result<(Option<String>, Option<i64>), Recording>, Error> {
    let name = name.map(|n| rec::normalize_name(&n)).transpose()?;
    let recorded_at = recorded_at.map(|t| parse_recorded_at(&t)).transpose()?;
    if let Some(key) = &headers.idempotency_key {
        check_idempotency_key(key)?;
        let (user, key) = (user_id.to_string(), key.clone());
        if let Some(existing) = state.db.run(move |conn| rec::by_idempotency_key(conn, &user, &key)).await? {
            return Ok(Err(existing));
        }
    }
    Ok(Ok((name, recorded_at)))
}

/// What an upload's body carried besides the bytes.
#[derive(Default)]
struct BodyMeta {
    filename: Option<String>,
    recorded_at: Option<String>,
    name: Option<String>,
}

/// The answer for a stream that ended early.
pub fn stream_error(e: StreamError, max: u64, budget: u64, size: u64) -> Error {
    match e {
        StreamError::TooLarge if size > budget && budget < max => storage::insufficient_storage(),
        StreamError::TooLarge => too_large(max),
        StreamError::NotAudio => not_audio(),
        StreamError::Client(e) => {
            log::info!("upload abandoned: {e}");
            Error::invalid("the upload ended before its body was complete")
        }
        StreamError::Disk(e) => e,
        StreamError::Malformed(why) => Error::invalid(why),
    }
}

/// A reader that counts the bytes read through it.
struct Counted<R> {
    inner: R,
    read: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Counted<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.read.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        poll
    }
}

async fn read_multipart(
    upload: &mut Upload,
    data: impl Body,
    content_type: &str,
    limit: u64,
) -> Result<BodyMeta, StreamError> {
    let boundary = multer::parse_boundary(content_type)
        .map_err(|_| StreamError::Malformed("the multipart Content-Type has no valid boundary"))?;
    // The file part may be `limit` bytes; the rest of the form gets 1 MiB. A body cut at that cap
    // is too large, not malformed.
    let cap = limit + (1 << 20);
    let read = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let body = Counted { inner: data.open(cap), read: read.clone() };
    let mut multipart = multer::Multipart::new(ReaderStream::with_capacity(body, 64 * 1024), boundary);
    let mut meta = BodyMeta::default();
    let mut got_file = false;
    let multer_err = |e: multer::Error| match e {
        multer::Error::StreamReadFailed(e) => StreamError::Client(std::io::Error::other(e)),
        // Whatever the parser says of a body cut at the cap, the body was too large.
        _ if read.load(std::sync::atomic::Ordering::Relaxed) >= cap => StreamError::TooLarge,
        other => {
            log::info!("malformed multipart upload: {other}");
            StreamError::Malformed("the multipart body is malformed or cut short")
        }
    };
    while let Some(mut field) = multipart.next_field().await.map_err(multer_err)? {
        match field.name() {
            Some("file") if !got_file => {
                got_file = true;
                meta.filename = field.file_name().map(str::to_string);
                while let Some(chunk) = field.chunk().await.map_err(multer_err)? {
                    upload.push(&chunk, limit).await?;
                }
            }
            Some(name @ ("recorded_at" | "name")) => {
                let name = name.to_string();
                let mut text = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(multer_err)? {
                    text.extend_from_slice(&chunk);
                    if text.len() > 4096 {
                        return Err(StreamError::Malformed("a text part of the form is over 4 KiB"));
                    }
                }
                let text = String::from_utf8_lossy(&text).to_string();
                if name == "name" { meta.name = Some(text) } else { meta.recorded_at = Some(text) }
            }
            _ => while field.chunk().await.map_err(multer_err)?.is_some() {},
        }
    }
    if !got_file {
        return Err(StreamError::Malformed("a multipart upload needs a `file` part"));
    }
    Ok(meta)
}

/// The last component of a client-side file name ("C:\fakepath\memo.m4a" → "memo.m4a").
pub fn base_name(filename: &str) -> &str {
    filename.rsplit(['/', '\\']).next().unwrap_or(filename)
}

/// Makes a new file's directory entry durable (used after creating an upload's file).
pub fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}
