//! Bookmarks in the player, in real headless Chromium: marks sent with an upload show as ticks
//! on the waveform and in the player's list; a press on one plays from there; one is added at
//! the playhead, named and deleted, and the server has each change. Skips (or fails, with
//! `RECORDER_REQUIRE_BROWSER=1`) like the other browser tests.

use crate::support::browser::{Browser, assert_accessible, item, sign_up_and_leave};
use crate::support::{Server, fixture, poll_for, send, settled};
use serde_json::{Value, json};
use std::time::Duration;

fn bookmarks(server: &Server, token: &str, id: &str) -> Vec<Value> {
    let r = send(server.auth("GET", &format!("/api/v1/recordings/{id}/bookmarks"), token), None);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["bookmarks"].as_array().cloned().unwrap_or_default()
}

fn current_time(b: &Browser) -> f64 {
    b.js("return document.querySelector('audio[data-test=player]').currentTime;", vec![]).as_f64().unwrap_or(-1.0)
}

#[test]
fn bookmarks_show_on_the_waveform_play_from_where_they_are_and_are_added_named_and_deleted() {
    let Some(b) = Browser::start("bookmarks in the player") else { return };
    let server = Server::start();
    let token = sign_up_and_leave(&b, &server, "bea");
    let up = send(
        server.auth("POST", "/api/v1/recordings?name=meeting.wav", &token).set("X-Recording-Marks", "1000,3000"),
        Some(&fixture("speech.wav")),
    );
    assert_eq!(up.status, 201, "{}", up.text());
    let id = up.json()["id"].as_str().expect("id").to_string();
    settled(&server, &token, &id, Duration::from_secs(60));

    b.goto(&server.base);
    b.wait_for(&item(&id));
    b.play(&id);
    b.click("button[data-test=player-toggle]");
    b.wait_paused();
    // Two ticks on the waveform, at a quarter and at about three quarters of it.
    b.wait_js("two ticks", "return document.querySelectorAll('[data-test=bookmark-tick]').length === 2;", vec![]);
    let lefts = b.js(
        "return [...document.querySelectorAll('[data-test=bookmark-tick]')].map((t) => parseFloat(t.style.left));",
        vec![],
    );
    let lefts: Vec<f64> = lefts.as_array().expect("lefts").iter().map(|v| v.as_f64().unwrap_or(-1.0)).collect();
    assert!((lefts[0] - 23.9).abs() < 2.0 && (lefts[1] - 71.8).abs() < 2.0, "{lefts:?}");
    assert_eq!(
        b.js("return document.querySelector('[data-test=bookmarks-toggle]').getAttribute('aria-label');", vec![]),
        json!("Bookmarks (2)")
    );

    // The list: each bookmark's time plays from there.
    b.click("button[data-test=bookmarks-toggle]");
    b.wait_for("[data-test=bookmarks] li[data-test=bookmark]");
    assert_eq!(b.count("[data-test=bookmarks] li[data-test=bookmark]"), 2);
    b.click("li[data-test=bookmark][data-at='3000'] [data-test=bookmark-seek]");
    b.wait_js(
        "the playhead at the bookmark",
        "return Math.abs(document.querySelector('audio[data-test=player]').currentTime - 3) < 0.05;",
        vec![],
    );
    assert_accessible(&b, "the bookmarks panel");
    b.screenshot(1280, 800, "player-bookmarks-desktop.png");
    b.screenshot(390, 844, "player-bookmarks-phone.png");

    // Added at the playhead, then named.
    b.click("li[data-test=bookmark][data-at='1000'] [data-test=bookmark-seek]");
    b.wait_js(
        "the playhead at 1 s",
        "return Math.abs(document.querySelector('audio[data-test=player]').currentTime - 1) < 0.05;",
        vec![],
    );
    let now = current_time(&b);
    b.click("button[data-test=bookmark-add]");
    b.wait_js("three bookmarks", "return document.querySelectorAll('li[data-test=bookmark]').length === 3;", vec![]);
    let stored = poll_for("the new bookmark on the server", Duration::from_secs(10), || {
        let all = bookmarks(&server, &token, &id);
        (all.len() == 3).then_some(all)
    });
    assert!(stored.iter().any(|m| (m["at_ms"].as_f64().unwrap_or(-1.0) - now * 1000.0).abs() < 50.0), "{stored:?}");
    let first_note = "li[data-test=bookmark]:first-child [data-test=bookmark-note]";
    b.fill(first_note, "the budget");
    b.keys("\u{E007}"); // Enter
    poll_for("the note saved", Duration::from_secs(10), || {
        bookmarks(&server, &token, &id).iter().any(|m| m["note"] == "the budget").then_some(())
    });

    // Deleted: gone from the list, the ticks and the server.
    b.click("li[data-test=bookmark][data-at='3000'] [data-test=bookmark-delete]");
    b.wait_js("two left", "return document.querySelectorAll('li[data-test=bookmark]').length === 2;", vec![]);
    b.wait_js("two ticks left", "return document.querySelectorAll('[data-test=bookmark-tick]').length === 2;", vec![]);
    poll_for("the delete on the server", Duration::from_secs(10), || {
        (bookmarks(&server, &token, &id).len() == 2).then_some(())
    });
    assert!(current_time(&b) >= 0.0);
}
