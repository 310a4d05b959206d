//! The sections of the configuration, one a TOML table: what each key of `recorder.toml` became
//! after validation. A section whose module sits below the configuration is defined there, beside
//! what reads it: `[storage]` (and `[storage.s3]`) in `storage`, `[analysis]` in `analysis`,
//! `[transcription]` in `transcription`; the rest, read by the faces and the domain above, here.

pub use crate::analysis::AnalysisConfig;
pub use crate::storage::StorageConfig;
pub use crate::transcription::TranscriptionConfig;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Whether anyone may create an account over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signups {
    Open,
    Closed,
}

impl Signups {
    pub fn as_str(self) -> &'static str {
        match self {
            Signups::Open => "open",
            Signups::Closed => "closed",
        }
    }
}

/// `[server]`: where and how the process serves.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub address: IpAddr,
    pub port: u16,
    pub secure_cookies: bool,
    /// Header holding the client's address when behind a proxy; `None`: the peer address.
    pub client_ip_header: Option<String>,
    /// Seconds in-flight requests get to finish after a shutdown signal (`shutdown_grace`).
    pub shutdown_grace_secs: u32,
    /// `error`, `warn`, `info`, `debug` or `off`.
    pub log_level: log::LevelFilter,
    /// Threads running requests (the async runtime's workers).
    pub workers: usize,
    /// At most this many threads for blocking work (SQLite, file system, hashing uploads).
    pub blocking_threads: usize,
    /// Pooled SQLite connections.
    pub db_connections: u32,
    /// SQLite page cache of each pooled connection, in bytes.
    pub db_cache: u64,
    /// How often an idle event stream sends a heartbeat (not in the config file: 15 s keeps
    /// proxies with a 60 s idle timeout from closing it).
    pub events_heartbeat: Duration,
}

/// `[accounts]`.
#[derive(Debug, Clone)]
pub struct AccountsConfig {
    pub signups: Signups,
    pub session_days: u32,
}

/// `[trash]`.
#[derive(Debug, Clone)]
pub struct TrashConfig {
    pub retention_days: u32,
}

/// `[backup]`: dated snapshots by `recorder backup` without a destination.
#[derive(Debug, Clone)]
pub struct BackupConfig {
    /// Where they are written; `None`: `recorder backup` needs a destination.
    pub dir: Option<PathBuf>,
    /// Snapshots kept: older ones are removed after a new one.
    pub keep: u32,
}

/// `[uploads]`: resumable uploads.
#[derive(Debug, Clone)]
pub struct UploadsConfig {
    /// Hours an incomplete upload is kept after its last byte.
    pub expire_hours: u32,
    /// Incomplete uploads a user may have at once.
    pub max_incomplete: u32,
}

/// `[webdav]`.
#[derive(Debug, Clone)]
pub struct WebDavConfig {
    pub enabled: bool,
    /// The WebDAV port, on the server's address (0: any free port).
    pub port: u16,
    /// WebDAV over TLS, with the HTTPS certificate, when TLS is on (0: any free port).
    pub tls_port: u16,
}

/// `[compat]`: the original recorder app's API.
#[derive(Debug, Clone)]
pub struct CompatConfig {
    pub enabled: bool,
    pub social_login: bool,
}

/// `[metrics]`.
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// `GET /metrics` is served.
    pub enabled: bool,
    /// A Bearer token that opens `/metrics` from any address (else loopback only).
    pub token: Option<String>,
}
