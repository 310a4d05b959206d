//! The test harness, and nothing but: the server in-process (`server`), as a process
//! (`process`) and under strace (`strace`); HTTP and WebDAV from the client's side (`http`,
//! `dav`); raw connections and ports (`net`); the fault-injecting proxy (`proxy`); the browser
//! (`browser`); real clients (`clients`: rclone, tus-js-client); SeaweedFS (`seaweed`); the audio
//! the tests upload (`audio`) and recordings fed through a pipe (`pipe`); and the transcription
//! model (`transcription`). Test modules import from here only, never from one another.
//!
//! A test that needs a tool which is not installed says loudly that it skipped (`skip`), and
//! fails instead when the tool's `RECORDER_REQUIRE_*` flag is set (as in CI).

pub mod audio;
pub mod browser;
pub mod clients;
pub mod dav;
pub mod http;
pub mod net;
pub mod pipe;
pub mod process;
pub mod proxy;
pub mod seaweed;
pub mod server;
pub mod strace;
pub mod tls;
pub mod transcription;

pub use audio::*;
pub use dav::*;
pub use http::*;
pub use net::free_port;
pub use server::*;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Every audio fixture, its content type, and its true duration in ms. ADTS has no index, so
/// its "truth" is the sentence's length that every other encoding reports.
pub const FIXTURES: &[(&str, &str, i64)] = &[
    ("speech.wav", "audio/wav", 4179),
    ("speech.mp3", "audio/mpeg", 4284),
    ("speech.m4a", "audio/mp4", 4179),
    ("speech.3gp", "audio/mp4", 4179),
    ("speech.aac", "audio/aac", 4179),
    ("speech.ogg", "audio/ogg", 4179),
    ("speech.opus", "audio/ogg", 4185),
    ("speech.webm", "audio/webm", 4186),
    ("speech.flac", "audio/flac", 4179),
];

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The path of a file in `tests/fixtures`, as a browser's file input takes it.
pub fn fixture_path(name: &str) -> String {
    fixtures_dir().join(name).display().to_string()
}

/// The bytes of a file in `tests/fixtures`.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = fixtures_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// Whether the environment flag `name` (a `RECORDER_REQUIRE_*`) says a tool must be there: the
/// usual true values (`1`, `true`, `yes`, `on`) say yes, unset or a false value (`0`, `false`,
/// `no`, `off`, empty) no; anything else is a mistake that fails the test rather than skip it.
pub fn required(name: &str) -> bool {
    match std::env::var(name) {
        Err(std::env::VarError::NotPresent) => false,
        Err(e) => panic!("{name}: {e}"),
        Ok(value) => match value.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => true,
            "" | "0" | "false" | "no" | "off" => false,
            other => panic!("{name}={other:?}: expected 1, true, yes or on (or 0, false, no, off)"),
        },
    }
}

/// Says loudly that the `kind` test `test` skipped, and why; panics instead when the `flag`
/// (`RECORDER_REQUIRE_*`) requires what is missing.
pub fn skip(flag: &str, kind: &str, test: &str, why: &str) {
    if required(flag) {
        panic!("{test}: {flag} is set but {why}");
    }
    // Straight to the terminal, past the test harness's capture: a skip must be seen.
    let _ = writeln!(std::io::stderr(), "\n*** SKIPPED {kind} test {test}: {why}. ***\n");
}

/// A program named by the environment variable `env` (when set, and only there), else the first
/// of `candidates` found (absolute paths as they are, names on PATH).
pub fn find_program(env: &str, candidates: &[&str]) -> Option<PathBuf> {
    match std::env::var_os(env) {
        Some(path) => Some(PathBuf::from(path)).filter(|p| p.is_file()),
        None => on_path(candidates),
    }
}

/// The first of `candidates` found: absolute paths as they are, names on PATH.
pub fn on_path(candidates: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    candidates.iter().find_map(|name| {
        if name.starts_with('/') {
            Some(PathBuf::from(name)).filter(|p| p.is_file())
        } else {
            std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
        }
    })
}

/// Waits (bounded) for a condition that another thread or task brings about.
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("timed out waiting for: {what}");
}

/// Polls `check` until it has an answer, for up to `within`; returns the answer.
pub fn poll_for<T>(what: &str, within: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
