//! `/api/v1/tokens`: app tokens for phones and scripts, and the browser sessions beside them.

use super::{JsonBody, Reply};
use crate::auth::{self, AuthUser};
use crate::clock::rfc3339;
use crate::error::ApiError;
use crate::state::AppState;
use crate::users;
use rocket::http::Status;
use rocket::{State, delete, get, post, routes};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct NewToken {
    name: String,
}

#[derive(Serialize)]
struct Created {
    id: String,
    name: String,
    /// Shown this once; only its hash is stored.
    token: String,
    created_at: String,
}

#[post("/tokens", data = "<body>")]
async fn create(
    state: &State<AppState>,
    auth: AuthUser,
    body: Result<JsonBody<NewToken>, ApiError>,
) -> Result<Reply, ApiError> {
    let name = users::normalize_token_name(&body?.0.name)?;
    let (token, hash) = auth::new_token();
    let now = state.clock.now_ms();
    let (user_id, stored_name) = (auth.user.id.clone(), name.clone());
    let id = state.db.run(move |conn| users::create_app_token(conn, &user_id, &hash, &stored_name, now)).await?;
    log::info!("app token {id} created for {}", auth.user.username);
    Reply::json(Status::Created, &Created { id, name, token, created_at: rfc3339(now) })
}

#[get("/tokens")]
async fn list(state: &State<AppState>, auth: AuthUser) -> Result<Reply, ApiError> {
    let now = state.clock.now_ms();
    let tokens = state.db.run(move |conn| users::list_tokens(conn, &auth.user.id, &auth.token_hash, now)).await?;
    Reply::json(Status::Ok, &serde_json::json!({ "tokens": tokens }))
}

#[delete("/tokens/<id>")]
async fn revoke(state: &State<AppState>, auth: AuthUser, id: &str) -> Result<Reply, ApiError> {
    let (user_id, id) = (auth.user.id.clone(), id.to_string());
    if state.db.run(move |conn| users::revoke_token(conn, &user_id, &id)).await? {
        Ok(Reply::no_content())
    } else {
        Err(ApiError::not_found("no token or session with that id"))
    }
}

pub fn routes() -> Vec<rocket::Route> {
    routes![create, list, revoke]
}
