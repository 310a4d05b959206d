//! Background and startup work: finishing interrupted deletes, emptying `tmp/`, purging the
//! trash and expired sessions, and removing files that no row refers to.

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

/// Removes files under `recordings/` that no row refers to and that are older than `before_ms`
/// (younger ones may be uploads between their rename and their insert). Blocking.
///
/// When most files have no row (a lost or replaced database, the wrong data directory), nothing
/// is removed: that is a disaster to report, not litter to sweep.
pub fn remove_orphans(db: &Db, storage: &Storage, before_ms: i64) -> Result<usize, ApiError> {
    let listing = |e| ApiError::internal("listing recordings/", e);
    let conn = db.conn()?;
    // Counted first, then removed; one shard at a time, so memory stays small however many
    // recordings there are.
    let (mut files, mut orphans) = (0, 0);
    for shard in storage.shards().map_err(listing)? {
        let in_shard = storage.files_in(&shard).map_err(listing)?;
        files += in_shard.len();
        orphans += orphans_among(&conn, storage, &in_shard, before_ms, false)?;
    }
    if orphans == 0 {
        return Ok(0);
    }
    if most_of(orphans as u64, files as u64) {
        log::error!(
            "{orphans} of the {files} files in recordings/ have no recording in the database; not removing \
             them. If the database was lost or replaced, stop the server and restore recorder.db from a backup"
        );
        return Ok(0);
    }
    let mut removed = 0;
    for shard in storage.shards().map_err(listing)? {
        let in_shard = storage.files_in(&shard).map_err(listing)?;
        removed += orphans_among(&conn, storage, &in_shard, before_ms, true)?;
    }
    Ok(removed)
}

/// The safety rule of the orphan sweep and `check --repair`: when more than half of the things
/// looked at (and more than 10) seem broken, the cause is a lost database or an unmounted disk,
/// and nothing is removed or moved.
pub fn most_of(affected: u64, total: u64) -> bool {
    affected > 10 && affected * 2 > total
}

/// Counts (or, with `remove`, removes) the files without a row older than `before_ms`.
fn orphans_among(
    conn: &rusqlite::Connection,
    storage: &Storage,
    files: &[(uuid::Uuid, String, std::fs::Metadata)],
    before_ms: i64,
    remove: bool,
) -> Result<usize, ApiError> {
    let mut count = 0;
    for batch in files.chunks(500) {
        let ids: Vec<String> = batch.iter().map(|(id, _, _)| id.hyphenated().to_string()).collect();
        let existing = recordings::existing_ids(conn, &ids)?;
        for ((_, path, meta), id) in batch.iter().zip(&ids) {
            if existing.contains(id) {
                continue;
            }
            if crate::storage::modified_ms(meta) >= before_ms {
                continue;
            }
            if !remove {
                count += 1;
                continue;
            }
            match storage.unlink(path) {
                Ok(()) => {
                    log::warn!("removed {path}: no recording refers to it");
                    count += 1;
                }
                Err(e) => log::error!("cannot remove orphan {path}: {e}"),
            }
        }
    }
    Ok(count)
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
