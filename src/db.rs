//! The SQLite pool: per-connection PRAGMAs, forward-only migrations tracked in
//! `PRAGMA user_version`, and `Db::run`, which keeps every query off the async runtime's threads.

use crate::error::Error;
use r2d2_sqlite::SqliteConnectionManager;
use r2d2_sqlite::rusqlite::{self, Connection, functions::FunctionFlags};
use std::path::Path;
use std::time::Duration;

/// Migrations in order; the number applied is stored in `PRAGMA user_version`.
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_init", include_str!("../migrations/0001_init.sql")),
    ("0002_problem", include_str!("../migrations/0002_problem.sql")),
    ("0003_usage", include_str!("../migrations/0003_usage.sql")),
    ("0004_uploads", include_str!("../migrations/0004_uploads.sql")),
    ("0005_jobs", include_str!("../migrations/0005_jobs.sql")),
    ("0006_tokens_changes", include_str!("../migrations/0006_tokens_changes.sql")),
    ("0007_shares", include_str!("../migrations/0007_shares.sql")),
    ("0008_names", include_str!("../migrations/0008_names.sql")),
    ("0009_transcripts", include_str!("../migrations/0009_transcripts.sql")),
    ("0010_stores", include_str!("../migrations/0010_stores.sql")),
    ("0011_in_flight", include_str!("../migrations/0011_in_flight.sql")),
    ("0012_bookmarks", include_str!("../migrations/0012_bookmarks.sql")),
];

/// A pooled SQLite database.
#[derive(Clone)]
pub struct Db {
    pool: r2d2::Pool<SqliteConnectionManager>,
}

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open database {path}: {source}")]
    Sqlite { path: String, source: rusqlite::Error },
    #[error("cannot open database {path}: {source}")]
    Pool { path: String, source: r2d2::Error },
    #[error(
        "database {path} has schema version {found}, newer than this recorder understands ({known}); \
         run a newer recorder, or restore a backup made by this version"
    )]
    TooNew { path: String, found: i64, known: usize },
}

/// How big the pool is: connections, and each one's page cache.
#[derive(Debug, Clone, Copy)]
pub struct PoolSize {
    pub connections: u32,
    pub cache_bytes: u64,
}

impl Default for PoolSize {
    /// What the command line uses: a few connections with SQLite's default 2 MiB cache.
    fn default() -> Self {
        PoolSize { connections: 4, cache_bytes: 2 << 20 }
    }
}

/// Waits for the lock another connection holds, for up to about 10 s. SQLite's own
/// `busy_timeout` sleeps 1, 2, 5, 10, 15, 20… ms between tries, so a request that arrives just
/// behind a short write transaction (an upload's row, a finished analysis) often sleeps far
/// longer than the lock was held; short steps retry soon after it is free.
fn wait_for_lock(attempts: i32) -> bool {
    const SHORT_TRIES: i32 = 200;
    match attempts {
        // 50 ms in steps of 0.25 ms, then 1 ms steps up to 10 s in all.
        n if n < SHORT_TRIES => std::thread::sleep(Duration::from_micros(250)),
        n if n < SHORT_TRIES + 9_950 => std::thread::sleep(Duration::from_millis(1)),
        _ => return false,
    }
    true
}

fn configure(conn: &mut Connection, cache_bytes: u64) -> rusqlite::Result<()> {
    conn.execute_batch(
        "PRAGMA foreign_keys = ON;
         PRAGMA synchronous = NORMAL;",
    )?;
    conn.busy_handler(Some(wait_for_lock))?;
    // A negative cache_size is KiB. Pages beyond it are read from the OS page cache, which all
    // connections share.
    conn.pragma_update(None, "cache_size", -((cache_bytes / 1024).max(64) as i64))?;
    // Unicode-aware case folding for name search (SQLite's own lower() folds ASCII only).
    conn.create_scalar_function("fold", 1, FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC, |ctx| {
        Ok(ctx.get::<String>(0)?.to_lowercase())
    })?;
    Ok(())
}

impl Db {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub fn open(path: &Path) -> Result<Db, OpenError> {
        Db::open_sized(path, PoolSize::default())
    }

    /// `open` with a pool of the given size.
    pub fn open_sized(path: &Path, size: PoolSize) -> Result<Db, OpenError> {
        let shown = path.display().to_string();
        let sqlite = |source| OpenError::Sqlite { path: shown.clone(), source };
        {
            let mut conn = Connection::open(path).map_err(sqlite)?;
            conn.pragma_update(None, "journal_mode", "WAL").map_err(sqlite)?;
            configure(&mut conn, size.cache_bytes).map_err(sqlite)?;
            migrate(&mut conn, &shown)?;
        }
        let cache_bytes = size.cache_bytes;
        let manager = SqliteConnectionManager::file(path).with_init(move |conn| configure(conn, cache_bytes));
        let pool = r2d2::Pool::builder()
            .max_size(size.connections.max(1))
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(30))
            .build(manager)
            .map_err(|source| OpenError::Pool { path: shown.clone(), source })?;
        Ok(Db { pool })
    }

    /// A connection for synchronous callers (the command line, blocking tasks).
    pub fn conn(&self) -> Result<r2d2::PooledConnection<SqliteConnectionManager>, Error> {
        self.pool.get().map_err(|e| Error::unavailable("database connection", e))
    }

    /// [`Db::run`] with every commit fsynced through the WAL before it returns (see
    /// [`durably`]): for changes the server acknowledges.
    pub async fn run_durably<T, F>(&self, f: F) -> Result<T, Error>
    where
        F: FnOnce(&mut Connection) -> Result<T, Error> + Send + 'static,
        T: Send + 'static,
    {
        self.run(move |conn| durably(conn, f)).await
    }

    /// Runs `f` with a pooled connection on the blocking thread pool.
    pub async fn run<T, F>(&self, f: F) -> Result<T, Error>
    where
        F: FnOnce(&mut Connection) -> Result<T, Error> + Send + 'static,
        T: Send + 'static,
    {
        let db = self.clone();
        blocking(move || {
            let mut conn = db.conn()?;
            f(&mut conn)
        })
        .await
    }
}

/// Runs `work` with `synchronous=FULL`, so that each commit in it is fsynced through the WAL
/// before it returns; the pool's connections otherwise run `NORMAL` (a commit survives a crash
/// of the process, not a power cut). Used for every change the server acknowledges, and for the
/// commits that delete rows before their files are unlinked.
pub fn durably<T>(conn: &mut Connection, work: impl FnOnce(&mut Connection) -> Result<T, Error>) -> Result<T, Error> {
    conn.pragma_update(None, "synchronous", "FULL")?;
    let result = work(conn);
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    result
}

/// Runs blocking work (file system, hashing) on the blocking thread pool.
pub async fn blocking<T, F>(f: F) -> Result<T, Error>
where
    F: FnOnce() -> Result<T, Error> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::internal("blocking task", e))?
}

fn migrate(conn: &mut Connection, shown: &str) -> Result<(), OpenError> {
    let sqlite = |source| OpenError::Sqlite { path: shown.to_string(), source };
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(sqlite)?;
    if version > MIGRATIONS.len() as i64 {
        return Err(OpenError::TooNew { path: shown.to_string(), found: version, known: MIGRATIONS.len() });
    }
    for (index, (name, sql)) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction().map_err(sqlite)?;
        tx.execute_batch(sql).map_err(sqlite)?;
        tx.pragma_update(None, "user_version", (index + 1) as i64).map_err(sqlite)?;
        tx.commit().map_err(sqlite)?;
        log::info!("database migration {name} applied");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_newer_schema_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("recorder.db");
        Db::open(&path).expect("first open");
        Db::open(&path).expect("second open is a no-op");
        let conn = Connection::open(&path).expect("open");
        conn.pragma_update(None, "user_version", 99).expect("set version");
        drop(conn);
        let err = Db::open(&path).err().expect("refused");
        assert!(err.to_string().contains("newer"), "{err}");
    }
}
