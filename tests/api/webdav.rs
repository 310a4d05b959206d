//! The WebDAV listener: a real client (rclone) copying, listing, renaming and deleting through
//! it; the protocol over raw HTTP (OPTIONS, PROPFIND depths and long listings, duplicate names,
//! GET with ranges, PUT through the upload path, MOVE, DELETE and the trash, LOCK/UNLOCK,
//! authentication and its throttle, one user's folder hidden from another); and `kill -9` in the
//! middle of a PUT to the real binary.
//!
//! Without rclone (`apt-get install rclone`, or RECORDER_RCLONE pointing at it) the rclone test
//! says loudly that it skipped, and fails instead when `RECORDER_REQUIRE_RCLONE=1` (as in CI).

use crate::support::clients::Rclone;
use crate::support::dav::{Entry, first, multistatus};
use crate::support::process::{Running, recorder, signup};
use crate::support::{
    ALLPROP, DavUser, FIXTURES, LOCKINFO, NAMED_PROPS, Resp, Server, all_pages, basic, dav_path, eventually, fixture,
    free_port, noise_wav, recording_files, send, send_json, sha256_hex,
};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// Inputs that are not audio, from `tests/fixtures/not-audio`.
const NOT_AUDIO: &[&str] = &["page.html", "image.png", "text-named.mp3"];

// ---------------------------------------------------------------------------------------------
// Helpers over the WebDAV port and the JSON API.

fn propfind_with(s: &Server, u: &DavUser, path: &str, depth: &str, body: &str) -> Resp {
    let req = u.dav(s, "PROPFIND", path).set("Depth", depth).set("Content-Type", "application/xml; charset=utf-8");
    send(req, Some(body.as_bytes()))
}

/// PROPFIND for every property; asserts 207 and returns the entries.
fn propfind(s: &Server, u: &DavUser, path: &str, depth: &str) -> Vec<Entry> {
    let r = propfind_with(s, u, path, depth, ALLPROP);
    assert_eq!(r.status, 207, "PROPFIND {path} Depth {depth}: {}", r.text());
    multistatus(&r.text())
}

/// The files (not collections) a PROPFIND Depth 1 of the folder lists, by shown name.
fn files(s: &Server, u: &DavUser, folder: &str) -> Vec<Entry> {
    propfind(s, u, folder, "1").into_iter().filter(|e| !e.collection).collect()
}

fn names(entries: &[Entry]) -> Vec<String> {
    entries.iter().map(|e| e.name.clone()).collect()
}

fn get(s: &Server, u: &DavUser, name: &str) -> Resp {
    send(u.dav(s, "GET", &dav_path(name)), None)
}

fn put(s: &Server, u: &DavUser, path: &str, bytes: &[u8]) -> Resp {
    send(u.dav(s, "PUT", path), Some(bytes))
}

/// A PUT as a careful client sends it, over a raw connection: `Expect: 100-continue`, and the
/// body only after `100 Continue`. Returns the final status and response head. (A client that
/// sends the body at once may see the connection closed under it instead of a refusal that
/// came before the body.)
fn put_expecting_continue(s: &Server, u: &DavUser, path: &str, body: &[u8]) -> (u16, String) {
    let addr = s.dav_host();
    let mut stream = TcpStream::connect(&addr).expect("connect to the WebDAV port");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    write!(
        stream,
        "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {}\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        basic(&u.name, &u.app),
        body.len()
    )
    .expect("head");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let read_head = |reader: &mut BufReader<TcpStream>| {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            let n = reader.read_line(&mut line).expect("a response");
            head.push_str(&line);
            if n == 0 || line == "\r\n" {
                break;
            }
        }
        let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        (status, head)
    };
    let (status, head) = read_head(&mut reader);
    if status != 100 {
        return (status, head);
    }
    stream.write_all(body).expect("the body after 100 Continue");
    read_head(&mut reader)
}

fn move_to(s: &Server, u: &DavUser, from: &str, to: &str, overwrite: Option<&str>) -> Resp {
    let mut req = u.dav(s, "MOVE", from).set("Destination", &s.dav_url(to));
    if let Some(flag) = overwrite {
        req = req.set("Overwrite", flag);
    }
    send(req, None)
}

/// Every recording of the user through the API (all pages), newest first.
fn recordings(s: &Server, token: &str) -> Vec<Value> {
    all_pages(s, token, "/api/v1/recordings")
}

/// Everything in the user's trash through the API.
fn trash(s: &Server, token: &str) -> Vec<Value> {
    all_pages(s, token, "/api/v1/trash")
}

fn by_id<'a>(list: &'a [Value], id: &str) -> Option<&'a Value> {
    list.iter().find(|r| r["id"] == id)
}

fn by_name<'a>(list: &'a [Value], name: &str) -> Option<&'a Value> {
    list.iter().find(|r| r["name"] == name)
}

/// The last 8 hex digits of a recording id: the suffix of a duplicate's shown name.
fn tail(id: &str) -> String {
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    hex[hex.len() - 8..].to_string()
}

/// Asserts the headers every GET/HEAD answer carries: `nosniff`, and a CSP with `sandbox`
/// among its directives.
fn assert_safe_headers(r: &Resp, what: &str) {
    assert_eq!(r.header("X-Content-Type-Options"), Some("nosniff"), "{what}: {:?}", r.headers);
    let csp = r.header("Content-Security-Policy").unwrap_or_else(|| panic!("{what}: no CSP: {:?}", r.headers));
    assert!(csp.split(';').any(|d| d.trim() == "sandbox"), "{what}: CSP {csp}");
}

/// Asserts a 401's challenge: HTTP Basic in the realm `recorder` (RFC 7617 allows a charset).
fn assert_challenge(r: &Resp, what: &str) {
    assert_eq!(r.status, 401, "{what}: {}", r.text());
    let challenge = r.header("WWW-Authenticate").unwrap_or_else(|| panic!("{what}: no challenge: {:?}", r.headers));
    assert!(challenge.starts_with(r#"Basic realm="recorder""#), "{what}: WWW-Authenticate: {challenge}");
}

fn is_wav_type(t: &str) -> bool {
    matches!(t, "audio/wav" | "audio/x-wav" | "audio/wave" | "audio/vnd.wave")
}

// ---------------------------------------------------------------------------------------------
// The protocol, over raw HTTP.

#[test]
fn webdav_is_off_unless_enabled() {
    let s = Server::start();
    assert!(s.dav.is_none(), "webdav.enabled defaults to false: no listener");
    let s = Server::start_dav();
    let addr = s.dav.clone().expect("a listener when enabled");
    assert!(addr.starts_with("http://127.0.0.1:") && !addr.ends_with(":0"), "{addr}");
    assert_ne!(addr, s.base, "its own port, beside the API's");
}

#[test]
fn options_and_propfind_at_depth_0_1_and_infinity() {
    let s = Server::start_dav();
    let u = DavUser::new(&s, "alice");
    let memo = noise_wav(4_000, 1);
    s.upload_id(&u.session, "memo.wav", &memo);

    let r = send(u.dav(&s, "OPTIONS", "/"), None);
    assert!(matches!(r.status, 200 | 204), "OPTIONS: {} {}", r.status, r.text());
    let dav = r.header("DAV").unwrap_or_else(|| panic!("OPTIONS has no DAV header: {:?}", r.headers));
    let classes: Vec<&str> = dav.split(',').map(str::trim).collect();
    assert!(classes.contains(&"1") && classes.contains(&"2"), "DAV: {dav}");
    if let Some(allow) = r.header("Allow") {
        assert!(allow.contains("PROPFIND"), "the folder's Allow: {allow}");
    }
    let r = send(u.dav(&s, "OPTIONS", "/memo.wav"), None);
    assert!(matches!(r.status, 200 | 204), "OPTIONS of a file: {} {}", r.status, r.text());
    if let Some(allow) = r.header("Allow") {
        for method in ["PROPFIND", "GET", "HEAD", "PUT", "MOVE", "DELETE", "LOCK", "UNLOCK"] {
            assert!(allow.contains(method), "a file's Allow: {allow} lacks {method}");
        }
    }

    // Depth 0 on the folder: the folder alone.
    let r = propfind_with(&s, &u, "/", "0", ALLPROP);
    assert_eq!(r.status, 207, "{}", r.text());
    assert!(
        r.header("Content-Type").is_some_and(|t| t.contains("xml")),
        "a multistatus is XML: {:?}",
        r.header("Content-Type")
    );
    let root = multistatus(&r.text());
    assert_eq!(root.len(), 1, "{root:?}");
    assert_eq!((root[0].path.as_str(), root[0].collection), ("/", true), "{root:?}");

    // Depth 1: the folder, the recording with its properties, and the Trash collection.
    let listed = propfind(&s, &u, "/", "1");
    assert_eq!(listed.len(), 3, "{listed:?}");
    let trash_dir = listed.iter().find(|e| e.name == "Trash").expect("a Trash collection");
    assert!(trash_dir.collection, "{trash_dir:?}");
    let file = listed.iter().find(|e| e.name == "memo.wav").expect("memo.wav is listed");
    assert!(!file.collection);
    assert_eq!(file.path, "/memo.wav");
    assert_eq!(file.prop("getcontentlength"), "4000");
    assert!(is_wav_type(file.prop("getcontenttype")), "{:?}", file.props);
    assert!(file.prop("getlastmodified").ends_with("GMT"), "RFC 1123 date: {:?}", file.props);
    let created = file.prop("creationdate");
    assert!(time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339).is_ok(), "{created}");
    let etag = file.prop("getetag").to_string();

    // Depth 0 on the recording: the same properties.
    let one = propfind(&s, &u, "/memo.wav", "0");
    assert_eq!(one.len(), 1, "{one:?}");
    assert_eq!(one[0].props, file.props);
    assert_eq!(propfind(&s, &u, "/memo.wav", "1").len(), 1, "Depth 1 on a file is the file");

    // An empty body is allprop; rclone's named properties are answered too.
    let r = propfind_with(&s, &u, "/", "1", "");
    assert_eq!(r.status, 207, "{}", r.text());
    let empty_body = multistatus(&r.text());
    assert_eq!(empty_body.iter().find(|e| e.name == "memo.wav").expect("listed").prop("getcontentlength"), "4000");
    let r = propfind_with(&s, &u, "/", "1", NAMED_PROPS);
    assert_eq!(r.status, 207, "{}", r.text());
    let named = multistatus(&r.text());
    let memo_entry = named.iter().find(|e| e.name == "memo.wav").expect("listed");
    assert_eq!(memo_entry.prop("getcontentlength"), "4000");
    assert!(memo_entry.prop("getlastmodified").ends_with("GMT"));
    assert!(named.iter().any(|e| e.name == "Trash" && e.collection), "{named:?}");

    // Infinity is refused with the precondition's name.
    let r = propfind_with(&s, &u, "/", "infinity", ALLPROP);
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("propfind-finite-depth"), "{}", r.text());

    // Unknown names, and the empty trash.
    assert_eq!(propfind_with(&s, &u, "/nope.wav", "0", ALLPROP).status, 404);
    let in_trash = propfind(&s, &u, "/Trash/", "1");
    assert_eq!(in_trash.len(), 1, "only the collection itself: {in_trash:?}");
    assert!(in_trash[0].collection && in_trash[0].path.trim_end_matches('/') == "/Trash", "{in_trash:?}");

    // getetag is an entity-tag, quoted (RFC 4918 15.6), and the one GET answers with.
    assert!(etag.len() > 2 && etag.starts_with('"') && etag.ends_with('"'), "a quoted getetag: {etag}");
    let got = send(u.dav(&s, "GET", "/memo.wav"), None);
    assert_eq!(got.header("ETag"), Some(etag.as_str()), "GET's ETag is PROPFIND's getetag");
}

#[test]
fn a_long_listing_names_every_recording_once_in_name_order() {
    let s = Server::start_dav_with(|c| c.analysis.enabled = false);
    let u = DavUser::new(&s, "lena");
    const N: usize = 1_200;
    let expected: HashMap<String, usize> = (0..N).map(|i| (format!("take-{i:04}.wav"), 1_000 + i % 7)).collect();
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (s, u) = (&s, &u);
            scope.spawn(move || {
                for i in (t..N).step_by(4) {
                    s.upload_id(&u.session, &format!("take-{i:04}.wav"), &noise_wav(1_000 + i % 7, i as u64 + 1));
                }
            });
        }
    });
    assert_eq!(recordings(&s, &u.session).len(), N);

    let started = Instant::now();
    let r = propfind_with(&s, &u, "/", "1", ALLPROP);
    let took = started.elapsed();
    assert_eq!(r.status, 207, "{}", r.text());
    // Streamed page by page: no length known up front.
    assert!(
        r.header("Transfer-Encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")),
        "a long listing is streamed (chunked), not built whole first: {:?}",
        r.headers
    );
    let listed = multistatus(&r.text());
    let listed_files: Vec<&Entry> = listed.iter().filter(|e| !e.collection).collect();
    let shown: Vec<String> = listed_files.iter().map(|e| e.name.clone()).collect();
    let distinct: HashSet<&String> = shown.iter().collect();
    assert_eq!(shown.len(), N, "every recording listed once ({} distinct)", distinct.len());
    assert_eq!(distinct.len(), N, "no recording listed twice");
    for entry in &listed_files {
        let size = expected.get(&entry.name).unwrap_or_else(|| panic!("unexpected name {}", entry.name));
        assert_eq!(entry.prop("getcontentlength"), size.to_string(), "{}", entry.name);
    }
    let mut sorted = shown.clone();
    sorted.sort();
    assert_eq!(shown, sorted, "the listing is in name order");
    assert!(listed.iter().any(|e| e.name == "Trash" && e.collection));
    eprintln!("PROPFIND Depth 1 of {N} recordings: {took:?}");
}

#[test]
fn duplicate_names_get_the_id_suffix_and_each_opens_its_own_recording() {
    let s = Server::start_dav();
    let u = DavUser::new(&s, "dora");
    let bodies: Vec<Vec<u8>> = (0..3).map(|i| noise_wav(2_000 + i, 10 + i as u64)).collect();
    let ids: Vec<String> = bodies.iter().map(|b| s.upload_id(&u.session, "dup.wav", b)).collect();
    let bare: Vec<Vec<u8>> = (0..2).map(|i| noise_wav(3_000 + i, 20 + i as u64)).collect();
    let bare_ids: Vec<String> = bare.iter().map(|b| s.upload_id(&u.session, "memo", b)).collect();
    let trash_named = noise_wav(2_500, 30);
    let trash_id = s.upload_id(&u.session, "Trash", &trash_named);
    let slashed = noise_wav(2_600, 31);
    s.upload_id(&u.session, "a/b.wav", &slashed);

    let shown = names(&files(&s, &u, "/"));
    let expected = [
        ("dup.wav".to_string(), &bodies[0]),
        (format!("dup [{}].wav", tail(&ids[1])), &bodies[1]),
        (format!("dup [{}].wav", tail(&ids[2])), &bodies[2]),
        ("memo".to_string(), &bare[0]),
        (format!("memo [{}]", tail(&bare_ids[1])), &bare[1]),
        (format!("Trash [{}]", tail(&trash_id)), &trash_named),
        ("a\u{2215}b.wav".to_string(), &slashed),
    ];
    let want: HashSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    let got: HashSet<&str> = shown.iter().map(String::as_str).collect();
    assert_eq!(got, want, "shown names: {shown:?}");
    assert_eq!(shown.len(), expected.len(), "each once: {shown:?}");
    let listed = propfind(&s, &u, "/", "1");
    assert_eq!(
        listed.iter().filter(|e| e.name == "Trash").map(|e| e.collection).collect::<Vec<_>>(),
        vec![true],
        "`Trash` is the collection alone: {listed:?}"
    );

    for (name, bytes) in &expected {
        let r = get(&s, &u, name);
        assert_eq!(r.status, 200, "GET {name}: {}", r.text());
        assert_eq!(sha256_hex(&r.body), sha256_hex(bytes), "{name} opens its own recording");
        let one = propfind(&s, &u, &dav_path(name), "0");
        assert_eq!(one[0].prop("getcontentlength"), bytes.len().to_string(), "{name}");
    }
}

#[test]
fn get_and_head_answer_ranges_with_the_stored_type_and_safe_headers() {
    let s = Server::start_dav();
    let u = DavUser::new(&s, "gina");
    let bytes = noise_wav(10_000, 3);
    s.upload_id(&u.session, "clip.wav", &bytes);
    // An M4A named .mp3: served as what it is, listed as what its name says.
    let m4a = fixture("speech.m4a");
    s.upload_id(&u.session, "voice.mp3", &m4a);

    let r = get(&s, &u, "clip.wav");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, bytes);
    assert_eq!(r.header("Content-Type"), Some("audio/wav"));
    assert_safe_headers(&r, "GET");

    let ranged = |range: &str| send(u.dav(&s, "GET", "/clip.wav").set("Range", range), None);
    let r = ranged("bytes=100-199");
    assert_eq!(r.status, 206, "{}", r.text());
    assert_eq!(r.body, &bytes[100..200]);
    assert_eq!(r.header("Content-Range"), Some("bytes 100-199/10000"));
    assert_eq!(r.header("Content-Type"), Some("audio/wav"));
    assert_safe_headers(&r, "GET 206");
    let r = ranged("bytes=-100");
    assert_eq!((r.status, r.body.as_slice()), (206, &bytes[9_900..]));
    let r = ranged("bytes=9990-");
    assert_eq!((r.status, r.body.as_slice()), (206, &bytes[9_990..]));
    assert_eq!(r.header("Content-Range"), Some("bytes 9990-9999/10000"));
    let r = ranged("bytes=20000-30000");
    assert_eq!(r.status, 416, "{}", r.text());
    assert_eq!(r.header("Content-Range"), Some("bytes */10000"));
    assert_safe_headers(&r, "GET 416");

    let r = send(u.dav(&s, "HEAD", "/clip.wav"), None);
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(r.header("Content-Length"), Some("10000"));
    assert_eq!(r.header("Content-Type"), Some("audio/wav"));
    assert_safe_headers(&r, "HEAD");

    let r = get(&s, &u, "voice.mp3");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("audio/mp4"), "the stored type, not the name's");
    assert_eq!(sha256_hex(&r.body), sha256_hex(&m4a));
    assert_safe_headers(&r, "GET voice.mp3");
    let listed = propfind(&s, &u, "/voice.mp3", "0");
    assert_eq!(listed[0].prop("getcontenttype"), "audio/mpeg", "PROPFIND guesses from the extension");

    assert_eq!(get(&s, &u, "nope.wav").status, 404);
}

#[test]
fn put_stores_through_the_upload_path_and_never_replaces_audio() {
    let s = Server::start_dav();
    let u = DavUser::new(&s, "pete");
    let m4a = fixture("speech.m4a");

    let r = put(&s, &u, "/new.m4a", &m4a);
    assert_eq!(r.status, 201, "{}", r.text());
    let list = recordings(&s, &u.session);
    assert_eq!(list.len(), 1, "{list:?}");
    let rec = &list[0];
    assert_eq!(rec["name"], "new.m4a");
    assert_eq!(rec["content_type"], "audio/mp4");
    assert_eq!(rec["size"], m4a.len());
    assert_eq!(rec["sha256"], sha256_hex(&m4a));
    let duration = rec["duration_ms"].as_i64().unwrap_or_else(|| panic!("no duration: {rec}"));
    assert!((duration - 4179).abs() <= 250, "{duration} ms, the speech is 4179 ms");
    let r = get(&s, &u, "new.m4a");
    assert_eq!(sha256_hex(&r.body), sha256_hex(&m4a));

    // The same bytes again: nothing new.
    let r = put(&s, &u, "/new.m4a", &m4a);
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(recordings(&s, &u.session).len(), 1);

    // Other bytes under a name that exists: the phone's " (2)" suffix, never a replacement.
    let takes: Vec<Vec<u8>> = (0..3).map(|i| noise_wav(5_000 + i, 40 + i as u64)).collect();
    for take in &takes {
        let r = put(&s, &u, "/memo.wav", take);
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let list = recordings(&s, &u.session);
    for (name, take) in ["memo.wav", "memo (2).wav", "memo (3).wav"].iter().zip(&takes) {
        let rec = by_name(&list, name).unwrap_or_else(|| panic!("no {name} in {list:?}"));
        assert_eq!(rec["sha256"], sha256_hex(take), "{name}");
        assert_eq!(get(&s, &u, name).body, *take, "{name}");
    }
    let r = put(&s, &u, &dav_path("memo (2).wav"), &takes[1]);
    assert_eq!(r.status, 204, "the same bytes under the suffixed name: {}", r.text());

    // A name without an extension.
    let voice: Vec<Vec<u8>> = (0..2).map(|i| noise_wav(6_000 + i, 50 + i as u64)).collect();
    for v in &voice {
        assert_eq!(put(&s, &u, &dav_path("voice note"), v).status, 201);
    }
    let list = recordings(&s, &u.session);
    assert_eq!(by_name(&list, "voice note (2)").map(|r| r["sha256"].clone()), Some(json!(sha256_hex(&voice[1]))));
    assert_eq!(list.len(), 6, "{list:?}");
    let shown: HashSet<String> = names(&files(&s, &u, "/")).into_iter().collect();
    for name in ["new.m4a", "memo.wav", "memo (2).wav", "memo (3).wav", "voice note", "voice note (2)"] {
        assert!(shown.contains(name), "{name} in {shown:?}");
    }

    // Nothing is written into the trash folder.
    let r = put(&s, &u, "/Trash/x.wav", &takes[0]);
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(recordings(&s, &u.session).len(), 6);
    assert!(trash(&s, &u.session).is_empty());
    s.wait_for_jobs();
    assert!(s.tmp_files().is_empty(), "{:?}", s.tmp_files());
}

#[test]
fn put_refuses_what_is_not_audio_or_too_large_and_leaves_nothing() {
    let s = Server::start_dav_with(|c| c.storage.max_upload_size = 100_000);
    let u = DavUser::new(&s, "nina");
    for name in NOT_AUDIO {
        let r = put(&s, &u, &dav_path(name), &fixture(&format!("not-audio/{name}")));
        assert_eq!(r.status, 415, "{name}: {}", r.text());
    }
    // Refused from Content-Length, before the body: a client that waits for `100 Continue`
    // hears 413 and never sends it.
    let (status, head) = put_expecting_continue(&s, &u, "/big.wav", &noise_wav(250_000, 7));
    assert_eq!(status, 413, "{head}");
    assert!(recordings(&s, &u.session).is_empty());
    assert!(s.files().is_empty(), "no temp file and no stored file: {:?}", s.files());
    assert_eq!(names(&files(&s, &u, "/")), Vec::<String>::new());
    // Still taking audio.
    assert_eq!(put(&s, &u, "/ok.wav", &noise_wav(50_000, 8)).status, 201);
}

#[test]
fn move_renames_trashes_restores_and_an_overwritten_destination_goes_to_the_trash() {
    let s = Server::start_dav();
    let u = DavUser::new(&s, "mona");
    let a = s.upload_id(&u.session, "a.wav", &noise_wav(2_000, 1));
    let y = s.upload_id(&u.session, "y.wav", &noise_wav(2_100, 2));
    let z = s.upload_id(&u.session, "z.wav", &noise_wav(2_200, 3));
    let name_of =
        |id: &str| by_id(&recordings(&s, &u.session), id).map(|r| r["name"].as_str().unwrap_or("").to_string());

    // Rename.
    let r = move_to(&s, &u, "/a.wav", "/b.wav", None);
    assert!(matches!(r.status, 201 | 204), "MOVE rename: {} {}", r.status, r.text());
    assert_eq!(name_of(&a).as_deref(), Some("b.wav"));
    assert_eq!(get(&s, &u, "a.wav").status, 404);
    assert_eq!(get(&s, &u, "b.wav").status, 200);

    // Into the trash.
    let r = move_to(&s, &u, "/b.wav", "/Trash/b.wav", None);
    assert!(matches!(r.status, 201 | 204), "MOVE to the trash: {} {}", r.status, r.text());
    assert_eq!(name_of(&a), None);
    assert!(by_id(&trash(&s, &u.session), &a).is_some(), "in the API's trash");
    assert_eq!(names(&files(&s, &u, "/Trash/")), vec!["b.wav".to_string()]);
    assert!(files(&s, &u, "/Trash/")[0].path.starts_with("/Trash/"));

    // Out of the trash, under a new name.
    let r = move_to(&s, &u, "/Trash/b.wav", "/c.wav", None);
    assert!(matches!(r.status, 201 | 204), "MOVE out of the trash: {} {}", r.status, r.text());
    assert_eq!(name_of(&a).as_deref(), Some("c.wav"));
    assert!(trash(&s, &u.session).is_empty());

    // Onto an existing name: the one there goes to the trash, nothing is lost.
    let r = move_to(&s, &u, "/c.wav", "/y.wav", Some("T"));
    assert!(matches!(r.status, 201 | 204), "MOVE over y.wav: {} {}", r.status, r.text());
    assert_eq!(name_of(&a).as_deref(), Some("y.wav"));
    assert_eq!(name_of(&y), None);
    assert!(by_id(&trash(&s, &u.session), &y).is_some(), "the overwritten y.wav is in the trash");

    // Overwrite: F onto an existing name: 412 (RFC 4918), nothing changes.
    let r = move_to(&s, &u, "/y.wav", "/z.wav", Some("F"));
    assert_eq!(r.status, 412, "{}", r.text());
    assert_eq!(name_of(&a).as_deref(), Some("y.wav"));
    assert_eq!(name_of(&z).as_deref(), Some("z.wav"));

    assert_eq!(move_to(&s, &u, "/nope.wav", "/other.wav", None).status, 404);
    assert_eq!(recordings(&s, &u.session).len(), 2);
}

#[test]
fn delete_trashes_delete_in_the_trash_is_final_and_folders_are_fixed() {
    let s = Server::start_dav();
    let u = DavUser::new(&s, "dina");
    let d = s.upload_id(&u.session, "d.wav", &noise_wav(2_000, 4));
    s.upload_id(&u.session, "keep.wav", &noise_wav(2_100, 5));

    let r = send(u.dav(&s, "DELETE", "/d.wav"), None);
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(by_id(&recordings(&s, &u.session), &d).is_none());
    assert!(by_id(&trash(&s, &u.session), &d).is_some(), "in the API's trash");
    assert_eq!(propfind_with(&s, &u, "/d.wav", "0", ALLPROP).status, 404);
    assert_eq!(names(&files(&s, &u, "/Trash/")), vec!["d.wav".to_string()]);

    let r = send(u.dav(&s, "DELETE", "/Trash/d.wav"), None);
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(trash(&s, &u.session).is_empty());
    send(s.auth("GET", &format!("/api/v1/recordings/{d}"), &u.session), None).assert_error(404, "not_found");
    eventually("the file of the purged recording is removed", || s.stored_ids().len() == 1);

    for path in ["/", "/Trash/"] {
        let r = send(u.dav(&s, "DELETE", path), None);
        assert_eq!(r.status, 403, "DELETE {path}: {}", r.text());
    }
    let r = send(u.dav(&s, "MKCOL", "/folder/"), None);
    assert_eq!(r.status, 403, "MKCOL: {}", r.text());
    let r = send(u.dav(&s, "COPY", "/keep.wav").set("Destination", &s.dav_url("/copy.wav")), None);
    assert_eq!(r.status, 403, "COPY: {}", r.text());
    assert_eq!(send(u.dav(&s, "DELETE", "/nope.wav"), None).status, 404);
    assert_eq!(names(&files(&s, &u, "/")), vec!["keep.wav".to_string()]);
}

#[test]
fn a_lock_keeps_out_writes_without_its_token_until_unlocked() {
    let s = Server::start_dav();
    let u = DavUser::new(&s, "lola");
    let other = DavUser::new(&s, "lars");
    s.upload_id(&u.session, "locked.wav", &noise_wav(2_000, 6));

    let r = send(
        u.dav(&s, "LOCK", "/locked.wav")
            .set("Depth", "0")
            .set("Timeout", "Second-600")
            .set("Content-Type", "application/xml"),
        Some(LOCKINFO.as_bytes()),
    );
    assert_eq!(r.status, 200, "LOCK: {}", r.text());
    let token = r.header("Lock-Token").unwrap_or_else(|| panic!("no Lock-Token: {:?}", r.headers)).to_string();
    assert!(token.starts_with('<') && token.ends_with('>'), "Lock-Token is a Coded-URL: {token}");
    let body = r.text();
    let in_body = first(&body, "locktoken").and_then(|t| first(t, "href")).map(|h| h.trim().to_string());
    assert_eq!(in_body.as_deref(), Some(&token[1..token.len() - 1]), "{body}");

    let r = put(&s, &u, "/locked.wav", &noise_wav(2_001, 7));
    assert_eq!(r.status, 423, "PUT without the token: {}", r.text());
    let r = send(u.dav(&s, "DELETE", "/locked.wav"), None);
    assert_eq!(r.status, 423, "DELETE without the token: {}", r.text());
    assert_eq!(recordings(&s, &u.session).len(), 1);
    // Locks are per user: another user's folder is not locked.
    assert_eq!(put(&s, &other, "/locked.wav", &noise_wav(2_001, 7)).status, 201);

    let r = send(u.dav(&s, "PUT", "/locked.wav").set("If", &format!("({token})")), Some(&noise_wav(2_002, 8)));
    assert_eq!(r.status, 201, "PUT with the token: {}", r.text());
    assert_eq!(recordings(&s, &u.session).len(), 2);

    let r = send(u.dav(&s, "UNLOCK", "/locked.wav").set("Lock-Token", &token), None);
    assert_eq!(r.status, 204, "UNLOCK: {}", r.text());
    let r = put(&s, &u, "/locked.wav", &noise_wav(2_003, 9));
    assert_eq!(r.status, 201, "PUT after UNLOCK: {}", r.text());
    assert_eq!(recordings(&s, &u.session).len(), 3);
}

#[test]
fn basic_auth_takes_an_app_token_only_and_failures_are_throttled() {
    let s = Server::start_dav();
    let alice = DavUser::new(&s, "alice");
    let bob = DavUser::new(&s, "bob");
    let ok = |r: &Resp| r.status == 207;

    let r = send(s.dav_req("PROPFIND", "/").set("Depth", "0"), None);
    assert_challenge(&r, "no credentials");

    let with = |user: &str, secret: &str| send(s.dav("PROPFIND", "/", user, secret).set("Depth", "0"), None);
    assert_challenge(&with("alice", "not-a-token"), "a wrong token");
    assert_eq!(with("alice", &alice.session).status, 401, "a browser session is not an app token");
    assert_eq!(with("alice", &bob.app).status, 401, "another user's app token with this username");
    assert_eq!(with("alice", "password123").status, 401, "never the password");
    let r =
        send(s.dav_req("PROPFIND", "/").set("Depth", "0").set("Authorization", &format!("Bearer {}", alice.app)), None);
    assert_eq!(r.status, 401, "Basic only: {}", r.text());
    assert!(ok(&with("alice", &alice.app)), "the app token with its username");

    // A revoked app token stops working at once.
    let created = send_json(s.auth("POST", "/api/v1/tokens", &bob.session), &json!({"name": "spare"})).json();
    let spare = created["token"].as_str().expect("token").to_string();
    assert!(ok(&with("bob", &spare)));
    let id = created["id"].as_str().expect("id");
    assert_eq!(send(s.auth("DELETE", &format!("/api/v1/tokens/{id}"), &bob.session), None).status, 204);
    assert_eq!(with("bob", &spare).status, 401, "a revoked token");

    // Five failures for a username within 15 minutes: 429 with Retry-After, even with the
    // right token, until the window has passed.
    let carl = DavUser::new(&s, "carl");
    for _ in 0..5 {
        assert_eq!(with("carl", "guess").status, 401);
    }
    let r = with("carl", &carl.app);
    assert_eq!(r.status, 429, "{}", r.text());
    let wait: u64 = r.header("Retry-After").and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{:?}", r.headers));
    assert!(wait > 0 && wait <= 900, "{wait}");
    assert!(ok(&with("alice", &alice.app)), "another username is not throttled");
    s.clock.advance(15 * 60 * 1000 + 1000);
    assert!(ok(&with("carl", &carl.app)), "after the window");
}

#[test]
fn one_user_never_sees_another_users_recordings() {
    let s = Server::start_dav();
    let alice = DavUser::new(&s, "alice");
    let bob = DavUser::new(&s, "bob");
    let secret = noise_wav(3_000, 9);
    let id = s.upload_id(&alice.session, "secret.wav", &secret);
    s.upload_id(&bob.session, "mine.wav", &noise_wav(3_100, 10));

    assert_eq!(get(&s, &bob, "secret.wav").status, 404);
    assert_eq!(send(bob.dav(&s, "HEAD", "/secret.wav"), None).status, 404);
    assert_eq!(propfind_with(&s, &bob, "/secret.wav", "0", ALLPROP).status, 404);
    assert_eq!(send(bob.dav(&s, "DELETE", "/secret.wav"), None).status, 404);
    assert_eq!(move_to(&s, &bob, "/secret.wav", "/taken.wav", None).status, 404);
    assert_eq!(names(&files(&s, &bob, "/")), vec!["mine.wav".to_string()]);
    assert_eq!(names(&files(&s, &bob, "/Trash/")), Vec::<String>::new());
    // Bob's DELETE reached nothing of Alice's.
    let list = recordings(&s, &alice.session);
    assert_eq!(by_id(&list, &id).map(|r| r["name"].clone()), Some(json!("secret.wav")));
    assert!(trash(&s, &alice.session).is_empty());
    assert_eq!(get(&s, &alice, "secret.wav").body, secret);
    assert_eq!(names(&files(&s, &alice, "/")), vec!["secret.wav".to_string()]);
}

#[test]
fn rclone_copies_lists_downloads_renames_and_deletes_through_webdav() {
    let test = "rclone_copies_lists_downloads_renames_and_deletes_through_webdav";
    let Some(bin) = Rclone::find(test) else { return };
    let s = Server::start_dav();
    let u = DavUser::new(&s, "rclone");
    let rclone = Rclone::new(bin, &s, &u);

    // Up: every fixture becomes a recording of its type and duration.
    let up = tempfile::tempdir().expect("tempdir");
    for (name, ..) in FIXTURES {
        std::fs::write(up.path().join(name), fixture(name)).expect("write a fixture");
    }
    let source = up.path().display().to_string();
    rclone.ok(&["copy", &source, ":webdav:"]);
    let list = recordings(&s, &u.session);
    assert_eq!(list.len(), FIXTURES.len(), "{list:?}");
    for (name, content_type, truth_ms) in FIXTURES {
        let rec = by_name(&list, name).unwrap_or_else(|| panic!("no recording named {name}: {list:?}"));
        let bytes = fixture(name);
        assert_eq!(rec["content_type"], *content_type, "{name}");
        assert_eq!(rec["size"], bytes.len(), "{name}");
        assert_eq!(rec["sha256"], sha256_hex(&bytes), "{name}");
        let duration = rec["duration_ms"].as_i64().unwrap_or_else(|| panic!("{name} has no duration: {rec}"));
        assert!((duration - truth_ms).abs() <= 250, "{name}: {duration} ms, truth {truth_ms} ms");
    }

    // Listed with the right sizes; the trash is a folder beside them.
    let listed: Value = serde_json::from_str(&rclone.ok(&["lsjson", ":webdav:"])).expect("lsjson is JSON");
    let listed = listed.as_array().expect("an array");
    assert!(listed.iter().any(|e| e["Name"] == "Trash" && e["IsDir"] == true), "{listed:?}");
    let listed_files: Vec<&Value> = listed.iter().filter(|e| e["IsDir"] == false).collect();
    assert_eq!(listed_files.len(), FIXTURES.len(), "{listed:?}");
    for (name, ..) in FIXTURES {
        let entry = listed_files.iter().find(|e| e["Name"] == *name).unwrap_or_else(|| panic!("{name} not listed"));
        assert_eq!(entry["Size"], fixture(name).len(), "{name}");
    }

    // Down again, byte for byte.
    let down = tempfile::tempdir().expect("tempdir");
    let target = down.path().display().to_string();
    rclone.ok(&["copy", ":webdav:", &target, "--exclude", "/Trash/**"]);
    let mut got: Vec<String> = std::fs::read_dir(down.path())
        .expect("read the download dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
        .collect();
    got.sort();
    let mut want: Vec<String> = FIXTURES.iter().map(|(n, ..)| n.to_string()).collect();
    want.sort();
    assert_eq!(got, want);
    for (name, ..) in FIXTURES {
        let back = std::fs::read(down.path().join(name)).expect("downloaded file");
        assert!(back == fixture(name), "{name} comes back byte for byte");
    }

    // A rename on the server, and a delete into the trash.
    let mp3 = by_name(&list, "speech.mp3").expect("mp3")["id"].as_str().expect("id").to_string();
    rclone.ok(&["moveto", ":webdav:speech.mp3", ":webdav:renamed.mp3"]);
    let list = recordings(&s, &u.session);
    assert_eq!(by_id(&list, &mp3).map(|r| r["name"].clone()), Some(json!("renamed.mp3")), "{list:?}");
    assert!(by_name(&list, "speech.mp3").is_none());
    let ogg = by_name(&list, "speech.ogg").expect("ogg")["id"].as_str().expect("id").to_string();
    rclone.ok(&["deletefile", ":webdav:speech.ogg"]);
    let list = recordings(&s, &u.session);
    assert!(by_id(&list, &ogg).is_none());
    let in_trash = trash(&s, &u.session);
    assert_eq!(in_trash.len(), 1, "{in_trash:?}");
    assert_eq!(in_trash[0]["id"], ogg.as_str());
    let trash_listed: Value = serde_json::from_str(&rclone.ok(&["lsjson", ":webdav:Trash"])).expect("JSON");
    assert_eq!(
        trash_listed.as_array().map(|a| a.iter().map(|e| e["Name"].clone()).collect::<Vec<_>>()),
        Some(vec![json!("speech.ogg")])
    );

    // What is not audio is refused, and leaves nothing behind.
    for name in NOT_AUDIO {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/not-audio").join(name);
        let ran = rclone.remote(&["copyto", &path.display().to_string(), &format!(":webdav:{name}")]);
        assert!(!ran.ok, "rclone copied {name}, which is not audio:\n{}", ran.stderr);
        assert!(ran.stderr.contains("415"), "{name}: rclone reports the server's 415:\n{}", ran.stderr);
    }
    let after = recordings(&s, &u.session);
    assert_eq!(after.len(), FIXTURES.len() - 1, "{after:?}");
    assert!(NOT_AUDIO.iter().all(|n| by_name(&after, n).is_none()));
    assert_eq!(trash(&s, &u.session).len(), 1);
    s.wait_for_jobs();
    assert!(s.tmp_files().is_empty(), "{:?}", s.tmp_files());
}

// ---------------------------------------------------------------------------------------------
// The real binary.

/// The binary on `data` with WebDAV on `dav_port`; `base` is its API address (a `listening on`
/// line for the WebDAV port, if the server logs one, is not taken for it).
fn serve_dav(home: &Path, data: &Path, dav_port: u16) -> Running {
    let mut cmd = recorder(home);
    cmd.env("RECORDER_WEBDAV_ENABLED", "1")
        .env("RECORDER_WEBDAV_PORT", dav_port.to_string())
        .arg("--data-dir")
        .arg(data)
        .args(["--port", "0"]);
    let dav_suffix = format!(":{dav_port}");
    let running = Running::start_announcing(cmd, move |addr| !addr.ends_with(&dav_suffix));
    // The WebDAV port answers (from liftoff on).
    let dav = format!("http://127.0.0.1:{dav_port}/");
    let deadline = Instant::now() + Duration::from_secs(10);
    while matches!(ureq::request("OPTIONS", &dav).call(), Err(ureq::Error::Transport(_))) {
        assert!(Instant::now() < deadline, "nothing answers on the WebDAV port {dav_port}");
        std::thread::sleep(Duration::from_millis(20));
    }
    running
}

fn app_token_of(server: &Running, session: &str) -> String {
    let r = send_json(server.auth("POST", "/api/v1/tokens", session), &json!({"name": "webdav"}));
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["token"].as_str().expect("token").to_string()
}

fn dir_len(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn kill_9_in_the_middle_of_a_put_leaves_no_recording_and_startup_empties_tmp() {
    let home = tempfile::tempdir().expect("tempdir");
    let data = home.path().join("data");
    let port = free_port();
    let server = serve_dav(home.path(), &data, port);
    let session = signup(&server, "kira");
    let token = app_token_of(&server, &session);

    // A 64 MiB PUT, sent slowly, and cut by `kill -9` once the server is writing it.
    let total = 64 << 20;
    let body = noise_wav(total, 77);
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the WebDAV port");
    write!(
        stream,
        "PUT /big.wav HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: {}\r\nContent-Length: {total}\r\n\r\n",
        basic("kira", &token)
    )
    .expect("head");
    // The first 4 MiB, slowly; then the server is seen writing it, and the rest never comes.
    let tmp = data.join("tmp");
    for chunk in body[..4 << 20].chunks(256 << 10) {
        stream.write_all(chunk).expect("part of the body");
        std::thread::sleep(Duration::from_millis(5));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while dir_len(&tmp) == 0 {
        assert!(Instant::now() < deadline, "4 MiB into the PUT, still nothing in {}", tmp.display());
        std::thread::sleep(Duration::from_millis(10));
    }
    server.kill9();
    drop(stream);
    assert!(dir_len(&tmp) > 0, "the crash left a partial upload to clean");

    let port = free_port();
    let server = serve_dav(home.path(), &data, port);
    assert_eq!(dir_len(&tmp), 0, "startup empties tmp/");
    let list = send(server.auth("GET", "/api/v1/recordings", &session), None);
    assert_eq!(list.json()["recordings"], json!([]));
    assert_eq!(recording_files(&data).len(), 0);
    let r = send(
        ureq::request("PROPFIND", &format!("http://127.0.0.1:{port}/"))
            .set("Depth", "1")
            .set("Authorization", &basic("kira", &token)),
        None,
    );
    assert_eq!(r.status, 207, "{}", r.text());
    assert!(multistatus(&r.text()).iter().all(|e| e.collection), "no file listed: {}", r.text());
}

#[test]
fn each_webdav_request_is_logged_once_without_credentials() {
    let home = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let server = serve_dav(home.path(), &home.path().join("data"), port);
    let session = signup(&server, "lou");
    let token = app_token_of(&server, &session);
    let propfind = |secret: &str| {
        send(
            ureq::request("PROPFIND", &format!("http://127.0.0.1:{port}/"))
                .set("Depth", "0")
                .set("Authorization", &basic("lou", secret)),
            None,
        )
        .status
    };
    let before = server.log().iter().filter(|l| l.contains("PROPFIND")).count();
    assert_eq!(propfind(&token), 207);
    assert_eq!(propfind(&token), 207);
    assert_eq!(propfind("wrong wrong"), 401);
    let propfinds = || server.log().iter().filter(|l| l.contains("PROPFIND")).count() - before;
    // One more request, of another method, after them: once its line is there, every line of
    // the three before it is too.
    let optionses = || server.log().iter().filter(|l| l.contains("OPTIONS")).count();
    let options_before = optionses();
    let options = send(ureq::request("OPTIONS", &format!("http://127.0.0.1:{port}/")), None);
    assert!(options.status < 500, "{}", options.status);
    eventually("the last request is logged", || optionses() > options_before || propfinds() > 3);
    assert_eq!(propfinds(), 3, "one line per request");
    let log = server.log().join("\n");
    let credentials = basic("lou", &token);
    let encoded = credentials.trim_start_matches("Basic ");
    for secret in [token.as_str(), session.as_str(), encoded, "wrong wrong", "password123"] {
        assert!(!log.contains(secret), "the log leaks {secret}: {log}");
    }
}
