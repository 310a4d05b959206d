//! The player's speed in real headless Chromium: chosen from 0.5× to 3× with the pitch kept, and
//! remembered on this device for the next recording and the next visit. Skips (or fails, with
//! `RECORDER_REQUIRE_BROWSER=1`) like the other browser tests.

use crate::support::browser::{Browser, assert_accessible, item, sign_up_and_leave};
use crate::support::{Server, fixture};
use serde_json::json;

/// The player's rate and whether it keeps the pitch.
fn rate(b: &Browser) -> (f64, bool) {
    let v = b.js(
        "const a = document.querySelector('audio[data-test=player]'); return [a.playbackRate, a.preservesPitch];",
        vec![],
    );
    (v[0].as_f64().unwrap_or(-1.0), v[1].as_bool().unwrap_or(false))
}

#[test]
fn playback_speed_goes_from_half_to_three_times_keeps_the_pitch_and_is_remembered() {
    let Some(b) = Browser::start("playback speed") else { return };
    let server = Server::start();
    let token = sign_up_and_leave(&b, &server, "sia");
    let first = server.upload_id(&token, "first.wav", &fixture("speech.wav"));
    let second = server.upload_id(&token, "second.wav", &fixture("speech.wav"));
    b.goto(&server.base);
    b.wait_for(&item(&first));
    b.play(&first);
    assert_eq!(rate(&b), (1.0, true), "normal speed to begin with");
    let offered =
        b.js("return [...document.querySelectorAll('[data-test=player-speed] option')].map((o) => o.value);", vec![]);
    assert_eq!(offered, json!(["0.5", "0.75", "1", "1.25", "1.5", "1.75", "2", "2.5", "3"]));
    b.js(
        "const s = document.querySelector('[data-test=player-speed]'); s.value = '2'; s.dispatchEvent(new Event('change'));",
        vec![],
    );
    assert_eq!(rate(&b), (2.0, true));
    assert_accessible(&b, "the player with its speed");
    // The next recording, and the next visit, play at the same speed.
    b.play(&second);
    assert_eq!(rate(&b), (2.0, true));
    b.goto(&server.base);
    b.wait_for(&item(&first));
    b.play(&first);
    assert_eq!(rate(&b), (2.0, true), "remembered on this device");
    assert_eq!(b.js("return document.querySelector('[data-test=player-speed]').value;", vec![]), json!("2"));
    b.js(
        "const s = document.querySelector('[data-test=player-speed]'); s.value = '0.5'; s.dispatchEvent(new Event('change'));",
        vec![],
    );
    assert_eq!(rate(&b), (0.5, true));
}
