//! Bulk actions on recordings: `POST /api/v1/recordings/batch` (trash, restore or purge many at
//! once, each id answered alone) and `GET /api/v1/recordings/archive` (a streamed ZIP).

use super::{JsonBody, QueryOnce, Reply};
use crate::archive::{self, ArchiveBody};
use crate::db::blocking;
use crate::http::error::ApiError;
use crate::http::guards::AuthUser;
use crate::recordings as rec;
use crate::state::AppState;
use rocket::http::{ContentType, Status};
use rocket::request::Request;
use rocket::response::{self, Responder, Response};
use rocket::{State, get, post, routes};
use serde::{Deserialize, Serialize};

/// Most ids one batch or archive request takes.
pub const MAX_IDS: usize = 500;

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Action {
    Trash,
    Restore,
    Purge,
}

#[derive(Deserialize)]
struct Batch {
    action: Action,
    ids: Vec<String>,
}

#[derive(Serialize)]
struct Outcome {
    id: String,
    status: u16,
}

fn too_many_or_none() -> ApiError {
    ApiError::bad_request(format!("give 1 to {MAX_IDS} recording ids"))
}

/// The distinct ids in the order given (two spellings of one id are one), each with its
/// canonical form, or `None` when the text is not an id at all (answered 404).
fn distinct(ids: Vec<String>) -> Vec<(String, Option<String>)> {
    let mut seen = std::collections::HashSet::new();
    ids.into_iter()
        .map(|id| {
            let parsed = rec::parse_id(&id).ok().map(|u| u.hyphenated().to_string());
            (id, parsed)
        })
        .filter(|(id, parsed)| seen.insert(parsed.clone().unwrap_or_else(|| id.clone())))
        .collect()
}

#[post("/recordings/batch", data = "<body>")]
async fn batch(
    state: &State<AppState>,
    auth: AuthUser,
    body: Result<JsonBody<Batch>, ApiError>,
) -> Result<Reply, ApiError> {
    let Batch { action, ids } = body?.0;
    if ids.is_empty() || ids.len() > MAX_IDS {
        return Err(too_many_or_none());
    }
    let ids = distinct(ids);
    let valid: Vec<String> = ids.iter().filter_map(|(_, parsed)| parsed.clone()).collect();
    let user_id = auth.user.id.clone();
    // Trash as `DELETE /recordings/{id}` does: deleted now when there is no trash.
    let purge_now = match action {
        Action::Purge => true,
        Action::Trash => state.config.trash.retention_days == 0,
        Action::Restore => false,
    };
    let done: Vec<bool> = if purge_now {
        // Rows and queued unlinks in one transaction, then the files.
        let (db, storage, now) = (state.db.clone(), state.storage.clone(), state.clock.now_ms());
        let user_id = user_id.clone();
        blocking(move || {
            let mut conn = db.conn()?;
            let (owned, paths) = rec::queue_purge_many(&mut conn, &user_id, &valid, now)?;
            rec::finish_unlinks(&conn, &storage, &paths)?;
            Ok(owned)
        })
        .await?
    } else if matches!(action, Action::Trash) {
        let now = state.clock.now_ms();
        let retention_ms = i64::from(state.config.trash.retention_days) * 86_400_000;
        let user_id = user_id.clone();
        state.db.run_durably(move |conn| rec::trash_many(conn, &user_id, &valid, now, retention_ms)).await?
    } else {
        let user_id = user_id.clone();
        state.db.run_durably(move |conn| rec::restore_many(conn, &user_id, &valid)).await?
    };
    if done.contains(&true) {
        state.changes.user(&user_id);
    }
    let mut done = done.into_iter();
    let results: Vec<Outcome> = ids
        .into_iter()
        .map(|(id, parsed)| {
            let ok = parsed.is_some() && done.next().unwrap_or(false);
            Outcome { id, status: if ok { 204 } else { 404 } }
        })
        .collect();
    Reply::json(Status::Ok, &serde_json::json!({ "results": results }))
}

/// A ZIP being streamed.
pub struct Archive(ArchiveBody);

impl<'r> Responder<'r, 'static> for Archive {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        Response::build()
            .header(ContentType::ZIP)
            .raw_header("Content-Disposition", "attachment; filename=\"recordings.zip\"")
            .raw_header("Cache-Control", "no-store")
            .streamed_body(self.0)
            .max_chunk_size(256 * 1024)
            .ok()
    }
}

#[get("/recordings/archive?<ids>")]
async fn download_archive(
    state: &State<AppState>,
    auth: AuthUser,
    _once: QueryOnce,
    ids: Option<String>,
) -> Result<Archive, ApiError> {
    let ids = ids.ok_or_else(|| ApiError::bad_request("`ids` is required: recording ids separated by commas"))?;
    let listed: Vec<&str> = ids.split(',').collect();
    if listed.len() > MAX_IDS || listed.iter().any(|id| id.is_empty()) {
        return Err(too_many_or_none());
    }
    let ids: Vec<String> = distinct(listed.into_iter().map(str::to_string).collect())
        .into_iter()
        .map(|(_, parsed)| parsed.ok_or_else(rec::not_found))
        .collect::<Result<_, _>>()?;
    let user_id = auth.user.id.clone();
    let recordings = state.db.run(move |conn| rec::live_many(conn, &user_id, &ids)).await?.ok_or_else(|| {
        ApiError::not_found("one of the ids is not a recording of yours outside the trash; nothing was archived")
    })?;
    let entries = archive::entries(&recordings)?;
    // Every file is there before the answer starts; one that goes missing later breaks the
    // transfer (see `archive`).
    let (storage, wanted) = (state.storage.clone(), entries.clone());
    blocking(move || {
        for entry in &wanted {
            let context = format!("archiving recording {}", entry.id);
            match storage.store(entry.store).and_then(|store| store.size_of(&entry.id)) {
                Ok(Some(_)) => {}
                Ok(None) => return Err(crate::storage::store::BlobError::NotFound.api(&context)),
                Err(e) => return Err(e.api(&context)),
            }
        }
        Ok(())
    })
    .await?;
    Ok(Archive(archive::stream(state.storage.clone(), entries)))
}

pub fn routes() -> Vec<rocket::Route> {
    routes![batch, download_archive]
}
