//! Nothing is deleted that is not proven garbage: a restored older database, a second
//! installation on the same bucket, and `kill -9` in the middle of a sweep or a recovery lose no
//! recording; `check` tells problems from notes; backups are snapshots that restore.
//!
//! The scenarios on the data directory run on the object store too with
//! `RECORDER_TEST_STORE=s3` (the harness puts every server there).

use crate::support::process::{Running, command_on, command_with, recorder, serve, signup};
use crate::support::seaweed::{Weed, available, env_vars, fresh_prefix, s3_server, shared, shared_for};
use crate::support::{
    Server, all_pages, eventually, files_under, fixture, send, send_json, sha256_hex, test_store_is_s3,
};
use recorder::storage::store::Backend;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const FIXTURES: [&str; 7] =
    ["speech.m4a", "speech.mp3", "speech.ogg", "speech.wav", "speech.flac", "speech.webm", "speech.aac"];

/// Copies the database files (the server is stopped) to `to`.
fn copy_database(data: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for name in ["recorder.db", "recorder.db-wal", "recorder.db-shm"] {
        let _ = std::fs::remove_file(to.join(name));
        if data.join(name).exists() {
            std::fs::copy(data.join(name), to.join(name)).expect("copy database");
        }
    }
}

/// Puts the database files saved by `copy_database` back (the server is stopped).
fn put_database_back(saved: &Path, data: &Path) {
    for name in ["recorder.db", "recorder.db-wal", "recorder.db-shm"] {
        let _ = std::fs::remove_file(data.join(name));
        if saved.join(name).exists() {
            std::fs::copy(saved.join(name), data.join(name)).expect("restore database");
        }
    }
}

/// Every recording of a user, by id: (name, SHA-256 of the bytes served).
fn served(server: &Server, token: &str) -> BTreeMap<String, (String, String)> {
    all_pages(server, token, "/api/v1/recordings")
        .into_iter()
        .map(|r| {
            let id = r["id"].as_str().expect("id").to_string();
            let audio = send(server.auth("GET", &format!("/api/v1/recordings/{id}/audio"), token), None);
            assert_eq!(audio.status, 200, "{id}: {}", audio.text());
            (id, (r["name"].as_str().expect("name").to_string(), sha256_hex(&audio.body)))
        })
        .collect()
}

/// The files in `<data>/lost+found/`.
fn lost_and_found(data: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data.join("lost+found"))
        .map(|entries| entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn a_restored_older_database_deletes_nothing_and_recover_brings_every_newer_recording_back() {
    let home = tempfile::tempdir().expect("tempdir");
    let data = home.path().join("data");
    let saved = home.path().join("saved");
    let start = || {
        let data = data.clone();
        Server::start_with(move |c| {
            c.storage.data_dir = data;
            c.metrics.enabled = true;
        })
    };
    let mut uploaded = BTreeMap::new();
    {
        let server = start();
        let token = server.signup("alice");
        for (i, name) in FIXTURES[..3].iter().enumerate() {
            let bytes = fixture(name);
            let id = server.upload_id(&token, &format!("old {i} {name}"), &bytes);
            uploaded.insert(id, (format!("old {i} {name}"), bytes));
        }
        server.wait_for_jobs();
    }
    copy_database(&data, &saved);
    {
        let server = start();
        let token = server.login("alice");
        for (i, name) in FIXTURES[3..].iter().enumerate() {
            let bytes = fixture(name);
            let id = server.upload_id(&token, &format!("new {i} {name}"), &bytes);
            uploaded.insert(id, (format!("new {i} {name}"), bytes));
        }
        server.wait_for_jobs();
    }
    // Yesterday's database is put back: it knows the first 3 recordings only.
    put_database_back(&saved, &data);
    let newer = uploaded.len() - 3;
    for _ in 0..2 {
        let server = start();
        // The startup sweep finds the 4 unknown files and keeps them (the metric is how it says
        // it has finished looking).
        eventually("the sweep counted the lost files", || server.metric("recorder_lost_files") == Some(newer as f64));
        for (id, (_, bytes)) in &uploaded {
            let stored = server.stored_bytes(id).or_else(|| std::fs::read(data.join("lost+found").join(id)).ok());
            assert_eq!(stored.as_deref().map(sha256_hex), Some(sha256_hex(bytes)), "the bytes of {id} are kept");
        }
        let token = server.login("alice");
        assert_eq!(served(&server, &token).len(), 3);
    }
    if !test_store_is_s3() {
        assert_eq!(lost_and_found(&data).len(), newer, "unknown files on disk go to lost+found");
    }

    let env = Server::store_env_for(&data);
    let (code, out, err) = command_with(&data, &env, &["check"]);
    assert_eq!(code, 0, "lost files are a note, not a problem: {out}{err}");
    assert!(out.contains("--recover"), "check says how to bring them back: {out}");

    let (code, out, err) = command_with(&data, &env, &["check", "--recover"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("recovered {newer}")), "{out}");
    // Idempotent: a second run finds nothing left to recover.
    let (code, out, err) = command_with(&data, &env, &["check", "--recover"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("recovered 0"), "{out}");
    assert!(lost_and_found(&data).is_empty(), "recovered files leave lost+found");

    let server = start();
    let token = server.login("alice");
    let listed = served(&server, &token);
    // Every recording is back, byte-identical, with the name it was uploaded with.
    let expected: BTreeMap<String, (String, String)> =
        uploaded.iter().map(|(id, (name, bytes))| (id.clone(), (name.clone(), sha256_hex(bytes)))).collect();
    assert_eq!(listed, expected);
    eventually("nothing is lost any more", || server.metric("recorder_lost_files") == Some(0.0));
}

#[test]
fn check_exits_0_for_notes_and_1_for_problems() {
    let server = Server::start();
    let token = server.signup("bob");
    let kept = server.upload_id(&token, "kept.wav", &fixture("speech.wav"));
    let lost = server.upload_id(&token, "lost.flac", &fixture("speech.flac"));
    server.wait_for_jobs();
    // A file in lost+found is a note: nothing is at risk.
    let found = server.data().join("lost+found");
    std::fs::create_dir_all(&found).expect("mkdir");
    std::fs::write(found.join(uuid::Uuid::now_v7().to_string()), fixture("speech.ogg")).expect("write");
    let (code, out, err) = command_on(&server, &["check"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("lost+found"), "the note names lost+found: {out}");
    assert!(out.contains("0 problems"), "{out}");
    // A recording whose bytes are gone is a problem: exit 1.
    server.remove_stored(&lost);
    let (code, out, err) = command_on(&server, &["check"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("missing_file") && out.contains(&lost), "{out}");
    assert!(!out.contains(&format!("missing_file   {kept}")), "{out}");
}

/// A data directory a built server has used: one account (`carol`, password123) with one
/// recording. Returns the recording's id.
fn prepared(home: &Path, data: &Path) -> (String, String) {
    let server = serve(home, data);
    let token = signup(&server, "carol");
    let r = send(server.auth("POST", "/api/v1/recordings?name=known.wav", &token), Some(&fixture("speech.wav")));
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().expect("id").to_string();
    drop(server);
    (id, token)
}

/// Writes `n` files with distinct bytes into `dir` under new ids (sharded like `recordings/`
/// when `sharded`); returns id → SHA-256.
fn unknown_files(dir: &Path, n: usize, sharded: bool) -> BTreeMap<String, String> {
    let base = fixture("speech.wav");
    (0..n)
        .map(|i| {
            let id = uuid::Uuid::now_v7();
            let mut bytes = base.clone();
            // Distinct bytes in the samples: the WAV stays valid.
            let at = bytes.len() - 8;
            bytes[at..].copy_from_slice(&(i as u64).to_le_bytes());
            let path = if sharded {
                dir.join(recorder::storage::Storage::relative_path(&id))
            } else {
                dir.join(id.to_string())
            };
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, &bytes).expect("write");
            (id.to_string(), sha256_hex(&bytes))
        })
        .collect()
}

/// Every file under `recordings/` and `lost+found/`: id → (where, SHA-256).
fn kept_files(data: &Path) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for path in ["recordings", "lost+found"].iter().flat_map(|dir| files_under(&data.join(dir))) {
        let name = path.file_name().expect("name").to_string_lossy().to_string();
        if uuid::Uuid::parse_str(&name).is_err() {
            continue;
        }
        let bytes = std::fs::read(&path).expect("read");
        out.entry(name).or_default().push((path.display().to_string(), sha256_hex(&bytes)));
    }
    out
}

#[test]
fn kill_9_during_the_startup_sweep_loses_no_file() {
    let home = tempfile::tempdir().expect("tempdir");
    let data = home.path().join("data");
    let (known, _) = prepared(home.path(), &data);
    let unknown = unknown_files(&data, 300, true);
    // Made before the server starts: older than its start.
    let server = serve(home.path(), &data);
    eventually("the sweep started moving", || !lost_and_found(&data).is_empty());
    server.kill9();
    let server = serve(home.path(), &data);
    eventually("the sweep finished", || lost_and_found(&data).len() == unknown.len());
    let kept = kept_files(&data);
    for (id, sha) in &unknown {
        let places = kept.get(id).unwrap_or_else(|| panic!("{id} was deleted"));
        assert_eq!(places.len(), 1, "{id} is kept once: {places:?}");
        assert_eq!(&places[0].1, sha, "{id} is byte-identical");
        assert!(places[0].0.contains("lost+found"), "{places:?}");
    }
    assert_eq!(kept.get(&known).map(Vec::len), Some(1), "the known recording stays in place");
    drop(server);
}

#[test]
fn kill_9_during_recovery_loses_nothing_and_a_second_run_finishes() {
    let home = tempfile::tempdir().expect("tempdir");
    let data = home.path().join("data");
    let (known, _) = prepared(home.path(), &data);
    let unknown = unknown_files(&data.join("lost+found"), 300, false);
    let mut cmd = recorder(home.path());
    cmd.args(["check", "--recover", "--owner", "carol", "--data-dir"]).arg(&data);
    let mut child = cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().expect("spawn");
    eventually("the recovery started", || lost_and_found(&data).len() < unknown.len());
    let _ = child.kill();
    let _ = child.wait();
    // Whatever the kill interrupted, every file is still there exactly once.
    let kept = kept_files(&data);
    for (id, sha) in &unknown {
        let places = kept.get(id).unwrap_or_else(|| panic!("{id} was deleted"));
        assert_eq!(places.len(), 1, "{id} is kept once: {places:?}");
        assert_eq!(&places[0].1, sha);
    }
    let (code, out, err) = command_with(&data, &[], &["check", "--recover", "--owner", "carol"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(lost_and_found(&data).is_empty(), "{out}");
    let server = serve(home.path(), &data);
    let r =
        send_json(server.req("POST", "/api/v1/auth/login"), &json!({"username": "carol", "password": "password123"}));
    let token = r.json()["token"].as_str().expect("token").to_string();
    let mut ids = BTreeSet::new();
    let mut cursor = String::new();
    loop {
        let page = send(
            server
                .req("GET", &format!("/api/v1/recordings?limit=100&cursor={cursor}"))
                .set("Authorization", &format!("Bearer {token}")),
            None,
        )
        .json();
        for r in page["recordings"].as_array().expect("list") {
            ids.insert(r["id"].as_str().expect("id").to_string());
            assert!(unknown.get(r["id"].as_str().expect("id")).is_none_or(|sha| r["sha256"] == *sha), "{r}");
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => break,
        }
    }
    let expected: BTreeSet<String> = unknown.keys().cloned().chain([known]).collect();
    assert_eq!(ids, expected, "every file is a recording of carol's, once");
    drop::<Running>(server);
}

/// The snapshots in a backup directory, oldest first.
fn snapshots(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).filter(|p| p.join("recorder.db").is_file()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn backup_snapshots_share_audio_keep_the_newest_and_restore_in_a_drill() {
    // With the object store, a prefix of the test's own: the server restored from the store
    // below uses it too.
    let server = Server::start_with(|c| {
        if let Some(s3) = c.storage.s3.as_mut() {
            s3.prefix = fresh_prefix("drill");
        }
    });
    let token = server.signup("dora");
    let backups = tempfile::tempdir().expect("tempdir");
    let mut env = server.store_env();
    env.push(("RECORDER_BACKUP_DIR".into(), backups.path().display().to_string()));
    env.push(("RECORDER_BACKUP_KEEP".into(), "3".into()));
    let first = server.upload_id(&token, "first.wav", &fixture("speech.wav"));
    for (i, name) in FIXTURES.iter().take(5).enumerate() {
        server.upload_id(&token, &format!("{i} {name}"), &fixture(name));
        let (code, out, err) = command_with(&server.data(), &env, &["backup"]);
        assert_eq!(code, 0, "{out}{err}");
    }
    let kept = snapshots(backups.path());
    assert_eq!(kept.len(), 3, "backup.keep snapshots are kept: {kept:?}");
    // With the object store, each snapshot's database goes there too (the newest backup.keep).
    if let Some(bucket) = &server.s3 {
        let copies: Vec<String> = bucket
            .list_all()
            .into_iter()
            .map(|(name, _)| name)
            .filter(|n| n.starts_with(".recorder-backups/"))
            .collect();
        assert_eq!(copies.len(), 3, "{copies:?}");
        let newest = kept.last().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().to_string());
        assert_eq!(copies.last().cloned(), newest.map(|n| format!(".recorder-backups/{n}.db")));
    }
    // Unchanged audio is shared between snapshots (hard links), not copied again.
    let uuid = uuid::Uuid::parse_str(&first).expect("uuid");
    let relative = recorder::storage::Storage::relative_path(&uuid);
    let inodes: BTreeSet<u64> =
        kept.iter().map(|s| std::fs::metadata(s.join(&relative)).expect("in every snapshot").ino()).collect();
    assert_eq!(inodes.len(), 1, "one file, linked into every snapshot");

    let newest = kept.last().expect("a snapshot").clone();
    let restored = tempfile::tempdir().expect("tempdir");
    let target = restored.path().join("data");
    let (code, out, err) = command_with(&target, &[], &["restore", &newest.display().to_string()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("verified"), "{out}");
    // Not over a directory that holds anything.
    let (code, _, err) = command_with(&target, &[], &["restore", &newest.display().to_string()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("empty"), "{err}");

    let expected = served(&server, &token);
    assert_eq!(expected.len(), 6);
    let prefix = server.s3.as_ref().map(|bucket| bucket.prefix.clone());
    drop(server);
    let restored_server = Server::start_with(|c| {
        c.storage.data_dir = target.clone();
        c.storage.backend = Backend::Local;
        c.storage.s3 = None;
    });
    let token = restored_server.login("dora");
    let back = served(&restored_server, &token);
    let differ: Vec<_> = expected.iter().filter(|(id, v)| back.get(*id) != Some(v)).collect();
    assert!(differ.is_empty() && back.len() == expected.len(), "not restored as they were: {differ:?} vs {back:?}");
    drop(restored_server);

    // The disk and its snapshots lost, the audio in the object store: the database it keeps
    // comes back, every object read and checked, and the store is this installation's still.
    if let Some(prefix) = prefix {
        let config = shared().config(&prefix);
        let name = newest.file_name().map(|n| n.to_string_lossy().to_string()).expect("name");
        let from_store = restored.path().join("from-store");
        let env = env_vars(&config, "s3");
        let (code, out, err) = command_with(&from_store, &env, &["restore", &format!("s3:{name}")]);
        assert_eq!(code, 0, "{out}{err}");
        let server = s3_server(&config, Some(&from_store));
        let token = server.login("dora");
        assert_eq!(served(&server, &token), expected, "restored from the object store alone");
    }

    // A damaged snapshot is caught: a file replaced in one snapshot only.
    let oldest = kept.first().expect("a snapshot");
    let damaged = oldest.join(&relative);
    std::fs::remove_file(&damaged).expect("unlink");
    std::fs::write(&damaged, b"RIFF damaged").expect("write");
    let elsewhere = restored.path().join("again");
    let (code, out, err) = command_with(&elsewhere, &[], &["restore", &oldest.display().to_string()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains(&first), "the damaged recording is named: {err}");
}

/// Why a server on `data` with these store settings does not start.
fn refusal(data: &Path, config: &recorder::config::S3Config) -> String {
    let mut settings = recorder::Config::with_data_dir(data.to_path_buf());
    settings.storage.backend = Backend::S3;
    settings.storage.s3 = Some(config.clone());
    settings.tls.port = 0;
    match recorder::Server::open(settings, recorder::Clock::default()) {
        Ok(_) => panic!("a second installation started on {} (prefix {:?})", config.bucket, config.prefix),
        Err(e) => e.to_string(),
    }
}

/// Two installations on one bucket and prefix: the second refuses to start, and the first keeps
/// every recording; under a prefix of its own the second starts.
fn two_installations(weed: &Weed, prefix: &str) {
    let home = tempfile::tempdir().expect("tempdir");
    let config = weed.config(prefix);
    let first = s3_server(&config, Some(&home.path().join("a")));
    let token = first.signup("erin");
    let mut uploaded = BTreeMap::new();
    for name in &FIXTURES[..3] {
        let bytes = fixture(name);
        uploaded.insert(first.upload_id(&token, name, &bytes), (name.to_string(), sha256_hex(&bytes)));
    }
    first.wait_for_jobs();
    let marker = weed.bucket(prefix).list_all().into_iter().map(|(name, _)| name).find(|n| n == ".recorder-store");
    assert!(marker.is_some(), "the store is marked as this installation's");

    // A re-installation with a fresh data directory, on the same bucket and prefix.
    let why = refusal(&home.path().join("b"), &config);
    assert!(why.contains(&config.bucket), "{why}");
    assert!(why.contains("prefix"), "{why}");
    assert!(why.contains("adopt"), "the way out is named: {why}");
    // Under a prefix of its own it starts, and leaves the first one's objects alone.
    let mut own = config.clone();
    own.prefix = format!("{}other", if prefix.is_empty() { String::new() } else { format!("{prefix}/") });
    let second = s3_server(&own, Some(&home.path().join("b")));
    let other = second.signup("erin");
    second.upload_id(&other, "theirs.wav", &fixture("speech.wav"));
    drop(second);
    assert_eq!(served(&first, &token), uploaded, "the first installation loses nothing");
    drop(first);

    // The first installation restarted: its own marker, so it starts and still has everything.
    let again = s3_server(&config, Some(&home.path().join("a")));
    let token = again.login("erin");
    assert_eq!(served(&again, &token), uploaded);
}

#[test]
fn two_installations_on_one_bucket_under_a_prefix_the_second_refuses_and_the_first_loses_nothing() {
    let Some(weed) = shared_for("two_installations_under_a_prefix") else { return };
    two_installations(weed, &fresh_prefix("shared"));
}

#[test]
fn two_installations_on_one_bucket_without_a_prefix_the_second_refuses_and_the_first_loses_nothing() {
    if !available("two_installations_without_a_prefix") {
        return;
    }
    let weed = Weed::private();
    two_installations(&weed, "");
}

#[test]
fn an_unmarked_store_with_recordings_is_adopted_only_by_the_installation_whose_rows_name_them() {
    let Some(weed) = shared_for("unmarked_store") else { return };
    let home = tempfile::tempdir().expect("tempdir");
    let prefix = fresh_prefix("unmarked");
    let config = weed.config(&prefix);
    let bucket = weed.bucket(&prefix);
    let data = home.path().join("a");
    let first = s3_server(&config, Some(&data));
    let token = first.signup("finn");
    let id = first.upload_id(&token, "memo.wav", &fixture("speech.wav"));
    drop(first);
    // As a store written before markers existed.
    bucket.delete(".recorder-store");
    let why = refusal(&home.path().join("stranger"), &config);
    assert!(why.contains("adopt"), "{why}");
    assert!(bucket.get(&id).is_some(), "the refusal removes nothing");
    // Its own installation adopts it: its rows name the objects.
    let again = s3_server(&config, Some(&data));
    let token = again.login("finn");
    assert_eq!(served(&again, &token).len(), 1);
    assert!(bucket.list_all().iter().any(|(name, _)| name == ".recorder-store"), "marked now");
}
