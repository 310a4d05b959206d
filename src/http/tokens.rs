//! `/api/v1/tokens`: app tokens for phones and scripts, and the browser sessions beside them.

use super::{JsonBody, Reply};
use crate::auth;
use crate::clock::rfc3339;
use crate::http::error::ApiError;
use crate::http::guards::{self, AuthUser};
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
    /// What a phone app scans to pair: `{"server": "<this server's URL>", "token": "…"}`.
    pairing: String,
    /// `pairing` as a QR code, an SVG document.
    qr_svg: String,
}

/// The URL this request reached the server at: `Host`, over HTTPS when the request came that
/// way (a proxy's `X-Forwarded-Proto`) or cookies are configured `Secure`.
pub struct ServerUrl(String);

#[rocket::async_trait]
impl<'r> rocket::request::FromRequest<'r> for ServerUrl {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r rocket::Request<'_>) -> rocket::request::Outcome<Self, Self::Error> {
        let secure = req.rocket().state::<AppState>().is_some_and(|s| guards::wants_secure_cookie(req, s));
        // `Host`, or HTTP/2's `:authority`.
        let host = req.host().map_or_else(|| "localhost".to_string(), |h| h.to_string());
        let scheme = if secure { "https" } else { "http" };
        rocket::request::Outcome::Success(ServerUrl(format!("{scheme}://{host}")))
    }
}

/// An SVG QR code of `text`.
fn qr_svg(text: &str) -> Result<String, ApiError> {
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| ApiError::internal("QR code", e))?;
    Ok(code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(256, 256).quiet_zone(true).build())
}

#[post("/tokens", data = "<body>")]
async fn create(
    state: &State<AppState>,
    auth: AuthUser,
    server: ServerUrl,
    body: Result<JsonBody<NewToken>, ApiError>,
) -> Result<Reply, ApiError> {
    let name = users::normalize_token_name(&body?.0.name)?;
    let (token, hash) = auth::new_token();
    let now = state.clock.now_ms();
    let (user_id, stored_name) = (auth.user.id.clone(), name.clone());
    let id = state.db.run(move |conn| users::create_app_token(conn, &user_id, &hash, &stored_name, now)).await?;
    log::info!("app token {id} created for {}", auth.user.username);
    let pairing = serde_json::json!({ "server": server.0, "token": token }).to_string();
    let qr_svg = qr_svg(&pairing)?;
    Reply::json(Status::Created, &Created { id, name, token, created_at: rfc3339(now), pairing, qr_svg })
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
    let owner = user_id.clone();
    if state.db.run(move |conn| users::revoke_token(conn, &user_id, &id)).await? {
        // Event streams opened with it end now.
        state.changes.credentials(&owner);
        Ok(Reply::no_content())
    } else {
        Err(ApiError::not_found("no token or session with that id"))
    }
}

pub fn routes() -> Vec<rocket::Route> {
    routes![create, list, revoke]
}
