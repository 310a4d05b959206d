//! Configuration: built-in defaults < config file < `RECORDER_*` environment < command-line flags.
//!
//! Every value is validated once, before anything starts; an error names the key, where the
//! value came from and what was wrong with it.

pub use crate::storage::s3::S3Config;
use crate::storage::store::Backend;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The documented example config; its values are the built-in defaults (a test keeps them equal).
pub const EXAMPLE_CONFIG: &str = include_str!("../recorder.toml");

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
    /// Defaults with the given data directory: what tests and embedders start from.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Config {
        let overrides = Overrides { data_dir: Some(data_dir.into()), ..Default::default() };
        match resolve(&overrides, &NoEnv, false) {
            Ok(config) => config,
            // The built-in defaults always validate; a unit test pins that.
            Err(e) => panic!("built-in defaults are invalid: {e}"),
        }
    }

    /// Token lifetime in milliseconds.
    pub fn session_ms(&self) -> i64 {
        i64::from(self.session_days) * 86_400_000
    }

    /// How long an incomplete upload is kept after its last byte, in milliseconds.
    pub fn upload_expire_ms(&self) -> i64 {
        i64::from(self.upload_expire_hours) * 3_600_000
    }
}

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

struct NoEnv;

impl Env for NoEnv {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    Bool,
    Size,
}

/// Every key: its dotted name, its type, and its default.
const KEYS: &[(&str, Kind, &str)] = &[
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
    ("compat.enabled", Kind::Bool, "true"),
    ("compat.social_login", Kind::Bool, "false"),
    ("metrics.enabled", Kind::Bool, "false"),
    ("metrics.token", Kind::Str, ""),
];

/// The CPU cores this process may use.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn env_name(key: &str) -> String {
    format!("RECORDER_{}", key.replace('.', "_").to_ascii_uppercase())
}

/// A raw value and where it came from, before validation.
struct Raw {
    value: String,
    origin: String,
}

/// Loads and validates the configuration from all sources.
pub fn load(overrides: &Overrides, env: &dyn Env) -> Result<Config, ConfigError> {
    resolve(overrides, env, true)
}

fn resolve(overrides: &Overrides, env: &dyn Env, read_files: bool) -> Result<Config, ConfigError> {
    let mut raw: BTreeMap<&str, Raw> = KEYS
        .iter()
        .map(|(key, _, default)| {
            let raw = Raw { value: (*default).to_string(), origin: "the built-in default".into() };
            (*key, raw)
        })
        .collect();

    let source = if read_files { find_config_file(overrides, env)? } else { None };
    if let Some(path) = &source {
        for (key, value) in read_config_file(path)? {
            let origin = format!("{}", path.display());
            if let Some(slot) = raw.get_mut(key.as_str()) {
                *slot = Raw { value, origin };
            }
        }
    }

    for (key, _, _) in KEYS {
        let name = env_name(key);
        if let Some(value) = env.var(&name) {
            raw.insert(key, Raw { value, origin: format!("environment variable {name}") });
        }
    }

    let flags = [
        ("storage.data_dir", overrides.data_dir.as_ref().map(|p| p.display().to_string()), "--data-dir"),
        ("server.address", overrides.address.clone(), "--address"),
        ("server.port", overrides.port.clone(), "--port"),
    ];
    for (key, value, flag) in flags {
        if let Some(value) = value {
            raw.insert(key, Raw { value, origin: format!("command-line flag {flag}") });
        }
    }

    let get = |key: &str| -> &Raw { &raw[key] };
    let bad = |key: &str, why: &str| -> ConfigError {
        let r = get(key);
        ConfigError(format!("invalid value {:?} for `{key}` (from {}): {why}", r.value, r.origin))
    };
    let int = |key: &str, min: u64, max: u64| -> Result<u64, ConfigError> {
        let n: u64 = get(key).value.trim().parse().map_err(|_| bad(key, "expected a whole number"))?;
        if n < min || n > max {
            return Err(bad(key, &format!("expected a number from {min} to {max}")));
        }
        Ok(n)
    };
    let boolean = |key: &str| -> Result<bool, ConfigError> {
        match get(key).value.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(bad(key, "expected true or false")),
        }
    };
    // A count where 0 means "decide from the machine".
    let or_auto = |key: &str, max: u64, auto: usize| -> Result<usize, ConfigError> {
        Ok(match int(key, 0, max)? {
            0 => auto,
            n => n as usize,
        })
    };
    let size = |key: &str| -> Result<u64, ConfigError> { parse_size(&get(key).value).map_err(|why| bad(key, why)) };

    let address = get("server.address")
        .value
        .trim()
        .parse::<IpAddr>()
        .map_err(|_| bad("server.address", "expected an IP address such as 0.0.0.0 or 127.0.0.1"))?;
    let client_ip_header = {
        let v = get("server.client_ip_header").value.trim().to_string();
        if v.is_empty() {
            None
        } else if v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            Some(v)
        } else {
            return Err(bad("server.client_ip_header", "expected an HTTP header name"));
        }
    };
    let data_dir = {
        let v = get("storage.data_dir").value.trim().to_string();
        if v.is_empty() { default_data_dir()? } else { PathBuf::from(v) }
    };
    let signups = match get("accounts.signups").value.trim() {
        "open" => Signups::Open,
        "closed" => Signups::Closed,
        _ => return Err(bad("accounts.signups", "expected \"open\" or \"closed\"")),
    };
    let transcription_model = {
        let v = get("transcription.model").value.trim().to_string();
        if v.is_empty() { None } else { Some(PathBuf::from(v)) }
    };
    let transcription_language = {
        let v = get("transcription.language").value.trim().to_ascii_lowercase();
        if v == "auto" || v.is_empty() {
            None
        } else if (2..=3).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_lowercase()) {
            Some(v)
        } else {
            return Err(bad("transcription.language", "expected \"auto\" or a language code such as \"en\" or \"de\""));
        }
    };
    let transcription_int8 = match get("transcription.compute").value.trim() {
        "int8" => true,
        "float32" => false,
        _ => return Err(bad("transcription.compute", "expected \"int8\" or \"float32\"")),
    };
    let s3 = {
        let text = |key: &str| get(key).value.trim().to_string();
        let (endpoint, bucket) = (text("storage.s3.endpoint"), text("storage.s3.bucket"));
        if endpoint.is_empty() && bucket.is_empty() {
            None
        } else {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) || endpoint.len() < 9 {
                return Err(bad("storage.s3.endpoint", "expected a URL such as \"http://127.0.0.1:3900\""));
            }
            if bucket.is_empty() {
                return Err(bad("storage.s3.bucket", "a bucket is needed with storage.s3.endpoint"));
            }
            let prefix = text("storage.s3.prefix").trim_matches('/').to_string();
            if prefix.split('/').any(|part| part.is_empty() || part == "." || part == "..") && !prefix.is_empty() {
                return Err(bad(
                    "storage.s3.prefix",
                    "expected path segments such as \"recorder\" or \"home/recorder\"",
                ));
            }
            Some(S3Config {
                endpoint: endpoint.trim_end_matches('/').to_string(),
                bucket,
                region: Some(text("storage.s3.region")).filter(|r| !r.is_empty()).unwrap_or_else(|| "garage".into()),
                access_key_id: text("storage.s3.access_key_id"),
                secret_access_key: text("storage.s3.secret_access_key"),
                prefix,
            })
        }
    };
    let backend = match get("storage.backend").value.trim() {
        "local" => Backend::Local,
        "s3" if s3.is_some() => Backend::S3,
        "s3" => return Err(bad("storage.backend", "\"s3\" needs storage.s3.endpoint and storage.s3.bucket")),
        _ => return Err(bad("storage.backend", "expected \"local\" or \"s3\"")),
    };
    let log_level = match get("server.log_level").value.trim().to_ascii_lowercase().as_str() {
        "off" => log::LevelFilter::Off,
        "error" => log::LevelFilter::Error,
        "warn" => log::LevelFilter::Warn,
        "info" => log::LevelFilter::Info,
        "debug" => log::LevelFilter::Debug,
        "trace" => log::LevelFilter::Trace,
        _ => return Err(bad("server.log_level", "expected off, error, warn, info, debug or trace")),
    };

    Ok(Config {
        address,
        port: int("server.port", 0, 65535)? as u16,
        secure_cookies: boolean("server.secure_cookies")?,
        client_ip_header,
        data_dir,
        max_upload_size: size("storage.max_upload_size")?,
        min_free_space: size("storage.min_free_space")?,
        backend,
        s3,
        signups,
        session_days: int("accounts.session_days", 1, 36_500)? as u32,
        retention_days: int("trash.retention_days", 0, 36_500)? as u32,
        backup_dir: Some(get("backup.dir").value.trim().to_string()).filter(|d| !d.is_empty()).map(PathBuf::from),
        backup_keep: int("backup.keep", 1, 10_000)? as u32,
        upload_expire_hours: int("uploads.expire_hours", 1, 8760)? as u32,
        max_incomplete_uploads: int("uploads.max_incomplete", 1, 10_000)? as u32,
        analysis_enabled: boolean("analysis.enabled")?,
        analysis_seconds_per_hour: int("analysis.max_seconds_per_hour_of_audio", 1, 36_000)? as u32,
        transcription_model,
        transcription_language,
        transcription_threads: int("transcription.threads", 1, 64)? as usize,
        transcription_int8,
        transcription_max_minutes: int("transcription.max_minutes", 1, 6000)? as u32,
        webdav_enabled: boolean("webdav.enabled")?,
        webdav_port: int("webdav.port", 0, 65535)? as u16,
        compat_enabled: boolean("compat.enabled")?,
        social_login: boolean("compat.social_login")?,
        metrics_enabled: boolean("metrics.enabled")?,
        metrics_token: Some(get("metrics.token").value.trim().to_string()).filter(|t| !t.is_empty()),
        shutdown_grace_secs: int("server.shutdown_grace", 0, 3600)? as u32,
        log_level,
        workers: or_auto("server.workers", 1024, cores())?,
        blocking_threads: or_auto("server.blocking_threads", 4096, (4 * cores()).clamp(8, 32))?,
        db_connections: or_auto("server.db_connections", 256, (2 * cores()).clamp(2, 8))? as u32,
        db_cache: size("server.db_cache")?,
        events_heartbeat: std::time::Duration::from_secs(15),
        source,
    })
    .and_then(|c| {
        if c.max_upload_size == 0 { Err(bad("storage.max_upload_size", "must be more than 0")) } else { Ok(c) }
    })
}

fn default_data_dir() -> Result<PathBuf, ConfigError> {
    directories::ProjectDirs::from("", "", "recorder")
        .map(|d| d.data_dir().to_path_buf())
        .ok_or_else(|| ConfigError("no home directory to put the data in: set `storage.data_dir` or --data-dir".into()))
}

fn find_config_file(overrides: &Overrides, env: &dyn Env) -> Result<Option<PathBuf>, ConfigError> {
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

fn require_file(path: &Path, from: &str) -> Result<Option<PathBuf>, ConfigError> {
    if path.is_file() {
        Ok(Some(path.to_path_buf()))
    } else {
        Err(ConfigError(format!("config file {} (from {from}) does not exist or is not a file", path.display())))
    }
}

/// Reads a TOML config file into dotted keys and string values, refusing unknown keys.
fn read_config_file(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
    parse_config_text(&text).map_err(|e| ConfigError(format!("config file {}: {e}", path.display())))
}

fn parse_config_text(text: &str) -> Result<Vec<(String, String)>, String> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.message().to_string())?;
    let mut out = Vec::new();
    for (section, value) in table {
        let known_section = KEYS.iter().any(|(k, _, _)| k.split('.').next() == Some(section.as_str()));
        let (true, toml::Value::Table(inner)) = (known_section, value) else {
            return Err(format!(
                "unknown key `{section}`: expected the sections [server], [storage], [storage.s3], [accounts], [trash], [uploads], [analysis], [transcription], [webdav], [compat], [metrics]"
            ));
        };
        flatten(&section, inner, &mut out)?;
    }
    Ok(out)
}

/// A section's keys as dotted names; a nested table (`[storage.s3]`) is one level deeper.
fn flatten(prefix: &str, table: toml::Table, out: &mut Vec<(String, String)>) -> Result<(), String> {
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
            (kind, other) => {
                let expected = match kind {
                    Kind::Str => "a string",
                    Kind::Int => "a whole number",
                    Kind::Bool => "true or false",
                    Kind::Size => "a size such as 1073741824 or \"512 MiB\"",
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct MapEnv(HashMap<String, String>);
    impl Env for MapEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
    }

    #[test]
    fn sizes_parse_with_and_without_units() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("512 MiB"), Ok(512 << 20));
        assert_eq!(parse_size("2 GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("12 parsecs").is_err());
    }

    #[test]
    fn example_config_matches_built_in_defaults() {
        let keys = parse_config_text(EXAMPLE_CONFIG).expect("example config parses");
        for (key, value) in keys {
            let (_, kind, default) = KEYS.iter().find(|(k, _, _)| *k == key).expect("known key");
            match kind {
                Kind::Size => assert_eq!(parse_size(&value), parse_size(default), "{key}"),
                _ => assert_eq!(&value, default, "{key}"),
            }
        }
    }

    #[test]
    fn env_beats_default_and_flag_beats_env() {
        let env = MapEnv(HashMap::from([
            ("RECORDER_SERVER_PORT".to_string(), "9000".to_string()),
            ("RECORDER_STORAGE_MAX_UPLOAD_SIZE".to_string(), "10 MiB".to_string()),
            ("RECORDER_STORAGE_DATA_DIR".to_string(), "/tmp/x".to_string()),
        ]));
        let mut flags = Overrides { config_file: Some(PathBuf::from("/nonexistent")), ..Default::default() };
        assert!(load(&flags, &env).is_err());
        flags.config_file = None;
        flags.port = Some("9001".into());
        let config = load(&flags, &env).expect("valid");
        assert_eq!(config.port, 9001);
        assert_eq!(config.max_upload_size, 10 << 20);
    }

    #[test]
    fn defaults_are_valid() {
        let config = Config::with_data_dir("/tmp/data");
        assert_eq!(config.port, 8080);
        assert_eq!(config.max_upload_size, 1 << 30);
        assert_eq!(config.retention_days, 30);
    }

    #[test]
    fn thread_and_pool_sizes_default_to_the_cores_and_can_be_set() {
        let auto = Config::with_data_dir("/tmp/data");
        assert_eq!(auto.workers, cores());
        assert!((8..=32).contains(&auto.blocking_threads), "{}", auto.blocking_threads);
        assert!((2..=8).contains(&auto.db_connections), "{}", auto.db_connections);
        assert_eq!(auto.db_cache, 1 << 20);
        let env = MapEnv(HashMap::from([
            ("RECORDER_STORAGE_DATA_DIR".to_string(), "/tmp/x".to_string()),
            ("RECORDER_SERVER_WORKERS".to_string(), "3".to_string()),
            ("RECORDER_SERVER_BLOCKING_THREADS".to_string(), "5".to_string()),
            ("RECORDER_SERVER_DB_CONNECTIONS".to_string(), "2".to_string()),
            ("RECORDER_SERVER_DB_CACHE".to_string(), "256 KiB".to_string()),
        ]));
        let set = load(&Overrides::default(), &env).expect("valid");
        assert_eq!((set.workers, set.blocking_threads, set.db_connections, set.db_cache), (3, 5, 2, 256 << 10));
        let env = MapEnv(HashMap::from([
            ("RECORDER_STORAGE_DATA_DIR".to_string(), "/tmp/x".to_string()),
            ("RECORDER_SERVER_BLOCKING_THREADS".to_string(), "-1".to_string()),
        ]));
        let err = load(&Overrides::default(), &env).expect_err("invalid");
        assert!(err.0.contains("server.blocking_threads"), "{err}");
    }

    #[test]
    fn bad_env_value_names_key_and_source() {
        let env = MapEnv(HashMap::from([
            ("RECORDER_STORAGE_DATA_DIR".to_string(), "/tmp/x".to_string()),
            ("RECORDER_ACCOUNTS_SIGNUPS".to_string(), "maybe".to_string()),
        ]));
        let err = load(&Overrides::default(), &env).expect_err("invalid");
        assert!(err.0.contains("accounts.signups"), "{err}");
        assert!(err.0.contains("RECORDER_ACCOUNTS_SIGNUPS"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(parse_config_text("[server]\nprot = 1\n").expect_err("refused").contains("server.prot"));
        assert!(parse_config_text("[nope]\n").expect_err("refused").contains("nope"));
        assert!(parse_config_text("[server]\nport = \"x\"\n").expect_err("refused").contains("server.port"));
    }

    #[test]
    fn the_s3_section_nests_under_storage_and_is_checked() {
        let text = "[storage]\nbackend = \"s3\"\n[storage.s3]\nendpoint = \"http://127.0.0.1:3900/\"\nbucket = \"memos\"\n\
                    prefix = \"/home/recorder/\"\n";
        let keys = parse_config_text(text).expect("parses");
        assert!(keys.contains(&("storage.s3.bucket".to_string(), "memos".to_string())), "{keys:?}");
        assert!(
            parse_config_text("[storage.s3]\nbuckett = \"x\"\n").expect_err("refused").contains("storage.s3.buckett")
        );
        assert!(parse_config_text("[storage.s4]\nbucket = \"x\"\n").expect_err("refused").contains("storage.s4"));

        let with = |pairs: &[(&str, &str)]| {
            let mut map = HashMap::from([("RECORDER_STORAGE_DATA_DIR".to_string(), "/tmp/x".to_string())]);
            map.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            load(&Overrides::default(), &MapEnv(map))
        };
        let config = with(&[
            ("RECORDER_STORAGE_BACKEND", "s3"),
            ("RECORDER_STORAGE_S3_ENDPOINT", "http://127.0.0.1:3900/"),
            ("RECORDER_STORAGE_S3_BUCKET", "memos"),
            ("RECORDER_STORAGE_S3_SECRET_ACCESS_KEY", "hush"),
            ("RECORDER_STORAGE_S3_PREFIX", "/home/recorder/"),
        ])
        .expect("valid");
        assert_eq!(config.backend, Backend::S3);
        let s3 = config.s3.expect("configured");
        assert_eq!(
            (s3.endpoint.as_str(), s3.region.as_str(), s3.prefix.as_str()),
            ("http://127.0.0.1:3900", "garage", "home/recorder")
        );
        assert!(!format!("{s3:?}").contains("hush"), "the secret stays out of logs");

        let err = with(&[("RECORDER_STORAGE_BACKEND", "s3")]).expect_err("no endpoint");
        assert!(err.0.contains("storage.backend"), "{err}");
        let err = with(&[("RECORDER_STORAGE_BACKEND", "tape")]).expect_err("unknown");
        assert!(err.0.contains("storage.backend"), "{err}");
        let err = with(&[("RECORDER_STORAGE_S3_ENDPOINT", "127.0.0.1:3900"), ("RECORDER_STORAGE_S3_BUCKET", "b")])
            .expect_err("no scheme");
        assert!(err.0.contains("storage.s3.endpoint"), "{err}");
        let err = with(&[("RECORDER_STORAGE_S3_ENDPOINT", "http://h:1")]).expect_err("no bucket");
        assert!(err.0.contains("storage.s3.bucket"), "{err}");
        let err = with(&[
            ("RECORDER_STORAGE_S3_ENDPOINT", "http://h:1"),
            ("RECORDER_STORAGE_S3_BUCKET", "b"),
            ("RECORDER_STORAGE_S3_PREFIX", "a//b"),
        ])
        .expect_err("empty segment");
        assert!(err.0.contains("storage.s3.prefix"), "{err}");
        // Configured but not chosen: old recordings there stay readable, new ones go to disk.
        let local = with(&[("RECORDER_STORAGE_S3_ENDPOINT", "http://h:1"), ("RECORDER_STORAGE_S3_BUCKET", "b")])
            .expect("valid");
        assert_eq!((local.backend, local.s3.is_some()), (Backend::Local, true));
    }
}
