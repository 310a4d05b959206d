//! The recorder app in real headless Chromium, over HTTPS with the server's own CA trusted as a
//! phone trusts it: installable, a service worker that opens the app with no network, takes kept
//! on the device and uploaded when the server is reachable again, a tab killed mid-take, and
//! what a page on plain HTTP says before the Record button is pressed. Skips (or fails, with
//! `RECORDER_REQUIRE_BROWSER=1`) like the other browser tests.

use crate::support::browser::{Browser, WAIT, assert_accessible, item, sign_up_at};
use crate::support::proxy::Proxy;
use crate::support::{Server, fixture, list, poll_for, send, settled, sha256_hex};
use serde_json::{Value, json};
use std::time::Duration;

/// The CA's certificate, from the plain port (as a phone downloads it).
fn ca(server: &Server) -> Vec<u8> {
    let r = send(server.req("GET", "/ca.crt"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    r.body
}

/// The HTTPS listener's address (`127.0.0.1:port`).
fn https_addr(server: &Server) -> std::net::SocketAddr {
    server.https.as_deref().expect("HTTPS is on").trim_start_matches("https://").parse().expect("an address")
}

/// Runs an async function body in the page and returns what it returns.
fn run_async(b: &Browser, body: &str) -> Value {
    let value = b.js_await(&format!("(async () => {{ {body} }})().then(done, (e) => done({{ failed: String(e) }}));"));
    assert!(value.get("failed").is_none(), "the page's script failed: {value}");
    value
}

/// The takes the outbox holds (from the page's IndexedDB): `[{name, state, size, marks}]`.
fn outbox(b: &Browser) -> Vec<Value> {
    let value = run_async(
        b,
        "const db = await new Promise((ok, no) => { const r = indexedDB.open('recorder-outbox'); r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error); });
         if (!db.objectStoreNames.contains('takes')) return [];
         return await new Promise((ok, no) => { const r = db.transaction('takes').objectStore('takes').getAll();
           r.onsuccess = () => ok(r.result.map((t) => ({ name: t.name, state: t.state, size: t.size, marks: t.marks }))); r.onerror = () => no(r.error); });",
    );
    value.as_array().cloned().unwrap_or_default()
}

/// The SHA-256 (hex) of the bytes a take keeps on the device, as the page reads them back.
fn kept_hash(b: &Browser) -> String {
    run_async(
        b,
        "const db = await new Promise((ok, no) => { const r = indexedDB.open('recorder-outbox'); r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error); });
         const chunks = await new Promise((ok, no) => { const r = db.transaction('chunks').objectStore('chunks').getAll(); r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error); });
         const blob = new Blob(chunks.map((c) => c.blob));
         const digest = await crypto.subtle.digest('SHA-256', await blob.arrayBuffer());
         return [...new Uint8Array(digest)].map((x) => x.toString(16).padStart(2, '0')).join('');",
    )
    .as_str()
    .expect("a hash")
    .to_string()
}

fn record_for(b: &Browser, seconds: &str) {
    b.click("button[data-test=record]");
    b.wait_for("[data-test=record-timer]");
    b.wait_js(
        &format!("the timer to reach {seconds}"),
        "return document.querySelector('[data-test=record-timer]').textContent.trim() >= arguments[0];",
        vec![json!(seconds)],
    );
}

/// A button's accessible name, as assistive technology reads it.
fn accessible_name(b: &Browser, css: &str) -> String {
    b.js(
        "const e = document.querySelector(arguments[0]); return e ? (e.getAttribute('aria-label') || e.textContent).trim() : '';",
        vec![json!(css)],
    )
    .as_str()
    .unwrap_or_default()
    .to_string()
}

#[test]
fn the_recorder_installs_over_https_opens_offline_and_uploads_its_take_when_the_server_is_back() {
    let server = Server::start();
    let Some(b) = Browser::start_trusting("the installable recorder", &ca(&server)) else { return };
    // The browser reaches the HTTPS port through a proxy that can take the network away.
    let proxy = Proxy::start(https_addr(&server));
    let base = proxy.base().replacen("http://", "https://", 1);
    sign_up_at(&b, &base, "pia");
    let token = server.login("pia");
    let earlier = server.upload_id(&token, "earlier.wav", &fixture("speech.wav"));
    b.goto(&base);
    b.wait_for(&item(&earlier));

    // A secure context, controlled by the service worker, and installable.
    assert_eq!(b.js("return window.isSecureContext && location.protocol;", vec![]), json!("https:"));
    b.wait_js("the service worker to control the page", "return !!navigator.serviceWorker.controller;", vec![]);
    let errors = b.cdp("Page.getInstallabilityErrors", json!({}));
    assert_eq!(errors["installabilityErrors"], json!([]), "Chromium finds it installable: {errors}");
    let manifest = b.cdp("Page.getAppManifest", json!({}));
    assert_eq!(manifest["errors"], json!([]), "{manifest}");
    assert!(manifest["url"].as_str().is_some_and(|u| u.ends_with("/manifest.webmanifest")), "{manifest}");

    // No network at all: the app still opens, shows the list it last saw, and records.
    proxy.cut();
    b.network(true, None);
    b.goto(&base);
    b.wait_for("[data-test=offline]");
    b.wait_for(&item(&earlier));
    b.wait_js("the page to be ready", "return document.body.dataset.ready === '1';", vec![]);
    record_for(&b, "0:01");
    b.click("button[data-test=record-mark]");
    record_for_more(&b, "0:03");
    b.keys("m");
    b.wait_js(
        "two marks",
        "return (document.querySelector('[data-test=record-marks]')?.textContent || '').startsWith('2 marks');",
        vec![],
    );
    b.click("button[data-test=record-stop]");
    // Listed while it was recorded; stopped, it waits for the server.
    b.wait_for("[data-test=outbox] li[data-test=outbox-take]:not([data-state=recording])");
    let status = b.text("[data-test=outbox-take] [data-test=outbox-status]");
    assert!(status.starts_with("waiting to upload") || status.starts_with("uploading"), "{status}");
    let kept = outbox(&b);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0]["state"], "ready");
    assert_eq!(kept[0]["marks"].as_array().map(Vec::len), Some(2), "{kept:?}");
    let hash = kept_hash(&b);
    assert_eq!(list(&server, &token, "/api/v1/recordings").len(), 1, "nothing reached the server while offline");
    b.screenshot(390, 844, "recorder-offline-outbox.png");

    // The network is back: the take is uploaded, checked by its hash, and leaves the device.
    proxy.restore();
    b.network(false, None);
    let stored = poll_for("the take on the server", WAIT * 4, || {
        let all = list(&server, &token, "/api/v1/recordings");
        all.into_iter().find(|r| r["id"] != json!(earlier))
    });
    assert_eq!(stored["sha256"], json!(hash), "the server has exactly the bytes kept on the device");
    assert!(stored["name"].as_str().is_some_and(|n| n.starts_with("Recording ") && n.ends_with(".webm")), "{stored}");
    b.wait_js("the outbox to empty", "return document.querySelector('[data-test=outbox]').hidden;", vec![]);
    assert!(outbox(&b).is_empty(), "the take left the device once the server had it");
    let id = stored["id"].as_str().expect("id");
    let audio = send(server.auth("GET", &format!("/api/v1/recordings/{id}/audio"), &token), None);
    assert_eq!(sha256_hex(&audio.body), hash);
    let analysed = settled(&server, &token, id, Duration::from_secs(60));
    // Opus is decoded in every build: the exact length of what was recorded.
    let ms = analysed["duration_ms"].as_i64().expect("a duration");
    assert!((2500..=6000).contains(&ms), "about the 3 s recorded: {ms} ms");
    assert_eq!(analysed["waveform"], "ready", "{analysed}");
    // The marks are bookmarks, in order, within the recording.
    let marks = send(server.auth("GET", &format!("/api/v1/recordings/{id}/bookmarks"), &token), None).json();
    let at: Vec<i64> =
        marks["bookmarks"].as_array().expect("bookmarks").iter().map(|m| m["at_ms"].as_i64().unwrap_or(-1)).collect();
    assert_eq!(at.len(), 2, "{marks}");
    assert!(at[0] >= 500 && at[0] < at[1] && at[1] <= 8000, "{at:?}");
    assert_eq!(analysed["bookmarks"], 2);
    b.wait_for(&item(id));
}

/// Records on until the timer reaches `seconds` (the take is already running).
fn record_for_more(b: &Browser, seconds: &str) {
    b.wait_js(
        &format!("the timer to reach {seconds}"),
        "return document.querySelector('[data-test=record-timer]').textContent.trim() >= arguments[0];",
        vec![json!(seconds)],
    );
}

#[test]
fn a_tab_killed_mid_take_keeps_the_take_and_the_next_start_finishes_and_uploads_it() {
    let server = Server::start();
    let Some(b) = Browser::start_trusting("a take survives its tab", &ca(&server)) else { return };
    let base = server.https.clone().expect("HTTPS");
    sign_up_at(&b, &base, "tess");
    let token = server.login("tess");
    record_for(&b, "0:03");
    // Written to the device second by second while recording.
    let kept = poll_for("a few seconds kept on the device", WAIT, || {
        let takes = outbox(&b);
        (takes.len() == 1 && takes[0]["state"] == "recording" && takes[0]["size"].as_u64() > Some(1000))
            .then(|| takes[0].clone())
    });
    let name = kept["name"].as_str().expect("name").to_string();
    // Another tab leaves a take that is still being recorded alone.
    let recording_tab = b.open_window();
    b.goto(&base);
    b.wait_for("[data-test=outbox] li[data-test=outbox-take][data-state=recording]");
    assert!(list(&server, &token, "/api/v1/recordings").is_empty(), "not sent behind the recording tab's back");
    let second_tab = b.window();

    // The recording tab dies mid-take.
    b.switch_to(recording_tab);
    b.close_window(second_tab);
    b.goto(&base);
    b.wait_js(
        "the page to say it recovered the take",
        "const t = document.querySelector('[data-test=toast]'); return t && t.textContent.includes('Recovered an interrupted recording');",
        vec![],
    );
    let stored = list(&server, &token, "/api/v1/recordings");
    assert_eq!(stored.len(), 1, "{stored:?}");
    let r = &stored[0];
    assert_eq!(r["name"], json!(name));
    assert_eq!(r["content_type"], "audio/webm", "{r}");
    assert!(r["size"].as_u64() >= kept["size"].as_u64(), "everything kept on the device arrived: {r} vs {kept}");
    let audio =
        send(server.auth("GET", &format!("/api/v1/recordings/{}/audio", r["id"].as_str().expect("id")), &token), None);
    assert_eq!(&audio.body[..4], &[0x1a, 0x45, 0xdf, 0xa3], "a WebM file from its first byte");
    b.wait_js("the outbox to empty", "return document.querySelector('[data-test=outbox]').hidden;", vec![]);
    assert!(outbox(&b).is_empty());
    // Nothing is left for a later start.
    b.goto(&base);
    b.wait_js("the page to be ready", "return document.body.dataset.ready === '1';", vec![]);
    b.wait_js(
        "the outbox looked at",
        "return document.querySelector('[data-test=outbox]')?.dataset.rendered === '1';",
        vec![],
    );
    assert_eq!(list(&server, &token, "/api/v1/recordings").len(), 1);
}

#[test]
fn recording_pauses_resumes_and_marks_and_the_controls_are_named_for_everyone() {
    let server = Server::start();
    let Some(b) = Browser::start_trusting("record controls", &ca(&server)) else { return };
    let base = server.https.clone().expect("HTTPS");
    sign_up_at(&b, &base, "rhea");
    let token = server.login("rhea");
    assert_eq!(accessible_name(&b, "button[data-test=record]"), "Record");
    record_for(&b, "0:01");
    assert_eq!(accessible_name(&b, "button[data-test=record-pause]"), "Pause");
    assert_eq!(accessible_name(&b, "button[data-test=record-mark]"), "Mark");
    assert_eq!(accessible_name(&b, "button[data-test=record-stop]"), "Stop");
    b.click("button[data-test=record-pause]");
    assert_accessible(&b, "a paused recording");
    assert_eq!(accessible_name(&b, "button[data-test=record-pause]"), "Resume");
    assert_eq!(b.text("[data-test=record-state]"), "Paused");
    let paused_at = b.text("[data-test=record-timer]");
    // While paused the clock stands still (checked over more than a second of wall time).
    let started = std::time::Instant::now();
    poll_for("a second and a half to pass", Duration::from_secs(5), || {
        (started.elapsed() > Duration::from_millis(1500)).then_some(())
    });
    assert_eq!(b.text("[data-test=record-timer]"), paused_at, "paused: no time is added");
    assert!(b.js("return document.querySelector('button[data-test=record-mark]').disabled;", vec![]) == json!(true));
    b.click("button[data-test=record-pause]");
    assert_eq!(b.text("[data-test=record-state]"), "Recording");
    record_for_more(&b, "0:02");
    b.click("button[data-test=record-mark]");
    b.click("button[data-test=record-stop]");
    let stored =
        poll_for("the take on the server", WAIT * 2, || list(&server, &token, "/api/v1/recordings").into_iter().next());
    let id = stored["id"].as_str().expect("id");
    assert_eq!(stored["bookmarks"], 1, "{stored}");
    // Nothing is left open.
    let open = send(server.auth("GET", "/api/v1/uploads", &token), None).json();
    assert_eq!(open["uploads"], json!([]));
    let analysed = settled(&server, &token, id, Duration::from_secs(60));
    let mark = send(server.auth("GET", &format!("/api/v1/recordings/{id}/bookmarks"), &token), None).json();
    let at = mark["bookmarks"][0]["at_ms"].as_i64().expect("at_ms");
    let ms = analysed["duration_ms"].as_i64().expect("duration");
    // The pause is not in the recording: about two seconds, not three and a half.
    assert!((1500..=3400).contains(&ms), "the recording leaves the pause out: {ms} ms");
    assert!(at <= ms + 500, "the mark is within the recording: {at} of {ms}");
    assert!((1500..=4000).contains(&at), "the mark is at about 0:02 of recorded time: {at}");
}

#[test]
fn over_plain_http_off_this_machine_the_page_says_to_use_the_secure_address_before_recording() {
    let server = Server::start();
    // A name that is not this machine's: the page is not a secure context, as on a phone that
    // opened http://192.168.x.y:8080.
    let port = server.base.rsplit(':').next().expect("port").to_string();
    let rule = "--host-resolver-rules=MAP recorder.test 127.0.0.1";
    let Some(b) = Browser::start_with("plain HTTP on the LAN", &[rule]) else { return };
    let base = format!("http://recorder.test:{port}");
    sign_up_at(&b, &base, "hugo");
    assert_eq!(b.js("return window.isSecureContext;", vec![]), json!(false));
    b.wait_for("[data-test=secure-banner]");
    let banner = b.text("[data-test=secure-banner]");
    assert!(banner.contains("To record on this device, use the secure address"), "{banner}");
    let link = b.js("return document.querySelector('[data-test=secure-link]').href;", vec![]);
    let https = server.https.clone().expect("HTTPS");
    assert_eq!(link, json!(format!("{https}/")), "the secure address (this server listens on loopback only)");
    assert_eq!(
        b.js("return document.querySelector('[data-test=setup-link]').getAttribute('href');", vec![]),
        json!("/setup")
    );
    let described = b.js(
        "const b = document.querySelector('button[data-test=record]'); const d = document.getElementById(b.getAttribute('aria-describedby')); return d && d.textContent;",
        vec![],
    );
    assert!(
        described.as_str().is_some_and(|d| d.contains("secure address")),
        "the Record button says it before the tap: {described}"
    );
    // The first-run screen: record (here: how to get the secure address) or pair a phone app.
    b.wait_for("[data-test=empty]");
    let empty = b.text("[data-test=empty]");
    assert!(empty.contains("secure address") && empty.contains("Account page"), "{empty}");
    assert!(!empty.contains("curl"), "no developer commands on a person's first screen");
    assert_accessible(&b, "the plain-HTTP banner");
    // The setup page is one click away and shows the fingerprint.
    b.goto(&format!("{base}/setup"));
    b.wait_for("[data-test=ca-fingerprint]");
    assert!(b.text("[data-test=ca-fingerprint]").starts_with("SHA-256 "));
    b.wait_for("[data-test=setup-qr] svg");
}
