//! `GET /healthz`, `GET /metrics`, `GET /api/v1/server` and `GET /api/v1/openapi.json`.

use super::Reply;
use crate::error::Error;
use crate::http::error::ApiError;
use crate::state::AppState;
use rocket::http::{ContentType, Status};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::{State, get, routes};
use serde_json::json;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Healthy when the database answers, the data directory takes a write and the object store
/// (when configured) answers.
#[get("/healthz")]
pub async fn healthz(state: &State<AppState>) -> Result<Reply, ApiError> {
    let tmp = state.storage.tmp_dir().join(format!(".healthz-{}", uuid::Uuid::now_v7()));
    let storage = state.storage.clone();
    // The probes at once, each on the blocking pool.
    let (db_ok, disk_ok, store_ok) = tokio::join!(
        state.db.run(|conn| Ok(conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?)),
        crate::db::blocking(move || {
            std::fs::write(&tmp, b"ok")
                .and_then(|()| std::fs::remove_file(&tmp))
                .map_err(|e| Error::unavailable("data directory not writable", e))
        }),
        crate::db::blocking(move || {
            use crate::storage::store::Store as _;
            match storage.s3() {
                // A key that is never used: "not found" is the healthy answer.
                Some(s3) => s3.size_of(&uuid::Uuid::nil()).map(|_| ()).map_err(|e| e.api("object store health check")),
                None => Ok(()),
            }
        })
    );
    match (db_ok, disk_ok, store_ok) {
        (Ok(_), Ok(()), Ok(())) => Reply::json(Status::Ok, &json!({"status": "ok", "version": VERSION})),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(Error::unavailable("health check", e).into()),
    }
}

/// Who may read `/metrics`: with `metrics.enabled`, a client on this machine (the configured
/// client-address header counts, so a proxy does not make everyone local) or one with
/// `metrics.token`. Disabled, the route does not exist (404).
pub struct MetricsReader;

#[rocket::async_trait]
impl<'r> FromRequest<'r> for MetricsReader {
    type Error = ApiError;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, ApiError> {
        let Some(state) = req.rocket().state::<AppState>() else {
            return crate::http::guards::guard_fail(req, ApiError::internal("metrics", "no state"));
        };
        let config = &state.config;
        if !config.metrics.enabled {
            return crate::http::guards::guard_fail(req, ApiError::not_found("no such route"));
        }
        let local = req.client_ip().is_some_and(|ip| ip.is_loopback());
        let bearer = req.headers().get_one("Authorization").and_then(|h| h.strip_prefix("Bearer "));
        // Compared as digests, so the time taken says nothing about how much of a guess was right.
        let token_ok = match (&config.metrics.token, bearer) {
            (Some(token), Some(given)) => {
                use sha2::{Digest, Sha256};
                Sha256::digest(token.as_bytes()) == Sha256::digest(given.trim().as_bytes())
            }
            _ => false,
        };
        if local || token_ok {
            Outcome::Success(MetricsReader)
        } else {
            crate::http::guards::guard_fail(req, ApiError::unauthorized())
        }
    }
}

/// Prometheus text (OpenMetrics 1.0) for dashboards.
#[get("/metrics")]
pub async fn metrics(state: &State<AppState>, _reader: MetricsReader) -> Result<(ContentType, String), ApiError> {
    let text = state
        .metrics
        .scrape(&state.db, state.config.storage.data_dir.clone(), state.jobs.finished(), state.changes.subscribers())
        .await?;
    let openmetrics =
        ContentType::new("application", "openmetrics-text").with_params([("version", "1.0.0"), ("charset", "utf-8")]);
    Ok((openmetrics, text))
}

#[get("/server")]
fn server_info(state: &State<AppState>, host: super::setup::RequestHost) -> Result<Reply, ApiError> {
    let c = &state.config;
    Reply::json(
        Status::Ok,
        &json!({
            "version": VERSION,
            "signups": c.accounts.signups.as_str(),
            "max_upload_size": c.storage.max_upload_size,
            "trash_retention_days": c.trash.retention_days,
            "https": super::setup::server_info(state, host.0.as_deref()),
        }),
    )
}

/// The OpenAPI 3.1 description of every route; a test holds it equal to the mounted routes.
#[get("/openapi.json")]
fn openapi() -> (ContentType, &'static str) {
    (ContentType::JSON, include_str!("../openapi.json"))
}

pub fn routes() -> Vec<rocket::Route> {
    routes![server_info, openapi]
}
