//! `/api/v1/recordings/{id}/transcript`: read (JSON, txt, srt, vtt), correct, transcribe again.

use super::recordings::find;
use super::{QueryOnce, Reply};
use crate::http::error::ApiError;
use crate::http::guards::AuthUser;
use crate::recordings as rec;
use crate::state::AppState;
use crate::transcription::{self, Segment};
use rocket::data::{Data, ToByteUnit};
use rocket::http::{ContentType, Header, Status};
use rocket::request::Request;
use rocket::response::{self, Responder, Response};
use rocket::{State, get, post, put, routes};
use serde::Deserialize;
use std::io::Cursor;
use tokio::io::AsyncReadExt;

/// Largest body of corrections (a long recording's transcript is a few hundred KiB).
const EDIT_LIMIT: u64 = 4 << 20;

fn no_transcript(recording: &rec::Recording, error: Option<String>) -> ApiError {
    match recording.transcript {
        "pending" => ApiError::not_found("this recording is waiting to be transcribed"),
        "failed" => ApiError::not_found(format!(
            "transcribing this recording failed: {}",
            error.unwrap_or_else(|| "no reason was recorded".to_string())
        )),
        _ => ApiError::not_found("this recording has no transcript (transcription is off for it)"),
    }
}

/// A transcript as a file.
struct TranscriptFile {
    content_type: &'static str,
    filename: String,
    body: String,
}

impl<'r> Responder<'r, 'static> for TranscriptFile {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let content_type = ContentType::parse_flexible(self.content_type).unwrap_or(ContentType::Plain);
        // The name is the user's: ASCII-safe for the plain parameter, UTF-8 in `filename*`.
        let ascii: String = self
            .filename
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || " .-_()".contains(c) { c } else { '_' })
            .collect();
        let encoded: String = self
            .filename
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b".-_".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        Response::build()
            .status(Status::Ok)
            .header(content_type)
            .header(Header::new(
                "Content-Disposition",
                format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"),
            ))
            .raw_header("Cache-Control", "no-store")
            .sized_body(self.body.len(), Cursor::new(self.body))
            .ok()
    }
}

#[derive(rocket::Responder)]
enum Answer {
    Json(Reply),
    File(TranscriptFile),
}

#[get("/recordings/<id>/transcript?<format>")]
async fn get_transcript(
    state: &State<AppState>,
    auth: AuthUser,
    _once: QueryOnce,
    id: &str,
    format: Option<&str>,
) -> Result<Answer, ApiError> {
    let recording = find(state, &auth, id).await?;
    let rid = recording.id.clone();
    let (stored, error) =
        state.db.run(move |conn| Ok((transcription::get(conn, &rid)?, transcription::error(conn, &rid)?))).await?;
    // A transcript being made again is served as it was until the new one is ready.
    let Some(stored) = stored else {
        return Err(no_transcript(&recording, error));
    };
    match format.unwrap_or("json") {
        "json" => Ok(Answer::Json(Reply::json(Status::Ok, &stored)?)),
        other => {
            let (content_type, body) = transcription::render(&stored.segments, other)
                .ok_or_else(|| ApiError::bad_request("`format` is json, txt, srt or vtt"))?;
            let (stem, _) = rec::split_extension(&recording.name);
            Ok(Answer::File(TranscriptFile { content_type, filename: format!("{stem}.{other}"), body }))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Edit {
    segments: Vec<Segment>,
}

/// Saves the user's corrections; they are what is served and searched from now on, and stay
/// when the model runs again.
#[put("/recordings/<id>/transcript", data = "<data>")]
async fn put_transcript(
    state: &State<AppState>,
    auth: AuthUser,
    id: &str,
    content_type: Option<&ContentType>,
    data: Data<'_>,
) -> Result<Reply, ApiError> {
    if !content_type.is_some_and(|ct| ct.is_json()) {
        return Err(ApiError::unsupported_media_type("send a JSON body with Content-Type: application/json"));
    }
    let mut bytes = Vec::new();
    let mut stream = data.open((EDIT_LIMIT + 1).bytes());
    stream.read_to_end(&mut bytes).await.map_err(|_| ApiError::bad_request("the request body could not be read"))?;
    if bytes.len() as u64 > EDIT_LIMIT {
        return Err(ApiError::payload_too_large(format!("a transcript is at most {} MiB", EDIT_LIMIT >> 20)));
    }
    let edit: Edit = super::json_object(&bytes)?;
    let recording = find(state, &auth, id).await?;
    if recording.deleted_at.is_some() {
        return Err(rec::not_found().into());
    }
    let (user_id, rid, now) = (auth.user.id.clone(), recording.id.clone(), state.clock.now_ms());
    let saved = state
        .db
        .run(move |conn| {
            if !transcription::save_edit(conn, &user_id, &rid, &edit.segments, now)? {
                return Ok(None);
            }
            transcription::get(conn, &rid)
        })
        .await?
        .ok_or_else(rec::not_found)?;
    state.changes.user(&auth.user.id);
    Reply::json(Status::Ok, &saved)
}

/// Queues the recording for transcription again (a failed one, or one to hear with a new model).
#[post("/recordings/<id>/transcript/retry")]
async fn retry(state: &State<AppState>, auth: AuthUser, id: &str) -> Result<Reply, ApiError> {
    if state.config.transcription.model.is_none() {
        return Err(ApiError::new(
            Status::Conflict,
            "transcription_off",
            "transcription is off on this server (no transcription.model)",
        ));
    }
    let recording = find(state, &auth, id).await?;
    let (user_id, rid, now) = (auth.user.id.clone(), recording.id.clone(), state.clock.now_ms());
    let queued = state.db.run(move |conn| transcription::retry(conn, &user_id, &rid, now)).await?;
    let recording = queued.ok_or_else(rec::not_found)?;
    state.transcripts.wake();
    state.changes.user(&auth.user.id);
    Reply::json(Status::Accepted, &recording)
}

pub fn routes() -> Vec<rocket::Route> {
    routes![get_transcript, put_transcript, retry]
}
