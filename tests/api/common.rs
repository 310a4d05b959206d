//! The shared harness: a real server on an ephemeral loopback port, in its own temp data dir,
//! and a small HTTP client over real TCP. With `webdav_enabled` (see `Server::start_dav`) the
//! server's WebDAV listener gets an ephemeral loopback port too.
//!
//! With `RECORDER_TEST_STORE=s3` every server stores its recordings in the test process's shared
//! SeaweedFS instance (see `s3.rs`), each under a key prefix of its own; the helpers that look at
//! stored recordings (`files`, `stored_ids`, `stored_bytes`, `remove_stored`) see the bucket then.

use recorder::{Clock, Config};
use rocket::fairing::AdHoc;
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

pub struct Server {
    pub base: String,
    /// The WebDAV listener's base URL (`http://127.0.0.1:PORT`), when WebDAV is enabled.
    pub dav: Option<String>,
    /// Kept for its lifetime: the data directory is removed when the server is dropped.
    _dir: tempfile::TempDir,
    pub clock: Clock,
    data: PathBuf,
    shutdown: Option<rocket::Shutdown>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Every request the server answered, as the server saw it.
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// The object store's prefix, when the server has one configured.
    pub s3: Option<crate::s3::Bucket>,
    /// The object store settings and where new recordings go.
    store: (Option<recorder::config::S3Config>, recorder::storage::store::Backend),
    /// Whether the background jobs run (`analysis.enabled`; transcription follows analysis).
    jobs_run: bool,
}

/// Whether servers store recordings in the object store (`RECORDER_TEST_STORE=s3`) rather than
/// in their data directory (`local`, the default).
pub fn test_store_is_s3() -> bool {
    match std::env::var("RECORDER_TEST_STORE").as_deref() {
        Ok("s3") => true,
        Ok("local") | Ok("") | Err(_) => false,
        Ok(other) => panic!("RECORDER_TEST_STORE={other:?}: expected \"s3\" or \"local\""),
    }
}

/// One request as the server saw it: method, path, some headers, status.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// The query string, if any (undecoded).
    pub query: Option<String>,
    pub range: Option<String>,
    /// `Upload-Offset` of the request (a resumable upload's PATCH).
    pub upload_offset: Option<u64>,
    /// `Content-Length` of the request.
    pub content_length: Option<u64>,
    pub status: u16,
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(|_| {})
    }

    /// A server with WebDAV on, on an ephemeral port.
    pub fn start_dav() -> Server {
        Server::start_dav_with(|_| {})
    }

    /// A server with WebDAV on (on an ephemeral port) and more settings.
    pub fn start_dav_with(configure: impl FnOnce(&mut Config)) -> Server {
        Server::start_with(|c| {
            c.webdav_enabled = true;
            c.webdav_port = 0;
            configure(c);
        })
    }

    pub fn start_with(configure: impl FnOnce(&mut Config)) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::with_data_dir(dir.path().join("data"));
        config.address = [127, 0, 0, 1].into();
        config.port = 0;
        config.shutdown_grace_secs = 1;
        if test_store_is_s3() {
            config.backend = recorder::storage::store::Backend::S3;
            config.s3 = Some(crate::s3::shared().config(&crate::s3::fresh_prefix("server")));
        }
        let default_dir = config.data_dir.clone();
        configure(&mut config);
        if test_store_is_s3() && config.data_dir != default_dir {
            // A test that serves one data directory twice finds its recordings under the same
            // prefix the second time.
            if let Some(s3) = config.s3.as_mut().filter(|s3| s3.prefix.starts_with("server-")) {
                s3.prefix = prefix_of(&config.data_dir);
            }
        }
        let clock = Clock::default();
        let data = config.data_dir.clone();
        let s3 = config.s3.as_ref().map(crate::s3::Bucket::of);
        let store = (config.s3.clone(), config.backend);
        let jobs_run = config.analysis_enabled;
        let server = recorder::Server::open(config, clock.clone()).expect("open the server");
        // Bound by `open`, served from liftoff on.
        let dav = server.webdav_addr().map(|addr| format!("http://{addr}"));
        let (tx, rx) = mpsc::channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let rocket = recorder::rocket(server)
            .attach(AdHoc::on_liftoff("test port", move |r| {
                Box::pin(async move {
                    let _ = tx.send((r.config().port, r.shutdown()));
                })
            }))
            .attach(AdHoc::on_response("test log", move |req, res| {
                let log = log.clone();
                Box::pin(async move {
                    let seen = Seen {
                        method: req.method().as_str().to_string(),
                        path: req.uri().path().to_string(),
                        query: req.uri().query().map(|q| q.to_string()),
                        range: req.headers().get_one("Range").map(str::to_string),
                        upload_offset: req.headers().get_one("Upload-Offset").and_then(|v| v.parse().ok()),
                        content_length: req.headers().get_one("Content-Length").and_then(|v| v.parse().ok()),
                        status: res.status().code,
                    };
                    log.lock().unwrap_or_else(|p| p.into_inner()).push(seen);
                })
            }));
        let thread = std::thread::spawn(move || {
            let _ = rocket::execute(rocket.launch());
        });
        let (port, shutdown) = rx.recv_timeout(Duration::from_secs(30)).expect("server started");
        Server {
            base: format!("http://127.0.0.1:{port}"),
            dav,
            _dir: dir,
            clock,
            data,
            shutdown: Some(shutdown),
            thread: Some(thread),
            seen,
            s3,
            store,
            jobs_run,
        }
    }

    /// The requests answered so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn data(&self) -> PathBuf {
        self.data.clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with no credentials.
    pub fn req(&self, method: &str, path: &str) -> ureq::Request {
        ureq::request(method, &self.url(path))
    }

    /// A request with a Bearer token.
    pub fn auth(&self, method: &str, path: &str, token: &str) -> ureq::Request {
        self.req(method, path).set("Authorization", &format!("Bearer {token}"))
    }

    /// Signs up and returns the token.
    pub fn signup(&self, username: &str) -> String {
        let r = send_json(
            self.req("POST", "/api/v1/auth/signup"),
            &serde_json::json!({"username": username, "password": "password123"}),
        );
        assert_eq!(r.status, 201, "signup {username}: {}", r.text());
        r.json()["token"].as_str().expect("token").to_string()
    }

    /// Signs in (password `password123`, as `signup` sets it) and returns the session token.
    pub fn login(&self, username: &str) -> String {
        let r = send_json(
            self.req("POST", "/api/v1/auth/login"),
            &serde_json::json!({"username": username, "password": "password123"}),
        );
        assert_eq!(r.status, 200, "login {username}: {}", r.text());
        r.json()["token"].as_str().expect("token").to_string()
    }

    /// Uploads bytes as a raw body; returns the response.
    pub fn upload(&self, token: &str, name: &str, bytes: &[u8]) -> Resp {
        let path = format!("/api/v1/recordings?name={}", urlencode(name));
        send(self.auth("POST", &path, token).set("Content-Type", "application/octet-stream"), Some(bytes))
    }

    /// Uploads bytes that must be accepted (201); returns the new recording's id.
    pub fn upload_id(&self, token: &str, name: &str, bytes: &[u8]) -> String {
        let r = self.upload(token, name, bytes);
        assert_eq!(r.status, 201, "upload {name}: {}", r.text());
        r.json()["id"].as_str().expect("id").to_string()
    }

    /// Creates an app token (`POST /api/v1/tokens`) with a session token; returns the new token.
    pub fn app_token(&self, session: &str, name: &str) -> String {
        let r = send_json(self.auth("POST", "/api/v1/tokens", session), &serde_json::json!({ "name": name }));
        assert_eq!(r.status, 201, "app token {name}: {}", r.text());
        r.json()["token"].as_str().expect("token").to_string()
    }

    /// The WebDAV URL of `path` (already percent-encoded; see `dav_path`).
    pub fn dav_url(&self, path: &str) -> String {
        let base = self.dav.as_deref().expect("the server was started with WebDAV on (Server::start_dav)");
        format!("{base}{path}")
    }

    /// A WebDAV request with no credentials.
    pub fn dav_req(&self, method: &str, path: &str) -> ureq::Request {
        ureq::request(method, &self.dav_url(path))
    }

    /// A WebDAV request with HTTP Basic credentials.
    pub fn dav(&self, method: &str, path: &str, username: &str, password: &str) -> ureq::Request {
        self.dav_req(method, path).set("Authorization", &basic(username, password))
    }

    /// Files under `tmp/` only, relative to the data directory.
    pub fn tmp_files(&self) -> Vec<String> {
        self.files().into_iter().filter(|f| f.starts_with("tmp")).collect()
    }

    /// Files under `tmp/` and `recordings/`, relative to the data directory, then the objects
    /// under the server's prefix in the object store as `s3/<name>`.
    pub fn files(&self) -> Vec<String> {
        let mut out = Vec::new();
        for top in ["tmp", "recordings"] {
            walk(&self.data().join(top), &mut out);
        }
        let mut files: Vec<String> =
            out.iter().map(|p| p.strip_prefix(self.data()).unwrap_or(p).display().to_string()).collect();
        if let Some(bucket) = &self.s3 {
            files.extend(bucket.names().into_iter().map(|name| format!("s3/{name}")));
        }
        files
    }

    /// The ids of the recordings whose bytes are stored, on disk or in the object store (sorted;
    /// an id twice when both have it).
    pub fn stored_ids(&self) -> Vec<String> {
        let storage = recorder::storage::Storage::open(&self.data()).expect("storage");
        let mut ids: Vec<String> =
            storage.recording_files().expect("recordings/").into_iter().map(|id| id.to_string()).collect();
        if let Some(bucket) = &self.s3 {
            ids.extend(bucket.names());
        }
        ids.sort();
        ids
    }

    /// A recording's stored bytes, wherever they are.
    pub fn stored_bytes(&self, id: &str) -> Option<Vec<u8>> {
        let uuid = uuid::Uuid::parse_str(id).expect("uuid");
        let local = self.data().join(recorder::storage::Storage::relative_path(&uuid));
        match std::fs::read(&local) {
            Ok(bytes) => Some(bytes),
            Err(_) => self.s3.as_ref().and_then(|bucket| bucket.get(id)),
        }
    }

    /// Removes a recording's stored bytes behind the server's back, wherever they are.
    pub fn remove_stored(&self, id: &str) {
        let uuid = uuid::Uuid::parse_str(id).expect("uuid");
        let local = self.data().join(recorder::storage::Storage::relative_path(&uuid));
        match std::fs::remove_file(&local) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let bucket = self.s3.as_ref().unwrap_or_else(|| panic!("no bytes stored for {id}"));
                assert!(bucket.get(id).is_some(), "no bytes stored for {id}");
                bucket.delete(id);
            }
            Err(e) => panic!("remove {}: {e}", local.display()),
        }
    }

    /// Waits until no background job (analysis, transcription) is queued or running. With an
    /// object store a job reads a temp copy of the recording in `tmp/`; it is gone by then.
    /// (With analysis off no job runs, and queued ones stay queued.)
    pub fn wait_for_jobs(&self) {
        if !self.jobs_run {
            return;
        }
        let db = self.db();
        let busy = || -> i64 {
            let conn = db.conn().expect("conn");
            conn.query_row("SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')", [], |r| r.get(0))
                .expect("jobs")
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while busy() > 0 {
            if std::time::Instant::now() > deadline {
                let conn = db.conn().expect("conn");
                let mut stmt = conn.prepare("SELECT kind, recording_id, state, attempts FROM jobs").expect("jobs");
                let jobs: Vec<String> = stmt
                    .query_map([], |r| {
                        Ok(format!(
                            "{} {} {} {}",
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, i64>(3)?
                        ))
                    })
                    .expect("jobs")
                    .collect::<Result<_, _>>()
                    .expect("jobs");
                panic!("background jobs still busy after a minute: {jobs:?}");
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The object store settings as the binary reads them from its environment (none without
    /// one), for commands run on this server's data directory.
    pub fn store_env(&self) -> Vec<(String, String)> {
        match &self.store {
            (Some(config), backend) => crate::s3::env_vars(config, backend.as_str()),
            (None, _) => Vec::new(),
        }
    }

    /// The store settings for commands on a data directory that tests serve with
    /// `Server::start_with(|c| c.data_dir = …)` (none unless the test store is the object store).
    pub fn store_env_for(data: &Path) -> Vec<(String, String)> {
        if !test_store_is_s3() {
            return Vec::new();
        }
        crate::s3::env_vars(&crate::s3::shared().config(&prefix_of(data)), "s3")
    }

    /// Replaces a recording's stored bytes behind the server's back, wherever they are.
    pub fn replace_stored(&self, id: &str, bytes: &[u8]) {
        let uuid = uuid::Uuid::parse_str(id).expect("uuid");
        let local = self.data().join(recorder::storage::Storage::relative_path(&uuid));
        if local.exists() {
            std::fs::write(&local, bytes).unwrap_or_else(|e| panic!("write {}: {e}", local.display()));
        } else {
            let bucket = self.s3.as_ref().unwrap_or_else(|| panic!("no bytes stored for {id}"));
            assert!(bucket.get(id).is_some(), "no bytes stored for {id}");
            bucket.put(id, bytes);
        }
    }

    /// The data directory as the server sees it: with its object store when it has one.
    pub fn storage(&self) -> recorder::storage::Storage {
        let storage = recorder::storage::Storage::open(&self.data()).expect("storage");
        let (s3, backend) = &self.store;
        let journal = self.data().join("s3-multipart");
        let s3 =
            s3.as_ref().map(|c| Arc::new(recorder::storage::s3::S3Store::open(c, &journal).expect("the object store")));
        storage.with_s3(s3, *backend)
    }

    pub fn db(&self) -> recorder::db::Db {
        recorder::db::Db::open(&self.data().join("recorder.db")).expect("db")
    }
}

/// The object store prefix of a data directory a test serves more than once.
fn prefix_of(data: &Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    data.hash(&mut hasher);
    format!("dir-{:016x}", hasher.finish())
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
    out.sort();
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            s.notify();
        }
        // Wait until the server is gone and has let go of its data directory (and its lock).
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// An `Authorization` value for HTTP Basic.
pub fn basic(username: &str, password: &str) -> String {
    use base64::Engine as _;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}")))
}

/// The WebDAV path of a shown name in the user's folder: `/` and the name, percent-encoded.
pub fn dav_path(name: &str) -> String {
    format!("/{}", urlencode(name))
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A response, whatever its status.
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// Asserts the API error shape with this status and code.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.text());
        assert!(
            self.header("content-type").is_some_and(|c| c.starts_with("application/json")),
            "not JSON: {:?}",
            self.headers
        );
        let json = self.json();
        assert_eq!(json["error"]["code"], code, "{json}");
        assert!(json["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{json}");
    }
}

pub(crate) fn to_resp(r: ureq::Response) -> Resp {
    to_resp_limited(r, u64::MAX)
}

/// The answer with at most `limit` bytes of its body read.
pub(crate) fn to_resp_limited(r: ureq::Response, limit: u64) -> Resp {
    let status = r.status();
    let headers = r
        .headers_names()
        .into_iter()
        .flat_map(|n| r.all(&n).into_iter().map(|v| (n.clone(), v.to_string())).collect::<Vec<_>>())
        .collect();
    let mut body = Vec::new();
    r.into_reader().take(limit).read_to_end(&mut body).expect("read body");
    Resp { status, headers, body }
}

pub fn send(req: ureq::Request, body: Option<&[u8]>) -> Resp {
    let result = match body {
        Some(b) => req.send_bytes(b),
        None => req.call(),
    };
    match result {
        Ok(r) | Err(ureq::Error::Status(_, r)) => to_resp(r),
        Err(e) => panic!("transport error: {e}"),
    }
}

pub fn send_json(req: ureq::Request, value: &Value) -> Resp {
    send(req.set("Content-Type", "application/json"), Some(value.to_string().as_bytes()))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether the environment flag `name` (a `RECORDER_REQUIRE_*`) says a tool must be there: the
/// usual true values (`1`, `true`, `yes`, `on`) say yes, unset or a false value (`0`, `false`,
/// `no`, `off`, empty) no; anything else is a mistake that fails the test rather than skip it.
pub fn required(name: &str) -> bool {
    match std::env::var(name) {
        Err(std::env::VarError::NotPresent) => false,
        Err(e) => panic!("{name}: {e}"),
        Ok(value) => match value.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => true,
            "" | "0" | "false" | "no" | "off" => false,
            other => panic!("{name}={other:?}: expected 1, true, yes or on (or 0, false, no, off)"),
        },
    }
}

/// A valid 16-bit mono WAV of exactly `total` bytes with pseudo-random samples.
pub fn noise_wav(total: usize, seed: u64) -> Vec<u8> {
    assert!(total > 44);
    let data = (total - 44) as u32;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&16_000u32.to_le_bytes());
    out.extend_from_slice(&32_000u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data.to_le_bytes());
    let mut x = seed | 1;
    while out.len() < total {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push((x >> 24) as u8);
    }
    out
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("addr").port()
}

/// Waits (bounded) for a condition that another thread or task brings about.
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("timed out waiting for: {what}");
}

/// A 16-bit mono PCM WAV file of `samples` at `rate` Hz.
pub fn pcm_wav(rate: u32, samples: &[i16]) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(2 * rate).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// A 440 Hz tone at 8 kHz whose level (0 to 1 of full scale) may change over its frames.
pub fn tone_wav(seconds: u32, level: impl Fn(u32, u32) -> f64) -> Vec<u8> {
    const RATE: u32 = 8000;
    let frames = seconds * RATE;
    let samples: Vec<i16> = (0..frames)
        .map(|i| {
            let t = f64::from(i) / f64::from(RATE);
            (level(i, frames) * 32767.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()).round() as i16
        })
        .collect();
    pcm_wav(RATE, &samples)
}

// WebDAV request bodies as real clients send them.

/// What a PROPFIND for every property sends.
pub const ALLPROP: &str =
    r#"<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>"#;

/// What rclone sends to list (its `--webdav-vendor other` body), with another prefix.
pub const NAMED_PROPS: &str = r#"<?xml version="1.0"?>
<d:propfind xmlns:d="DAV:">
 <d:prop>
  <d:displayname/>
  <d:getlastmodified/>
  <d:getcontentlength/>
  <d:resourcetype/>
 </d:prop>
</d:propfind>
"#;

/// A LOCK for an exclusive write lock.
pub const LOCKINFO: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner><D:href>the tests</D:href></D:owner></D:lockinfo>"#;

/// An account with its browser session and an app token for WebDAV.
pub struct DavUser {
    pub name: String,
    pub session: String,
    pub app: String,
}

impl DavUser {
    pub fn new(s: &Server, name: &str) -> DavUser {
        let session = s.signup(name);
        let app = s.app_token(&session, "webdav");
        DavUser { name: name.to_string(), session, app }
    }

    /// A WebDAV request with this user's name and app token.
    pub fn dav(&self, s: &Server, method: &str, path: &str) -> ureq::Request {
        s.dav(method, path, &self.name, &self.app)
    }
}

/// Every recording of a list or the trash (`path`), walking all pages.
pub fn all_pages(s: &Server, token: &str, path: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}?limit=200&cursor={}", urlencode(c)),
            None => format!("{path}?limit=200"),
        };
        let r = send(s.auth("GET", &url, token), None);
        assert_eq!(r.status, 200, "{url}: {}", r.text());
        let page = r.json();
        out.extend(page["recordings"].as_array().expect("recordings").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return out,
        }
    }
}
