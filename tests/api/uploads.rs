//! Resumable uploads: tus 1.0.0 and the IETF draft over real HTTP, their bad input, and their
//! faults (hang-ups, takeovers, races, retries, expiry, `kill -9`).

use crate::support::process::{Running, serve, signup};
use crate::support::{Resp, Server, eventually, noise_wav, send, send_json, sha256_hex};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn b64(text: &str) -> String {
    STANDARD.encode(text)
}

/// A tus request.
fn tus(s: &Server, method: &str, path: &str, token: &str) -> ureq::Request {
    s.auth(method, path, token).set("Tus-Resumable", "1.0.0")
}

/// Creates a tus upload; returns its path.
fn create(s: &Server, token: &str, length: Option<usize>, metadata: &str) -> String {
    let mut req = tus(s, "POST", "/api/v1/uploads", token);
    req = match length {
        Some(n) => req.set("Upload-Length", &n.to_string()),
        None => req.set("Upload-Defer-Length", "1"),
    };
    if !metadata.is_empty() {
        req = req.set("Upload-Metadata", metadata);
    }
    let r = send(req, None);
    assert_eq!(r.status, 201, "create: {}", r.text());
    assert_eq!(r.header("Tus-Resumable"), Some("1.0.0"));
    assert_eq!(r.header("Upload-Offset"), Some("0"));
    assert!(r.header("Upload-Expires").is_some_and(|e| e.ends_with("GMT")), "{:?}", r.headers);
    let location = r.header("Location").expect("Location").to_string();
    assert!(location.starts_with("/api/v1/uploads/"), "{location}");
    location
}

fn patch(s: &Server, token: &str, path: &str, offset: usize, bytes: &[u8]) -> Resp {
    let req = tus(s, "PATCH", path, token)
        .set("Content-Type", "application/offset+octet-stream")
        .set("Upload-Offset", &offset.to_string());
    send(req, Some(bytes))
}

fn head(s: &Server, token: &str, path: &str) -> Resp {
    send(tus(s, "HEAD", path, token), None)
}

fn offset(r: &Resp) -> u64 {
    r.header("Upload-Offset")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Upload-Offset: {:?}", r.headers))
}

fn recordings(s: &Server, token: &str) -> Vec<Value> {
    let list = send(s.auth("GET", "/api/v1/recordings", token), None).json();
    list["recordings"].as_array().expect("recordings").clone()
}

fn audio(s: &Server, token: &str, id: &str) -> Vec<u8> {
    let r = send(s.auth("GET", &format!("/api/v1/recordings/{id}/audio"), token), None);
    assert_eq!(r.status, 200);
    r.body
}

fn upload_files(s: &Server) -> Vec<String> {
    std::fs::read_dir(s.data().join("uploads"))
        .expect("uploads/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
        .collect()
}

fn json_of(s: &Server, token: &str, path: &str) -> Value {
    let r = send(s.auth("GET", path, token), None);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

#[test]
fn tus_options_announce_version_extensions_limits_and_checksums() {
    let s = Server::start();
    let r = send(s.req("OPTIONS", "/api/v1/uploads"), None);
    assert_eq!(r.status, 204);
    assert_eq!(r.header("Tus-Resumable"), Some("1.0.0"));
    assert_eq!(r.header("Tus-Version"), Some("1.0.0"));
    let extensions = r.header("Tus-Extension").expect("extensions");
    for ext in ["creation", "creation-with-upload", "creation-defer-length", "termination", "expiration", "checksum"] {
        assert!(extensions.split(',').any(|e| e == ext), "{ext} in {extensions}");
    }
    assert_eq!(r.header("Tus-Max-Size"), Some("1073741824"));
    assert_eq!(r.header("Tus-Checksum-Algorithm"), Some("sha1,sha256"));
}

#[test]
fn tus_upload_in_pieces_becomes_one_recording_with_the_right_bytes() {
    let s = Server::start();
    let token = s.signup("tina");
    let bytes = noise_wav(700_000, 1);
    let meta = format!("filename {},filetype {}", b64("interview.wav"), b64("text/plain"));
    let path = create(&s, &token, Some(bytes.len()), &meta);

    let h = head(&s, &token, &path);
    assert_eq!((h.status, offset(&h)), (200, 0));
    assert_eq!(h.header("Upload-Length"), Some("700000"));
    assert_eq!(h.header("Cache-Control"), Some("no-store"));
    assert_eq!(h.header("Tus-Resumable"), Some("1.0.0"));

    // Listed while incomplete, counted in usage, not a recording yet.
    let r = patch(&s, &token, &path, 0, &bytes[..300_000]);
    assert_eq!((r.status, offset(&r)), (204, 300_000), "{}", r.text());
    assert!(r.header("Recording-Id").is_none());
    let listed = json_of(&s, &token, "/api/v1/uploads");
    assert_eq!(listed["uploads"][0]["offset"], 300_000);
    assert_eq!(listed["uploads"][0]["length"], 700_000);
    assert_eq!(listed["uploads"][0]["name"], "interview.wav");
    assert!(listed["uploads"][0]["recording"].is_null());
    assert_eq!(listed["uploads"][0]["keep_partial"], false);
    let usage = json_of(&s, &token, "/api/v1/me")["usage"].clone();
    assert_eq!((usage["uploads"].as_u64(), usage["upload_bytes"].as_u64()), (Some(1), Some(300_000)));
    assert!(recordings(&s, &token).is_empty());

    let r = patch(&s, &token, &path, 300_000, &bytes[300_000..650_000]);
    assert_eq!(offset(&r), 650_000);
    let r = patch(&s, &token, &path, 650_000, &bytes[650_000..]);
    assert_eq!((r.status, offset(&r)), (204, 700_000));
    let id = r.header("Recording-Id").expect("the completing answer names the recording").to_string();

    let list = recordings(&s, &token);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["name"], "interview.wav");
    assert_eq!(list[0]["content_type"], "audio/wav", "the type comes from the bytes, not filetype");
    assert_eq!(list[0]["size"], 700_000);
    assert_eq!(list[0]["sha256"], sha256_hex(&bytes).as_str());
    assert_eq!(audio(&s, &token, &id), bytes);

    let done = json_of(&s, &token, &path);
    assert_eq!(done["recording"]["id"], id.as_str());
    assert_eq!(done["offset"], 700_000);
    assert_eq!(json_of(&s, &token, "/api/v1/uploads")["uploads"], serde_json::json!([]));
    assert_eq!(json_of(&s, &token, "/api/v1/me")["usage"]["upload_bytes"], 0);
    assert!(upload_files(&s).is_empty(), "the upload's own file is gone: {:?}", upload_files(&s));
}

#[test]
fn creation_with_upload_and_deferred_length_complete_too() {
    let s = Server::start();
    let token = s.signup("cora");
    let bytes = noise_wav(50_000, 2);

    // creation-with-upload: the whole file in the POST.
    let req = tus(&s, "POST", "/api/v1/uploads", &token)
        .set("Upload-Length", &bytes.len().to_string())
        .set("Content-Type", "application/offset+octet-stream")
        .set("Upload-Metadata", &format!("name {}", b64("whole.wav")));
    let r = send(req, Some(&bytes));
    assert_eq!((r.status, offset(&r)), (201, 50_000), "{}", r.text());
    assert!(r.header("Location").is_some());
    let first = r.header("Recording-Id").expect("complete at once").to_string();

    // creation-defer-length: the length comes with the last PATCH.
    let path = create(&s, &token, None, &format!("filename {}", b64("later.wav")));
    assert_eq!(head(&s, &token, &path).header("Upload-Defer-Length"), Some("1"));
    assert_eq!(offset(&patch(&s, &token, &path, 0, &bytes[..20_000])), 20_000);
    let last = tus(&s, "PATCH", &path, &token)
        .set("Content-Type", "application/offset+octet-stream")
        .set("Upload-Offset", "20000")
        .set("Upload-Length", &bytes.len().to_string());
    let r = send(last, Some(&bytes[20_000..]));
    assert_eq!((r.status, offset(&r)), (204, 50_000), "{}", r.text());
    let second = r.header("Recording-Id").expect("complete").to_string();
    assert_ne!(first, second);
    let list = recordings(&s, &token);
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|r| r["sha256"] == sha256_hex(&bytes).as_str()));
    assert_eq!(list[0]["name"], "later.wav");
}

#[test]
fn wrong_offsets_lengths_versions_and_owners_are_refused() {
    let s = Server::start_with(|c| c.storage.max_upload_size = 1 << 20);
    let token = s.signup("olga");
    let other = s.signup("otto");
    let bytes = noise_wav(100_000, 3);
    let path = create(&s, &token, Some(bytes.len()), "");
    assert_eq!(offset(&patch(&s, &token, &path, 0, &bytes[..10_000])), 10_000);

    // Out of order: 409 with the right offset; nothing changes.
    let r = patch(&s, &token, &path, 5_000, &bytes[5_000..20_000]);
    r.assert_error(409, "conflict");
    assert_eq!(offset(&r), 10_000);
    let r = patch(&s, &token, &path, 30_000, &bytes[30_000..40_000]);
    assert_eq!((r.status, offset(&r)), (409, 10_000));

    // Past Upload-Length: refused, the offset stays.
    let mut long = bytes[10_000..].to_vec();
    long.extend_from_slice(&[0u8; 500]);
    patch(&s, &token, &path, 10_000, &long).assert_error(413, "payload_too_large");
    assert_eq!(offset(&head(&s, &token, &path)), 10_000);
    // A length that contradicts the one given at creation.
    let r = send(
        tus(&s, "PATCH", &path, &token)
            .set("Content-Type", "application/offset+octet-stream")
            .set("Upload-Offset", "10000")
            .set("Upload-Length", "99"),
        Some(b"x"),
    );
    r.assert_error(400, "bad_request");
    // The wrong content type for tus.
    let r = send(
        tus(&s, "PATCH", &path, &token).set("Content-Type", "application/octet-stream").set("Upload-Offset", "10000"),
        Some(b"x"),
    );
    r.assert_error(415, "unsupported_media_type");

    // Another tus version: 412 with the one spoken.
    let r = send(s.auth("HEAD", &path, &token).set("Tus-Resumable", "0.2.2"), None);
    assert_eq!(r.status, 412);
    assert_eq!(r.header("Tus-Version"), Some("1.0.0"));
    let r =
        send(s.auth("POST", "/api/v1/uploads", &token).set("Tus-Resumable", "2.0.0").set("Upload-Length", "5"), None);
    r.assert_error(412, "precondition_failed");

    // Unknown, malformed and someone else's upload: 404 on every method.
    let unknown = "/api/v1/uploads/01935c4e-0000-7000-8000-0000000000ab";
    for p in [unknown, "/api/v1/uploads/nope", path.as_str()] {
        let who = if p == path { &other } else { &token };
        assert_eq!(head(&s, who, p).status, 404, "{p}");
        patch(&s, who, p, 10_000, b"RIFF").assert_error(404, "not_found");
        send(tus(&s, "DELETE", p, who), None).assert_error(404, "not_found");
        send(s.auth("GET", p, who), None).assert_error(404, "not_found");
    }
    assert_eq!(offset(&head(&s, &token, &path)), 10_000, "the owner's upload is untouched");
    assert_eq!(send(s.req("HEAD", &path).set("Tus-Resumable", "1.0.0"), None).status, 401);

    // Over the size limit at creation: 413 before any byte.
    let r = send(tus(&s, "POST", "/api/v1/uploads", &token).set("Upload-Length", &(2 << 20).to_string()), None);
    r.assert_error(413, "payload_too_large");
    // Neither length nor deferral.
    send(tus(&s, "POST", "/api/v1/uploads", &token), None).assert_error(400, "bad_request");
    // Deferred length growing past the limit while streaming.
    let deferred = create(&s, &token, None, "");
    patch(&s, &token, &deferred, 0, &noise_wav((1 << 20) + 10, 4)).assert_error(413, "payload_too_large");
    assert_eq!(offset(&head(&s, &token, &deferred)), 0);
}

#[test]
fn upload_length_over_the_free_space_is_507_at_creation() {
    let s = Server::start_with(|c| c.storage.min_free_space = u64::MAX / 2);
    let token = s.signup("fred");
    let r = send(tus(&s, "POST", "/api/v1/uploads", &token).set("Upload-Length", "1000"), None);
    r.assert_error(507, "insufficient_storage");
    assert!(upload_files(&s).is_empty());
}

#[test]
fn checksums_verify_each_request_and_a_mismatch_drops_its_bytes() {
    let s = Server::start();
    let token = s.signup("carl");
    let bytes = noise_wav(90_000, 5);
    let path = create(&s, &token, Some(bytes.len()), "");
    let with_checksum = |offset: usize, part: &[u8], checksum: String| {
        let req = tus(&s, "PATCH", &path, &token)
            .set("Content-Type", "application/offset+octet-stream")
            .set("Upload-Offset", &offset.to_string())
            .set("Upload-Checksum", &checksum);
        send(req, Some(part))
    };
    use sha1::Digest as _;
    let sha1 = |b: &[u8]| format!("sha1 {}", STANDARD.encode(sha1::Sha1::digest(b)));
    let sha256 = |b: &[u8]| format!("sha256 {}", STANDARD.encode(sha2::Sha256::digest(b)));

    let r = with_checksum(0, &bytes[..30_000], sha1(&bytes[..30_000]));
    assert_eq!((r.status, offset(&r)), (204, 30_000), "{}", r.text());
    // Bytes that do not match their checksum are dropped: the offset stays, the file too.
    let r = with_checksum(30_000, &bytes[30_000..60_000], sha256(&bytes[..30_000]));
    r.assert_error(460, "checksum_mismatch");
    assert_eq!(offset(&head(&s, &token, &path)), 30_000);
    let file = s.data().join("uploads").join(path.rsplit('/').next().expect("id"));
    assert_eq!(std::fs::metadata(&file).expect("file").len(), 30_000);
    with_checksum(30_000, b"abc", "md5 AAAA".into()).assert_error(400, "bad_request");

    let r = with_checksum(30_000, &bytes[30_000..], sha256(&bytes[30_000..]));
    assert_eq!((r.status, offset(&r)), (204, 90_000));
    let id = r.header("Recording-Id").expect("complete");
    assert_eq!(audio(&s, &token, id), bytes);
}

#[test]
fn a_non_audio_upload_is_refused_at_its_first_bytes_and_leaves_nothing() {
    let s = Server::start();
    let token = s.signup("nora");
    let path = create(&s, &token, Some(10 << 20), &format!("filename {}", b64("notes.txt")));
    let text = b"Dear diary, this is plainly not a sound file at all, and it goes on and on. ".repeat(200);
    patch(&s, &token, &path, 0, &text).assert_error(415, "unsupported_media_type");
    assert_eq!(head(&s, &token, &path).status, 404, "the upload is gone");
    assert!(upload_files(&s).is_empty());
    assert!(recordings(&s, &token).is_empty());
    assert_eq!(json_of(&s, &token, "/api/v1/me")["usage"]["uploads"], 0);
}

#[test]
fn termination_removes_the_bytes_and_expiry_makes_an_upload_404() {
    let s = Server::start();
    let token = s.signup("tess");
    let bytes = noise_wav(20_000, 6);
    let path = create(&s, &token, Some(bytes.len()), "");
    patch(&s, &token, &path, 0, &bytes[..5_000]);
    let r = send(tus(&s, "DELETE", &path, &token), None);
    assert_eq!(r.status, 204);
    assert_eq!(r.header("Tus-Resumable"), Some("1.0.0"));
    assert_eq!(head(&s, &token, &path).status, 404);
    assert!(upload_files(&s).is_empty());

    let path = create(&s, &token, Some(bytes.len()), "");
    patch(&s, &token, &path, 0, &bytes[..5_000]);
    let expires = head(&s, &token, &path).header("Upload-Expires").expect("expires").to_string();
    s.clock.advance(23 * 3_600_000);
    // A byte resets the clock: 24 hours after the last byte.
    assert_eq!(offset(&patch(&s, &token, &path, 5_000, &bytes[5_000..6_000])), 6_000);
    assert_ne!(head(&s, &token, &path).header("Upload-Expires").expect("expires"), expires);
    s.clock.advance(23 * 3_600_000);
    assert_eq!(head(&s, &token, &path).status, 200);
    s.clock.advance(2 * 3_600_000);
    assert_eq!(head(&s, &token, &path).status, 404);
    patch(&s, &token, &path, 6_000, &bytes[6_000..]).assert_error(404, "not_found");
    assert_eq!(json_of(&s, &token, "/api/v1/uploads")["uploads"], serde_json::json!([]));

    // The sweep removes its bytes.
    let storage = s.storage();
    let swept = recorder::maintenance::sweep(&s.db(), &storage, &Default::default(), s.clock.now_ms()).expect("sweep");
    assert_eq!(swept.uploads.expired, 1);
    assert!(upload_files(&s).is_empty());
}

#[test]
fn keep_partial_uploads_become_recordings_when_they_expire() {
    let s = Server::start();
    let token = s.signup("kate");
    let bytes = noise_wav(400_000, 7);
    let meta = format!("filename {},keep_partial", b64("lecture.wav"));
    let kept = create(&s, &token, None, &meta);
    patch(&s, &token, &kept, 0, &bytes[..150_000]);
    let dropped = create(&s, &token, None, "");
    patch(&s, &token, &dropped, 0, &bytes[..150_000]);
    assert_eq!(json_of(&s, &token, &kept)["keep_partial"], true);
    assert_eq!(json_of(&s, &token, &dropped)["keep_partial"], false);

    s.clock.advance(25 * 3_600_000);
    let storage = s.storage();
    let swept = recorder::maintenance::sweep(&s.db(), &storage, &Default::default(), s.clock.now_ms()).expect("sweep");
    assert_eq!((swept.uploads.kept, swept.uploads.expired), (1, 1));
    let list = recordings(&s, &token);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["name"], "lecture.wav");
    assert_eq!(list[0]["size"], 150_000);
    assert_eq!(list[0]["sha256"], sha256_hex(&bytes[..150_000]).as_str());
    assert!(upload_files(&s).is_empty());
}

#[test]
fn a_per_user_cap_on_incomplete_uploads_answers_429() {
    let s = Server::start_with(|c| c.uploads.max_incomplete = 2);
    let token = s.signup("cap");
    let other = s.signup("cop");
    let first = create(&s, &token, Some(100), "");
    create(&s, &token, None, "");
    let r = send(tus(&s, "POST", "/api/v1/uploads", &token).set("Upload-Length", "100"), None);
    r.assert_error(429, "too_many_requests");
    create(&s, &other, Some(100), "");
    // Finishing (or deleting) one frees a place.
    assert_eq!(send(tus(&s, "DELETE", &first, &token), None).status, 204);
    create(&s, &token, Some(100), "");
}

/// Sends a PATCH's head and `sent` bytes of a `total`-byte body over a raw connection.
fn open_patch(s: &Server, token: &str, path: &str, offset: usize, total: usize, body: &[u8]) -> TcpStream {
    let mut stream = s.connect();
    write!(
        stream,
        "PATCH {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nTus-Resumable: 1.0.0\r\n\
         Content-Type: application/offset+octet-stream\r\nUpload-Offset: {offset}\r\nContent-Length: {total}\r\n\r\n"
    )
    .expect("head");
    stream.write_all(body).expect("body");
    stream
}

fn file_len(s: &Server, path: &str) -> u64 {
    let file = s.data().join("uploads").join(path.rsplit('/').next().expect("id"));
    std::fs::metadata(file).map(|m| m.len()).unwrap_or(0)
}

#[test]
fn a_client_that_hangs_up_mid_patch_keeps_and_counts_what_arrived() {
    let s = Server::start();
    let token = s.signup("hank");
    let bytes = noise_wav(2_000_000, 8);
    let path = create(&s, &token, Some(bytes.len()), "");
    let stream = open_patch(&s, &token, &path, 0, bytes.len(), &bytes[..700_000]);
    eventually("the server wrote what arrived", || file_len(&s, &path) >= 600_000);
    drop(stream);
    eventually("the hang-up is noticed and its bytes kept", || {
        json_of(&s, &token, &path)["offset"].as_u64() == Some(700_000)
    });
    assert_eq!(json_of(&s, &token, "/api/v1/me")["usage"]["upload_bytes"], 700_000);
    let r = patch(&s, &token, &path, 700_000, &bytes[700_000..]);
    let id = r.header("Recording-Id").expect("complete");
    assert_eq!(audio(&s, &token, id), bytes);
}

#[test]
fn a_newer_request_takes_over_from_a_hanging_patch() {
    let s = Server::start();
    let token = s.signup("tom");
    let bytes = noise_wav(1_000_000, 9);
    let path = create(&s, &token, Some(bytes.len()), "");
    // A PATCH that sent part of its body, then hangs (the phone changed networks).
    let mut hanging = open_patch(&s, &token, &path, 0, bytes.len(), &bytes[..400_000]);
    eventually("the hanging PATCH wrote some bytes", || file_len(&s, &path) >= 256 * 1024);

    // The phone's new connection asks where it stands: answered at once, from what the old
    // request durably kept.
    let started = Instant::now();
    let h = head(&s, &token, &path);
    assert_eq!(h.status, 200);
    assert!(started.elapsed() < Duration::from_secs(5), "HEAD waited {:?}", started.elapsed());
    let kept = offset(&h);
    assert!((256 * 1024..=400_000).contains(&kept), "kept {kept}");
    assert_eq!(file_len(&s, &path), kept);

    // The old request was stopped and answered with what it kept.
    hanging.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut answer = [0u8; 1024];
    let n = hanging.read(&mut answer).expect("the old request is answered");
    let answer = String::from_utf8_lossy(&answer[..n]).to_string();
    assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains(&format!("upload-offset: {kept}")), "{answer}");

    let r = patch(&s, &token, &path, kept as usize, &bytes[kept as usize..]);
    assert_eq!((r.status, offset(&r)), (204, 1_000_000));
    assert_eq!(audio(&s, &token, r.header("Recording-Id").expect("complete")), bytes);
}

#[test]
fn racing_patches_and_retried_completions_make_exactly_one_recording() {
    let s = Server::start();
    let token = s.signup("rita");
    // Past the 16 MiB at which a long PATCH commits its offset.
    let bytes = noise_wav(20_000_000, 10);
    let path = create(&s, &token, Some(bytes.len()), "");

    // Two PATCHes of the whole body from offset 0, the second while the first is still sending:
    // never both written. As documented, the later one stops the earlier, which keeps what it
    // received, and gets 409 with the offset the earlier one reached.
    let mut earlier = s.connect();
    let head_lines = format!(
        "PATCH {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nTus-Resumable: 1.0.0\r\n\
         Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nContent-Length: {}\r\n\r\n",
        bytes.len()
    );
    earlier.write_all(head_lines.as_bytes()).expect("head");
    let sent = 17 << 20;
    earlier.write_all(&bytes[..sent]).expect("17 MiB of the body");
    let progress = || json_of(&s, &token, &path)["offset"].as_u64().unwrap_or(0);
    eventually("the earlier PATCH has committed its first 16 MiB", || progress() > 0);
    let seen = progress();
    // The later one's first bytes are enough to learn where it stands.
    let later = patch(&s, &token, &path, 0, &bytes[..4096]);
    assert_eq!(later.status, 409, "{}", later.text());
    let reached = offset(&later);
    assert!(reached >= seen && reached <= sent as u64, "{seen} ≤ {reached} ≤ {sent}");
    drop(earlier);
    assert_eq!(offset(&head(&s, &token, &path)), reached, "what the earlier one reached is kept");
    let at = offset(&head(&s, &token, &path)) as usize;
    if at < bytes.len() {
        let r = patch(&s, &token, &path, at, &bytes[at..]);
        assert_eq!(r.status, 204, "{}", r.text());
    }
    let list = recordings(&s, &token);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["sha256"], sha256_hex(&bytes).as_str());
    assert_eq!(file_len(&s, &path), 0);

    // A completing request retried three times, in turn and at once: one recording each time.
    let small = noise_wav(40_000, 11);
    let path = create(&s, &token, Some(small.len()), "");
    patch(&s, &token, &path, 0, &small[..10_000]);
    let first = patch(&s, &token, &path, 10_000, &small[10_000..]);
    let id = first.header("Recording-Id").expect("complete").to_string();
    for _ in 0..3 {
        let retry = patch(&s, &token, &path, 10_000, &small[10_000..]);
        assert_eq!((retry.status, offset(&retry)), (409, 40_000), "{}", retry.text());
        // Asking where it stands finds it complete, with the same recording.
        let h = head(&s, &token, &path);
        assert_eq!((offset(&h), h.header("Recording-Id")), (40_000, Some(id.as_str())));
    }
    let path = create(&s, &token, Some(small.len()), "");
    patch(&s, &token, &path, 0, &small[..10_000]);
    let answers: Vec<Resp> = std::thread::scope(|scope| {
        let retries: Vec<_> =
            (0..3).map(|_| scope.spawn(|| patch(&s, &token, &path, 10_000, &small[10_000..]))).collect();
        retries.into_iter().map(|r| r.join().expect("retry")).collect()
    });
    let completed: Vec<&str> = answers.iter().filter_map(|r| r.header("Recording-Id")).collect();
    assert_eq!(completed.len(), 1, "{:?}", answers.iter().map(|r| r.status).collect::<Vec<_>>());
    assert_eq!(recordings(&s, &token).len(), 3);
}

/// An IETF draft request (interop version `v`).
fn draft(s: &Server, method: &str, path: &str, token: &str, v: &str) -> ureq::Request {
    s.auth(method, path, token).set("Upload-Draft-Interop-Version", v)
}

#[test]
fn ietf_draft_uploads_in_one_request_or_many() {
    let s = Server::start();
    let token = s.signup("iris");
    let bytes = noise_wav(120_000, 12);

    let r = send(s.req("OPTIONS", "/api/v1/recordings"), None);
    assert!(r.header("Upload-Limit").is_some_and(|l| l.contains("max-size=1073741824")), "{:?}", r.headers);
    assert!(r.header("Accept-Patch").is_some_and(|a| a.contains("application/partial-upload")));

    // Complete in one request: what a one-shot upload answers.
    let r = send(
        draft(&s, "POST", "/api/v1/recordings?name=whole.wav", &token, "8").set("Upload-Complete", "?1"),
        Some(&bytes),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("Upload-Complete"), Some("?1"));
    assert_eq!(r.json()["sha256"], sha256_hex(&bytes).as_str());
    assert_eq!(
        r.header("Location").map(str::to_string),
        Some(format!("/api/v1/recordings/{}", r.json()["id"].as_str().expect("id")))
    );

    // Started incomplete, appended, finished.
    let r = send(
        draft(&s, "POST", "/api/v1/recordings", &token, "8")
            .set("Upload-Complete", "?0")
            .set("Upload-Length", &bytes.len().to_string())
            .set("Content-Disposition", "inline; filename*=UTF-8''Caf%C3%A9.wav"),
        Some(&bytes[..40_000]),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!((r.header("Upload-Complete"), offset(&r)), (Some("?0"), 40_000));
    assert!(r.header("Upload-Limit").is_some());
    let path = r.header("Location").expect("upload resource").to_string();
    assert!(path.starts_with("/api/v1/uploads/"));

    let h = send(draft(&s, "HEAD", &path, &token, "8"), None);
    assert_eq!(h.status, 204);
    assert_eq!((offset(&h), h.header("Upload-Complete")), (40_000, Some("?0")));
    assert_eq!(h.header("Upload-Length"), Some("120000"));
    assert!(h.header("Upload-Limit").is_some_and(|l| l.contains("max-age=")));
    assert_eq!(h.header("Cache-Control"), Some("no-store"));

    let append = |offset: usize, part: &[u8], complete: &str, v: &str| {
        let req = draft(&s, "PATCH", &path, &token, v)
            .set("Content-Type", "application/partial-upload")
            .set("Upload-Offset", &offset.to_string())
            .set("Upload-Complete", complete);
        send(req, Some(part))
    };
    let r = append(40_000, &bytes[40_000..80_000], "?0", "8");
    assert_eq!((r.status, offset(&r), r.header("Upload-Complete")), (204, 80_000, Some("?0")));
    let r = append(70_000, &bytes[70_000..], "?1", "8");
    r.assert_error(409, "conflict");
    assert_eq!(offset(&r), 80_000);
    let r = append(80_000, &bytes[80_000..], "?1", "8");
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("Upload-Complete"), Some("?1"));
    assert_eq!(r.json()["name"], "Café.wav");
    assert_eq!(r.json()["sha256"], sha256_hex(&bytes).as_str());
    let h = send(draft(&s, "HEAD", &path, &token, "8"), None);
    assert_eq!(h.header("Upload-Complete"), Some("?1"));

    // Interop version 6 answers appends with 201; cancellation is 204.
    let r =
        send(draft(&s, "POST", "/api/v1/recordings", &token, "6").set("Upload-Complete", "?0"), Some(&bytes[..1_000]));
    let path = r.header("Location").expect("location").to_string();
    let req = draft(&s, "PATCH", &path, &token, "6")
        .set("Content-Type", "application/partial-upload")
        .set("Upload-Offset", "1000")
        .set("Upload-Complete", "?0");
    let r = send(req, Some(&bytes[1_000..2_000]));
    assert_eq!((r.status, offset(&r)), (201, 2_000));
    assert!(
        send(draft(&s, "HEAD", &path, &token, "6"), None)
            .header("Upload-Limit")
            .is_some_and(|l| l.contains("expires="))
    );
    assert_eq!(send(draft(&s, "DELETE", &path, &token, "6"), None).status, 204);
    assert_eq!(send(draft(&s, "HEAD", &path, &token, "6"), None).status, 404);
    assert_eq!(recordings(&s, &token).len(), 2);
}

#[test]
fn ietf_draft_creation_that_is_not_audio_or_too_large_is_refused() {
    let s = Server::start_with(|c| c.storage.max_upload_size = 100_000);
    let token = s.signup("ivan");
    let text = b"plain text, not audio, long enough to be sniffed as such by the server: ".repeat(10);
    let r = send(draft(&s, "POST", "/api/v1/recordings", &token, "8").set("Upload-Complete", "?1"), Some(&text));
    r.assert_error(415, "unsupported_media_type");
    let r = send(
        draft(&s, "POST", "/api/v1/recordings", &token, "8")
            .set("Upload-Complete", "?0")
            .set("Upload-Length", "200000"),
        Some(b""),
    );
    r.assert_error(413, "payload_too_large");
    assert!(upload_files(&s).is_empty());
    assert!(recordings(&s, &token).is_empty());
}

#[test]
fn kill_9_mid_patch_keeps_every_acknowledged_offset_and_the_upload_completes() {
    let home = tempfile::tempdir().expect("tempdir");
    let data = home.path().join("data");
    let server = serve(home.path(), &data);
    let token = signup(&server, "kira");
    let auth = format!("Bearer {token}");
    let tus = |r: ureq::Request| r.set("Authorization", &auth).set("Tus-Resumable", "1.0.0");
    let bytes = noise_wav(48 << 20, 13);

    let r = send(tus(server.req("POST", "/api/v1/uploads")).set("Upload-Length", &bytes.len().to_string()), None);
    let path = r.header("Location").expect("location").to_string();
    let first = send(
        tus(server.req("PATCH", &path))
            .set("Content-Type", "application/offset+octet-stream")
            .set("Upload-Offset", "0"),
        Some(&bytes[..1 << 20]),
    );
    assert_eq!(offset(&first), 1 << 20);
    let mut acknowledged = offset(&first);

    // A long PATCH, killed after the server reported a checkpoint past the first request.
    let mut stream = server.connect();
    write!(
        stream,
        "PATCH {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nTus-Resumable: 1.0.0\r\n\
         Content-Type: application/offset+octet-stream\r\nUpload-Offset: {acknowledged}\r\nContent-Length: {}\r\n\r\n",
        bytes.len() - acknowledged as usize
    )
    .expect("head");
    stream.write_all(&bytes[acknowledged as usize..(40 << 20)]).expect("body");
    let json =
        |server: &Running| send(server.auth("GET", &path, &token), None).json()["offset"].as_u64().expect("offset");
    eventually("a durable checkpoint inside the long PATCH", || json(&server) > acknowledged);
    acknowledged = json(&server);
    server.kill9();
    drop(stream);
    let file = data.join("uploads").join(path.rsplit('/').next().expect("id"));
    assert!(std::fs::metadata(&file).expect("file").len() >= acknowledged);
    std::fs::write(data.join("uploads").join("stray"), b"litter").expect("stray file");

    let server = serve(home.path(), &data);
    let h = send(tus(server.req("HEAD", &path)), None);
    let resumed = offset(&h);
    assert!(resumed >= acknowledged, "HEAD says {resumed}, but {acknowledged} was acknowledged");
    assert_eq!(std::fs::metadata(&file).expect("file").len(), resumed, "startup cut the file to its offset");
    assert!(!data.join("uploads").join("stray").exists(), "startup removed a file no upload owns");
    let r = send(
        tus(server.req("PATCH", &path))
            .set("Content-Type", "application/offset+octet-stream")
            .set("Upload-Offset", &resumed.to_string()),
        Some(&bytes[resumed as usize..]),
    );
    assert_eq!((r.status, offset(&r)), (204, bytes.len() as u64), "{}", r.text());
    let id = r.header("Recording-Id").expect("complete");
    let rec = send(server.auth("GET", &format!("/api/v1/recordings/{id}"), &token), None).json();
    assert_eq!(rec["sha256"], sha256_hex(&bytes).as_str());
}

#[test]
fn deleting_the_account_removes_its_uploads_and_empty_uploads_never_complete() {
    let s = Server::start();
    let token = s.signup("dora");
    let bytes = noise_wav(30_000, 14);
    let path = create(&s, &token, Some(bytes.len()), "");
    patch(&s, &token, &path, 0, &bytes[..10_000]);
    create(&s, &token, None, "");
    assert_eq!(upload_files(&s).len(), 2);
    // API.md: an upload of no bytes is created (201) and never becomes a recording.
    let empty = send(tus(&s, "POST", "/api/v1/uploads", &token).set("Upload-Length", "0"), None);
    assert_eq!(empty.status, 201, "{}", empty.text());
    let location = empty.header("Location").expect("Location").to_string();
    let head = send(tus(&s, "HEAD", &location, &token), None);
    assert_eq!((head.status, head.header("Upload-Offset")), (200, Some("0")));
    let described = send(s.auth("GET", &location, &token), None).json();
    assert!(described["recording"].is_null(), "{described}");
    assert_eq!(upload_files(&s).len(), 3);

    let gone = send_json(s.auth("DELETE", "/api/v1/me", &token), &serde_json::json!({"password": "password123"}));
    assert_eq!(gone.status, 204);
    assert!(upload_files(&s).is_empty(), "{:?}", upload_files(&s));
    let rows: i64 =
        s.db().conn().expect("conn").query_row("SELECT count(*) FROM uploads", [], |r| r.get(0)).expect("count");
    assert_eq!(rows, 0);
}

#[test]
fn ietf_draft_retries_empty_completions_and_broken_creations_leave_no_litter() {
    let s = Server::start();
    let token = s.signup("rhea");
    let bytes = noise_wav(60_000, 15);

    // A creation retried with the same Idempotency-Key answers the first recording.
    let create = || {
        send(
            draft(&s, "POST", "/api/v1/recordings?name=once.wav", &token, "8")
                .set("Upload-Complete", "?1")
                .set("Idempotency-Key", "take-42"),
            Some(&bytes),
        )
    };
    let first = create();
    assert_eq!(first.status, 201, "{}", first.text());
    let again = create();
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json()["id"], first.json()["id"]);
    assert_eq!(recordings(&s, &token).len(), 1);
    // A retry is checked as any creation is before the key is looked up, as a one-shot upload's.
    let bad_time = send(
        draft(&s, "POST", "/api/v1/recordings?name=once.wav&recorded_at=nope", &token, "8")
            .set("Upload-Complete", "?1")
            .set("Idempotency-Key", "take-42"),
        Some(&bytes),
    );
    bad_time.assert_error(400, "bad_request");

    // Completing with nothing: refused before an upload is made.
    send(draft(&s, "POST", "/api/v1/recordings", &token, "8").set("Upload-Complete", "?1"), Some(b""))
        .assert_error(400, "empty_body");
    assert_eq!(json_of(&s, &token, "/api/v1/uploads")["uploads"], serde_json::json!([]));

    // Appending the completing bytes again to a completed upload: 409, and it says complete.
    let r =
        send(draft(&s, "POST", "/api/v1/recordings", &token, "8").set("Upload-Complete", "?0"), Some(&bytes[..1000]));
    let path = r.header("Location").expect("location").to_string();
    let finish = || {
        let req = draft(&s, "PATCH", &path, &token, "8")
            .set("Content-Type", "application/partial-upload")
            .set("Upload-Offset", "1000")
            .set("Upload-Complete", "?1");
        send(req, Some(&bytes[1000..]))
    };
    assert_eq!(finish().status, 201);
    let retry = finish();
    retry.assert_error(409, "conflict");
    assert_eq!((retry.header("Upload-Complete"), offset(&retry)), (Some("?1"), 60_000));

    // A creation whose connection breaks: the client never learned the upload's URL, so nothing
    // stays, unless it asked to keep partial uploads.
    for (query, kept) in [("", 0), ("?keep_partial=1", 1)] {
        let mut stream = s.connect();
        write!(
            stream,
            "POST /api/v1/recordings{query} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Upload-Draft-Interop-Version: 8\r\nUpload-Complete: ?1\r\nContent-Length: {}\r\n\r\n",
            bytes.len()
        )
        .expect("head");
        stream.write_all(&bytes[..30_000]).expect("part");
        eventually("the server is reading the creation", || {
            json_of(&s, &token, "/api/v1/uploads")["uploads"].as_array().map(Vec::len) == Some(1)
        });
        drop(stream);
        eventually("the broken creation is settled", || {
            json_of(&s, &token, "/api/v1/uploads")["uploads"].as_array().map(Vec::len) == Some(kept)
                && upload_files(&s).len() == kept
        });
    }

    // Tus-Resumable of another version is a tus matter only: a one-shot upload is unaffected.
    let r =
        send(s.auth("POST", "/api/v1/recordings?name=plain.wav", &token).set("Tus-Resumable", "0.2.2"), Some(&bytes));
    assert_eq!(r.status, 201, "{}", r.text());
}
