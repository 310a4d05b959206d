//! Thin HTTP handlers: parse and check input, call one domain function, shape the answer.

pub mod accounts;
pub mod batch;
pub mod bookmarks;
pub mod changes;
pub mod compat;
pub mod error;
pub mod guards;
pub mod https;
pub mod recordings;
pub mod server;
pub mod setup;
pub mod shares;
pub mod tokens;
pub mod transcripts;
pub mod trash;
pub mod ui;
pub mod uploads;

use crate::http::error::ApiError;
use rocket::data::{self, Data, FromData, ToByteUnit};
use rocket::http::{ContentType, Header, Status};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::response::{self, Responder, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io::Cursor;
use tokio::io::AsyncReadExt;

/// Largest JSON request body.
const JSON_LIMIT_KIB: u64 = 64;
/// How much of an oversized JSON body is read and discarded before answering 413.
const JSON_DRAIN_MIB: u64 = 4;

/// A JSON request body (Content-Type application/json, at most 64 KiB). Take it as
/// `Result<Json<T>, ApiError>` so a bad body answers with the exact error.
pub struct JsonBody<T>(pub T);

#[rocket::async_trait]
impl<'r, T: DeserializeOwned> FromData<'r> for JsonBody<T> {
    type Error = ApiError;

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        let fail = |e: ApiError| data::Outcome::Error((e.status, e));
        if !req.content_type().is_some_and(|ct| ct.is_json()) {
            return fail(ApiError::unsupported_media_type("send a JSON body with Content-Type: application/json"));
        }
        // Read one byte past the limit to know it was exceeded; then discard (a bounded amount
        // of) the rest, so the client reads the 413 instead of a connection reset.
        let mut stream = data.open(JSON_DRAIN_MIB.mebibytes());
        let mut bytes = Vec::new();
        let limit = JSON_LIMIT_KIB * 1024;
        if (&mut stream).take(limit + 1).read_to_end(&mut bytes).await.is_err() {
            return fail(ApiError::bad_request("the request body could not be read"));
        }
        if bytes.len() as u64 > limit {
            let _ = tokio::io::copy(&mut stream, &mut tokio::io::sink()).await;
            return fail(ApiError::payload_too_large(format!("JSON bodies are at most {JSON_LIMIT_KIB} KiB")));
        }
        match json_object(&bytes) {
            Ok(value) => data::Outcome::Success(JsonBody(value)),
            Err(e) => fail(e),
        }
    }
}

/// A JSON body read as `T`: it must be an object (serde would also take a struct written as an
/// array of its fields in order, which the API does not speak).
pub fn json_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(ApiError::bad_request("invalid JSON body: it must be a JSON object"));
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// A JSON answer with a status and extra headers.
pub struct Reply {
    status: Status,
    body: String,
    headers: Vec<(&'static str, String)>,
    cache: &'static str,
}

impl Reply {
    pub fn json<T: Serialize>(status: Status, value: &T) -> Result<Reply, ApiError> {
        let body = serde_json::to_string(value).map_err(|e| ApiError::internal("serialize", e))?;
        Ok(Reply { status, body, headers: Vec::new(), cache: "no-store" })
    }

    pub fn no_content() -> Reply {
        Reply::empty(Status::NoContent)
    }

    /// An answer whose headers say it all (resumable uploads' offsets).
    pub fn empty(status: Status) -> Reply {
        Reply { status, body: String::new(), headers: Vec::new(), cache: "no-store" }
    }

    /// `Cache-Control` (default `no-store`).
    pub fn cache(mut self, value: &'static str) -> Reply {
        self.cache = value;
        self
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}

impl<'r> Responder<'r, 'static> for Reply {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let mut response = Response::build();
        response.status(self.status).raw_header("Cache-Control", self.cache);
        if !self.body.is_empty() {
            response.header(ContentType::JSON).sized_body(self.body.len(), Cursor::new(self.body));
        }
        for (name, value) in self.headers {
            response.header(Header::new(name, value));
        }
        Ok(response.finalize())
    }
}

/// Whether cookies set in this answer must be `Secure`.
pub struct SecureCookies(pub bool);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for SecureCookies {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let secure = req
            .rocket()
            .state::<crate::state::AppState>()
            .is_some_and(|s| crate::http::guards::wants_secure_cookie(req, s));
        Outcome::Success(SecureCookies(secure))
    }
}

/// A request guard for routes with query parameters: one of them given twice is 400
/// `bad_request`. (Rocket reads a repeated `Option` parameter as absent, so `?limit=x&limit=y`
/// would otherwise be served as if neither were there.)
pub struct QueryOnce;

#[rocket::async_trait]
impl<'r> FromRequest<'r> for QueryOnce {
    type Error = ApiError;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, ApiError> {
        let Some(query) = req.uri().query() else { return Outcome::Success(QueryOnce) };
        // The route's own parameters (`<limit>&<cursor>`); any other parameter is ignored, repeated or not.
        let declared: Vec<&str> = req
            .route()
            .and_then(|route| route.uri.query())
            .map(|pattern| pattern.split('&').map(|p| p.trim_start_matches('<').trim_end_matches('>')).collect())
            .unwrap_or_default();
        let mut seen = std::collections::HashSet::new();
        for (name, _) in query.segments().filter(|(name, _)| declared.contains(name)) {
            if !seen.insert(name) {
                let error = ApiError::bad_request(format!("the query parameter `{name}` is given more than once"));
                return crate::http::guards::guard_fail(req, error);
            }
        }
        Outcome::Success(QueryOnce)
    }
}

/// Parses `limit` (1–200, default 50).
pub fn parse_limit(limit: Option<&str>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(50),
        Some(text) => match text.parse::<u32>() {
            Ok(n) if (1..=200).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_request("`limit` must be a whole number from 1 to 200")),
        },
    }
}

/// A yes/no query flag: `1`, `true`, `yes` or `on` (any case) is yes.
pub fn flag(value: Option<&str>) -> bool {
    value.is_some_and(|v| ["1", "true", "yes", "on"].iter().any(|y| v.eq_ignore_ascii_case(y)))
}

/// All API routes, mounted at `/api/v1`.
pub fn api() -> Vec<rocket::Route> {
    let mut routes = Vec::new();
    routes.extend(server::routes());
    routes.extend(accounts::routes());
    routes.extend(recordings::routes());
    routes.extend(batch::routes());
    routes.extend(shares::routes());
    routes.extend(trash::routes());
    routes.extend(uploads::routes());
    routes.extend(tokens::routes());
    routes.extend(changes::routes());
    routes.extend(transcripts::routes());
    routes.extend(bookmarks::routes());
    routes
}

/// Whether an `If-None-Match` header names this ETag (weak forms and `*` included).
pub(crate) fn etag_matches(header: &str, etag: &str) -> bool {
    header.split(',').map(|t| t.trim().trim_start_matches("W/")).any(|t| t == "*" || t == etag)
}

/// Rocket's request body, as the domain reads bodies.
impl<'r> crate::body::Body for rocket::Data<'r> {
    type Reader = rocket::data::DataStream<'r>;

    fn open(self, limit: u64) -> Self::Reader {
        use rocket::data::ToByteUnit as _;
        rocket::Data::open(self, limit.bytes())
    }
}

// ---------------------------------------------------------------------------------------------
// Assembly.

use crate::state::AppState;
use rocket::config::{Ident, LogLevel, Shutdown};
use rocket::fairing::AdHoc;
use rocket::{Build, Rocket, catchers};
use std::time::Instant;

/// The signed-in user of a request, for the request log.
#[derive(Default)]
pub struct RequestUser(pub Option<String>);

struct RequestStart(Instant);

/// The HTTP face: routes, catchers and fairings over the core.
pub fn rocket(state: AppState) -> Rocket<Build> {
    let mut config = rocket_config(&state);
    config.port = state.config.server.port;
    assemble(state, config)
}

/// Rocket's settings from ours, for either listener.
fn rocket_config(state: &AppState) -> rocket::Config {
    let c = &state.config;
    rocket::Config {
        address: c.server.address,
        ip_header: c.server.client_ip_header.clone().map(Into::into),
        log_level: LogLevel::Off,
        cli_colors: false,
        ident: Ident::try_new("recorder").unwrap_or_default(),
        temp_dir: state.storage.tmp_dir().into(),
        shutdown: Shutdown { ctrlc: true, grace: c.server.shutdown_grace_secs, mercy: 5, ..Shutdown::default() },
        ..rocket::Config::release_default()
    }
}

/// The routes, catchers and fairings over the core, on `rocket_config`'s listener.
fn assemble(state: AppState, rocket_config: rocket::Config) -> Rocket<Build> {
    let c = &state.config;
    let compat = if c.compat.enabled { compat::routes() } else { Vec::new() };
    rocket::custom(rocket_config)
        .mount("/", rocket::routes![server::healthz, server::metrics])
        .mount("/", compat)
        .mount("/api/v1", api())
        .mount("/", shares::public_routes())
        .mount("/", setup::routes())
        .mount("/", ui::routes())
        .register("/", catchers![error::json_catcher])
        .attach(AdHoc::on_request("request start", |req, _| {
            Box::pin(async move {
                req.local_cache(|| RequestStart(Instant::now()));
            })
        }))
        .attach(AdHoc::on_response("headers and log", |req, res| {
            Box::pin(async move {
                res.set_raw_header("X-Content-Type-Options", "nosniff");
                // tus: every answer to a tus request says which version it speaks.
                if req.headers().contains("Tus-Resumable") && req.uri().path().starts_with("/api/v1/uploads") {
                    res.set_raw_header("Tus-Resumable", uploads::TUS_VERSION);
                }
                res.set_raw_header("Referrer-Policy", "same-origin");
                res.set_raw_header("X-Frame-Options", "DENY");
                if !res.headers().contains("Content-Security-Policy") {
                    res.set_raw_header("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'");
                }
                let started = req.local_cache(|| RequestStart(Instant::now())).0;
                if let Some(state) = req.rocket().state::<AppState>() {
                    let route = req.route().map(|r| r.uri.path());
                    state.metrics.request(req.method().as_str(), route, res.status().code, started.elapsed());
                }
                let user = req.local_cache(RequestUser::default).0.as_deref().unwrap_or("-");
                let bytes = res.headers().get_one("Content-Length").unwrap_or("-");
                // The path only: queries may carry names, and nothing secret is ever logged.
                log::info!(
                    target: "recorder::http",
                    "{} {} {} {}B {}ms user={}",
                    req.method(),
                    crate::logger::loggable_path(req.uri().path().as_str()),
                    res.status().code,
                    bytes,
                    started.elapsed().as_millis(),
                    user
                );
            })
        }))
        .manage(state)
}
