//! Every value layered (defaults < file < environment < flags) and validated once, each error
//! naming the key, where its value came from and what was wrong with it.

pub use crate::storage::s3::S3Config;
use crate::storage::store::Backend;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use super::sections::*;
use super::sources::{
    ConfigError, Env, KEYS, NoEnv, Overrides, Raw, cores, default_data_dir, env_name, find_config_file, parse_size,
    read_config_file,
};
use super::values::Config;

/// Loads and validates the configuration from all sources.
pub fn load(overrides: &Overrides, env: &dyn Env) -> Result<Config, ConfigError> {
    resolve(overrides, env, true)
}

pub(super) fn resolve(overrides: &Overrides, env: &dyn Env, read_files: bool) -> Result<Config, ConfigError> {
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

    let tls = {
        use crate::tls::{Mode, TlsConfig};
        let mode = match get("tls.mode").value.trim() {
            "auto" => Mode::Auto,
            "files" => Mode::Files,
            "off" => Mode::Off,
            _ => return Err(bad("tls.mode", "expected \"auto\", \"files\" or \"off\"")),
        };
        let path = |key: &str| Some(get(key).value.trim().to_string()).filter(|p| !p.is_empty()).map(PathBuf::from);
        let (cert, key) = (path("tls.cert"), path("tls.key"));
        if mode == Mode::Files && cert.is_none() {
            return Err(bad("tls.cert", "tls.mode = \"files\" needs the certificate chain's PEM file"));
        }
        if mode == Mode::Files && key.is_none() {
            return Err(bad("tls.key", "tls.mode = \"files\" needs the private key's PEM file"));
        }
        let mut names = Vec::new();
        for name in get("tls.names").value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let dns_ok = name.len() <= 253
                && name.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                });
            if name.parse::<IpAddr>().is_err() && !dns_ok {
                return Err(bad("tls.names", &format!("{name:?} is neither an IP address nor a DNS name")));
            }
            names.push(name.to_ascii_lowercase());
        }
        TlsConfig {
            mode,
            port: int("tls.port", 0, 65535)? as u16,
            cert,
            key,
            names,
            refresh: std::time::Duration::from_secs(60),
        }
    };

    Ok(Config {
        server: ServerConfig {
            address,
            port: int("server.port", 0, 65535)? as u16,
            secure_cookies: boolean("server.secure_cookies")?,
            client_ip_header,
            shutdown_grace_secs: int("server.shutdown_grace", 0, 3600)? as u32,
            log_level,
            workers: or_auto("server.workers", 1024, cores())?,
            blocking_threads: or_auto("server.blocking_threads", 4096, (4 * cores()).clamp(8, 32))?,
            db_connections: or_auto("server.db_connections", 256, (2 * cores()).clamp(2, 8))? as u32,
            db_cache: size("server.db_cache")?,
            events_heartbeat: std::time::Duration::from_secs(15),
        },
        storage: StorageConfig {
            data_dir,
            max_upload_size: size("storage.max_upload_size")?,
            min_free_space: size("storage.min_free_space")?,
            backend,
            s3,
        },
        accounts: AccountsConfig { signups, session_days: int("accounts.session_days", 1, 36_500)? as u32 },
        trash: TrashConfig { retention_days: int("trash.retention_days", 0, 36_500)? as u32 },
        backup: BackupConfig {
            dir: Some(get("backup.dir").value.trim().to_string()).filter(|d| !d.is_empty()).map(PathBuf::from),
            keep: int("backup.keep", 1, 10_000)? as u32,
        },
        uploads: UploadsConfig {
            expire_hours: int("uploads.expire_hours", 1, 8760)? as u32,
            max_incomplete: int("uploads.max_incomplete", 1, 10_000)? as u32,
        },
        analysis: AnalysisConfig {
            enabled: boolean("analysis.enabled")?,
            seconds_per_hour: int("analysis.max_seconds_per_hour_of_audio", 1, 36_000)? as u32,
        },
        transcription: TranscriptionConfig {
            model: transcription_model,
            language: transcription_language,
            threads: int("transcription.threads", 1, 64)? as usize,
            int8: transcription_int8,
            max_minutes: int("transcription.max_minutes", 1, 6000)? as u32,
        },
        tls,
        webdav: WebDavConfig {
            enabled: boolean("webdav.enabled")?,
            port: int("webdav.port", 0, 65535)? as u16,
            tls_port: int("webdav.tls_port", 0, 65535)? as u16,
        },
        compat: CompatConfig { enabled: boolean("compat.enabled")?, social_login: boolean("compat.social_login")? },
        metrics: MetricsConfig {
            enabled: boolean("metrics.enabled")?,
            token: Some(get("metrics.token").value.trim().to_string()).filter(|t| !t.is_empty()),
        },
        source,
    })
    .and_then(|c| {
        if c.storage.max_upload_size == 0 { Err(bad("storage.max_upload_size", "must be more than 0")) } else { Ok(c) }
    })
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
}
