//! Durability as the kernel sees it. `kill -9` keeps whatever the page cache holds, so no crash
//! test notices a missing fsync; here the built server runs under `strace` and every way a
//! recording is created, renamed or deleted is checked against the protocol (DESIGN.md, "Never
//! lose a recording") system call by system call, before the answer reaches the client's socket:
//!
//! - a new recording (one-shot upload, tus upload completed by a PATCH, WebDAV PUT): its file's
//!   bytes are fsynced (after the last write to it), the file is renamed (one-shot, WebDAV) or
//!   hard-linked (tus) into `recordings/<last 2 hex>/<id>`, that directory is fsynced, then the
//!   row's commit is written to `recorder.db-wal` and fsynced (synchronous=FULL), and only then is
//!   the answer written;
//! - a rename: the commit's WAL frames are fsynced before the answer;
//! - a permanent delete: the commit that deletes the row and queues the unlink is fsynced before
//!   the file is unlinked, and before the answer.
//!
//! The trace also gives the checks something to bite on: the one-shot test runs its check again
//! on the same trace with each fsync taken out in turn (the file's, the directory's, the WAL's),
//! and with the answer moved before the commit, and every one of those must be refused. That is
//! exactly what the trace of a server without that `sync_all` (or without synchronous=FULL)
//! would look like. The rename and delete checks are run on small written traces too, durable
//! and not, so that they are known to pass once the server does it right.
//!
//! The server runs under `strace` as `support::strace` runs it. Without strace, or without
//! permission to trace (ptrace; some containers forbid it), every test here says loudly that it
//! skipped, and fails instead when `RECORDER_REQUIRE_STRACE=1` (as in CI).

use crate::support::net::exchange;
use crate::support::process::{Running, signup};
use crate::support::strace::{Call, Traced, find_answer, parse, status_of, strace};
use crate::support::{basic, bearer, fixture, send, send_json};
use serde_json::json;
use std::path::{Path, PathBuf};

const SYNCS: &[&str] = &["fsync", "fdatasync"];
const WRITES: &[&str] = &["write", "pwrite64", "writev", "pwritev", "pwritev2"];
const PLACES: &[&str] = &["rename", "renameat", "renameat2", "link", "linkat"];
const UNLINKS: &[&str] = &["unlink", "unlinkat"];

/// One request in a trace: the calls from line `from` (before the client connected) on, the
/// client's port, the status its answer must carry, and the server's data directory.
#[derive(Clone, Copy)]
struct Request<'a> {
    calls: &'a [Call],
    from: usize,
    port: u16,
    status: u16,
    data: &'a Path,
}

impl<'a> Request<'a> {
    /// The calls of the request up to its answer, and the answer.
    fn window(&self) -> Result<(Vec<&'a Call>, &'a Call), String> {
        let answer = find_answer(self.calls, self.from, self.port)?;
        if status_of(answer) != Some(self.status) {
            return Err(format!("the answer is not {}: {}", self.status, answer.short()));
        }
        let within = self.calls.iter().filter(|c| c.start >= self.from && c.start <= answer.start).collect();
        Ok((within, answer))
    }

    /// A failed check: why, and the calls of the request in order (see `sequence`).
    fn fail(&self, why: &str, within: &[&Call], answer: &Call) -> Result<String, String> {
        Err(format!("{why}\nthe calls of the request, in order:\n{}", sequence(within, answer, self.data)))
    }
}

/// The calls of a window that touch the data directory, and the answer, one line each (runs of
/// the same call on the same file counted); for failure messages and the test's output.
fn sequence(within: &[&Call], answer: &Call, data: &Path) -> String {
    let mut lines: Vec<(String, usize)> = Vec::new();
    for call in within {
        if call.is(&["openat", "close"]) {
            continue;
        }
        let shown = match (call.fd(), call.strings()) {
            _ if call.start == answer.start => {
                format!("{} answer HTTP/1.1 {}", call.name, status_of(call).unwrap_or_default())
            }
            (Some(fd), _) if Path::new(fd).starts_with(data) => format!("{}({fd})", call.name),
            (_, strings) if call.is(PLACES) || call.is(UNLINKS) => format!("{}({})", call.name, strings.join(" -> ")),
            _ => continue,
        };
        match lines.last_mut() {
            Some((last, n)) if *last == shown => *n += 1,
            _ => lines.push((shown, 1)),
        }
    }
    let root = format!("{}/", data.display());
    lines
        .into_iter()
        .map(|(line, n)| {
            let line = line.replace(&root, "");
            if n > 1 { format!("  {line} x{n}") } else { format!("  {line}") }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The fsyncs of `path` among `within` that succeeded.
fn synced<'a>(within: &[&'a Call], path: &Path) -> Vec<&'a Call> {
    within.iter().copied().filter(|c| c.is(SYNCS) && c.on(path) && c.succeeded()).collect()
}

/// The commit a request wrote before `by`: its last write to `recorder.db-wal` before `by` that
/// `fits`, and then an fsync of the WAL that returned before `by` began.
fn wal_commit<'a>(
    within: &[&'a Call],
    data: &Path,
    fits: impl Fn(&Call) -> bool,
    by: &Call,
) -> (Option<&'a Call>, Option<&'a Call>) {
    let wal = data.join("recorder.db-wal");
    let last = within.iter().copied().rev().find(|c| c.is(WRITES) && c.on(&wal) && c.before(by) && fits(c));
    let sync = last.and_then(|last| between(&synced(within, &wal), Some(last), by));
    (last, sync)
}

/// Some call returned before `b` began after `a` returned, among `candidates`.
fn between<'a>(candidates: &[&'a Call], a: Option<&Call>, b: &Call) -> Option<&'a Call> {
    candidates.iter().copied().find(|c| a.is_none_or(|a| a.end < c.start) && c.before(b))
}

/// What a request that makes a new recording stored at `target` must have done before its
/// answer (`status`): the bytes written, then fsynced, the file renamed or linked to `target`,
/// its directory fsynced, the row committed to the WAL and the WAL fsynced. Returns the
/// sequence seen.
fn check_new_recording(r: Request, target: &Path) -> Result<String, String> {
    let (within, answer) = r.window()?;
    let fail = |why: String| r.fail(&why, &within, answer);

    // Into place.
    let Some(place) = within.iter().copied().find(|c| c.is(PLACES) && c.succeeded() && c.targets(target)) else {
        return fail(format!("no rename or link to {} before the answer", target.display()));
    };
    if !place.before(answer) {
        return fail(format!("the answer began before {} was in place", target.display()));
    }
    let strings = place.strings();
    let source = PathBuf::from(strings.first().map(String::as_str).unwrap_or_default());

    // The bytes, then their fsync, before the move.
    let writes: Vec<&Call> = within.iter().copied().filter(|c| c.is(WRITES) && c.on(&source)).collect();
    if writes.is_empty() {
        return fail(format!("no bytes were written to {} in this request", source.display()));
    }
    let syncs = synced(&within, &source);
    let Some(file_sync) = syncs.iter().copied().rev().find(|s| s.before(place)) else {
        return fail(format!("{} was not fsynced before it was moved into place", source.display()));
    };
    if let Some(late) = writes.iter().find(|w| !w.before(file_sync)) {
        return fail(format!("bytes were written to {} after its fsync began: {}", source.display(), late.short()));
    }

    // The directory entry.
    let dir = target.parent().unwrap_or(r.data);
    let dir_syncs = synced(&within, dir);
    let Some(dir_sync) = between(&dir_syncs, Some(place), answer) else {
        return fail(format!("{} was not fsynced between the move and the answer", dir.display()));
    };

    // The row.
    match wal_commit(&within, r.data, |w| dir_sync.end < w.start, answer) {
        (None, _) => fail("no commit reached recorder.db-wal between the directory's fsync and the answer".into()),
        (Some(_), None) => fail("the row's commit was not fsynced through recorder.db-wal before the answer".into()),
        (Some(_), Some(_)) => Ok(sequence(&within, answer, r.data)),
    }
}

/// What a request that only changes rows must have done before its answer: every WAL frame
/// written before the answer fsynced before it.
fn check_commit(r: Request) -> Result<String, String> {
    let (within, answer) = r.window()?;
    match wal_commit(&within, r.data, |_| true, answer) {
        (None, _) => r.fail("no commit reached recorder.db-wal before the answer", &within, answer),
        (Some(_), None) => {
            r.fail("the commit was not fsynced through recorder.db-wal before the answer", &within, answer)
        }
        (Some(_), Some(_)) => Ok(sequence(&within, answer, r.data)),
    }
}

/// What a permanent delete of the recording stored at `target` must have done: the commit that
/// deletes the row and queues the unlink fsynced through the WAL before the file is unlinked,
/// and before the answer.
fn check_delete(r: Request, target: &Path) -> Result<String, String> {
    let (_, answer) = r.window()?;
    // The unlink may come after the answer: the whole request, up to it.
    let Some(unlink) = r.calls.iter().find(|c| c.start >= r.from && c.is(UNLINKS) && c.targets(target)) else {
        return Err(format!("{} was never unlinked", target.display()));
    };
    let upto = unlink.start.max(answer.start);
    let within: Vec<&Call> = r.calls.iter().filter(|c| c.start >= r.from && c.start <= upto).collect();
    let fail = |why: &str| r.fail(why, &within, answer);
    let sync = match wal_commit(&within, r.data, |_| true, unlink) {
        (None, _) => return fail("no commit reached recorder.db-wal before the file was unlinked"),
        (Some(_), None) => {
            return fail(
                "the commit that deletes the row was not fsynced through recorder.db-wal before the file was \
                 unlinked (a power cut would bring the row back without its file)",
            );
        }
        (Some(_), Some(sync)) => sync,
    };
    if !sync.before(answer) {
        return fail("the answer began before the delete's commit was durable");
    }
    Ok(sequence(&within, answer, r.data))
}

/// Uploads outside any traced window; returns the new recording's id.
fn upload(server: &Running, token: &str, name: &str) -> String {
    let r = send(server.auth("POST", &format!("/api/v1/recordings?name={name}"), token), Some(&fixture("speech.wav")));
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["id"].as_str().expect("id").to_string()
}

/// A traced server (without WebDAV) where `username` has signed up and uploaded a recording,
/// outside any traced window: the server, the token and the recording's id. `None` without
/// strace (see `strace`).
fn traced_with_a_recording(test: &str, username: &str) -> Option<(Traced, String, String)> {
    let traced = Traced::start(&strace(test)?, false);
    let token = signup(&traced.running, username);
    let id = upload(&traced.running, &token, "a.wav");
    Some((traced, token, id))
}

/// The answer must name a stored recording whose bytes are the fixture's.
fn assert_stored(traced: &Traced, id: &str) {
    let path = traced.recording_path(id);
    let stored = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(stored == fixture("speech.wav"), "{} does not hold the uploaded bytes", path.display());
}

#[test]
fn one_shot_upload_is_fsynced_renamed_dir_synced_and_committed_before_the_answer() {
    let test = "one_shot_upload_is_fsynced_renamed_dir_synced_and_committed_before_the_answer";
    let Some(strace) = strace(test) else { return };
    let traced = Traced::start(&strace, false);
    let token = signup(&traced.running, "ada");

    let from = traced.mark();
    let (answer, port) = exchange(
        &traced.addr,
        "POST",
        "/api/v1/recordings?name=a.wav",
        &[("Authorization", &bearer(&token)), ("Content-Type", "application/octet-stream")],
        &fixture("speech.wav"),
    );
    assert_eq!(answer.status, 201, "{}", String::from_utf8_lossy(&answer.body));
    let id = answer.json()["id"].as_str().expect("id").to_string();
    assert_stored(&traced, &id);
    let target = traced.recording_path(&id);
    let calls = traced.calls_after_answer(port, from);
    let seen = check_new_recording(Request { calls: &calls, from, port, status: 201, data: &traced.data }, &target)
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("one-shot upload, as traced:\n{seen}");

    // The check refuses this same trace with any one step taken out or late.
    let without = |drop: &dyn Fn(&Call) -> bool| -> Vec<Call> { calls.iter().filter(|c| !drop(c)).cloned().collect() };
    let dir = target.parent().expect("shard").to_path_buf();
    let wal = traced.wal();
    let in_window = |c: &Call| c.start >= from;
    let tmp = traced.data.join("tmp");
    let temp_file = |c: &Call| c.fd().is_some_and(|fd| Path::new(fd).starts_with(&tmp));
    let cases: Vec<(&str, &str, Vec<Call>)> = vec![
        (
            "without the temp file's fsync",
            "was not fsynced before it was moved into place",
            without(&|c| in_window(c) && c.is(SYNCS) && temp_file(c)),
        ),
        (
            "without the directory's fsync",
            "was not fsynced between the move and the answer",
            without(&|c| in_window(c) && c.is(SYNCS) && c.on(&dir)),
        ),
        (
            "without the WAL's fsync",
            "the row's commit was not fsynced",
            without(&|c| in_window(c) && c.is(SYNCS) && c.on(&wal)),
        ),
        ("without the rename", "no rename or link", without(&|c| in_window(c) && c.is(PLACES))),
        ("with the answer before the commit's fsync", "the row's commit was not fsynced", {
            let mut early = calls.clone();
            let last_wal_sync = early
                .iter()
                .filter(|c| in_window(c) && c.is(SYNCS) && c.on(&wal))
                .map(|c| c.start)
                .max()
                .expect("the WAL's fsync");
            let at = find_answer(&calls, from, port).expect("the answer").start;
            let answer = early.iter_mut().find(|c| c.start == at).expect("the answer");
            answer.start = last_wal_sync;
            early
        }),
    ];
    for (case, reason, mutated) in cases {
        match check_new_recording(Request { calls: &mutated, from, port, status: 201, data: &traced.data }, &target) {
            Ok(_) => panic!("the check passed the trace {case}"),
            Err(why) => assert!(why.contains(reason), "the trace {case} was refused for another reason: {why}"),
        }
    }
}

#[test]
fn tus_upload_completed_by_patch_is_fsynced_linked_dir_synced_and_committed_before_the_answer() {
    let test = "tus_upload_completed_by_patch_is_fsynced_linked_dir_synced_and_committed_before_the_answer";
    let Some(strace) = strace(test) else { return };
    let traced = Traced::start(&strace, false);
    let token = signup(&traced.running, "tess");
    let wav = fixture("speech.wav");
    let created = send(
        traced
            .running
            .auth("POST", "/api/v1/uploads", &token)
            .set("Tus-Resumable", "1.0.0")
            .set("Upload-Length", &wav.len().to_string()),
        None,
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let location = created.header("Location").expect("Location").to_string();
    let upload_id = location.rsplit('/').next().expect("upload id").to_string();
    let upload_file = traced.data.join("uploads").join(&upload_id);
    assert!(upload_file.is_file(), "{} exists once the upload is created", upload_file.display());

    let from = traced.mark();
    let (answer, port) = exchange(
        &traced.addr,
        "PATCH",
        &location,
        &[
            ("Authorization", &bearer(&token)),
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Offset", "0"),
            ("Content-Type", "application/offset+octet-stream"),
        ],
        &wav,
    );
    assert_eq!(answer.status, 204, "{}", String::from_utf8_lossy(&answer.body));
    let id = answer.header("Recording-Id").expect("the completing answer names the recording").to_string();
    assert_stored(&traced, &id);
    let target = traced.recording_path(&id);
    let calls = traced.calls_after_answer(port, from);
    let seen = check_new_recording(Request { calls: &calls, from, port, status: 204, data: &traced.data }, &target)
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("tus PATCH completing an upload, as traced:\n{seen}");

    // The bytes that became the recording are the upload's own file, and that file is let go
    // only once the row is durable.
    let link = calls.iter().find(|c| c.start >= from && c.is(PLACES) && c.targets(&target)).expect("the link");
    assert_eq!(link.strings().first().map(PathBuf::from), Some(upload_file.clone()), "{}", link.short());
    let wal = traced.wal();
    let last_wal_sync = calls
        .iter()
        .filter(|c| c.start >= from && c.is(SYNCS) && c.on(&wal))
        .map(|c| c.end)
        .max()
        .expect("the WAL's fsync");
    for unlink in calls.iter().filter(|c| c.start >= from && c.is(UNLINKS) && c.targets(&upload_file)) {
        assert!(unlink.start > last_wal_sync, "the upload's file was unlinked before the commit: {}", unlink.short());
    }
}

#[test]
fn webdav_put_is_fsynced_renamed_dir_synced_and_committed_before_the_answer() {
    let test = "webdav_put_is_fsynced_renamed_dir_synced_and_committed_before_the_answer";
    let Some(strace) = strace(test) else { return };
    let traced = Traced::start(&strace, true);
    let session = signup(&traced.running, "dave");
    let app = send_json(traced.running.auth("POST", "/api/v1/tokens", &session), &json!({"name": "webdav"}));
    assert_eq!(app.status, 201, "{}", app.text());
    let app = app.json()["token"].as_str().expect("token").to_string();
    let dav = traced.dav.clone().expect("the WebDAV address");

    let from = traced.mark();
    let (answer, port) = exchange(
        &dav,
        "PUT",
        "/dav.wav",
        &[("Authorization", &basic("dave", &app)), ("Content-Type", "audio/wav")],
        &fixture("speech.wav"),
    );
    assert_eq!(answer.status, 201, "{}", String::from_utf8_lossy(&answer.body));
    let list = send(traced.running.auth("GET", "/api/v1/recordings", &session), None);
    let list = list.json();
    let id = list["recordings"]
        .as_array()
        .and_then(|all| all.iter().find(|r| r["name"] == "dav.wav"))
        .and_then(|r| r["id"].as_str())
        .unwrap_or_else(|| panic!("no recording dav.wav: {list}"))
        .to_string();
    assert_stored(&traced, &id);
    let target = traced.recording_path(&id);
    let calls = traced.calls_after_answer(port, from);
    let seen = check_new_recording(Request { calls: &calls, from, port, status: 201, data: &traced.data }, &target)
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("WebDAV PUT, as traced:\n{seen}");
}

#[test]
fn rename_is_committed_through_the_wal_before_the_answer() {
    let test = "rename_is_committed_through_the_wal_before_the_answer";
    let Some((traced, token, id)) = traced_with_a_recording(test, "rene") else { return };

    let from = traced.mark();
    let (answer, port) = exchange(
        &traced.addr,
        "PATCH",
        &format!("/api/v1/recordings/{id}"),
        &[("Authorization", &bearer(&token)), ("Content-Type", "application/json")],
        json!({"name": "b.wav"}).to_string().as_bytes(),
    );
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    assert_eq!(answer.json()["name"], "b.wav");
    let calls = traced.calls_after_answer(port, from);
    let seen = check_commit(Request { calls: &calls, from, port, status: 200, data: &traced.data })
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("rename, as traced:\n{seen}");
}

#[test]
fn permanent_delete_commits_through_the_wal_before_the_unlink_and_the_answer() {
    let test = "permanent_delete_commits_through_the_wal_before_the_unlink_and_the_answer";
    let Some((traced, token, id)) = traced_with_a_recording(test, "dee") else { return };
    let target = traced.recording_path(&id);
    assert!(target.is_file());

    let from = traced.mark();
    let (answer, port) = exchange(
        &traced.addr,
        "DELETE",
        &format!("/api/v1/recordings/{id}?permanent=true"),
        &[("Authorization", &bearer(&token))],
        b"",
    );
    assert_eq!(answer.status, 204, "{}", String::from_utf8_lossy(&answer.body));
    let gone = send(traced.running.auth("GET", &format!("/api/v1/recordings/{id}"), &token), None);
    assert_eq!(gone.status, 404);
    let calls = traced.calls_when(&format!("the answer and the unlink of {}", target.display()), |calls| {
        find_answer(calls, from, port).is_ok()
            && calls.iter().any(|c| c.start >= from && c.is(UNLINKS) && c.targets(&target))
    });
    let seen = check_delete(Request { calls: &calls, from, port, status: 204, data: &traced.data }, &target)
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("permanent delete, as traced:\n{seen}");
    assert!(!target.exists(), "{} outlived its row", target.display());
}

#[test]
fn trace_lines_parse_across_threads_and_interrupted_calls() {
    let text = "\
100  10:00:00.000001 openat(AT_FDCWD</d>, \"/d/tmp/x.part\", O_RDWR|O_CREAT, 0666) = 7</d/tmp/x.part>
101  10:00:00.000002 fsync(7</d/tmp/x.part> <unfinished ...>
[pid   102] 10:00:00.000003 writev(9<TCP:[127.0.0.1:80->127.0.0.1:4000]>, [{iov_base=\"HTTP/1.1 201 Created\\r\\n\"..., iov_len=20}], 1) = 20
101  10:00:00.000004 <... fsync resumed>) = 0
101  10:00:00.000005 rename(\"/d/tmp/x.part\", \"/d/recordings/ab/id\") = 0
101  10:00:00.000006 +++ exited with 0 +++
";
    let calls = parse(text);
    assert_eq!(calls.len(), 4, "{calls:?}");
    let fsync = &calls[1];
    assert_eq!((fsync.name.as_str(), fsync.start, fsync.end, fsync.fd()), ("fsync", 1, 3, Some("/d/tmp/x.part")));
    assert!(fsync.succeeded());
    let answer = &calls[2];
    assert_eq!((answer.pid, answer.fd()), (102, Some("TCP:[127.0.0.1:80->127.0.0.1:4000]")));
    assert_eq!(status_of(answer), Some(201));
    assert!(!fsync.before(answer), "the fsync returned after the answer began");
    assert_eq!(calls[3].strings(), vec!["/d/tmp/x.part".to_string(), "/d/recordings/ab/id".to_string()]);
    assert!(calls[3].targets(Path::new("/d/recordings/ab/id")));
}

#[test]
fn the_checks_accept_a_durable_rename_and_delete_and_refuse_lazy_ones() {
    const FRAME: &str = r#"pwrite64(5</d/recorder.db-wal>, "\0\0"..., 4096, 0) = 4096"#;
    const SYNC: &str = "fsync(5</d/recorder.db-wal>) = 0";
    const UNLINK: &str = r#"unlink("/d/recordings/ab/id") = 0"#;
    const ANSWER: &str = r#"writev(9<TCP:[127.0.0.1:80->127.0.0.1:4000]>, [{iov_base="HTTP/1.1 204 No Content\r\n"..., iov_len=25}], 1) = 25"#;
    let trace = |calls: &[&str]| parse(&calls.iter().map(|c| format!("1  10:00:00.000001 {c}\n")).collect::<String>());
    let (data, target) = (Path::new("/d"), Path::new("/d/recordings/ab/id"));
    let delete =
        |calls: &[&str]| check_delete(Request { calls: &trace(calls), from: 0, port: 4000, status: 204, data }, target);
    let rename =
        |calls: &[&str]| check_commit(Request { calls: &trace(calls), from: 0, port: 4000, status: 204, data });

    // The commit durable, then the unlink (the pending entry's removal need not be synced).
    for durable in [&[FRAME, SYNC, UNLINK, FRAME, ANSWER][..], &[FRAME, SYNC, ANSWER, UNLINK]] {
        delete(durable).unwrap_or_else(|e| panic!("a durable delete was refused: {e}"));
    }
    for lazy in [&[FRAME, UNLINK, ANSWER][..], &[FRAME, UNLINK, SYNC, ANSWER]] {
        assert!(delete(lazy).is_err_and(|e| e.contains("before the file was unlinked")), "{lazy:?}");
    }
    assert!(delete(&[FRAME, ANSWER, SYNC, UNLINK]).is_err_and(|e| e.contains("before the delete's commit")));

    rename(&[FRAME, SYNC, ANSWER]).unwrap_or_else(|e| panic!("a durable rename was refused: {e}"));
    for lazy in [&[FRAME, ANSWER][..], &[FRAME, ANSWER, SYNC], &[FRAME, SYNC, FRAME, ANSWER]] {
        assert!(rename(lazy).is_err_and(|e| e.contains("not fsynced")), "{lazy:?}");
    }
}
