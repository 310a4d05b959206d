//! The web UI's resumable uploads in real headless Chromium: a large file goes through tus and
//! gets over a dropped connection and a reload without starting over. (Takes recorded in the
//! browser: browser_recorder.rs.) Skips (or fails, with `RECORDER_REQUIRE_BROWSER=1`) like the
//! other browser tests.

use crate::support::browser::{Browser, WAIT, assert_accessible, sign_up, sign_up_at};
use crate::support::proxy::Proxy;
use crate::support::{Seen, Server, list, noise_wav, poll_for, send, sha256_hex, wav_file};
use base64::Engine as _;
use serde_json::{Value, json};
use std::time::Duration;

const MIB: u64 = 1 << 20;
/// What the page sends in one PATCH.
const CHUNK: u64 = 8 * MIB;

fn tus_patches(server: &Server) -> Vec<Seen> {
    server.seen().into_iter().filter(|s| s.method == "PATCH" && s.path.starts_with("/api/v1/uploads/")).collect()
}

fn uploads(server: &Server, token: &str) -> Vec<Value> {
    let r = send(server.auth("GET", "/api/v1/uploads", token), None);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["uploads"].as_array().cloned().unwrap_or_default()
}

/// The one recording the user has, once the list shows it; checks its bytes.
fn the_recording(b: &Browser, server: &Server, token: &str, bytes: &[u8]) -> Value {
    let id = b.wait_js(
        "the recording listed",
        "const li = document.querySelectorAll('li[data-test=recording]'); return li.length === 1 && li[0].dataset.id;",
        vec![],
    );
    let stored = list(server, token, "/api/v1/recordings");
    assert_eq!(stored.len(), 1, "one recording: {stored:?}");
    let r = stored[0].clone();
    assert_eq!(Some(&r["id"]), Some(&id), "the listed one");
    assert_eq!(r["size"], json!(bytes.len()), "{r}");
    assert_eq!(r["sha256"], json!(sha256_hex(bytes)), "the bytes arrived whole and in order");
    assert!(uploads(server, token).is_empty(), "no incomplete upload is left");
    r
}

#[test]
fn a_large_file_uploads_resumably_and_gets_over_a_dropped_connection() {
    let Some(b) = Browser::start("resumable upload over a dropped connection") else { return };
    let server = Server::start();
    let proxy = Proxy::start(server.addr());
    sign_up_at(&b, &proxy.base(), "rita");
    let token = server.login("rita");
    let (dir, path, bytes) = wav_file("Long interview.wav", 12 * MIB as usize, 0x5eed);

    // A large file that is not audio is refused at its first bytes, with the server's words.
    let text = dir.path().join("notes.mp3");
    std::fs::write(&text, "not audio at all\n".repeat(400_000)).expect("write the text file");
    b.send_keys("input[data-test=file-input]", &text.display().to_string());
    b.wait_for("[data-test=upload-item] [data-test=upload-error]");
    let shown = b.text("[data-test=upload-item] [data-test=upload-error]");
    assert!(shown.starts_with("that is not a recognised audio file"), "{shown}");
    assert!(uploads(&server, &token).is_empty(), "nothing of it is left");
    assert_eq!(
        b.js("return Object.keys(localStorage).filter(k => k.includes('notes.mp3')).length;", vec![]),
        json!(0),
        "nothing to resume is remembered"
    );
    b.click("[data-test=upload-item] [data-test=upload-cancel]");
    b.wait_gone("[data-test=upload-item]");
    let refused = tus_patches(&server);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].status, 415);
    let start = server.seen().len();

    // Uploads slowed down, so that the connection drops in the middle of a request.
    b.network(false, Some(2 * MIB));
    b.send_keys("input[data-test=file-input]", &path);
    b.wait_for("[data-test=upload-item] progress");

    // The first piece is acknowledged, and the bar shows what the server has.
    let first =
        poll_for("the first PATCH acknowledged", WAIT, || tus_patches(&server).into_iter().find(|s| s.status == 204));
    assert_eq!(first.upload_offset, Some(0));
    assert_ne!(first.path, refused[0].path, "another upload");
    b.wait_js(
        "the bar to show the first piece",
        "return document.querySelector('[data-test=upload-item] progress').value === arguments[0];",
        vec![json!(CHUNK)],
    );
    // The network drops while the second piece is on its way.
    let file = server.data().join("uploads").join(first.path.rsplit('/').next().expect("id"));
    poll_for("bytes of the second piece on the server", WAIT, || {
        (std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0) > CHUNK).then_some(())
    });
    proxy.cut();
    let seen_at_drop = server.seen().len();
    b.wait_js(
        "the row to say the connection is lost",
        "const s = document.querySelector('[data-test=upload-item] [data-test=upload-status]'); \
         return s && s.textContent === 'Connection lost, retrying…';",
        vec![],
    );
    let shown = b.js("return document.querySelector('[data-test=upload-item] progress').value;", vec![]);
    assert_eq!(shown, json!(CHUNK), "the bar keeps what was acknowledged while the network is down");
    b.screenshot(1280, 800, "upload-retrying.png");
    let announced = b.text("[data-test=upload-announcer]");
    assert!(announced.contains("Connection lost, retrying"), "screen readers hear it: {announced:?}");
    // Down for a while: the page keeps trying, and gets nowhere.
    std::thread::sleep(Duration::from_millis(1500));
    proxy.restore();
    b.network(false, None);

    let rec = the_recording(&b, &server, &token, &bytes);
    assert_eq!(rec["name"], "Long interview.wav");
    assert!(rec["content_type"].as_str().is_some_and(|t| t.starts_with("audio/")), "{rec}");

    let patches: Vec<Seen> = tus_patches(&server).into_iter().filter(|s| s.path == first.path).collect();
    let later: Vec<&Seen> = patches.iter().skip_while(|s| s.status != 204).skip(1).collect();
    assert!(
        later.iter().all(|s| s.upload_offset.is_some_and(|o| o >= CHUNK)),
        "nothing was sent again from the start once the first piece was acknowledged: {patches:#?}"
    );
    assert!(
        later.iter().any(|s| s.upload_offset.is_some_and(|o| o > CHUNK)),
        "the upload went on from what the server kept of the cut request: {patches:#?}"
    );
    let sent: u64 = patches.iter().filter_map(|s| s.content_length).sum();
    assert!(sent < bytes.len() as u64 * 3 / 2, "{sent} bytes sent for a {} byte file: {patches:#?}", bytes.len());
    let after_drop = &server.seen()[seen_at_drop..];
    assert!(
        after_drop.iter().any(|s| s.method == "HEAD" && s.path.starts_with("/api/v1/uploads/")),
        "after the drop the page asked the server where it stood: {after_drop:#?}"
    );
    assert!(
        server.seen().iter().all(|s| !(s.method == "POST" && s.path == "/api/v1/recordings")),
        "a large file does not go in one request"
    );
    assert_eq!(server.seen()[start..].iter().filter(|s| s.method == "POST" && s.path == "/api/v1/uploads").count(), 1);
}

#[test]
fn a_reload_mid_upload_lists_it_and_choosing_the_file_again_resumes_it() {
    let Some(b) = Browser::start("resumable upload over a reload") else { return };
    let server = Server::start();
    sign_up(&b, &server, "reza");
    let token = server.login("reza");
    let (_dir, path, bytes) = wav_file("Lecture.wav", 20 * MIB as usize, 0xfeed);

    // Another upload that stopped (from a phone, say) is listed too, and can be discarded.
    let other = noise_wav(6 * MIB as usize, 3);
    let created = send(
        server
            .auth("POST", "/api/v1/uploads", &token)
            .set("Tus-Resumable", "1.0.0")
            .set("Upload-Length", &other.len().to_string())
            .set(
                "Upload-Metadata",
                &format!("filename {}", base64::engine::general_purpose::STANDARD.encode("Phone memo.wav")),
            ),
        None,
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let other_url = created.header("Location").expect("Location").to_string();
    let patched = send(
        server
            .auth("PATCH", &other_url, &token)
            .set("Tus-Resumable", "1.0.0")
            .set("Content-Type", "application/offset+octet-stream")
            .set("Upload-Offset", "0"),
        Some(&other[..3 * MIB as usize]),
    );
    assert_eq!(patched.status, 204, "{}", patched.text());

    b.network(false, Some(4 * MIB));
    b.send_keys("input[data-test=file-input]", &path);
    poll_for("the first PATCH acknowledged", WAIT, || {
        tus_patches(&server).into_iter().find(|s| s.status == 204 && s.path != other_url)
    });
    // Gone mid-transfer: the page is loaded again.
    b.goto(&server.base);
    b.wait_js(
        "both stopped uploads listed",
        "return document.querySelectorAll('[data-test=upload-stopped]').length === 2;",
        vec![],
    );
    b.network(false, None);
    let ours = uploads(&server, &token).into_iter().find(|u| u["name"] == "Lecture.wav").expect("listed");
    let row = format!("[data-test=upload-stopped][data-id=\"{}\"]", ours["id"].as_str().expect("id"));
    let shown =
        b.js(&format!("return document.querySelector('{row} progress').value;"), vec![]).as_u64().expect("value");
    assert!(shown >= CHUNK, "the server kept at least the acknowledged piece: {shown}");
    let pct = shown * 100 / bytes.len() as u64;
    assert_eq!(
        b.text(&format!("{row} [data-test=upload-note]")),
        format!("Upload of Lecture.wav stopped at {pct}% — choose the file again to resume.")
    );
    let kept = ours["offset"].as_u64().expect("offset");
    assert!(kept >= shown, "{ours}");
    assert_accessible(&b, "the list of stopped uploads");
    b.screenshot(1280, 800, "uploads-stopped.png");
    b.screenshot(390, 844, "uploads-stopped-phone.png");
    b.resize(1280, 800);

    // Discarding one asks first, then deletes it on the server.
    let other_id = other_url.rsplit('/').next().expect("id");
    b.click(&format!("[data-test=upload-stopped][data-id=\"{other_id}\"] [data-test=upload-discard]"));
    b.click("dialog[data-test=confirm] [data-test=confirm-ok]");
    b.wait_gone(&format!("[data-test=upload-stopped][data-id=\"{other_id}\"]"));
    assert_eq!(send(server.auth("HEAD", &other_url, &token).set("Tus-Resumable", "1.0.0"), None).status, 404);

    // Choosing the same file again continues from the server's offset.
    let before = server.seen().len();
    b.send_keys("input[data-test=file-input]", &path);
    b.wait_gone("[data-test=upload-stopped]");
    the_recording(&b, &server, &token, &bytes);
    let after: Vec<Seen> = server.seen()[before..]
        .iter()
        .filter(|s| s.method == "PATCH" && s.path.starts_with("/api/v1/uploads/"))
        .cloned()
        .collect();
    assert!(!after.is_empty());
    assert_eq!(after[0].upload_offset, Some(kept), "resumed where the server was: {after:?}");
    let resent: u64 = after.iter().filter_map(|s| s.content_length).sum();
    assert_eq!(resent, bytes.len() as u64 - kept, "only the rest was sent: {after:?}");
    assert_eq!(
        server.seen()[before..].iter().filter(|s| s.method == "POST" && s.path == "/api/v1/uploads").count(),
        0,
        "no new upload was created"
    );
}
