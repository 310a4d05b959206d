//! Background and startup work: finishing interrupted deletes, emptying `tmp/`, purging the
//! trash and expired sessions, and removing files that no row refers to.

use crate::db::Db;
use crate::error::Error;
use crate::recordings;
use crate::storage::Storage;
use crate::storage::store::{Backend, Store};
use crate::users;

/// How many trash rows one purge transaction takes.
const PURGE_BATCH: u32 = 500;

/// At startup, before the first request: finish pending unlinks, empty `tmp/`.
pub fn recover(db: &Db, storage: &Storage) -> Result<(), Error> {
    let conn = db.conn()?;
    let pending = recordings::pending_unlinks(&conn)?;
    if !pending.is_empty() {
        let done = recordings::finish_unlinks(&conn, storage, &pending)?;
        log::info!("finished {done} interrupted deletes");
    }
    // Before anything new is noted: this process's pid on an earlier boot is not this process.
    let settled = crate::inflight::settle(db, storage, true)?;
    if settled != crate::inflight::Settled::default() {
        log::info!(
            "settled interrupted writes: removed {} uploads' bytes, returned {} files to lost+found",
            settled.deleted,
            settled.returned
        );
    }
    crate::uploads::recover(db, storage)?;
    crate::jobs::recover(&conn, crate::clock::system_now_ms())?;
    let retried = crate::jobs::retry_undecodable(&conn, crate::clock::system_now_ms())?;
    if retried > 0 {
        log::info!("{retried} recordings this build can decode and an earlier one could not are analysed again");
    }
    let removed = storage.empty_tmp().map_err(|e| Error::internal("emptying tmp/", e))?;
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
pub fn sweep(db: &Db, storage: &Storage, uploads: &crate::uploads::Registry, now: i64) -> Result<Swept, Error> {
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

/// What the startup sweep found: files and objects that no recording of this database refers
/// to and no note of this installation names. None of them is deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Unknown {
    /// Files moved from `recordings/` to `lost+found/` by this sweep.
    pub moved: usize,
    /// Files in `lost+found/` now.
    pub lost_found: usize,
    /// Objects in the object store left where they are.
    pub objects: usize,
}

impl Unknown {
    pub fn lost(&self) -> usize {
        self.lost_found + self.objects
    }
}

/// Looks for stored bytes that no row refers to, older than `before_ms` (this start). Only an
/// in-flight note proves such bytes to be litter, and those were settled before the server
/// started; anything else may be a recording a restored older database or another installation
/// knows. On disk it is moved to `lost+found/`; in the object store it is left where it is. Both
/// are counted for `recorder check`, which reports them, and `check --recover`, which turns them
/// back into recordings. Blocking.
pub fn sweep_unknown(db: &Db, storage: &Storage, before_ms: i64) -> Result<Unknown, Error> {
    let conn = db.conn()?;
    let mut unknown = Unknown::default();
    let stores: Vec<&dyn Store> =
        std::iter::once(storage.local() as &dyn Store).chain(storage.s3().map(|s| s as &dyn Store)).collect();
    for store in stores {
        let objects = match store.list() {
            Ok(objects) => objects,
            Err(e) => {
                log::warn!("the startup sweep cannot list {}: {e}; skipped until the next start", store.describe());
                continue;
            }
        };
        let backend = store.backend();
        let mut found = Vec::new();
        for object in &objects {
            if object.modified_ms < before_ms && unreferenced(&conn, &object.id, backend)? {
                found.push(object.id);
            }
        }
        if found.is_empty() {
            continue;
        }
        if most_of(found.len() as u64, objects.len() as u64) {
            log::error!(
                "{} of the {} recordings' files in {} have no recording in the database: was recorder.db lost or \
                 replaced? Nothing is deleted. Stop the server and put the right recorder.db back, or bring them back \
                 with `recorder check --recover`",
                found.len(),
                objects.len(),
                store.describe()
            );
        }
        match backend {
            Backend::Local => {
                for id in found {
                    // Asked once more right before the move: a recording arriving now keeps its file.
                    if !unreferenced(&conn, &id, backend)? {
                        continue;
                    }
                    match crate::lostfound::put(storage.root(), &id) {
                        Ok(to) => {
                            log::warn!(
                                "moved {} to {}: no recording refers to it (recorder check --recover brings it back)",
                                Storage::relative_path(&id),
                                to.display()
                            );
                            unknown.moved += 1;
                        }
                        Err(e) => log::error!("cannot move {} to lost+found: {e}", Storage::relative_path(&id)),
                    }
                }
            }
            Backend::S3 => {
                log::warn!(
                    "{} objects in {} have no recording in this database; they are left where they are \
                     (recorder check lists them, recorder check --recover brings them back)",
                    found.len(),
                    store.describe()
                );
                unknown.objects += found.len();
            }
        }
    }
    unknown.lost_found =
        crate::lostfound::list(storage.root()).map_err(|e| Error::internal("listing lost+found", e))?.len();
    Ok(unknown)
}

/// No row in this store, no in-flight note, no pending delete: bytes this database does not know.
pub fn unreferenced(conn: &rusqlite::Connection, id: &uuid::Uuid, backend: Backend) -> Result<bool, Error> {
    let text = id.hyphenated().to_string();
    let pending = crate::storage::store::pending_path(backend, id);
    Ok(!recordings::in_store(conn, &text, backend)?
        && !crate::inflight::is_noted(conn, &text, backend)?
        && !conn.prepare_cached("SELECT 1 FROM pending_unlinks WHERE path = ?1")?.exists([pending])?)
}

/// When more than half of the things looked at (and more than 10) seem broken, the cause is a
/// lost database or an unmounted disk: `check --repair` changes nothing then, and the sweep says
/// so loudly.
pub fn most_of(affected: u64, total: u64) -> bool {
    affected > 10 && affected * 2 > total
}

/// The background loop: one orphan sweep, then a purge sweep at once and every hour until
/// shutdown.
/// What the background loop needs to know beyond the data directory.
pub struct Background {
    pub uploads: crate::uploads::Registry,
    pub changes: crate::changes::Notifier,
    pub clock: crate::clock::Clock,
    pub started_ms: i64,
    /// How long the changes feed's history is kept, in milliseconds.
    pub changes_keep_ms: i64,
    /// Set to what the startup sweep found lost.
    pub lost_files: prometheus_client::metrics::gauge::Gauge,
}

pub async fn run(db: Db, storage: Storage, background: Background, shutdown: impl Future<Output = ()>) {
    let Background { uploads, changes, clock, started_ms, changes_keep_ms, lost_files } = background;
    let (db2, storage2) = (db.clone(), storage.clone());
    match tokio::task::spawn_blocking(move || sweep_unknown(&db2, &storage2, started_ms)).await {
        Ok(Ok(unknown)) => {
            if unknown.lost() > 0 {
                log::warn!(
                    "{} files in lost+found and {} unknown objects in the store: see `recorder check`",
                    unknown.lost_found,
                    unknown.objects
                );
            }
            lost_files.set(i64::try_from(unknown.lost()).unwrap_or(i64::MAX));
        }
        Ok(Err(e)) => log::error!("the startup sweep failed: {}", e),
        Err(e) => log::error!("the startup sweep failed: {e}"),
    }
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (db, storage, uploads, now) = (db.clone(), storage.clone(), uploads.clone(), clock.now_ms());
        let swept = tokio::task::spawn_blocking(move || {
            // Notes of other processes (a migration, a recovery) that have stopped since.
            if let Err(e) = crate::inflight::settle(&db, &storage, false) {
                log::error!("settling interrupted writes failed: {}", e);
            }
            let swept = sweep(&db, &storage, &uploads, now);
            if let Err(e) = db.conn().and_then(|conn| crate::changes::prune(&conn, now - changes_keep_ms)) {
                log::error!("pruning the changes feed failed: {}", e);
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
            Ok(Err(e)) => log::error!("trash sweep failed: {}", e),
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

    fn unknown_files(storage: &Storage, n: usize) -> Vec<uuid::Uuid> {
        (0..n)
            .map(|_| {
                let id = uuid::Uuid::now_v7();
                let path = storage.path(&Storage::relative_path(&id));
                std::fs::create_dir_all(path.parent().expect("shard")).expect("mkdir");
                std::fs::write(&path, b"RIFF").expect("write");
                id
            })
            .collect()
    }

    #[test]
    fn unknown_files_go_to_lost_and_found_and_noted_ones_are_left_to_settle() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path()).expect("storage");
        let db = Db::open(&storage.db_path()).expect("db");
        let later = crate::clock::system_now_ms() + 60_000;
        let ids = unknown_files(&storage, 14);
        // One is noted in flight by a live process (this one): not unknown.
        let conn = db.conn().expect("conn");
        crate::inflight::note(&conn, &ids[0], Backend::Local, crate::inflight::Kind::New, 0).expect("note");
        let unknown = sweep_unknown(&db, &storage, later).expect("sweep");
        assert_eq!(unknown, Unknown { moved: 13, lost_found: 13, objects: 0 });
        assert!(storage.path(&Storage::relative_path(&ids[0])).exists());
        let found = crate::lostfound::list(storage.root()).expect("list");
        assert_eq!(found.len(), 13);
        // Its process stopped (as at the next start): the noted upload's bytes are deleted.
        let settled = crate::inflight::settle(&db, &storage, true).expect("settle");
        assert_eq!(settled.deleted, 1);
        assert!(!storage.path(&Storage::relative_path(&ids[0])).exists());
        // Files younger than the start are left for the next one.
        let young = unknown_files(&storage, 1);
        let unknown = sweep_unknown(&db, &storage, 0).expect("sweep");
        assert_eq!(unknown.moved, 0);
        assert!(storage.path(&Storage::relative_path(&young[0])).exists());
    }
}
