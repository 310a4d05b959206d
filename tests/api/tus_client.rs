//! tus resumable uploads with a real client: tus-js-client (its Node build, `tests/tus/upload.mjs`)
//! uploads a 64 MiB WAV through a proxy of ours that cuts a dozen connections at random points,
//! in request headers and deep in bodies. The client must get through on its own retries, and
//! the recording must exist once, whole, byte for byte. Without Node or the client's package
//! (`npm ci --prefix tests/tus`) the tests say loudly that they skipped, and fail instead when
//! `RECORDER_REQUIRE_TUS_CLIENT=1` (as in CI). `RECORDER_TUS_SEED=<u64>` replays other cuts.

use crate::common::{Server, send, sha256_hex};
use rand::Rng as _;
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use rand::seq::SliceRandom as _;
use serde_json::Value;
use std::collections::VecDeque;
use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Connections the proxy cuts before it passes everything through.
const CUTS: usize = 12;
/// The WAV's `data` chunk: 64 MiB of 16-bit PCM.
const DATA_BYTES: usize = 64 << 20;
/// How long one run of the client may take before it is killed and the test fails.
const NODE_TIMEOUT: Duration = Duration::from_secs(120);
const FILENAME: &str = "long memo.wav";

/// One upload at a time: two 64 MiB uploads and their clients at once on two cores would turn
/// the time limit into a race.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn tus_js_client_survives_cut_connections_in_8_mib_chunks() {
    upload_through_cuts("tus_js_client_survives_cut_connections_in_8_mib_chunks", Some(8 << 20), 0x7e57_c0de_0008);
}

#[test]
fn tus_js_client_survives_cut_connections_in_one_patch() {
    upload_through_cuts("tus_js_client_survives_cut_connections_in_one_patch", None, 0x7e57_c0de_0001);
}

fn upload_through_cuts(test: &str, chunk_size: Option<usize>, default_seed: u64) {
    let Some(client) = TusClient::find(test) else { return };
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let seed = match std::env::var("RECORDER_TUS_SEED") {
        Ok(s) => s.parse().expect("RECORDER_TUS_SEED is a u64"),
        Err(_) => default_seed,
    };
    let why = format!("{test}, seed {seed} (RECORDER_TUS_SEED={seed} replays it)");

    let server = Server::start();
    let token = server.signup("tusclient");
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = wav(DATA_BYTES, seed);
    let file = dir.path().join(FILENAME);
    std::fs::write(&file, &wav).expect("write the WAV");
    let url_storage = dir.path().join("tus-urls.json");

    let upstream: SocketAddr =
        server.base.trim_start_matches("http://").parse().expect("the server's base is http://IP:PORT");
    let proxy = Proxy::start(upstream, cut_plan(&mut StdRng::seed_from_u64(seed)));
    let endpoint = format!("http://{}/api/v1/uploads", proxy.addr);

    let mut args = vec!["--endpoint".to_string(), endpoint, "--file".to_string(), file.display().to_string()];
    args.extend(["--url-storage".to_string(), url_storage.display().to_string()]);
    if let Some(size) = chunk_size {
        args.extend(["--chunk-size".to_string(), size.to_string()]);
    }
    let run = client.run(&args, &token);
    let cuts = proxy.cuts();
    let report = run.report();
    assert!(run.status.success() && report["ok"] == true, "{why}: the client failed; {}\n{run}", describe(&cuts));

    // The cuts were made, where they were meant to be, and the client really went through them.
    assert!(cuts.len() >= CUTS, "{why}: the proxy made only {} cuts:{}\n{run}", cuts.len(), describe(&cuts));
    assert!(
        cuts.iter().any(|c| matches!(c.place, Place::Headers(_))),
        "{why}: no cut in request headers:{}",
        describe(&cuts)
    );
    assert!(
        cuts.iter().any(|c| matches!(c.place, Place::Body(_, at) if at >= 1 << 20)),
        "{why}: no cut deep in a body:{}",
        describe(&cuts)
    );
    let retries = report["retries"].as_u64().expect("retries");
    assert!(retries >= CUTS as u64, "{why}: {} cuts but the client retried {retries} times\n{run}", cuts.len());
    // A retry went on from where the server had got to, not from the start.
    let resumed = report["resumed_at"].as_array().expect("resumed_at");
    assert!(
        resumed.iter().any(|o| o.as_u64().is_some_and(|o| o > 0)),
        "{why}: after every cut the client started over at offset 0: the server kept nothing of a \
         cut PATCH; resumed at {resumed:?}\n{run}"
    );
    // One upload resource, created once; its URL is forgotten by the client once done.
    let created =
        server.seen().iter().filter(|s| s.method == "POST" && s.path == "/api/v1/uploads" && s.status == 201).count();
    assert_eq!(created, 1, "{why}: {created} upload resources created\n{run}");
    let stored: Value =
        serde_json::from_slice(&std::fs::read(&url_storage).expect("the client's URL storage")).expect("JSON");
    let kept: Vec<&String> = stored.as_object().expect("object").keys().filter(|k| k.starts_with("tus::")).collect();
    assert!(kept.is_empty(), "{why}: removeFingerprintOnSuccess left {kept:?}");

    // Exactly one recording, the very bytes.
    let list = send(server.auth("GET", "/api/v1/recordings", &token), None);
    assert_eq!(list.status, 200, "{}", list.text());
    let list = list.json();
    let recordings = list["recordings"].as_array().expect("recordings");
    assert_eq!(recordings.len(), 1, "{why}: {list}");
    let rec = &recordings[0];
    assert_eq!(rec["size"].as_u64(), Some(wav.len() as u64), "{why}: {rec}");
    assert_eq!(rec["sha256"].as_str(), Some(sha256_hex(&wav).as_str()), "{why}: {rec}");
    assert_eq!(rec["content_type"], "audio/wav", "{why}: {rec}");
    assert_eq!(rec["name"], FILENAME, "{why}: {rec}");
    let id = rec["id"].as_str().expect("id");
    let audio = send(server.auth("GET", &format!("/api/v1/recordings/{id}/audio"), &token), None);
    assert_eq!(audio.status, 200, "{why}: {}", audio.text());
    assert_eq!(audio.body.len(), wav.len(), "{why}: audio length");
    assert!(audio.body == wav, "{why}: the audio differs from the source");

    // The upload resource (asked of the server directly) points at that recording.
    let url = report["url"].as_str().expect("url");
    let path = url.strip_prefix(&format!("http://{}", proxy.addr)).expect("the upload URL is on the endpoint's origin");
    assert!(path.starts_with("/api/v1/uploads/"), "{why}: upload URL {url}");
    let upload = send(server.auth("GET", path, &token).set("Accept", "application/json"), None);
    assert_eq!(upload.status, 200, "{why}: {}", upload.text());
    assert_eq!(upload.json()["recording"]["id"], id, "{why}: {}", upload.text());
}

/// A WAV file: 48 kHz mono 16-bit PCM, `data_bytes` of pseudo-random samples (xorshift64).
fn wav(data_bytes: usize, seed: u64) -> Vec<u8> {
    let data_len = u32::try_from(data_bytes).expect("data chunk under 4 GiB");
    let (channels, rate, bits) = (1u16, 48_000u32, 16u16);
    let block_align = channels * bits / 8;
    let mut out = Vec::with_capacity(44 + data_bytes + 8);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * u32::from(block_align)).to_le_bytes());
    out.extend_from_slice(&block_align.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    let mut x = seed | 1;
    while out.len() < 44 + data_bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(44 + data_bytes);
    out
}

/// Where the proxy cuts, in random order: each entry is a number of bytes from the client since
/// the previous cut (or the start), over whatever connections carry them. After a cut the client
/// sends a new request, so small entries land in its headers, middling ones around its end or
/// early in a body, big ones deep in a body, up to past an 8 MiB chunk. They add up to well under
/// the file, so the upload cannot finish before every cut is made, whatever the server keeps of
/// a cut request and however the client spreads its requests over connections.
fn cut_plan(rng: &mut StdRng) -> Vec<u64> {
    let mut plan = Vec::with_capacity(CUTS);
    plan.extend((0..3).map(|_| rng.gen_range(0..200)));
    plan.extend((0..3).map(|_| rng.gen_range(200..64 << 10)));
    plan.extend((0..3).map(|_| rng.gen_range(64 << 10..2 << 20)));
    plan.extend((0..3).map(|_| rng.gen_range(2 << 20..=12 << 20)));
    plan.shuffle(rng);
    assert!(plan.iter().sum::<u64>() < DATA_BYTES as u64);
    plan
}

/// A cut the proxy made: after `at` bytes from the client on the connection, at `place`.
#[derive(Debug, Clone)]
struct Cut {
    at: u64,
    place: Place,
}

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cut after {} bytes: ", self.at)?;
        match &self.place {
            Place::Headers(line) => write!(f, "in the headers of `{line}`"),
            Place::Body(line, at) => write!(f, "{at} bytes into the body of `{line}`"),
            Place::Between(line) if line.is_empty() => write!(f, "before any request"),
            Place::Between(line) => write!(f, "right after `{line}`"),
        }
    }
}

/// The cuts, one a line.
fn describe(cuts: &[Cut]) -> String {
    cuts.iter().map(|c| format!("\n  {c}")).collect()
}

/// Where in the HTTP exchange a cut landed.
#[derive(Debug, Clone)]
enum Place {
    /// Inside a request's headers; what had come of its first line.
    Headers(String),
    /// This many bytes into the body of the request with this first line.
    Body(String, u64),
    /// Between requests: after the request with this first line (empty: before any).
    Between(String),
}

/// A TCP proxy on loopback to the server that cuts connections (drops both sides) at the planned
/// points, then passes everything through.
///
/// The plan counts bytes over all connections, not per connection: a client may keep an idle
/// connection beside the one it is using (tus-js-client may send its HEAD and its PATCH on two),
/// and a count per connection could leave a planned cut to a connection that never gets that far.
struct Proxy {
    addr: SocketAddr,
    cuts: Arc<Mutex<Vec<Cut>>>,
    rt: Option<tokio::runtime::Runtime>,
}

impl Proxy {
    fn start(upstream: SocketAddr, plan: Vec<u64>) -> Proxy {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("the proxy's runtime");
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let plan = Arc::new(Mutex::new(Plan { left: VecDeque::from(plan), since_cut: 0 }));
        let cuts = Arc::new(Mutex::new(Vec::new()));
        let made = cuts.clone();
        rt.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (plan, made) = (plan.clone(), made.clone());
                tokio::spawn(async move {
                    if let Some(cut) = relay(client, upstream, &plan).await {
                        made.lock().unwrap_or_else(|p| p.into_inner()).push(cut);
                    }
                });
            }
        });
        Proxy { addr, cuts, rt: Some(rt) }
    }

    fn cuts(&self) -> Vec<Cut> {
        self.cuts.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// The cuts still to make, and the bytes from clients since the last one.
struct Plan {
    left: VecDeque<u64>,
    since_cut: u64,
}

impl Plan {
    /// How much of `n` bytes from a client to forward, and whether to cut after them.
    fn take(&mut self, n: usize) -> (usize, bool) {
        let Some(&at) = self.left.front() else { return (n, false) };
        let due = usize::try_from(at - self.since_cut).unwrap_or(usize::MAX);
        if due <= n {
            self.left.pop_front();
            self.since_cut = 0;
            (due, true)
        } else {
            self.since_cut += n as u64;
            (n, false)
        }
    }
}

/// Relays one connection; returns the cut when it cut it.
async fn relay(client: tokio::net::TcpStream, upstream: SocketAddr, plan: &Mutex<Plan>) -> Option<Cut> {
    let server = tokio::net::TcpStream::connect(upstream).await.ok()?;
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let up = async {
        let mut buf = vec![0u8; 64 << 10];
        let mut sent = 0u64;
        let mut framing = Framing::default();
        loop {
            let n = match from_client.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    let _ = to_server.shutdown().await;
                    return None;
                }
                Ok(n) => n,
            };
            let (take, cut) = plan.lock().unwrap_or_else(|p| p.into_inner()).take(n);
            framing.advance(&buf[..take]);
            let wrote = to_server.write_all(&buf[..take]).await.is_ok();
            sent += take as u64;
            if cut {
                return Some(framing.cut(sent));
            }
            if !wrote {
                return None;
            }
        }
    };
    let down = tokio::io::copy(&mut from_server, &mut to_client);
    tokio::pin!(up, down);
    // On a cut both sides are dropped at once: the client and the server each see the
    // connection die.
    tokio::select! {
        cut = &mut up => {
            if cut.is_none() {
                let _ = down.await;
            }
            cut
        }
        _ = &mut down => None,
    }
}

/// Follows the HTTP/1.1 requests on a connection (bodies by `Content-Length`, which is what
/// tus-js-client sends), to say where a cut landed.
#[derive(Default)]
struct Framing {
    /// The current request's bytes so far while in its headers.
    head: Vec<u8>,
    /// The current request's first line, once its headers are complete.
    request: String,
    /// Body bytes forwarded and still expected, once the headers are complete.
    body: Option<(u64, u64)>,
}

impl Framing {
    fn advance(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match &mut self.body {
                Some((done, left)) => {
                    let n = (*left).min(bytes.len() as u64);
                    *done += n;
                    *left -= n;
                    bytes = &bytes[usize::try_from(n).unwrap_or(bytes.len())..];
                    if *left == 0 {
                        self.body = None;
                    }
                }
                None => {
                    self.head.push(bytes[0]);
                    bytes = &bytes[1..];
                    if self.head.ends_with(b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&self.head).to_string();
                        self.request = head.lines().next().unwrap_or_default().to_string();
                        let length = head
                            .lines()
                            .filter_map(|l| l.split_once(':'))
                            .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
                            .and_then(|(_, v)| v.trim().parse::<u64>().ok())
                            .unwrap_or(0);
                        self.head.clear();
                        self.body = (length > 0).then_some((0, length));
                    }
                }
            }
        }
    }

    fn cut(&self, at: u64) -> Cut {
        let place = match self.body {
            Some((done, _)) => Place::Body(self.request.clone(), done),
            None if self.head.is_empty() => Place::Between(self.request.clone()),
            None => Place::Headers(String::from_utf8_lossy(&self.head).lines().next().unwrap_or_default().to_string()),
        };
        Cut { at, place }
    }
}

/// Node and the installed tus-js-client.
struct TusClient {
    node: PathBuf,
    script: PathBuf,
}

impl TusClient {
    /// Finds them, or returns `None` after saying loudly why (panics instead when required).
    fn find(test: &str) -> Option<TusClient> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tus");
        let node = match std::env::var_os("RECORDER_NODE") {
            Some(node) => Some(PathBuf::from(node)).filter(|p| p.exists()),
            None => std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
                .flat_map(|d| [d.join("node"), d.join("nodejs")])
                .find(|p| p.is_file()),
        };
        let installed = dir.join("node_modules/tus-js-client/package.json").is_file();
        let why = match (&node, installed) {
            (Some(node), true) => return Some(TusClient { node: node.clone(), script: dir.join("upload.mjs") }),
            (None, _) => {
                "Node.js was not found (install Node.js 18 or later, e.g. `apt-get install nodejs npm`, \
                          or point RECORDER_NODE at it), and then run `npm ci --prefix tests/tus`"
            }
            (Some(_), false) => {
                "tus-js-client is not installed in tests/tus/node_modules: run `npm ci --prefix tests/tus`"
            }
        };
        if crate::common::required("RECORDER_REQUIRE_TUS_CLIENT") {
            panic!("{test}: RECORDER_REQUIRE_TUS_CLIENT is set but {why}");
        }
        // Straight to the terminal, past the test harness's capture: a skip must be seen.
        let _ = writeln!(std::io::stderr(), "\n*** SKIPPED tus client test {test}: {why}. ***\n");
        None
    }

    /// Runs `upload.mjs` with these arguments and the token, killed after `NODE_TIMEOUT`.
    fn run(&self, args: &[String], token: &str) -> Run {
        let mut child = Command::new(&self.node)
            .arg(&self.script)
            .args(args)
            .env("TUS_TOKEN", token)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start node");
        let read_all = |mut pipe: Box<dyn std::io::Read + Send>| {
            std::thread::spawn(move || {
                let mut out = String::new();
                let _ = pipe.read_to_string(&mut out);
                out
            })
        };
        let stdout = read_all(Box::new(child.stdout.take().expect("stdout")));
        let stderr = read_all(Box::new(child.stderr.take().expect("stderr")));
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for node") {
                break status;
            }
            if started.elapsed() > NODE_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                let (out, err) = (stdout.join().unwrap_or_default(), stderr.join().unwrap_or_default());
                panic!("the tus client ran over {NODE_TIMEOUT:?} and was killed\nstdout:\n{out}\nstderr:\n{err}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Run {
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
            took: started.elapsed(),
        }
    }
}

/// What one run of the client did.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Run {
    /// The client's last JSON line.
    fn report(&self) -> Value {
        let line = self.stdout.lines().rev().find(|l| l.starts_with('{'));
        line.and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| panic!("no JSON report from the client\n{self}"))
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "node: {} after {:?}\nstdout:\n{}\nstderr:\n{}", self.status, self.took, self.stdout, self.stderr)
    }
}
