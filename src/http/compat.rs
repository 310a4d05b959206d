//! The original recorder app's API (a Chalice service on API Gateway), served beside `/api/v1`
//! on the same data, with that service's answers and error bodies.

use crate::auth;
use crate::clock::date_only;
use crate::config::Signups;
use crate::error::Error;
use crate::http::error::ApiError;
use crate::http::guards::{self, AuthUser};
use crate::ingest::{self, UploadHeaders};
use crate::recordings::{self as rec, ListQuery, Order};
use crate::state::AppState;
use crate::users;
use rocket::data::Data;
use rocket::http::{ContentType, Status};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::response::{self, Responder, Response};
use rocket::{State, delete, get, put, routes};
use serde_json::{Value, json};
use std::io::Cursor;

/// A JSON answer in the old service's shapes.
pub struct Old(Status, Value);

impl<'r> Responder<'r, 'static> for Old {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let body = self.1.to_string();
        Response::build()
            .status(self.0)
            .header(ContentType::JSON)
            .raw_header("Cache-Control", "no-store")
            .sized_body(body.len(), Cursor::new(body))
            .ok()
    }
}

fn error(status: Status, message: &str) -> Old {
    Old(status, json!({ "error": message }))
}

fn fail(e: impl Into<ApiError>) -> Old {
    let e = e.into();
    Old(e.status, json!({"result": "fail", "error": e.message()}))
}

/// The caller, from `Authorization: <user_id> <auth_key>` or `Authorization: Bearer <token>`.
pub struct OldAuth(Result<AuthUser, Old>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for OldAuth {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        Outcome::Success(OldAuth(authenticate(req).await))
    }
}

async fn authenticate(req: &Request<'_>) -> Result<AuthUser, Old> {
    let not_authorized = || error(Status::Unauthorized, "Not Authorization");
    let Some(header) = req.headers().get_one("Authorization").filter(|h| !h.trim().is_empty()) else {
        return Err(error(Status::BadRequest, "Authorization Header is required."));
    };
    let state = req.rocket().state::<AppState>().ok_or_else(not_authorized)?;
    let mut parts = header.split_whitespace();
    let (first, token, extra) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next());
    if extra.is_some() {
        return Err(not_authorized());
    }
    let claimed_user = if first.eq_ignore_ascii_case("bearer") { None } else { Some(first.to_ascii_lowercase()) };
    match guards::session(req, state, token).await {
        Ok(Some(auth)) if claimed_user.as_ref().is_none_or(|u| *u == auth.user.username) => Ok(auth),
        Ok(_) => Err(not_authorized()),
        Err(e) => Err(fail(e)),
    }
}

/// `GET /login?social_id=…&social_type=…`: signs up or logs in `<type>_<id>`; only with
/// `compat.social_login`, which trusts the client's word.
#[get("/login?<social_id>&<social_type>")]
async fn social_login(
    state: &State<AppState>,
    social_id: Option<String>,
    social_type: Option<String>,
) -> Result<Old, ApiError> {
    if !state.config.compat.social_login {
        return Err(ApiError::not_found("no such resource"));
    }
    let (Some(id), Some(kind)) = (social_id.filter(|s| !s.is_empty()), social_type.filter(|s| !s.is_empty())) else {
        return Ok(error(Status::BadRequest, "social_id or social_type is null."));
    };
    let Ok(username) = users::normalize_username(&format!("{kind}_{id}")) else {
        return Ok(error(Status::BadRequest, "social_id or social_type is invalid."));
    };
    let lookup = username.clone();
    let user = match state.db.run(move |conn| users::find_with_hash(conn, &lookup)).await? {
        Some((user, _)) => user,
        None if state.config.accounts.signups == Signups::Closed => {
            return Ok(error(Status::Forbidden, "signups are closed"));
        }
        None => {
            // Social accounts sign in by id only: their password is random and never shown.
            let (random, _) = auth::new_token();
            let hash = state.passwords.hash(random).await?;
            let now = state.clock.now_ms();
            let name = username.clone();
            match state.db.run(move |conn| users::create(conn, &name, &hash, now)).await {
                Ok(user) => user,
                // A concurrent first login created it.
                Err(Error::Conflict { code: "username_taken", .. }) => {
                    let lookup = username.clone();
                    let found = state.db.run(move |conn| users::find_with_hash(conn, &lookup)).await?;
                    found.map(|(u, _)| u).ok_or_else(|| ApiError::internal("social login", "user vanished"))?
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    let (token, _) = super::accounts::new_session(state, &user.id).await?;
    Ok(Old(Status::Ok, json!({"auth_key": token, "user_id": user.username})))
}

#[put("/upload/record/<file_name>", data = "<data>")]
async fn upload(
    state: &State<AppState>,
    auth: OldAuth,
    headers: UploadHeaders,
    file_name: String,
    data: Data<'_>,
) -> Old {
    let auth = match auth.0 {
        Ok(auth) => auth,
        Err(answer) => return answer,
    };
    match ingest::one_shot(state, &auth.user.id, &headers, Some(file_name), None, data).await {
        Ok(_) => Old(Status::Ok, json!({"result": "success"})),
        Err(e) => fail(e),
    }
}

#[get("/record/list")]
async fn list(state: &State<AppState>, auth: OldAuth) -> Old {
    let auth = match auth.0 {
        Ok(auth) => auth,
        Err(answer) => return answer,
    };
    let user_id = auth.user.id.clone();
    let all = state
        .db
        .run(move |conn| {
            let mut query = ListQuery { limit: 200, after: None, order: Order::Newest, q: None };
            let mut all = Vec::new();
            loop {
                let page = rec::list(conn, &user_id, &query)?;
                all.extend(page.recordings);
                match page.next_cursor {
                    Some(_) => query.after = all.last().map(|r: &rec::Recording| r.id.clone()),
                    None => return Ok(all),
                }
            }
        })
        .await;
    match all {
        Ok(all) => {
            let records: Vec<Value> = all
                .iter()
                .map(|r| {
                    json!({"id": r.id, "user_id": auth.user.username, "file_name": r.name, "created_at": date_only(r.created_ms)})
                })
                .collect();
            Old(Status::Ok, json!({ "records": records }))
        }
        Err(e) => fail(e),
    }
}

#[delete("/record/<record_id>")]
async fn remove(state: &State<AppState>, auth: OldAuth, record_id: &str) -> Old {
    let auth = match auth.0 {
        Ok(auth) => auth,
        Err(answer) => return answer,
    };
    let Ok(id) = rec::parse_id(record_id) else {
        return Old(Status::BadRequest, json!({"result": "fail"}));
    };
    let id = id.hyphenated().to_string();
    let user_id = auth.user.id.clone();
    let lookup = (user_id.clone(), id.clone());
    let found = state.db.run(move |conn| rec::get(conn, &lookup.0, &lookup.1)).await;
    let deleted = match found {
        Ok(Some(r)) if r.deleted_at.is_none() => crate::removal::delete_recording(state, user_id, id, false).await,
        Ok(_) => return Old(Status::BadRequest, json!({"result": "fail"})),
        Err(e) => return fail(e),
    };
    match deleted {
        Ok(true) => Old(Status::Ok, json!({"result": "success"})),
        Ok(false) => Old(Status::BadRequest, json!({"result": "fail"})),
        Err(e) => fail(e),
    }
}

pub fn routes() -> Vec<rocket::Route> {
    routes![social_login, upload, list, remove]
}
