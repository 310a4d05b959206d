//! `/api/v1/recordings/{id}/bookmarks`: a recording's bookmarks, added, changed and removed.

use crate::bookmarks;
use crate::http::error::ApiError;
use crate::http::guards::AuthUser;
use crate::http::{JsonBody, Reply};
use crate::recordings as rec;
use crate::state::AppState;
use rocket::http::Status;
use rocket::{State, delete, get, patch, post, routes};
use serde::Deserialize;
use serde_json::json;

fn ids(recording: &str, bookmark: Option<&str>) -> Result<(String, Option<String>), ApiError> {
    let recording = rec::parse_id(recording)?.hyphenated().to_string();
    let bookmark = bookmark
        .map(|b| uuid::Uuid::parse_str(b).map(|u| u.hyphenated().to_string()))
        .transpose()
        .map_err(|_| ApiError::not_found("no such bookmark"))?;
    Ok((recording, bookmark))
}

#[get("/recordings/<id>/bookmarks")]
async fn list(state: &State<AppState>, auth: AuthUser, id: &str) -> Result<Reply, ApiError> {
    let (id, _) = ids(id, None)?;
    let user_id = auth.user.id.clone();
    let found = state.db.run(move |conn| bookmarks::list(conn, &user_id, &id)).await?;
    Reply::json(Status::Ok, &json!({ "bookmarks": found }))
}

/// A moment in milliseconds: a JSON number that is whole (`1500` or `1500.0`, the same JSON
/// integer to most encoders); a fraction or a number past 2^53 is refused.
fn whole_ms(value: f64) -> Result<i64, ApiError> {
    if value.fract() == 0.0 && value.abs() <= 9_007_199_254_740_992.0 {
        Ok(value as i64)
    } else {
        Err(ApiError::bad_request("`at_ms` is a whole number of milliseconds"))
    }
}

/// `note` may be null: no note.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewBookmark {
    at_ms: f64,
    note: Option<String>,
}

#[post("/recordings/<id>/bookmarks", data = "<body>")]
async fn add(
    state: &State<AppState>,
    auth: AuthUser,
    id: &str,
    body: Result<JsonBody<NewBookmark>, ApiError>,
) -> Result<Reply, ApiError> {
    let (id, _) = ids(id, None)?;
    let body = body?.0;
    let at_ms = whole_ms(body.at_ms)?;
    let (user_id, now) = (auth.user.id.clone(), state.clock.now_ms());
    let made =
        state.db.run_durably(move |conn| bookmarks::add(conn, &user_id, &id, at_ms, body.note.as_deref(), now)).await?;
    state.changes.user(&auth.user.id);
    Reply::json(Status::Created, &made)
}

/// The fields to change (absent: left as they are; null is refused).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Change {
    at_ms: Option<serde_json::Value>,
    note: Option<serde_json::Value>,
}

#[patch("/recordings/<id>/bookmarks/<bid>", data = "<body>")]
async fn update(
    state: &State<AppState>,
    auth: AuthUser,
    id: &str,
    bid: &str,
    body: Result<JsonBody<Change>, ApiError>,
) -> Result<Reply, ApiError> {
    let (id, bid) = ids(id, Some(bid))?;
    let body = body?.0;
    if body.at_ms.is_none() && body.note.is_none() {
        return Err(ApiError::bad_request("send `at_ms`, `note` or both"));
    }
    let at_ms = match body.at_ms {
        None => None,
        Some(value) => Some(whole_ms(value.as_f64().ok_or_else(|| ApiError::bad_request("`at_ms` is a number"))?)?),
    };
    let note = match body.note {
        None => None,
        Some(serde_json::Value::String(note)) => Some(note),
        Some(_) => return Err(ApiError::bad_request("`note` is text")),
    };
    let user_id = auth.user.id.clone();
    let bid = bid.unwrap_or_default();
    let changed =
        state.db.run_durably(move |conn| bookmarks::update(conn, &user_id, &id, &bid, at_ms, note.as_deref())).await?;
    state.changes.user(&auth.user.id);
    Reply::json(Status::Ok, &changed)
}

#[delete("/recordings/<id>/bookmarks/<bid>")]
async fn remove(state: &State<AppState>, auth: AuthUser, id: &str, bid: &str) -> Result<Reply, ApiError> {
    let (id, bid) = ids(id, Some(bid))?;
    let user_id = auth.user.id.clone();
    let bid = bid.unwrap_or_default();
    state.db.run_durably(move |conn| bookmarks::delete(conn, &user_id, &id, &bid)).await?;
    state.changes.user(&auth.user.id);
    Ok(Reply::no_content())
}

pub fn routes() -> Vec<rocket::Route> {
    routes![list, add, update, remove]
}
