//! The built binary: the user commands, configuration precedence and exit codes, and crash
//! safety under `kill -9`.

use crate::support::process::{Running, recorder, run, serve, signup};
use crate::support::{eventually, fixture, recording_files, send, send_json, sha256_hex};
use serde_json::json;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[test]
fn user_commands_manage_accounts_on_the_data_dir() {
    let home = tempfile::tempdir().expect("tempdir");
    let data = home.path().join("data");
    let user = |args: &[&str], stdin: &str| {
        let mut cmd = recorder(home.path());
        cmd.arg("user").args(args).arg("--data-dir").arg(&data);
        run(cmd, stdin)
    };
    let (code, out, err) = user(&["add", "Zed", "--password-stdin"], "password123\n");
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(user(&["add", "zed", "--password-stdin"], "password123\n").0, 1, "duplicate is a failure of the work");
    assert_eq!(user(&["add", "no", "--password-stdin"], "password123\n").0, 2, "a bad name is a bad argument");
    assert_eq!(user(&["add", "yolanda", "--password-stdin"], "short\n").0, 2, "a weak password is a bad argument");

    // Works while the server runs, and with signups closed.
    let mut cmd = recorder(home.path());
    cmd.env("RECORDER_ACCOUNTS_SIGNUPS", "closed").arg("--data-dir").arg(&data).arg("--port").arg("0");
    let server = Running::start(cmd);
    let login =
        |pw: &str| send_json(server.req("POST", "/api/v1/auth/login"), &json!({"username": "zed", "password": pw}));
    assert_eq!(login("password123").status, 200);
    let (code, out, _) = user(&["list"], "");
    assert_eq!(code, 0);
    assert!(out.contains("zed"), "{out}");
    let token = login("password123").json()["token"].as_str().expect("token").to_string();
    let up = send(server.auth("POST", "/api/v1/recordings?name=a.wav", &token), Some(&fixture("speech.wav")));
    assert_eq!(up.status, 201);
    assert_eq!(user(&["passwd", "zed", "--password-stdin"], "password456\n").0, 0);
    let me = send(server.auth("GET", "/api/v1/me", &token), None);
    assert_eq!(me.status, 401, "passwd revokes sessions");
    assert_eq!(login("password456").status, 200);
    assert_eq!(user(&["remove", "zed"], "").0, 0);
    assert_eq!(login("password456").status, 401);
    assert_eq!(recording_files(&data).len(), 0);
    assert_eq!(user(&["remove", "zed"], "").0, 1);
}

#[test]
fn config_precedence_is_defaults_file_env_flags() {
    let home = tempfile::tempdir().expect("tempdir");
    let file = home.path().join("custom.toml");
    std::fs::write(&file, "[storage]\nmax_upload_size = \"1 MiB\"\n[trash]\nretention_days = 7\n").expect("config");
    let info = |env: &[(&str, &str)]| {
        let mut cmd = recorder(home.path());
        cmd.arg("--config").arg(&file).arg("--data-dir").arg(home.path().join("d")).arg("--port").arg("0");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let server = Running::start(cmd);
        send(server.req("GET", "/api/v1/server"), None).json()
    };
    let from_file = info(&[]);
    assert_eq!(from_file["max_upload_size"], 1 << 20);
    assert_eq!(from_file["trash_retention_days"], 7);
    let from_env = info(&[("RECORDER_STORAGE_MAX_UPLOAD_SIZE", "2 MiB")]);
    assert_eq!(from_env["max_upload_size"], 2 << 20);
    assert_eq!(from_env["trash_retention_days"], 7);

    // A flag beats the environment: --data-dir wins over RECORDER_STORAGE_DATA_DIR.
    let mut cmd = recorder(home.path());
    cmd.env("RECORDER_STORAGE_DATA_DIR", home.path().join("env-dir"))
        .arg("--data-dir")
        .arg(home.path().join("flag-dir"))
        .arg("--port")
        .arg("0");
    let server = Running::start(cmd);
    assert_eq!(send(server.req("GET", "/healthz"), None).status, 200);
    assert!(home.path().join("flag-dir/recorder.db").exists());
    assert!(!home.path().join("env-dir").exists());
    // ./recorder.toml is read when present.
    std::fs::write(home.path().join("recorder.toml"), "[trash]\nretention_days = 3\n").expect("local config");
    let mut cmd = recorder(home.path());
    cmd.arg("--data-dir").arg(home.path().join("d")).arg("--port").arg("0");
    let local = Running::start(cmd);
    assert_eq!(send(local.req("GET", "/api/v1/server"), None).json()["trash_retention_days"], 3);
}

#[test]
fn bad_configuration_exits_2_naming_the_key() {
    let home = tempfile::tempdir().expect("tempdir");
    let check = |file_text: Option<&str>, env: &[(&str, &str)], args: &[&str], needle: &str| {
        let mut cmd = recorder(home.path());
        if let Some(text) = file_text {
            let path = home.path().join("bad.toml");
            std::fs::write(&path, text).expect("write");
            cmd.arg("--config").arg(path);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.args(args).arg("--data-dir").arg(home.path().join("d"));
        let (code, _, err) = run(cmd, "");
        assert_eq!(code, 2, "{needle}: {err}");
        assert!(err.contains(needle), "stderr should name {needle}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");
    };
    check(Some("[server]\nprot = 8080\n"), &[], &[], "server.prot");
    check(Some("[storage]\nmax_upload_size = \"lots\"\n"), &[], &[], "storage.max_upload_size");
    check(Some("not toml at all ["), &[], &[], "bad.toml");
    check(None, &[("RECORDER_SERVER_PORT", "eighty")], &[], "server.port");
    check(None, &[("RECORDER_ACCOUNTS_SIGNUPS", "maybe")], &[], "RECORDER_ACCOUNTS_SIGNUPS");
    check(None, &[], &["--port", "70000"], "--port");
    check(None, &[("RECORDER_CONFIG", "/nonexistent/recorder.toml")], &[], "/nonexistent/recorder.toml");
    let mut cmd = recorder(home.path());
    cmd.arg("--no-such-flag");
    assert_eq!(run(cmd, "").0, 2);
}

#[test]
fn kill_9_mid_upload_leaves_no_row_file_or_temp_file() {
    let home = tempfile::tempdir().expect("tempdir");
    let data = home.path().join("data");
    let server = serve(home.path(), &data);
    let token = signup(&server, "kim");
    let addr = server.host().to_string();
    let mut stream = std::net::TcpStream::connect(&addr).expect("connect");
    let wav = fixture("speech.wav");
    let total = 64 << 20;
    write!(stream, "POST /api/v1/recordings?name=big.wav HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: {total}\r\n\r\n").expect("head");
    stream.write_all(&wav).expect("start");
    for _ in 0..64 {
        stream.write_all(&vec![0u8; 256 * 1024]).expect("body");
    }
    let tmp = data.join("tmp");
    eventually("upload in flight", || std::fs::read_dir(&tmp).map(|d| d.count() > 0).unwrap_or(false));
    server.kill9();
    drop(stream);
    assert!(std::fs::read_dir(&tmp).expect("tmp").count() > 0, "the crash left a partial upload to clean");

    let list = listed(home.path(), &data, &token);
    assert_eq!(std::fs::read_dir(&tmp).expect("tmp").count(), 0, "startup empties tmp/");
    assert_eq!(list["recordings"], json!([]));
    assert_eq!(recording_files(&data).len(), 0);
}

#[test]
fn kill_9_right_after_201_keeps_the_recording() {
    let home = tempfile::tempdir().expect("tempdir");
    let data = home.path().join("data");
    let server = serve(home.path(), &data);
    let token = signup(&server, "lee");
    let m4a = fixture("speech.m4a");
    let up = send(server.auth("POST", "/api/v1/recordings?name=keep.m4a", &token), Some(&m4a));
    assert_eq!(up.status, 201);
    let id = up.json()["id"].as_str().expect("id").to_string();
    server.kill9();

    let server = serve(home.path(), &data);
    let list = send(server.auth("GET", "/api/v1/recordings", &token), None).json();
    assert_eq!(list["recordings"][0]["id"], id);
    let audio = send(server.auth("GET", &format!("/api/v1/recordings/{id}/audio"), &token), None);
    assert_eq!(sha256_hex(&audio.body), list["recordings"][0]["sha256"].as_str().expect("sha"));
    assert_eq!(sha256_hex(&audio.body), sha256_hex(&m4a));
}

/// A server with this shutdown grace (seconds) and an upload of `total` bytes in flight: `first`
/// is sent and its temp file exists.
fn upload_in_flight(
    home: &Path,
    data: &Path,
    grace: &str,
    name: &str,
    first: &[u8],
    total: usize,
) -> (Running, String, std::net::TcpStream) {
    let mut cmd = recorder(home);
    cmd.env("RECORDER_SERVER_SHUTDOWN_GRACE", grace).arg("--data-dir").arg(data).arg("--port").arg("0");
    let server = Running::start(cmd);
    let token = signup(&server, "nina");
    let mut stream = server.connect();
    write!(
        stream,
        "POST /api/v1/recordings?name={name} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n"
    )
    .expect("head");
    stream.write_all(first).expect("first part of the body");
    eventually("upload in flight", || std::fs::read_dir(data.join("tmp")).map(|d| d.count() > 0).unwrap_or(false));
    (server, token, stream)
}

fn sigterm(server: &Running) -> std::time::Instant {
    let killed = Command::new("kill").arg("-TERM").arg(server.child.id().to_string()).status().expect("kill");
    assert!(killed.success());
    std::time::Instant::now()
}

/// The token's list, from a server started afresh on the data directory.
fn listed(home: &Path, data: &Path, token: &str) -> serde_json::Value {
    let server = serve(home, data);
    send(server.auth("GET", "/api/v1/recordings", token), None).json()
}

#[test]
fn sigterm_during_an_upload_lets_it_finish_and_exits_0() {
    let home = tempfile::tempdir().expect("tempdir");
    let data = home.path().join("data");
    let wav = fixture("speech.wav");
    let (mut server, token, mut stream) =
        upload_in_flight(home.path(), &data, "10", "late.wav", &wav[..wav.len() / 2], wav.len());
    let started = sigterm(&server);
    stream.write_all(&wav[wav.len() / 2..]).expect("second half");
    let mut response = String::new();
    let _ = std::io::Read::read_to_string(&mut stream, &mut response);
    let status = server.child.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "graceful exit");
    assert!(started.elapsed() < Duration::from_secs(16), "within grace + mercy");
    assert!(response.starts_with("HTTP/1.1 201"), "the in-flight upload finished: {response}");

    let list = listed(home.path(), &data, &token);
    assert_eq!(list["recordings"][0]["name"], "late.wav");
    assert_eq!(list["recordings"][0]["sha256"], sha256_hex(&wav));
}

#[test]
fn sigterm_with_an_upload_past_the_grace_period_exits_0_and_leaves_nothing() {
    let home = tempfile::tempdir().expect("tempdir");
    let data = home.path().join("data");
    let wav = fixture("speech.wav");
    let (mut server, token, stream) = upload_in_flight(home.path(), &data, "1", "never.wav", &wav, wav.len() * 4);
    let started = sigterm(&server);
    // The client never sends the rest: the deadline (1 s grace + 5 s mercy) cuts it off.
    let status = server.child.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "graceful exit");
    assert!(started.elapsed() < Duration::from_secs(10), "within grace + mercy: {:?}", started.elapsed());
    drop(stream);
    let left: Vec<_> = std::fs::read_dir(data.join("tmp")).expect("tmp").flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "the cut-off upload's temp file is gone: {left:?}");

    assert_eq!(listed(home.path(), &data, &token)["recordings"], json!([]));
    assert_eq!(recording_files(&data).len(), 0);
}

#[test]
fn no_log_line_carries_a_token_or_a_password() {
    let home = tempfile::tempdir().expect("tempdir");
    let server = serve(home.path(), &home.path().join("data"));
    let password = "correct horse battery";
    let body = json!({"username": "olga", "password": password});
    let token = send_json(server.req("POST", "/api/v1/auth/signup"), &body).json()["token"]
        .as_str()
        .expect("token")
        .to_string();
    let login =
        send_json(server.req("POST", "/api/v1/auth/login"), &body).json()["token"].as_str().expect("token").to_string();
    send(server.auth("POST", "/api/v1/recordings?name=a.wav", &token), Some(&fixture("speech.wav")));
    send(server.req("GET", "/record/list").set("Authorization", &format!("olga {login}")), None);
    send_json(server.req("POST", "/api/v1/auth/login"), &json!({"username": "olga", "password": "wrong wrong"}));
    send(server.req("GET", "/api/v1/me").set("Cookie", &format!("recorder_session={token}")), None);
    eventually("request lines logged", || server.log().iter().filter(|l| l.contains("/api/v1/me")).count() > 0);
    let log = server.log().join("\n");
    assert!(log.contains("POST /api/v1/recordings 201"), "requests are logged: {log}");
    for secret in [token.as_str(), login.as_str(), password, "wrong wrong"] {
        assert!(!log.contains(secret), "the log leaks {secret}: {log}");
    }
}
