use super::sources::{KEYS, Kind, cores, parse_config_text};
use super::*;
use crate::storage::store::Backend;
use std::collections::HashMap;
use std::path::PathBuf;

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
    assert_eq!(config.server.port, 9001);
    assert_eq!(config.storage.max_upload_size, 10 << 20);
}

#[test]
fn defaults_are_valid() {
    let config = Config::with_data_dir("/tmp/data");
    assert_eq!(config.server.port, 8080);
    assert_eq!(config.storage.max_upload_size, 1 << 30);
    assert_eq!(config.trash.retention_days, 30);
}

#[test]
fn thread_and_pool_sizes_default_to_the_cores_and_can_be_set() {
    let auto = Config::with_data_dir("/tmp/data");
    assert_eq!(auto.server.workers, cores());
    assert!((8..=32).contains(&auto.server.blocking_threads), "{}", auto.server.blocking_threads);
    assert!((2..=8).contains(&auto.server.db_connections), "{}", auto.server.db_connections);
    assert_eq!(auto.server.db_cache, 1 << 20);
    let env = MapEnv(HashMap::from([
        ("RECORDER_STORAGE_DATA_DIR".to_string(), "/tmp/x".to_string()),
        ("RECORDER_SERVER_WORKERS".to_string(), "3".to_string()),
        ("RECORDER_SERVER_BLOCKING_THREADS".to_string(), "5".to_string()),
        ("RECORDER_SERVER_DB_CONNECTIONS".to_string(), "2".to_string()),
        ("RECORDER_SERVER_DB_CACHE".to_string(), "256 KiB".to_string()),
    ]));
    let set = load(&Overrides::default(), &env).expect("valid");
    assert_eq!(
        (set.server.workers, set.server.blocking_threads, set.server.db_connections, set.server.db_cache),
        (3, 5, 2, 256 << 10)
    );
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
    assert!(parse_config_text("[storage.s3]\nbuckett = \"x\"\n").expect_err("refused").contains("storage.s3.buckett"));
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
    assert_eq!(config.storage.backend, Backend::S3);
    let s3 = config.storage.s3.expect("configured");
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
    let local =
        with(&[("RECORDER_STORAGE_S3_ENDPOINT", "http://h:1"), ("RECORDER_STORAGE_S3_BUCKET", "b")]).expect("valid");
    assert_eq!((local.storage.backend, local.storage.s3.is_some()), (Backend::Local, true));
}
