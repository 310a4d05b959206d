//! The validated configuration, as the rest of the server reads it.

use super::sections::*;
use std::path::PathBuf;

/// The documented example config; its values are the built-in defaults (a test keeps them equal).
pub const EXAMPLE_CONFIG: &str = include_str!("../../recorder.toml");

/// The validated configuration: one section a TOML table (`[server]`, `[storage]`, …), each
/// defined with what reads it (`sections.rs`, `storage::s3::S3Config`).
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub accounts: AccountsConfig,
    pub trash: TrashConfig,
    pub backup: BackupConfig,
    pub uploads: UploadsConfig,
    pub analysis: AnalysisConfig,
    pub transcription: TranscriptionConfig,
    pub tls: crate::tls::TlsConfig,
    pub webdav: WebDavConfig,
    pub compat: CompatConfig,
    pub metrics: MetricsConfig,
    /// The config file that was read, if any.
    pub source: Option<PathBuf>,
}

impl Config {
    /// Token lifetime in milliseconds.
    pub fn session_ms(&self) -> i64 {
        i64::from(self.accounts.session_days) * 86_400_000
    }

    /// How long an incomplete upload is kept after its last byte, in milliseconds.
    pub fn upload_expire_ms(&self) -> i64 {
        i64::from(self.uploads.expire_hours) * 3_600_000
    }
}
