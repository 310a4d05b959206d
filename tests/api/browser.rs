//! The web UI in real headless Chromium (see `support::browser`) against a real server: the
//! walkthrough, names as text, closed signups, recording in the page, refusals, the keyboard,
//! scrolling and search, and axe-core's audit in both colour schemes. Without Chromium these
//! tests say loudly that they skipped, and fail instead when `RECORDER_REQUIRE_BROWSER=1` (as in
//! CI).

use crate::support::browser::{Browser, assert_accessible, item, sign_up, sign_up_and_leave};
use crate::support::{Server, fixture, fixture_path, list, send, send_json, urlencode};
use serde_json::json;

#[test]
fn a_user_uploads_plays_renames_deletes_undoes_and_restores_in_the_browser() {
    let Some(b) = Browser::start("walkthrough") else { return };
    let server = Server::start();
    sign_up(&b, &server, "alice");

    // A new user sees how to point a phone app here.
    b.wait_for("[data-test=empty]");
    let first_run = b.text("[data-test=empty]");
    assert!(first_run.contains("Record here") && first_run.contains("pair a phone"), "the two next steps: {first_run}");
    assert!(!first_run.contains("curl"), "no developer commands on a person's first screen");

    // Two files at once through the file input.
    b.send_keys(
        "input[data-test=file-input]",
        &format!("{}\n{}", fixture_path("speech.m4a"), fixture_path("speech.mp3")),
    );
    b.wait_js(
        "two recordings listed",
        "return document.querySelectorAll('li[data-test=recording]').length === 2;",
        vec![],
    );
    let token = server.login("alice");
    let stored = list(&server, &token, "/api/v1/recordings");
    assert_eq!(stored.len(), 2);
    for r in &stored {
        let id = r["id"].as_str().expect("id");
        assert_eq!(b.text(&format!("{} [data-test=name]", item(id))), r["name"].as_str().expect("name"));
        assert_eq!(b.text(&format!("{} [data-test=duration]", item(id))), "0:04", "{r}");
    }
    let (m4a, mp3) = {
        let id_of = |name: &str| {
            stored.iter().find(|r| r["name"] == name).and_then(|r| r["id"].as_str()).expect("uploaded").to_string()
        };
        (id_of("speech.m4a"), id_of("speech.mp3"))
    };

    // Play and seek: the element's time moves, and the audio came with a Range request.
    b.click(&format!("{} [data-test=play]", item(&m4a)));
    b.wait_js(
        "the player to play",
        "const a = document.querySelector('audio[data-test=player]'); return a.currentTime > 0.3 && a.src.includes(arguments[0]);",
        vec![json!(m4a)],
    );
    assert_eq!(b.text("[data-test=player-name]"), "speech.m4a");
    // Paused, so only the seek can move the time.
    b.click("button[data-test=player-toggle]");
    b.wait_paused();
    b.js(
        "const s = document.querySelector('input[data-test=seek]'); \
         s.value = s.max * 0.75; s.dispatchEvent(new Event('input', {bubbles: true})); \
         s.dispatchEvent(new Event('change', {bubbles: true}));",
        vec![],
    );
    b.wait_js(
        "the seek to move currentTime",
        "const a = document.querySelector('audio[data-test=player]'); \
         return a.paused && Math.abs(a.currentTime - a.duration * 0.75) < 0.5;",
        vec![],
    );
    let audio_path = format!("/api/v1/recordings/{m4a}/audio");
    let ranged: Vec<_> =
        server.seen().into_iter().filter(|s| s.method == "GET" && s.path == audio_path && s.range.is_some()).collect();
    assert!(ranged.iter().any(|s| s.status == 206), "the server saw Range requests for the audio: {ranged:?}");

    // Rename inline.
    b.click(&format!("{} [data-test=rename]", item(&mp3)));
    b.retype(&format!("{} input[data-test=rename-input]", item(&mp3)), "Kitchen idea");
    b.send_keys(&format!("{} input[data-test=rename-input]", item(&mp3)), "\u{E007}");
    b.wait_js(
        "the new name",
        "const e = document.querySelector(arguments[0]); return !!e && e.textContent.trim() === 'Kitchen idea';",
        vec![json!(format!("{} [data-test=name]", item(&mp3)))],
    );
    let renamed = send(server.auth("GET", &format!("/api/v1/recordings/{mp3}"), &token), None).json();
    assert_eq!(renamed["name"], "Kitchen idea");

    // Delete, Undo, delete again, restore from the trash.
    b.click(&format!("{} [data-test=delete]", item(&mp3)));
    b.wait_gone(&item(&mp3));
    b.click("[data-test=toast] button[data-test=undo]");
    b.wait_for(&item(&mp3));
    assert!(list(&server, &token, "/api/v1/trash").is_empty(), "undo restored it");
    b.click(&format!("{} [data-test=delete]", item(&mp3)));
    b.wait_gone(&item(&mp3));
    assert_eq!(list(&server, &token, "/api/v1/trash").len(), 1);
    b.click("[data-test=nav-trash]");
    let trashed = format!("li[data-test=trash-item][data-id=\"{mp3}\"]");
    b.wait_for(&trashed);
    assert!(b.text(&format!("{trashed} [data-test=days-left]")).contains("30"), "30 days left");
    b.click(&format!("{trashed} [data-test=restore]"));
    b.wait_gone(&trashed);
    b.click("[data-test=nav-recordings]");
    b.wait_for(&item(&mp3));
    assert!(list(&server, &token, "/api/v1/trash").is_empty());
    assert_eq!(list(&server, &token, "/api/v1/recordings").len(), 2);

    // For a person to look at.
    b.screenshot(390, 844, "list-phone.png");
    b.screenshot(1280, 800, "list-desktop.png");
}

#[test]
fn names_are_text_never_html() {
    let Some(b) = Browser::start("names are text") else { return };
    let server = Server::start();
    sign_up(&b, &server, "mallory");
    let token = server.login("mallory");
    let name = "<img src=x onerror=alert(1)>";
    let r = send(
        server
            .auth("POST", &format!("/api/v1/recordings?name={}", urlencode(name)), &token)
            .set("Content-Type", "application/octet-stream"),
        Some(&fixture("speech.wav")),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().expect("id").to_string();
    b.goto(&server.base);
    b.wait_for(&item(&id));
    assert_eq!(b.text(&format!("{} [data-test=name]", item(&id))), name);
    assert_eq!(b.count("img[src=x]"), 0, "no element was made from the name");
    assert!(!b.alert_open(), "no script ran");
    // Renaming to markup shows it as text too.
    b.click(&format!("{} [data-test=rename]", item(&id)));
    b.retype(&format!("{} input[data-test=rename-input]", item(&id)), "<b>bold</b><script>alert(2)</script>");
    b.send_keys(&format!("{} input[data-test=rename-input]", item(&id)), "\u{E007}");
    b.wait_js(
        "the markup name shown as text",
        "const e = document.querySelector(arguments[0]); return !!e && e.textContent.trim() === '<b>bold</b><script>alert(2)</script>';",
        vec![json!(format!("{} [data-test=name]", item(&id)))],
    );
    assert_eq!(b.count("[data-test=recordings] b, [data-test=recordings] script"), 0);
    assert!(!b.alert_open(), "no script ran");
}

#[test]
fn closed_signups_hide_the_signup_form() {
    let Some(b) = Browser::start("closed signups") else { return };
    let server = Server::start_with(|c| c.accounts.signups = recorder::config::Signups::Closed);
    b.goto(&server.base);
    b.wait_js("the page to be ready", "return document.body.dataset.ready === '1';", vec![]);
    b.wait_for("form[data-test=login-form]");
    assert!(!b.exists("[data-test=show-signup]"), "no way to sign up is offered");
    assert!(!b.exists("form[data-test=signup-form]"));
}

#[test]
fn recording_in_the_browser_uploads_with_its_start_time() {
    let Some(b) = Browser::start("record") else { return };
    let server = Server::start();
    sign_up(&b, &server, "singer");
    let before = time::OffsetDateTime::now_utc();
    b.click("button[data-test=record]");
    b.wait_for("[data-test=record-timer]");
    b.wait_js(
        "the timer to reach 0:02",
        "return document.querySelector('[data-test=record-timer]').textContent.trim() >= '0:02';",
        vec![],
    );
    b.click("button[data-test=record-stop]");
    b.wait_js(
        "the recording listed",
        "return document.querySelectorAll('li[data-test=recording]').length === 1;",
        vec![],
    );
    let token = server.login("singer");
    let stored = list(&server, &token, "/api/v1/recordings");
    assert_eq!(stored.len(), 1);
    let r = &stored[0];
    assert!(r["content_type"].as_str().is_some_and(|t| t.starts_with("audio/")), "{r}");
    let recorded_at = r["recorded_at"].as_str().expect("recorded_at set");
    let recorded_at =
        time::OffsetDateTime::parse(recorded_at, &time::format_description::well_known::Rfc3339).expect("rfc3339");
    let drift = (recorded_at - before).whole_seconds().abs();
    assert!(drift < 10, "recorded_at is when recording started: {recorded_at} vs {before}");
    assert!(r["size"].as_i64().is_some_and(|s| s > 1000), "{r}");
    // Kept on the device, then sent through tus in order, every byte once.
    let seen = server.seen();
    let patches: Vec<_> =
        seen.iter().filter(|s| s.method == "PATCH" && s.path.starts_with("/api/v1/uploads/")).collect();
    assert!(!patches.is_empty() && patches.iter().all(|s| s.status == 204), "{patches:?}");
    let mut offset = 0;
    for p in &patches {
        assert_eq!(p.upload_offset, Some(offset), "each piece follows the last: {patches:?}");
        offset += p.content_length.unwrap_or(0);
    }
    assert_eq!(offset, r["size"].as_u64().unwrap_or(0), "every byte once");
    assert!(!seen.iter().any(|s| s.method == "POST" && s.path == "/api/v1/recordings"), "not uploaded a second way");
    let open = send(server.auth("GET", "/api/v1/uploads", &token), None).json();
    assert_eq!(open["uploads"], json!([]), "no incomplete upload is left");
}

#[test]
fn refusals_trash_and_account_work_from_the_page() {
    let Some(b) = Browser::start("refusals, trash and account") else { return };
    let server = Server::start();
    sign_up(&b, &server, "uma");
    let token = server.login("uma");

    // The server's refusal is shown with its message, and nothing is stored.
    b.send_keys("input[data-test=file-input]", &fixture_path("not-audio/text-named.mp3"));
    b.wait_for("[data-test=upload-item] [data-test=upload-error]");
    let shown = b.text("[data-test=upload-item] [data-test=upload-error]");
    let refused =
        send(server.auth("POST", "/api/v1/recordings?name=x.mp3", &token), Some(&fixture("not-audio/text-named.mp3")));
    refused.assert_error(415, "unsupported_media_type");
    assert_eq!(shown, refused.json()["error"]["message"].as_str().expect("message"), "the server's own message");
    assert!(list(&server, &token, "/api/v1/recordings").is_empty());

    // Delete forever and empty the trash, each after confirming in the page's dialog.
    let ids: Vec<String> =
        ["speech.ogg", "speech.opus", "speech.flac"].iter().map(|f| server.upload_id(&token, f, &fixture(f))).collect();
    for id in &ids {
        assert_eq!(send(server.auth("DELETE", &format!("/api/v1/recordings/{id}"), &token), None).status, 204);
    }
    b.click("[data-test=nav-trash]");
    let trashed = |id: &str| format!("li[data-test=trash-item][data-id=\"{id}\"]");
    b.wait_for(&trashed(&ids[0]));
    b.click(&format!("{} [data-test=purge]", trashed(&ids[0])));
    b.click("dialog[data-test=confirm] [data-test=confirm-cancel]");
    assert!(b.exists(&trashed(&ids[0])), "cancel keeps it");
    b.click(&format!("{} [data-test=purge]", trashed(&ids[0])));
    b.click("dialog[data-test=confirm] [data-test=confirm-ok]");
    b.wait_gone(&trashed(&ids[0]));
    assert_eq!(list(&server, &token, "/api/v1/trash").len(), 2);
    b.click("[data-test=empty-trash]");
    b.click("dialog[data-test=confirm] [data-test=confirm-ok]");
    b.wait_for("[data-test=trash-empty]");
    assert!(list(&server, &token, "/api/v1/trash").is_empty());

    // Usage, a password change, and signing out.
    b.click("[data-test=nav-account]");
    assert_eq!(b.text("[data-test=username]"), "uma");
    b.wait_for("[data-test=usage]");
    b.fill("form[data-test=password-form] input[name=current_password]", "password123");
    b.fill("form[data-test=password-form] input[name=new_password]", "a brand new secret");
    b.click("form[data-test=password-form] [type=submit]");
    b.wait_for("[data-test=password-ok]");
    let old =
        send_json(server.req("POST", "/api/v1/auth/login"), &json!({"username": "uma", "password": "password123"}));
    old.assert_error(401, "invalid_credentials");
    send(server.auth("GET", "/api/v1/me", &token), None).assert_error(401, "unauthorized");
    b.click("[data-test=logout]");
    b.wait_for("form[data-test=login-form]");
    b.goto(&server.base);
    b.wait_for("form[data-test=login-form]");
    assert!(!b.exists("[data-test=app]"), "signed out for good");
    b.fill("form[data-test=login-form] input[name=username]", "uma");
    b.fill("form[data-test=login-form] input[name=password]", "a brand new secret");
    b.click("form[data-test=login-form] [type=submit]");
    b.wait_for("[data-test=app]");
}

#[test]
fn the_page_works_by_keyboard_alone_with_visible_focus() {
    let Some(b) = Browser::start("keyboard") else { return };
    let server = Server::start();
    let token = server.signup("kai");
    let id = server.upload_id(&token, "speech.ogg", &fixture("speech.ogg"));
    b.goto(&server.base);
    b.wait_for("form[data-test=login-form]");
    // Tab from the top of the page to the username field, then fill the form and press Enter.
    let mut tabs = 0;
    while b.focused() != "input[name=username]" {
        b.keys("\u{E004}");
        tabs += 1;
        assert!(tabs < 10, "the username field is reachable by Tab; focus is on {}", b.focused());
    }
    b.keys("kai\u{E004}password123\u{E007}");
    b.wait_for(&item(&id));
    // Tab reaches the recording's play button, and the focus is visible.
    let mut tabs = 0;
    while b.focused() != "play" {
        b.keys("\u{E004}");
        tabs += 1;
        assert!(tabs < 30, "the play button is reachable by Tab; focus is on {}", b.focused());
    }
    let outline = b.js(
        "const s = getComputedStyle(document.activeElement); return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0 || s.boxShadow !== 'none';",
        vec![],
    );
    assert_eq!(outline, json!(true), "the focused control shows a focus ring");
    // Enter plays it.
    b.keys("\u{E007}");
    b.wait_js(
        "the player to play",
        "const a = document.querySelector('audio[data-test=player]'); \
         return (a.played.length > 0 || a.currentTime > 0) && a.src.includes(arguments[0]);",
        vec![json!(id)],
    );
    // Every button and link on the page has a name a screen reader can read.
    let unnamed = b.js(
        "return [...document.querySelectorAll('button, a, input:not([type=hidden])')].filter(e => { \
           const r = e.getBoundingClientRect(); if (!r.width && !r.height && e.type !== 'file') return false; \
           const label = e.getAttribute('aria-label') || e.textContent.trim() || e.title || e.placeholder || \
             (e.labels && e.labels.length && e.labels[0].textContent.trim()) || e.getAttribute('aria-labelledby'); \
           return !label; }).map(e => e.outerHTML.slice(0, 80));",
        vec![],
    );
    assert_eq!(unnamed, json!([]), "controls without a name");
}

#[test]
fn more_recordings_load_on_scroll_and_search_filters_as_you_type() {
    let Some(b) = Browser::start("scroll and search") else { return };
    let server = Server::start();
    let token = server.signup("vera");
    let wav = fixture("speech.wav");
    for i in 0..70 {
        let name = if i % 10 == 0 { format!("Garden walk {i}.wav") } else { format!("Memo {i}.wav") };
        server.upload_id(&token, &name, &wav);
    }
    b.goto(&server.base);
    b.fill("form[data-test=login-form] input[name=username]", "vera");
    b.fill("form[data-test=login-form] input[name=password]", "password123");
    b.click("form[data-test=login-form] [type=submit]");
    b.wait_js(
        "the first page",
        "return document.querySelector('ul[data-test=recordings]')?.dataset.loaded === '1' && \
                document.querySelectorAll('li[data-test=recording]').length > 0;",
        vec![],
    );
    let first = b.count("li[data-test=recording]");
    assert!(first < 70, "one page at first, not everything: {first}");
    assert_eq!(b.text("li[data-test=recording] [data-test=name]"), "Memo 69.wav", "newest first");
    // Scrolling to the end loads the rest, each once.
    b.wait_js(
        "all 70 after scrolling",
        "window.scrollTo(0, document.body.scrollHeight); \
         return document.querySelectorAll('li[data-test=recording]').length === 70;",
        vec![],
    );
    let ids = b.js("return [...document.querySelectorAll('li[data-test=recording]')].map(e => e.dataset.id);", vec![]);
    let unique: std::collections::HashSet<_> = ids.as_array().expect("ids").iter().map(|v| v.to_string()).collect();
    assert_eq!(unique.len(), 70, "no recording twice");

    // Typing filters the list (case-insensitive, on the server).
    b.fill("input[data-test=search]", "garden");
    b.wait_js(
        "the search results",
        "const ul = document.querySelector('ul[data-test=recordings]'); \
         const names = [...document.querySelectorAll('li[data-test=recording] [data-test=name]')].map(e => e.textContent); \
         return ul.dataset.loaded === '1' && names.length === 7 && names.every(n => n.startsWith('Garden walk'));",
        vec![],
    );
    // The header counts what the search found, not every recording.
    b.wait_js(
        "the count of matches",
        "return document.querySelector('[data-test=summary]').textContent === '7 matches';",
        vec![],
    );
    b.fill("input[data-test=search]", "no such thing");
    b.wait_js(
        "no results",
        "return document.querySelector('ul[data-test=recordings]').dataset.loaded === '1' && \
                document.querySelectorAll('li[data-test=recording]').length === 0;",
        vec![],
    );
    assert!(!b.exists("[data-test=empty]"), "a search without results is not the new-user empty state");
    b.wait_js(
        "no matches counted",
        "return document.querySelector('[data-test=summary]').textContent === '0 matches';",
        vec![],
    );
    // Cleared as a person clears it (select all, delete), the header counts every recording again.
    b.send_keys("input[data-test=search]", "\u{E009}a\u{E000}\u{E003}");
    b.wait_js(
        "every recording counted",
        "return document.querySelector('[data-test=summary]').textContent.startsWith('70 recordings');",
        vec![],
    );
}

/// How wide the search field is, and how wide it would need to be to show its placeholder as
/// typed text (with the clear button beside it), in CSS pixels.
fn search_field_widths(b: &Browser) -> (u64, u64) {
    let widths = b.js(
        "const i = document.querySelector('input[data-test=search]'); i.value = i.placeholder; \
         const widths = [i.clientWidth, i.scrollWidth]; i.value = ''; return widths;",
        vec![],
    );
    (widths[0].as_u64().expect("clientWidth"), widths[1].as_u64().expect("scrollWidth"))
}

/// The sign-in page, the list with the player open, and the trash, audited by axe-core in one
/// colour scheme; screenshots of each for a person to look at.
fn audit_in(scheme: &str) {
    let dark = scheme == "dark";
    // Chromium's dark system theme, which is what `prefers-color-scheme` follows.
    let args: &[&str] = if dark { &["--force-dark-mode"] } else { &[] };
    let Some(b) = Browser::start_with(&format!("accessibility, {scheme}"), args) else { return };
    let server = Server::start();
    let token = server.signup("ada");
    let wav = fixture("speech.wav");
    let ids: Vec<String> = ["Standup notes.wav", "Kitchen idea.wav", "Interview, part 2.wav"]
        .iter()
        .map(|n| server.upload_id(&token, n, &wav))
        .collect();
    assert_eq!(send(server.auth("DELETE", &format!("/api/v1/recordings/{}", ids[0]), &token), None).status, 204);

    b.goto(&server.base);
    b.wait_for("form[data-test=login-form]");
    let matches = b.js("return matchMedia('(prefers-color-scheme: dark)').matches;", vec![]);
    assert_eq!(matches, json!(dark), "the page sees the {scheme} colour scheme");
    assert_accessible(&b, &format!("the sign-in page ({scheme})"));
    b.screenshot(1280, 800, &format!("sign-in-{scheme}.png"));

    // Signing in by keyboard leaves the pointer where it was, so nothing is hovered.
    b.fill("form[data-test=login-form] input[name=username]", "ada");
    b.fill("form[data-test=login-form] input[name=password]", "password123\u{E007}");
    b.wait_js(
        "the list",
        "return document.querySelector('ul[data-test=recordings]')?.dataset.loaded === '1' && \
                document.querySelectorAll('li[data-test=recording]').length === 2;",
        vec![],
    );
    b.wait_for("[data-test=nav-trash] .badge");
    b.js("document.querySelector(arguments[0]).click();", vec![json!(format!("{} [data-test=play]", item(&ids[1])))]);
    b.wait_js(
        "the player to play",
        "const a = document.querySelector('audio[data-test=player]'); return !a.paused && a.currentTime > 0;",
        vec![],
    );
    b.js("document.querySelector('button[data-test=player-toggle]').click();", vec![]);
    b.wait_paused();
    assert_accessible(&b, &format!("the list with the player open ({scheme})"));
    b.screenshot(1280, 800, &format!("list-{scheme}.png"));
    b.resize(390, 844);
    assert_accessible(&b, &format!("the list with the player open on a phone ({scheme})"));
    b.screenshot(390, 844, &format!("list-phone-{scheme}.png"));
    b.resize(1280, 800);

    b.js("document.querySelector('[data-test=nav-trash]').click();", vec![]);
    b.wait_for(&format!("li[data-test=trash-item][data-id=\"{}\"]", ids[0]));
    assert_accessible(&b, &format!("the trash ({scheme})"));
    b.screenshot(1280, 800, &format!("trash-{scheme}.png"));
}

#[test]
fn axe_core_finds_no_wcag_violations_in_the_light_scheme() {
    audit_in("light");
}

#[test]
fn axe_core_finds_no_wcag_violations_in_the_dark_scheme() {
    audit_in("dark");
}

#[test]
fn the_desktop_search_field_shows_its_whole_placeholder() {
    let Some(b) = Browser::start("search placeholder") else { return };
    let server = Server::start();
    let token = server.signup("pia");
    // A full trash gives the header its widest Trash tab.
    let opus = fixture("speech.opus");
    for i in 0..100 {
        let id = server.upload_id(&token, &format!("Memo {i}.opus"), &opus);
        assert_eq!(send(server.auth("DELETE", &format!("/api/v1/recordings/{id}"), &token), None).status, 204);
    }
    b.goto(&server.base);
    b.fill("form[data-test=login-form] input[name=username]", "pia");
    b.fill("form[data-test=login-form] input[name=password]", "password123\u{E007}");
    b.wait_js(
        "the trash count",
        "return document.querySelector('[data-test=nav-trash] .badge')?.textContent === '99+';",
        vec![],
    );
    assert_eq!(b.js("return document.querySelector('[data-test=nav-trash]').ariaLabel;", vec![]), json!("Trash (100)"));
    for width in [760, 980, 1280] {
        b.screenshot(width, 800, &format!("header-{width}.png"));
        let (field, needed) = search_field_widths(&b);
        assert!(
            needed <= field,
            "at {width} px the search field is {field} px wide; its placeholder needs {needed} px"
        );
    }
}

/// Where a row's size is: shown whole on its line, or left out (wrapped below the line, which is
/// not shown); never cut.
fn size_placement(b: &Browser, id: &str) -> String {
    b.js(
        "const li = document.querySelector(arguments[0]); const meta = li.querySelector('.rec-meta').getBoundingClientRect(); \
         const size = li.querySelector('[data-test=size]').getBoundingClientRect(); \
         if (size.top >= meta.bottom - 0.5) return 'left out'; \
         if (size.left >= meta.left - 0.5 && size.right <= meta.right + 0.5 && size.bottom <= meta.bottom + 0.5) return 'whole'; \
         return `cut: size ${size.left}-${size.right} x ${size.top}-${size.bottom}, line ${meta.left}-${meta.right} x ${meta.top}-${meta.bottom}`;",
        vec![json!(item(id))],
    )
    .as_str()
    .unwrap_or_default()
    .to_string()
}

#[test]
fn a_rows_size_is_shown_whole_or_left_out_on_a_narrow_screen_never_cut() {
    let Some(b) = Browser::start("sizes on narrow rows") else { return };
    let server = Server::start();
    let token = sign_up_and_leave(&b, &server, "nora");
    let id = server.upload_id(&token, "a recording with a long name.wav", &fixture("speech.wav"));
    b.goto(&server.base);
    b.wait_for(&item(&id));
    let mut seen = Vec::new();
    for width in [1280, 760, 520, 414, 390, 360, 340, 320, 300] {
        b.resize(width, 800);
        let placement = size_placement(&b, &id);
        assert!(placement == "whole" || placement == "left out", "at {width} px: {placement}");
        seen.push((width, placement));
    }
    assert_eq!(seen[0].1, "whole", "a desktop row shows its size: {seen:?}");
}
