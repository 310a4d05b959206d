//! The Recordings and Trash sections of the API, with real files.

use crate::support::net::write_chunked;
use crate::support::{FIXTURES, Server, eventually, fixture, send, send_json, sha256_hex, urlencode};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[test]
fn every_fixture_round_trips_with_type_and_duration() {
    let s = Server::start();
    let token = s.signup("alice");
    for (file, content_type, truth_ms) in FIXTURES {
        let bytes = fixture(file);
        let r = s.upload(&token, file, &bytes);
        assert_eq!(r.status, 201, "{file}: {}", r.text());
        let rec = r.json();
        assert_eq!(rec["content_type"], *content_type, "{file}");
        assert_eq!(rec["name"], *file);
        assert_eq!(rec["size"], bytes.len());
        assert_eq!(rec["sha256"], sha256_hex(&bytes), "{file}");
        let duration = rec["duration_ms"].as_i64().unwrap_or_else(|| panic!("{file} has no duration"));
        assert!((duration - truth_ms).abs() <= 250, "{file}: {duration} ms, truth {truth_ms} ms");
        assert_eq!(
            r.header("location"),
            Some(format!("/api/v1/recordings/{}", rec["id"].as_str().expect("id")).as_str())
        );
        let audio =
            send(s.auth("GET", &format!("/api/v1/recordings/{}/audio", rec["id"].as_str().expect("id")), &token), None);
        assert_eq!(audio.status, 200);
        assert_eq!(audio.header("content-type"), Some(*content_type));
        assert_eq!(sha256_hex(&audio.body), sha256_hex(&bytes), "{file} comes back byte for byte");
    }
    // A recording cut off by a crash is still the user's data.
    let r = s.upload(&token, "truncated.mp3", &fixture("truncated.mp3"));
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["content_type"], "audio/mpeg");
    s.wait_for_jobs();
    assert_eq!(s.files().iter().filter(|f| f.starts_with("tmp")).count(), 0);
}

#[test]
fn refused_uploads_leave_the_data_directory_as_it_was() {
    let s = Server::start_with(|c| c.storage.max_upload_size = 100_000);
    let token = s.signup("bob");
    assert_eq!(s.upload(&token, "keep.wav", &fixture("speech.opus")).status, 201);
    s.wait_for_jobs();
    let before = s.files();
    for (file, status, code) in [
        ("not-audio/empty.wav", 400, "empty_body"),
        ("not-audio/image.png", 415, "unsupported_media_type"),
        ("not-audio/page.html", 415, "unsupported_media_type"),
        ("not-audio/text-named.mp3", 415, "unsupported_media_type"),
    ] {
        s.upload(&token, "x.mp3", &fixture(file)).assert_error(status, code);
    }
    // Over the limit, announced by Content-Length: refused before the body is sent.
    let r = announce_upload(&s, &token, fixture("speech.wav").len());
    assert!(r.starts_with("HTTP/1.1 413") && r.contains("payload_too_large"), "{r}");
    // Over the limit without Content-Length (chunked): refused while streaming.
    let wav = fixture("speech.wav");
    let r = chunked_upload(&s, &token, &wav);
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    s.upload(&token, "", &fixture("speech.wav")[..1000]).assert_error(400, "invalid_name");
    s.upload(&token, "bad\u{7}name", &fixture("speech.opus")).assert_error(400, "invalid_name");
    eventually("temp files removed", || s.files() == before);
    let list = send(s.auth("GET", "/api/v1/recordings", &token), None).json();
    assert_eq!(list["recordings"].as_array().map(Vec::len), Some(1));
}

/// Announces an upload of `len` bytes and sends only its first KiB: the refusal must come
/// without the rest. (Rocket reads up to 14 bytes of every body before routing.)
fn announce_upload(s: &Server, token: &str, len: usize) -> String {
    let mut stream = s.connect();
    let head = format!(
        "POST /api/v1/recordings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).expect("head");
    stream.write_all(&fixture("speech.wav")[..1024]).expect("first KiB");
    read_one_response(&mut stream)
}

/// Reads one HTTP response (head and a Content-Length body) without waiting for the connection
/// to close, which a server that has not read the request body may keep open.
fn read_one_response(stream: &mut TcpStream) -> String {
    stream.set_read_timeout(Some(std::time::Duration::from_secs(20))).expect("timeout");
    let mut head = String::new();
    // Interim answers (100 Continue) come first; the final one follows without the body sent.
    while head.is_empty() || head.starts_with("HTTP/1.1 1") {
        let mut data = Vec::new();
        let mut byte = [0u8; 1];
        while !data.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte) {
                Ok(1) => data.push(byte[0]),
                _ => return String::from_utf8_lossy(&data).to_string(),
            }
        }
        head = String::from_utf8_lossy(&data).to_string();
    }
    let len = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0))
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    let _ = stream.read_exact(&mut body);
    head + &String::from_utf8_lossy(&body)
}

/// Sends a body with chunked transfer encoding over a raw socket; returns the response head.
fn chunked_upload(s: &Server, token: &str, body: &[u8]) -> String {
    let mut stream = s.connect();
    let head = format!(
        "POST /api/v1/recordings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).expect("head");
    write_chunked(&mut stream, body, 16 * 1024);
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

#[test]
fn a_client_hanging_up_mid_body_leaves_nothing() {
    let s = Server::start();
    let token = s.signup("carol");
    let wav = fixture("speech.wav");
    let mut stream = s.connect();
    let head = format!(
        "POST /api/v1/recordings?name=half.wav HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n",
        wav.len() * 10
    );
    stream.write_all(head.as_bytes()).expect("head");
    stream.write_all(&wav).expect("half a body");
    // Wait until the upload is in flight (its temp file exists), then hang up.
    eventually("upload in flight", || s.files().iter().any(|f| f.starts_with("tmp")));
    drop(stream);
    eventually("temp file removed", || s.files().is_empty());
    let list = send(s.auth("GET", "/api/v1/recordings", &token), None).json();
    assert_eq!(list["recordings"], json!([]));
}

#[test]
fn idempotency_key_retries_return_the_first_recording() {
    let s = Server::start();
    let token = s.signup("dave");
    let bytes = fixture("speech.m4a");
    let up = |key: &str| {
        send(s.auth("POST", "/api/v1/recordings?name=memo.m4a", &token).set("Idempotency-Key", key), Some(&bytes))
    };
    let first = up("retry-1");
    assert_eq!(first.status, 201);
    let again = up("retry-1");
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["id"], first.json()["id"]);
    // A retry whose body is larger than the socket buffers still reads its answer: the server
    // answers 200 only after taking (up to 1 MiB of) the body it does not store.
    let big: Vec<u8> = bytes.iter().copied().cycle().take(900 * 1024).collect();
    let retried =
        send(s.auth("POST", "/api/v1/recordings?name=memo.m4a", &token).set("Idempotency-Key", "retry-1"), Some(&big));
    assert_eq!(retried.status, 200, "{}", retried.text());
    assert_eq!(retried.json()["id"], first.json()["id"]);
    // On the wire: the answer waits for the body (so a slow client is not cut off mid-write),
    // and the connection stays open for the next request.
    let mut conn = s.connect();
    let head = format!(
        "POST /api/v1/recordings?name=memo.m4a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nIdempotency-Key: retry-1\r\nContent-Length: {}\r\n\r\n",
        bytes.len()
    );
    conn.write_all(head.as_bytes()).expect("head");
    conn.write_all(&bytes[..bytes.len() / 2]).expect("first half");
    conn.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
    let mut early = [0u8; 64];
    match conn.read(&mut early) {
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
        other => panic!("answered before the body arrived: {other:?} {:?}", String::from_utf8_lossy(&early)),
    }
    conn.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    conn.write_all(&bytes[bytes.len() / 2..]).expect("second half");
    let again = format!(
        "GET /api/v1/recordings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(again.as_bytes()).expect("second request");
    let mut answers = String::new();
    conn.read_to_string(&mut answers).expect("both answers");
    assert!(answers.starts_with("HTTP/1.1 200 OK"), "{answers}");
    assert_eq!(answers.matches("HTTP/1.1 200 OK").count(), 2, "{answers}");
    up(&"k".repeat(129)).assert_error(400, "bad_request");
    // Two racing uploads with one key make one recording.
    let statuses: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let r = up("race-key");
                    (r.status, r.json()["id"].clone())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    let ids: HashSet<String> = statuses.iter().map(|(_, id)| id.to_string()).collect();
    assert_eq!(ids.len(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|(st, _)| *st == 201).count(), 1, "{statuses:?}");
    let list = send(s.auth("GET", "/api/v1/recordings", &token), None).json();
    assert_eq!(list["recordings"].as_array().map(Vec::len), Some(2));
    eventually("duplicate files removed", || s.files().len() == 2);
}

#[test]
fn names_default_from_recorded_at_and_multipart_works() {
    let s = Server::start();
    let token = s.signup("erin");
    let r = send(
        s.auth("POST", "/api/v1/recordings?recorded_at=2026-11-24T19:40:28.123%2B01:00", &token),
        Some(&fixture("speech.flac")),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["name"], "Recording 2026-11-24 18-40-28.flac");
    assert_eq!(r.json()["recorded_at"], "2026-11-24T18:40:28.123Z");
    send(s.auth("POST", "/api/v1/recordings?recorded_at=yesterday", &token), Some(&fixture("speech.flac")))
        .assert_error(400, "bad_request");
    let no_name = send(s.auth("POST", "/api/v1/recordings", &token), Some(&fixture("speech.webm")));
    assert!(no_name.json()["name"].as_str().is_some_and(|n| n.starts_with("Recording ") && n.ends_with(".webm")));

    let boundary = "XyZboundary";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"recorded_at\"\r\n\r\n2026-01-02T03:04:05Z\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"Café memo.ogg\"\r\nContent-Type: audio/ogg\r\n\r\n").as_bytes());
    let ogg = fixture("speech.ogg");
    body.extend_from_slice(&ogg);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let r = send(
        s.auth("POST", "/api/v1/recordings", &token)
            .set("Content-Type", &format!("multipart/form-data; boundary={boundary}")),
        Some(&body),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let rec = r.json();
    assert_eq!(rec["name"], "Café memo.ogg");
    assert_eq!(rec["recorded_at"], "2026-01-02T03:04:05.000Z");
    assert_eq!(rec["sha256"], sha256_hex(&ogg));
    assert_eq!(rec["content_type"], "audio/ogg");

    // A form without a file part, and a broken one, say so.
    let form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"recorded_at\"\r\n\r\n2026-01-02T03:04:05Z\r\n--{boundary}--\r\n"
    );
    let multipart = |body: &[u8]| {
        send(
            s.auth("POST", "/api/v1/recordings", &token)
                .set("Content-Type", &format!("multipart/form-data; boundary={boundary}")),
            Some(body),
        )
    };
    let r = multipart(form.as_bytes());
    r.assert_error(400, "bad_request");
    assert!(r.json()["error"]["message"].as_str().is_some_and(|m| m.contains("`file` part")), "{}", r.text());
    let r = multipart(b"no boundary anywhere in here");
    r.assert_error(400, "bad_request");
    assert!(r.json()["error"]["message"].as_str().is_some_and(|m| m.contains("malformed")), "{}", r.text());
}

#[test]
fn rename_get_and_list_search_are_literal() {
    let s = Server::start();
    let token = s.signup("frank");
    let opus = fixture("speech.opus");
    let mut ids = Vec::new();
    for name in ["100% sure.opus", "a_b.opus", "axb.opus", "Ünïcode Memo.opus"] {
        ids.push(s.upload_id(&token, name, &opus));
    }
    let search = |q: &str| -> Vec<String> {
        let r = send(s.auth("GET", &format!("/api/v1/recordings?q={}", urlencode(q)), &token), None);
        r.json()["recordings"]
            .as_array()
            .expect("list")
            .iter()
            .map(|r| r["name"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(search("%"), vec!["100% sure.opus"]);
    assert_eq!(search("a_b"), vec!["a_b.opus"]);
    assert_eq!(search("ÜNÏCODE"), vec!["Ünïcode Memo.opus"]);
    assert_eq!(search("opus").len(), 4);

    let path = format!("/api/v1/recordings/{}", ids[0]);
    let renamed = send_json(s.auth("PATCH", &path, &token), &json!({"name": "  ../../etc/passwd  "}));
    assert_eq!(renamed.status, 200);
    assert_eq!(renamed.json()["name"], "../../etc/passwd", "names are metadata only");
    send_json(s.auth("PATCH", &path, &token), &json!({"name": " "})).assert_error(400, "invalid_name");
    send_json(s.auth("PATCH", &path, &token), &json!({"name": "x".repeat(256)})).assert_error(400, "invalid_name");
    assert_eq!(send(s.auth("GET", &path, &token), None).json()["name"], "../../etc/passwd");
    // The search follows renames.
    assert_eq!(search("etc/pass"), vec!["../../etc/passwd"]);
    assert!(search("sure").is_empty());
    send(s.auth("GET", "/api/v1/recordings/not-a-uuid", &token), None).assert_error(404, "not_found");

    for bad in ["limit=0", "limit=201", "limit=ten", "cursor=garbage!", "order=sideways", "limit=5&limit=7"] {
        send(s.auth("GET", &format!("/api/v1/recordings?{bad}"), &token), None).assert_error(400, "bad_request");
    }
    // A parameter given twice is refused, not read as absent; one the route does not take is ignored.
    assert_eq!(send(s.auth("GET", "/api/v1/recordings?x=1&x=2", &token), None).status, 200);
    send(s.auth("GET", "/api/v1/trash?limit=x&limit=x", &token), None).assert_error(400, "bad_request");
    send(s.auth("GET", &format!("{path}/audio?download=1&download=0"), &token), None).assert_error(400, "bad_request");
    // An empty cursor is the same as none: the first page (compared once the analysis has
    // settled, so no waveform turns ready between the two reads).
    s.wait_for_jobs();
    for path in ["/api/v1/recordings?cursor=", "/api/v1/trash?cursor="] {
        let page = send(s.auth("GET", path, &token), None);
        assert_eq!(page.status, 200, "{path}: {}", page.text());
        let first = send(s.auth("GET", path.trim_end_matches("?cursor="), &token), None).json();
        assert_eq!(page.json(), first, "{path}");
    }
    let me = send(s.auth("GET", "/api/v1/me", &token), None).json();
    assert_eq!(me["usage"]["recordings"], 4);
    assert_eq!(me["usage"]["bytes"], 4 * opus.len());
}

#[test]
fn paginated_walk_sees_each_existing_recording_once_under_churn() {
    let s = Server::start();
    let token = s.signup("gina");
    let opus = fixture("speech.opus");
    let mut existing = HashSet::new();
    for i in 0..250 {
        existing.insert(s.upload_id(&token, &format!("r{i}.opus"), &opus));
    }
    let extra: Vec<String> = (0..20).map(|i| s.upload_id(&token, &format!("extra{i}"), &opus)).collect();
    for order in ["newest", "oldest"] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut page_no = 0;
        let churned = std::thread::scope(|scope| {
            let mut churn = Vec::new();
            loop {
                let path = match &cursor {
                    Some(c) => format!("/api/v1/recordings?limit=37&order={order}&cursor={c}"),
                    None => format!("/api/v1/recordings?limit=37&order={order}"),
                };
                let page = send(s.auth("GET", &path, &token), None).json();
                // Churn between pages: new uploads and deletes of the extra ones.
                let (s, token, opus, extra) = (&s, &token, &opus, &extra);
                churn.push(scope.spawn(move || {
                    let uploaded = s.upload(token, "churn.opus", opus).status;
                    let deleted = extra
                        .get(page_no)
                        .map(|id| send(s.auth("DELETE", &format!("/api/v1/recordings/{id}"), token), None).status);
                    (uploaded, deleted)
                }));
                page_no += 1;
                for r in page["recordings"].as_array().expect("recordings") {
                    seen.push(r["id"].as_str().expect("id").to_string());
                }
                match page["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_string()),
                    None => break,
                }
            }
            churn.into_iter().map(|h| h.join().expect("churn")).collect::<Vec<_>>()
        });
        // The churn really happened while the pages were walked: an upload per page, and a
        // delete of an extra recording per page while there were any.
        assert!(churned.len() >= 7, "{order}: {churned:?}");
        assert!(churned.iter().all(|(uploaded, _)| *uploaded == 201), "{order}: {churned:?}");
        assert!(churned.iter().filter_map(|(_, deleted)| *deleted).all(|status| status == 204), "{order}: {churned:?}");
        let seen_existing: Vec<&String> = seen.iter().filter(|id| existing.contains(*id)).collect();
        assert_eq!(seen_existing.len(), 250, "{order}: each pre-existing recording exactly once");
        assert_eq!(seen_existing.iter().collect::<HashSet<_>>().len(), 250);
        let mut sorted = seen.clone();
        sorted.sort();
        if order == "newest" {
            sorted.reverse();
        }
        assert_eq!(seen, sorted, "{order} order by id");
    }
}

#[test]
fn audio_ranges_conditionals_and_headers() {
    let s = Server::start();
    let token = s.signup("hank");
    let wav = fixture("speech.wav");
    let size = wav.len();
    let rec = s.upload(&token, "Café \"memo\".wav", &wav).json();
    let path = format!("/api/v1/recordings/{}/audio", rec["id"].as_str().expect("id"));
    let etag = format!("\"{}\"", rec["sha256"].as_str().expect("sha"));

    let full = send(s.auth("GET", &path, &token), None);
    assert_eq!(full.status, 200);
    assert_eq!(full.header("accept-ranges"), Some("bytes"));
    assert_eq!(full.header("etag"), Some(etag.as_str()));
    assert_eq!(full.header("content-length"), Some(size.to_string().as_str()));
    assert_eq!(full.header("cache-control"), Some("private, max-age=0, must-revalidate"));
    assert_eq!(full.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(full.header("content-security-policy"), Some("sandbox"));
    assert!(full.header("last-modified").is_some_and(|d| d.ends_with("GMT")));
    assert_eq!(
        full.header("content-disposition"),
        Some("inline; filename=\"Caf_ _memo_.wav\"; filename*=UTF-8''Caf%C3%A9%20%22memo%22.wav")
    );
    let download = send(s.auth("GET", &format!("{path}?download=1"), &token), None);
    assert!(download.header("content-disposition").is_some_and(|d| d.starts_with("attachment;")));

    let ranged = |range: &str| send(s.auth("GET", &path, &token).set("Range", range), None);
    let r = ranged("bytes=0-99");
    assert_eq!(r.status, 206);
    assert_eq!(r.body, wav[..100]);
    assert_eq!(r.header("content-range"), Some(format!("bytes 0-99/{size}").as_str()));
    let r = ranged("bytes=1000-");
    assert_eq!(r.status, 206);
    assert_eq!(r.body, wav[1000..]);
    let r = ranged("bytes=-500");
    assert_eq!(r.status, 206);
    assert_eq!(r.body, wav[size - 500..]);
    assert_eq!(r.header("content-range"), Some(format!("bytes {}-{}/{size}", size - 500, size - 1).as_str()));
    let r = ranged(&format!("bytes={size}-"));
    r.assert_error(416, "range_not_satisfiable");
    assert_eq!(r.header("content-range"), Some(format!("bytes */{size}").as_str()));

    let r = send(s.auth("GET", &path, &token).set("If-None-Match", &etag), None);
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    let r = send(s.auth("GET", &path, &token).set("Range", "bytes=0-9").set("If-Range", &etag), None);
    assert_eq!(r.status, 206);
    let r = send(s.auth("GET", &path, &token).set("Range", "bytes=0-9").set("If-Range", "\"stale\""), None);
    assert_eq!(r.status, 200, "a stale If-Range gets the whole file");
    assert_eq!(r.body.len(), size);

    let head = send(s.auth("HEAD", &path, &token), None);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some(size.to_string().as_str()));
    assert!(head.body.is_empty());
}

#[test]
fn another_users_recording_is_not_found_on_every_route() {
    let s = Server::start();
    let owner = s.signup("ivy");
    let intruder = s.signup("jack");
    let id = s.upload_id(&owner, "secret.wav", &fixture("speech.wav"));
    let trashed = s.upload_id(&owner, "trashed.wav", &fixture("speech.wav"));
    assert_eq!(send(s.auth("DELETE", &format!("/api/v1/recordings/{trashed}"), &owner), None).status, 204);
    let as_intruder = |method: &str, path: String| send(s.auth(method, &path, &intruder), None);
    as_intruder("GET", format!("/api/v1/recordings/{id}")).assert_error(404, "not_found");
    as_intruder("GET", format!("/api/v1/recordings/{id}/audio")).assert_error(404, "not_found");
    assert_eq!(as_intruder("HEAD", format!("/api/v1/recordings/{id}/audio")).status, 404);
    send_json(s.auth("PATCH", &format!("/api/v1/recordings/{id}"), &intruder), &json!({"name": "mine"}))
        .assert_error(404, "not_found");
    as_intruder("DELETE", format!("/api/v1/recordings/{id}")).assert_error(404, "not_found");
    as_intruder("DELETE", format!("/api/v1/recordings/{id}?permanent=true")).assert_error(404, "not_found");
    as_intruder("POST", format!("/api/v1/trash/{trashed}/restore")).assert_error(404, "not_found");
    as_intruder("DELETE", format!("/api/v1/trash/{trashed}")).assert_error(404, "not_found");
    assert_eq!(as_intruder("DELETE", "/api/v1/trash".into()).json()["purged"], 0);
    assert_eq!(as_intruder("GET", "/api/v1/recordings".into()).json()["recordings"], json!([]));
    assert_eq!(as_intruder("GET", "/api/v1/trash".into()).json()["recordings"], json!([]));
    // Untouched for the owner.
    assert_eq!(send(s.auth("GET", &format!("/api/v1/recordings/{id}"), &owner), None).json()["name"], "secret.wav");
    assert_eq!(
        send(s.auth("GET", "/api/v1/trash", &owner), None).json()["recordings"].as_array().map(Vec::len),
        Some(1)
    );
}

#[test]
fn trash_lifecycle_and_sweep() {
    let s = Server::start();
    let token = s.signup("kate");
    let wav = fixture("speech.wav");
    let ids: Vec<String> = (0..4).map(|i| s.upload_id(&token, &format!("{i}.wav"), &wav)).collect();
    s.wait_for_jobs();
    let del = |id: &str, q: &str| send(s.auth("DELETE", &format!("/api/v1/recordings/{id}{q}"), &token), None);
    assert_eq!(del(&ids[0], "").status, 204);
    assert_eq!(del(&ids[1], "").status, 204);
    let list = send(s.auth("GET", "/api/v1/recordings", &token), None).json();
    assert_eq!(list["recordings"].as_array().map(Vec::len), Some(2));
    let trash = send(s.auth("GET", "/api/v1/trash", &token), None).json();
    let items = trash["recordings"].as_array().expect("trash");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], ids[1], "newest deletion first");
    assert!(items[0]["deleted_at"].is_string() && items[0]["purge_at"].is_string());
    let me = send(s.auth("GET", "/api/v1/me", &token), None).json();
    assert_eq!(me["usage"]["trash_recordings"], 2);
    assert_eq!(me["usage"]["trash_bytes"], 2 * wav.len());

    let restored = send(s.auth("POST", &format!("/api/v1/trash/{}/restore", ids[0]), &token), None);
    assert_eq!(restored.status, 200);
    assert_eq!(restored.json()["deleted_at"], Value::Null);
    send(s.auth("POST", &format!("/api/v1/trash/{}/restore", ids[0]), &token), None).assert_error(404, "not_found");
    send(s.auth("DELETE", &format!("/api/v1/trash/{}", ids[0]), &token), None).assert_error(404, "not_found");

    // Permanent delete: file and row gone at once.
    assert_eq!(del(&ids[2], "?permanent=true").status, 204);
    send(s.auth("GET", &format!("/api/v1/recordings/{}", ids[2]), &token), None).assert_error(404, "not_found");
    assert_eq!(s.files().len(), 3);

    // The sweep purges what is past purge_at, and nothing else.
    let db = s.db();
    let storage = s.storage();
    let swept = recorder::maintenance::sweep(&db, &storage, &Default::default(), s.clock.now_ms()).expect("sweep");
    assert_eq!(swept.recordings, 0);
    let later = s.clock.now_ms() + 31 * 86_400_000;
    let swept = recorder::maintenance::sweep(&db, &storage, &Default::default(), later).expect("sweep");
    assert_eq!(swept.recordings, 1);
    assert_eq!(send(s.auth("GET", "/api/v1/trash", &token), None).json()["recordings"], json!([]));
    assert_eq!(s.files().len(), 2);

    assert_eq!(del(&ids[3], "").status, 204);
    assert_eq!(del(&ids[0], "").status, 204);
    let emptied = send(s.auth("DELETE", "/api/v1/trash", &token), None);
    assert_eq!(emptied.json(), json!({"purged": 2}));
    assert!(s.files().is_empty(), "{:?}", s.files());
}

#[test]
fn retention_zero_deletes_at_once() {
    let s = Server::start_with(|c| c.trash.retention_days = 0);
    let token = s.signup("liam");
    let id = s.upload_id(&token, "x.wav", &fixture("speech.wav"));
    s.wait_for_jobs();
    assert_eq!(send(s.auth("DELETE", &format!("/api/v1/recordings/{id}"), &token), None).status, 204);
    assert_eq!(send(s.auth("GET", "/api/v1/trash", &token), None).json()["recordings"], json!([]));
    assert!(s.files().is_empty());
}

#[test]
fn startup_finishes_pending_unlinks_empties_tmp_and_sweeps_orphans() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    {
        let storage = recorder::storage::Storage::open(&data).expect("storage");
        let db = recorder::db::Db::open(&storage.db_path()).expect("db");
        std::fs::write(storage.tmp_dir().join("x.part"), b"half").expect("tmp");
        let orphan = uuid::Uuid::now_v7();
        let pending = uuid::Uuid::now_v7();
        for id in [orphan, pending] {
            let path = storage.path(&recorder::storage::Storage::relative_path(&id));
            std::fs::create_dir_all(path.parent().expect("shard")).expect("shard");
            std::fs::write(&path, b"bytes").expect("file");
        }
        let rel = recorder::storage::Storage::relative_path(&pending);
        db.conn()
            .expect("conn")
            .execute("INSERT INTO pending_unlinks (path, created_at) VALUES (?1, 0)", [rel])
            .expect("pending");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let s = Server::start_with(|c| c.storage.data_dir = data.clone());
    // pending unlinks and tmp/ are done before the first request…
    assert!(s.files().iter().all(|f| !f.starts_with("tmp")), "{:?}", s.files());
    // …and the orphan goes in the background.
    let storage = recorder::storage::Storage::open(&data).expect("storage");
    eventually("orphan removed", || storage.recording_files().map(|f| f.is_empty()).unwrap_or(false));
    let conn = s.db().conn().expect("conn");
    let left: i64 = conn.query_row("SELECT count(*) FROM pending_unlinks", [], |r| r.get(0)).expect("count");
    assert_eq!(left, 0);
}

#[test]
fn list_queries_use_the_index() {
    let s = Server::start();
    let conn = s.db().conn().expect("conn");
    for (sql, uses) in recorder::recordings::explain_list_queries(&conn).expect("explain") {
        assert!(
            uses.contains("USING INDEX recordings_by_user") || uses.contains("USING COVERING INDEX recordings_by_user"),
            "{sql}: {uses}"
        );
        assert!(!uses.contains("SCAN recordings"), "{sql}: {uses}");
        assert!(!uses.contains("TEMP B-TREE"), "{sql}: {uses}");
    }
}

#[test]
fn uploads_that_would_eat_the_free_space_reserve_get_507() {
    // A reserve larger than any disk: every upload would go below it.
    let s = Server::start_with(|c| c.storage.min_free_space = u64::MAX / 4);
    let token = s.signup("mona");
    let r = announce_upload(&s, &token, fixture("speech.wav").len());
    assert!(r.starts_with("HTTP/1.1 507") && r.contains("insufficient_storage"), "{r}");
    let r = chunked_upload(&s, &token, &fixture("speech.wav"));
    assert!(r.starts_with("HTTP/1.1 507"), "{r}");
    eventually("nothing left behind", || s.files().is_empty());
}

#[test]
fn a_chunked_multipart_body_past_the_limit_is_413_and_leaves_nothing() {
    let s = Server::start_with(|c| c.storage.max_upload_size = 64 * 1024);
    let token = s.signup("quinn");
    let boundary = "XyZboundary";
    let mut body = Vec::new();
    // A small file, then an unknown part big enough to pass the limit plus the form's 1 MiB.
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(&fixture("speech.wav")[..8 * 1024]);
    body.extend_from_slice(
        format!("\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"extra\"\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(&vec![b'x'; 1200 * 1024]);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());

    // Chunked, so no Content-Length lets the server refuse before reading.
    let mut stream = s.connect();
    let head = format!(
        "POST /api/v1/recordings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).expect("head");
    write_chunked(&mut stream, &body, 64 * 1024);
    let response = read_one_response(&mut stream);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("payload_too_large"), "{response}");
    eventually("the temp file to go", || s.files().is_empty());
}
