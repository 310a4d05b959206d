//! `/api/v1/uploads`: resumable uploads, in two protocols over the same upload resources
//! (`uploads.rs`): tus 1.0.0, and the IETF draft "Resumable Uploads for HTTP" (interop versions
//! 8 and 6), whose creation request is a `POST /api/v1/recordings` (see `recordings.rs`).
//!
//! A request carrying `Tus-Resumable` is tus; any other request on an upload is the draft's.

use super::{Reply, flag};
use crate::clock::http_date;
use crate::error::Error;
use crate::http::error::ApiError;
use crate::http::guards::AuthUser;
use crate::ingest;
use crate::recordings as rec;
use crate::state::AppState;
use crate::storage::Checksum;
use crate::uploads::{self, Append, NewUpload, Progress, Upload};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rocket::data::Data;
use rocket::http::Status;
use rocket::request::{FromRequest, Outcome, Request};
use rocket::{State, delete, get, head, options, patch, post, routes};

pub const TUS_VERSION: &str = "1.0.0";
const TUS_EXTENSIONS: &str = "creation,creation-with-upload,creation-defer-length,termination,expiration,checksum";
const TUS_CONTENT_TYPE: &str = "application/offset+octet-stream";
const DRAFT_CONTENT_TYPE: &str = "application/partial-upload";

/// Which protocol a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tus,
    /// The IETF draft, with its interop version (6 or 8).
    Draft(u8),
}

/// The resumable-upload headers of a request.
#[derive(Debug, Default)]
pub struct UploadRequest {
    tus_resumable: Option<String>,
    interop: Option<String>,
    offset: Option<String>,
    length: Option<String>,
    defer_length: Option<String>,
    metadata: Option<String>,
    checksum: Option<String>,
    complete: Option<String>,
    content_type: Option<String>,
    content_length: Option<u64>,
    content_disposition: Option<String>,
    idempotency_key: Option<String>,
    marks: Option<String>,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for UploadRequest {
    type Error = ApiError;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, ApiError> {
        let h = req.headers();
        let get = |name: &str| h.get_one(name).map(|v| v.trim().to_string());
        let parsed = UploadRequest {
            tus_resumable: get("Tus-Resumable"),
            interop: get("Upload-Draft-Interop-Version"),
            offset: get("Upload-Offset"),
            length: get("Upload-Length"),
            defer_length: get("Upload-Defer-Length"),
            metadata: get("Upload-Metadata"),
            checksum: get("Upload-Checksum"),
            complete: get("Upload-Complete"),
            content_type: get("Content-Type"),
            content_length: get("Content-Length").and_then(|v| v.parse().ok()),
            content_disposition: get("Content-Disposition"),
            idempotency_key: get("Idempotency-Key"),
            marks: get("X-Recording-Marks"),
        };
        // A tus client of another version is told which one is spoken, before anything else.
        if let Some(version) = &parsed.tus_resumable
            && version != TUS_VERSION
            && req.uri().path().starts_with("/api/v1/uploads")
        {
            let error = ApiError::new(
                Status::PreconditionFailed,
                "precondition_failed",
                format!("this server speaks tus {TUS_VERSION}"),
            )
            .with_header("Tus-Version", TUS_VERSION);
            return crate::http::guards::guard_fail(req, error);
        }
        Outcome::Success(parsed)
    }
}

impl UploadRequest {
    pub fn protocol(&self) -> Protocol {
        if self.tus_resumable.is_some() {
            Protocol::Tus
        } else {
            Protocol::Draft(if self.interop.as_deref() == Some("6") { 6 } else { 8 })
        }
    }

    /// Whether a `POST /api/v1/recordings` is the draft's upload creation.
    pub fn is_draft_creation(&self) -> bool {
        self.complete.is_some()
    }

    fn offset(&self) -> Result<u64, ApiError> {
        let text = self.offset.as_deref().ok_or_else(|| ApiError::bad_request("Upload-Offset is required"))?;
        number(text, "Upload-Offset")
    }

    fn length(&self) -> Result<Option<u64>, ApiError> {
        self.length.as_deref().map(|t| number(t, "Upload-Length")).transpose()
    }

    /// `Upload-Complete` as a structured boolean (`?1`/`?0`); absent is `false`.
    fn complete(&self) -> Result<bool, ApiError> {
        match self.complete.as_deref() {
            None | Some("?0") => Ok(false),
            Some("?1") => Ok(true),
            Some(_) => Err(ApiError::bad_request("Upload-Complete must be ?1 or ?0")),
        }
    }

    fn content_type_is(&self, expected: &str) -> bool {
        self.content_type
            .as_deref()
            .and_then(|ct| ct.split(';').next())
            .is_some_and(|ct| ct.trim().eq_ignore_ascii_case(expected))
    }

    /// tus `Upload-Checksum: <algorithm> <base64>`.
    fn checksum(&self) -> Result<Option<(Checksum, Vec<u8>)>, ApiError> {
        let Some(text) = &self.checksum else { return Ok(None) };
        let (algorithm, value) = text.split_once(' ').unwrap_or((text, ""));
        let check = Checksum::for_algorithm(algorithm)
            .ok_or_else(|| ApiError::bad_request("Upload-Checksum algorithm must be sha1 or sha256"))?;
        let expected =
            STANDARD.decode(value.trim()).map_err(|_| ApiError::bad_request("Upload-Checksum value must be base64"))?;
        Ok(Some((check, expected)))
    }
}

fn number(text: &str, header: &str) -> Result<u64, ApiError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad_request(format!("{header} must be a non-negative integer")));
    }
    text.parse().map_err(|_| ApiError::bad_request(format!("{header} is too large")))
}

/// tus `Upload-Metadata`: `key base64,key2 base64,flag`.
fn parse_metadata(text: &str) -> Result<Vec<(String, Option<String>)>, ApiError> {
    let mut out = Vec::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = match pair.split_once(' ') {
            Some((key, value)) => {
                let bytes = STANDARD
                    .decode(value.trim())
                    .map_err(|_| ApiError::bad_request(format!("Upload-Metadata `{key}` is not base64")))?;
                (key, Some(String::from_utf8_lossy(&bytes).to_string()))
            }
            None => (pair, None),
        };
        out.push((key.to_string(), value));
    }
    Ok(out)
}

/// The name, time and wishes a creation request carries.
fn new_upload(
    name: Option<&str>,
    recorded_at: Option<&str>,
    keep_partial: bool,
    length: Option<u64>,
    marks: Option<&str>,
) -> Result<NewUpload, ApiError> {
    Ok(NewUpload {
        length,
        name: name.map(|n| rec::normalize_name(ingest::base_name(n))).transpose()?,
        recorded_at: recorded_at.map(ingest::parse_recorded_at).transpose()?,
        keep_partial,
        idempotency_key: None,
        marks: marks.map(crate::bookmarks::parse_marks).transpose()?.unwrap_or_default(),
    })
}

/// `Upload-Limit` for the draft: the size limit and how long an idle upload lives.
fn upload_limit(state: &AppState, version: u8, expires_at: Option<i64>) -> String {
    let max = state.config.storage.max_upload_size;
    let age_key = if version == 6 { "expires" } else { "max-age" };
    let age = match expires_at {
        Some(at) => ((at - state.clock.now_ms()) / 1000).max(0),
        None => state.config.upload_expire_ms() / 1000,
    };
    format!("max-size={max}, min-size=0, {age_key}={age}")
}

fn location(upload: &Upload) -> String {
    format!("/api/v1/uploads/{}", upload.id)
}

/// The tus answer for where an upload stands.
fn tus_reply(status: Status, progress: &Progress) -> Reply {
    let upload = &progress.upload;
    let mut reply = Reply::empty(status)
        .header("Upload-Offset", upload.received.to_string())
        .header("Upload-Expires", http_date(upload.expires_at));
    reply = match upload.length {
        Some(length) => reply.header("Upload-Length", length.to_string()),
        None => reply.header("Upload-Defer-Length", "1"),
    };
    if let Some(recording) = &progress.recording {
        reply = reply.header("Recording-Id", recording.id.clone());
    }
    reply
}

/// The draft's answer: the recording once complete (what a one-shot upload answers), else the
/// offset.
fn draft_reply(state: &AppState, version: u8, progress: &Progress, creating: bool) -> Result<Reply, ApiError> {
    let upload = &progress.upload;
    let limit = upload_limit(state, version, Some(upload.expires_at));
    if let Some(recording) = &progress.recording {
        let status = if progress.completed_now { Status::Created } else { Status::Ok };
        return Ok(Reply::json(status, recording)?
            .header("Location", format!("/api/v1/recordings/{}", recording.id))
            .header("Recording-Id", recording.id.clone())
            .header("Upload-Complete", "?1")
            .header("Upload-Offset", upload.received.to_string())
            .header("Upload-Limit", limit));
    }
    // Version 6 answers appends with 201, version 8 with 204; a creation is 201 in both.
    let status = if creating || version == 6 { Status::Created } else { Status::NoContent };
    let mut reply = Reply::empty(status)
        .header("Upload-Complete", "?0")
        .header("Upload-Offset", upload.received.to_string())
        .header("Upload-Limit", limit);
    if creating {
        reply = reply.header("Location", location(upload));
    }
    Ok(reply)
}

/// An error of a request on an upload that exists: the draft's clients learn where it is.
fn with_location(error: ApiError, upload: &Upload) -> ApiError {
    error.with_header("Location", location(upload))
}

#[options("/uploads")]
fn tus_options(state: &State<AppState>) -> Reply {
    Reply::empty(Status::NoContent)
        .header("Tus-Resumable", TUS_VERSION)
        .header("Tus-Version", TUS_VERSION)
        .header("Tus-Extension", TUS_EXTENSIONS)
        .header("Tus-Max-Size", state.config.storage.max_upload_size.to_string())
        .header("Tus-Checksum-Algorithm", "sha1,sha256")
        .header("Upload-Limit", upload_limit(state, 8, None))
        .header("Accept-Patch", DRAFT_CONTENT_TYPE)
}

/// tus creation (with `creation-with-upload` and `creation-defer-length`).
#[post("/uploads", data = "<data>")]
async fn tus_create(
    state: &State<AppState>,
    headers: UploadRequest,
    auth: AuthUser,
    data: Data<'_>,
) -> Result<Reply, ApiError> {
    if headers.protocol() != Protocol::Tus {
        return Err(ApiError::bad_request(
            "tus requests carry Tus-Resumable: 1.0.0 (the IETF draft creates uploads with POST /api/v1/recordings)",
        ));
    }
    let length = headers.length()?;
    let deferred = headers.defer_length.as_deref() == Some("1");
    if length.is_some() == deferred {
        return Err(ApiError::bad_request("send either Upload-Length or Upload-Defer-Length: 1"));
    }
    let metadata = headers.metadata.as_deref().map(parse_metadata).transpose()?.unwrap_or_default();
    let value = |key: &str| metadata.iter().find(|(k, _)| k == key).and_then(|(_, v)| v.as_deref());
    let name = value("name").or_else(|| value("filename"));
    let keep_partial = metadata.iter().any(|(k, v)| k == "keep_partial" && v.as_deref().is_none_or(|v| flag(Some(v))));
    let new = new_upload(name, value("recorded_at"), keep_partial, length, value("marks"))?;
    let upload = uploads::create(state, &auth.user.id, new).await?;

    let has_body = headers.content_length.is_some_and(|n| n > 0) && headers.content_type_is(TUS_CONTENT_TYPE);
    let progress = if has_body {
        let append = Append {
            offset: 0,
            length: None,
            last: false,
            content_length: headers.content_length,
            checksum: headers.checksum()?,
        };
        uploads::append(state, &auth.user.id, &upload.id, append, Some(data))
            .await
            .map_err(|e| with_location(e.into(), &upload))?
    } else {
        Progress { upload: upload.clone(), recording: None, completed_now: false }
    };
    Ok(tus_reply(Status::Created, &progress).header("Location", location(&upload)))
}

#[head("/uploads/<id>")]
async fn offset(state: &State<AppState>, headers: UploadRequest, auth: AuthUser, id: &str) -> Result<Reply, ApiError> {
    let progress = uploads::status(state, &auth.user.id, id).await?;
    let reply = match headers.protocol() {
        Protocol::Tus => tus_reply(Status::Ok, &progress),
        Protocol::Draft(version) => {
            let upload = &progress.upload;
            let mut reply = Reply::empty(Status::NoContent)
                .header("Upload-Offset", upload.received.to_string())
                .header("Upload-Complete", if upload.is_complete() { "?1" } else { "?0" })
                .header("Upload-Limit", upload_limit(state, version, Some(upload.expires_at)));
            if let Some(length) = upload.length {
                reply = reply.header("Upload-Length", length.to_string());
            }
            if let Some(recording) = &progress.recording {
                reply = reply.header("Recording-Id", recording.id.clone());
            }
            reply
        }
    };
    Ok(reply.header("Cache-Control", "no-store"))
}

#[get("/uploads/<id>")]
async fn get_one(state: &State<AppState>, auth: AuthUser, id: &str) -> Result<Reply, ApiError> {
    let upload = uploads::find(state, &auth.user.id, id).await?;
    Reply::json(Status::Ok, &uploads::describe(state, upload).await?)
}

#[get("/uploads")]
async fn list(state: &State<AppState>, auth: AuthUser) -> Result<Reply, ApiError> {
    let uploads = uploads::list(state, &auth.user.id).await?;
    Reply::json(Status::Ok, &serde_json::json!({ "uploads": uploads }))
}

#[patch("/uploads/<id>", data = "<data>")]
async fn append(
    state: &State<AppState>,
    headers: UploadRequest,
    auth: AuthUser,
    id: &str,
    data: Data<'_>,
) -> Result<Reply, ApiError> {
    let protocol = headers.protocol();
    let (wanted, last) = match protocol {
        Protocol::Tus => (TUS_CONTENT_TYPE, false),
        Protocol::Draft(_) => (DRAFT_CONTENT_TYPE, headers.complete()?),
    };
    if !headers.content_type_is(wanted) {
        return Err(ApiError::unsupported_media_type(format!("PATCH a resumable upload with Content-Type: {wanted}")));
    }
    let append = Append {
        offset: headers.offset()?,
        length: headers.length()?,
        last,
        content_length: headers.content_length,
        checksum: if protocol == Protocol::Tus { headers.checksum()? } else { None },
    };
    let result = uploads::append(state, &auth.user.id, id, append, Some(data)).await;
    match protocol {
        Protocol::Tus => Ok(tus_reply(Status::NoContent, &result?)),
        Protocol::Draft(version) => match result {
            Ok(progress) => draft_reply(state, version, &progress, false),
            Err(e @ Error::OffsetMismatch { complete: false, .. }) => {
                Err(ApiError::from(e).with_header("Upload-Complete", "?0"))
            }
            Err(e) => Err(e.into()),
        },
    }
}

#[delete("/uploads/<id>")]
async fn cancel(state: &State<AppState>, _headers: UploadRequest, auth: AuthUser, id: &str) -> Result<Reply, ApiError> {
    uploads::cancel(state, &auth.user.id, id).await?;
    Ok(Reply::no_content())
}

/// The draft's upload creation: a `POST /api/v1/recordings` with `Upload-Complete`.
pub async fn draft_create(
    state: &AppState,
    user_id: &str,
    headers: &UploadRequest,
    name: Option<&str>,
    recorded_at: Option<&str>,
    keep_partial: bool,
    data: Data<'_>,
) -> Result<Reply, ApiError> {
    let Protocol::Draft(version) = headers.protocol() else {
        return Err(ApiError::bad_request("tus uploads are created with POST /api/v1/uploads"));
    };
    let last = headers.complete()?;
    if last && headers.content_length == Some(0) {
        return Err(ingest::empty_body().into());
    }
    let mut length = headers.length()?;
    if last && let Some(content_length) = headers.content_length {
        if length.is_some_and(|l| l != content_length) {
            return Err(ApiError::bad_request("Upload-Length and Content-Length disagree"));
        }
        length = Some(content_length);
    }
    let disposition_name = headers.content_disposition.as_deref().and_then(disposition_filename);
    // The request is checked as a one-shot upload checks it, before a retry is recognised.
    let mut new =
        new_upload(name.or(disposition_name.as_deref()), recorded_at, keep_partial, length, headers.marks.as_deref())?;
    // A retry of a creation that completed, whose answer was lost: the recording it made.
    if let Some(key) = &headers.idempotency_key
        && let Some(existing) = ingest::earlier_upload(state, user_id, key).await?
    {
        crate::body::discard(data).await;
        return Ok(Reply::json(Status::Ok, &existing)?
            .header("Location", format!("/api/v1/recordings/{}", existing.id))
            .header("Recording-Id", existing.id.clone())
            .header("Upload-Complete", "?1"));
    }
    new.idempotency_key = headers.idempotency_key.clone();
    let upload = uploads::create(state, user_id, new).await?;
    let append = Append { offset: 0, length: None, last, content_length: headers.content_length, checksum: None };
    match uploads::append(state, user_id, &upload.id, append, Some(data)).await {
        Ok(progress) => draft_reply(state, version, &progress, true),
        Err(e) => {
            // Without the 104 interim answer, a client whose creation request failed never
            // learned where the upload is: keep it only if it asked to keep partial uploads.
            if !keep_partial
                && let Err(cancel) = uploads::cancel(state, user_id, &upload.id).await
                && !matches!(cancel, Error::NotFound(_))
            {
                log::warn!("cannot remove upload {} after its creation failed: {}", upload.id, cancel);
            }
            Err(with_location(e.into(), &upload))
        }
    }
}

/// The file name of a `Content-Disposition` header (`filename*=UTF-8''…` preferred).
fn disposition_filename(header: &str) -> Option<String> {
    let mut plain = None;
    for part in header.split(';').map(str::trim) {
        let Some((key, value)) = part.split_once('=') else { continue };
        match key.trim().to_ascii_lowercase().as_str() {
            "filename*" => {
                let encoded = value.trim().split_once("''").map(|(_, v)| v)?;
                return percent_decode(encoded);
            }
            "filename" => plain = Some(value.trim().trim_matches('"').to_string()),
            _ => {}
        }
    }
    plain.filter(|n| !n.is_empty())
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `OPTIONS /api/v1/recordings`: what the draft's clients need to know before uploading.
#[options("/recordings")]
fn draft_options(state: &State<AppState>) -> Reply {
    Reply::empty(Status::NoContent)
        .header("Upload-Limit", upload_limit(state, 8, None))
        .header("Accept-Patch", DRAFT_CONTENT_TYPE)
}

pub fn routes() -> Vec<rocket::Route> {
    routes![tus_options, tus_create, offset, get_one, list, append, cancel, draft_options]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_pairs_decode_with_and_without_values() {
        let parsed = parse_metadata("filename bWVtby5tNGE=,keep_partial,recorded_at MjAyNi0xMS0yN1QxMDowMDowMFo=")
            .expect("valid");
        assert_eq!(parsed[0], ("filename".into(), Some("memo.m4a".into())));
        assert_eq!(parsed[1], ("keep_partial".into(), None));
        assert_eq!(parsed[2], ("recorded_at".into(), Some("2026-11-27T10:00:00Z".into())));
        assert!(parse_metadata("filename !!!").is_err());
    }

    #[test]
    fn content_disposition_names_prefer_the_utf8_form() {
        assert_eq!(disposition_filename("inline; filename=\"memo.m4a\"").as_deref(), Some("memo.m4a"));
        assert_eq!(
            disposition_filename("attachment; filename=\"x\"; filename*=UTF-8''Caf%C3%A9.m4a").as_deref(),
            Some("Café.m4a")
        );
        assert_eq!(disposition_filename("inline"), None);
    }
}
