//! `GET /healthz`, `GET /api/v1/server` and `GET /api/v1/openapi.json`.

use super::Reply;
use crate::error::ApiError;
use crate::state::AppState;
use rocket::http::{ContentType, Status};
use rocket::{State, get, routes};
use serde_json::json;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Healthy when the database answers and the data directory takes a write.
#[get("/healthz")]
pub async fn healthz(state: &State<AppState>) -> Result<Reply, ApiError> {
    let tmp = state.storage.tmp_dir().join(format!(".healthz-{}", uuid::Uuid::now_v7()));
    // Both probes at once, each on the blocking pool.
    let (db_ok, disk_ok) = tokio::join!(
        state.db.run(|conn| Ok(conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?)),
        crate::db::blocking(move || {
            std::fs::write(&tmp, b"ok")
                .and_then(|()| std::fs::remove_file(&tmp))
                .map_err(|e| ApiError::unavailable("data directory not writable", e))
        })
    );
    match (db_ok, disk_ok) {
        (Ok(_), Ok(())) => Reply::json(Status::Ok, &json!({"status": "ok", "version": VERSION})),
        (Err(e), _) | (_, Err(e)) => Err(ApiError::unavailable("health check", e.message)),
    }
}

#[get("/server")]
fn server_info(state: &State<AppState>) -> Result<Reply, ApiError> {
    let c = &state.config;
    Reply::json(
        Status::Ok,
        &json!({
            "version": VERSION,
            "signups": c.signups.as_str(),
            "max_upload_size": c.max_upload_size,
            "trash_retention_days": c.retention_days,
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
