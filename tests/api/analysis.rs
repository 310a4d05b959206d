//! Background analysis: every fixture's exact duration and waveform, lying and broken files,
//! decoder panics, time budgets, deletes during a job, and `kill -9` in the middle of one.

use crate::support::pipe::{Feed, Pipe};
use crate::support::process::{Running, recorder, serve, signup};
use crate::support::{
    Resp, Server, eventually, fixture, long_wav, recording_path, send, settled, sha256_hex, wav_claiming,
};
use recorder::storage::store::Backend;
use std::time::{Duration, Instant};

fn waveform(s: &Server, token: &str, id: &str) -> Resp {
    send(s.auth("GET", &format!("/api/v1/recordings/{id}/waveform"), token), None)
}

/// Why a recording's analysis failed, as `recorder check` shows it.
fn analysis_error(s: &Server, id: &str) -> String {
    s.db()
        .conn()
        .expect("conn")
        .query_row("SELECT analysis_error FROM recordings WHERE id = ?1", [id], |r| r.get(0))
        .expect("reason")
}

fn jobs(s: &Server) -> Vec<(String, String)> {
    let conn = s.db().conn().expect("conn");
    let mut stmt = conn.prepare("SELECT recording_id, state FROM jobs").expect("prepare");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).expect("query").map(|r| r.expect("row")).collect()
}

#[test]
fn every_fixture_gets_its_exact_duration_and_a_waveform() {
    let s = Server::start();
    let token = s.signup("wanda");
    let decodable = ["speech.wav", "speech.flac", "speech.mp3", "speech.m4a", "speech.3gp", "speech.aac", "speech.ogg"];
    let opus = ["speech.opus", "speech.webm"];
    for name in decodable.iter().chain(&opus) {
        let bytes = fixture(name);
        let id = s.upload_id(&token, name, &bytes);
        let recording = settled(&s, &token, &id, Duration::from_secs(60));
        assert_eq!(recording["waveform"], "ready", "{name}: {recording}");
        let duration = recording["duration_ms"].as_i64().expect("duration");
        assert!((duration - 4179).abs() <= 150, "{name}: decoded {duration} ms, the speech is 4179 ms");

        let w = waveform(&s, &token, &id);
        assert_eq!(w.status, 200, "{name}: {}", w.text());
        assert_eq!(w.header("ETag").map(str::to_string), Some(format!("\"{}\"", sha256_hex(&bytes))));
        let body = w.json();
        assert_eq!(body["bucket_ms"], 10, "{name}");
        let peaks: Vec<u64> =
            body["peaks"].as_array().expect("peaks").iter().map(|p| p.as_u64().expect("u8")).collect();
        let expected = duration as usize / 10;
        assert!(peaks.len().abs_diff(expected) <= 2, "{name}: {} buckets for {duration} ms", peaks.len());
        assert!(peaks.iter().all(|&p| p <= 255));
        assert!(peaks.iter().copied().max() > Some(128), "{name}: the speech is loud somewhere");
        assert!(peaks.iter().any(|&p| p < 16), "{name}: and quiet between words");

        let etag = w.header("ETag").expect("etag").to_string();
        let again =
            send(s.auth("GET", &format!("/api/v1/recordings/{id}/waveform"), &token).set("If-None-Match", &etag), None);
        assert_eq!(again.status, 304);
    }
    assert!(jobs(&s).iter().all(|(_, state)| state == "failed"), "done jobs leave the queue: {:?}", jobs(&s));
}

#[test]
fn with_analysis_off_recordings_stay_pending_and_have_no_waveform() {
    let s = Server::start_with(|c| c.analysis.enabled = false);
    let token = s.signup("otis");
    let id = s.upload_id(&token, "memo.wav", &fixture("speech.wav"));
    let recording = send(s.auth("GET", &format!("/api/v1/recordings/{id}"), &token), None).json();
    assert_eq!(recording["waveform"], "pending");
    waveform(&s, &token, &id).assert_error(404, "not_found");
    assert_eq!(jobs(&s), vec![(id, "queued".to_string())], "queued for when analysis is turned on");
}

#[test]
fn truncated_lying_empty_garbage_and_panicking_files_end_ready_or_failed_with_a_reason() {
    let s = Server::start_with(|c| c.metrics.enabled = true);
    let token = s.signup("lena");

    // Cut in half: the header still claims the whole length; the decoded length is the truth.
    let wav = fixture("speech.wav");
    let half = &wav[..wav.len() / 2];
    let id = s.upload_id(&token, "half.wav", half);
    let recording = settled(&s, &token, &id, Duration::from_secs(30));
    assert_eq!(recording["waveform"], "ready");
    let decoded = recording["duration_ms"].as_i64().expect("duration");
    assert!((decoded - 2089).abs() <= 20, "half of 4179 ms, decoded {decoded}");

    // A header that claims three hours over two seconds of sound.
    let two_seconds: Vec<u8> = (0..16_000).map(|i| (128.0 + 100.0 * (i as f64 * 0.2).sin()) as u8).collect();
    let liar = wav_claiming(8000, 8, 3 * 3600 * 8000, &two_seconds);
    let up = s.upload(&token, "liar.wav", &liar);
    assert_eq!(up.status, 201, "{}", up.text());
    let id = up.json()["id"].as_str().expect("id").to_string();
    let recording = settled(&s, &token, &id, Duration::from_secs(30));
    assert_eq!(recording["waveform"], "ready", "{recording}");
    assert_eq!(recording["duration_ms"], 2000, "the decoded length replaces the header's claim");

    // Audio-shaped noise decodes to noise: a waveform, not a crash.
    let mut noise = 0x9E37_79B9u32;
    let random: Vec<u8> = (0..64_000)
        .map(|_| {
            noise ^= noise << 13;
            noise ^= noise >> 17;
            noise ^= noise << 5;
            noise as u8
        })
        .collect();
    let id = s.upload_id(&token, "noise.wav", &wav_claiming(16_000, 16, random.len() as u32, &random));
    assert_eq!(settled(&s, &token, &id, Duration::from_secs(30))["waveform"], "ready");

    // Cut before its first frame, and inputs that made the decoder panic: failed, with the reason.
    for (name, reason) in [
        ("truncated.mp3", "no complete packet"),
        ("analysis/decoder-panics.m4a", "unexpected input"),
        ("analysis/decoder-panics.wav", "unexpected input"),
    ] {
        let up = s.upload(&token, name.rsplit('/').next().expect("name"), &fixture(name));
        assert_eq!(up.status, 201, "{name}: {}", up.text());
        let id = up.json()["id"].as_str().expect("id").to_string();
        let recording = settled(&s, &token, &id, Duration::from_secs(30));
        assert_eq!(recording["waveform"], "failed", "{name}: {recording}");
        let error = analysis_error(&s, &id);
        assert!(error.contains(reason), "{name}: {error}");
        waveform(&s, &token, &id).assert_error(404, "not_found");
    }

    // A WAV whose audio stream is empty.
    let empty = wav_claiming(8000, 16, 0, &[]);
    // A well-formed header is a recording (a take cut off at once is still the user's); its
    // analysis fails with the reason.
    let up = s.upload(&token, "empty.wav", &empty);
    assert_eq!(up.status, 201, "{}", up.text());
    let id = up.json()["id"].as_str().expect("id").to_string();
    assert_eq!(settled(&s, &token, &id, Duration::from_secs(30))["waveform"], "failed");
    assert!(analysis_error(&s, &id).contains("no complete packet"), "{}", analysis_error(&s, &id));

    // The server lives on, and `recorder check` notes the failures: nothing is wrong with the
    // bytes, so they are not problems, and --repair leaves them as they are.
    assert_eq!(send(s.req("GET", "/healthz"), None).status, 200);
    let storage = s.storage();
    let options = recorder::check::Options {
        verify: false,
        repair: true,
        force: false,
        now_ms: s.clock.now_ms(),
        retention_days: 30,
    };
    let report = recorder::check::run(&s.db(), &storage, options, &mut |_| {}).expect("check");
    let failed = report.by_kind[recorder::check::Kind::AnalysisFailed as usize];
    assert!(failed >= 3, "{report:?}");
    assert_eq!((report.problems, report.repaired, report.notes), (0, 0, failed), "{report:?}");
    let still_failed: i64 = s
        .db()
        .conn()
        .expect("conn")
        .query_row("SELECT count(*) FROM jobs WHERE kind = 'analysis' AND state = 'failed'", [], |r| r.get(0))
        .expect("count");
    assert_eq!(still_failed as usize, failed, "--repair queued nothing again");
}

/// The recordings' files are pipes the test feeds (`support::pipe`): one without end, so that its
/// decode can stop only at its budget however fast the build decodes; one that stalls, so that
/// its job is still running when its recording is deleted.
#[test]
fn a_job_past_its_time_budget_fails_and_a_recording_deleted_mid_job_leaves_nothing() {
    let home = tempfile::tempdir().expect("tempdir");
    let data = home.path().join("data");
    // Kept in the data directory (whatever the test store), where a file can be a pipe.
    let on_disk = |c: &mut recorder::Config| {
        c.storage.data_dir = data.clone();
        c.storage.backend = Backend::Local;
    };
    // Stored with analysis off, so that no job reads them before they are pipes. The newest
    // recording's job runs first: the endless one.
    let aac = fixture("speech.aac");
    let (token, doomed, endless, doomed_path, endless_path) = {
        let s = Server::start_with(|c| {
            on_disk(c);
            c.analysis.enabled = false;
        });
        let token = s.signup("tim");
        let doomed = s.upload_id(&token, "doomed.aac", &aac);
        let endless = s.upload_id(&token, "endless.aac", &aac);
        let (doomed_path, endless_path) = (s.local_path(&doomed), s.local_path(&endless));
        (token, doomed, endless, doomed_path, endless_path)
    };
    let endless_pipe = Pipe::replace(&endless_path, aac.clone(), Feed::Endless);
    let doomed_pipe = Pipe::replace(&doomed_path, aac, Feed::Stalled);
    let s = Server::start_with(|c| {
        on_disk(c);
        c.analysis.seconds_per_hour = 1;
    });

    // Audio without end: the CPU-time budget (at least a second) runs out first.
    let recording = settled(&s, &token, &endless, Duration::from_secs(120));
    assert_eq!(recording["waveform"], "failed", "{recording}");
    let error = analysis_error(&s, &endless);
    assert!(error.contains("longer than its budget"), "{error}");
    drop(endless_pipe);

    // Deleted while its job runs (waiting for more of the pipe): no error, no job, no waveform
    // left once the job ends.
    let id = doomed;
    eventually("the job is running", || jobs(&s).iter().any(|(r, st)| *r == id && st == "running"));
    let gone = send(s.auth("DELETE", &format!("/api/v1/recordings/{id}?permanent=true"), &token), None);
    assert_eq!(gone.status, 204);
    drop(doomed_pipe);
    let deadline = Instant::now() + Duration::from_secs(60);
    while jobs(&s).iter().any(|(r, _)| *r == id) {
        assert!(Instant::now() < deadline, "the job outlived its recording");
        std::thread::sleep(Duration::from_millis(50));
    }
    let waveforms: i64 = s
        .db()
        .conn()
        .expect("conn")
        .query_row("SELECT count(*) FROM waveforms WHERE recording_id = ?1", [&id], |r| r.get(0))
        .expect("count");
    assert_eq!(waveforms, 0);
    assert_eq!(send(s.req("GET", "/healthz"), None).status, 200);
}

/// The server's peak resident memory (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()).expect("kB") * 1024
}

#[test]
fn kill_9_mid_job_runs_it_again_once_and_a_three_hour_file_stays_in_bounded_memory() {
    let home = tempfile::tempdir().expect("tempdir");
    let data = home.path().join("data");
    let server = serve(home.path(), &data);
    let token = signup(&server, "kurt");
    let long = long_wav(3 * 3600, 8000);
    let up = send(server.auth("POST", "/api/v1/recordings?name=lecture.wav", &token), Some(&long));
    assert_eq!(up.status, 201, "{}", up.text());
    let id = up.json()["id"].as_str().expect("id").to_string();
    let db = recorder::db::Db::open(&data.join("recorder.db")).expect("db");
    let state = |db: &recorder::db::Db| -> Option<(String, i64)> {
        db.conn()
            .expect("conn")
            .query_row("SELECT state, attempts FROM jobs WHERE recording_id = ?1", [&id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .ok()
    };
    eventually("the job is running", || state(&db).is_some_and(|(s, _)| s == "running"));
    server.kill9();
    assert_eq!(state(&db), Some(("running".to_string(), 1)), "killed mid-job");

    let server = serve(home.path(), &data);
    let before = peak_rss(server.child.id());
    let deadline = Instant::now() + Duration::from_secs(240);
    let recording = loop {
        let r = send(server.auth("GET", &format!("/api/v1/recordings/{id}"), &token), None).json();
        if r["waveform"] != "pending" {
            break r;
        }
        assert!(Instant::now() < deadline, "the job did not run again");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(recording["waveform"], "ready", "{recording}");
    assert_eq!(recording["duration_ms"], 3 * 3600 * 1000);
    assert_eq!(state(&db), None, "done once: the job is gone");
    let peak = peak_rss(server.child.id());
    // 86 MB of audio decoded: the server's peak grew by a few MiB, not by the file.
    assert!(peak < before + (32 << 20), "peak RSS {} MiB, {} MiB before the job", peak >> 20, before >> 20);

    let w = send(server.auth("GET", &format!("/api/v1/recordings/{id}/waveform"), &token), None).json();
    let peaks = w["peaks"].as_array().expect("peaks");
    assert!((1000..=4000).contains(&peaks.len()), "{} buckets", peaks.len());
    let bucket_ms = w["bucket_ms"].as_u64().expect("bucket");
    assert_eq!(peaks.len() as u64, (3 * 3600 * 1000u64).div_ceil(bucket_ms));
    // Loud for the first tenth, quiet after: the shape is the sound's.
    let tenth = peaks.len() / 10;
    assert!(peaks[..tenth - 1].iter().all(|p| p.as_u64() > Some(200)), "loud start");
    assert!(peaks[tenth + 1..].iter().all(|p| p.as_u64() < Some(30)), "quiet rest");
}

#[test]
fn recordings_from_before_analysis_are_analysed_after_an_upgrade_newest_first() {
    let home = tempfile::tempdir().expect("tempdir");
    let data = home.path().join("data");
    let server = serve(home.path(), &data);
    let token = signup(&server, "una");
    let mut ids = Vec::new();
    for name in ["first.wav", "second.flac", "third.m4a"] {
        let file = name.replace("first", "speech").replace("second", "speech").replace("third", "speech");
        let up = send(server.auth("POST", &format!("/api/v1/recordings?name={name}"), &token), Some(&fixture(&file)));
        assert_eq!(up.status, 201);
        ids.push(up.json()["id"].as_str().expect("id").to_string());
    }
    let ready = |server: &Running| {
        ids.iter().all(|id| {
            send(server.auth("GET", &format!("/api/v1/recordings/{id}"), &token), None).json()["waveform"] == "ready"
        })
    };
    eventually("analysed", || ready(&server));
    drop(server);

    // As a database from before analysis existed looks after the upgrade's migration.
    let db = recorder::db::Db::open(&data.join("recorder.db")).expect("db");
    db.conn()
        .expect("conn")
        .execute_batch(
            "UPDATE recordings SET waveform = NULL, duration_ms = NULL; DELETE FROM waveforms; DELETE FROM jobs;
             DELETE FROM settings;",
        )
        .expect("reset");

    let server = serve(home.path(), &data);
    eventually("analysed again after the upgrade", || ready(&server));
    let analysed = || -> Vec<String> {
        server
            .log()
            .iter()
            .filter_map(|line| line.split("analysed ").nth(1).and_then(|rest| rest.split_whitespace().next()))
            .map(str::to_string)
            .collect()
    };
    // The server's log is read from its stderr as it comes: the last line may trail the commit.
    eventually("each analysis is logged", || analysed().len() >= ids.len());
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(analysed(), newest_first, "analysed newest first");
    let list = send(server.auth("GET", "/api/v1/recordings", &token), None).json();
    for r in list["recordings"].as_array().expect("recordings") {
        assert!((r["duration_ms"].as_i64().expect("decoded duration") - 4179).abs() <= 150, "{r}");
    }
}

#[test]
fn a_recording_whose_file_is_missing_fails_its_analysis_instead_of_hanging() {
    let home = tempfile::tempdir().expect("tempdir");
    let data = home.path().join("data");
    let serve = |analysis: &str| {
        let mut cmd = recorder(home.path());
        cmd.env("RECORDER_ANALYSIS_ENABLED", analysis).arg("--data-dir").arg(&data).arg("--port").arg("0");
        Running::start(cmd)
    };
    let server = serve("false");
    let token = signup(&server, "mira");
    let up = send(server.auth("POST", "/api/v1/recordings?name=gone.wav", &token), Some(&fixture("speech.wav")));
    let id = up.json()["id"].as_str().expect("id").to_string();
    drop(server);
    let file = recording_path(&data, &id);
    std::fs::remove_file(&file).expect("remove the file");

    let server = serve("true");
    let deadline = Instant::now() + Duration::from_secs(30);
    let recording = loop {
        let r = send(server.auth("GET", &format!("/api/v1/recordings/{id}"), &token), None).json();
        if r["waveform"] != "pending" {
            break r;
        }
        assert!(Instant::now() < deadline, "still pending");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(recording["waveform"], "failed");
    let db = recorder::db::Db::open(&data.join("recorder.db")).expect("db");
    let (state, error): (String, String) = db
        .conn()
        .expect("conn")
        .query_row("SELECT state, error FROM jobs WHERE recording_id = ?1", [&id], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("the failed job stays");
    assert_eq!(state, "failed");
    assert!(error.contains("file is missing"), "{error}");
}
