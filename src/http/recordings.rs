//! `/api/v1/recordings`: streamed upload, list, get, rename, audio with Range, delete.

use super::{JsonBody, QueryOnce, Reply, etag_matches, flag, parse_limit};
use crate::clock::{http_date, parse_http_date};
use crate::http::error::ApiError;
use crate::http::guards::AuthUser;
use crate::ingest::{self, UploadHeaders};
use crate::recordings::{self as rec, ListQuery, Order, Recording};
use crate::state::AppState;
use rocket::data::Data;
use rocket::http::{Header, Status};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::response::{self, Responder, Response};
use rocket::{State, delete, get, patch, post, routes};
use serde::Deserialize;

#[rocket::async_trait]
impl<'r> FromRequest<'r> for UploadHeaders {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let h = req.headers();
        Outcome::Success(UploadHeaders {
            content_type: h.get_one("Content-Type").map(str::to_string),
            content_length: h.get_one("Content-Length").and_then(|v| v.trim().parse().ok()),
            idempotency_key: h.get_one("Idempotency-Key").map(str::to_string),
            marks: h.get_one("X-Recording-Marks").map(str::to_string),
        })
    }
}

fn created(recording: &Recording, status: Status) -> Result<Reply, ApiError> {
    Ok(Reply::json(status, recording)?.header("Location", format!("/api/v1/recordings/{}", recording.id)))
}

#[allow(clippy::too_many_arguments)]
#[post("/recordings?<name>&<recorded_at>&<keep_partial>", data = "<data>")]
async fn upload(
    state: &State<AppState>,
    resumable: super::uploads::UploadRequest,
    auth: AuthUser,
    _once: QueryOnce,
    headers: UploadHeaders,
    name: Option<String>,
    recorded_at: Option<String>,
    keep_partial: Option<&str>,
    data: Data<'_>,
) -> Result<Reply, ApiError> {
    // The IETF draft's resumable creation is this same request with `Upload-Complete`.
    if resumable.is_draft_creation() {
        let (name, recorded_at) = (name.as_deref(), recorded_at.as_deref());
        return super::uploads::draft_create(
            state,
            &auth.user.id,
            &resumable,
            name,
            recorded_at,
            flag(keep_partial),
            data,
        )
        .await;
    }
    let received = ingest::one_shot(state, &auth.user.id, &headers, name, recorded_at, data).await?;
    created(&received.recording, if received.created { Status::Created } else { Status::Ok })
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
pub(crate) async fn find(state: &AppState, auth: &AuthUser, id: &str) -> Result<Recording, ApiError> {
    let id = rec::parse_id(id)?.hyphenated().to_string();
    let user_id = auth.user.id.clone();
    Ok(state.db.run(move |conn| rec::get(conn, &user_id, &id)).await?.ok_or_else(rec::not_found)?)
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
    let user_id = auth.user.id.clone();
    let recording = state.db.run_durably(move |conn| rec::rename(conn, &user_id, &id, &name)).await?;
    let recording = recording.ok_or_else(rec::not_found)?;
    state.changes.user(&auth.user.id);
    Reply::json(Status::Ok, &recording)
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
    if crate::removal::delete_recording(state, auth.user.id.clone(), id, flag(permanent)).await? {
        Ok(Reply::no_content())
    } else {
        Err(rec::not_found().into())
    }
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

/// An audio file answer: headers decided up front, the body streamed from disk.
pub struct Audio {
    status: Status,
    headers: Vec<(&'static str, String)>,
    body: Option<(crate::storage::store::Body, u64)>,
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

#[derive(serde::Serialize)]
struct WaveformBody {
    bucket_ms: u32,
    peaks: Vec<u8>,
}

/// The waveform once analysis is `ready`; 404 before. Cached with the audio's ETag: a
/// recording's bytes never change, so neither does its shape.
#[get("/recordings/<id>/waveform")]
async fn get_waveform(
    state: &State<AppState>,
    auth: AuthUser,
    id: &str,
    conditions: RangeHeaders,
) -> Result<Reply, ApiError> {
    let recording = find(state, &auth, id).await?;
    serve_waveform(state, &recording, &conditions).await
}

/// Answers a recording's waveform (the owner's route and a share link's), honouring
/// If-None-Match.
pub async fn serve_waveform(
    state: &AppState,
    recording: &Recording,
    conditions: &RangeHeaders,
) -> Result<Reply, ApiError> {
    let etag = format!("\"{}\"", recording.sha256);
    let not_ready = || ApiError::not_found("this recording has no waveform yet (analysis is pending or failed)");
    if recording.waveform != "ready" {
        return Err(not_ready());
    }
    if conditions.if_none_match.as_deref().is_some_and(|h| etag_matches(h, &etag)) {
        return Ok(Reply::empty(Status::NotModified).header("ETag", etag));
    }
    let rid = recording.id.clone();
    let (bucket_ms, peaks) =
        state.db.run(move |conn| crate::jobs::waveform(conn, &rid)).await?.ok_or_else(not_ready)?;
    Ok(Reply::json(Status::Ok, &WaveformBody { bucket_ms, peaks })?
        .header("ETag", etag)
        .cache("private, max-age=0, must-revalidate"))
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
        Some(header) => match crate::ranges::resolve(header, size) {
            Ok(range) => range,
            Err(crate::ranges::Unsatisfiable) => {
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
    let opening = state.storage.store(recording.store).map(|store| store.open_range(id, start, len));
    let context = format!("reading recording {id}");
    let body = match opening {
        Ok(opening) => opening.await,
        Err(e) => Err(e),
    }
    .map_err(|e| e.api(&context))?;
    Ok(Audio { status, headers, body: Some((body, len)) })
}

pub fn routes() -> Vec<rocket::Route> {
    routes![upload, list, get_one, rename, delete_one, get_audio, get_waveform]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_disposition_has_ascii_fallback_and_utf8_name() {
        let v = content_disposition("inline", "Café \"memo\".m4a");
        assert_eq!(v, "inline; filename=\"Caf_ _memo_.m4a\"; filename*=UTF-8''Caf%C3%A9%20%22memo%22.m4a");
    }
}
