//! Everything a request needs, built once at startup and handed to Rocket as managed state.

use crate::auth::{LoginThrottle, Passwords};
use crate::clock::Clock;
use crate::config::Config;
use crate::db::{Db, OpenError};
use crate::storage::Storage;
use std::sync::Arc;

/// The server's shared state: one allocation, cloned by handle into the tasks that outlive a
/// request (the WebDAV listener).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Shared {
    pub config: Config,
    pub db: Db,
    pub storage: Storage,
    pub clock: Clock,
    pub passwords: Passwords,
    pub throttle: LoginThrottle,
    pub metrics: crate::metrics::Metrics,
    /// Resumable uploads' turns (one request per upload at a time).
    pub uploads: crate::uploads::registry::Registry,
    /// The background job queue (analysis), woken when a recording is stored.
    pub jobs: crate::jobs::Queue,
    /// The transcription queue's worker (when a model is configured).
    pub transcripts: crate::jobs::Queue,
    /// Wakes live event streams after a commit that changed a user's recordings.
    pub changes: crate::changes::Notifier,
    /// When this process started: files younger than this may be uploads in flight.
    pub started_ms: i64,
    /// The HTTPS certificate, when TLS is on.
    pub tls: Option<Arc<crate::tls::Certificates>>,
    /// Held while serving: a second server or a backup into this directory is refused.
    _lock: std::fs::File,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error(transparent)]
    Db(#[from] OpenError),
    #[error("startup recovery failed: {0}")]
    Recovery(String),
    #[error("data directory {0} is in use by another recorder (a server, or a backup writing into it)")]
    InUse(String),
    #[error("{0}")]
    Model(String),
    /// The object store cannot be used (unreachable, refused, no such bucket) or is needed and
    /// not configured.
    #[error("{0}")]
    Store(String),
    #[error("cannot listen for WebDAV on {addr} (webdav.port): {source}")]
    WebDav { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("HTTPS: {0}")]
    Tls(String),
    #[error("cannot listen for {what} on {addr} ({key}): {source}")]
    Listen { what: &'static str, key: &'static str, addr: std::net::SocketAddr, source: std::io::Error },
}

use crate::storage::store::Store as _;

/// Opens the object store when `[storage.s3]` is configured and checks it answers: a store that
/// is unreachable, refuses the keys or lacks the bucket stops startup with one line naming it.
/// Recordings in an object store that is not configured stop it too.
pub fn open_s3(config: &Config, db: &Db) -> Result<Option<Arc<crate::storage::s3::S3Store>>, StartError> {
    let Some(s3) = &config.storage.s3 else {
        let in_s3: i64 = db
            .conn()
            .and_then(
                |conn| Ok(conn.query_row("SELECT count(*) FROM recordings WHERE store = 's3'", [], |r| r.get(0))?),
            )
            .map_err(|e| StartError::Recovery(e.to_string()))?;
        if in_s3 > 0 {
            return Err(StartError::Store(format!(
                "{in_s3} recordings are in an S3 store, and [storage.s3] is not configured: set storage.s3.endpoint \
                 and the rest as when they were stored (or move them back first with `recorder storage migrate --to local`)"
            )));
        }
        return Ok(None);
    };
    let store = crate::storage::s3::S3Store::open(s3, &config.storage.data_dir.join("s3-multipart"))
        .map_err(StartError::Store)?;
    store.probe().map_err(StartError::Store)?;
    match crate::marker::claim(&store, db).map_err(StartError::Store)? {
        crate::marker::Claim::Ours => {}
        crate::marker::Claim::Marked => log::info!("marked {} as this installation's", store.place()),
        crate::marker::Claim::Adopted => {
            log::info!(
                "adopted {}: its objects are this installation's recordings, stored before markers",
                store.place()
            )
        }
    }
    match store.abort_abandoned() {
        Ok(0) => {}
        Ok(n) => log::info!("aborted {n} multipart uploads an interrupted process left in {}", store.describe()),
        Err(e) => log::warn!("cannot abort the multipart uploads an interrupted process left: {e}"),
    }
    Ok(Some(Arc::new(store)))
}

impl AppState {
    /// Opens the data directory (locked for this process), the database and the object store.
    /// What a crash interrupted is finished by the composition root (`recorder::Server::open`).
    pub fn open(config: Config, clock: Clock) -> Result<AppState, StartError> {
        let shown = || config.storage.data_dir.display().to_string();
        let storage = Storage::open(&config.storage.data_dir)
            .map_err(|source| StartError::DataDir { path: shown(), source })?
            // A quarter of the blocking pool at most: the rest stays for queries, so lists stay
            // quick while many uploads are written (measured in the benchmark's load scenario).
            .limit_upload_jobs(config.server.blocking_threads / 4);
        let lock = crate::storage::lock_dir(&config.storage.data_dir)
            .map_err(|source| StartError::DataDir { path: shown(), source })?
            .ok_or_else(|| StartError::InUse(shown()))?;
        let size =
            crate::db::PoolSize { connections: config.server.db_connections, cache_bytes: config.server.db_cache };
        let db = Db::open_sized(&storage.db_path(), size)?;
        let storage = storage.with_s3(open_s3(&config, &db)?, config.storage.backend);
        let started_ms = clock.now_ms();
        let tls_dir = config.storage.data_dir.join("tls");
        let tls = crate::tls::Certificates::open(&config.tls, &tls_dir, config.server.address)
            .map_err(StartError::Tls)?
            .map(Arc::new);
        Ok(AppState(Arc::new(Shared {
            tls,
            config,
            db,
            storage,
            clock,
            passwords: Passwords::new(),
            throttle: LoginThrottle::new(),
            metrics: crate::metrics::Metrics::new(),
            uploads: crate::uploads::Registry::default(),
            jobs: crate::jobs::Queue::default(),
            transcripts: crate::jobs::Queue::default(),
            changes: crate::changes::Notifier::default(),
            started_ms,
            _lock: lock,
        })))
    }
}
