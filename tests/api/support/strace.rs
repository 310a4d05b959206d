//! The built server run by `strace -f`, and its trace read as system calls: what the server
//! did on disk and on its sockets, in the order it did it.
//!
//! Needs `strace` (Debian package `strace`) and permission to trace a child process (ptrace;
//! some containers forbid it). Without them a test that needs it says loudly that it skipped,
//! and fails instead when `RECORDER_REQUIRE_STRACE=1` (as in CI).

use super::process::{BIN, Running};
use super::{on_path, poll_for, recording_path, skip};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The system calls traced. `?`: not every architecture has the old forms (`rename`, `link`,
/// `unlink`, `pwrite64`); their `*at` forms are traced as well.
const TRACED: &str = "trace=fsync,fdatasync,?rename,renameat,renameat2,?link,linkat,?unlink,unlinkat,\
                      write,?pwrite64,writev,?pwritev,?pwritev2,sendto,sendmsg,openat,close";

/// How long the trace may lag behind what the client already saw.
const TRACE_WAIT: Duration = Duration::from_secs(30);

/// The calls that write an answer to a socket.
const ANSWERS: &[&str] = &["write", "writev", "sendto", "sendmsg"];

/// `strace`, when it is installed and may trace here; `None` after saying loudly why not (panics
/// instead when RECORDER_REQUIRE_STRACE=1).
pub fn strace(test: &str) -> Option<PathBuf> {
    let found = on_path(&["strace"]);
    let why = match &found {
        None => "strace was not found: install it with `apt-get install strace` (Debian/Ubuntu)".to_string(),
        Some(bin) => {
            let probe = Command::new(bin)
                .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=none", "true"])
                .stdin(Stdio::null())
                .output();
            match probe {
                Ok(out) if out.status.success() => return found,
                Ok(out) => format!(
                    "{} cannot trace a child process here ({}); it needs ptrace, which this container or \
                     sandbox forbids",
                    bin.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                Err(e) => format!("{} does not run ({e}); reinstall it with `apt-get install strace`", bin.display()),
            }
        }
    };
    skip("RECORDER_REQUIRE_STRACE", "strace", test, &why);
    None
}

/// The built server on loopback, run by `strace -f` writing its trace to a file.
pub struct Traced {
    /// The `strace` process; the server is its child, and logs to its stderr.
    pub running: Running,
    trace: PathBuf,
    pub data: PathBuf,
    /// `127.0.0.1:PORT` of the API.
    pub addr: String,
    /// `127.0.0.1:PORT` of WebDAV, when it is on.
    pub dav: Option<String>,
    _home: tempfile::TempDir,
}

impl Traced {
    pub fn start(strace: &Path, webdav: bool) -> Traced {
        let home = tempfile::tempdir().expect("tempdir");
        // strace prints an fd's path with symlinks resolved: the paths given to the server are
        // the resolved ones too, so both forms match.
        let root = std::fs::canonicalize(home.path()).expect("canonical temp dir");
        let data = root.join("data");
        let trace = root.join("trace.txt");
        let mut cmd = Command::new(strace);
        cmd.env_clear()
            .env("HOME", &root)
            .current_dir(&root)
            // Background work (analysis, transcription) would only add unrelated commits.
            .env("RECORDER_ANALYSIS_ENABLED", "false")
            // HTTPS is on by default: its ports are ephemeral here, as the plain one is.
            .env("RECORDER_TLS_PORT", "0")
            .env("RECORDER_WEBDAV_TLS_PORT", "0")
            .args(["-f", "-tt", "-yy", "-s", "64", "-e", TRACED])
            .arg("-o")
            .arg(&trace)
            .arg(BIN)
            .arg("--data-dir")
            .arg(&data)
            .arg("--port")
            .arg("0");
        if webdav {
            cmd.env("RECORDER_WEBDAV_ENABLED", "true").env("RECORDER_WEBDAV_PORT", "0");
        }
        let running = Running::start(cmd);
        let addr = running.host().to_string();
        let mut traced = Traced { running, trace, data, addr, dav: None, _home: home };
        if webdav {
            // Announced after the API's own line: wait for it.
            let announced = poll_for("the WebDAV listener's address in the server's log", TRACE_WAIT, || {
                let log = traced.running.log();
                log.iter().find_map(|line| {
                    let url = line.split("WebDAV reachable at http://").nth(1)?;
                    Some(url.split_whitespace().next()?.trim_end_matches('/').to_string())
                })
            });
            traced.dav = Some(announced);
        }
        traced
    }

    pub fn wal(&self) -> PathBuf {
        self.data.join("recorder.db-wal")
    }

    /// The file a recording's bytes are stored in.
    pub fn recording_path(&self, id: &str) -> PathBuf {
        recording_path(&self.data, id)
    }

    /// The trace's complete lines so far.
    pub fn text(&self) -> String {
        let mut text = std::fs::read_to_string(&self.trace).unwrap_or_default();
        // The line strace is writing now is not complete yet.
        let complete = text.rfind('\n').map_or(0, |i| i + 1);
        text.truncate(complete);
        text
    }

    /// How many lines the trace has now: every call made after this moment shows on a later line.
    pub fn mark(&self) -> usize {
        self.text().lines().count()
    }

    /// The parsed trace, once `ready` finds what it needs in it (the trace lags a little behind
    /// the client).
    pub fn calls_when(&self, what: &str, ready: impl Fn(&[Call]) -> bool) -> Vec<Call> {
        let deadline = Instant::now() + TRACE_WAIT;
        loop {
            let text = self.text();
            let calls = parse(&text);
            if ready(&calls) {
                return calls;
            }
            if Instant::now() > deadline {
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(40)..].join("\n");
                panic!("{what} did not show in the trace within {TRACE_WAIT:?}; its last lines:\n{tail}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The trace once the answer to the request on the client port `port` is in it.
    pub fn calls_after_answer(&self, port: u16, from: usize) -> Vec<Call> {
        self.calls_when(&format!("the answer on the connection from port {port}"), |calls| {
            find_answer(calls, from, port).is_ok()
        })
    }

    /// The server's own pid: strace's child.
    fn server_pid(&self) -> Option<u32> {
        let strace_pid = self.running.child.id();
        let children = std::fs::read_to_string(format!("/proc/{strace_pid}/task/{strace_pid}/children")).ok();
        children
            .and_then(|c| c.split_whitespace().next().and_then(|p| p.parse().ok()))
            .or_else(|| parse(&self.text()).first().map(|call| call.pid))
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        // Killed itself, strace would leave the server running: the server goes first, and
        // strace ends with it (Running then reaps strace).
        if let Some(pid) = self.server_pid() {
            let _ = Command::new("sh").args(["-c", "kill -KILL \"$1\"", "sh", &pid.to_string()]).status();
        }
    }
}

/// One system call of the trace.
#[derive(Debug, Clone)]
pub struct Call {
    pub pid: u32,
    pub name: String,
    /// Its arguments and result as strace printed them (an interrupted call's halves joined).
    pub text: String,
    /// The trace line where it began.
    pub start: usize,
    /// The trace line where it returned (`usize::MAX`: not yet).
    pub end: usize,
}

impl Call {
    pub fn is(&self, names: &[&str]) -> bool {
        names.contains(&self.name.as_str())
    }

    /// The annotation of its first argument, an fd: the path (`5</data/recorder.db-wal>`), or
    /// a socket's addresses (`7<TCP:[127.0.0.1:8080->127.0.0.1:40000]>`).
    pub fn fd(&self) -> Option<&str> {
        let digits = self.text.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 || !self.text[digits..].starts_with('<') {
            return None;
        }
        let rest = &self.text[digits + 1..];
        let bytes = rest.as_bytes();
        // A socket's annotation holds "->": it ends at the '>' before ',' or ')' (or the end).
        let end =
            (0..bytes.len()).find(|&i| bytes[i] == b'>' && matches!(bytes.get(i + 1), None | Some(b',' | b')')))?;
        Some(&rest[..end])
    }

    pub fn on(&self, path: &Path) -> bool {
        self.fd().is_some_and(|fd| Path::new(fd) == path)
    }

    /// Its quoted string arguments (the paths of rename, link and unlink), unescaped.
    pub fn strings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut chars = self.text.chars();
        while let Some(c) = chars.next() {
            if c != '"' {
                continue;
            }
            let mut s = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => s.extend(chars.next()),
                    c => s.push(c),
                }
            }
            out.push(s);
        }
        out
    }

    /// It returned, and not an error.
    pub fn succeeded(&self) -> bool {
        self.end != usize::MAX
            && self.text.rsplit_once(") = ").is_some_and(|(_, ret)| ret.starts_with(|c: char| c.is_ascii_digit()))
    }

    /// It returned before `other` began. strace handles one thread's stop at a time and prints
    /// a call when it returns (its first half earlier, when another thread's call comes in
    /// between), so the trace's line order is the order in which calls began and returned.
    pub fn before(&self, other: &Call) -> bool {
        self.end < other.start
    }

    /// A file renamed or linked to `path`, or unlinked at it.
    pub fn targets(&self, path: &Path) -> bool {
        self.strings().last().is_some_and(|s| Path::new(s) == path)
    }

    pub fn short(&self) -> String {
        let text: String = self.text.chars().take(160).collect();
        format!("[line {}] {}({text}", self.start, self.name)
    }
}

/// Splits `PID [HH:MM:SS.micro] rest` (strace -f to a file) or `[pid PID] ...` (to a terminal).
fn split_line(line: &str) -> Option<(u32, &str)> {
    let line = line.trim_start();
    let (pid, rest) = match line.strip_prefix("[pid") {
        Some(rest) => {
            let (pid, rest) = rest.split_once(']')?;
            (pid.trim().parse().ok()?, rest)
        }
        None => {
            let digits = line.find(|c: char| !c.is_ascii_digit())?;
            (line[..digits].parse().ok()?, &line[digits..])
        }
    };
    let rest = rest.trim_start();
    let rest = match rest.split_once(' ') {
        Some((stamp, after))
            if stamp.contains(':') && stamp.bytes().all(|b| b.is_ascii_digit() || b"+:.".contains(&b)) =>
        {
            after
        }
        _ => rest,
    };
    Some((pid, rest))
}

/// Parses `strace -f -tt -yy` output. A call another thread interrupted is printed as
/// `name(args <unfinished ...>` and finished later by `<... name resumed>rest) = result`: the
/// two are one call, which began on the first line and returned on the second.
pub fn parse(text: &str) -> Vec<Call> {
    let mut calls: Vec<Call> = Vec::new();
    let mut open: HashMap<u32, usize> = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let Some((pid, rest)) = split_line(line) else { continue };
        if let Some(resumed) = rest.strip_prefix("<... ") {
            let Some((name, tail)) = resumed.split_once(" resumed>") else { continue };
            if let Some(i) = open.remove(&pid).filter(|&i| calls[i].name == name) {
                calls[i].text.push_str(tail);
                calls[i].end = index;
            }
            continue;
        }
        let Some((name, args)) = rest.split_once('(') else { continue };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            // `+++ exited with 0 +++`, `--- SIGCHLD ... ---` and the like.
            continue;
        }
        let (text, end) = match args.strip_suffix("<unfinished ...>") {
            Some(args) => {
                open.insert(pid, calls.len());
                (args.trim_end().to_string(), usize::MAX)
            }
            None => (args.to_string(), index),
        };
        calls.push(Call { pid, name: name.to_string(), text, start: index, end });
    }
    calls
}

/// The server's answer on the connection from the client port `port`: the first write of an
/// HTTP status line to that TCP socket after line `from`.
pub fn find_answer(calls: &[Call], from: usize, port: u16) -> Result<&Call, String> {
    let peer = format!("->127.0.0.1:{port}]");
    calls
        .iter()
        .find(|c| {
            c.start >= from
                && c.is(ANSWERS)
                && c.fd().is_some_and(|fd| fd.starts_with("TCP") && fd.ends_with(&peer))
                && c.text.contains("\"HTTP/1.1 ")
        })
        .ok_or_else(|| format!("no answer was written to the connection from port {port}"))
}

/// The status an answer's write carries.
pub fn status_of(call: &Call) -> Option<u16> {
    let at = call.text.find("\"HTTP/1.1 ")? + "\"HTTP/1.1 ".len();
    call.text.get(at..at + 3)?.parse().ok()
}
