//! `/api/v1/recordings`: streamed upload, list, get, rename, audio with Range, delete.

use super::{JsonBody, QueryOnce, Reply, etag_matches, flag, parse_limit};
use crate::audio::{self, Sniff};
use crate::auth::AuthUser;
use crate::clock::{http_date, name_stamp, parse_http_date, parse_rfc3339};
use crate::db::blocking;
use crate::error::ApiError;
use crate::recordings::{self as rec, ListQuery, NewRecording, Order, Purge, Recording};
use crate::state::AppState;
use crate::storage::{self, StreamError, Upload};
use rocket::data::{Data, ToByteUnit};
use rocket::http::{Header, Status};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::response::{self, Responder, Response};
use rocket::{State, delete, get, patch, post, routes};
use serde::Deserialize;
use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;
use uuid::Uuid;

/// Upload request headers.
pub struct UploadHeaders {
    content_type: Option<String>,
    content_length: Option<u64>,
    idempotency_key: Option<String>,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for UploadHeaders {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let h = req.headers();
        Outcome::Success(UploadHeaders {
            content_type: h.get_one("Content-Type").map(str::to_string),
            content_length: h.get_one("Content-Length").and_then(|v| v.trim().parse().ok()),
            idempotency_key: h.get_one("Idempotency-Key").map(str::to_string),
        })
    }
}

fn check_idempotency_key(key: &str) -> Result<(), ApiError> {
    if (1..=128).contains(&key.len()) && key.bytes().all(|b| (0x20..0x7F).contains(&b)) {
        Ok(())
    } else {
        Err(ApiError::bad_request("Idempotency-Key must be 1 to 128 printable ASCII characters"))
    }
}

fn not_audio() -> ApiError {
    ApiError::unsupported_media_type(
        "that is not a recognised audio file (wav, mp3, m4a/mp4/3gp, aac, ogg/opus, webm, flac, amr, caf, aiff)",
    )
}

/// The first bytes decide early whether to keep reading.
fn head_is_plausible(head: &[u8]) -> bool {
    !matches!(audio::sniff(head, false), Sniff::NotAudio)
}

/// What an upload's body carried besides the bytes.
#[derive(Default)]
struct BodyMeta {
    filename: Option<String>,
    recorded_at: Option<String>,
    name: Option<String>,
}

fn stream_error(e: StreamError, max: u64, budget: u64, size: u64) -> ApiError {
    match e {
        StreamError::TooLarge if size > budget && budget < max => storage::insufficient_storage(),
        StreamError::TooLarge => ApiError::payload_too_large(format!("uploads are at most {max} bytes")),
        StreamError::NotAudio => not_audio(),
        StreamError::Client(e) => {
            log::info!("upload abandoned: {e}");
            ApiError::bad_request("the upload ended before its body was complete")
        }
        StreamError::Disk(e) => e,
        StreamError::Malformed(why) => ApiError::bad_request(why),
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
    data: Data<'_>,
    content_type: &str,
    limit: u64,
) -> Result<BodyMeta, StreamError> {
    let boundary = multer::parse_boundary(content_type)
        .map_err(|_| StreamError::Malformed("the multipart Content-Type has no valid boundary"))?;
    // The file part may be `limit` bytes; the rest of the form gets 1 MiB. A body cut at that cap
    // is too large, not malformed.
    let cap = limit + (1 << 20);
    let read = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let body = Counted { inner: data.open(cap.bytes()), read: read.clone() };
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
fn base_name(filename: &str) -> &str {
    filename.rsplit(['/', '\\']).next().unwrap_or(filename)
}

/// Checks the query and headers; `Ok(Err(existing))` for a retry of a finished upload.
async fn check_upload_params(
    state: &AppState,
    user_id: &str,
    headers: &UploadHeaders,
    name: Option<String>,
    recorded_at: Option<String>,
) -> Result<Result<(Option<String>, Option<i64>), Recording>, ApiError> {
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

/// Stores an upload: shared by `/api/v1/recordings` and the original app's API.
pub async fn store_upload(
    state: &AppState,
    user_id: &str,
    headers: &UploadHeaders,
    name: Option<String>,
    recorded_at: Option<String>,
    data: Data<'_>,
) -> Result<(Status, Recording), ApiError> {
    let config = &state.config;
    let checked = check_upload_params(state, user_id, headers, name, recorded_at).await;
    let (mut name, mut recorded_at) = match checked {
        Ok(Ok(params)) => params,
        Ok(Err(existing)) => return Ok((Status::Ok, existing)),
        Err(e) => {
            // Read (a bounded amount of) what the client is sending, so a small upload sees
            // this answer instead of a connection reset.
            let _ = data.open(1.mebibytes()).stream_to(tokio::io::sink()).await;
            return Err(e);
        }
    };
    let max = config.max_upload_size;
    if headers.content_length.is_some_and(|len| len > max) {
        return Err(ApiError::payload_too_large(format!("uploads are at most {max} bytes")));
    }
    let storage_handle = state.storage.clone();
    let available =
        blocking(move || storage_handle.available_space().map_err(|e| ApiError::internal("free space", e))).await?;
    let budget = available.saturating_sub(config.min_free_space);
    if headers.content_length.unwrap_or(1) > budget {
        return Err(storage::insufficient_storage());
    }
    let limit = max.min(budget);

    let mut upload = Upload::start(&state.storage, head_is_plausible).await?;
    let content_type = headers.content_type.clone().unwrap_or_default();
    let is_multipart = content_type.to_ascii_lowercase().starts_with("multipart/form-data");
    let streamed = if is_multipart {
        read_multipart(&mut upload, data, &content_type, limit).await
    } else {
        let mut body = data.open((limit + 1).bytes());
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
        return Err(ApiError::new(Status::BadRequest, "empty_body", "the upload has no bytes"));
    }
    let finished = upload.finish().await?;

    let now = state.clock.now_ms();
    let id = Uuid::now_v7();
    // Detect the container and move the file into place in one trip to the blocking pool; a
    // refusal leaves the temp file to its drop guard.
    let (storage_handle, temp_path) = (state.storage.clone(), finished.temp.path().to_path_buf());
    let (detected, relative) = blocking(move || {
        let detected = audio::detect(&temp_path).map_err(|e| ApiError::internal("reading upload", e))?;
        let detected = detected.ok_or_else(not_audio)?;
        let relative = storage_handle.commit(&temp_path, &id).map_err(|e| ApiError::internal("storing upload", e))?;
        Ok((detected, relative))
    })
    .await?;
    let name = name
        .unwrap_or_else(|| format!("Recording {}.{}", name_stamp(recorded_at.unwrap_or(now)), detected.container.ext));
    finished.temp.disarm();

    let new = NewRecording {
        id,
        user_id: user_id.to_string(),
        name,
        content_type: detected.container.content_type.to_string(),
        size: finished.size as i64,
        sha256: finished.sha256,
        duration_ms: detected.duration_ms,
        recorded_at,
        created_at: now,
        idempotency_key: headers.idempotency_key.clone(),
    };
    let inserted = state.db.run(move |conn| rec::insert(conn, &new)).await;
    match inserted {
        Ok(Ok(recording)) => {
            state.metrics.uploaded(recording.size.max(0) as u64);
            Ok((Status::Created, recording))
        }
        Ok(Err(existing)) => {
            // Lost a race with the same Idempotency-Key: keep the first, drop this copy.
            remove_file(state, relative).await;
            Ok((Status::Ok, existing))
        }
        Err(e) => {
            remove_file(state, relative).await;
            Err(e)
        }
    }
}

async fn remove_file(state: &AppState, relative: String) {
    let storage = state.storage.clone();
    let removed = blocking(move || storage.unlink(&relative).map_err(|e| ApiError::internal("unlink", e))).await;
    if removed.is_err() {
        log::warn!("a file without a row was left behind; the next start removes it");
    }
}

fn parse_recorded_at(text: &str) -> Result<i64, ApiError> {
    parse_rfc3339(text).ok_or_else(|| ApiError::bad_request("`recorded_at` must be an RFC 3339 timestamp"))
}

fn created(recording: &Recording, status: Status) -> Result<Reply, ApiError> {
    Ok(Reply::json(status, recording)?.header("Location", format!("/api/v1/recordings/{}", recording.id)))
}

#[post("/recordings?<name>&<recorded_at>", data = "<data>")]
async fn upload(
    state: &State<AppState>,
    auth: AuthUser,
    _once: QueryOnce,
    headers: UploadHeaders,
    name: Option<String>,
    recorded_at: Option<String>,
    data: Data<'_>,
) -> Result<Reply, ApiError> {
    let (status, recording) = store_upload(state, &auth.user.id, &headers, name, recorded_at, data).await?;
    created(&recording, status)
}

#[get("/recordings?<limit>&<cursor>&<order>&<q>")]
async fn list(
    state: &State<AppState>,
    auth: AuthUser,
    _once: QueryOnce,
    limit: Option<&str>,
    cursor: Option<&str>,
    order: Option<&str>,
    q: Option<String>,
) -> Result<Reply, ApiError> {
    let query = ListQuery {
        limit: parse_limit(limit)?,
        after: cursor.filter(|c| !c.is_empty()).map(rec::decode_list_cursor).transpose()?,
        order: match order {
            None | Some("newest") => Order::Newest,
            Some("oldest") => Order::Oldest,
            Some(_) => return Err(ApiError::bad_request("`order` must be newest or oldest")),
        },
        q: q.filter(|q| !q.is_empty()),
    };
    let page = state.db.run(move |conn| rec::list(conn, &auth.user.id, &query)).await?;
    Reply::json(Status::Ok, &page)
}

/// One of the caller's recordings, or 404.
async fn find(state: &AppState, auth: &AuthUser, id: &str) -> Result<Recording, ApiError> {
    let id = rec::parse_id(id)?.hyphenated().to_string();
    let user_id = auth.user.id.clone();
    state.db.run(move |conn| rec::get(conn, &user_id, &id)).await?.ok_or_else(rec::not_found)
}

#[get("/recordings/<id>", rank = 2)]
async fn get_one(state: &State<AppState>, auth: AuthUser, id: &str) -> Result<Reply, ApiError> {
    Reply::json(Status::Ok, &find(state, &auth, id).await?)
}

#[derive(Deserialize)]
struct Rename {
    name: String,
}

#[patch("/recordings/<id>", data = "<body>")]
async fn rename(
    state: &State<AppState>,
    auth: AuthUser,
    id: &str,
    body: Result<JsonBody<Rename>, ApiError>,
) -> Result<Reply, ApiError> {
    let id = rec::parse_id(id)?.hyphenated().to_string();
    let name = rec::normalize_name(&body?.0.name)?;
    let recording = state.db.run(move |conn| rec::rename(conn, &auth.user.id, &id, &name)).await?;
    Reply::json(Status::Ok, &recording.ok_or_else(rec::not_found)?)
}

#[delete("/recordings/<id>?<permanent>")]
async fn delete_one(
    state: &State<AppState>,
    auth: AuthUser,
    _once: QueryOnce,
    id: &str,
    permanent: Option<&str>,
) -> Result<Reply, ApiError> {
    let id = rec::parse_id(id)?.hyphenated().to_string();
    if delete_recording(state, auth.user.id.clone(), id, flag(permanent)).await? {
        Ok(Reply::no_content())
    } else {
        Err(rec::not_found())
    }
}

/// Moves a recording to the trash, or deletes it now when asked or when there is no trash.
/// False when the user has no such recording.
pub async fn delete_recording(
    state: &AppState,
    user_id: String,
    id: String,
    permanent: bool,
) -> Result<bool, ApiError> {
    if permanent || state.config.retention_days == 0 {
        return Ok(purge(state, user_id, Purge::One(id)).await? > 0);
    }
    let now = state.clock.now_ms();
    let retention_ms = i64::from(state.config.retention_days) * 86_400_000;
    state.db.run(move |conn| rec::trash(conn, &user_id, &id, now, retention_ms)).await
}

/// Deletes now: rows and queued unlinks in one transaction, then the files. Returns how many.
pub async fn purge(state: &AppState, user_id: String, which: Purge) -> Result<usize, ApiError> {
    let (db, storage, now) = (state.db.clone(), state.storage.clone(), state.clock.now_ms());
    blocking(move || {
        let mut conn = db.conn()?;
        let paths = rec::queue_purge(&mut conn, &user_id, which, now)?;
        rec::finish_unlinks(&conn, &storage, &paths)?;
        Ok(paths.len())
    })
    .await
}

/// Conditional and range request headers.
pub struct RangeHeaders {
    range: Option<String>,
    if_range: Option<String>,
    if_none_match: Option<String>,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for RangeHeaders {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let h = req.headers();
        Outcome::Success(RangeHeaders {
            range: h.get_one("Range").map(str::to_string),
            if_range: h.get_one("If-Range").map(str::to_string),
            if_none_match: h.get_one("If-None-Match").map(str::to_string),
        })
    }
}

/// The byte range to send, from a `Range` header; `Err` for an unsatisfiable one, `Ok(None)` for
/// a missing, malformed or multi-range header (answered with the whole file).
fn parse_range(header: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = header.trim().strip_prefix("bytes=") else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((start, end)) = spec.trim().split_once('-') else { return Ok(None) };
    let (start, end) = (start.trim(), end.trim());
    let range = if start.is_empty() {
        let Ok(n) = end.parse::<u64>() else { return Ok(None) };
        if n == 0 || size == 0 {
            return Err(());
        }
        (size.saturating_sub(n), size - 1)
    } else {
        let Ok(start) = start.parse::<u64>() else { return Ok(None) };
        let end = if end.is_empty() {
            size.saturating_sub(1)
        } else {
            match end.parse::<u64>() {
                Ok(e) if e >= start => e.min(size.saturating_sub(1)),
                _ => return Ok(None),
            }
        };
        if start >= size {
            return Err(());
        }
        (start, end)
    };
    Ok(Some(range))
}

/// An audio file answer: headers decided up front, the body streamed from disk.
pub struct Audio {
    status: Status,
    headers: Vec<(&'static str, String)>,
    body: Option<(tokio::io::Take<tokio::fs::File>, u64)>,
}

impl<'r> Responder<'r, 'static> for Audio {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let mut response = Response::build();
        response.status(self.status);
        for (name, value) in self.headers {
            response.header(Header::new(name, value));
        }
        if let Some((body, len)) = self.body {
            response.raw_header("Content-Length", len.to_string());
            response.streamed_body(body);
            response.max_chunk_size(256 * 1024);
        }
        Ok(response.finalize())
    }
}

/// RFC 5987 `filename*` value and a plain-ASCII fallback.
pub fn content_disposition(kind: &str, name: &str) -> String {
    let fallback: String =
        name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[get("/recordings/<id>/audio?<download>")]
async fn get_audio(
    state: &State<AppState>,
    auth: AuthUser,
    _once: QueryOnce,
    id: &str,
    download: Option<&str>,
    conditions: RangeHeaders,
) -> Result<Audio, ApiError> {
    let recording = find(state, &auth, id).await?;
    serve_audio(state, &recording, flag(download), &conditions).await
}

/// Answers a recording's bytes, honouring Range, If-Range and If-None-Match.
pub async fn serve_audio(
    state: &AppState,
    recording: &Recording,
    download: bool,
    conditions: &RangeHeaders,
) -> Result<Audio, ApiError> {
    let size = recording.size as u64;
    let etag = format!("\"{}\"", recording.sha256);
    let last_modified = http_date(recording.created_ms);
    let mut headers = vec![
        ("Accept-Ranges", "bytes".to_string()),
        ("ETag", etag.clone()),
        ("Last-Modified", last_modified),
        ("Cache-Control", "private, max-age=0, must-revalidate".to_string()),
        ("Content-Security-Policy", "sandbox".to_string()),
    ];
    if conditions.if_none_match.as_deref().is_some_and(|h| etag_matches(h, &etag)) {
        return Ok(Audio { status: Status::NotModified, headers, body: None });
    }
    headers.push(("Content-Type", recording.content_type.clone()));
    headers.push((
        "Content-Disposition",
        content_disposition(if download { "attachment" } else { "inline" }, &recording.name),
    ));

    let range_applies = match conditions.if_range.as_deref() {
        None => true,
        Some(v) if v.trim().starts_with('"') || v.trim().starts_with("W/") => v.trim() == etag,
        Some(date) => parse_http_date(date).is_some_and(|t| t >= recording.created_ms / 1000 * 1000),
    };
    let range = match conditions.range.as_deref().filter(|_| range_applies) {
        None => None,
        Some(header) => match parse_range(header, size) {
            Ok(range) => range,
            Err(()) => {
                return Err(ApiError::new(
                    Status::RangeNotSatisfiable,
                    "range_not_satisfiable",
                    "the range is outside the file",
                )
                .with_header("Content-Range", format!("bytes */{size}")));
            }
        },
    };
    let (status, start, len) = match range {
        Some((start, end)) => {
            headers.push(("Content-Range", format!("bytes {start}-{end}/{size}")));
            (Status::PartialContent, start, end - start + 1)
        }
        None => (Status::Ok, 0, size),
    };
    let id = rec::parse_id(&recording.id)?;
    let path = state.storage.path(&crate::storage::Storage::relative_path(&id));
    let shown = recording.id.clone();
    // Open and seek in one trip to the blocking pool: a player sends a ranged request per seek.
    let file = blocking(move || {
        let opened = std::fs::File::open(&path).and_then(|mut f| {
            if start > 0 {
                std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(start))?;
            }
            Ok(f)
        });
        opened.map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                log::error!("recording {shown} has no file at {}; `recorder check` reports it", path.display());
                ApiError::not_found("the file of this recording is missing from the server")
            } else {
                ApiError::internal(&format!("open {}", path.display()), e)
            }
        })
    })
    .await?;
    let file = tokio::fs::File::from_std(file);
    Ok(Audio { status, headers, body: Some((file.take(len), len)) })
}

pub fn routes() -> Vec<rocket::Route> {
    routes![upload, list, get_one, rename, delete_one, get_audio]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_in_all_three_forms() {
        assert_eq!(parse_range("bytes=0-99", 1000), Ok(Some((0, 99))));
        assert_eq!(parse_range("bytes=900-", 1000), Ok(Some((900, 999))));
        assert_eq!(parse_range("bytes=-100", 1000), Ok(Some((900, 999))));
        assert_eq!(parse_range("bytes=990-2000", 1000), Ok(Some((990, 999))));
        assert_eq!(parse_range("bytes=1000-", 1000), Err(()));
        assert_eq!(parse_range("bytes=-0", 1000), Err(()));
        assert_eq!(parse_range("bytes=5-1", 1000), Ok(None));
        assert_eq!(parse_range("items=0-1", 1000), Ok(None));
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), Ok(None));
    }

    #[test]
    fn content_disposition_has_ascii_fallback_and_utf8_name() {
        let v = content_disposition("inline", "Café \"memo\".m4a");
        assert_eq!(v, "inline; filename=\"Caf_ _memo_.m4a\"; filename*=UTF-8''Caf%C3%A9%20%22memo%22.m4a");
    }
}
