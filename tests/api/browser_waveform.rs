//! The waveforms in real headless Chromium: the player's seek bar draws the analysed peaks and
//! seeks where it is clicked, dragged or touched, and by keys; list rows draw small ones; a
//! pending analysis shows a calm placeholder until it ends, and a recording without a waveform
//! gets the plain bar. Skips (or fails, with `RECORDER_REQUIRE_BROWSER=1`) like the other
//! browser tests.

use crate::support::browser::{Browser, Pointer, WAIT, assert_accessible, item, sign_up, sign_up_and_leave};
use crate::support::{Server, fixture, fixture_path, loud_then_quiet_wav, settled};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Waits (polling the API) until the server has analysed a recording; returns its JSON.
fn analysed(server: &Server, token: &str, id: &str, state: &str) -> Value {
    let recording = settled(server, token, id, Duration::from_secs(120));
    assert_eq!(recording["waveform"], state, "{recording}");
    recording
}

/// What a canvas shows: its size in device pixels, how many pixels of each column are drawn
/// (not transparent), the topmost row drawn in each column, and the colour in the middle row.
struct Drawing {
    width: usize,
    height: usize,
    drawn: Vec<u64>,
    top: Vec<Option<u64>>,
    middle: Vec<Option<[u8; 3]>>,
}

impl Drawing {
    fn read(b: &Browser, css: &str) -> Drawing {
        let v = b.js(
            "const c = document.querySelector(arguments[0]); const w = c.width, h = c.height; \
             const d = c.getContext('2d').getImageData(0, 0, w, h).data; \
             const drawn = [], top = [], middle = []; const mid = Math.floor(h / 2); \
             for (let x = 0; x < w; x++) { let n = 0, t = null; \
               for (let y = 0; y < h; y++) if (d[(y * w + x) * 4 + 3] > 0) { n++; if (t === null) t = y; } \
               drawn.push(n); top.push(t); const i = (mid * w + x) * 4; \
               middle.push(d[i + 3] > 0 ? [d[i], d[i + 1], d[i + 2]] : null); } \
             return { w, h, drawn, top, middle };",
            vec![json!(css)],
        );
        let numbers = |key: &str| v[key].as_array().expect(key).clone();
        Drawing {
            width: v["w"].as_u64().expect("width") as usize,
            height: v["h"].as_u64().expect("height") as usize,
            drawn: numbers("drawn").iter().map(|n| n.as_u64().expect("count")).collect(),
            top: numbers("top").iter().map(Value::as_u64).collect(),
            middle: numbers("middle")
                .iter()
                .map(|c| {
                    c.as_array().map(|c| {
                        let n = |i: usize| c[i].as_u64().expect("channel") as u8;
                        [n(0), n(1), n(2)]
                    })
                })
                .collect(),
        }
    }

    /// Drawn pixels between two fractions of the width.
    fn pixels(&self, from: f64, to: f64) -> u64 {
        self.range(from, to).map(|x| self.drawn[x]).sum()
    }

    /// The median height of the bars (columns drawn at all) between two fractions of the width.
    fn median_bar(&self, from: f64, to: f64) -> u64 {
        let mut bars: Vec<u64> = self.range(from, to).map(|x| self.drawn[x]).filter(|&n| n > 0).collect();
        assert!(!bars.is_empty(), "no bars between {from} and {to}");
        bars.sort_unstable();
        bars[bars.len() / 2]
    }

    /// The commonest colour of the middle row between two fractions of the width.
    fn colour(&self, from: f64, to: f64) -> [u8; 3] {
        let mut counts: Vec<([u8; 3], usize)> = Vec::new();
        for c in self.range(from, to).filter_map(|x| self.middle[x]) {
            match counts.iter_mut().find(|(k, _)| *k == c) {
                Some((_, n)) => *n += 1,
                None => counts.push((c, 1)),
            }
        }
        counts.into_iter().max_by_key(|(_, n)| *n).expect("something drawn").0
    }

    /// Where the playhead is, as a fraction of the width: the columns drawn from the very top.
    fn playhead(&self) -> f64 {
        let at: Vec<usize> = (0..self.width).filter(|&x| self.top[x] == Some(0)).collect();
        assert!(!at.is_empty(), "no playhead");
        assert!(at.len() <= 8, "the playhead is a thin line: {} columns reach the top", at.len());
        at.iter().sum::<usize>() as f64 / at.len() as f64 / self.width as f64
    }

    fn range(&self, from: f64, to: f64) -> impl Iterator<Item = usize> {
        (self.width as f64 * from) as usize..(self.width as f64 * to) as usize
    }
}

/// The player's waveform on the screen: left, top, width and height in CSS pixels.
fn bar_rect(b: &Browser) -> (f64, f64, f64, f64) {
    let r = b.js(
        "const r = document.querySelector('[data-test=waveform]').getBoundingClientRect(); \
         return [r.left, r.top, r.width, r.height];",
        vec![],
    );
    let n = |i: usize| r[i].as_f64().expect("number");
    (n(0), n(1), n(2), n(3))
}

/// The point at `fraction` of the player's waveform, halfway down.
fn at(b: &Browser, fraction: f64) -> Pointer {
    let (left, top, width, height) = bar_rect(b);
    Pointer::Move(left + width * fraction, top + height / 2.0)
}

/// Waits until the audio's time is `seconds` (give or take `within`); returns it.
fn wait_time(b: &Browser, what: &str, seconds: f64, within: f64) -> f64 {
    b.wait_js(
        &format!("{what}: the audio at {seconds:.1} s"),
        "const a = document.querySelector('audio[data-test=player]'); \
         return Math.abs(a.currentTime - arguments[0]) <= arguments[1] ? a.currentTime || 0.001 : null;",
        vec![json!(seconds), json!(within)],
    )
    .as_f64()
    .expect("a time")
}

/// Waits until the canvas draws its playhead at `fraction` of its width; returns the drawing.
fn wait_playhead(b: &Browser, css: &str, fraction: f64) -> Drawing {
    let started = Instant::now();
    loop {
        let drawing = Drawing::read(b, css);
        let head = drawing.playhead();
        if (head - fraction).abs() < 0.01 {
            return drawing;
        }
        assert!(started.elapsed() < WAIT, "the playhead is at {head}, not {fraction}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn audio(b: &Browser, what: &str) -> f64 {
    b.js(&format!("return document.querySelector('audio[data-test=player]').{what};"), vec![])
        .as_f64()
        .unwrap_or(f64::NAN)
}

/// Plays a listed recording, waits until it plays, and pauses it.
fn play_and_pause(b: &Browser, id: &str) {
    b.play(id);
    b.click("button[data-test=player-toggle]");
    b.wait_paused();
}

/// The slider as the accessibility tree has it (what a screen reader gets): its value, min and
/// max.
fn slider_in_the_accessibility_tree(b: &Browser) -> Value {
    b.cdp("Accessibility.enable", json!({}));
    let tree = b.cdp("Accessibility.getFullAXTree", json!({}));
    let node = tree["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["role"]["value"] == "slider" && n["name"]["value"] == "Seek" && n["ignored"] != json!(true))
        .cloned()
        .unwrap_or_else(|| panic!("no Seek slider in the accessibility tree"));
    let mut out = json!({"value": node["value"]["value"]});
    for p in node["properties"].as_array().into_iter().flatten() {
        out[p["name"].as_str().expect("name")] = p["value"]["value"].clone();
    }
    out
}

fn no_spinner(b: &Browser) {
    let spinners = b.js(
        "return [...document.querySelectorAll('.spinner, [role=progressbar], [aria-busy=true]')] \
           .filter(e => e.getClientRects().length).map(e => e.outerHTML.slice(0, 120));",
        vec![],
    );
    assert_eq!(spinners, json!([]), "nothing spins or claims to be busy");
}

#[test]
fn the_player_draws_the_waveform_and_seeks_on_it_by_mouse_touch_and_keys() {
    // A high-density screen, as phones and most laptops have: the canvas must draw at it.
    let Some(b) = Browser::start_with("waveform player", &["--force-device-scale-factor=2"]) else { return };
    let server = Server::start();
    let token = sign_up_and_leave(&b, &server, "wren");
    let long = server.upload_id(&token, "Loud then quiet.wav", &loud_then_quiet_wav(60));
    let speech = server.upload_id(&token, "speech.wav", &fixture("speech.wav"));
    analysed(&server, &token, &long, "ready");
    analysed(&server, &token, &speech, "ready");
    b.goto(&server.base);
    b.wait_for(&item(&long));
    b.js(
        "window.violations = []; document.addEventListener('securitypolicyviolation', \
           e => window.violations.push(e.violatedDirective + ' ' + e.blockedURI));",
        vec![],
    );

    // Each row draws its own small waveform; the long one's loud half towers over its quiet half.
    for id in [&long, &speech] {
        b.wait_for(&format!("{} [data-test=row-waveform][data-state=ready]", item(id)));
    }
    let row = Drawing::read(&b, &format!("{} [data-test=row-waveform] canvas", item(&long)));
    assert!(row.pixels(0.0, 1.0) > 0, "the row's waveform is drawn");
    let (loud, quiet) = (row.median_bar(0.05, 0.45), row.median_bar(0.55, 0.95));
    assert!(loud > 3 * quiet, "loud bars {loud} px, quiet {quiet} px, in a {} px row", row.height);
    let row = Drawing::read(&b, &format!("{} [data-test=row-waveform] canvas", item(&speech)));
    assert!(row.pixels(0.0, 1.0) > 0, "the speech row's waveform is drawn");
    let fetched = |id: &str| {
        let path = format!("/api/v1/recordings/{id}/waveform");
        server.seen().iter().filter(|s| s.method == "GET" && s.path == path).count()
    };
    assert_eq!(fetched(&long), 1, "each row's waveform is fetched once");

    // The player's seek bar is the waveform: loud, then quiet (but visible), at the density of
    // the screen.
    play_and_pause(&b, &long);
    b.wait_for("[data-test=waveform][data-state=ready]");
    assert_eq!(fetched(&long), 1, "the player reuses the row's waveform");
    let css = "[data-test=waveform-canvas]";
    let (_, _, width, height) = bar_rect(&b);
    let drawing = Drawing::read(&b, css);
    let dpr = b.js("return devicePixelRatio;", vec![]).as_f64().expect("dpr");
    assert_eq!(dpr, 2.0);
    assert_eq!(drawing.width, (width * dpr).round() as usize, "as wide as it is laid out, in device pixels");
    assert_eq!(drawing.height, (height * dpr).round() as usize);
    let (loud, quiet) = (drawing.median_bar(0.05, 0.45), drawing.median_bar(0.55, 0.95));
    assert!(loud as f64 > 0.8 * drawing.height as f64, "the loud half fills the bar: {loud} of {}", drawing.height);
    assert!(quiet > 2 && loud > 3 * quiet, "the quiet half shows, much lower: {quiet} px against {loud} px");
    assert!(
        drawing.pixels(0.05, 0.45) > 3 * drawing.pixels(0.55, 0.95),
        "far fewer pixels in the quiet half: {} against {}",
        drawing.pixels(0.55, 0.95),
        drawing.pixels(0.05, 0.45)
    );

    // A click at three quarters of the width plays from three quarters of the duration, and the
    // played part changes colour up to the playhead there.
    let duration = audio(&b, "duration");
    assert!((duration - 60.0).abs() < 0.5, "the audio is 60 s long: {duration}");
    b.pointer(false, &[at(&b, 0.75), Pointer::Down, Pointer::Up]);
    wait_time(&b, "a click at 75 %", 45.0, 0.6);
    let drawing = wait_playhead(&b, css, 0.75);
    let (played, rest) = (drawing.colour(0.05, 0.7), drawing.colour(0.8, 0.95));
    assert_ne!(played, rest, "the played part has its own colour");
    assert_eq!(drawing.colour(0.3, 0.45), played);
    assert_eq!(drawing.colour(0.55, 0.7), played, "the quiet bars before the playhead are played too");
    assert_eq!(b.focused(), "seek", "a click on the waveform gives the slider the keyboard focus");

    // The colours follow the system's scheme, also when it changes with the page open.
    let expected = |name: &str| {
        let v = b.js(
            "const c = document.createElement('canvas'); c.width = c.height = 1; const x = c.getContext('2d'); \
             x.fillStyle = getComputedStyle(document.querySelector('[data-test=waveform-canvas]')).getPropertyValue(arguments[0]).trim(); \
             x.fillRect(0, 0, 1, 1); return [...x.getImageData(0, 0, 1, 1).data].slice(0, 3);",
            vec![json!(name)],
        );
        let n = |i: usize| v[i].as_u64().expect("channel") as u8;
        [n(0), n(1), n(2)]
    };
    assert_eq!((played, rest), (expected("--wave-played"), expected("--wave-rest")), "the light scheme's colours");
    b.cdp("Emulation.setEmulatedMedia", json!({"features": [{"name": "prefers-color-scheme", "value": "dark"}]}));
    let started = Instant::now();
    loop {
        let now = Drawing::read(&b, css);
        let (p, r) = (now.colour(0.05, 0.7), now.colour(0.8, 0.95));
        if (p, r) == (expected("--wave-played"), expected("--wave-rest")) && (p, r) != (played, rest) {
            break;
        }
        assert!(started.elapsed() < WAIT, "redrawn in the dark scheme's colours: {p:?} {r:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    b.cdp("Emulation.setEmulatedMedia", json!({"features": [{"name": "prefers-color-scheme", "value": "light"}]}));

    // A drag scrubs: the audio follows the pointer while it is down (each move, as it happens),
    // and stays where it let go.
    b.js(
        "window.scrubbed = []; document.addEventListener('pointermove', e => { if (e.buttons) \
           window.scrubbed.push(document.querySelector('audio[data-test=player]').currentTime); });",
        vec![],
    );
    b.pointer(false, &[at(&b, 0.2), Pointer::Down, at(&b, 0.4), at(&b, 0.6), at(&b, 0.5), Pointer::Up]);
    wait_time(&b, "dragged from 20 % through 40 % and 60 %, let go at 50 %", 30.0, 0.6);
    let scrubbed: Vec<f64> = b
        .js("return window.scrubbed;", vec![])
        .as_array()
        .expect("times")
        .iter()
        .map(|t| t.as_f64().expect("time"))
        .collect();
    for expected in [24.0, 36.0] {
        assert!(
            scrubbed.iter().any(|t| (t - expected).abs() < 0.6),
            "while pressed the audio followed the pointer to {expected} s: {scrubbed:?}"
        );
    }
    wait_playhead(&b, css, 0.5);

    // A finger does the same.
    b.js(
        "window.pressedBy = []; document.querySelector('[data-test=waveform]') \
           .addEventListener('pointerdown', e => window.pressedBy.push(e.pointerType));",
        vec![],
    );
    b.pointer(true, &[at(&b, 0.25), Pointer::Down, at(&b, 0.5), at(&b, 0.9), Pointer::Up]);
    wait_time(&b, "a finger dragged to 90 %", 54.0, 0.6);
    assert_eq!(b.js("return window.pressedBy;", vec![]), json!(["touch"]), "a touch, as a phone makes");
    assert_eq!(b.js("return scrollY;", vec![]), json!(0), "the drag did not scroll the page");

    // Keys: arrows move 5 s, Home and End go to the ends.
    b.keys("\u{E012}"); // ArrowLeft
    wait_time(&b, "ArrowLeft", 49.0, 0.6);
    b.keys("\u{E011}"); // Home
    wait_time(&b, "Home", 0.0, 0.05);
    b.keys("\u{E014}\u{E014}"); // ArrowRight twice
    wait_time(&b, "ArrowRight twice", 10.0, 0.3);
    let slider = slider_in_the_accessibility_tree(&b);
    assert_eq!(slider["valuemin"], json!(0), "{slider}");
    assert!(slider["valuemax"].as_f64().is_some_and(|m| (m - 60.0).abs() < 0.5), "{slider}");
    assert!(slider["value"].as_f64().is_some_and(|v| (v - 10.0).abs() < 0.3), "{slider}");
    // (DevTools' tree leaves aria-valuetext out; the attribute is what browsers hand on.)
    let valuetext =
        b.js("return document.querySelector('input[data-test=seek]').getAttribute('aria-valuetext');", vec![]);
    assert_eq!(valuetext, json!("0:10 of 1:00"));
    b.keys("\u{E010}"); // End
    wait_time(&b, "End", 60.0, 0.3);
    assert!(!b.exists("[data-test=error]:not([hidden])"), "no error was shown");
    assert_eq!(b.js("return window.violations;", vec![]), json!([]), "nothing broke the page's CSP");
}

#[test]
fn a_long_list_fetches_the_waveforms_of_the_rows_on_screen_only() {
    let Some(b) = Browser::start("waveform list") else { return };
    let server = Server::start();
    let token = sign_up_and_leave(&b, &server, "lars");
    let wav = fixture("speech.wav");
    let ids: Vec<String> = (0..40).map(|i| server.upload_id(&token, &format!("Memo {i}.wav"), &wav)).collect();
    for id in &ids {
        analysed(&server, &token, id, "ready");
    }
    let waveform_requests = || {
        server
            .seen()
            .into_iter()
            .filter(|s| s.method == "GET" && s.path.starts_with("/api/v1/recordings/") && s.path.ends_with("/waveform"))
            .collect::<Vec<_>>()
    };
    b.goto(&server.base);
    // The newest rows, on the screen, draw theirs.
    for id in ids.iter().rev().take(5) {
        b.wait_for(&format!("{} [data-test=row-waveform][data-state=ready]", item(id)));
    }
    let drawn = |b: &Browser| b.count("[data-test=row-waveform][data-state=ready]");
    let first = waveform_requests().len();
    assert!(first <= 16, "a screenful of rows, not all 40: {first} requests");
    assert_eq!(drawn(&b), first, "each fetched once, and drawn");

    // Straight to the bottom: the oldest rows draw theirs; the ones scrolled past never ask.
    b.js("window.scrollTo(0, document.body.scrollHeight);", vec![]);
    b.wait_for(&format!("{} [data-test=row-waveform][data-state=ready]", item(&ids[0])));
    let total = waveform_requests().len();
    assert!(total < 32, "the middle of the list was skipped: {total} requests for 40 rows");
    assert!(ids.iter().any(|id| b.exists(&format!("{} [data-test=row-waveform][data-state=loading]", item(id)))));

    // After a reload the browser revalidates what it has: 304s, no waveform sent again.
    let before = waveform_requests().len();
    b.goto(&server.base);
    b.wait_for(&format!("{} [data-test=row-waveform][data-state=ready]", item(&ids[39])));
    let again: Vec<u16> = waveform_requests().iter().skip(before).map(|s| s.status).collect();
    assert!(!again.is_empty() && again.iter().all(|&s| s == 304), "revalidated from the browser's cache: {again:?}");
}

#[test]
fn an_upload_shows_analysing_until_its_waveform_is_ready_without_a_reload() {
    let Some(b) = Browser::start("waveform after upload") else { return };
    let server = Server::start();
    sign_up(&b, &server, "ivy");
    // Every state a row's waveform goes through, in order.
    b.js(
        "window.waveStates = []; new MutationObserver(ms => { for (const m of ms) { \
           const e = m.target; if (e.dataset && e.dataset.test === 'row-waveform') window.waveStates.push(e.dataset.state); \
           for (const n of m.addedNodes || []) { const w = n.querySelector && n.querySelector('[data-test=row-waveform]'); \
             if (w) window.waveStates.push(w.dataset.state); } } \
         }).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-state'] });",
        vec![],
    );
    b.send_keys("input[data-test=file-input]", &fixture_path("speech.wav"));
    b.wait_for("li[data-test=recording] [data-test=row-waveform][data-state=ready]");
    let states = b.js("return window.waveStates;", vec![]);
    assert_eq!(states[0], json!("pending"), "analysing first: {states}");
    assert_eq!(states.as_array().and_then(|s| s.last()), Some(&json!("ready")), "{states}");
    let id = b.js("return document.querySelector('li[data-test=recording]').dataset.id;", vec![]);
    let id = id.as_str().expect("id");
    let token = server.login("ivy");
    let recording = analysed(&server, &token, id, "ready");
    assert!(recording["duration_ms"].as_i64().is_some_and(|d| (d - 4179).abs() < 150), "{recording}");
    assert_eq!(b.text(&format!("{} [data-test=duration]", item(id))), "0:04");
    assert_eq!(b.text(&format!("{} [data-test=row-waveform]", item(id))), "", "no “Analysing…” any more");
    let polls =
        server.seen().iter().filter(|s| s.method == "GET" && s.path == format!("/api/v1/recordings/{id}")).count();
    assert!((1..=3).contains(&polls), "found ready by polling the recording, gently: {polls} polls");
}

#[test]
fn with_analysis_off_a_calm_placeholder_shows_and_the_bar_still_seeks() {
    let Some(b) = Browser::start("waveform pending") else { return };
    let server = Server::start_with(|c| c.analysis.enabled = false);
    sign_up(&b, &server, "otto");
    let token = server.login("otto");
    let id = server.upload_id(&token, "memo.wav", &fixture("speech.wav"));
    let loaded = Instant::now();
    b.goto(&server.base);
    let row = format!("{} [data-test=row-waveform]", item(&id));
    b.wait_for(&format!("{row}[data-state=pending]"));
    assert_eq!(b.text(&row), "Analysing…", "screen readers hear that it is being analysed");
    no_spinner(&b);
    // A flat dotted line: drawn, and only on the middle rows.
    let dots = Drawing::read(&b, &format!("{row} canvas"));
    assert!(dots.pixels(0.0, 1.0) > 0, "the placeholder is drawn");
    let tallest = dots.drawn.iter().copied().max().unwrap_or(0);
    assert!(tallest <= 4, "the placeholder is a flat line, {tallest} px at its tallest");
    let animations = b.js(
        "return document.getAnimations().filter(a => a.playState === 'running' && \
           !isFinite(a.effect.getComputedTiming().endTime)).map(a => (a.animationName || a.id) + ' on ' + \
           (a.effect.target && a.effect.target.outerHTML.slice(0, 80)));",
        vec![],
    );
    assert_eq!(animations, json!([]), "nothing moves for ever");

    play_and_pause(&b, &id);
    b.wait_for("[data-test=waveform][data-state=pending]");
    assert_eq!(b.text("[data-test=waveform-status]"), "Analysing…");
    no_spinner(&b);
    let duration = audio(&b, "duration");
    b.pointer(false, &[at(&b, 0.5), Pointer::Down, Pointer::Up]);
    wait_time(&b, "a click halfway on the placeholder", duration / 2.0, 0.2);
    wait_playhead(&b, "[data-test=waveform-canvas]", 0.5);
    b.keys("\u{E012}"); // ArrowLeft
    wait_time(&b, "ArrowLeft on the placeholder", (duration / 2.0 - 5.0).max(0.0), 0.2);

    // It asks again with a gentle backoff, once for the row and the player together.
    let path = format!("/api/v1/recordings/{id}");
    let mut polls: Vec<Instant> = Vec::new();
    let started = Instant::now();
    while polls.len() < 3 {
        let n = server.seen().iter().filter(|s| s.method == "GET" && s.path == path).count();
        while polls.len() < n {
            polls.push(Instant::now());
        }
        assert!(started.elapsed() < WAIT + Duration::from_secs(10), "three polls of the recording: {polls:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let first = polls[0] - loaded;
    let gaps = [polls[1] - polls[0], polls[2] - polls[1]];
    assert!(first >= Duration::from_millis(1500), "the first poll waits: {first:?}");
    assert!(gaps[0] >= Duration::from_millis(2500), "then longer: {gaps:?}");
    assert!(gaps[1] >= gaps[0] + Duration::from_millis(500), "and longer: {gaps:?}");
    assert!(!b.exists("[data-test=error]:not([hidden])"), "no error was shown");
    assert_eq!(b.text(&row), "Analysing…", "still pending");
    b.screenshot(1280, 800, "player-waveform-pending-light.png");
}

#[test]
fn a_recording_without_a_waveform_plays_and_seeks_on_a_plain_bar() {
    let Some(b) = Browser::start("waveform failed") else { return };
    let server = Server::start();
    sign_up(&b, &server, "fern");
    let token = server.login("fern");
    // Cut before its first frame: neither the server nor a browser can decode it.
    let truncated = server.upload_id(&token, "truncated.mp3", &fixture("truncated.mp3"));
    // An MP4 whose chunk-offset table claims 2^32-1 entries: the server refuses to analyse it
    // (implausible), while a browser's demuxer reads the entries there are and plays it whole.
    let odd = server.upload_id(&token, "odd.m4a", &fixture("hostile/speech-m4a-stco-count-at-20505-max.m4a"));
    analysed(&server, &token, &truncated, "failed");
    analysed(&server, &token, &odd, "failed");
    b.goto(&server.base);
    for id in [&truncated, &odd] {
        let row = format!("{} [data-test=row-waveform]", item(id));
        b.wait_for(&format!("{row}[data-state=failed]"));
        assert_eq!(
            b.js("return document.querySelector(arguments[0]).title;", vec![json!(row)]),
            json!("No waveform for this recording"),
        );
        assert_eq!(b.text(&row), "", "nothing to read out");
    }
    no_spinner(&b);

    // The truncated one cannot be played by the browser either: the player has the plain bar,
    // and what it says is about the audio, nothing about a waveform.
    b.click(&format!("{} [data-test=play]", item(&truncated)));
    b.wait_for("[data-test=waveform][data-state=failed]");
    b.wait_for("[data-test=error]:not([hidden])");
    let said = b.text("[data-test=error] .error-text");
    assert!(said.contains("cannot play") && !said.to_lowercase().contains("waveform"), "{said}");
    b.click("[data-test=error] button");

    // The player: the plain bar, visible, with a quiet title; it plays and seeks.
    play_and_pause(&b, &odd);
    b.wait_for("[data-test=waveform][data-state=failed]");
    assert_eq!(
        b.js("return document.querySelector('[data-test=waveform]').title;", vec![]),
        json!("No waveform for this recording")
    );
    let shown = b.js(
        "const s = document.querySelector('input[data-test=seek]'); \
         return getComputedStyle(s).opacity === '1' && s.getBoundingClientRect().width > 50;",
        vec![],
    );
    assert_eq!(shown, json!(true), "the plain bar shows");
    assert_eq!(b.text("[data-test=waveform-status]"), "");
    let duration = audio(&b, "duration");
    assert!(duration > 3.0, "it plays: {duration} s");
    b.pointer(false, &[at(&b, 0.75), Pointer::Down, Pointer::Up]);
    wait_time(&b, "a click at 75 % of the plain bar", duration * 0.75, 0.25);
    b.keys("\u{E012}"); // ArrowLeft
    wait_time(&b, "ArrowLeft on the plain bar", (duration * 0.75 - 5.0).max(0.0), 0.25);
    assert!(!b.exists("[data-test=error]:not([hidden])"), "no error was shown");
    b.screenshot(1280, 800, "player-waveform-failed-light.png");
}

/// The player with a waveform, paused partway, in one colour scheme: screenshots at desktop and
/// phone width, and the axe-core audit of each.
fn look_in(scheme: &str) {
    let args: &[&str] = if scheme == "dark" { &["--force-dark-mode"] } else { &[] };
    let Some(b) = Browser::start_with(&format!("waveform look, {scheme}"), args) else { return };
    let server = Server::start();
    sign_up(&b, &server, "lux");
    let token = server.login("lux");
    let speech = server.upload_id(&token, "Kitchen idea.wav", &fixture("speech.wav"));
    let long = server.upload_id(&token, "Standup notes.wav", &loud_then_quiet_wav(60));
    analysed(&server, &token, &speech, "ready");
    analysed(&server, &token, &long, "ready");
    b.goto(&server.base);
    let dark = b.js("return matchMedia('(prefers-color-scheme: dark)').matches;", vec![]);
    assert_eq!(dark, json!(scheme == "dark"));
    play_and_pause(&b, &speech);
    b.wait_for("[data-test=waveform][data-state=ready]");
    b.js("document.querySelector('audio[data-test=player]').currentTime = 1.6;", vec![]);
    b.wait_js(
        "the seek",
        "const a = document.querySelector('audio[data-test=player]'); return !a.seeking && Math.abs(a.currentTime - 1.6) < 0.1;",
        vec![],
    );
    for id in [&speech, &long] {
        b.wait_for(&format!("{} [data-test=row-waveform][data-state=ready]", item(id)));
    }
    for (width, height, name) in [(1280, 800, "desktop"), (390, 844, "phone")] {
        b.resize(width, height);
        // Redrawn at the new size.
        b.wait_js(
            "the waveform redrawn at the new width",
            "const c = document.querySelector('[data-test=waveform-canvas]'); \
             return c.width === Math.round(c.getBoundingClientRect().width * devicePixelRatio);",
            vec![],
        );
        assert_accessible(&b, &format!("the player with a waveform, {name}, {scheme}"));
        b.screenshot(width, height, &format!("player-waveform-{name}-{scheme}.png"));
    }
}

#[test]
fn the_player_with_a_waveform_looks_right_and_passes_axe_in_the_light_scheme() {
    look_in("light");
}

#[test]
fn the_player_with_a_waveform_looks_right_and_passes_axe_in_the_dark_scheme() {
    look_in("dark");
}
