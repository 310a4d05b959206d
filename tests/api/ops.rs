//! Operations: `recorder check`, `recorder backup`, run against the data directory of a live
//! server.

use crate::support::process::{command_on, command_with};
use crate::support::{
    Server, all_pages, eventually, files_under, fixture, recording_path, send, send_json, settled, sha256_hex,
};
use recorder::storage::Storage;
use serde_json::{Value, json};
use std::io::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const FIXTURES: [&str; 5] = ["speech.m4a", "speech.mp3", "speech.ogg", "speech.wav", "speech.flac"];

/// Runs a command of the binary on a data directory: (exit code, stdout, stderr).
fn command(data: &Path, args: &[&str]) -> (i32, String, String) {
    command_with(data, &[], args)
}

fn set_age(path: &Path, age: Duration) {
    let file = std::fs::File::options().write(true).open(path).expect("open");
    file.set_modified(SystemTime::now() - age).expect("set mtime");
}

#[test]
fn check_finds_each_problem_and_repair_fixes_it_without_touching_good_files() {
    let server = Server::start();
    let data = server.data();
    let token = server.signup("alice");
    let ids: Vec<String> = FIXTURES[..4].iter().map(|f| server.upload_id(&token, f, &fixture(f))).collect();
    let (missing, resized, altered, good) = (&ids[0], &ids[1], &ids[2], &ids[3]);
    // The analysis reads the bytes this test alters: let it finish first, or it may fail on the
    // altered bytes and add a problem of its own.
    for id in &ids {
        settled(&server, &token, id, Duration::from_secs(30));
    }

    server.remove_stored(missing);
    let mut bytes = server.stored_bytes(resized).expect("read");
    bytes.extend_from_slice(b"trailing garbage");
    server.replace_stored(resized, &bytes);
    let mut bytes = server.stored_bytes(altered).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    server.replace_stored(altered, &bytes);
    // On disk the good file keeps its inode too (in an object store there is none).
    let good_file = recording_path(&data, good);
    let good_inode = std::fs::metadata(&good_file).ok().map(|m| m.ino());
    let good_hash = sha256_hex(&server.stored_bytes(good).expect("read"));

    // Files no row refers to, an hour old and just written: no in-flight note names either, so
    // both are unknown (notes, not problems), whatever their age. (Both on disk, whichever store
    // the server uses: the data directory is always checked.)
    let orphan_id = uuid::Uuid::now_v7().hyphenated().to_string();
    let orphan = recording_path(&data, &orphan_id);
    std::fs::create_dir_all(orphan.parent().expect("shard")).expect("mkdir");
    std::fs::write(&orphan, fixture("speech.wav")).expect("write");
    set_age(&orphan, Duration::from_secs(3600));
    let young_id = uuid::Uuid::now_v7().hyphenated().to_string();
    let young = recording_path(&data, &young_id);
    std::fs::create_dir_all(young.parent().expect("shard")).expect("mkdir");
    std::fs::write(&young, fixture("speech.wav")).expect("write");

    let line_for = |out: &str, kind: &str, id: &str| out.lines().any(|l| l.starts_with(kind) && l.contains(id));

    // Without --verify: two problems, the altered bytes are not read; the unknown files are notes.
    let (code, out, err) = command_on(&server, &["check"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(line_for(&out, "missing_file", missing), "{out}");
    assert!(line_for(&out, "size_mismatch", resized), "{out}");
    assert!(line_for(&out, "orphan_file", &orphan_id) && line_for(&out, "orphan_file", &young_id), "{out}");
    assert!(!out.contains(altered.as_str()), "{out}");
    assert!(out.contains("2 problems") && out.contains("2 notes: 2 files without a recording"), "{out}");
    assert!(err.contains("2 problems found"), "{err}");

    // With --verify: the hash mismatch too.
    let (code, out, _) = command_on(&server, &["check", "--verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(line_for(&out, "hash_mismatch", altered), "{out}");
    assert!(out.contains("3 problems"), "{out}");
    assert!(!out.contains(good.as_str()), "{out}");

    // Repair, with the server running: nothing is deleted; unknown files go to lost+found.
    let (code, out, err) = command_on(&server, &["check", "--verify", "--repair"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("repaired 3 of 3"), "{out}");
    for id in [&orphan_id, &young_id] {
        assert!(!recording_path(&data, id).exists(), "{id} left recordings/");
        assert!(data.join("lost+found").join(id).exists(), "{id} is kept in lost+found");
    }
    assert!(server.stored_bytes(resized).is_some() && server.stored_bytes(altered).is_some(), "damaged files are kept");
    assert_eq!(std::fs::metadata(&good_file).ok().map(|m| m.ino()), good_inode, "the good file is untouched");
    assert_eq!(sha256_hex(&server.stored_bytes(good).expect("read")), good_hash);

    // The owner sees the good one in the list and the damaged ones in the trash, marked.
    let listed: Vec<String> =
        all_pages(&server, &token, "/api/v1/recordings").iter().map(|r| r["id"].to_string()).collect();
    assert_eq!(listed, vec![format!("\"{good}\"")]);
    let trash = all_pages(&server, &token, "/api/v1/trash");
    let problem_of = |id: &str| {
        trash.iter().find(|r| r["id"] == id).map(|r| r["problem"].clone()).unwrap_or(Value::String("absent".into()))
    };
    assert_eq!(problem_of(missing), "missing_file");
    assert_eq!(problem_of(resized), "size_mismatch");
    assert_eq!(problem_of(altered), "hash_mismatch");
    assert!(trash.iter().all(|r| r["purge_at"].is_string()), "{trash:?}");
    let good_json = send(server.auth("GET", &format!("/api/v1/recordings/{good}"), &token), None).json();
    assert!(good_json["problem"].is_null(), "{good_json}");
    // A missing file answers 404, not a server error.
    send(server.auth("GET", &format!("/api/v1/recordings/{missing}/audio"), &token), None)
        .assert_error(404, "not_found");

    // Once repaired, the data directory checks clean.
    let (code, out, err) = command_on(&server, &["check", "--verify"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("0 problems") && out.contains("3 recordings are already in their owner's trash"), "{out}");
    assert!(out.contains("2 files in lost+found"), "{out}");

    // A nightly backup after the repair succeeds: the damage it meets is already marked.
    let dest_dir = tempfile::tempdir().expect("tempdir");
    let dest = dest_dir.path().join("backup");
    let (code, out, err) = command_on(&server, &["backup", dest.to_str().expect("utf-8 path")]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("3 recordings already marked damaged"), "{out}");
    assert!(!out.contains("warning"), "{out}");
    assert!(recording_path(&dest, good).exists());
}

#[test]
fn backup_during_20_uploads_is_a_data_directory_with_every_byte_and_runs_incrementally() {
    let server = Server::start();
    let data = server.data();
    let token = server.signup("alice");
    for f in FIXTURES {
        server.upload_id(&token, f, &fixture(f));
    }
    let dest_dir = tempfile::tempdir().expect("tempdir");
    let dest = dest_dir.path().join("backup");

    // 20 uploads in flight (half of each body sent, so each has its temp file), then the backup,
    // with the rest of the bodies sent while it runs.
    let mut uploads: Vec<(std::net::TcpStream, Vec<u8>)> = (0..20)
        .map(|i| {
            let body = fixture(FIXTURES[i % FIXTURES.len()]);
            let mut stream = server.connect();
            write!(
                stream,
                "POST /api/v1/recordings?name=concurrent-{i} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .expect("head");
            stream.write_all(&body[..body.len() / 2]).expect("first half");
            (stream, body)
        })
        .collect();
    eventually("20 uploads in flight", || {
        std::fs::read_dir(data.join("tmp")).map(|d| d.count() == 20).unwrap_or(false)
    });
    let dest_arg = dest.to_str().expect("utf-8 path").to_string();
    let backup = {
        let (data, env, dest_arg) = (data.clone(), server.store_env(), dest_arg.clone());
        std::thread::spawn(move || command_with(&data, &env, &["backup", &dest_arg]))
    };
    for (stream, body) in &mut uploads {
        stream.write_all(&body[body.len() / 2..]).expect("second half");
    }
    for (mut stream, _) in uploads {
        let mut response = String::new();
        let _ = std::io::Read::read_to_string(&mut stream, &mut response);
        assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    }
    let (code, out, err) = backup.join().expect("backup thread");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("copied the database"), "{out}");

    // The backup works as a data directory: every listed recording's bytes hash to its sha256.
    let source_ids: Vec<Value> =
        all_pages(&server, &token, "/api/v1/recordings").iter().map(|r| r["id"].clone()).collect();
    assert_eq!(source_ids.len(), 25);
    let backed_up = {
        let restored = Server::start_with(|c| c.storage.data_dir = dest.clone());
        let token = restored.login("alice");
        let listed = all_pages(&restored, &token, "/api/v1/recordings");
        assert!(listed.len() >= FIXTURES.len(), "the recordings from before the backup are there: {}", listed.len());
        for r in &listed {
            assert!(source_ids.contains(&r["id"]), "{r}");
            let audio = send(
                restored.auth("GET", &format!("/api/v1/recordings/{}/audio", r["id"].as_str().expect("id")), &token),
                None,
            );
            assert_eq!(audio.status, 200);
            assert_eq!(sha256_hex(&audio.body), r["sha256"].as_str().expect("sha256"), "{r}");
        }
        listed.len()
    };
    let (code, out, err) = command(&dest, &["check", "--verify"]);
    assert_eq!(code, 0, "the backup checks clean: {out}{err}");

    // A second run copies only what is new, leaves the files it has alone, and drops what was
    // deleted for good.
    let inodes: Vec<(PathBuf, u64)> = files_under(&dest.join("recordings"))
        .into_iter()
        .map(|p| {
            let ino = std::fs::metadata(&p).expect("meta").ino();
            (p, ino)
        })
        .collect();
    server.upload_id(&token, "after-1.m4a", &fixture("speech.m4a"));
    server.upload_id(&token, "after-2.mp3", &fixture("speech.mp3"));
    let gone = source_ids[source_ids.len() - 1].as_str().expect("id").to_string();
    let r = send(server.auth("DELETE", &format!("/api/v1/recordings/{gone}?permanent=true"), &token), None);
    assert_eq!(r.status, 204);
    let (code, out, err) = command_on(&server, &["backup", &dest_arg]);
    assert_eq!(code, 0, "{out}{err}");
    let expected_new = 25 + 2 - backed_up;
    assert!(out.contains(&format!("copied {expected_new} file")), "{expected_new} new: {out}");
    assert!(out.contains("removed 1 file"), "{out}");
    for (path, ino) in inodes {
        if path.ends_with(&gone) {
            assert!(!path.exists(), "the deleted recording's file left the backup");
        } else {
            assert_eq!(
                std::fs::metadata(&path).expect("still there").ino(),
                ino,
                "{} was not copied again",
                path.display()
            );
        }
    }
    let (code, out, err) = command(&dest, &["check", "--verify"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("checked 26 recordings"), "{out}");
}

#[test]
fn backup_refuses_the_data_directory_and_a_directory_with_other_things_in_it() {
    let server = Server::start();
    let data = server.data();
    let inside = data.join("copy");
    let (code, _, err) = command_on(&server, &["backup", inside.to_str().expect("path")]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("inside the data directory"), "{err}");

    let other = tempfile::tempdir().expect("tempdir");
    std::fs::write(other.path().join("notes.txt"), "mine").expect("write");
    let (code, _, err) = command_on(&server, &["backup", other.path().to_str().expect("path")]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("neither empty nor a recorder data directory"), "{err}");
    assert_eq!(std::fs::read_dir(other.path()).expect("list").count(), 1, "nothing was written there");
}

#[test]
fn check_does_not_repair_an_unmounted_disk_or_a_lost_database_and_refuses_a_directory_without_one() {
    let server = Server::start();
    let data = server.data();
    let token = server.signup("alice");
    let wav = fixture("speech.wav");
    let ids: Vec<String> = (0..12).map(|i| server.upload_id(&token, &format!("m{i}.wav"), &wav)).collect();
    // As if the disk holding recordings/ were not mounted.
    for id in &ids {
        server.remove_stored(id);
    }
    let (code, out, err) = command_on(&server, &["check", "--repair"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("12 problems not repaired: most recordings' files are missing"), "{out}");
    assert_eq!(all_pages(&server, &token, "/api/v1/recordings").len(), 12, "every recording is still listed");
    assert!(all_pages(&server, &token, "/api/v1/trash").is_empty());
    // When they are really gone, --force repairs.
    let (code, out, err) = command_on(&server, &["check", "--repair", "--force"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(all_pages(&server, &token, "/api/v1/trash").len(), 12);

    // Files without rows in an empty database look like a lost database: kept. (No server runs
    // there: its own startup sweep must not race the files made here.)
    let lost_dir = tempfile::tempdir().expect("tempdir");
    let lost = lost_dir.path().join("data");
    let storage = Storage::open(&lost).expect("storage");
    drop(recorder::db::Db::open(&storage.db_path()).expect("an empty database"));
    let kept: Vec<PathBuf> = (0..12)
        .map(|_| {
            let path = recording_path(&lost, &uuid::Uuid::now_v7().hyphenated().to_string());
            std::fs::create_dir_all(path.parent().expect("shard")).expect("mkdir");
            std::fs::write(&path, &wav).expect("write");
            set_age(&path, Duration::from_secs(3600));
            path
        })
        .collect();
    let (code, out, err) = command(&lost, &["check", "--repair"]);
    assert_eq!(code, 0, "notes only: {out}{err}");
    assert!(out.contains("12 problems not repaired"), "{out}");
    assert!(kept.iter().all(|p| p.exists()), "no file was removed or moved");

    // A mistyped data directory is refused, not created and declared clean.
    let nowhere = data.join("no-such-dir");
    let (code, _, err) = command(&nowhere, &["check"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("has no recorder.db"), "{err}");
    assert!(!nowhere.exists(), "nothing was created");
}

#[test]
fn backup_refuses_to_replace_a_backup_with_a_stranger_or_into_a_served_directory() {
    let server = Server::start();
    let token = server.signup("alice");
    for f in FIXTURES {
        server.upload_id(&token, f, &fixture(f));
    }
    let dest_dir = tempfile::tempdir().expect("tempdir");
    let dest = dest_dir.path().join("backup");
    let dest_arg = dest.to_str().expect("utf-8 path").to_string();
    // A second server on a served data directory is refused too.
    let (code, _, err) = command_on(&server, &["serve", "--port", "0", "--address", "127.0.0.1"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("in use by another recorder"), "{err}");
    let (code, out, err) = command_on(&server, &["backup", &dest_arg]);
    assert_eq!(code, 0, "{out}{err}");
    let mode = std::fs::metadata(&dest).expect("dest").mode() & 0o777;
    assert_eq!(mode, 0o700, "the backup is private to its owner");
    let files = files_under(&dest.join("recordings"));
    assert_eq!(files.len(), FIXTURES.len());

    // Another, freshly created data directory (a replaced disk, a wrong --data-dir): refused.
    let stranger = Server::start();
    stranger.signup("mallory");
    let (code, out, err) = command_on(&stranger, &["backup", &dest_arg]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("refusing to replace the backup"), "{err}");
    assert_eq!(files_under(&dest.join("recordings")), files, "the good backup is untouched");
    let restored = Server::start_with(|c| c.storage.data_dir = dest.clone());
    assert_eq!(all_pages(&restored, &restored.login("alice"), "/api/v1/recordings").len(), FIXTURES.len());

    // While a server serves the backup directory, a backup into it is refused.
    let (code, out, err) = command_on(&server, &["backup", &dest_arg]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("in use by another recorder"), "{err}");
    drop(restored);

    // --force replaces it on purpose.
    let (code, out, err) = command_on(&stranger, &["backup", "--force", &dest_arg]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(files_under(&dest.join("recordings")).is_empty());
}

/// `/me`'s usage as (recordings, bytes, trash_recordings, trash_bytes).
fn usage(server: &Server, token: &str) -> (u64, u64, u64, u64) {
    let me = send(server.auth("GET", "/api/v1/me", token), None);
    assert_eq!(me.status, 200, "{}", me.text());
    let u = &me.json()["usage"];
    let n = |k: &str| u[k].as_u64().unwrap_or_else(|| panic!("usage.{k} in {u}"));
    (n("recordings"), n("bytes"), n("trash_recordings"), n("trash_bytes"))
}

#[test]
fn usage_counters_follow_every_change_and_check_recounts_them() {
    let server = Server::start();
    let alice = server.signup("alice");
    let bob = server.signup("bob");
    let sizes: Vec<u64> = FIXTURES[..3].iter().map(|f| fixture(f).len() as u64).collect();
    let ids: Vec<String> = FIXTURES[..3].iter().map(|f| server.upload_id(&alice, f, &fixture(f))).collect();
    server.upload_id(&bob, "b.wav", &fixture("speech.wav"));
    let total: u64 = sizes.iter().sum();
    assert_eq!(usage(&server, &alice), (3, total, 0, 0));

    // Trash, restore, purge from the trash, delete for good: each moves the counters.
    let deleted = send(server.auth("DELETE", &format!("/api/v1/recordings/{}", ids[0]), &alice), None);
    assert_eq!(deleted.status, 204);
    assert_eq!(usage(&server, &alice), (2, total - sizes[0], 1, sizes[0]));
    let restored = send(server.auth("POST", &format!("/api/v1/trash/{}/restore", ids[0]), &alice), None);
    assert_eq!(restored.status, 200);
    assert_eq!(usage(&server, &alice), (3, total, 0, 0));
    assert_eq!(send(server.auth("DELETE", &format!("/api/v1/recordings/{}", ids[1]), &alice), None).status, 204);
    assert_eq!(send(server.auth("DELETE", &format!("/api/v1/trash/{}", ids[1]), &alice), None).status, 204);
    let permanent = send(server.auth("DELETE", &format!("/api/v1/recordings/{}?permanent=true", ids[2]), &alice), None);
    assert_eq!(permanent.status, 204);
    assert_eq!(usage(&server, &alice), (1, sizes[0], 0, 0));
    // Another user's counters never moved.
    assert_eq!(usage(&server, &bob), (1, fixture("speech.wav").len() as u64, 0, 0));

    // A counter knocked off by hand: check reports it, repair recounts from the rows.
    let db = server.db();
    let conn = db.conn().expect("conn");
    let alice_id: String =
        conn.query_row("SELECT id FROM users WHERE username = 'alice'", [], |r| r.get(0)).expect("alice");
    conn.execute("UPDATE usage SET recordings = 7, bytes = 1 WHERE user_id = ?1", [&alice_id]).expect("tamper");
    drop(conn);
    let (code, out, err) = command_on(&server, &["check"]);
    assert_eq!(code, 0, "a counter is a note, not data at risk: {out}{err}");
    assert!(out.lines().any(|l| l.starts_with("usage_mismatch") && l.contains(&alice_id)), "{out}");
    assert!(out.contains("1 usage counter mismatch"), "{out}");
    let (code, out, err) = command_on(&server, &["check", "--repair"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(usage(&server, &alice), (1, sizes[0], 0, 0));
    let (code, out, err) = command_on(&server, &["check"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("usage"), "{out}");

    // Deleting the account takes its counters with it.
    let gone = send_json(server.auth("DELETE", "/api/v1/me", &bob), &json!({"password": "password123"}));
    assert_eq!(gone.status, 204, "{}", gone.text());
    let conn = db.conn().expect("conn");
    let left: i64 = conn.query_row("SELECT count(*) FROM usage", [], |r| r.get(0)).expect("count");
    assert_eq!(left, 1, "only alice's counters are left");
}
