//! `/api/v1/auth/*` and `/api/v1/me`: signup, login, logout, profile, password, account deletion.

use super::{JsonBody, Reply, SecureCookies};
use crate::auth;
use crate::clock::rfc3339;
use crate::config::Signups;
use crate::http::error::ApiError;
use crate::http::guards::{self, AuthUser};
use crate::state::AppState;
use crate::users::{self, User};
use crate::{recordings, users::normalize_username};
use rocket::http::{CookieJar, Status};
use rocket::{State, delete, get, post, put, routes};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

#[derive(Serialize)]
struct Session {
    user: User,
    token: String,
    expires_at: String,
}

/// Creates a session for a user: the new token and its expiry (ms).
pub async fn new_session(state: &AppState, user_id: &str) -> Result<(String, i64), ApiError> {
    let (token, hash) = auth::new_token();
    let now = state.clock.now_ms();
    let expires_at = now + state.config.session_ms();
    let user_id = user_id.to_string();
    state.db.run(move |conn| users::create_session(conn, &user_id, &hash, now, expires_at)).await?;
    Ok((token, expires_at))
}

/// Creates a session for `user`, sets the cookie, and answers it.
async fn start_session(
    state: &AppState,
    jar: &CookieJar<'_>,
    secure: bool,
    user: User,
    status: Status,
) -> Result<Reply, ApiError> {
    let (token, expires_at) = new_session(state, &user.id).await?;
    guards::set_session_cookie(secure, jar, &token, state.config.accounts.session_days);
    Reply::json(status, &Session { user, token, expires_at: rfc3339(expires_at) })
}

#[post("/auth/signup", data = "<body>")]
async fn signup(
    state: &State<AppState>,
    jar: &CookieJar<'_>,
    secure: SecureCookies,
    body: Result<JsonBody<Credentials>, ApiError>,
) -> Result<Reply, ApiError> {
    let Credentials { username, password } = body?.0;
    if state.config.accounts.signups == Signups::Closed {
        return Err(ApiError::new(
            Status::Forbidden,
            "signups_closed",
            "this server does not take new accounts; ask its owner",
        ));
    }
    let username = normalize_username(&username)?;
    users::check_password(&password)?;
    let check = username.clone();
    if state.db.run(move |conn| users::exists(conn, &check)).await? {
        return Err(users::username_taken().into());
    }
    let hash = state.passwords.hash(password).await?;
    let now = state.clock.now_ms();
    let user = state.db.run(move |conn| users::create(conn, &username, &hash, now)).await?;
    log::info!("account created: {}", user.username);
    start_session(state, jar, secure.0, user, Status::Created).await
}

#[post("/auth/login", data = "<body>")]
async fn login(
    state: &State<AppState>,
    jar: &CookieJar<'_>,
    secure: SecureCookies,
    // Rocket's guard: the configured client-IP header, else the peer; None if neither is usable.
    ip: Option<std::net::IpAddr>,
    body: Result<JsonBody<Credentials>, ApiError>,
) -> Result<Reply, ApiError> {
    let Credentials { username, password } = body?.0;
    let key = username.to_ascii_lowercase();
    let now = state.clock.now_ms();
    state.throttle.admit(&key, ip, now)?;
    let found = match normalize_username(&username) {
        Ok(name) => state.db.run(move |conn| users::find_with_hash(conn, &name)).await?,
        Err(_) => None,
    };
    let (user, stored) = match found {
        Some((user, hash)) => (Some(user), Some(hash)),
        None => (None, None),
    };
    let ok = state.passwords.verify(password, stored).await?;
    state.throttle.record(&key, ip, now, ok && user.is_some());
    match user {
        Some(user) if ok => start_session(state, jar, secure.0, user, Status::Ok).await,
        _ => Err(ApiError::invalid_credentials()),
    }
}

#[post("/auth/logout")]
async fn logout(
    state: &State<AppState>,
    jar: &CookieJar<'_>,
    secure: SecureCookies,
    auth: AuthUser,
) -> Result<Reply, ApiError> {
    let user_id = auth.user.id.clone();
    state.db.run(move |conn| users::revoke_session(conn, &auth.token_hash)).await?;
    state.changes.credentials(&user_id);
    guards::clear_session_cookie(secure.0, jar);
    Ok(Reply::no_content())
}

#[get("/me")]
async fn me(state: &State<AppState>, auth: AuthUser) -> Result<Reply, ApiError> {
    let (user_id, now) = (auth.user.id.clone(), state.clock.now_ms());
    let (usage, (uploads, upload_bytes)) = state
        .db
        .run(move |conn| Ok((recordings::usage(conn, &user_id)?, crate::uploads::usage(conn, &user_id, now)?)))
        .await?;
    let mut usage = serde_json::to_value(usage).map_err(|e| ApiError::internal("serialize", e))?;
    // Incomplete resumable uploads hold disk space too.
    usage["uploads"] = uploads.into();
    usage["upload_bytes"] = upload_bytes.into();
    Reply::json(Status::Ok, &serde_json::json!({"user": auth.user, "usage": usage}))
}

/// Checks the signed-in user's password, answering 401 `invalid_credentials` when wrong. Each
/// check counts in the login throttle, as a login does: a stolen app token (they never expire)
/// must not be a way to guess the password at full speed.
async fn confirm_password(
    state: &AppState,
    auth: &AuthUser,
    ip: Option<std::net::IpAddr>,
    password: String,
) -> Result<(), ApiError> {
    let (key, now) = (auth.user.username.to_ascii_lowercase(), state.clock.now_ms());
    state.throttle.admit(&key, ip, now)?;
    let user_id = auth.user.id.clone();
    let stored = state.db.run(move |conn| users::password_hash(conn, &user_id)).await?;
    let ok = state.passwords.verify(password, stored).await?;
    state.throttle.record(&key, ip, now, ok);
    if ok { Ok(()) } else { Err(ApiError::invalid_credentials()) }
}

#[derive(Deserialize)]
struct PasswordChange {
    current_password: String,
    new_password: String,
    /// Also revoke the app tokens (browser sessions are always revoked).
    #[serde(default)]
    revoke_apps: bool,
}

#[put("/me/password", data = "<body>")]
async fn change_password(
    state: &State<AppState>,
    auth: AuthUser,
    ip: Option<std::net::IpAddr>,
    body: Result<JsonBody<PasswordChange>, ApiError>,
) -> Result<Reply, ApiError> {
    let PasswordChange { current_password, new_password, revoke_apps } = body?.0;
    users::check_password(&new_password)?;
    confirm_password(state, &auth, ip, current_password).await?;
    let hash = state.passwords.hash(new_password).await?;
    let user_id = auth.user.id.clone();
    state
        .db
        .run(move |conn| users::set_password(conn, &auth.user.id, &hash, Some(&auth.token_hash), revoke_apps))
        .await?;
    state.changes.credentials(&user_id);
    Ok(Reply::no_content())
}

#[derive(Deserialize)]
struct AccountDeletion {
    password: String,
}

#[delete("/me", data = "<body>")]
async fn delete_account(
    state: &State<AppState>,
    jar: &CookieJar<'_>,
    secure: SecureCookies,
    auth: AuthUser,
    ip: Option<std::net::IpAddr>,
    body: Result<JsonBody<AccountDeletion>, ApiError>,
) -> Result<Reply, ApiError> {
    confirm_password(state, &auth, ip, body?.0.password).await?;
    crate::removal::delete_account(state, auth.user.id.clone()).await?;
    log::info!("account deleted: {}", auth.user.username);
    guards::clear_session_cookie(secure.0, jar);
    Ok(Reply::no_content())
}

pub fn routes() -> Vec<rocket::Route> {
    routes![signup, login, logout, me, change_password, delete_account]
}
