//! Uploads: one big file beside writing the same bytes to the same disk with fsync and beside
//! hashing them; many small uploads from concurrent clients; and the server's resident memory
//! while it takes them.

use crate::client::{Account, Client};
use crate::report::Report;
use crate::server::{Memory, Server};
use crate::stats::{Samples, count, mb_per_s, median, ms, rate, ratio, size};
use crate::{Bench, data, progress};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Upload target: at least this fraction of the fsync'd disk-write rate.
const UPLOAD_VS_DISK: f64 = 0.6;
/// Resumable target: the big file through tus in 8 MiB PATCHes at this fraction of the one-shot rate.
const TUS_VS_ONE_SHOT: f64 = 0.9;
/// tus PATCH size for the big file.
const TUS_CHUNK: usize = 8 << 20;
/// Open resumable uploads in the memory scenario.
const OPEN_UPLOADS: usize = 50;
/// Memory target: the resident set grows less than this during the big upload.
const BIG_UPLOAD_GROWTH: u64 = 16 << 20;

/// The big recording the download phase reads back.
pub struct BigFile {
    pub id: String,
    pub size: usize,
    pub sha256: String,
}

/// How the server's peak memory is measured during a phase.
#[derive(Clone, Copy)]
pub enum PeakMethod {
    /// `VmHWM`, reset before the phase through `/proc/<pid>/clear_refs`.
    ResetHighWaterMark,
    /// The highest `VmRSS` sampled every 5 ms (when the kernel refuses the reset).
    Sampled,
}

/// The server's memory around one phase.
pub struct Peak {
    pub before: u64,
    pub peak: u64,
}

impl Peak {
    pub fn growth(&self) -> u64 {
        self.peak.saturating_sub(self.before)
    }
}

pub fn run(bench: &Bench, account: &Account, report: &mut Report, idle: Memory) -> BigFile {
    let method = check_peak_reset(&bench.server, idle, report);
    let big = big_upload(bench, account, method, report);
    small_uploads(bench, account, report);
    parallel_uploads(bench, account, method, report);
    open_uploads(bench, account, method, report);
    big
}

/// Idle memory, the Argon2 peak from the sign-up, and whether the peak can be reset here.
fn check_peak_reset(server: &Server, idle: Memory, report: &mut Report) -> PeakMethod {
    let before = server.memory();
    report.row("memory", "idle, just started", size(idle.rss), "");
    report.row("memory", "peak after one sign-up (Argon2)", size(before.peak), "Argon2id: 19 MiB");
    report.metric("memory.idle_rss_bytes", idle.rss);
    report.metric("memory.peak_after_signup_bytes", before.peak);
    let method = peak_method(server);
    let after = server.memory();
    let works = matches!(method, PeakMethod::ResetHighWaterMark);
    let result = if works {
        format!("works: VmHWM {} -> {}", size(before.peak), size(after.peak))
    } else {
        "refused: peaks are VmRSS sampled every 5 ms".to_string()
    };
    report.row("memory", "peak reset (5 > /proc/PID/clear_refs)", result, "Argon2 does not count below");
    report.metric("memory.peak_reset_works", works);
    method
}

/// Whether the kernel lets the server's peak be reset here (it resets it when it does).
pub fn peak_method(server: &Server) -> PeakMethod {
    let reset = server.reset_peak();
    let after = server.memory();
    if reset && after.peak <= after.rss + (256 << 10) { PeakMethod::ResetHighWaterMark } else { PeakMethod::Sampled }
}

/// Runs `work` and returns its result with the server's memory before and at its peak.
pub fn measure_peak<T>(server: &Server, method: PeakMethod, work: impl FnOnce() -> T) -> (T, Peak) {
    match method {
        PeakMethod::ResetHighWaterMark => {
            server.reset_peak();
            let before = server.memory().rss;
            let result = work();
            (result, Peak { before, peak: server.memory().peak })
        }
        PeakMethod::Sampled => {
            let before = server.memory().rss;
            let done = AtomicBool::new(false);
            thread::scope(|scope| {
                let sampler = scope.spawn(|| {
                    let mut peak = before;
                    while !done.load(Ordering::Relaxed) {
                        peak = peak.max(server.memory().rss);
                        thread::sleep(Duration::from_millis(5));
                    }
                    peak
                });
                let result = work();
                done.store(true, Ordering::Relaxed);
                let peak = sampler.join().expect("the memory sampler");
                (result, Peak { before, peak })
            })
        }
    }
}

/// Writes `body` to a new file in 1 MiB writes and fsyncs it (`dd bs=1M conv=fsync`).
fn write_fsync(path: &Path, body: &[u8]) -> Duration {
    let started = Instant::now();
    let mut file = File::create(path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
    for chunk in body.chunks(1 << 20) {
        file.write_all(chunk).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
    file.sync_all().unwrap_or_else(|e| panic!("fsync of {}: {e}", path.display()));
    started.elapsed()
}

fn big_upload(bench: &Bench, account: &Account, method: PeakMethod, report: &mut Report) -> BigFile {
    let (plan, server) = (&bench.plan, &bench.server);
    let label = size(plan.big_size as u64);
    progress(&format!("generating a {label} WAV file"));
    let body = data::wav(plan.big_size, 0x5EED);
    let client = Client::as_user(&server.base, account);
    let (mut writes, mut hashes, mut uploads, mut peaks) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut resumable, mut resumable_peaks) = (Vec::new(), Vec::new());
    let mut stored: Vec<BigFile> = Vec::new();
    for run in 1..=plan.big_runs {
        let of = format!("run {run}/{}", plan.big_runs);
        progress(&format!("{of}: writing {label} to the same disk with fsync"));
        writes.push(write_fsync(&bench.work.join(format!("reference-{run}.wav")), &body));

        progress(&format!("{of}: SHA-256 of {label}"));
        let started = Instant::now();
        let digest = data::hex(&Sha256::digest(&body));
        hashes.push(started.elapsed());

        progress(&format!("{of}: uploading {label}"));
        let ((recording, elapsed), peak) =
            measure_peak(server, method, || client.upload(&format!("big-{run}.wav"), &body));
        let id = recording["id"].as_str().expect("the upload answer has an id").to_string();
        assert_eq!(recording["size"].as_u64(), Some(body.len() as u64), "stored size of the big upload");
        assert_eq!(recording["sha256"].as_str(), Some(digest.as_str()), "stored SHA-256 of the big upload");
        uploads.push(elapsed);
        peaks.push(peak);

        progress(&format!("{of}: uploading {label} through tus in {} PATCHes", size(TUS_CHUNK as u64)));
        let ((tus_id, tus_elapsed), tus_peak) =
            measure_peak(server, method, || client.tus_upload(&format!("big-tus-{run}.wav"), &body, TUS_CHUNK));
        let tus_recording = client.recording(&tus_id);
        assert_eq!(tus_recording["sha256"].as_str(), Some(digest.as_str()), "stored SHA-256 of the tus upload");
        client.delete_permanently(&tus_id);
        resumable.push(tus_elapsed);
        resumable_peaks.push(tus_peak);
        stored.push(BigFile { id, size: body.len(), sha256: digest });
    }
    for run in 1..=plan.big_runs {
        let _ = fs::remove_file(bench.work.join(format!("reference-{run}.wav")));
    }
    let big = stored.remove(0);
    for extra in stored {
        client.delete_permanently(&extra.id);
    }

    let runs = if plan.big_runs > 1 { format!(", median of {}", plan.big_runs) } else { String::new() };
    let (upload, write, hash) = (median(&uploads), median(&writes), median(&hashes));
    let (upload_rate, write_rate, hash_rate) =
        (mb_per_s(body.len(), upload), mb_per_s(body.len(), write), mb_per_s(body.len(), hash));
    report.row(
        "upload",
        format!("{label} in one request{runs}"),
        format!("{}, {}", ms(upload), rate(upload_rate)),
        format!("write+fsync, same disk: {}, {}", ms(write), rate(write_rate)),
    );
    report.target(
        "upload",
        "upload rate / write+fsync rate",
        ratio(upload_rate / write_rate),
        format!("target >= {UPLOAD_VS_DISK}"),
        upload_rate >= UPLOAD_VS_DISK * write_rate,
    );
    report.row(
        "upload",
        "upload rate / SHA-256 rate",
        ratio(upload_rate / hash_rate),
        format!("SHA-256 (sha2): {}, {}", ms(hash), rate(hash_rate)),
    );
    report.row("upload", "stored size and SHA-256", "match the bytes sent", "");
    let tus = median(&resumable);
    let tus_rate = mb_per_s(body.len(), tus);
    report.row(
        "upload",
        format!("{label} through tus, {} PATCHes{runs}", size(TUS_CHUNK as u64)),
        format!("{}, {}", ms(tus), rate(tus_rate)),
        "each PATCH fsynced before its offset is answered",
    );
    report.target(
        "upload",
        "tus rate / one-request rate (same runs)",
        ratio(tus_rate / upload_rate),
        format!("target >= {TUS_VS_ONE_SHOT}"),
        tus_rate >= TUS_VS_ONE_SHOT * upload_rate,
    );
    report.metric("upload.tus.seconds", seconds(&resumable));
    report.metric("upload.tus.mb_per_s", tus_rate);
    let worst_tus = resumable_peaks.iter().max_by_key(|p| p.growth()).expect("at least one run");
    report.row(
        "memory",
        format!("during the {label} tus upload (worst of {})", resumable_peaks.len()),
        format!("peak {} (+{} over {})", size(worst_tus.peak), size(worst_tus.growth()), size(worst_tus.before)),
        "",
    );
    report.metric("memory.tus_upload.growth_bytes", resumable_peaks.iter().map(Peak::growth).collect::<Vec<_>>());
    report.note(
        "rates are decimal MB/s; the HTTP client (ureq 2) shares the cores with the server and sends bodies \
         in 8 KiB writes",
    );
    report.metric("upload.big.bytes", body.len());
    report.metric("upload.big.seconds", seconds(&uploads));
    report.metric("upload.big.mb_per_s", upload_rate);
    report.metric("upload.disk_write_fsync.seconds", seconds(&writes));
    report.metric("upload.disk_write_fsync.mb_per_s", write_rate);
    report.metric("upload.sha256.seconds", seconds(&hashes));
    report.metric("upload.sha256.mb_per_s", hash_rate);

    let worst = peaks.iter().max_by_key(|p| p.growth()).expect("at least one run");
    report.target(
        "memory",
        format!("during the {label} upload (worst of {})", peaks.len()),
        format!("peak {} (+{} over {})", size(worst.peak), size(worst.growth()), size(worst.before)),
        format!("target growth < {}", size(BIG_UPLOAD_GROWTH)),
        worst.growth() < BIG_UPLOAD_GROWTH,
    );
    report.metric("memory.big_upload.growth_bytes", peaks.iter().map(Peak::growth).collect::<Vec<_>>());
    report.metric("memory.big_upload.peak_bytes", peaks.iter().map(|p| p.peak).collect::<Vec<_>>());
    big
}

/// Runs `jobs` jobs on `threads` threads; each thread gets its own state from `init`.
/// Returns each job's latency and the wall time.
pub fn run_jobs<S>(
    threads: usize,
    jobs: usize,
    init: impl Fn() -> S + Sync,
    job: impl Fn(&mut S, usize) -> Duration + Sync,
) -> (Vec<Duration>, Duration) {
    let next = AtomicUsize::new(0);
    let latencies = Mutex::new(Vec::with_capacity(jobs));
    let start = Barrier::new(threads + 1);
    let wall = thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut state = init();
                let mut mine = Vec::new();
                start.wait();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= jobs {
                        break;
                    }
                    mine.push(job(&mut state, i));
                }
                latencies.lock().unwrap_or_else(|p| p.into_inner()).extend(mine);
            });
        }
        start.wait();
        Instant::now()
    })
    .elapsed();
    (latencies.into_inner().unwrap_or_else(|p| p.into_inner()), wall)
}

fn small_uploads(bench: &Bench, account: &Account, report: &mut Report) {
    let plan = &bench.plan;
    let (n, clients) = (plan.small_count, plan.small_clients);
    let label = format!("{} x {} uploads, {clients} clients", count(n), size(plan.small_size as u64));
    let body = data::wav(plan.small_size, 0xC0FFEE);

    progress(&format!(
        "reference: {} files of {} written with fsync by {clients} threads",
        count(n),
        size(plan.small_size as u64)
    ));
    let dir = bench.work.join("reference-small");
    fs::create_dir_all(&dir).expect("creating the reference dir");
    let (_, disk_wall) = run_jobs(clients, n, || (), |_, i| write_fsync(&dir.join(format!("{i}.wav")), &body));
    let _ = fs::remove_dir_all(&dir);

    progress(&label);
    let (latencies, wall) =
        run_jobs(clients, n, || bench.client(account), |client, i| client.upload(&format!("small-{i}.wav"), &body).1);
    let latencies = Samples::new(latencies);
    let per_s = n as f64 / wall.as_secs_f64();
    let disk_per_s = n as f64 / disk_wall.as_secs_f64();
    report.row(
        "concurrency",
        label,
        format!("{per_s:.0} uploads/s ({})", ms(wall)),
        format!("write+fsync, {clients} threads: {disk_per_s:.0} files/s"),
    );
    report.row("concurrency", "upload latency", latencies.summary(), "");
    report.metric("concurrency.uploads_per_s", per_s);
    report.metric("concurrency.latency", latencies.to_json());
    report.metric("concurrency.disk_files_per_s", disk_per_s);
}

fn parallel_uploads(bench: &Bench, account: &Account, method: PeakMethod, report: &mut Report) {
    let plan = &bench.plan;
    let (n, each) = (plan.parallel_uploads, plan.parallel_size);
    let label = format!("{n} uploads of {} at once", size(each as u64));
    progress(&label);
    let body = data::wav(each, 0xFEED);
    let ((_, wall), peak) = measure_peak(&bench.server, method, || {
        run_jobs(n, n, || bench.client(account), |client, i| client.upload(&format!("parallel-{i}.wav"), &body).1)
    });
    report.row(
        "memory",
        format!("during {label}"),
        format!("peak {} (+{}, {} each)", size(peak.peak), size(peak.growth()), size(peak.growth() / n as u64)),
        "",
    );
    report.row("concurrency", label, format!("{} in {}", rate(mb_per_s(n * each, wall)), ms(wall)), "");
    report.metric("memory.parallel_uploads.growth_bytes", peak.growth());
    report.metric("memory.parallel_uploads.peak_bytes", peak.peak);
}

/// Resident memory with many resumable uploads open: idle between requests, then all of them
/// receiving a PATCH at once.
fn open_uploads(bench: &Bench, account: &Account, method: PeakMethod, report: &mut Report) {
    let plan = &bench.plan;
    let each = plan.parallel_size;
    let first = 1 << 20;
    let body = data::wav(first + each, 0xABCD);
    let client = bench.client(account);
    progress(&format!("{OPEN_UPLOADS} resumable uploads opened with {} each", size(first as u64)));
    let before = bench.server.memory().rss;
    let paths: Vec<String> = (0..OPEN_UPLOADS)
        .map(|i| {
            let path = client.tus_create(&format!("open-{i}.wav"), body.len());
            client.tus_patch(&path, 0, &body[..first]);
            path
        })
        .collect();
    let idle = bench.server.memory().rss;
    report.row(
        "memory",
        format!("{OPEN_UPLOADS} incomplete tus uploads, between requests"),
        format!("{} (+{} over {})", size(idle), size(idle.saturating_sub(before)), size(before)),
        "target: flat",
    );
    report.metric("memory.open_uploads.idle_growth_bytes", idle.saturating_sub(before));

    let label = format!("{OPEN_UPLOADS} tus PATCHes of {} at once, one per upload", size(each as u64));
    progress(&label);
    let ((_, wall), peak) = measure_peak(&bench.server, method, || {
        run_jobs(
            OPEN_UPLOADS,
            OPEN_UPLOADS,
            || bench.client(account),
            |client, i| {
                let started = Instant::now();
                let (_, recording) = client.tus_patch(&paths[i], first, &body[first..]);
                assert!(recording.is_some(), "the PATCH completes upload {i}");
                started.elapsed()
            },
        )
    });
    report.row(
        "memory",
        format!("during {label}"),
        format!(
            "peak {} (+{}, {} each)",
            size(peak.peak),
            size(peak.growth()),
            size(peak.growth() / OPEN_UPLOADS as u64)
        ),
        format!("{} in {}", rate(mb_per_s(OPEN_UPLOADS * each, wall)), ms(wall)),
    );
    report.metric("memory.open_uploads.patch_growth_bytes", peak.growth());
}

fn seconds(durations: &[Duration]) -> Vec<f64> {
    durations.iter().map(Duration::as_secs_f64).collect()
}
