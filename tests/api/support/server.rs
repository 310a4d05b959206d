//! The server in-process: a real server on an ephemeral loopback port, in its own temp data
//! dir, spoken to over real TCP. With `webdav_enabled` (see `Server::start_dav`) the server's
//! WebDAV listener gets an ephemeral loopback port too.
//!
//! With `RECORDER_TEST_STORE=s3` every server stores its recordings in the test process's shared
//! SeaweedFS instance (see `seaweed.rs`), each under a key prefix of its own; the helpers that
//! look at stored recordings (`files`, `stored_ids`, `stored_bytes`, `remove_stored`) see the
//! bucket then.

use super::http::{Resp, basic, send, send_json, urlencode};
use super::seaweed;
use recorder::{Clock, Config};
use rocket::fairing::AdHoc;
use serde_json::Value;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

pub struct Server {
    pub base: String,
    /// The WebDAV listener's base URL (`http://127.0.0.1:PORT`), when WebDAV is enabled.
    pub dav: Option<String>,
    /// `https://127.0.0.1:port` of the HTTPS listener, when TLS is on.
    pub https: Option<String>,
    /// `https://127.0.0.1:port` of WebDAV over TLS, when both are on.
    pub dav_tls: Option<String>,
    /// The certificate the HTTPS listeners present (to add an address, as a new interface would).
    pub tls: Option<Arc<recorder::tls::Certificates>>,
    /// Kept for its lifetime: the data directory is removed when the server is dropped.
    _dir: tempfile::TempDir,
    pub clock: Clock,
    data: PathBuf,
    shutdown: Option<rocket::Shutdown>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Every request the server answered, as the server saw it.
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// The object store's prefix, when the server has one configured.
    pub s3: Option<seaweed::Bucket>,
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
            c.webdav.enabled = true;
            c.webdav.port = 0;
            configure(c);
        })
    }

    pub fn start_with(configure: impl FnOnce(&mut Config)) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::with_data_dir(dir.path().join("data"));
        config.server.address = [127, 0, 0, 1].into();
        config.server.port = 0;
        config.server.shutdown_grace_secs = 1;
        // HTTPS (on by default) and WebDAV over TLS on ephemeral ports too.
        config.tls.port = 0;
        config.webdav.tls_port = 0;
        if test_store_is_s3() {
            config.storage.backend = recorder::storage::store::Backend::S3;
            config.storage.s3 = Some(seaweed::shared().config(&seaweed::fresh_prefix("server")));
        }
        let default_dir = config.storage.data_dir.clone();
        configure(&mut config);
        if test_store_is_s3() && config.storage.data_dir != default_dir {
            // A test that serves one data directory twice finds its recordings under the same
            // prefix the second time.
            if let Some(s3) = config.storage.s3.as_mut().filter(|s3| s3.prefix.starts_with("server-")) {
                s3.prefix = prefix_of(&config.storage.data_dir);
            }
        }
        let clock = Clock::default();
        let data = config.storage.data_dir.clone();
        let s3 = config.storage.s3.as_ref().map(seaweed::Bucket::of);
        let store = (config.storage.s3.clone(), config.storage.backend);
        let jobs_run = config.analysis.enabled;
        let server = recorder::Server::open(config, clock.clone()).expect("open the server");
        // Bound by `open`, served from liftoff on.
        let dav = server.webdav_addr().map(|addr| format!("http://{addr}"));
        let https = server.https_addr().map(|addr| format!("https://{addr}"));
        let dav_tls = server.webdav_tls_addr().map(|addr| format!("https://{addr}"));
        let tls = server.state.tls.clone();
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
        // HTTPS is launched at liftoff, a moment after the plain listener: wait until it accepts.
        if let Some(https) = &https {
            let addr = https.trim_start_matches("https://");
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while std::net::TcpStream::connect(addr).is_err() {
                assert!(std::time::Instant::now() < deadline, "HTTPS never listened on {addr}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Server {
            base: format!("http://127.0.0.1:{port}"),
            dav,
            https,
            dav_tls,
            tls,
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

    /// The value of a sample that `GET /metrics` shows (metrics must be on), if it shows one.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let r = send(self.req("GET", "/metrics"), None);
        assert_eq!(r.status, 200, "{}", r.text());
        metric_sample(&r.text(), series)
    }

    /// The requests answered so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn data(&self) -> PathBuf {
        self.data.clone()
    }

    /// `host:port` of the API.
    pub fn host(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// The API's address, for a proxy in front of it.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.host().parse().expect("the server's base is http://IP:PORT")
    }

    /// A raw connection to the API.
    pub fn connect(&self) -> TcpStream {
        TcpStream::connect(self.host()).expect("connect")
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
        self.session("signup", username, 201)
    }

    /// Signs in (password `password123`, as `signup` sets it) and returns the session token.
    pub fn login(&self, username: &str) -> String {
        self.session("login", username, 200)
    }

    /// `POST /api/v1/auth/{action}` with the test password, which must answer `status`; the token.
    fn session(&self, action: &str, username: &str, status: u16) -> String {
        let r = send_json(
            self.req("POST", &format!("/api/v1/auth/{action}")),
            &serde_json::json!({"username": username, "password": "password123"}),
        );
        assert_eq!(r.status, status, "{action} {username}: {}", r.text());
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

    /// `host:port` of the WebDAV listener.
    pub fn dav_host(&self) -> String {
        self.dav_url("").trim_start_matches("http://").to_string()
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
        let mut out: Vec<PathBuf> =
            ["tmp", "recordings"].iter().flat_map(|top| files_under(&self.data().join(top))).collect();
        out.sort();
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

    /// Where a recording's bytes are in the data directory, when it keeps them.
    pub fn local_path(&self, id: &str) -> PathBuf {
        recording_path(&self.data(), id)
    }

    /// A recording's stored bytes, wherever they are.
    pub fn stored_bytes(&self, id: &str) -> Option<Vec<u8>> {
        let local = self.local_path(id);
        match std::fs::read(&local) {
            Ok(bytes) => Some(bytes),
            Err(_) => self.s3.as_ref().and_then(|bucket| bucket.get(id)),
        }
    }

    /// Removes a recording's stored bytes behind the server's back, wherever they are.
    pub fn remove_stored(&self, id: &str) {
        let local = self.local_path(id);
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
        let deadline = Instant::now() + Duration::from_secs(60);
        while busy() > 0 {
            if Instant::now() > deadline {
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
            (Some(config), backend) => seaweed::env_vars(config, backend.as_str()),
            (None, _) => Vec::new(),
        }
    }

    /// The store settings for commands on a data directory that tests serve with
    /// `Server::start_with(|c| c.data_dir = …)` (none unless the test store is the object store).
    pub fn store_env_for(data: &Path) -> Vec<(String, String)> {
        if !test_store_is_s3() {
            return Vec::new();
        }
        seaweed::env_vars(&seaweed::shared().config(&prefix_of(data)), "s3")
    }

    /// Replaces a recording's stored bytes behind the server's back, wherever they are.
    pub fn replace_stored(&self, id: &str, bytes: &[u8]) {
        let local = self.local_path(id);
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

/// The value of the first sample line of Prometheus text that starts with `series` (the name,
/// and the labels when it has them).
pub fn metric_sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Every file under `dir`, in all its subdirectories (none when it does not exist), sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for path in entries.flatten().map(|entry| entry.path()) {
            if path.is_dir() { dirs.push(path) } else { out.push(path) }
        }
    }
    out.sort();
    out
}

/// The files in the `recordings/` of a data directory (which must have one), in all shards.
pub fn recording_files(data: &Path) -> Vec<PathBuf> {
    let dir = data.join("recordings");
    assert!(dir.is_dir(), "{} is not a directory", dir.display());
    files_under(&dir)
}

/// Where a recording's bytes are in a data directory that keeps them.
pub fn recording_path(data: &Path, id: &str) -> PathBuf {
    let uuid = uuid::Uuid::parse_str(id).expect("uuid");
    data.join(recorder::storage::Storage::relative_path(&uuid))
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

/// The first page of a list of recordings (`path`: the list, the trash, a search).
pub fn list(server: &Server, token: &str, path: &str) -> Vec<Value> {
    let r = send(server.auth("GET", path, token), None);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["recordings"].as_array().cloned().unwrap_or_default()
}

/// Polls a recording until its analysis is no longer pending.
pub fn settled(s: &Server, token: &str, id: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let r = send(s.auth("GET", &format!("/api/v1/recordings/{id}"), token), None);
        assert_eq!(r.status, 200, "{}", r.text());
        let recording = r.json();
        if recording["waveform"] != "pending" {
            return recording;
        }
        assert!(Instant::now() < deadline, "analysis of {id} still pending after {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
