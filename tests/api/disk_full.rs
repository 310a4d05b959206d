//! A data directory on a full disk: every write answers 507 `insufficient_storage` (never 500),
//! nothing is half-written, and the server works again once there is room. Runs on a small
//! tmpfs, which needs root to mount; without it the test says loudly that it skipped, and fails
//! instead when `RECORDER_REQUIRE_TMPFS=1` (as in CI).
//!
//! The recordings stay on that disk too, whatever `RECORDER_TEST_STORE` says: what is tested is
//! the data directory's own file system filling up.

use crate::support::{Server, fixture, send, send_json, skip};
use serde_json::json;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(test: &str, size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("tempdir");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match mounted {
            Ok(out) if out.status.success() => Some(Tmpfs { path: dir.path().to_path_buf(), _dir: dir }),
            other => {
                let why = match other {
                    Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_string(),
                    Err(e) => e.to_string(),
                };
                let why = format!("cannot mount a tmpfs ({why}); run the tests as root to include it");
                skip("RECORDER_REQUIRE_TMPFS", "disk-full", test, &why);
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

/// Writes a file until the disk refuses more.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).expect("create filler");
    let block = vec![0u8; 64 << 10];
    while file.write_all(&block).is_ok() {}
    let _ = file.sync_all();
}

#[test]
fn a_full_disk_answers_507_on_every_write_and_recovers() {
    let Some(disk) = Tmpfs::mount("a_full_disk_answers_507_on_every_write_and_recovers", "16m") else { return };
    let data = disk.path.join("data");
    let server = Server::start_with(|c| {
        c.storage.data_dir = data.clone();
        c.storage.min_free_space = 0;
        c.storage.backend = recorder::storage::store::Backend::Local;
        c.storage.s3 = None;
    });
    let token = server.signup("alice");
    let id = server.upload_id(&token, "before.wav", &fixture("speech.wav"));
    let path = format!("/api/v1/recordings/{id}");

    let filler = disk.path.join("filler");
    fill(&filler);
    send_json(server.auth("PATCH", &path, &token), &json!({"name": "after.wav"}))
        .assert_error(507, "insufficient_storage");
    send_json(server.req("POST", "/api/v1/auth/signup"), &json!({"username": "bob", "password": "password123"}))
        .assert_error(507, "insufficient_storage");
    // A small body: the 507 comes before the body is read, and a large one could still be
    // being sent when the server answers and closes.
    let upload =
        send(server.auth("POST", "/api/v1/recordings?name=x.wav", &token), Some(&fixture("speech.wav")[..2048]));
    upload.assert_error(507, "insufficient_storage");
    let got = send(server.auth("GET", &path, &token), None);
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["name"], "before.wav", "a refused rename changed nothing");

    std::fs::remove_file(&filler).expect("remove filler");
    let renamed = send_json(server.auth("PATCH", &path, &token), &json!({"name": "after.wav"}));
    assert_eq!(renamed.status, 200, "{}", renamed.text());
    assert_eq!(renamed.json()["name"], "after.wav");
    let bob =
        send_json(server.req("POST", "/api/v1/auth/signup"), &json!({"username": "bob", "password": "password123"}));
    assert_eq!(bob.status, 201, "{}", bob.text());
    drop(server);
}
