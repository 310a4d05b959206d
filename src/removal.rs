//! The one way a recording goes out, whichever face asks (HTTP, WebDAV, the original app's API):
//! to the trash, or deleted now (its row and the queued delete of its bytes in one fsynced
//! transaction, then the bytes); and the way an account goes, with all it holds. Each tells the
//! user's live streams.

use crate::db::blocking;
use crate::error::Error;
use crate::recordings::{self as rec, Purge};
use crate::state::AppState;

/// Moves a recording to the trash, or deletes it now when asked or when there is no trash.
/// False when the user has no such recording.
pub async fn delete_recording(state: &AppState, user_id: String, id: String, permanent: bool) -> Result<bool, Error> {
    if permanent || state.config.trash.retention_days == 0 {
        return Ok(purge(state, user_id, Purge::One(id)).await? > 0);
    }
    let now = state.clock.now_ms();
    let retention_ms = i64::from(state.config.trash.retention_days) * 86_400_000;
    let who = user_id.clone();
    let trashed = state.db.run_durably(move |conn| rec::trash(conn, &who, &id, now, retention_ms)).await?;
    if trashed {
        state.changes.user(&user_id);
    }
    Ok(trashed)
}

/// Deletes now: rows and queued unlinks in one transaction, then the files. Returns how many.
pub async fn purge(state: &AppState, user_id: String, which: Purge) -> Result<usize, Error> {
    let (db, storage, now) = (state.db.clone(), state.storage.clone(), state.clock.now_ms());
    let who = user_id.clone();
    let purged = blocking(move || {
        let mut conn = db.conn()?;
        let paths = rec::queue_purge(&mut conn, &who, which, now)?;
        rec::finish_unlinks(&conn, &storage, &paths)?;
        Ok(paths.len())
    })
    .await?;
    if purged > 0 {
        state.changes.user(&user_id);
    }
    Ok(purged)
}

/// Deletes an account, its sessions, rows and files.
pub async fn delete_account(state: &AppState, user_id: String) -> Result<usize, Error> {
    let notify = user_id.clone();
    let (db, storage, now) = (state.db.clone(), state.storage.clone(), state.clock.now_ms());
    blocking(move || {
        let mut conn = db.conn()?;
        let paths = crate::users::delete(&mut conn, &user_id, now)?;
        rec::finish_unlinks(&conn, &storage, &paths)
    })
    .await
    .inspect(|_| state.changes.credentials(&notify))
}
