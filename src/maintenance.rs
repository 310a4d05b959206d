//! Background and startup work: finishing interrupted deletes, emptying `tmp/`, purging the
//! trash and expired sessions, and removing files that no row refers to.

use crate::blobs::{Object, Store};
use crate::db::Db;
use crate::error::ApiError;
use crate::recordings;
use crate::storage::Storage;
use crate::users;

/// How many trash rows one purge transaction takes.
const PURGE_BATCH: u32 = 500;

/// At startup, before the first request: finish pending unlinks, empty `tmp/`.
pub fn recover(db: &Db, storage: &Storage) -> Result<(), ApiError> {
    let conn = db.conn()?;
    let pending = recordings::pending_unlinks(&conn)?;
    if !pending.is_empty() {
        let done = recordings::finish_unlinks(&conn, storage, &pending)?;
        log::info!("finished {done} interrupted deletes");
    }
    crate::uploads::recover(db, storage)?;
    crate::jobs::recover(&conn, crate::clock::system_now_ms())?;
    let removed = storage.empty_tmp().map_err(|e| ApiError::internal("emptying tmp/", e))?;
    if removed > 0 {
        log::info!("removed {removed} unfinished uploads from tmp/");
    }
    Ok(())
}

/// What one sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub recordings: usize,
    pub sessions: usize,
    pub uploads: crate::uploads::Swept,
}

/// Removes trashed recordings whose `purge_at` is at or before `now`, expired sessions and
/// expired resumable uploads (keeping those that asked to be kept). Blocking.
pub fn sweep(db: &Db, storage: &Storage, uploads: &crate::uploads::Registry, now: i64) -> Result<Swept, ApiError> {
    let mut conn = db.conn()?;
    let mut swept = Swept::default();
    // Deletes that failed earlier (an object store that was down) are tried again; deleting
    // twice is harmless, so one the server is finishing right now does not matter.
    let failed = recordings::pending_unlinks(&conn)?;
    if !failed.is_empty() {
        let done = recordings::finish_unlinks(&conn, storage, &failed)?;
        log::info!("finished {done} of {} deletes that had failed", failed.len());
    }
    loop {
        let paths = recordings::queue_expired(&mut conn, now, PURGE_BATCH)?;
        swept.recordings += recordings::finish_unlinks(&conn, storage, &paths)?;
        if paths.len() < PURGE_BATCH as usize {
            break;
        }
    }
    swept.sessions = users::purge_expired_sessions(&conn, now)?;
    drop(conn);
    swept.uploads = crate::uploads::sweep(db, storage, uploads, now)?;
    Ok(swept)
}

/// Removes recordings' bytes that no row refers to and that are older than
/// `before_ms` (younger ones may be uploads between their bytes and their insert, or a
/// migration between its copy and its switch), on disk and in the object store. Blocking.
///
/// When most of a store's objects have no row (a lost or replaced database, the wrong data
/// directory or bucket), nothing is removed: that is a disaster to report, not litter to sweep.
pub fn remove_orphans(db: &Db, storage: &Storage, before_ms: i64) -> Result<usize, ApiError> {
    let conn = db.conn()?;
    let stores: Vec<&dyn Store> =
        std::iter::once(storage.local() as &dyn Store).chain(storage.s3().map(|s| s as &dyn Store)).collect();
    let mut removed = 0;
    for store in stores {
        let objects = match store.list() {
            Ok(objects) => objects,
            Err(e) => {
                log::warn!("the orphan sweep cannot list {}: {e}; skipped until the next sweep", store.describe());
                continue;
            }
        };
        let orphans = orphans_among(&conn, &objects, before_ms)?;
        if orphans.is_empty() {
            continue;
        }
        if most_of(orphans.len() as u64, objects.len() as u64) {
            log::error!(
                "{} of the {} recordings' files in {} have no recording in the database; not removing them. \
                 If the database was lost or replaced, stop the server and restore recorder.db from a backup",
                orphans.len(),
                objects.len(),
                store.describe()
            );
            continue;
        }
        for id in orphans {
            // Asked once more right before the delete: a row is never left without its bytes.
            if row_exists(&conn, &id)? {
                continue;
            }
            match store.delete(&id) {
                Ok(()) => {
                    log::warn!("removed recording bytes {id} from {}: no recording refers to them", store.describe());
                    removed += 1;
                }
                Err(e) => log::error!("cannot remove orphan {id} from {}: {e}", store.describe()),
            }
        }
    }
    Ok(removed)
}

/// Whether any row has this id. Bytes whose recording is in the other store (what an
/// interrupted migration leaves) are not swept here: the next migration overwrites them, and
/// `recorder check --repair` removes them once they are old.
fn row_exists(conn: &rusqlite::Connection, id: &uuid::Uuid) -> Result<bool, ApiError> {
    Ok(conn.prepare_cached("SELECT 1 FROM recordings WHERE id = ?1")?.exists([id.hyphenated().to_string()])?)
}

/// The safety rule of the orphan sweep and `check --repair`: when more than half of the things
/// looked at (and more than 10) seem broken, the cause is a lost database or an unmounted disk,
/// and nothing is removed or moved.
pub fn most_of(affected: u64, total: u64) -> bool {
    affected > 10 && affected * 2 > total
}

/// The objects without a row in their store older than `before_ms`.
fn orphans_among(conn: &rusqlite::Connection, objects: &[Object], before_ms: i64) -> Result<Vec<uuid::Uuid>, ApiError> {
    let mut orphans = Vec::new();
    for object in objects {
        if object.modified_ms < before_ms && !row_exists(conn, &object.id)? {
            orphans.push(object.id);
        }
    }
    Ok(orphans)
}

/// The background loop: one orphan sweep, then a purge sweep at once and every hour until
/// shutdown.
/// What the background loop needs to know beyond the data directory.
pub struct Background {
    pub uploads: crate::uploads::Registry,
    pub changes: crate::changes::Notifier,
    pub clock: crate::Clock,
    pub started_ms: i64,
    /// How long the changes feed's history is kept, in milliseconds.
    pub changes_keep_ms: i64,
}

pub async fn run(db: Db, storage: Storage, background: Background, shutdown: rocket::Shutdown) {
    let Background { uploads, changes, clock, started_ms, changes_keep_ms } = background;
    let (db2, storage2) = (db.clone(), storage.clone());
    match tokio::task::spawn_blocking(move || remove_orphans(&db2, &storage2, started_ms)).await {
        Ok(Ok(n)) if n > 0 => log::info!("orphan sweep removed {n} files"),
        Ok(Ok(_)) => {}
        Ok(Err(e)) => log::error!("orphan sweep failed: {}", e.message),
        Err(e) => log::error!("orphan sweep failed: {e}"),
    }
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (db, storage, uploads, now) = (db.clone(), storage.clone(), uploads.clone(), clock.now_ms());
        let swept = tokio::task::spawn_blocking(move || {
            let swept = sweep(&db, &storage, &uploads, now);
            if let Err(e) = db.conn().and_then(|conn| crate::changes::prune(&conn, now - changes_keep_ms)) {
                log::error!("pruning the changes feed failed: {}", e.message);
            }
            swept
        });
        match swept.await {
            Ok(Ok(s)) => {
                if s.recordings > 0 || s.uploads.kept > 0 {
                    changes.everyone();
                }
                if s.recordings > 0 {
                    log::info!("trash sweep purged {} recordings", s.recordings);
                }
                if s.uploads.expired + s.uploads.kept > 0 {
                    log::info!(
                        "upload sweep removed {} expired uploads and kept {} as recordings",
                        s.uploads.expired,
                        s.uploads.kept
                    );
                }
            }
            Ok(Err(e)) => log::error!("trash sweep failed: {}", e.message),
            Err(e) => log::error!("trash sweep failed: {e}"),
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(3600)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orphan_files(storage: &Storage, n: usize) -> Vec<std::path::PathBuf> {
        (0..n)
            .map(|_| {
                let path = storage.path(&Storage::relative_path(&uuid::Uuid::now_v7()));
                std::fs::create_dir_all(path.parent().expect("shard")).expect("mkdir");
                std::fs::write(&path, b"RIFF").expect("write");
                path
            })
            .collect()
    }

    #[test]
    fn a_few_orphans_are_removed_but_a_lost_database_keeps_every_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path()).expect("storage");
        let db = Db::open(&storage.db_path()).expect("db");
        let later = crate::clock::system_now_ms() + 60_000;

        let few = orphan_files(&storage, 3);
        assert_eq!(remove_orphans(&db, &storage, later).ok(), Some(3));
        assert!(few.iter().all(|p| !p.exists()));

        // An empty database beside many files: not litter, a lost database.
        let many = orphan_files(&storage, 12);
        assert_eq!(remove_orphans(&db, &storage, later).ok(), Some(0));
        assert!(many.iter().all(|p| p.exists()), "every file is kept");
    }
}
