//! Share links: made, listed and revoked by the owner; the public page, audio and waveform at
//! `/s/<token>` for anyone with the link, and nothing for anyone without a live one.

use crate::support::browser::Browser;
use crate::support::{Resp, Server, fixture, send, send_json, settled, sha256_hex};
use serde_json::{Value, json};
use std::time::Duration;

const DAY_MS: i64 = 86_400_000;

fn share(s: &Server, token: &str, id: &str, body: Value) -> Resp {
    send_json(s.auth("POST", &format!("/api/v1/recordings/{id}/shares"), token), &body)
}

/// Makes a link (201) and returns its JSON.
fn link(s: &Server, token: &str, id: &str, body: Value) -> Value {
    let r = share(s, token, id, body);
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()
}

fn url(link: &Value) -> String {
    link["url"].as_str().expect("url").to_string()
}

fn list(s: &Server, token: &str) -> Vec<Value> {
    let r = send(s.auth("GET", "/api/v1/shares", token), None);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["shares"].as_array().expect("shares").clone()
}

/// Asserts the plain 404 page of a dead link.
fn assert_dead_page(r: &Resp) {
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(r.text().contains("Link not found"), "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("no-store"));
}

/// Asserts that a link is dead on all three public routes.
fn assert_dead(s: &Server, url: &str) {
    assert_dead_page(&send(s.req("GET", url), None));
    send(s.req("GET", &format!("{url}/audio")), None).assert_error(404, "not_found");
    send(s.req("GET", &format!("{url}/waveform")), None).assert_error(404, "not_found");
}

#[test]
fn a_link_plays_its_recording_for_anyone_and_shows_nothing_else_of_the_owner() {
    let s = Server::start_with(|c| c.analysis.enabled = false);
    let owner = s.signup("alice-owner");
    let wav = fixture("speech.wav");
    let rec = s.upload(&owner, "Band practice.wav", &wav).json();
    let id = rec["id"].as_str().expect("id");
    let other = s.upload_id(&owner, "Other one.wav", &wav);

    let made = link(&s, &owner, id, json!({"expires_in_days": null, "download": true}));
    assert_eq!(made["download"], true);
    assert_eq!(made["expires_at"], Value::Null);
    assert_eq!(made["recording_id"], id);
    let url = url(&made);
    let token = url.strip_prefix("/s/").expect("a relative /s/ URL");
    assert_eq!(token.len(), 43, "32 random bytes, base64url: {token}");

    let page = send(s.req("GET", &url), None);
    assert_eq!(page.status, 200, "{}", page.text());
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    let csp = page.header("content-security-policy").expect("CSP").to_string();
    for directive in ["default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
    let html = page.text();
    assert!(html.contains("<h1 class=\"share-name\">Band practice.wav</h1>"), "{html}");
    assert!(html.contains(">0:04<"), "the duration: {html}");
    assert!(html.contains(&format!("<audio class=\"share-audio\" controls preload=\"metadata\" src=\"{url}/audio\">")));
    assert!(html.contains(&format!("href=\"{url}/audio?download=1\"")), "a download link: {html}");
    assert!(html.contains("<script type=\"module\" src=\"/share.js\">"), "{html}");
    let inline = ["<style", " style=", " onclick=", " onload=", " onerror="];
    assert!(!inline.iter().any(|i| html.contains(i)), "nothing inline: {html}");
    for secret in ["alice-owner", id, other.as_str(), made["id"].as_str().expect("share id"), "Other one"] {
        assert!(!html.contains(secret), "the page reveals {secret}: {html}");
    }
    assert!(!html.contains("data-waveform"), "no waveform before analysis: {html}");

    // The page's own files.
    let script = send(s.req("GET", "/share.js"), None);
    assert_eq!(script.status, 200);
    assert_eq!(script.header("content-type"), Some("text/javascript; charset=utf-8"));
    let css = send(s.req("GET", "/share.css"), None);
    assert_eq!(css.status, 200);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));

    // The audio: whole, ranged, conditional, with the owner's audio headers.
    let audio = format!("{url}/audio");
    let full = send(s.req("GET", &audio), None);
    assert_eq!(full.status, 200);
    assert_eq!(sha256_hex(&full.body), sha256_hex(&wav));
    assert_eq!(full.header("content-security-policy"), Some("sandbox"));
    assert_eq!(full.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(full.header("accept-ranges"), Some("bytes"));
    assert_eq!(full.header("content-type"), Some("audio/wav"));
    let etag = format!("\"{}\"", rec["sha256"].as_str().expect("sha"));
    assert_eq!(full.header("etag"), Some(etag.as_str()));
    assert!(full.header("content-disposition").is_some_and(|d| d.starts_with("inline;")));
    let ranged = send(s.req("GET", &audio).set("Range", "bytes=100-1099"), None);
    assert_eq!(ranged.status, 206);
    assert_eq!(ranged.body, wav[100..1100]);
    assert_eq!(ranged.header("content-range"), Some(format!("bytes 100-1099/{}", wav.len()).as_str()));
    assert_eq!(send(s.req("GET", &audio).set("If-None-Match", &etag), None).status, 304);
    send(s.req("GET", &audio).set("Range", &format!("bytes={}-", wav.len())), None)
        .assert_error(416, "range_not_satisfiable");
    let download = send(s.req("GET", &format!("{audio}?download=1")), None);
    assert_eq!(download.status, 200);
    assert!(download.header("content-disposition").is_some_and(|d| d.starts_with("attachment;")));
    let head = send(s.req("HEAD", &url), None);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());

    // One page load so far was a GET: HEAD and the audio requests are not counted.
    let links = list(&s, &owner);
    assert_eq!(links.len(), 1);
    assert_eq!(links[0]["opens"], 1, "{links:?}");
    assert_eq!(send(s.req("GET", &url), None).status, 200);
    assert_eq!(list(&s, &owner)[0]["opens"], 2);
}

#[test]
fn the_owner_lists_live_links_and_a_revoked_one_dies_at_once() {
    let s = Server::start_with(|c| c.analysis.enabled = false);
    let owner = s.signup("bea");
    let intruder = s.signup("bert");
    let id = s.upload_id(&owner, "memo.wav", &fixture("speech.wav"));
    let first = link(&s, &owner, &id, json!({"expires_in_days": 7, "download": false}));
    let second = link(&s, &owner, &id, json!({}));
    assert_eq!(second["download"], true, "download defaults to true");
    assert_eq!(second["expires_at"], Value::Null, "no expiry by default");
    assert!(first["expires_at"].is_string());

    let links = list(&s, &owner);
    assert_eq!(links.len(), 2);
    assert_eq!(links[0]["id"], second["id"], "newest first");
    assert_eq!(links[1]["id"], first["id"]);
    assert_eq!(links[1]["name"], "memo.wav");
    assert_eq!(links[1]["recording_id"], id.as_str());
    assert_eq!(links[1]["download"], false);
    assert_eq!(links[1]["expires_at"], first["expires_at"]);
    assert_eq!(links[1]["opens"], 0);
    assert!(links[1]["created_at"].is_string());
    assert!(links[1].get("url").is_none() && links[1].get("token").is_none(), "the token is not kept: {links:?}");
    assert!(list(&s, &intruder).is_empty());

    // A rename shows on the page and in the list.
    let renamed =
        send_json(s.auth("PATCH", &format!("/api/v1/recordings/{id}"), &owner), &json!({"name": "Renamed.wav"}));
    assert_eq!(renamed.status, 200);
    assert!(send(s.req("GET", &url(&first)), None).text().contains("Renamed.wav"));
    assert_eq!(list(&s, &owner)[0]["name"], "Renamed.wav");

    // Someone else cannot revoke it; unknown and malformed ids are not found either.
    let first_id = first["id"].as_str().expect("id");
    send(s.auth("DELETE", &format!("/api/v1/shares/{first_id}"), &intruder), None).assert_error(404, "not_found");
    send(s.auth("DELETE", "/api/v1/shares/0190a5a0-0000-7000-8000-000000000000", &owner), None)
        .assert_error(404, "not_found");
    send(s.auth("DELETE", "/api/v1/shares/nope", &owner), None).assert_error(404, "not_found");
    send(s.req("DELETE", &format!("/api/v1/shares/{first_id}")), None).assert_error(401, "unauthorized");
    assert_eq!(send(s.req("GET", &url(&first)), None).status, 200);

    let r = send(s.auth("DELETE", &format!("/api/v1/shares/{first_id}"), &owner), None);
    assert_eq!(r.status, 204);
    assert_dead(&s, &url(&first));
    assert_eq!(send(s.auth("DELETE", &format!("/api/v1/shares/{first_id}"), &owner), None).status, 204, "again");
    let links = list(&s, &owner);
    assert_eq!(links.len(), 1);
    assert_eq!(links[0]["id"], second["id"]);
    assert_eq!(send(s.req("GET", &url(&second)), None).status, 200, "the other link lives on");
}

#[test]
fn a_link_without_download_has_no_download_and_refuses_one() {
    let s = Server::start_with(|c| c.analysis.enabled = false);
    let owner = s.signup("cleo");
    let wav = fixture("speech.wav");
    let id = s.upload_id(&owner, "memo.wav", &wav);
    let url = url(&link(&s, &owner, &id, json!({"download": false})));
    let html = send(s.req("GET", &url), None).text();
    assert!(!html.contains("download"), "{html}");
    send(s.req("GET", &format!("{url}/audio?download=1")), None).assert_error(404, "not_found");
    let inline = send(s.req("GET", &format!("{url}/audio")), None);
    assert_eq!(inline.status, 200, "the player still plays it");
    assert_eq!(inline.body, wav);
}

#[test]
fn expiry_is_checked_and_an_expired_link_is_not_found() {
    let s = Server::start_with(|c| c.analysis.enabled = false);
    let owner = s.signup("dora");
    let id = s.upload_id(&owner, "memo.wav", &fixture("speech.wav"));
    for bad in [json!({"expires_in_days": 0}), json!({"expires_in_days": 3651}), json!({"expires_in_days": -1})] {
        share(&s, &owner, &id, bad).assert_error(400, "bad_request");
    }
    for bad in [json!({"expires_in_days": 1.5}), json!({"expires_in_days": "7"}), json!({"download": "yes"})] {
        share(&s, &owner, &id, bad).assert_error(400, "bad_request");
    }
    let r = send(
        s.auth("POST", &format!("/api/v1/recordings/{id}/shares"), &owner).set("Content-Type", "text/plain"),
        Some(b"{}"),
    );
    r.assert_error(415, "unsupported_media_type");
    assert!(link(&s, &owner, &id, json!({"expires_in_days": 3650}))["expires_at"].is_string());
    assert!(link(&s, &owner, &id, json!({"expires_in_days": 2.0}))["expires_at"].is_string(), "a whole number");

    let made = link(&s, &owner, &id, json!({"expires_in_days": 1}));
    let url = url(&made);
    assert_eq!(send(s.req("GET", &url), None).status, 200);
    s.clock.advance(DAY_MS - 60_000);
    assert_eq!(send(s.req("GET", &format!("{url}/audio")), None).status, 200, "a minute before its end");
    s.clock.advance(60_000);
    assert_dead(&s, &url);
    assert!(!list(&s, &owner).iter().any(|l| l["id"] == made["id"]), "not listed once expired");
}

#[test]
fn a_link_to_a_trashed_recording_is_not_found_until_it_is_restored_and_dies_with_it() {
    let s = Server::start_with(|c| c.analysis.enabled = false);
    let owner = s.signup("emil");
    let id = s.upload_id(&owner, "memo.wav", &fixture("speech.wav"));
    let url = url(&link(&s, &owner, &id, json!({})));
    assert_eq!(send(s.auth("DELETE", &format!("/api/v1/recordings/{id}"), &owner), None).status, 204);
    assert_dead(&s, &url);
    assert!(list(&s, &owner).is_empty(), "not listed while in the trash");
    share(&s, &owner, &id, json!({})).assert_error(404, "not_found");

    assert_eq!(send(s.auth("POST", &format!("/api/v1/trash/{id}/restore"), &owner), None).status, 200);
    assert_eq!(send(s.req("GET", &url), None).status, 200);
    assert_eq!(list(&s, &owner).len(), 1);

    // Deleted for good: the link goes with it.
    let r = send(s.auth("DELETE", &format!("/api/v1/recordings/{id}?permanent=true"), &owner), None);
    assert_eq!(r.status, 204);
    assert_dead(&s, &url);
    let conn = s.db().conn().expect("conn");
    let left: i64 = conn.query_row("SELECT count(*) FROM shares", [], |r| r.get(0)).expect("count");
    assert_eq!(left, 0, "the link's row went with the recording");
}

#[test]
fn only_the_owner_can_share_and_a_token_opens_one_recording_only() {
    let s = Server::start_with(|c| c.analysis.enabled = false);
    let owner = s.signup("finn");
    let intruder = s.signup("fred");
    let wav = fixture("speech.wav");
    let mp3 = fixture("speech.mp3");
    let shared = s.upload_id(&owner, "shared.wav", &wav);
    let private = s.upload_id(&owner, "private.mp3", &mp3);
    share(&s, &intruder, &shared, json!({})).assert_error(404, "not_found");
    share(&s, &owner, "0190a5a0-0000-7000-8000-000000000000", json!({})).assert_error(404, "not_found");
    share(&s, &owner, "not-an-id", json!({})).assert_error(404, "not_found");
    send_json(s.req("POST", &format!("/api/v1/recordings/{shared}/shares")), &json!({}))
        .assert_error(401, "unauthorized");

    let url = url(&link(&s, &owner, &shared, json!({})));
    let token = url.trim_start_matches("/s/").to_string();
    // The link serves its own recording's bytes whatever else the request names.
    for path in [format!("{url}/audio?id={private}"), format!("{url}/audio?recording={private}")] {
        let r = send(s.req("GET", &path), None);
        assert_eq!(r.status, 200);
        assert_eq!(r.body, wav, "{path}");
    }
    assert_eq!(send(s.req("GET", &format!("{url}/{private}/audio")), None).status, 404);
    assert_eq!(send(s.req("GET", &format!("/s/{private}/audio")), None).status, 404, "an id is not a token");
    // A share token is not a credential for the API.
    send(s.auth("GET", &format!("/api/v1/recordings/{private}/audio"), &token), None).assert_error(401, "unauthorized");
    send(s.auth("GET", &format!("/api/v1/recordings/{shared}"), &token), None).assert_error(401, "unauthorized");
    send(s.auth("GET", "/api/v1/shares", &token), None).assert_error(401, "unauthorized");
}

#[test]
fn the_page_escapes_a_hostile_name() {
    let s = Server::start_with(|c| c.analysis.enabled = false);
    let owner = s.signup("gwen");
    let id = s.upload_id(&owner, "<script>alert(1)</script>.m4a", &fixture("speech.m4a"));
    let url = url(&link(&s, &owner, &id, json!({})));
    let html = send(s.req("GET", &url), None).text();
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;.m4a"), "{html}");
    assert!(!html.contains("<script>alert"), "{html}");
    assert_eq!(html.matches("<script").count(), 1, "only the page's own module: {html}");

    let quoted = "\"><img src=x onerror=alert(1)> & 'q'.m4a";
    let r = send_json(s.auth("PATCH", &format!("/api/v1/recordings/{id}"), &owner), &json!({"name": quoted}));
    assert_eq!(r.status, 200);
    let html = send(s.req("GET", &url), None).text();
    assert!(html.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt; &amp; &#39;q&#39;.m4a"), "{html}");
    assert!(!html.contains("<img"), "{html}");
}

#[test]
fn the_waveform_is_shared_once_analysed() {
    let s = Server::start();
    let owner = s.signup("hugo");
    let id = s.upload_id(&owner, "memo.wav", &fixture("speech.wav"));
    let url = url(&link(&s, &owner, &id, json!({})));
    assert_eq!(settled(&s, &owner, &id, Duration::from_secs(60))["waveform"], "ready");
    let html = send(s.req("GET", &url), None).text();
    assert!(html.contains(&format!("data-waveform=\"{url}/waveform\"")), "{html}");
    let shared = send(s.req("GET", &format!("{url}/waveform")), None);
    assert_eq!(shared.status, 200, "{}", shared.text());
    let owned = send(s.auth("GET", &format!("/api/v1/recordings/{id}/waveform"), &owner), None);
    assert_eq!(shared.json(), owned.json());
    let etag = shared.header("etag").expect("ETag").to_string();
    assert_eq!(send(s.req("GET", &format!("{url}/waveform")).set("If-None-Match", &etag), None).status, 304);
}

#[test]
fn a_waveform_not_yet_analysed_is_not_found() {
    let s = Server::start_with(|c| c.analysis.enabled = false);
    let owner = s.signup("iris");
    let id = s.upload_id(&owner, "memo.wav", &fixture("speech.wav"));
    let url = url(&link(&s, &owner, &id, json!({})));
    send(s.req("GET", &format!("{url}/waveform")), None).assert_error(404, "not_found");
}

/// A guessed token is answered as any dead link is, byte for byte: both are one lookup of the
/// token's hash in an index, with no comparison of secrets (`shares::find`). What each
/// costs is the benchmark's to measure, not a timed test's.
#[test]
fn guessed_tokens_are_answered_as_an_expired_one_is() {
    let s = Server::start_with(|c| c.analysis.enabled = false);
    let owner = s.signup("jill");
    let id = s.upload_id(&owner, "memo.wav", &fixture("speech.wav"));
    let expired = url(&link(&s, &owner, &id, json!({"expires_in_days": 1})));
    let live = url(&link(&s, &owner, &id, json!({})));
    s.clock.advance(2 * DAY_MS);
    // A guess of the right shape: the live token with its first character changed.
    let live_token = live.trim_start_matches("/s/");
    let first = if live_token.starts_with('A') { "B" } else { "A" };
    let guessed = format!("/s/{first}{}", &live_token[1..]);
    for path in [guessed.clone(), "/s/short".into(), "/s/!!!".into(), format!("/s/{live_token}x"), "/s/%00".into()] {
        assert_dead_page(&send(s.req("GET", &path), None));
    }
    assert_dead(&s, &guessed);
    assert_dead(&s, &expired);

    // Alike to the byte: status, headers that could tell them apart, and body.
    let (g, e) = (send(s.req("GET", &guessed), None), send(s.req("GET", &expired), None));
    assert_eq!((g.status, g.body.clone()), (e.status, e.body.clone()));
    for header in ["content-type", "content-length", "cache-control", "content-security-policy"] {
        assert_eq!(g.header(header), e.header(header), "{header}");
    }
}

/// In a real browser: the page's own module runs under its policy (the waveform appears only
/// if it does), a hostile name stays text, and a click on the waveform seeks there.
#[test]
fn in_a_browser_the_page_draws_the_waveform_and_seeks_where_it_is_clicked() {
    let s = Server::start();
    let owner = s.signup("kurt");
    let name = "<script>alert(1)</script>.wav";
    let id = s.upload_id(&owner, name, &fixture("speech.wav"));
    let url = url(&link(&s, &owner, &id, json!({})));
    assert_eq!(settled(&s, &owner, &id, Duration::from_secs(60))["waveform"], "ready");
    let Some(browser) = Browser::start("share page") else { return };
    browser.goto(&s.url(&url));
    browser.wait_for("canvas.share-waveform");
    assert_eq!(browser.text("h1"), name);
    assert!(!browser.alert_open(), "nothing of the name ran");
    browser.wait_js("the audio's metadata", "return document.querySelector('audio').readyState >= 1;", vec![]);
    browser.click("canvas.share-waveform");
    let at = browser.wait_js(
        "a seek",
        "const a = document.querySelector('audio'); return a.currentTime > 0 ? a.currentTime : 0;",
        vec![],
    );
    let at = at.as_f64().expect("seconds");
    assert!((at - 4.179 / 2.0).abs() < 0.3, "a click in the middle seeks to the middle: {at} s");
    assert!(browser.exists("a.share-download"));
}

#[test]
fn deleting_the_account_kills_its_links() {
    let s = Server::start_with(|c| c.analysis.enabled = false);
    let owner = s.signup("lena");
    let id = s.upload_id(&owner, "memo.wav", &fixture("speech.wav"));
    let url = url(&link(&s, &owner, &id, json!({})));
    let r = send_json(s.auth("DELETE", "/api/v1/me", &owner), &json!({"password": "password123"}));
    assert_eq!(r.status, 204, "{}", r.text());
    assert_dead(&s, &url);
    let conn = s.db().conn().expect("conn");
    let left: i64 = conn.query_row("SELECT count(*) FROM shares", [], |r| r.get(0)).expect("count");
    assert_eq!(left, 0);
}
