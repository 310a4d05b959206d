//! Hostile input: what a careless or malicious client can send, and what must still hold.
//!
//! WebDAV bodies nested thousands deep, with a DOCTYPE or over 64 KiB; MOVE, COPY and DELETE
//! aimed at the two folders under every spelling of their names; event streams that outlive a
//! revoked token or a logout; guessing the password on the routes that check it; another
//! account's requests on an upload in flight; thousands of ranges in one `Range`; share tokens in
//! the log, zero-length tus uploads, invisible characters in names, the scheme in the cross-site
//! check and lengths at the edge of u64; and a seeded WebDAV fuzz (`RECORDER_FUZZ_SEED` replays a
//! run).
//!
//! Requests that must reach the server exactly as written go over a raw connection
//! (`support::net`).

use crate::support::net::{IO_TIMEOUT, raw, read_response};
use crate::support::process::{serve, signup};
use crate::support::{
    ALLPROP, DavUser, LOCKINFO, NAMED_PROPS, Resp, Server, all_pages, basic, dav_path, eventually, fixture, noise_wav,
    send, send_bounded, send_json, sha256_hex, steady_tone_wav, tone_wav, urlencode,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const XML: &str = "application/xml; charset=utf-8";

const PROPPATCH: &str = r#"<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:displayname>x</D:displayname></D:prop></D:set></D:propertyupdate>"#;

// ---------------------------------------------------------------------------------------------
// Accounts, recordings and what the API says about them.

/// WebDAV over a raw connection, for spellings an HTTP client would rewrite.
trait RawDav {
    fn raw(&self, s: &Server, method: &str, target: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Resp;
}

impl RawDav for DavUser {
    /// A WebDAV request over a raw connection, the target as written, with this user's
    /// credentials; panics when no answer comes.
    fn raw(&self, s: &Server, method: &str, target: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Resp {
        let credentials = basic(&self.name, &self.app);
        let mut all = vec![("Authorization", credentials.as_str())];
        all.extend_from_slice(headers);
        raw(&s.dav_host(), method, target, &all, body)
            .unwrap_or_else(|e| panic!("{method} {}: no answer: {e}", clip(target)))
    }
}

/// Asserts the API error shape, saying which request it was.
fn expect_error(r: &Resp, status: u16, code: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: answered {} {}", r.status, r.text());
    assert!(
        r.header("Content-Type").is_some_and(|c| c.starts_with("application/json")),
        "{what}: the error is not JSON: {:?} {}",
        r.headers,
        r.text()
    );
    let json: Value =
        serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", r.text()));
    assert_eq!(json["error"]["code"], code, "{what}: {json}");
    assert!(json["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: no message: {json}");
}

/// The seconds of a 429's `Retry-After`: a positive integer.
fn retry_after(r: &Resp, what: &str) -> u64 {
    let value = r.header("Retry-After").unwrap_or_else(|| panic!("{what}: a 429 without Retry-After: {:?}", r.headers));
    let seconds: u64 = value.trim().parse().unwrap_or_else(|e| panic!("{what}: Retry-After {value:?}: {e}"));
    assert!(seconds > 0, "{what}: Retry-After {seconds}");
    seconds
}

/// Moves a recording to the trash through the API.
fn to_trash(s: &Server, token: &str, id: &str) {
    let r = send(s.auth("DELETE", &format!("/api/v1/recordings/{id}"), token), None);
    assert_eq!(r.status, 204, "trash {id}: {}", r.text());
}

/// A recording as the API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    name: String,
    in_trash: bool,
    sha256: String,
}

/// Every recording of a user, live and in the trash, by id.
type Snapshot = BTreeMap<String, Rec>;

fn snapshot(s: &Server, token: &str) -> Snapshot {
    let mut out = Snapshot::new();
    for (path, in_trash) in [("/api/v1/recordings", false), ("/api/v1/trash", true)] {
        for r in all_pages(s, token, path) {
            let id = r["id"].as_str().expect("id").to_string();
            let rec = Rec {
                name: r["name"].as_str().expect("name").to_string(),
                in_trash,
                sha256: r["sha256"].as_str().expect("sha256").to_string(),
            };
            assert!(out.insert(id.clone(), rec).is_none(), "{id} is listed twice");
        }
    }
    out
}

/// How one recording differs between two snapshots (the ids are for the messages).
#[derive(Debug)]
#[allow(dead_code)]
enum Change {
    Added {
        id: String,
        to: Rec,
    },
    Removed {
        id: String,
        from: Rec,
    },
    /// Renamed, or moved between the folder and the trash.
    Changed {
        id: String,
        from: Rec,
        to: Rec,
    },
}

fn diff(before: &Snapshot, after: &Snapshot) -> Vec<Change> {
    let mut out = Vec::new();
    for (id, from) in before {
        match after.get(id) {
            None => out.push(Change::Removed { id: id.clone(), from: from.clone() }),
            Some(to) if to != from => out.push(Change::Changed { id: id.clone(), from: from.clone(), to: to.clone() }),
            Some(_) => {}
        }
    }
    for (id, to) in after {
        if !before.contains_key(id) {
            out.push(Change::Added { id: id.clone(), to: to.clone() });
        }
    }
    out
}

/// At most 160 characters of `text`, for messages.
fn clip(text: &str) -> String {
    let count = text.chars().count();
    if count <= 160 {
        text.to_string()
    } else {
        format!("{}… ({count} chars)", text.chars().take(160).collect::<String>())
    }
}

/// The server still answers: a PROPFIND Depth 1 of the folder, and the API.
fn assert_alive(s: &Server, u: &DavUser, what: &str) {
    let r = u.raw(s, "PROPFIND", "/", &[("Depth", "1")], None);
    assert_eq!(r.status, 207, "after {what}: PROPFIND / answers {} {}", r.status, r.text());
    let me = send(s.auth("GET", "/api/v1/me", &u.session), None);
    assert_eq!(me.status, 200, "after {what}: GET /api/v1/me answers {} {}", me.status, me.text());
}

// ---------------------------------------------------------------------------------------------
// XML bodies: nesting, DOCTYPEs and size.

/// `open` `depth` times, then `close` as often.
fn nest(open: &str, close: &str, depth: usize) -> String {
    let mut out = open.repeat(depth);
    out.push_str(&close.repeat(depth));
    out
}

/// One WebDAV request with an XML body.
struct XmlCase {
    what: String,
    method: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    body: String,
}

/// Finding: XML nested thousands deep made the parser recurse until the stack overflowed, and
/// took the whole server down. Deep bodies, a DOCTYPE (entities), nesting hidden by `/>` in
/// attribute values, and bodies over 64 KiB are refused; every method survives such a body; and
/// nothing in the user's folder or trash changes.
#[test]
fn deep_doctype_and_oversized_xml_bodies_are_refused_and_the_server_lives_on() {
    let s = Server::start_dav_with(|c| c.analysis.enabled = false);
    let u = DavUser::new(&s, "xena");
    s.upload_id(&u.session, "a.wav", &noise_wav(3_000, 1));
    s.upload_id(&u.session, "b.wav", &noise_wav(3_100, 2));
    let old = s.upload_id(&u.session, "old.wav", &noise_wav(3_200, 3));
    to_trash(&s, &u.session, &old);
    let before = snapshot(&s, &u.session);
    assert_eq!(before.len(), 3);

    let propfind_headers = vec![("Depth", "1"), ("Content-Type", XML)];
    let lock_headers = vec![("Depth", "0"), ("Timeout", "Second-60"), ("Content-Type", XML)];
    let deep_propfind = format!(
        r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:">{}</D:propfind>"#,
        nest("<D:prop>", "</D:prop>", 3_000)
    );
    let mut laughs = String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE D:propfind [\n <!ENTITY l0 \"lol\">\n");
    for level in 1..=5 {
        laughs.push_str(&format!(" <!ENTITY l{level} \"{}\">\n", format!("&l{};", level - 1).repeat(10)));
    }
    laughs
        .push_str("]>\n<D:propfind xmlns:D=\"DAV:\"><D:prop><D:displayname>&l5;</D:displayname></D:prop></D:propfind>");

    // Refused as bad requests.
    let bad = vec![
        XmlCase {
            what: "PROPFIND with <D:prop> nested 3,000 deep".into(),
            method: "PROPFIND",
            path: "/",
            headers: propfind_headers.clone(),
            body: deep_propfind.clone(),
        },
        XmlCase {
            what: "PROPFIND nested 3,000 deep in the default namespace".into(),
            method: "PROPFIND",
            path: "/",
            headers: propfind_headers.clone(),
            body: format!(
                r#"<?xml version="1.0"?><propfind xmlns="DAV:">{}</propfind>"#,
                nest("<prop>", "</prop>", 3_000)
            ),
        },
        XmlCase {
            what: "PROPPATCH nested 3,000 deep".into(),
            method: "PROPPATCH",
            path: "/a.wav",
            headers: vec![("Content-Type", XML)],
            body: format!(
                r#"<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set>{}</D:set></D:propertyupdate>"#,
                nest("<D:prop>", "</D:prop>", 3_000)
            ),
        },
        XmlCase {
            what: "LOCK nested 3,000 deep".into(),
            method: "LOCK",
            path: "/a.wav",
            headers: lock_headers.clone(),
            body: format!(
                r#"<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:">{}</D:lockinfo>"#,
                nest("<D:prop>", "</D:prop>", 3_000)
            ),
        },
        XmlCase {
            what: "LOCK whose owner holds 2,500 nested elements".into(),
            method: "LOCK",
            path: "/a.wav",
            headers: lock_headers.clone(),
            body: format!(
                r#"<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>{}</D:owner></D:lockinfo>"#,
                nest("<o>", "</o>", 2_500)
            ),
        },
        XmlCase {
            what: "PROPFIND with `/>` inside 3,000 nested elements' attribute values".into(),
            method: "PROPFIND",
            path: "/",
            headers: propfind_headers.clone(),
            body: format!(
                r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:">{}</D:propfind>"#,
                nest(r#"<a x="/>">"#, "</a>", 3_000)
            ),
        },
        XmlCase {
            what: "PROPFIND with a DOCTYPE".into(),
            method: "PROPFIND",
            path: "/",
            headers: propfind_headers.clone(),
            body: r#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>"#
                .into(),
        },
        XmlCase {
            what: "PROPFIND with entities of entities".into(),
            method: "PROPFIND",
            path: "/",
            headers: propfind_headers.clone(),
            body: laughs,
        },
    ];
    for case in &bad {
        assert!(case.body.len() < 64 << 10, "{}: under the size limit, refused for its shape", case.what);
        let r = u.raw(&s, case.method, case.path, &case.headers, Some(case.body.as_bytes()));
        expect_error(&r, 400, "bad_request", &case.what);
        assert_alive(&s, &u, &case.what);
        assert_eq!(snapshot(&s, &u.session), before, "{} changed the recordings", case.what);
    }

    // Over 64 KiB, however shallow.
    let padded = NAMED_PROPS.replacen("<d:prop>", &format!("{}<d:prop>", " ".repeat(70_000)), 1);
    let many = format!(
        r#"<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop>{}</d:prop></d:propfind>"#,
        "<d:displayname/>".repeat(4_500)
    );
    for (what, body) in [("a PROPFIND padded past 64 KiB", padded), ("a PROPFIND of 4,500 properties", many)] {
        assert!(body.len() > 64 << 10, "{what}: {} bytes", body.len());
        let r = u.raw(&s, "PROPFIND", "/", &propfind_headers, Some(body.as_bytes()));
        expect_error(&r, 413, "payload_too_large", what);
        assert_alive(&s, &u, what);
        assert_eq!(snapshot(&s, &u.session), before, "{what} changed the recordings");
    }

    // Methods that take no XML body, given the deep one: answered, never crashed.
    type Headers<'a> = Vec<(&'a str, &'a str)>;
    let others: [(&str, &str, Headers); 8] = [
        ("MKCOL", "/folder/", vec![]),
        ("UNLOCK", "/a.wav", vec![("Lock-Token", "<opaquelocktoken:nope>")]),
        ("REPORT", "/", vec![("Depth", "0")]),
        ("SEARCH", "/", vec![]),
        ("COPY", "/a.wav", vec![("Destination", "/copy.wav")]),
        ("MOVE", "/a.wav", vec![]),
        ("DELETE", "/nothing-here.wav", vec![]),
        ("OPTIONS", "/", vec![]),
    ];
    for (method, path, mut headers) in others {
        headers.push(("Content-Type", XML));
        let what = format!("{method} {path} with XML nested 3,000 deep");
        let r = u.raw(&s, method, path, &headers, Some(deep_propfind.as_bytes()));
        // Not implemented is an answer too, for methods the listener does not speak.
        let unimplemented = r.status == 501 && matches!(method, "REPORT" | "SEARCH");
        assert!(r.status < 500 || unimplemented, "{what}: answered {} {}", r.status, r.text());
        assert!(!(200..300).contains(&r.status) || method == "OPTIONS", "{what}: answered {}", r.status);
        assert_alive(&s, &u, &what);
        assert_eq!(snapshot(&s, &u.session), before, "{what} changed the recordings");
    }

    // A normal shallow body still lists.
    for body in [NAMED_PROPS, ALLPROP] {
        let r = u.raw(&s, "PROPFIND", "/", &propfind_headers, Some(body.as_bytes()));
        assert_eq!(r.status, 207, "{}", r.text());
        let listing = r.text();
        assert!(listing.contains("a.wav") && listing.contains("b.wav"), "{listing}");
    }
}

// ---------------------------------------------------------------------------------------------
// MOVE, COPY and DELETE aimed at the folders.

/// Spellings of the two folders as a destination: each is the folder itself once resolved.
const FOLDER_DESTINATIONS: &[&str] = &[
    "/",
    "//",
    "/.",
    "/./",
    "/%2E/",
    "/a/..",
    "/a/../",
    "/Trash",
    "/Trash/",
    "/%54rash/",
    "/%54rash",
    "/Trash/.",
    "/x/../Trash/",
    "/Trash//",
];

/// Spellings of the two folders as a request's target.
const FOLDER_TARGETS: &[&str] =
    &["/", "//", "/.", "/%2E/", "/a/..", "/Trash", "/Trash/", "/%54rash/", "/Trash/.", "/x/../Trash/"];

/// Finding: a MOVE or COPY with `Overwrite: T` onto a folder (`/`, `/Trash/`, or any other
/// spelling of them) deleted the destination first, walking it: every recording trashed, or the
/// whole trash purged; a DELETE of `/.` or `/%54rash` did the same; a destination on another host
/// was taken for this one; and a COPY onto a file trashed that file before failing. None of these
/// changes anything now, and a single file still moves and renames.
#[test]
fn move_copy_and_delete_never_empty_a_folder_whatever_the_spelling() {
    let s = Server::start_dav_with(|c| c.analysis.enabled = false);
    let u = DavUser::new(&s, "fola");
    let host = s.dav_host();
    let mut bytes_of: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut upload = |name: &str, seed: u64| {
        let bytes = noise_wav(3_000 + 10 * seed as usize, seed);
        let id = s.upload_id(&u.session, name, &bytes);
        bytes_of.insert(id.clone(), bytes);
        id
    };
    let live1 = upload("live1.wav", 1);
    let live2 = upload("live2.wav", 2);
    upload("live3.wav", 3);
    let old1 = upload("old1.wav", 4);
    let old2 = upload("old2.wav", 5);
    to_trash(&s, &u.session, &old1);
    to_trash(&s, &u.session, &old2);
    let before = snapshot(&s, &u.session);
    assert_eq!(before.values().filter(|r| r.in_trash).count(), 2, "{before:?}");
    assert_eq!(before.len(), 5);
    let unchanged = |what: &str| {
        let now = snapshot(&s, &u.session);
        assert_eq!(now, before, "{what} changed the recordings: {:?}", diff(&before, &now));
    };

    // Onto a folder, under every spelling, and absolute with this listener's own host.
    let mut folders: Vec<String> = FOLDER_DESTINATIONS.iter().map(|p| p.to_string()).collect();
    folders.push(format!("http://{host}/"));
    folders.push(format!("http://{host}/Trash/"));
    for dest in &folders {
        for overwrite in [None, Some("T")] {
            let mut headers = vec![("Destination", dest.as_str())];
            if let Some(flag) = overwrite {
                headers.push(("Overwrite", flag));
            }
            let what = format!("MOVE /live1.wav to {dest} (Overwrite {overwrite:?})");
            let r = u.raw(&s, "MOVE", "/live1.wav", &headers, None);
            expect_error(&r, 403, "forbidden", &what);
            unchanged(&what);
            let what = format!("COPY /live1.wav to {dest} (Overwrite {overwrite:?})");
            let r = u.raw(&s, "COPY", "/live1.wav", &headers, None);
            assert_eq!(r.status, 403, "{what}: {}", r.text());
            unchanged(&what);
        }
    }

    // On another host: not ours to write.
    for dest in ["http://elsewhere.example/", "http://elsewhere.example/Trash/", "http://elsewhere.example/live2.wav"] {
        for method in ["MOVE", "COPY"] {
            for overwrite in [None, Some("T")] {
                let mut headers = vec![("Destination", dest)];
                if let Some(flag) = overwrite {
                    headers.push(("Overwrite", flag));
                }
                let what = format!("{method} /live1.wav to {dest} (Overwrite {overwrite:?})");
                let r = u.raw(&s, method, "/live1.wav", &headers, None);
                assert_eq!(r.status, 502, "{what}: {}", r.text());
                unchanged(&what);
            }
        }
    }

    // COPY is never supported, onto an existing file least of all.
    for overwrite in [None, Some("T")] {
        let mut headers = vec![("Destination", "/live2.wav")];
        if let Some(flag) = overwrite {
            headers.push(("Overwrite", flag));
        }
        let what = format!("COPY /live1.wav onto /live2.wav (Overwrite {overwrite:?})");
        let r = u.raw(&s, "COPY", "/live1.wav", &headers, None);
        assert_eq!(r.status, 403, "{what}: {}", r.text());
        unchanged(&what);
    }

    // The folders themselves are never deleted or moved.
    for target in FOLDER_TARGETS {
        let what = format!("DELETE {target}");
        let r = u.raw(&s, "DELETE", target, &[], None);
        assert_eq!(r.status, 403, "{what}: {}", r.text());
        unchanged(&what);
    }
    for source in ["/Trash/", "/%54rash", "/", "/."] {
        let what = format!("MOVE {source} to /newname.wav");
        let r = u.raw(&s, "MOVE", source, &[("Destination", "/newname.wav")], None);
        assert_eq!(r.status, 403, "{what}: {}", r.text());
        unchanged(&what);
    }

    // One file still goes to the trash over a trashed one of that name, and nothing is purged.
    let r = u.raw(&s, "MOVE", "/live1.wav", &[("Destination", "/Trash/old1.wav"), ("Overwrite", "T")], None);
    assert!(matches!(r.status, 201 | 204), "MOVE /live1.wav over /Trash/old1.wav: {} {}", r.status, r.text());
    let after = snapshot(&s, &u.session);
    assert_eq!(after.len(), 5, "nothing purged: {:?}", diff(&before, &after));
    assert!(after[&live1].in_trash, "live1 is in the trash: {after:?}");
    assert!(after[&old1].in_trash && after[&old2].in_trash, "the trashed ones stay: {after:?}");
    assert_eq!(after.values().filter(|r| r.in_trash).count(), 3, "{after:?}");
    for (id, bytes) in &bytes_of {
        assert_eq!(after[id].sha256, sha256_hex(bytes), "{id}");
        let stored = s.stored_bytes(id).unwrap_or_else(|| panic!("the bytes of {id} are gone"));
        assert!(stored == *bytes, "the bytes of {id} are intact");
    }

    // And a rename is a rename.
    let r = u.raw(&s, "MOVE", "/live2.wav", &[("Destination", "/renamed.wav")], None);
    assert_eq!(r.status, 201, "MOVE /live2.wav to /renamed.wav: {}", r.text());
    let renamed = snapshot(&s, &u.session);
    assert_eq!(renamed[&live2], Rec { name: "renamed.wav".into(), ..before[&live2].clone() });
    assert_eq!(renamed.len(), 5);

    // A partial update (the library's PATCH) never rewrites a recording or makes a new one.
    let patch = [("Content-Type", "application/x-sabredav-partialupdate"), ("X-Update-Range", "append")];
    let r = u.raw(&s, "PATCH", "/renamed.wav", &patch, Some(b"RIFF"));
    assert_eq!(r.status, 405, "PATCH /renamed.wav: {}", r.text());
    assert_eq!(snapshot(&s, &u.session), renamed, "a PATCH changes nothing");
}

/// Found by the fuzz test: a LOCK on `/` followed by its UNLOCK panicked inside the WebDAV
/// library's lock table (the root has no parent), which then stayed poisoned for the user. The
/// folders cannot be locked; a file's lock still works, and the server answers on.
#[test]
fn the_folders_cannot_be_locked_and_unlocking_breaks_nothing() {
    let s = Server::start_dav();
    let u = DavUser::new(&s, "lockie");
    let file = steady_tone_wav(1);
    assert_eq!(u.raw(&s, "PUT", "/memo.wav", &[], Some(&file)).status, 201);
    for folder in ["/", "//", "/Trash/", "/%54rash", "/x/.."] {
        let r = u.raw(&s, "LOCK", folder, &[("Depth", "infinity")], Some(LOCKINFO.as_bytes()));
        assert_eq!(r.status, 403, "LOCK {folder}: {}", r.text());
        let r = u.raw(&s, "UNLOCK", folder, &[("Lock-Token", "<urn:uuid:8f771d83-de90-4f23-94ad-4f495026b133>")], None);
        assert!(r.status < 500, "UNLOCK {folder}: {} {}", r.status, r.text());
    }
    let r = u.raw(&s, "LOCK", "/memo.wav", &[], Some(LOCKINFO.as_bytes()));
    assert_eq!(r.status, 200, "LOCK /memo.wav: {}", r.text());
    let token = r.header("Lock-Token").expect("Lock-Token").to_string();
    let r = u.raw(&s, "UNLOCK", "/memo.wav", &[("Lock-Token", token.as_str())], None);
    assert_eq!(r.status, 204, "UNLOCK /memo.wav: {}", r.text());
    let r = u.raw(&s, "PROPFIND", "/", &[("Depth", "1")], None);
    assert_eq!(r.status, 207, "the user's WebDAV still answers: {}", r.text());
}

// ---------------------------------------------------------------------------------------------
// Event streams and revocation.

/// What a stream's reader thread saw: a line, or the end (`None` at a clean end of the body,
/// else the error).
enum Sse {
    Line(String),
    End(Option<String>),
}

/// An open `GET /api/v1/events`, read line by line on a thread.
struct Events {
    rx: mpsc::Receiver<Sse>,
    lines: Vec<String>,
    end: Option<Option<String>>,
}

impl Events {
    fn open(s: &Server, header: &str, value: &str) -> Events {
        // Heartbeats come every 15 s: a read that waits 20 s is a stream gone quiet for good.
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout_read(Duration::from_secs(20))
            .build();
        let r = agent
            .get(&s.url("/api/v1/events"))
            .set(header, value)
            .set("Accept", "text/event-stream")
            .call()
            .unwrap_or_else(|e| panic!("the event stream opens: {e}"));
        assert_eq!(r.status(), 200);
        assert!(
            r.header("Content-Type").is_some_and(|t| t.starts_with("text/event-stream")),
            "{:?}",
            r.header("Content-Type")
        );
        let (tx, rx) = mpsc::channel();
        let mut reader = BufReader::new(r.into_reader());
        std::thread::spawn(move || {
            loop {
                let mut line = String::new();
                let seen = match reader.read_line(&mut line) {
                    Ok(0) => Sse::End(None),
                    Ok(_) => Sse::Line(line.trim_end_matches(['\r', '\n']).to_string()),
                    Err(e) => Sse::End(Some(e.to_string())),
                };
                let ended = matches!(seen, Sse::End(_));
                if tx.send(seen).is_err() || ended {
                    return;
                }
            }
        });
        Events { rx, lines: Vec::new(), end: None }
    }

    /// Waits up to `within` for a delivered line that `wanted` accepts; false when the stream
    /// ended or the time ran out first.
    fn wait_for(&mut self, within: Duration, wanted: impl Fn(&str) -> bool) -> bool {
        if self.lines.iter().any(|line| wanted(line.as_str())) {
            return true;
        }
        let deadline = Instant::now() + within;
        while self.end.is_none() {
            match self.rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Sse::Line(line)) => {
                    let hit = wanted(line.as_str());
                    self.lines.push(line);
                    if hit {
                        return true;
                    }
                }
                Ok(Sse::End(why)) => self.end = Some(why),
                Err(_) => return false,
            }
        }
        false
    }

    /// Waits up to `within` for the end of the stream (its body's end, not a quiet spell).
    fn ends_within(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while self.end.is_none() {
            match self.rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Sse::Line(line)) => self.lines.push(line),
                Ok(Sse::End(why)) => self.end = Some(why),
                Err(_) => return false,
            }
        }
        true
    }

    /// Everything delivered so far.
    fn delivered(&self) -> String {
        self.lines.join("\n")
    }
}

/// `event: change` (the server may write it without the space).
fn is_change_event(line: &str) -> bool {
    line.strip_prefix("event:").is_some_and(|name| name.trim() == "change")
}

/// Finding: an event stream opened with a token kept delivering the user's changes after the
/// token was revoked. Revocation ends the token's streams within seconds; the session's own
/// stream goes on.
#[test]
fn revoking_an_app_token_ends_its_event_streams() {
    let s = Server::start_with(|c| c.analysis.enabled = false);
    let session = s.signup("evan");
    let created = send_json(s.auth("POST", "/api/v1/tokens", &session), &json!({"name": "phone"}));
    assert_eq!(created.status, 201, "{}", created.text());
    let app = created.json()["token"].as_str().expect("token").to_string();
    let id = created.json()["id"].as_str().expect("id").to_string();
    let mut phone = Events::open(&s, "Authorization", &format!("Bearer {app}"));
    let mut browser = Events::open(&s, "Authorization", &format!("Bearer {session}"));

    s.upload_id(&session, "before-revocation.wav", &noise_wav(4_000, 1));
    let ten = Duration::from_secs(10);
    assert!(phone.wait_for(ten, is_change_event), "no change event on the app token's stream: {}", phone.delivered());
    assert!(phone.wait_for(ten, |l| l.contains("before-revocation.wav")), "{}", phone.delivered());
    assert!(browser.wait_for(ten, |l| l.contains("before-revocation.wav")), "{}", browser.delivered());

    assert_eq!(send(s.auth("DELETE", &format!("/api/v1/tokens/{id}"), &session), None).status, 204);
    let revoked = Instant::now();
    assert!(
        phone.ends_within(ten),
        "the stream of a revoked app token is still open 10 s later; it delivered:\n{}",
        phone.delivered()
    );
    eprintln!("the revoked token's stream ended {:?} after revocation ({:?})", revoked.elapsed(), phone.end);

    s.upload_id(&session, "after-revocation.wav", &noise_wav(4_100, 2));
    assert!(
        browser.wait_for(ten, |l| l.contains("after-revocation.wav")),
        "the session's own stream goes on: {}",
        browser.delivered()
    );
    assert!(!phone.delivered().contains("after-revocation.wav"), "{}", phone.delivered());
    let again = send(s.auth("GET", "/api/v1/events", &app), None);
    expect_error(&again, 401, "unauthorized", "a new stream with the revoked token");
}

/// Finding: logging out of the browser left its event stream running on the revoked cookie
/// session. Logout ends the session's streams within seconds; another session's stream goes on.
#[test]
fn logging_out_ends_the_event_streams_of_that_browser_session() {
    let s = Server::start_with(|c| c.analysis.enabled = false);
    let other = s.signup("lena");
    let login = send_json(s.req("POST", "/api/v1/auth/login"), &json!({"username": "lena", "password": "password123"}));
    assert_eq!(login.status, 200, "{}", login.text());
    let cookie = format!("recorder_session={}", login.json()["token"].as_str().expect("token"));
    let mut tab = Events::open(&s, "Cookie", &cookie);
    let mut phone = Events::open(&s, "Authorization", &format!("Bearer {other}"));

    s.upload_id(&other, "before-logout.wav", &noise_wav(4_000, 3));
    let ten = Duration::from_secs(10);
    assert!(tab.wait_for(ten, is_change_event), "no change event on the cookie's stream: {}", tab.delivered());
    assert!(tab.wait_for(ten, |l| l.contains("before-logout.wav")), "{}", tab.delivered());

    let out = send(s.req("POST", "/api/v1/auth/logout").set("Cookie", &cookie).set("Origin", &s.base), None);
    assert_eq!(out.status, 204, "logout: {}", out.text());
    assert!(
        tab.ends_within(ten),
        "the stream of a logged-out session is still open 10 s later; it delivered:\n{}",
        tab.delivered()
    );

    s.upload_id(&other, "after-logout.wav", &noise_wav(4_100, 4));
    assert!(phone.wait_for(ten, |l| l.contains("after-logout.wav")), "another session's stream goes on");
    assert!(!tab.delivered().contains("after-logout.wav"), "{}", tab.delivered());
    expect_error(
        &send(s.req("GET", "/api/v1/me").set("Cookie", &cookie), None),
        401,
        "unauthorized",
        "the logged-out cookie",
    );
}

// ---------------------------------------------------------------------------------------------
// Password checks outside login.

/// Finding: `PUT /api/v1/me/password` checked the current password without any throttle, so a
/// stolen session could guess the password at full speed. Five failures, then 429 with
/// `Retry-After`, even for the right password, until the window passes.
#[test]
fn wrong_current_passwords_are_throttled_like_logins() {
    let s = Server::start();
    let token = s.signup("pete");
    let change = |current: &str| {
        let body = json!({"current_password": current, "new_password": "another long password"});
        send_json(s.auth("PUT", "/api/v1/me/password", &token), &body)
    };
    for attempt in 1..=25 {
        let r = change("not my password");
        let what = format!("wrong current password, attempt {attempt}");
        if attempt <= 5 {
            expect_error(&r, 401, "invalid_credentials", &what);
        } else {
            expect_error(&r, 429, "too_many_requests", &what);
            retry_after(&r, &what);
        }
    }
    let r = change("password123");
    expect_error(&r, 429, "too_many_requests", "the right current password while throttled");
    retry_after(&r, "the right current password while throttled");
    assert_eq!(send(s.auth("GET", "/api/v1/me", &token), None).status, 200, "the session itself still works");

    s.clock.advance(15 * 60 * 1000 + 1000);
    let r = change("password123");
    assert_eq!(r.status, 204, "after the window: {}", r.text());
}

/// Finding: `DELETE /api/v1/me` checked the password without any throttle. Five failures, then
/// 429 even for the right password, and the account is still there.
#[test]
fn wrong_passwords_to_delete_the_account_are_throttled() {
    let s = Server::start();
    let token = s.signup("dana");
    s.upload_id(&token, "keep.wav", &noise_wav(4_000, 5));
    let delete = |password: &str| send_json(s.auth("DELETE", "/api/v1/me", &token), &json!({ "password": password }));
    for attempt in 1..=10 {
        let r = delete("not my password");
        let what = format!("wrong password to delete the account, attempt {attempt}");
        if attempt <= 5 {
            expect_error(&r, 401, "invalid_credentials", &what);
        } else {
            expect_error(&r, 429, "too_many_requests", &what);
            retry_after(&r, &what);
        }
    }
    let r = delete("password123");
    expect_error(&r, 429, "too_many_requests", "the right password while throttled");
    let me = send(s.auth("GET", "/api/v1/me", &token), None);
    assert_eq!(me.status, 200, "the account still exists: {}", me.text());
    assert_eq!(all_pages(&s, &token, "/api/v1/recordings").len(), 1, "with its recording");
}

// ---------------------------------------------------------------------------------------------
// Resumable uploads.

/// Finding: any signed-in user's HEAD, PATCH or DELETE on someone else's upload URL took the
/// upload's turn before the owner check, which stopped the owner's PATCH in flight (answered
/// early with the offset so far). Another account now gets 404 and the owner's PATCH runs to its
/// last byte.
#[test]
fn another_account_cannot_cut_an_upload_in_flight_short() {
    let s = Server::start_with(|c| c.analysis.enabled = false);
    let alice = s.signup("alice");
    let bob = s.signup("bob");
    let bytes = tone_wav(12, |_, _| 0.5);
    let n = bytes.len();
    assert!(n > 150_000, "{n}");
    let created = send(
        s.auth("POST", "/api/v1/uploads", &alice).set("Tus-Resumable", "1.0.0").set("Upload-Length", &n.to_string()),
        None,
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let path = created.header("Location").expect("Location").to_string();

    // Alice's PATCH: the head and the first 8 KiB, then a pause.
    let host = s.host();
    let mut stream = TcpStream::connect(host).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
    stream.set_write_timeout(Some(IO_TIMEOUT)).expect("write timeout");
    write!(
        stream,
        "PATCH {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {alice}\r\nTus-Resumable: 1.0.0\r\n\
         Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: {n}\r\n\r\n"
    )
    .expect("the PATCH's head");
    stream.write_all(&bytes[..8192]).expect("the first 8 KiB");
    stream.flush().expect("flush");

    // Bob, again and again while Alice's request is open. A request of Bob's that waited for
    // Alice's to finish would never be answered: bounded.
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build();
    let bobs = |method: &str| {
        agent
            .request(method, &s.url(&path))
            .set("Authorization", &format!("Bearer {bob}"))
            .set("Tus-Resumable", "1.0.0")
    };
    for round in 1..=10 {
        let r = send(bobs("HEAD"), None);
        assert_eq!(r.status, 404, "round {round}: Bob's HEAD on Alice's upload");
        let r = send(
            bobs("PATCH").set("Content-Type", "application/offset+octet-stream").set("Upload-Offset", "0"),
            Some(b"RIFF"),
        );
        expect_error(&r, 404, "not_found", &format!("round {round}: Bob's PATCH on Alice's upload"));
        let r = send(bobs("DELETE"), None);
        expect_error(&r, 404, "not_found", &format!("round {round}: Bob's DELETE on Alice's upload"));
    }

    // Alice's connection is still hers: the rest, and the answer to the whole.
    let rest = stream.write_all(&bytes[8192..]).and_then(|()| stream.flush());
    let answer = read_response(&mut stream, false, 1 << 20)
        .unwrap_or_else(|e| panic!("Alice's PATCH got no answer ({e}); writing the rest: {rest:?}"));
    assert_eq!(
        answer.status,
        204,
        "Alice's PATCH: {:?} {} (writing the rest: {rest:?})",
        answer.headers,
        answer.text()
    );
    assert_eq!(
        answer.header("Upload-Offset"),
        Some(n.to_string().as_str()),
        "Alice's PATCH was answered before its last byte: {:?}",
        answer.headers
    );
    assert!(rest.is_ok(), "{rest:?}");
    let id = answer.header("Recording-Id").expect("the completing answer names the recording").to_string();
    let mine = all_pages(&s, &alice, "/api/v1/recordings");
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0]["id"], id.as_str());
    assert_eq!(mine[0]["sha256"], sha256_hex(&bytes).as_str());
    assert!(all_pages(&s, &bob, "/api/v1/recordings").is_empty());
}

/// A PATCH claiming `content_length` bytes at `offset`: the body is offered in the background
/// (a server may read some of a body it refuses before answering) while the answer is read.
fn patch_claiming(s: &Server, token: &str, path: &str, offset: &str, content_length: &str) -> Resp {
    let host = s.host();
    let mut stream = TcpStream::connect(host).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
    stream.set_write_timeout(Some(Duration::from_secs(5))).expect("write timeout");
    write!(
        stream,
        "PATCH {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nTus-Resumable: 1.0.0\r\n\
         Upload-Offset: {offset}\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: {content_length}\r\n\
         Connection: close\r\n\r\n"
    )
    .expect("the PATCH's head");
    let mut writer = stream.try_clone().expect("clone");
    std::thread::spawn(move || {
        let zeros = vec![0u8; 64 << 10];
        for _ in 0..17 {
            if writer.write_all(&zeros).is_err() {
                return;
            }
        }
    });
    read_response(&mut stream, false, 1 << 20)
        .unwrap_or_else(|e| panic!("PATCH {content_length} bytes at {offset}: {e}"))
}

/// Finding: an `Upload-Offset` plus a `Content-Length` past u64 overflowed (a panic, 500).
/// Lengths and offsets at the edge of u64 are refused as too large or in conflict; the upload is
/// unharmed and completes.
#[test]
fn tus_lengths_and_offsets_at_the_edge_of_u64_are_refused_without_crashing() {
    let s = Server::start_with(|c| c.analysis.enabled = false);
    let token = s.signup("ulla");
    let bytes = noise_wav(100, 5);
    let created =
        send(s.auth("POST", "/api/v1/uploads", &token).set("Tus-Resumable", "1.0.0").set("Upload-Length", "100"), None);
    assert_eq!(created.status, 201, "{}", created.text());
    let path = created.header("Location").expect("Location").to_string();

    // The largest Content-Length the HTTP layer takes (u64::MAX - 2), at offset 0 and past some
    // bytes, where offset + length is past u64.
    let largest = (u64::MAX - 2).to_string();
    let r = patch_claiming(&s, &token, &path, "0", &largest);
    expect_error(&r, 413, "payload_too_large", "Content-Length u64::MAX - 2 at offset 0");
    let first = send(
        s.auth("PATCH", &path, &token)
            .set("Tus-Resumable", "1.0.0")
            .set("Content-Type", "application/offset+octet-stream")
            .set("Upload-Offset", "0"),
        Some(&bytes[..10]),
    );
    assert_eq!((first.status, first.header("Upload-Offset")), (204, Some("10")), "{}", first.text());
    let r = patch_claiming(&s, &token, &path, "10", &largest);
    expect_error(&r, 413, "payload_too_large", "Content-Length u64::MAX - 2 at offset 10");
    // u64::MAX itself is refused by the HTTP layer before the route: a client error all the same.
    let r = patch_claiming(&s, &token, &path, "10", &u64::MAX.to_string());
    assert!((400..500).contains(&r.status), "Content-Length u64::MAX: {} {}", r.status, r.text());

    // An offset at u64::MAX: not where the upload is.
    let r = send(
        s.auth("PATCH", &path, &token)
            .set("Tus-Resumable", "1.0.0")
            .set("Content-Type", "application/offset+octet-stream")
            .set("Upload-Offset", &u64::MAX.to_string()),
        Some(b"RIFF"),
    );
    assert!(matches!(r.status, 400 | 409), "Upload-Offset u64::MAX: {} {}", r.status, r.text());
    if r.status == 409 {
        assert_eq!(r.header("Upload-Offset"), Some("10"), "{:?}", r.headers);
    }

    // Unharmed: it completes.
    let head = send(s.auth("HEAD", &path, &token).set("Tus-Resumable", "1.0.0"), None);
    assert_eq!(head.header("Upload-Offset"), Some("10"), "{:?}", head.headers);
    let last = send(
        s.auth("PATCH", &path, &token)
            .set("Tus-Resumable", "1.0.0")
            .set("Content-Type", "application/offset+octet-stream")
            .set("Upload-Offset", "10"),
        Some(&bytes[10..]),
    );
    assert_eq!((last.status, last.header("Upload-Offset")), (204, Some("100")), "{}", last.text());
    let list = all_pages(&s, &token, "/api/v1/recordings");
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["sha256"], sha256_hex(&bytes).as_str());
}

/// Finding: `Upload-Length: 0` was refused at creation, which tus clients do not expect (an empty
/// file is a valid upload). It is created (201 with a Location), and is no recording.
#[test]
fn a_tus_upload_of_length_0_is_created_and_is_no_recording() {
    let s = Server::start();
    let token = s.signup("zoe");
    let r =
        send(s.auth("POST", "/api/v1/uploads", &token).set("Tus-Resumable", "1.0.0").set("Upload-Length", "0"), None);
    assert_eq!(r.status, 201, "{}", r.text());
    let location = r.header("Location").unwrap_or_else(|| panic!("no Location: {:?}", r.headers));
    assert!(location.starts_with("/api/v1/uploads/"), "{location}");
    assert!(all_pages(&s, &token, "/api/v1/recordings").is_empty(), "an empty upload is no recording");
    let usage = send(s.auth("GET", "/api/v1/me", &token), None).json()["usage"].clone();
    assert_eq!(usage["recordings"], 0, "{usage}");
}

// ---------------------------------------------------------------------------------------------
// Ranges.

/// Finding: `Range: bytes=0-,0-,…` with thousands of ranges made the WebDAV listener send the
/// whole file once per range (a few bytes of request, megabytes of answer). The answer is now at
/// most the file; a single range is still a 206.
#[test]
fn thousands_of_ranges_are_answered_with_at_most_the_file() {
    let s = Server::start_dav_with(|c| c.analysis.enabled = false);
    let u = DavUser::new(&s, "rhea");
    let bytes = noise_wav(20_000, 9);
    let size = bytes.len() as u64;
    let id = s.upload_id(&u.session, "ranges.wav", &bytes);
    let many = format!("bytes={}", vec!["0-"; 2_000].join(","));

    let r = send_bounded(u.dav(&s, "GET", "/ranges.wav").set("Range", &many), 4 * size);
    assert_eq!(r.status, 200, "{:?}", r.headers);
    assert!(r.body.len() as u64 <= size, "WebDAV answered {} bytes for a file of {size}", r.body.len());
    assert!(r.body == bytes, "the whole file, once");

    let r = send(u.dav(&s, "GET", "/ranges.wav").set("Range", "bytes=0-99"), None);
    assert_eq!(r.status, 206, "{:?}", r.headers);
    assert_eq!(r.body, &bytes[..100]);

    let audio = format!("/api/v1/recordings/{id}/audio");
    let r = send_bounded(s.auth("GET", &audio, &u.session).set("Range", &many), 4 * size);
    assert!(matches!(r.status, 200 | 206 | 416), "the API: {} {:?}", r.status, r.headers);
    assert!(r.body.len() as u64 <= size, "the API answered {} bytes for a file of {size}", r.body.len());
}

// ---------------------------------------------------------------------------------------------
// Smaller things.

/// Finding: the request log wrote `/s/<token>` in full, so anyone who could read the log could
/// open every shared recording. The binary's log has the share requests, never the token.
#[test]
fn share_tokens_never_reach_the_log() {
    let home = tempfile::tempdir().expect("tempdir");
    let server = serve(home.path(), &home.path().join("data"));
    let token = signup(&server, "sam");
    let audio = fixture("speech.wav");
    let up = send(server.auth("POST", "/api/v1/recordings?name=shared.wav", &token), Some(&audio));
    assert_eq!(up.status, 201, "{}", up.text());
    let id = up.json()["id"].as_str().expect("id").to_string();
    let made = send_json(
        server.auth("POST", &format!("/api/v1/recordings/{id}/shares"), &token),
        &json!({"expires_in_days": 7, "download": true}),
    );
    assert_eq!(made.status, 201, "{}", made.text());
    let url = made.json()["url"].as_str().expect("url").to_string();
    let share = url.rsplit_once("/s/").expect("a /s/ URL").1.trim_end_matches('/').to_string();
    assert!(share.len() >= 22, "{share}");

    let page = send(server.req("GET", &format!("/s/{share}")), None);
    assert_eq!(page.status, 200, "{}", page.text());
    let played = send(server.req("GET", &format!("/s/{share}/audio")), None);
    assert_eq!(played.status, 200);
    assert_eq!(sha256_hex(&played.body), sha256_hex(&audio));

    let lines = || server.log().clone();
    eventually("both share requests are logged", || lines().iter().filter(|l| l.contains("/s/")).count() >= 2);
    for line in lines() {
        assert!(!line.contains(&share), "the log leaks the share token: {line}");
    }
}

/// Finding: names could carry bidirectional controls and zero-width characters, so
/// `memo\u{202E}vaw.exe` showed as `memoexe.wav`. They are refused on upload and rename; an emoji's
/// zero-width joiner is still fine.
#[test]
fn names_with_bidi_controls_or_zero_width_characters_are_refused() {
    let s = Server::start_with(|c| c.analysis.enabled = false);
    let token = s.signup("bidi");
    let bad = ["memo\u{202E}vaw.exe", "a\u{200B}b.wav", "x\u{2066}y.wav"];
    for (i, name) in bad.iter().enumerate() {
        let r = s.upload(&token, name, &noise_wav(4_000, 20 + i as u64));
        expect_error(&r, 400, "invalid_name", &format!("upload named {name:?}"));
    }
    assert!(all_pages(&s, &token, "/api/v1/recordings").is_empty(), "nothing stored");

    let id = s.upload_id(&token, "plain.wav", &noise_wav(4_000, 30));
    let rename =
        |name: &str| send_json(s.auth("PATCH", &format!("/api/v1/recordings/{id}"), &token), &json!({ "name": name }));
    for name in bad {
        expect_error(&rename(name), 400, "invalid_name", &format!("rename to {name:?}"));
    }
    let list = all_pages(&s, &token, "/api/v1/recordings");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["name"], "plain.wav", "the name is unchanged");

    let emoji = "👩\u{200D}💻 notes.wav";
    let r = s.upload(&token, emoji, &noise_wav(4_000, 31));
    assert_eq!(r.status, 201, "an emoji ZWJ sequence: {}", r.text());
    assert_eq!(r.json()["name"], emoji);
    let renamed = "👩\u{200D}💻 renamed.wav";
    let r = rename(renamed);
    assert_eq!(r.status, 200, "rename to an emoji ZWJ sequence: {}", r.text());
    assert_eq!(r.json()["name"], renamed);
}

/// Finding: the cross-site check compared the host only, so a page on `https://` (or, without a
/// proxy, any page naming itself in `X-Forwarded-Host`) passed for this plain-http server.
#[test]
fn the_cross_site_check_compares_the_scheme_and_ignores_forwarded_hosts_without_a_proxy() {
    let s = Server::start();
    s.signup("cora");
    let login = send_json(s.req("POST", "/api/v1/auth/login"), &json!({"username": "cora", "password": "password123"}));
    assert_eq!(login.status, 200, "{}", login.text());
    let cookie = format!("recorder_session={}", login.json()["token"].as_str().expect("token"));
    let port = s.base.rsplit(':').next().expect("a port").to_string();
    let create = |origin: &str, extra: &[(&str, &str)]| {
        let mut req = s.req("POST", "/api/v1/tokens").set("Cookie", &cookie).set("Origin", origin);
        for (name, value) in extra {
            req = req.set(name, value);
        }
        send_json(req, &json!({"name": "x"}))
    };

    let https = format!("https://127.0.0.1:{port}");
    expect_error(&create(&https, &[]), 403, "forbidden", "Origin https:// on a plain-http server");
    expect_error(
        &create(&https, &[("X-Forwarded-Proto", "https")]),
        403,
        "forbidden",
        "Origin https:// with X-Forwarded-Proto and no proxy configured",
    );
    expect_error(
        &create("http://evil.example", &[("X-Forwarded-Host", "evil.example")]),
        403,
        "forbidden",
        "X-Forwarded-Host with no proxy configured",
    );
    let own = format!("http://127.0.0.1:{port}");
    let r = create(&own, &[]);
    assert_eq!(r.status, 201, "the server's own origin: {}", r.text());

    let listed = send(s.req("GET", "/api/v1/tokens").set("Cookie", &cookie), None);
    assert_eq!(listed.status, 200, "{}", listed.text());
    let apps: Vec<Value> =
        listed.json()["tokens"].as_array().expect("tokens").iter().filter(|t| t["kind"] == "app").cloned().collect();
    assert_eq!(apps.len(), 1, "only the same-origin request made a token: {apps:?}");
}

// ---------------------------------------------------------------------------------------------
// The WebDAV fuzz.

/// The methods the fuzz sends.
const METHODS: &[&str] = &[
    "GET",
    "HEAD",
    "PUT",
    "DELETE",
    "MOVE",
    "COPY",
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "LOCK",
    "UNLOCK",
    "OPTIONS",
    "POST",
    "PATCH",
    "REPORT",
];

/// Spellings of the folders and their surroundings.
const FOLDER_SPELLINGS: &[&str] = &[
    "/",
    "//",
    "/.",
    "/./",
    "/%2E/",
    "/%2e",
    "/a/..",
    "/a/../",
    "/x/../",
    "/Trash",
    "/Trash/",
    "/%54rash/",
    "/%54rash",
    "/Trash/.",
    "/Trash/..",
    "/Trash/../",
    "/x/../Trash/",
    "/Trash//",
    "/TRASH/",
    "/trash",
];

/// Paths no file manager sends.
const ODD_PATHS: &[&str] = &[
    "/a%2Fb.wav",
    "/%00.wav",
    "/x%00y.wav",
    "/../../etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/Trash/../../etc/passwd",
    "/%C0%AE%C0%AE/",
    "/%FF%FE.wav",
    "/dir/sub/file.wav",
    "/Trash/sub/x.wav",
    "/?x=1",
    "/new.wav?y=2",
    "*",
    "/%",
    "/%zz.wav",
];

fn pick(rng: &mut StdRng, from: &[&str]) -> String {
    from.choose(rng).expect("a choice").to_string()
}

/// A short random name from several scripts, controls and separators included.
fn random_name(rng: &mut StdRng) -> String {
    let len = rng.gen_range(1..=12);
    (0..len)
        .map(|_| {
            let code = match rng.gen_range(0..8) {
                0 => rng.gen_range(0x20u32..0x7F),
                1 => rng.gen_range(0xA0u32..0x300),
                2 => {
                    *[0x202Eu32, 0x202A, 0x2066, 0x2069, 0x200B, 0x200D, 0x200F, 0xFEFF].choose(rng).expect("a control")
                }
                3 => rng.gen_range(0x4E00u32..0x5000),
                4 => rng.gen_range(0x1F300u32..0x1F650),
                5 => *[0x2215u32, 0x2F, 0x5C, 0x3A, 0x25, 0x00, 0x0A, 0x7F].choose(rng).expect("a separator"),
                6 => rng.gen_range(0x0600u32..0x0700),
                _ => rng.gen_range(0x30u32..0x7B),
            };
            char::from_u32(code).unwrap_or('?')
        })
        .collect()
}

/// A request target (ASCII, as sent).
fn fuzz_path(rng: &mut StdRng, live: &[&str], trashed: &[&str]) -> String {
    match rng.gen_range(0..12) {
        0 | 1 => pick(rng, FOLDER_SPELLINGS),
        2..=4 if !live.is_empty() => dav_path(live.choose(rng).expect("a live name")),
        5 if !trashed.is_empty() => format!("/Trash{}", dav_path(trashed.choose(rng).expect("a trashed name"))),
        6 => pick(rng, ODD_PATHS),
        7 => format!("/{}.wav", "n".repeat(rng.gen_range(250..=400))),
        8 => format!("/{}", urlencode(&random_name(rng))),
        9 => format!("/fuzz-{}.wav", rng.gen_range(0..50)),
        10 if !live.is_empty() => {
            let name: &str = live.choose(rng).expect("a live name");
            match rng.gen_range(0..5) {
                0 => format!("{}/", dav_path(name)),
                1 => format!("/Trash{}", dav_path(name)),
                2 => dav_path(&name.to_uppercase()),
                3 => format!("/x/..{}", dav_path(name)),
                _ => format!("{}%00", dav_path(name)),
            }
        }
        _ => "/".to_string(),
    }
}

fn fuzz_destination(rng: &mut StdRng, live: &[&str], trashed: &[&str], host: &str) -> String {
    match rng.gen_range(0..6) {
        0..=2 => fuzz_path(rng, live, trashed),
        3 => format!("http://{host}{}", fuzz_path(rng, live, trashed)),
        4 => format!("http://elsewhere.example{}", fuzz_path(rng, live, trashed)),
        _ => pick(
            rng,
            &[
                "",
                "garbage",
                "http://",
                "ftp://elsewhere.example/x.wav",
                "//elsewhere.example/x.wav",
                "http://127.0.0.1:1/x.wav",
                "http://[::1]/x.wav",
                "/Trash/%2E%2E/x.wav",
                "http://user:pw@elsewhere.example/",
            ],
        ),
    }
}

fn fuzz_range(rng: &mut StdRng) -> String {
    match rng.gen_range(0..7) {
        0 => "bytes=0-99".to_string(),
        1 => format!("bytes=-{}", rng.gen_range(0..30_000)),
        2 => format!("bytes={}-", rng.gen_range(0..30_000)),
        3 => {
            let n = rng.gen_range(2..=3_000);
            let parts: Vec<String> = (0..n)
                .map(|_| {
                    if rng.gen_bool(0.5) {
                        "0-".to_string()
                    } else {
                        let from = rng.gen_range(0..20_000u32);
                        format!("{from}-{}", from + rng.gen_range(0..100u32))
                    }
                })
                .collect();
            format!("bytes={}", parts.join(","))
        }
        4 => format!("bytes={}-{}", rng.gen_range(0..30_000), rng.gen_range(0..30_000)),
        _ => pick(
            rng,
            &[
                "bytes=",
                "bytes=5-1",
                "items=0-1",
                "bytes=0-0,-1",
                "bytes=-0",
                "bytes=99999999999999999999999-",
                "bytes=0-18446744073709551615",
                "garbage",
            ],
        ),
    }
}

/// A lock token seen in a LOCK answer (`<…>`), or garbage.
fn fuzz_lock_token(rng: &mut StdRng, seen: &[String]) -> String {
    match seen.choose(rng) {
        Some(token) if rng.gen_bool(0.5) => token.clone(),
        _ => pick(rng, &["<opaquelocktoken:nope>", "garbage", "<>", "<urn:uuid:00000000-0000-0000-0000-000000000000>"]),
    }
}

/// A body and what it is.
fn fuzz_body(rng: &mut StdRng, method: &str) -> (Option<Vec<u8>>, String) {
    let choice = if matches!(method, "PUT" | "PATCH") && rng.gen_bool(0.5) { 5 } else { rng.gen_range(0..8) };
    match choice {
        0 | 1 => (None, "none".to_string()),
        2 => {
            let n = rng.gen_range(0..=4096);
            let bytes: Vec<u8> = (0..n).map(|_| rng.r#gen::<u8>()).collect();
            (Some(bytes), format!("{n} random bytes"))
        }
        3 => {
            let depth = rng.gen_range(1..=5_000);
            let name = pick(rng, &["D:prop", "D:propfind", "D:href", "x", "D:owner"]);
            let body = format!(
                r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:">{}</D:propfind>"#,
                nest(&format!("<{name}>"), &format!("</{name}>"), depth)
            );
            (Some(body.into_bytes()), format!("XML with <{name}> nested {depth} deep"))
        }
        4 => {
            (Some(pick(rng, &[ALLPROP, NAMED_PROPS, LOCKINFO, PROPPATCH]).into_bytes()), "a small DAV body".to_string())
        }
        5 | 6 => {
            let len = rng.gen_range(1_000..16_000);
            (Some(noise_wav(len, rng.r#gen::<u64>())), format!("a WAV of {len} bytes"))
        }
        _ => (Some(Vec::new()), "empty".to_string()),
    }
}

/// One fuzzed WebDAV request.
struct Fuzzed {
    method: &'static str,
    target: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    body_kind: String,
}

impl Fuzzed {
    fn random(rng: &mut StdRng, now: &Snapshot, host: &str, lock_tokens: &[String]) -> Fuzzed {
        let method: &'static str = METHODS.choose(rng).expect("a method");
        let live: Vec<&str> = now.values().filter(|r| !r.in_trash).map(|r| r.name.as_str()).collect();
        let trashed: Vec<&str> = now.values().filter(|r| r.in_trash).map(|r| r.name.as_str()).collect();
        let target = fuzz_path(rng, &live, &trashed);
        let moving = matches!(method, "MOVE" | "COPY");
        let mut headers: Vec<(String, String)> = Vec::new();
        if rng.gen_bool(if moving { 0.9 } else { 0.1 }) {
            headers.push(("Destination".into(), fuzz_destination(rng, &live, &trashed, host)));
        }
        if rng.gen_bool(if moving { 0.6 } else { 0.1 }) {
            headers.push(("Overwrite".into(), pick(rng, &["T", "F", "t", "f", "maybe", ""])));
        }
        if rng.gen_bool(0.4) {
            let depth = pick(rng, &["0", "1", "infinity", "Infinity", "2", "-1", "garbage", "99999999999999999999"]);
            headers.push(("Depth".into(), depth));
        }
        if rng.gen_bool(if matches!(method, "GET" | "HEAD") { 0.6 } else { 0.1 }) {
            headers.push(("Range".into(), fuzz_range(rng)));
        }
        if rng.gen_bool(0.15) {
            let token = fuzz_lock_token(rng, lock_tokens);
            let condition = match rng.gen_range(0..3) {
                0 => format!("({token})"),
                1 => format!("<http://{host}/> ({token})"),
                _ => pick(rng, &["(Not <DAV:no-lock>)", "(garbage", "<x> (<y>) (Not <z>)", ""]),
            };
            headers.push(("If".into(), condition));
        }
        if rng.gen_bool(if method == "UNLOCK" { 0.9 } else { 0.05 }) {
            headers.push(("Lock-Token".into(), fuzz_lock_token(rng, lock_tokens)));
        }
        if rng.gen_bool(if method == "LOCK" { 0.5 } else { 0.05 }) {
            let timeout = pick(rng, &["Second-60", "Infinite", "Second-0", "Second-99999999999999999999", "garbage"]);
            headers.push(("Timeout".into(), timeout));
        }
        if rng.gen_bool(0.1) {
            let range = pick(rng, &["bytes 0-3/4", "bytes 0-0/*", "bytes */100", "bytes 100-199/200", "garbage"]);
            headers.push(("Content-Range".into(), range));
        }
        // SabreDAV's partial update: a PATCH that writes into a file.
        let patching = method == "PATCH";
        if rng.gen_bool(if patching { 0.6 } else { 0.05 }) {
            headers.push(("X-Update-Range".into(), pick(rng, &["append", "bytes=0-3", "bytes=-4", "bytes=44-"])));
        }
        let (body, body_kind) = fuzz_body(rng, method);
        if patching && rng.gen_bool(0.5) {
            headers.push(("Content-Type".into(), "application/x-sabredav-partialupdate".into()));
        } else if body.is_some() && rng.gen_bool(0.5) {
            let content_type = pick(
                rng,
                &[
                    "application/xml",
                    "text/xml; charset=utf-8",
                    "audio/wav",
                    "application/octet-stream",
                    "multipart/form-data; boundary=x",
                    "application/x-sabredav-partialupdate",
                    "garbage",
                ],
            );
            headers.push(("Content-Type".into(), content_type));
        }
        Fuzzed { method, target, headers, body, body_kind }
    }

    fn describe(&self) -> String {
        let headers: Vec<String> = self.headers.iter().map(|(n, v)| format!("{n}: {}", clip(v))).collect();
        format!("{} {} [{}] body: {}", self.method, clip(&self.target), headers.join("; "), self.body_kind)
    }
}

/// Uploads (through the API) until the user has two live recordings and one in the trash; true
/// when it uploaded anything.
fn keep_library(s: &Server, u: &DavUser, now: &Snapshot, fresh: &mut u64) -> bool {
    let live = now.values().filter(|r| !r.in_trash).count();
    let mut changed = false;
    for _ in live..2 {
        *fresh += 1;
        s.upload_id(&u.session, &format!("fresh-{fresh}.wav"), &noise_wav(2_000 + *fresh as usize, 1_000 + *fresh));
        changed = true;
    }
    if now.values().all(|r| !r.in_trash) {
        *fresh += 1;
        let id =
            s.upload_id(&u.session, &format!("fresh-{fresh}.wav"), &noise_wav(2_000 + *fresh as usize, 1_000 + *fresh));
        to_trash(s, &u.session, &id);
        changed = true;
    }
    changed
}

/// What must hold around every fuzzed request: no bytes change, at most one recording goes (by
/// a DELETE that succeeded), at most two change (a MOVE over an existing file), each change by
/// a request that succeeded and could make it, and no 5xx but 502 and 507.
fn check_fuzz_invariants(context: &str, method: &str, status: u16, before: &Snapshot, after: &Snapshot) {
    // 501 is the answer to a method the listener does not implement.
    let unimplemented = status == 501 && matches!(method, "POST" | "REPORT");
    assert!(status < 500 || matches!(status, 502 | 507) || unimplemented, "{context}: answered {status}");

    for (id, was) in before {
        if let Some(now) = after.get(id) {
            assert_eq!(now.sha256, was.sha256, "{context}: the bytes of {id} changed");
        }
    }
    let changes = diff(before, after);
    let succeeded = (200..300).contains(&status);
    if after.len() < before.len() {
        assert_eq!(before.len() - after.len(), 1, "{context}: several recordings gone at once: {changes:?}");
        assert!(
            method == "DELETE" && succeeded,
            "{context}: a recording is gone after {method} answered {status}: {changes:?}"
        );
    }
    assert!(changes.len() <= 2, "{context}: {} recordings changed at once: {changes:?}", changes.len());
    if !changes.is_empty() {
        assert!(
            matches!(method, "PUT" | "MOVE" | "DELETE") && succeeded,
            "{context}: answered {status}, yet changed {changes:?}"
        );
    }
    if matches!(method, "PUT" | "DELETE") {
        assert!(changes.len() <= 1, "{context}: one {method} changed {changes:?}");
    }
    for change in &changes {
        let fits = match (method, change) {
            // A PUT makes one new recording, in the folder.
            ("PUT", Change::Added { to, .. }) => !to.in_trash,
            // A DELETE trashes a live recording or purges a trashed one.
            ("DELETE", Change::Changed { from, to, .. }) => !from.in_trash && to.in_trash,
            ("DELETE", Change::Removed { from, .. }) => from.in_trash,
            // A MOVE renames, trashes or restores; it never makes or purges one.
            ("MOVE", Change::Changed { .. }) => true,
            _ => false,
        };
        assert!(fits, "{context}: {method} answered {status} and made this change: {change:?}");
    }
}

/// Random WebDAV requests (methods, spellings of paths and destinations, headers, bodies) against
/// a small library, each followed by checks that the server is alive and that the request changed
/// no more than it could. Seeded: `RECORDER_FUZZ_SEED=<seed>` replays a run.
#[test]
fn webdav_fuzz_never_crashes_or_changes_more_than_one_file() {
    const MAX_REQUESTS: usize = 1_500;
    const MAX_TIME: Duration = Duration::from_secs(30);
    let seed: u64 = match std::env::var("RECORDER_FUZZ_SEED") {
        Ok(text) => text.trim().parse().unwrap_or_else(|e| panic!("RECORDER_FUZZ_SEED={text:?}: {e}")),
        Err(_) => {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
        }
    };
    eprintln!("webdav fuzz: seed {seed} (replay with RECORDER_FUZZ_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let s = Server::start_dav_with(|c| c.analysis.enabled = false);
    let u = DavUser::new(&s, "fuzzy");
    let host = s.dav_host();
    let credentials = basic(&u.name, &u.app);

    let mut fresh = 0u64;
    for i in 1..=3u64 {
        s.upload_id(&u.session, &format!("live{i}.wav"), &noise_wav(3_000 + i as usize, i));
    }
    for i in 1..=2u64 {
        let id = s.upload_id(&u.session, &format!("old{i}.wav"), &noise_wav(4_000 + i as usize, 10 + i));
        to_trash(&s, &u.session, &id);
    }

    let started = Instant::now();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut methods: BTreeMap<&str, usize> = BTreeMap::new();
    let mut lock_tokens: Vec<String> = Vec::new();
    let mut changed = 0usize;
    let mut sent = 0usize;
    let mut before = snapshot(&s, &u.session);
    while sent < MAX_REQUESTS && started.elapsed() < MAX_TIME {
        if keep_library(&s, &u, &before, &mut fresh) {
            before = snapshot(&s, &u.session);
        }
        let req = Fuzzed::random(&mut rng, &before, &host, &lock_tokens);
        sent += 1;
        let context = format!("seed {seed}, request #{sent}: {}", req.describe());
        let mut headers: Vec<(&str, &str)> = vec![("Authorization", credentials.as_str())];
        headers.extend(req.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        let r = raw(&host, req.method, &req.target, &headers, req.body.as_deref())
            .unwrap_or_else(|e| panic!("{context}: no answer: {e}"));
        *statuses.entry(r.status).or_default() += 1;
        *methods.entry(req.method).or_default() += 1;
        if req.method == "LOCK"
            && r.status == 200
            && let Some(token) = r.header("Lock-Token")
            && lock_tokens.len() < 16
        {
            lock_tokens.push(token.to_string());
        }

        let alive = raw(&host, "PROPFIND", "/", &[("Authorization", credentials.as_str()), ("Depth", "0")], None)
            .unwrap_or_else(|e| panic!("{context}: then PROPFIND / got no answer: {e}"));
        assert_eq!(alive.status, 207, "{context}: then PROPFIND / answered {} {}", alive.status, alive.text());
        let after = snapshot(&s, &u.session);
        check_fuzz_invariants(&context, req.method, r.status, &before, &after);
        changed += diff(&before, &after).len();
        before = after;
    }
    eprintln!(
        "webdav fuzz (seed {seed}): {sent} requests in {:.1?}, {changed} recordings changed; \
         statuses {statuses:?}; methods {methods:?}; {} lock tokens seen; {} recordings at the end",
        started.elapsed(),
        lock_tokens.len(),
        before.len()
    );
    assert!(sent >= 20, "only {sent} requests in {MAX_TIME:?}");
}
