//! Where values come from: the keys and their defaults, the config file (found, read and
//! flattened), the environment and the command line's overrides.

pub use crate::storage::s3::S3Config;
use std::fmt;
use std::path::{Path, PathBuf};

/// Values given on the command line; they win over everything else.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub address: Option<String>,
    pub port: Option<String>,
}

/// A configuration error: the message names the key, the source and the value.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Where environment variables come from (the process, or nothing in tests).
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

pub(super) struct NoEnv;

impl Env for NoEnv {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
}

#[derive(Clone, Copy)]
pub(super) enum Kind {
    Str,
    Int,
    Bool,
    Size,
    /// A list of strings: a TOML array, or comma-separated in the environment.
    List,
}

/// Every key: its dotted name, its type, and its default.
pub(super) const KEYS: &[(&str, Kind, &str)] = &[
    ("server.address", Kind::Str, "0.0.0.0"),
    ("server.port", Kind::Int, "8080"),
    ("server.secure_cookies", Kind::Bool, "false"),
    ("server.client_ip_header", Kind::Str, ""),
    ("server.shutdown_grace", Kind::Int, "30"),
    ("server.log_level", Kind::Str, "info"),
    ("server.workers", Kind::Int, "0"),
    ("server.blocking_threads", Kind::Int, "0"),
    ("server.db_connections", Kind::Int, "0"),
    ("server.db_cache", Kind::Size, "1 MiB"),
    ("storage.data_dir", Kind::Str, ""),
    ("storage.max_upload_size", Kind::Size, "1 GiB"),
    ("storage.min_free_space", Kind::Size, "256 MiB"),
    ("storage.backend", Kind::Str, "local"),
    ("storage.s3.endpoint", Kind::Str, ""),
    ("storage.s3.bucket", Kind::Str, ""),
    ("storage.s3.region", Kind::Str, "garage"),
    ("storage.s3.access_key_id", Kind::Str, ""),
    ("storage.s3.secret_access_key", Kind::Str, ""),
    ("storage.s3.prefix", Kind::Str, ""),
    ("accounts.signups", Kind::Str, "open"),
    ("accounts.session_days", Kind::Int, "90"),
    ("trash.retention_days", Kind::Int, "30"),
    ("backup.dir", Kind::Str, ""),
    ("backup.keep", Kind::Int, "7"),
    ("uploads.expire_hours", Kind::Int, "24"),
    ("uploads.max_incomplete", Kind::Int, "20"),
    ("analysis.enabled", Kind::Bool, "true"),
    ("analysis.max_seconds_per_hour_of_audio", Kind::Int, "600"),
    ("transcription.model", Kind::Str, ""),
    ("transcription.language", Kind::Str, "auto"),
    ("transcription.threads", Kind::Int, "1"),
    ("transcription.compute", Kind::Str, "int8"),
    ("transcription.max_minutes", Kind::Int, "180"),
    ("webdav.enabled", Kind::Bool, "false"),
    ("webdav.port", Kind::Int, "8081"),
    ("webdav.tls_port", Kind::Int, "8444"),
    ("tls.mode", Kind::Str, "auto"),
    ("tls.port", Kind::Int, "8443"),
    ("tls.cert", Kind::Str, ""),
    ("tls.key", Kind::Str, ""),
    ("tls.names", Kind::List, ""),
    ("compat.enabled", Kind::Bool, "true"),
    ("compat.social_login", Kind::Bool, "false"),
    ("metrics.enabled", Kind::Bool, "false"),
    ("metrics.token", Kind::Str, ""),
];

/// The CPU cores this process may use.
pub(super) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub(super) fn env_name(key: &str) -> String {
    format!("RECORDER_{}", key.replace('.', "_").to_ascii_uppercase())
}

/// A raw value and where it came from, before validation.
pub(super) struct Raw {
    pub(super) value: String,
    pub(super) origin: String,
}

pub(super) fn default_data_dir() -> Result<PathBuf, ConfigError> {
    directories::ProjectDirs::from("", "", "recorder")
        .map(|d| d.data_dir().to_path_buf())
        .ok_or_else(|| ConfigError("no home directory to put the data in: set `storage.data_dir` or --data-dir".into()))
}

pub(super) fn find_config_file(overrides: &Overrides, env: &dyn Env) -> Result<Option<PathBuf>, ConfigError> {
    if let Some(path) = &overrides.config_file {
        return require_file(path, "--config");
    }
    if let Some(path) = env.var("RECORDER_CONFIG").filter(|p| !p.is_empty()) {
        return require_file(Path::new(&path), "RECORDER_CONFIG");
    }
    let local = PathBuf::from("recorder.toml");
    if local.is_file() {
        return Ok(Some(local));
    }
    if let Some(dirs) = directories::ProjectDirs::from("", "", "recorder") {
        let path = dirs.config_dir().join("recorder.toml");
        if path.is_file() {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

pub(super) fn require_file(path: &Path, from: &str) -> Result<Option<PathBuf>, ConfigError> {
    if path.is_file() {
        Ok(Some(path.to_path_buf()))
    } else {
        Err(ConfigError(format!("config file {} (from {from}) does not exist or is not a file", path.display())))
    }
}

/// Reads a TOML config file into dotted keys and string values, refusing unknown keys.
pub(super) fn read_config_file(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
    parse_config_text(&text).map_err(|e| ConfigError(format!("config file {}: {e}", path.display())))
}

pub(super) fn parse_config_text(text: &str) -> Result<Vec<(String, String)>, String> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.message().to_string())?;
    let mut out = Vec::new();
    for (section, value) in table {
        let known_section = KEYS.iter().any(|(k, _, _)| k.split('.').next() == Some(section.as_str()));
        let (true, toml::Value::Table(inner)) = (known_section, value) else {
            return Err(format!(
                "unknown key `{section}`: expected the sections [server], [storage], [storage.s3], [accounts], [trash], [uploads], [analysis], [transcription], [tls], [webdav], [compat], [metrics]"
            ));
        };
        flatten(&section, inner, &mut out)?;
    }
    Ok(out)
}

/// A section's keys as dotted names; a nested table (`[storage.s3]`) is one level deeper.
pub(super) fn flatten(prefix: &str, table: toml::Table, out: &mut Vec<(String, String)>) -> Result<(), String> {
    for (name, value) in table {
        let key = format!("{prefix}.{name}");
        if let toml::Value::Table(inner) = value {
            let nested = format!("{key}.");
            if !KEYS.iter().any(|(k, _, _)| k.starts_with(&nested)) {
                return Err(format!("unknown key `{key}`"));
            }
            flatten(&key, inner, out)?;
            continue;
        }
        let Some((_, kind, _)) = KEYS.iter().find(|(k, _, _)| *k == key) else {
            return Err(format!("unknown key `{key}`"));
        };
        let text = match (kind, value) {
            (Kind::Str, toml::Value::String(s)) | (Kind::Size, toml::Value::String(s)) => s,
            (Kind::Int, toml::Value::Integer(n)) | (Kind::Size, toml::Value::Integer(n)) => {
                if n < 0 {
                    return Err(format!("invalid value {n} for `{key}`: must not be negative"));
                }
                n.to_string()
            }
            (Kind::Bool, toml::Value::Boolean(b)) => b.to_string(),
            (Kind::List, toml::Value::Array(items)) => {
                let mut texts = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        toml::Value::String(s) if !s.contains(',') => texts.push(s),
                        other => {
                            return Err(format!("invalid value {other} in `{key}`: expected strings without commas"));
                        }
                    }
                }
                texts.join(",")
            }
            (kind, other) => {
                let expected = match kind {
                    Kind::Str => "a string",
                    Kind::Int => "a whole number",
                    Kind::Bool => "true or false",
                    Kind::Size => "a size such as 1073741824 or \"512 MiB\"",
                    Kind::List => "a list of strings such as [\"pi.example\"]",
                };
                return Err(format!("invalid value {other} for `{key}`: expected {expected}"));
            }
        };
        out.push((key, text));
    }
    Ok(())
}

/// Parses a byte size: a whole number of bytes, or a number with a unit ("512 MiB", "2 GB", "1.5G").
pub fn parse_size(text: &str) -> Result<u64, &'static str> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| "expected a size such as 1073741824, \"512 MiB\" or \"2 GB\"")?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        _ => return Err("unknown unit: use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB"),
    };
    let bytes = number * multiplier as f64;
    if !bytes.is_finite() || bytes > u64::MAX as f64 / 2.0 {
        return Err("too large");
    }
    Ok(bytes.round() as u64)
}
