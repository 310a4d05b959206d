//! `/api/v1/trash`: list, restore, delete one, empty.

use super::{QueryOnce, Reply, parse_limit};
use crate::http::error::ApiError;
use crate::http::guards::AuthUser;
use crate::recordings::{self as rec, Purge};
use crate::removal::purge;
use crate::state::AppState;
use rocket::http::Status;
use rocket::{State, delete, get, post, routes};

#[get("/trash?<limit>&<cursor>")]
async fn list(
    state: &State<AppState>,
    auth: AuthUser,
    _once: QueryOnce,
    limit: Option<&str>,
    cursor: Option<&str>,
) -> Result<Reply, ApiError> {
    let limit = parse_limit(limit)?;
    let after = cursor.filter(|c| !c.is_empty()).map(rec::decode_trash_cursor).transpose()?;
    let page = state.db.run(move |conn| rec::list_trash(conn, &auth.user.id, limit, after)).await?;
    Reply::json(Status::Ok, &page)
}

#[post("/trash/<id>/restore")]
async fn restore(state: &State<AppState>, auth: AuthUser, id: &str) -> Result<Reply, ApiError> {
    let id = rec::parse_id(id)?.hyphenated().to_string();
    let user_id = auth.user.id.clone();
    let recording = state.db.run_durably(move |conn| rec::restore(conn, &user_id, &id)).await?;
    let recording = recording.ok_or_else(rec::not_found)?;
    state.changes.user(&auth.user.id);
    Reply::json(Status::Ok, &recording)
}

#[delete("/trash/<id>")]
async fn delete_one(state: &State<AppState>, auth: AuthUser, id: &str) -> Result<Reply, ApiError> {
    let id = rec::parse_id(id)?.hyphenated().to_string();
    let purged = purge(state, auth.user.id.clone(), Purge::OneInTrash(id)).await?;
    if purged > 0 { Ok(Reply::no_content()) } else { Err(rec::not_found().into()) }
}

#[delete("/trash")]
async fn empty(state: &State<AppState>, auth: AuthUser) -> Result<Reply, ApiError> {
    let purged = purge(state, auth.user.id.clone(), Purge::Trash).await?;
    Reply::json(Status::Ok, &serde_json::json!({ "purged": purged }))
}

pub fn routes() -> Vec<rocket::Route> {
    routes![list, restore, delete_one, empty]
}
