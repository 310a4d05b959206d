//! The validated configuration, as the rest of the server reads it.

pub use crate::storage::s3::S3Config;
use crate::storage::store::Backend;
use std::net::IpAddr;
use std::path::PathBuf;

/// The documented example config; its values are the built-in defaults (a test keeps them equal).
pub const EXAMPLE_CONFIG: &str = include_str!("../../recorder.toml");

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

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub address: IpAddr,
    pub port: u16,
    pub secure_cookies: bool,
    /// Header holding the client's address when behind a proxy; `None`: the peer address.
    pub client_ip_header: Option<String>,
    pub data_dir: PathBuf,
    pub max_upload_size: u64,
    pub min_free_space: u64,
    /// Where new recordings' audio goes (`storage.backend`).
    pub backend: Backend,
    /// The object store (`[storage.s3]`), when an endpoint and a bucket are set: used for new
    /// recordings when `backend` is S3, and for reading recordings already there either way.
    pub s3: Option<S3Config>,
    pub signups: Signups,
    pub session_days: u32,
    pub retention_days: u32,
    /// Where `recorder backup` without a destination writes dated snapshots (`backup.dir`);
    /// `None`: it needs a destination.
    pub backup_dir: Option<PathBuf>,
    /// Snapshots kept in `backup_dir` (`backup.keep`): older ones are removed after a new one.
    pub backup_keep: u32,
    /// Hours an incomplete resumable upload is kept after its last byte.
    pub upload_expire_hours: u32,
    /// Incomplete resumable uploads a user may have at once.
    pub max_incomplete_uploads: u32,
    /// Recordings are decoded in the background for their exact duration and waveform.
    pub analysis_enabled: bool,
    /// Time budget of one analysis, in seconds per hour of audio.
    pub analysis_seconds_per_hour: u32,
    /// A CTranslate2 Whisper model directory; `None`: transcription is off.
    pub transcription_model: Option<PathBuf>,
    /// A language code, or `None` to detect it (multilingual models).
    pub transcription_language: Option<String>,
    /// CPU threads the model may use.
    pub transcription_threads: usize,
    /// Run the model in int8 (else float32).
    pub transcription_int8: bool,
    /// Recordings longer than this are not transcribed.
    pub transcription_max_minutes: u32,
    /// WebDAV is served on its own port.
    pub webdav_enabled: bool,
    /// The WebDAV port, on the server's address (0: any free port).
    pub webdav_port: u16,
    pub compat_enabled: bool,
    pub social_login: bool,
    /// `GET /metrics` is served.
    pub metrics_enabled: bool,
    /// A Bearer token that opens `/metrics` from any address (else loopback only).
    pub metrics_token: Option<String>,
    /// Seconds in-flight requests get to finish after a shutdown signal.
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
    pub events_heartbeat: std::time::Duration,
    /// The config file that was read, if any.
    pub source: Option<PathBuf>,
}

impl Config {
    /// Token lifetime in milliseconds.
    pub fn session_ms(&self) -> i64 {
        i64::from(self.session_days) * 86_400_000
    }

    /// How long an incomplete upload is kept after its last byte, in milliseconds.
    pub fn upload_expire_ms(&self) -> i64 {
        i64::from(self.upload_expire_hours) * 3_600_000
    }
}
