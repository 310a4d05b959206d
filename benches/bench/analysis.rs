//! Background analysis: how fast `recorder::analysis::decode` goes through each fixture format
//! (audio-seconds per CPU-second, beside ffmpeg decoding the same file in the same run); the
//! server's memory and time while its worker analyses a long recording; and list and upload
//! latency while the queue works through many recordings, beside the same once it is empty.
//!
//! Runs last, on its own data directory, with analysis and `/metrics` on (the phases before it
//! run with analysis off). The decoding figures are taken with no server running.

use crate::client::{Account, Client};
use crate::report::Report;
use crate::server::{Server, Setup};
use crate::stats::{Samples, count, ms, size};
use crate::upload::{self, PeakMethod};
use crate::{Bench, cpu, data, progress};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// The speech fixtures, each the same 4.18 s sentence, and what they hold.
const FIXTURES: &[(&str, &str)] = &[
    ("speech.wav", "16-bit PCM in WAV"),
    ("speech.flac", "FLAC"),
    ("speech.mp3", "MP3"),
    ("speech.m4a", "AAC in MP4"),
    ("speech.3gp", "AAC in 3GP"),
    ("speech.aac", "AAC in ADTS"),
    ("speech.ogg", "Vorbis in Ogg"),
    ("speech.opus", "Opus in Ogg"),
    ("speech.webm", "Opus in WebM"),
];
/// Rounds of each decoding figure; the median is reported.
const ROUNDS: usize = 3;
/// The analysis worker's thread name in the server.
const WORKER: &str = "recorder-jobs";
/// Target: list and upload p99 while the queue works at most this many times the idle p99.
const BUSY_VS_IDLE: f64 = 1.5;
/// The small upload timed beside the list, in seconds of speech (16 kHz mono WAV, 64 KB).
const SMALL_SECONDS: u32 = 2;
/// How often the queue's length is read from `/metrics`.
const POLL: Duration = Duration::from_millis(200);
/// Recordings per list page, as the apps ask.
const PAGE: usize = 50;

pub fn run(bench: &mut Bench, report: &mut Report) {
    bench.server.stop();
    decode_speeds(bench.plan.decode_cpu, report);

    let setup = Setup::for_analysis(&bench.work.join("analysis"), &bench.setup.log);
    progress(&format!("analysis: starting the server with analysis on, on {}", setup.data_dir.display()));
    bench.server = Server::start(&setup);
    bench.setup = setup;
    let method = upload::peak_method(&bench.server);
    let account = bench.signup("analysis");
    long_recording(bench, &account, method, report);
    queue(bench, &account, report);
    report.note(
        "analysis: every phase before it runs with [analysis] enabled = false (each upload still queues its \
         analysis job in the same transaction, but no worker runs, so nothing decodes in the background); \
         the analysis rows come last, on their own data directory with analysis and /metrics on, and the \
         decoding rows with no server running",
    );
}

/// Audio-seconds per CPU-second of each round.
struct Speed {
    rounds: Vec<f64>,
    /// Decodes (or ffmpeg passes) over all rounds.
    passes: usize,
    cpu: Duration,
}

impl Speed {
    fn median(&self) -> f64 {
        let mut sorted = self.rounds.clone();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "audio_seconds_per_cpu_second": self.median(),
            "rounds": self.rounds,
            "passes": self.passes,
            "cpu_seconds": self.cpu.as_secs_f64(),
        })
    }
}

/// "1,234x" with thousands separators.
fn speed(x: f64) -> String {
    format!("{}x", count(x.round() as usize))
}

fn decode_speeds(target: Duration, report: &mut Report) {
    // The first call asks `getconf` (a child process): before any child's time is measured.
    cpu::ticks_per_second();
    let ffmpeg = ffmpeg_version();
    let mut ours = Vec::new();
    let mut opus_ratios = Vec::new();
    for (file, what) in FIXTURES {
        let path = data::fixture(file);
        progress(&format!(
            "analysis: decoding {file} in-process for {:.1} s of CPU, then ffmpeg",
            target.as_secs_f64()
        ));
        let label = format!("decode {file} ({what})");
        // Opus is decoded in pure Rust (recorder::opus): held to half of libopus's speed in ffmpeg.
        let is_opus = matches!(*file, "speech.opus" | "speech.webm");
        let result = recorder_speed(&path, target).map_err(|e| format!("failed: {e}"));
        // The fixtures' length where the file could not be decoded here.
        let audio = result.as_ref().map_or(4.18, |(audio, _)| *audio);
        let reference = match &ffmpeg {
            None => "ffmpeg not installed (Debian: apt-get install ffmpeg)".to_string(),
            Some(_) => match ffmpeg_speed(&path, audio, target) {
                Ok(theirs) => {
                    let relative = match &result {
                        Ok((_, ours)) => {
                            let ratio = ours.median() / theirs.median();
                            if is_opus {
                                opus_ratios.push((file.to_string(), ratio));
                            }
                            format!("; recorder {ratio:.2}x of it")
                        }
                        Err(_) => String::new(),
                    };
                    report.metric(&format!("analysis.decode.{file}.ffmpeg"), theirs.to_json());
                    format!("ffmpeg -threads 1: {}{relative}", speed(theirs.median()))
                }
                Err(e) => format!("ffmpeg failed: {e}"),
            },
        };
        match result {
            Ok((_, speed_of)) => {
                report.row("analysis", label, format!("{} audio-s per CPU-s", speed(speed_of.median())), reference);
                report.metric(&format!("analysis.decode.{file}.recorder"), speed_of.to_json());
                ours.push(speed_of.median());
            }
            Err(why) => report.row("analysis", label, why, reference),
        }
    }
    if let Some(version) = ffmpeg {
        report.note(format!(
            "analysis: decoding speed is audio-seconds per CPU-second (real time = 1x), CPU time from /proc in \
             clock ticks, median of {ROUNDS} rounds of about {:.1} s of CPU each; recorder: \
             recorder::analysis::decode on one thread, each pass opening and probing the 4.18 s file and building \
             its waveform, as the worker does; ffmpeg ({version}): `ffmpeg -threads 1 -stream_loop N -i FILE -f null -`, \
             the CPU time of one pass (start-up included) subtracted",
            target.as_secs_f64() / ROUNDS as f64
        ));
    }
    for (file, ratio) in opus_ratios {
        report.target(
            "analysis",
            format!("pure-Rust Opus decode of {file} against ffmpeg's libopus"),
            format!("{ratio:.2}x"),
            "target ≥ 0.5x",
            ratio >= 0.5,
        );
        report.metric(&format!("analysis.decode.{file}.ratio_to_ffmpeg"), ratio);
    }
    if let Some(slowest) = ours.iter().copied().min_by(f64::total_cmp) {
        report.metric("analysis.decode.slowest_audio_seconds_per_cpu_second", slowest);
    }
}

/// The audio length of `path` (seconds) and how fast `recorder::analysis::decode` goes through it.
fn recorder_speed(path: &Path, target: Duration) -> Result<(f64, Speed), String> {
    let first = recorder::analysis::decode(path).map_err(|e| e.to_string())?;
    let audio = first.frames as f64 / f64::from(first.sample_rate);
    progress(&format!(
        "analysis: {} decodes to {} frames at {} Hz, {} channel(s): {audio:.3} s",
        path.display(),
        first.frames,
        first.sample_rate,
        first.channels
    ));
    let per_round = target / ROUNDS as u32;
    let mut speed = Speed { rounds: Vec::new(), passes: 0, cpu: Duration::ZERO };
    for _ in 0..ROUNDS {
        let started = cpu::this_thread();
        let mut passes = 0;
        let cpu = loop {
            let decoded = recorder::analysis::decode(path).map_err(|e| e.to_string())?;
            assert_eq!(decoded.frames, first.frames, "every decode of {} finds the same frames", path.display());
            passes += 1;
            let cpu = cpu::this_thread().saturating_sub(started);
            if cpu >= per_round {
                break cpu;
            }
        };
        speed.rounds.push(passes as f64 * audio / cpu.as_secs_f64());
        speed.passes += passes;
        speed.cpu += cpu;
    }
    Ok((audio, speed))
}

/// `ffmpeg -version`'s first words ("ffmpeg version 5.1.9-0+deb12u1"); `None` when not installed.
fn ffmpeg_version() -> Option<String> {
    let out = Command::new("ffmpeg").arg("-version").stdin(Stdio::null()).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next()?;
    Some(line.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

/// One ffmpeg decoding `path` `1 + extra` times with one thread; the CPU time it used.
fn ffmpeg_once(path: &Path, extra: usize) -> Result<Duration, String> {
    let before = cpu::waited_children();
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-nostdin", "-loglevel", "error", "-threads", "1"])
        .args(["-stream_loop", &extra.to_string(), "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| e.to_string())?;
    let cpu = cpu::waited_children().saturating_sub(before);
    if !out.status.success() {
        return Err(format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(cpu)
}

/// How fast ffmpeg decodes `path` (`audio` seconds long): each round is one process looping over
/// the file, less the CPU time of a process that decodes it once (its start-up, mostly).
fn ffmpeg_speed(path: &Path, audio: f64, target: Duration) -> Result<Speed, String> {
    const SINGLES: u32 = 10;
    let mut single = Duration::ZERO;
    for _ in 0..SINGLES {
        single += ffmpeg_once(path, 0)?;
    }
    let single = single / SINGLES;
    // Calibrate: how many extra passes make a round of the wanted CPU time.
    let calibration = 200;
    let per_pass = ffmpeg_once(path, calibration)?.saturating_sub(single).as_secs_f64() / calibration as f64;
    let per_round = target.as_secs_f64() / ROUNDS as f64;
    let extra = ((per_round / per_pass.max(1e-6)) as usize).clamp(calibration, 1_000_000);
    let mut speed = Speed { rounds: Vec::new(), passes: 0, cpu: Duration::ZERO };
    for _ in 0..ROUNDS {
        let cpu = ffmpeg_once(path, extra)?;
        let decoding = cpu.saturating_sub(single).as_secs_f64().max(1e-6);
        speed.rounds.push(extra as f64 * audio / decoding);
        speed.passes += extra + 1;
        speed.cpu += cpu;
    }
    Ok(speed)
}

/// Polls a recording until its analysis is no longer pending, calling `each_poll` at every
/// poll; the recording as it then is.
fn wait_analysed(client: &Client, id: &str, limit: Duration, mut each_poll: impl FnMut()) -> serde_json::Value {
    let started = Instant::now();
    loop {
        each_poll();
        let recording = client.recording(id);
        if recording["waveform"].as_str() != Some("pending") {
            return recording;
        }
        assert!(started.elapsed() < limit, "the analysis of {id} did not finish within {limit:?}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// The server's memory and time while its worker analyses one long recording.
fn long_recording(bench: &Bench, account: &Account, method: PeakMethod, report: &mut Report) {
    let seconds = bench.plan.long_seconds;
    let server = &bench.server;
    let body = data::speech_wav(seconds);
    let hours =
        if seconds.is_multiple_of(3600) { format!("{} h", seconds / 3600) } else { format!("{} min", seconds / 60) };
    let label = format!("{hours} of speech, WAV 16 kHz mono ({})", size(body.len() as u64));
    progress(&format!("analysis: uploading {label} and waiting for its analysis"));
    let client = bench.client(account);
    let worker_before = server.thread_cpu(WORKER).unwrap_or_else(|| panic!("no {WORKER} thread in the server"));
    // The highest VmHWM and VmRSS read along the way: the kernel's high-water mark can miss a
    // peak once memory has been handed back (a later VmHWM was seen lower than an earlier one).
    let mut seen = 0;
    let ((recording, upload_peak, analysis), mut peak) = upload::measure_peak(server, method, || {
        let (recording, _) = client.upload("long.wav", &body);
        let answered = Instant::now();
        let upload_peak = server.memory().peak;
        let id = recording["id"].as_str().expect("the upload answer has an id").to_string();
        let recording = wait_analysed(&client, &id, Duration::from_secs(3600), || {
            let memory = server.memory();
            seen = seen.max(memory.peak).max(memory.rss);
        });
        (recording, upload_peak, answered.elapsed())
    });
    peak.peak = peak.peak.max(seen).max(upload_peak);
    let worker = server.thread_cpu(WORKER).unwrap_or_default().saturating_sub(worker_before);
    let id = recording["id"].as_str().expect("a recording has an id");
    assert_eq!(recording["waveform"].as_str(), Some("ready"), "the analysis of the long recording: {recording}");
    let duration_ms = recording["duration_ms"].as_i64().unwrap_or_default();
    assert!((duration_ms - i64::from(seconds) * 1000).abs() <= 100, "analysed duration {duration_ms} ms");
    let waveform = client.waveform(id);
    let buckets = waveform["peaks"].as_array().map_or(0, Vec::len);
    let bucket_ms = waveform["bucket_ms"].as_u64().unwrap_or_default();

    let audio = f64::from(seconds);
    let per_s = audio / analysis.as_secs_f64();
    let per_cpu_s = audio / worker.as_secs_f64().max(1e-3);
    report.row(
        "analysis",
        format!("{label}: analysis, upload answer to `ready`"),
        format!("{}, {} audio-s per s; worker CPU {}, {}", ms(analysis), speed(per_s), ms(worker), speed(per_cpu_s)),
        format!("duration {} ms; waveform {} peaks of {bucket_ms} ms", count(duration_ms as usize), count(buckets)),
    );
    let at_answer = upload_peak.saturating_sub(peak.before);
    report.row(
        "analysis",
        format!("{label}: server memory, upload and analysis (highest VmHWM or VmRSS read)"),
        format!("peak {} (+{} over {})", size(peak.peak), size(peak.growth()), size(peak.before)),
        format!("at the upload's answer: +{}", size(at_answer)),
    );
    report.metric("analysis.long.audio_seconds", seconds);
    report.metric("analysis.long.seconds", analysis.as_secs_f64());
    report.metric("analysis.long.worker_cpu_seconds", worker.as_secs_f64());
    report.metric("analysis.long.peak_bytes", peak.peak);
    report.metric("analysis.long.growth_bytes", peak.growth());
    report.metric("analysis.long.growth_at_upload_answer_bytes", at_answer);
    client.delete_permanently(id);
}

/// The analysis queue's state from `/metrics`: (queued + running, finished since the start:
/// done + failed, failed ever).
fn queue_state(client: &Client) -> (u64, u64, u64) {
    let text = client.metrics();
    let value = |family: &str, state: &str| -> u64 {
        text.lines()
            .filter(|l| l.starts_with(&format!("{family}{{")))
            .filter(|l| l.contains("kind=\"analysis\"") && l.contains(&format!("state=\"{state}\"")))
            .filter_map(|l| l.split_whitespace().last().and_then(|v| v.parse::<f64>().ok()))
            .map(|v| v as u64)
            .sum()
    };
    let waiting = value("recorder_jobs", "queued") + value("recorder_jobs", "running");
    let finished = value("recorder_jobs_finished", "done") + value("recorder_jobs_finished", "failed");
    (waiting, finished, value("recorder_jobs", "failed"))
}

/// List first page and small upload, back to back on one connection, until `stop` is set or
/// `limit` has passed; their latencies.
fn list_and_upload(client: &Client, small: &[u8], stop: &AtomicBool, limit: Duration) -> (Samples, Samples) {
    let (mut lists, mut uploads) = (Vec::new(), Vec::new());
    let started = Instant::now();
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) && started.elapsed() < limit {
        lists.push(client.list(PAGE, None).1);
        uploads.push(client.upload(&format!("small {i}.wav"), small).1);
        i += 1;
    }
    (Samples::new(lists), Samples::new(uploads))
}

/// Stops the server, rewrites its config with analysis on or off, and starts it again.
fn restart(bench: &mut Bench, analysis: bool) {
    bench.server.stop();
    bench.setup.analysis = analysis;
    bench.setup.write_config();
    bench.server = Server::start(&bench.setup);
}

/// Many recordings queued at once: how long the worker takes through them, and list and upload
/// latency meanwhile, beside the same once the queue is empty.
fn queue(bench: &mut Bench, account: &Account, report: &mut Report) {
    let (n, each) = (bench.plan.queue_recordings, bench.plan.queue_seconds);
    let body = data::speech_wav(each);
    let small = data::speech_wav(SMALL_SECONDS);
    let what = format!("{} recordings of {each} s (speech WAV, {} each)", count(n), size(body.len() as u64));

    // Seeded with the worker off, so that all of them wait when it starts.
    progress(&format!("analysis: uploading {what} with analysis off"));
    restart(bench, false);
    upload::run_jobs(4, n, || bench.client(account), |client, i| client.upload(&format!("queued {i}.wav"), &body).1);
    progress("analysis: restarting with analysis on; list and upload back to back until the queue is empty");
    restart(bench, true);
    let started = Instant::now();
    let server = &bench.server;
    let worker_before = server.thread_cpu(WORKER).unwrap_or_default();
    let watcher = Client::new(&server.base);
    let client = bench.client(account);
    for _ in 0..20 {
        client.list(PAGE, None);
    }

    // Far more than the worker needs (it decodes speech WAV thousands of times faster than real
    // time here): a job that never leaves `running` must not hold the benchmark for ever.
    let limit = Duration::from_secs(120 + n as u64 * u64::from(each) / 10);
    let empty = AtomicBool::new(false);
    let drained = Mutex::new(None::<(Duration, u64, u64)>);
    let (busy_lists, busy_uploads) = thread::scope(|scope| {
        scope.spawn(|| {
            while started.elapsed() < limit {
                let (waiting, finished, failed) = queue_state(&watcher);
                if waiting == 0 {
                    *drained.lock().unwrap_or_else(|p| p.into_inner()) = Some((started.elapsed(), finished, failed));
                    break;
                }
                thread::sleep(POLL);
            }
            empty.store(true, Ordering::Relaxed);
        });
        list_and_upload(&client, &small, &empty, limit)
    });
    let worker = server.thread_cpu(WORKER).unwrap_or_default().saturating_sub(worker_before);
    let (drain, finished, failed) = drained.into_inner().unwrap_or_else(|p| p.into_inner()).unwrap_or_else(|| {
        panic!(
            "the analysis queue was not empty after {limit:?}: {:?} (queued + running, finished, failed)",
            queue_state(&watcher)
        )
    });
    let meanwhile = busy_uploads.len();

    // The same on the empty queue, polled the same way, for as long (capped).
    let window = drain.min(Duration::from_secs(bench.plan.idle_window_seconds));
    progress(&format!("analysis: the queue is empty after {}; the same for {} idle", ms(drain), ms(window)));
    let stop = AtomicBool::new(false);
    let (idle_lists, idle_uploads) = thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                queue_state(&watcher);
                thread::sleep(POLL);
            }
        });
        let figures = list_and_upload(&client, &small, &AtomicBool::new(false), window);
        stop.store(true, Ordering::Relaxed);
        figures
    });

    let audio = f64::from(each) * n as f64 + f64::from(SMALL_SECONDS) * meanwhile as f64;
    report.row(
        "analysis",
        format!("queue of {what} + {} small uploads meanwhile: drained", count(meanwhile)),
        format!(
            "{} jobs in {}, {:.1} jobs/s, {} audio-s per s; worker CPU {}",
            count(finished as usize),
            ms(drain),
            finished as f64 / drain.as_secs_f64(),
            speed(audio / drain.as_secs_f64()),
            ms(worker)
        ),
        format!("from the restart; {failed} failed; one client listing and uploading back to back meanwhile"),
    );
    let compare = |report: &mut Report, what: &str, busy: &Samples, idle: &Samples| {
        let factor = busy.p99().as_secs_f64() / idle.p99().as_secs_f64().max(1e-9);
        report.target(
            "analysis",
            format!("{what} while the queue works ({} requests)", count(busy.len())),
            format!("{}; p99 {factor:.2}x idle", busy.summary()),
            format!("idle ({}): {}; target p99 <= {BUSY_VS_IDLE}x", count(idle.len()), idle.summary()),
            factor <= BUSY_VS_IDLE,
        );
    };
    compare(report, "list first page", &busy_lists, &idle_lists);
    compare(
        report,
        &format!("upload of {SMALL_SECONDS} s WAV ({})", size(small.len() as u64)),
        &busy_uploads,
        &idle_uploads,
    );
    report.note(format!(
        "analysis: the queue's recordings are uploaded with analysis off, then the server restarts with it on; \
         one client lists the first page ({PAGE}) and uploads a {SMALL_SECONDS} s WAV back to back until \
         /metrics (polled every {} ms) shows no analysis job queued or running, then again as long on the empty \
         queue (capped at {} s; each small upload still queues its own job, a few ms of work)",
        POLL.as_millis(),
        bench.plan.idle_window_seconds
    ));
    report.metric("analysis.queue.recordings", n);
    report.metric("analysis.queue.seconds_each", each);
    report.metric("analysis.queue.small_uploads_meanwhile", meanwhile);
    report.metric("analysis.queue.jobs_finished", finished);
    report.metric("analysis.queue.jobs_failed", failed);
    report.metric("analysis.queue.drain_seconds", drain.as_secs_f64());
    report.metric("analysis.queue.worker_cpu_seconds", worker.as_secs_f64());
    report.metric("analysis.queue.busy.list", busy_lists.to_json());
    report.metric("analysis.queue.busy.upload", busy_uploads.to_json());
    report.metric("analysis.queue.idle.list", idle_lists.to_json());
    report.metric("analysis.queue.idle.upload", idle_uploads.to_json());
}
