//! The real release server as a child process: started on a temp data dir with a controlled
//! environment, its log forwarded to a file, its memory read from `/proc`, stopped with SIGTERM.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The release binary `cargo bench` built.
pub const BINARY: &str = env!("CARGO_BIN_EXE_recorder");

/// How long a start may take before the benchmark gives up.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Where a server keeps its data and its log.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The working directory (nothing in it is read: the config is passed explicitly).
    pub root: PathBuf,
    pub data_dir: PathBuf,
    pub config: PathBuf,
    /// Every start appends its log here.
    pub log: PathBuf,
    /// `[analysis] enabled`: whether the background worker decodes new recordings.
    pub analysis: bool,
    /// `[metrics] enabled`: `GET /metrics` (open to loopback).
    pub metrics: bool,
    /// `[webdav] enabled` on this loopback port (picked free when the setup is created).
    pub webdav_port: Option<u16>,
    /// `[tls] port`: the HTTPS port (a loopback port picked free when the setup is created).
    pub tls_port: u16,
    /// `[transcription] model`: a Whisper model directory (int8, one thread, English), or none.
    pub transcription: Option<PathBuf>,
    /// `storage.backend = "s3"` with this `[storage.s3]`, or the data directory.
    pub s3: Option<S3Target>,
}

/// An object store the server keeps its recordings in (`[storage.s3]`).
#[derive(Debug, Clone)]
pub struct S3Target {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Keys are `<prefix>/<recording id>`.
    pub prefix: String,
}

impl Setup {
    /// Writes the config file: a 2 GiB upload limit, a short shutdown grace, no background
    /// analysis, so the phases measure requests alone (uploads still queue their analysis job,
    /// in the same transaction), and WebDAV on a free loopback port; everything else stays at
    /// the built-in defaults (the `info` log level included). Starts the log file afresh.
    pub fn create(root: &Path, log: &Path) -> Setup {
        let setup = Setup { webdav_port: Some(free_port()), ..Setup::settings(root, log) };
        setup.write_config();
        File::create(&setup.log).expect("creating the server log file");
        setup
    }

    /// A second data directory under `root` for the analysis phase: the same config with
    /// analysis and `/metrics` on (and WebDAV off); its server appends to the same log.
    pub fn for_analysis(root: &Path, log: &Path) -> Setup {
        fs::create_dir_all(root).unwrap_or_else(|e| panic!("creating {}: {e}", root.display()));
        let setup = Setup { analysis: true, metrics: true, ..Setup::settings(root, log) };
        setup.write_config();
        setup
    }

    /// A data directory under `root` for the transcription phase: with a model, analysis and the
    /// transcription worker on; without one, both off (WebDAV and `/metrics` off either way).
    pub fn for_transcription(root: &Path, log: &Path, model: Option<&Path>) -> Setup {
        fs::create_dir_all(root).unwrap_or_else(|e| panic!("creating {}: {e}", root.display()));
        let setup = Setup {
            analysis: model.is_some(),
            transcription: model.map(Path::to_path_buf),
            ..Setup::settings(root, log)
        };
        setup.write_config();
        setup
    }

    /// A data directory under `root` for the s3 phase: new recordings go to `store` (analysis,
    /// WebDAV and `/metrics` off).
    pub fn for_s3(root: &Path, log: &Path, store: S3Target) -> Setup {
        fs::create_dir_all(root).unwrap_or_else(|e| panic!("creating {}: {e}", root.display()));
        let setup = Setup { s3: Some(store), ..Setup::settings(root, log) };
        setup.write_config();
        setup
    }

    /// The paths under `root`, with analysis, metrics and WebDAV off; nothing written yet.
    fn settings(root: &Path, log: &Path) -> Setup {
        Setup {
            root: root.to_path_buf(),
            data_dir: root.join("data"),
            config: root.join("bench.toml"),
            log: log.to_path_buf(),
            analysis: false,
            metrics: false,
            webdav_port: None,
            tls_port: free_port(),
            transcription: None,
            s3: None,
        }
    }

    /// (Re)writes the config file from the settings; the next start reads it.
    pub fn write_config(&self) {
        // New recordings go to the object store when there is one.
        let backend = if self.s3.is_some() { "backend = \"s3\"\n" } else { "" };
        let mut config = format!(
            "[server]\nshutdown_grace = 5\n\n[storage]\nmax_upload_size = \"2 GiB\"\n{backend}\n\
             [uploads]\nmax_incomplete = 100\n\n[analysis]\nenabled = {}\n\n[metrics]\nenabled = {}\n",
            self.analysis, self.metrics
        );
        if let Some(s3) = &self.s3 {
            let text = |value: &str| toml::Value::String(value.to_string());
            config.push_str(&format!(
                "\n[storage.s3]\nendpoint = {}\nbucket = {}\naccess_key_id = {}\nsecret_access_key = {}\nprefix = {}\n",
                text(&s3.endpoint),
                text(&s3.bucket),
                text(&s3.access_key_id),
                text(&s3.secret_access_key),
                text(&s3.prefix)
            ));
        }
        // HTTPS is on by default: on a port of its own here too (WebDAV's TLS port as well).
        config.push_str(&format!("\n[tls]\nport = {}\n", self.tls_port));
        if let Some(port) = self.webdav_port {
            config.push_str(&format!("\n[webdav]\nenabled = true\nport = {port}\ntls_port = 0\n"));
        }
        if let Some(model) = &self.transcription {
            let model = toml::Value::String(model.display().to_string());
            config.push_str(&format!(
                "\n[transcription]\nmodel = {model}\ncompute = \"int8\"\nthreads = 1\nlanguage = \"en\"\n"
            ));
        }
        fs::write(&self.config, config).expect("writing the benchmark's config file");
    }

    /// The WebDAV listener's URL (the same loopback address as the API), when it is on.
    pub fn dav_base(&self) -> Option<String> {
        self.webdav_port.map(|port| format!("http://127.0.0.1:{port}/"))
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("recorder.db")
    }

    /// The stored file of a recording: `recordings/<last 2 hex chars of id>/<id>`.
    pub fn recording_path(&self, id: &str) -> PathBuf {
        let shard = &id[id.len().saturating_sub(2)..];
        self.data_dir.join("recordings").join(shard).join(id)
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    listener.local_addr().expect("the bound address").port()
}

/// Resident memory of the server, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    /// `VmRSS`, bytes.
    pub rss: u64,
    /// `VmHWM` (the peak since start or since the last reset), bytes.
    pub peak: u64,
}

/// A running server.
pub struct Server {
    child: Option<Child>,
    log_forwarder: Option<JoinHandle<()>>,
    pub base: String,
    /// From exec to the first 200 from `/healthz`.
    pub ready_after: Duration,
}

impl Server {
    /// Starts the server on a free loopback port and waits for `/healthz` to answer 200.
    pub fn start(setup: &Setup) -> Server {
        let started = Instant::now();
        let mut child = Command::new(BINARY)
            .arg("serve")
            .arg("--config")
            .arg(&setup.config)
            .arg("--data-dir")
            .arg(&setup.data_dir)
            .args(["--address", "127.0.0.1", "--port", "0"])
            // A clean environment, as a plain `cargo run --release` would have one: the binary sets
            // the allocator's purge delay itself.
            .env_clear()
            // Settings to compare (`RECORDER_SERVER_BLOCKING_THREADS=8 cargo bench`) reach the server;
            // whether analysis and transcription run is the benchmark's to set, phase by phase, and
            // its own variables (`RECORDER_BENCH_*`) are not the server's.
            .envs(std::env::vars().filter(|(k, _)| {
                (k.starts_with("RECORDER_") || k.starts_with("MIMALLOC_"))
                    && !matches!(k.as_str(), "RECORDER_ANALYSIS_ENABLED" | "RECORDER_TRANSCRIPTION_MODEL")
                    && !k.starts_with("RECORDER_BENCH_")
            }))
            .current_dir(&setup.root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BINARY}: {e}"));
        let stderr = child.stderr.take().expect("the server's stderr is piped");
        let log = OpenOptions::new().append(true).open(&setup.log).expect("opening the server log file");
        let (tx, rx) = mpsc::channel();
        let log_forwarder = thread::spawn(move || forward_log(stderr, log, tx));
        let mut server = Server {
            child: Some(child),
            log_forwarder: Some(log_forwarder),
            base: String::new(),
            ready_after: Duration::ZERO,
        };

        let address = match rx.recv_timeout(START_TIMEOUT) {
            Ok(address) => address,
            Err(_) => {
                let status = server.stop();
                panic!("the server did not say where it listens ({status}); see {}", setup.log.display());
            }
        };
        server.base = format!("http://{address}");
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(5)).build();
        let health = format!("{}/healthz", server.base);
        while !matches!(agent.get(&health).call(), Ok(r) if r.status() == 200) {
            if started.elapsed() > START_TIMEOUT {
                server.stop();
                panic!("/healthz did not answer 200 within {START_TIMEOUT:?}; see {}", setup.log.display());
            }
            thread::sleep(Duration::from_millis(1));
        }
        server.ready_after = started.elapsed();
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("the server is running")
    }

    pub fn memory(&self) -> Memory {
        let path = format!("/proc/{}/status", self.pid());
        let status = fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
        let field = |name: &str| -> u64 {
            let line = status.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in {path}"));
            let kib: u64 = line[name.len()..].trim().trim_end_matches("kB").trim().parse().expect("a number of kB");
            kib * 1024
        };
        Memory { rss: field("VmRSS:"), peak: field("VmHWM:") }
    }

    /// The resident set (bytes) and the number of threads, from `/proc/<pid>/status`; zeros
    /// once the process is gone.
    pub fn rss_and_threads(&self) -> (u64, u64) {
        let Ok(status) = fs::read_to_string(format!("/proc/{}/status", self.pid())) else { return (0, 0) };
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:") * 1024, field("Threads:"))
    }

    /// CPU time the server's threads named `name` have used so far, from `/proc/<pid>/task/*/`;
    /// `None` when no thread has that name.
    pub fn thread_cpu(&self, name: &str) -> Option<Duration> {
        let tasks = fs::read_dir(format!("/proc/{}/task", self.pid())).ok()?;
        let mut total = None;
        for task in tasks.flatten() {
            let comm = fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.trim_end() == name
                && let Some(cpu) = crate::cpu::task_cpu(&task.path())
            {
                total = Some(total.unwrap_or(Duration::ZERO) + cpu);
            }
        }
        total
    }

    /// Resets the peak (`VmHWM`) to the current resident set, by writing 5 to
    /// `/proc/<pid>/clear_refs`. False when the kernel refused.
    pub fn reset_peak(&self) -> bool {
        fs::write(format!("/proc/{}/clear_refs", self.pid()), "5").is_ok()
    }

    /// SIGTERM, then waits for the graceful stop (SIGKILL after 20 s). Returns how it ended.
    pub fn stop(&mut self) -> String {
        let Some(mut child) = self.child.take() else { return "already stopped".into() };
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        let outcome = loop {
            match child.try_wait() {
                Ok(Some(status)) => break format!("exited with {status}"),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break "killed after not stopping on SIGTERM".into();
                }
            }
        };
        if let Some(forwarder) = self.log_forwarder.take() {
            let _ = forwarder.join();
        }
        outcome
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Copies the server's stderr to the log file, and sends the address from the
/// `listening on ADDR:PORT` line once it appears.
fn forward_log(stderr: ChildStderr, log: File, address: mpsc::Sender<String>) {
    let mut log = BufWriter::new(log);
    let mut announced = false;
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        if !announced && let Some((_, addr)) = line.split_once("listening on ") {
            announced = address.send(addr.trim().to_string()).is_ok();
        }
        let _ = writeln!(log, "{line}");
    }
    let _ = log.flush();
}
