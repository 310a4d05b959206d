//! A household at once: many clients uploading small recordings while others list, with the
//! server's resident set and thread count sampled throughout; and connections that open but never
//! finish their request headers, with what they cost and whether the server closes them.

use crate::client::Client;
use crate::report::Report;
use crate::server::Server;
use crate::stats::{Samples, count, ms, size};
use crate::{Bench, data, progress};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Target: the resident set's peak during the load scenario.
const PEAK_RSS: u64 = 64 << 20;
/// Bytes of each upload in the load scenario.
const UPLOAD_SIZE: usize = 256 * 1024;
/// Recordings per list page.
const PAGE: usize = 50;

pub fn run(bench: &Bench, report: &mut Report) {
    mixed_load(bench, report);
    half_open(bench, report);
}

/// The highest resident set and thread count seen by a sampler thread, every 10 ms.
#[derive(Default)]
struct Sampled {
    rss: AtomicU64,
    threads: AtomicU64,
}

fn mixed_load(bench: &Bench, report: &mut Report) {
    let plan = &bench.plan;
    let (uploaders, listers, seconds) = (plan.load_uploaders, plan.load_listers, plan.load_seconds);
    let account = bench.signup("load");
    let seeder = bench.client(&account);
    // Something to list from the start.
    for i in 0..PAGE {
        seeder.upload(&format!("seed {i}.wav"), &data::wav(4096, i as u64));
    }
    let lister = bench.client(&account);
    for _ in 0..20 {
        lister.list(PAGE, None);
    }
    let idle = Samples::new((0..plan.storm_samples).map(|_| lister.list(PAGE, None).1).collect());

    progress(&format!(
        "load: {uploaders} clients uploading {} files and {listers} clients listing for {seconds} s",
        size(UPLOAD_SIZE as u64)
    ));
    let server = &bench.server;
    let reset = server.reset_peak();
    let before = server.memory();
    let stop = AtomicBool::new(false);
    let errors = AtomicUsize::new(0);
    let first_error = Mutex::new(None::<String>);
    let upload_times = Mutex::new(Vec::new());
    let list_times = Mutex::new(Vec::new());
    let sampled = Sampled::default();
    let started = Instant::now();
    thread::scope(|scope| {
        scope.spawn(|| sample(server, &stop, &sampled));
        for n in 0..uploaders {
            let (account, stop, errors, first_error, upload_times) =
                (&account, &stop, &errors, &first_error, &upload_times);
            scope.spawn(move || {
                let client = bench.client(account);
                let body = data::wav(UPLOAD_SIZE, 1_000 + n as u64);
                let mut mine = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match client.try_upload(&format!("load {n}.wav"), &body) {
                        Ok(elapsed) => mine.push(elapsed),
                        Err(e) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            first_error.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                        }
                    }
                }
                upload_times.lock().unwrap_or_else(|p| p.into_inner()).extend(mine);
            });
        }
        for _ in 0..listers {
            let (account, stop, list_times) = (&account, &stop, &list_times);
            scope.spawn(move || {
                let client = bench.client(account);
                let mut mine = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    mine.push(client.list(PAGE, None).1);
                }
                list_times.lock().unwrap_or_else(|p| p.into_inner()).extend(mine);
            });
        }
        thread::sleep(Duration::from_secs(seconds));
        stop.store(true, Ordering::Relaxed);
    });
    let elapsed = started.elapsed();
    let after = server.memory();
    let uploads = Samples::new(upload_times.into_inner().unwrap_or_else(|p| p.into_inner()));
    let lists = Samples::new(list_times.into_inner().unwrap_or_else(|p| p.into_inner()));
    let errors = errors.into_inner();
    let peak = if reset { after.peak } else { sampled.rss.load(Ordering::Relaxed).max(after.rss) };
    let threads = sampled.threads.load(Ordering::Relaxed);

    let what = format!("{uploaders} uploaders of {} + {listers} listers, {seconds} s", size(UPLOAD_SIZE as u64));
    let per_s = uploads.len() as f64 / elapsed.as_secs_f64();
    report.target(
        "load",
        format!("{what}: uploads"),
        format!("{} uploads, {per_s:.0}/s; {}; {} errors", count(uploads.len()), uploads.summary(), count(errors)),
        "target 0 errors",
        errors == 0,
    );
    if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        report.note(format!("load: first upload error: {e}"));
    }
    let factor = lists.p99().as_secs_f64() / idle.p99().as_secs_f64().max(1e-9);
    report.row(
        "load",
        format!("{what}: list first page ({} requests)", count(lists.len())),
        format!("{}; p99 {factor:.1}x idle", lists.summary()),
        format!("idle: {}", idle.summary()),
    );
    report.target(
        "load",
        format!("{what}: resident memory"),
        format!("peak {} (before {}); at most {threads} threads", size(peak), size(before.rss)),
        format!("target peak <= {}", size(PEAK_RSS)),
        peak <= PEAK_RSS,
    );
    report.metric("load.uploads", uploads.to_json());
    report.metric("load.uploads_per_s", per_s);
    report.metric("load.errors", errors);
    report.metric("load.list", lists.to_json());
    report.metric("load.list_idle", idle.to_json());
    report.metric("load.peak_rss_bytes", peak);
    report.metric("load.max_threads", threads);
}

fn sample(server: &Server, stop: &AtomicBool, out: &Sampled) {
    while !stop.load(Ordering::Relaxed) {
        let (rss, threads) = server.rss_and_threads();
        out.rss.fetch_max(rss, Ordering::Relaxed);
        out.threads.fetch_max(threads, Ordering::Relaxed);
        thread::sleep(Duration::from_millis(10));
    }
}

/// Opens connections that send half a request line and never finish their headers; reports what
/// they cost the server, whether it still answers, and how many it closed within the wait.
fn half_open(bench: &Bench, report: &mut Report) {
    let plan = &bench.plan;
    let (n, wait) = (plan.half_open, Duration::from_secs(plan.half_open_wait_seconds));
    let server = &bench.server;
    let address = server.base.trim_start_matches("http://").to_string();
    progress(&format!("load: {} connections that never finish their headers", count(n)));
    let before = server.memory().rss;
    let mut sockets = Vec::with_capacity(n);
    for _ in 0..n {
        let mut socket = TcpStream::connect(&address).unwrap_or_else(|e| panic!("connecting to {address}: {e}"));
        socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nX-Slow: ").expect("sending half a request");
        sockets.push(socket);
    }
    // The server must still answer while they are open.
    let client = Client::new(&server.base);
    let health = Samples::new((0..20).map(|_| client.health()).collect());
    let held = server.memory().rss.saturating_sub(before);

    progress(&format!("load: waiting up to {} s for the server to close them", wait.as_secs()));
    let started = Instant::now();
    let mut open: Vec<TcpStream> = sockets;
    for socket in &open {
        socket.set_nonblocking(true).expect("making a socket non-blocking");
    }
    while !open.is_empty() && started.elapsed() < wait {
        open.retain(|socket| {
            let mut buf = [0u8; 512];
            let mut socket = socket;
            // Open while there is nothing to read; closed on EOF, a reset, or an answer (a 408).
            matches!(socket.read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        });
        thread::sleep(Duration::from_millis(100));
    }
    let closed = n - open.len();
    let closed_after = started.elapsed();
    drop(open);
    report.target(
        "load",
        format!("{} connections that never finish their headers", count(n)),
        format!(
            "{} closed in {} s; they hold {} of the server's memory; /healthz meanwhile {}",
            count(closed),
            closed_after.as_secs(),
            size(held),
            health.summary()
        ),
        "target: all closed within the wait",
        closed == n,
    );
    report.metric("load.half_open.connections", n);
    report.metric("load.half_open.closed", closed);
    report.metric("load.half_open.held_bytes", held);
    report.metric("load.half_open.health", health.to_json());
    progress(&format!("load: {} of them closed; /healthz p99 {}", count(closed), ms(health.p99())));
}
