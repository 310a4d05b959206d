//! The transcript panel in real headless Chromium: its states (off, pending, failed, ready), the
//! segment being played highlighted as playback moves, a click on a segment playing from there,
//! corrections made in place, downloads, and a search by what was said jumping to the words.
//! The test server has no model, so transcripts come in through the API as a person writes or
//! corrects them (`PUT …/transcript`). Skips (or fails, with `RECORDER_REQUIRE_BROWSER=1`) like
//! the other browser tests.

use crate::support::browser::{Browser, assert_accessible, item, sign_up, sign_up_and_leave};
use crate::support::transcription::{librivox, real_model, with_model};
use crate::support::{Server, send, send_json, steady_tone_wav};
use serde_json::{Value, json};

/// The meeting's four segments, 2.5 s each; one has markup in it, which must stay text.
fn meeting() -> Value {
    json!([
        {"start_ms": 0, "end_ms": 2500, "text": " Good morning everyone, welcome to the meeting."},
        {"start_ms": 2500, "end_ms": 5000, "text": " First item: the garden budget."},
        {"start_ms": 5000, "end_ms": 7500, "text": " Second: the <b>roof</b> repairs & gutters."},
        {"start_ms": 7500, "end_ms": 10000, "text": " Thanks, see you next week."},
    ])
}

fn put_transcript(server: &Server, token: &str, id: &str, segments: &Value) -> Value {
    let r = send_json(
        server.auth("PUT", &format!("/api/v1/recordings/{id}/transcript"), token),
        &json!({"segments": segments}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn get_transcript(server: &Server, token: &str, id: &str) -> Value {
    let r = send(server.auth("GET", &format!("/api/v1/recordings/{id}/transcript"), token), None);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn get_recording(server: &Server, token: &str, id: &str) -> Value {
    let r = send(server.auth("GET", &format!("/api/v1/recordings/{id}"), token), None);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

const PANEL: &str = "section[data-test=transcript]";
const SEGMENT: &str = "section[data-test=transcript] button[data-test=transcript-segment]";
/// A segment, inside a selector of the panel.
const SEG: &str = "button[data-test=transcript-segment]";

/// The texts of the segments the panel lists.
fn listed(b: &Browser) -> Vec<String> {
    let v = b.js(
        "return [...document.querySelectorAll(arguments[0] + ' .segment-text')].map(e => e.textContent);",
        vec![json!(SEGMENT)],
    );
    v.as_array().expect("texts").iter().map(|t| t.as_str().expect("text").to_string()).collect()
}

/// Waits until the segment at `index` is the highlighted one (and the only one); returns the
/// audio's time then.
fn wait_current(b: &Browser, what: &str, index: usize) -> f64 {
    b.wait_js(
        &format!("{what}: segment {index} highlighted"),
        "const cur = [...document.querySelectorAll(arguments[0] + '[aria-current=true]')]; \
         const a = document.querySelector('audio[data-test=player]'); \
         return cur.length === 1 && cur[0].dataset.index === String(arguments[1]) && \
           cur[0].closest('li').classList.contains('current') ? a.currentTime || 0.001 : null;",
        vec![json!(SEGMENT), json!(index)],
    )
    .as_f64()
    .expect("a time")
}

/// Waits until the audio plays at a time between `from` and `to` seconds; returns it.
fn wait_playing_between(b: &Browser, what: &str, from: f64, to: f64) -> f64 {
    b.wait_js(
        &format!("{what}: playing between {from} and {to} s"),
        "const a = document.querySelector('audio[data-test=player]'); \
         return !a.paused && !a.seeking && a.currentTime >= arguments[0] && a.currentTime <= arguments[1] \
           ? a.currentTime : null;",
        vec![json!(from), json!(to)],
    )
    .as_f64()
    .expect("a time")
}

fn pause(b: &Browser) {
    b.js("document.querySelector('audio[data-test=player]').pause();", vec![]);
    b.wait_paused();
}

/// Plays a listed recording until it plays, then pauses it.
fn play_and_pause(b: &Browser, id: &str) {
    // Out from under the open panel first, as a person scrolls.
    b.js("document.querySelector(arguments[0]).scrollIntoView({block: 'center'});", vec![json!(item(id))]);
    b.play(id);
    pause(b);
}

/// Waits until the loaded list shows exactly one recording, `id` (a search's only result).
fn wait_only_result(b: &Browser, id: &str) {
    b.wait_js(
        "the search result",
        "const rows = document.querySelectorAll('li[data-test=recording]'); \
         return document.querySelector('ul[data-test=recordings]').dataset.loaded === '1' && rows.length === 1 \
           && rows[0].dataset.id === arguments[0];",
        vec![json!(id)],
    );
}

fn no_error_banner(b: &Browser) {
    assert!(!b.exists("[data-test=error]:not([hidden])"), "no error banner");
}

#[test]
fn the_transcript_panel_follows_playback_seeks_edits_and_search_jumps_to_the_words() {
    let Some(b) = Browser::start("transcript panel") else { return };
    let server = Server::start();
    let token = sign_up_and_leave(&b, &server, "tess");
    let id = server.upload_id(&token, "Team meeting.wav", &steady_tone_wav(10));
    let other = server.upload_id(&token, "Voice memo.wav", &steady_tone_wav(10));
    assert_eq!(get_recording(&server, &token, &id)["transcript"], "off", "no model on this server");
    b.goto(&server.base);
    b.wait_for(&item(&id));
    b.js(
        "window.violations = []; document.addEventListener('securitypolicyviolation', \
           e => window.violations.push(e.violatedDirective + ' ' + e.blockedURI));",
        vec![],
    );

    // A fresh recording, transcription off: the panel says so and offers to write one.
    play_and_pause(&b, &id);
    assert!(!b.exists(&format!("{PANEL}:not([hidden])")), "the panel starts closed");
    assert_eq!(
        b.js("return document.querySelector('[data-test=transcript-toggle]').getAttribute('aria-expanded');", vec![]),
        json!("false")
    );
    b.click("button[data-test=transcript-toggle]");
    b.wait_for(&format!("{PANEL}[data-state=off]"));
    assert_eq!(
        b.js("return document.querySelector('[data-test=transcript-toggle]').getAttribute('aria-expanded');", vec![]),
        json!("true")
    );
    assert_eq!(b.text(&format!("{PANEL} [data-test=transcript-message]")), "Transcription is off on this server.");
    b.wait_for(&format!("{PANEL} button[data-test=transcript-write]"));
    assert!(!b.exists(&format!("{PANEL} [data-test=transcript-edit]:not([hidden])")), "nothing to edit yet");
    assert!(!b.exists(&format!("{PANEL} [data-test=transcript-downloads]:not([hidden])")));
    // The page keeps its end clear of the taller bar.
    let space = b.js(
        "return [parseFloat(getComputedStyle(document.body).getPropertyValue('--player-space')), \
                 document.querySelector('section.player').getBoundingClientRect().height];",
        vec![],
    );
    assert!(space[0].as_f64() > space[1].as_f64(), "--player-space covers the bar with its panel: {space}");
    assert_accessible(&b, "the transcript panel with transcription off");

    // A transcript saved through the API (by hand, or from another device) shows up live.
    put_transcript(&server, &token, &id, &meeting());
    b.wait_for(&format!("{PANEL}[data-state=ready] {SEG}"));
    assert_eq!(
        listed(&b),
        [
            "Good morning everyone, welcome to the meeting.",
            "First item: the garden budget.",
            "Second: the <b>roof</b> repairs & gutters.",
            "Thanks, see you next week.",
        ]
    );
    assert_eq!(b.count(&format!("{PANEL} b")), 0, "markup in a segment is text, never HTML");
    let times = b.js(
        "return [...document.querySelectorAll(arguments[0] + ' .segment-time')].map(e => e.textContent);",
        vec![json!(SEGMENT)],
    );
    assert_eq!(times, json!(["Play from 0:00", "Play from 0:02", "Play from 0:05", "Play from 0:07"]));
    let names =
        b.js("return [...document.querySelectorAll(arguments[0])].map(e => e.textContent);", vec![json!(SEGMENT)]);
    assert_eq!(
        names[1],
        json!("Play from 0:02First item: the garden budget."),
        "each segment's name says what it does"
    );
    b.wait_for(&format!("{PANEL} [data-test=transcript-edited]"));
    assert_eq!(b.text(&format!("{PANEL} [data-test=transcript-edited]")), "Edited");
    // Downloads: plain links to the API (the session cookie goes along), as the audio's.
    for ext in ["txt", "srt", "vtt"] {
        let href = b.js(
            "const a = document.querySelector(arguments[0]); return [a.getAttribute('href'), a.hasAttribute('download')];",
            vec![json!(format!("{PANEL} a[data-test=transcript-download-{ext}]"))],
        );
        assert_eq!(href, json!([format!("/api/v1/recordings/{id}/transcript?format={ext}"), true]));
        let fetched = b.js_await(&format!(
            "fetch('/api/v1/recordings/{id}/transcript?format={ext}', {{credentials: 'same-origin'}}) \
               .then(async r => done([r.status, r.headers.get('content-disposition'), await r.text()]));"
        ));
        assert_eq!(fetched[0], json!(200), "{fetched}");
        assert!(
            fetched[1]
                .as_str()
                .is_some_and(|d| d.starts_with("attachment") && d.contains(&format!("Team meeting.{ext}"))),
            "{fetched}"
        );
        assert!(fetched[2].as_str().is_some_and(|t| t.contains("garden budget")), "{fetched}");
    }

    // Playing highlights the segment being said, and moves on with the playback.
    b.js("const a = document.querySelector('audio[data-test=player]'); a.currentTime = 6; a.play();", vec![]);
    let t = wait_current(&b, "playing from 0:06", 2);
    assert!((5.0..7.5).contains(&t), "segment 2 (5 to 7.5 s) at {t} s");
    let t = wait_current(&b, "playing on past 0:07.5", 3);
    assert!(t >= 7.5, "segment 3 from 7.5 s, at {t} s");
    pause(&b);

    // A click on a segment plays from its start.
    b.click(&format!("{SEGMENT}[data-index='1']"));
    let t = wait_playing_between(&b, "a click on the second segment", 2.5, 3.6);
    assert!(t >= 2.5, "{t}");
    wait_current(&b, "after the click", 1);
    pause(&b);
    let t =
        b.js("return document.querySelector('audio[data-test=player]').currentTime;", vec![]).as_f64().expect("time");
    assert!((2.5..4.0).contains(&t), "still near the second segment: {t}");

    // By keyboard: one Tab stop for the list, arrows move along it, Enter plays from there.
    let stops = b.js("return [...document.querySelectorAll(arguments[0])].map(e => e.tabIndex);", vec![json!(SEGMENT)]);
    assert_eq!(stops, json!([-1, 0, -1, -1]), "the Tab key lands on the segment being played");
    b.js("document.querySelector(arguments[0]).focus();", vec![json!(format!("{SEGMENT}[data-index='1']"))]);
    b.keys("\u{E015}"); // ArrowDown
    assert_eq!(
        b.js("return document.activeElement.dataset.index;", vec![]),
        json!("2"),
        "ArrowDown moves to the next segment"
    );
    b.keys("\u{E007}"); // Enter
    wait_playing_between(&b, "Enter on the third segment", 5.0, 6.2);
    wait_current(&b, "after Enter", 2);
    pause(&b);

    // Corrections in place: the texts become fields, Save sends them with the times unchanged.
    b.click(&format!("{PANEL} button[data-test=transcript-edit]"));
    b.wait_for(&format!("{PANEL}[data-state=editing] textarea[data-test=transcript-input]"));
    assert_eq!(b.count(&format!("{PANEL} textarea[data-test=transcript-input]")), 4);
    assert_eq!(
        b.js("return document.activeElement.getAttribute('aria-label');", vec![]),
        json!("Text from 0:05 to 0:07"),
        "the field of the segment being played has the focus"
    );
    let field = |i: usize| format!("{PANEL} li[data-index='{i}'] textarea[data-test=transcript-input]");
    b.retype(&field(1), "First item: the orchard budget.");
    assert_accessible(&b, "the transcript panel while editing");
    b.screenshot(1280, 800, "transcript-editing-light.png");
    b.click(&format!("{PANEL} button[data-test=transcript-save]"));
    b.wait_for(&format!("{PANEL}[data-state=ready] {SEG}"));
    assert_eq!(listed(&b)[1], "First item: the orchard budget.");
    assert_eq!(b.focused(), "transcript-edit", "the focus goes back to Edit");
    let saved = get_transcript(&server, &token, &id);
    assert_eq!(saved["edited"], json!(true));
    let mut expected = meeting();
    expected[1]["text"] = json!("First item: the orchard budget.");
    assert_eq!(saved["segments"], expected, "the new text saved, everything else as it was");

    // Cancel puts everything back, and nothing is sent.
    let puts = || server.seen().iter().filter(|s| s.method == "PUT").count();
    let before = puts();
    b.click(&format!("{PANEL} button[data-test=transcript-edit]"));
    b.retype(&field(0), "Something else entirely");
    b.click(&format!("{PANEL} button[data-test=transcript-cancel]"));
    b.wait_for(&format!("{PANEL}[data-state=ready] {SEG}"));
    assert_eq!(listed(&b)[0], "Good morning everyone, welcome to the meeting.");
    assert_eq!(puts(), before, "nothing was sent");
    assert_eq!(get_transcript(&server, &token, &id)["segments"], expected);

    // The server's refusal is shown in its words, and the fields stay for another try.
    b.click(&format!("{PANEL} button[data-test=transcript-edit]"));
    b.wait_for(&field(3));
    b.js("document.querySelector(arguments[0]).value = 'x'.repeat(2001);", vec![json!(field(3))]);
    b.click(&format!("{PANEL} button[data-test=transcript-save]"));
    b.wait_for(&format!("{PANEL} [data-test=transcript-error] p"));
    let said = b.text(&format!("{PANEL} [data-test=transcript-error]"));
    assert!(said.starts_with("Segment 3: text is at most 2000 characters"), "{said}");
    assert!(b.exists(&format!("{PANEL}[data-state=editing]")), "still editing");
    b.retype(&field(3), "Thanks, see you on Monday.");
    b.click(&format!("{PANEL} button[data-test=transcript-save]"));
    b.wait_for(&format!("{PANEL}[data-state=ready] {SEG}"));
    assert!(!b.exists(&format!("{PANEL} [data-test=transcript-error] p")), "the error went with the fix");
    assert_eq!(get_transcript(&server, &token, &id)["segments"][3]["text"], "Thanks, see you on Monday.");

    // A correction made elsewhere shows with the recording's next change (on a server whose feed
    // has corrections, the correction itself), the keyboard focus staying where it was.
    let mut elsewhere = get_transcript(&server, &token, &id)["segments"].clone();
    elsewhere[0]["text"] = json!("Good morning all, welcome to the meeting.");
    put_transcript(&server, &token, &id, &elsewhere);
    b.js("document.querySelector(arguments[0]).focus();", vec![json!(format!("{SEGMENT}[data-index='2']"))]);
    let renamed = send_json(
        server.auth("PATCH", &format!("/api/v1/recordings/{id}"), &token),
        &json!({"name": "Team meeting (Monday).wav"}),
    );
    assert_eq!(renamed.status, 200, "{}", renamed.text());
    b.wait_js(
        "the correction made elsewhere",
        "const t = document.querySelector(arguments[0] + '[data-index=\"0\"] .segment-text'); \
         return t && t.textContent === 'Good morning all, welcome to the meeting.';",
        vec![json!(SEGMENT)],
    );
    assert_eq!(b.js("return document.activeElement.dataset.index;", vec![]), json!("2"), "the focus stayed");
    assert_eq!(b.text("[data-test=player-name]"), "Team meeting (Monday).wav");

    // Search by what was said: the result shows the words around it, and jumps to them.
    b.click("section.player button[aria-label='Close player']");
    b.wait_js("the player closed", "return document.querySelector('section.player').hidden;", vec![]);
    b.fill("input[data-test=search]", "orchard");
    wait_only_result(&b, &id);
    assert!(!b.exists(&item(&other)), "the other recording has no such word");
    let row = item(&id);
    assert_eq!(b.text(&format!("{row} [data-test=snippet]")), "Said: First item: the orchard budget.");
    assert_eq!(b.text(&format!("{row} [data-test=snippet] mark")), "orchard", "the word found is marked");
    assert_eq!(b.text(&format!("{row} button[data-test=jump]")), "Jump to 0:02");
    assert_eq!(
        b.js(
            "return document.querySelector(arguments[0]).getAttribute('aria-label');",
            vec![json!(format!("{row} button[data-test=jump]"))]
        ),
        json!("Jump to 0:02 in Team meeting (Monday).wav")
    );
    b.click(&format!("{row} button[data-test=jump]"));
    let t = wait_playing_between(&b, "the jump to the words", 2.5, 3.8);
    assert!(t >= 2.5, "{t}");
    b.wait_for(&format!("{PANEL}[data-state=ready] {SEG}[aria-current=true]"));
    wait_current(&b, "after the jump", 1);
    pause(&b);
    b.js("document.querySelector('audio[data-test=player]').currentTime = 2.6;", vec![]);
    wait_current(&b, "still at the words", 1);
    assert_accessible(&b, "the search results and the transcript panel");
    b.screenshot(1280, 800, "transcript-search-light.png");
    b.resize(390, 844);
    assert_accessible(&b, "the search results and the transcript panel on a phone");
    b.screenshot(390, 844, "transcript-search-phone-light.png");
    b.resize(1280, 800);

    no_error_banner(&b);
    assert_eq!(b.js("return window.violations;", vec![]), json!([]), "nothing broke the page's CSP");
}

#[test]
fn a_transcript_written_by_hand_pending_and_failed_states_in_the_panel() {
    let Some(b) = Browser::start_with("transcript states", &["--force-dark-mode"]) else { return };
    let server = Server::start();
    let token = sign_up_and_leave(&b, &server, "hugo");
    let handmade = server.upload_id(&token, "Lecture.wav", &steady_tone_wav(10));
    let pending = server.upload_id(&token, "Interview.wav", &steady_tone_wav(10));
    let failed = server.upload_id(&token, "Street noise.wav", &steady_tone_wav(10));
    let long = server.upload_id(&token, "Long list.wav", &steady_tone_wav(10));
    // Forty short segments: more than the panel shows at once.
    let lines: Vec<Value> = (0..40)
        .map(|i| json!({"start_ms": i * 250, "end_ms": (i + 1) * 250, "text": format!("Line {i} of the list.")}))
        .collect();
    put_transcript(&server, &token, &long, &Value::Array(lines));
    // The states a server with a model gives, set as its worker would.
    {
        let db = server.db();
        let conn = db.conn().expect("conn");
        conn.execute("UPDATE recordings SET transcript = 'pending' WHERE id = ?1", [&pending]).expect("pending");
        conn.execute(
            "UPDATE recordings SET transcript = 'failed', transcript_error = 'no speech could be made out' WHERE id = ?1",
            [&failed],
        )
        .expect("failed");
    }
    b.goto(&server.base);
    b.wait_for(&item(&failed));
    b.js("localStorage.setItem('recorder.transcript-open', '1');", vec![]);
    b.goto(&server.base);
    b.wait_for(&item(&failed));

    // The panel remembers it was open; a long transcript scrolls (the panel, not the page) to
    // keep the segment being played in sight.
    play_and_pause(&b, &long);
    b.wait_for(&format!("{PANEL}[data-state=ready] {SEG}"));
    assert_eq!(b.count(SEGMENT), 40);
    let page_scroll = b.js("return scrollY;", vec![]);
    b.js("const a = document.querySelector('audio[data-test=player]'); a.currentTime = 8.1; a.play();", vec![]);
    wait_current(&b, "playing from 0:08", 32);
    b.wait_js(
        "the segment being played scrolled into sight",
        "const box = document.querySelector('[data-test=transcript-body]').getBoundingClientRect(); \
         const r = document.querySelector(arguments[0] + '[aria-current=true]').getBoundingClientRect(); \
         return r.top >= box.top && r.bottom <= box.bottom;",
        vec![json!(SEGMENT)],
    );
    pause(&b);
    assert!(
        b.js("return document.querySelector('[data-test=transcript-body]').scrollTop;", vec![]).as_f64() > Some(0.0)
    );
    assert_eq!(b.js("return scrollY;", vec![]), page_scroll, "the page itself did not move");
    assert_accessible(&b, "a long transcript in the panel (dark)");
    b.screenshot(1280, 800, "transcript-long-dark.png");

    // Off: a transcript written by hand, one segment over the whole recording.
    play_and_pause(&b, &handmade);
    b.wait_for(&format!("{PANEL}[data-state=off]"));
    b.click(&format!("{PANEL} button[data-test=transcript-write]"));
    b.wait_for(&format!("{PANEL}[data-state=editing] textarea[data-test=transcript-input]"));
    assert_eq!(b.count(&format!("{PANEL} textarea[data-test=transcript-input]")), 1);
    assert_eq!(b.focused(), "transcript-input", "the field has the focus");
    b.keys("Notes on the lecture about bridges.");
    b.keys("\u{E009}\u{E007}\u{E000}"); // Ctrl+Enter saves
    b.wait_for(&format!("{PANEL}[data-state=ready] {SEG}"));
    assert_eq!(listed(&b), ["Notes on the lecture about bridges."]);
    let saved = get_transcript(&server, &token, &handmade);
    assert_eq!(saved["segments"][0]["start_ms"], json!(0));
    let end = saved["segments"][0]["end_ms"].as_i64().expect("end");
    assert!((9900..=10100).contains(&end), "it covers the recording: {saved}");
    assert_eq!(get_recording(&server, &token, &handmade)["transcript"], "ready");

    // Pending: "Transcribing…", and the transcript as soon as it is there (live).
    play_and_pause(&b, &pending);
    b.wait_for(&format!("{PANEL}[data-state=pending]"));
    assert_eq!(b.text(&format!("{PANEL} [data-test=transcript-message]")), "Transcribing…");
    assert_accessible(&b, "the transcript panel while transcribing (dark)");
    put_transcript(
        &server,
        &token,
        &pending,
        &json!([{"start_ms": 0, "end_ms": 4000, "text": "Tell me about the harbour."}]),
    );
    b.wait_for(&format!("{PANEL}[data-state=ready] {SEG}"));
    assert_eq!(listed(&b), ["Tell me about the harbour."]);

    // Failed: the reason, and "Try again", which goes once the server says it has no model.
    play_and_pause(&b, &failed);
    b.wait_for(&format!("{PANEL}[data-state=failed]"));
    assert_eq!(
        b.text(&format!("{PANEL} [data-test=transcript-message]")),
        "Transcribing this recording failed: no speech could be made out"
    );
    b.wait_for(&format!("{PANEL} button[data-test=transcript-write]"));
    assert_accessible(&b, "the transcript panel of a failed transcription (dark)");
    b.screenshot(1280, 800, "transcript-failed-dark.png");
    b.click(&format!("{PANEL} button[data-test=transcript-retry]"));
    b.wait_for(&format!("{PANEL} [data-test=transcript-error] p"));
    let said = b.text(&format!("{PANEL} [data-test=transcript-error]"));
    assert!(said.starts_with("Transcription is off on this server"), "{said}");
    assert!(!b.exists(&format!("{PANEL} button[data-test=transcript-retry]")), "no Try again that cannot work");
    assert!(
        server.seen().iter().any(|s| s.method == "POST" && s.path.ends_with("/transcript/retry") && s.status == 409),
        "the retry was asked for"
    );
    no_error_banner(&b);
}

/// The whole way with the real model: a spoken memo is uploaded, transcribed on the server, and
/// found in the UI by a word only its audio holds, with the panel showing what was said.
/// Skips (or fails, with `RECORDER_REQUIRE_TRANSCRIPTION=1`) without the model, as the other
/// transcription tests do.
#[test]
fn a_spoken_memo_is_found_in_the_ui_by_its_words_once_transcribed() {
    let test = "a_spoken_memo_is_found_in_the_ui_by_its_words_once_transcribed";
    let Some((model, dir)) = real_model(test) else { return };
    let Some(b) = Browser::start("spoken memo search") else { return };
    let server = with_model(&model);
    sign_up(&b, &server, "sam");
    let token = server.login("sam");
    let (path, _) = &librivox(&dir)[0];
    let uploaded = std::time::Instant::now();
    let id = server.upload_id(&token, "Tuesday memo.wav", &std::fs::read(path).expect("wav"));
    b.goto(&server.base);
    b.wait_for(&item(&id));
    // Ready once the model has heard it: within its transcription time, not at some later sweep.
    let deadline = uploaded + std::time::Duration::from_secs(300);
    loop {
        let state = get_recording(&server, &token, &id)["transcript"].clone();
        if state == "ready" {
            break;
        }
        assert!(state == "pending", "transcript {state}");
        assert!(std::time::Instant::now() < deadline, "not transcribed within 5 minutes");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    eprintln!("transcribed {} s after the upload", uploaded.elapsed().as_secs_f32());
    b.fill("input[data-test=search]", "prudently");
    wait_only_result(&b, &id);
    let row = item(&id);
    assert!(b.text(&format!("{row} [data-test=snippet]")).to_lowercase().contains("prudently"));
    assert_eq!(b.text(&format!("{row} [data-test=snippet] mark")).to_lowercase(), "prudently");
    b.click(&format!("{row} button[data-test=jump]"));
    b.wait_for(&format!("{PANEL}[data-state=ready]"));
    let said = listed(&b).join(" ").to_lowercase();
    assert!(said.contains("dashwood") && said.contains("prudently"), "{said}");
}
