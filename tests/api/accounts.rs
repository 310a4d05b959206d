//! The Server and Accounts sections of the API.

use crate::support::audio::tone_wav;
use crate::support::{Server, fixture, send, send_json};
use recorder::config::Signups;
use serde_json::json;

fn creds(username: &str, password: &str) -> serde_json::Value {
    json!({"username": username, "password": password})
}

#[test]
fn healthz_and_server_info_need_no_auth() {
    let s = Server::start_with(|c| c.storage.max_upload_size = 12345);
    let r = send(s.req("GET", "/healthz"), None);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ok");
    assert_eq!(r.json()["version"], env!("CARGO_PKG_VERSION"));
    let mut info = send(s.req("GET", "/api/v1/server"), None).json();
    // HTTPS is on by default: its port and the secure address (the TLS tests check them).
    let https = info.as_object_mut().and_then(|o| o.remove("https")).expect("https");
    assert!(https["url"].as_str().is_some_and(|u| u.starts_with("https://")), "{https}");
    assert_eq!(
        info,
        json!({"version": env!("CARGO_PKG_VERSION"), "signups": "open", "max_upload_size": 12345, "trash_retention_days": 30})
    );
}

#[test]
fn signup_login_me_logout() {
    let s = Server::start();
    let r = send_json(s.req("POST", "/api/v1/auth/signup"), &creds("Alice", "password123"));
    assert_eq!(r.status, 201, "{}", r.text());
    let session = r.json();
    assert_eq!(session["user"]["username"], "alice", "usernames are lower-cased");
    let token = session["token"].as_str().expect("token");
    assert_eq!(token.len(), 43);
    assert!(session["expires_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    let cookie = r.header("set-cookie").expect("cookie set");
    for flag in ["recorder_session=", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(flag), "{cookie} lacks {flag}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP without secure_cookies: {cookie}");

    let me = send(s.auth("GET", "/api/v1/me", token), None);
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["user"]["username"], "alice");
    assert_eq!(
        me.json()["usage"],
        json!({"recordings": 0, "bytes": 0, "trash_recordings": 0, "trash_bytes": 0, "uploads": 0, "upload_bytes": 0})
    );

    let login = send_json(s.req("POST", "/api/v1/auth/login"), &creds("ALICE", "password123"));
    assert_eq!(login.status, 200, "login is case-insensitive: {}", login.text());
    let second = login.json()["token"].as_str().expect("token").to_string();
    assert_ne!(second, token);

    assert_eq!(send(s.auth("POST", "/api/v1/auth/logout", token), None).status, 204);
    let after = send(s.auth("GET", "/api/v1/me", token), None);
    after.assert_error(401, "unauthorized");
    assert_eq!(after.header("www-authenticate"), Some("Bearer"));
    assert_eq!(send(s.auth("GET", "/api/v1/me", &second), None).status, 200, "other sessions live on");
    send(s.req("GET", "/api/v1/me"), None).assert_error(401, "unauthorized");
    send(s.auth("POST", "/api/v1/auth/logout", token), None).assert_error(401, "unauthorized");
}

#[test]
fn secure_cookie_when_configured_or_behind_https_proxy() {
    let s = Server::start_with(|c| c.server.secure_cookies = true);
    let r = send_json(s.req("POST", "/api/v1/auth/signup"), &creds("bob", "password123"));
    assert!(r.header("set-cookie").is_some_and(|c| c.contains("Secure")));
    let s = Server::start();
    let r =
        send_json(s.req("POST", "/api/v1/auth/signup").set("X-Forwarded-Proto", "https"), &creds("bob", "password123"));
    assert!(r.header("set-cookie").is_some_and(|c| c.contains("Secure")));
}

#[test]
fn signup_errors_have_their_codes() {
    let s = Server::start();
    let post = || s.req("POST", "/api/v1/auth/signup");
    send_json(post(), &creds("ab", "password123")).assert_error(400, "invalid_username");
    send_json(post(), &creds("_alice", "password123")).assert_error(400, "invalid_username");
    send_json(post(), &creds("jürgen", "password123")).assert_error(400, "invalid_username");
    send_json(post(), &creds("alice", "short")).assert_error(400, "weak_password");
    send_json(post(), &creds("alice", &"x".repeat(1025))).assert_error(400, "weak_password");
    send_json(post(), &json!({"username": "alice"})).assert_error(400, "bad_request");
    send(post().set("Content-Type", "application/json"), Some(b"{\"username\": ")).assert_error(400, "bad_request");
    send(post().set("Content-Type", "text/plain"), Some(creds("alice", "password123").to_string().as_bytes()))
        .assert_error(415, "unsupported_media_type");
    let huge = format!("{{\"username\": \"alice\", \"password\": \"{}\"}}", "x".repeat(1 << 20));
    send(post().set("Content-Type", "application/json"), Some(huge.as_bytes())).assert_error(413, "payload_too_large");
    assert_eq!(send_json(post(), &creds("alice", "password123")).status, 201);
    send_json(post(), &creds("ALICE", "password456")).assert_error(409, "username_taken");
}

#[test]
fn concurrent_signups_of_one_name_give_exactly_one_account() {
    let s = Server::start();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..10)
            .map(|i| {
                let s = &s;
                scope.spawn(move || {
                    send_json(s.req("POST", "/api/v1/auth/signup"), &creds("race", &format!("password{i}"))).status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    assert_eq!(statuses.iter().filter(|&&c| c == 201).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|&c| c == 201 || c == 409), "{statuses:?}");
}

#[test]
fn login_failures_are_alike_and_throttled() {
    let s = Server::start();
    s.signup("carol");
    let login = |name: &str, pw: &str| send_json(s.req("POST", "/api/v1/auth/login"), &creds(name, pw));
    login("carol", "wrong-password").assert_error(401, "invalid_credentials");
    login("nobody", "wrong-password").assert_error(401, "invalid_credentials");
    // Four failures, then a success resets the count: four more are still allowed.
    for _ in 0..3 {
        login("carol", "wrong-password").assert_error(401, "invalid_credentials");
    }
    assert_eq!(login("carol", "password123").status, 200);
    for _ in 0..5 {
        login("carol", "wrong-password").assert_error(401, "invalid_credentials");
    }
    let throttled = login("carol", "password123");
    throttled.assert_error(429, "too_many_requests");
    let wait: u64 = throttled.header("retry-after").expect("Retry-After").parse().expect("seconds");
    assert!(wait > 0 && wait <= 900, "{wait}");
    // The window passes.
    s.clock.advance(15 * 60 * 1000 + 1000);
    assert_eq!(login("carol", "password123").status, 200);
}

#[test]
fn twenty_failures_from_one_address_hold_back_every_name_from_it_and_no_other_address() {
    let s = Server::start_with(|c| c.server.client_ip_header = Some("X-Real-IP".into()));
    s.signup("dana");
    let login = |ip: &str, name: &str, pw: &str| {
        send_json(s.req("POST", "/api/v1/auth/login").set("X-Real-IP", ip), &creds(name, pw))
    };
    // One failure for each of 20 names: none reaches its own limit of 5, the address reaches 20.
    for i in 0..20 {
        login("192.0.2.7", &format!("guess{i}"), "wrong-password").assert_error(401, "invalid_credentials");
    }
    let held = login("192.0.2.7", "dana", "password123");
    held.assert_error(429, "too_many_requests");
    let wait: u64 = held.header("retry-after").expect("Retry-After").parse().expect("seconds");
    assert!(wait > 0 && wait <= 900, "{wait}");
    // Another address signs in as ever; the held one again once the window has passed.
    assert_eq!(login("192.0.2.8", "dana", "password123").status, 200);
    s.clock.advance(15 * 60 * 1000 + 1000);
    assert_eq!(login("192.0.2.7", "dana", "password123").status, 200);
}

#[test]
fn password_change_revokes_other_sessions_only() {
    let s = Server::start();
    let current = s.signup("dave");
    let other = send_json(s.req("POST", "/api/v1/auth/login"), &creds("dave", "password123")).json()["token"]
        .as_str()
        .expect("token")
        .to_string();
    let change = |cur: &str, new: &str| {
        send_json(
            s.auth("PUT", "/api/v1/me/password", &current),
            &json!({"current_password": cur, "new_password": new}),
        )
    };
    change("not-it-at-all", "newpassword1").assert_error(401, "invalid_credentials");
    change("password123", "short").assert_error(400, "weak_password");
    assert_eq!(change("password123", "newpassword1").status, 204);
    assert_eq!(send(s.auth("GET", "/api/v1/me", &current), None).status, 200);
    send(s.auth("GET", "/api/v1/me", &other), None).assert_error(401, "unauthorized");
    send_json(s.req("POST", "/api/v1/auth/login"), &creds("dave", "password123"))
        .assert_error(401, "invalid_credentials");
    assert_eq!(send_json(s.req("POST", "/api/v1/auth/login"), &creds("dave", "newpassword1")).status, 200);
}

#[test]
fn sessions_expire_after_session_days() {
    let s = Server::start_with(|c| c.accounts.session_days = 2);
    let token = s.signup("erin");
    s.clock.advance(86_400_000);
    assert_eq!(send(s.auth("GET", "/api/v1/me", &token), None).status, 200);
    s.clock.advance(86_400_000 + 1000);
    send(s.auth("GET", "/api/v1/me", &token), None).assert_error(401, "unauthorized");
}

#[test]
fn cookie_changes_from_another_origin_are_forbidden() {
    let s = Server::start();
    let token = s.signup("frank");
    let host = s.host().to_string();
    let cookie = format!("recorder_session={token}");
    // Reading with the cookie works.
    assert_eq!(send(s.req("GET", "/api/v1/me").set("Cookie", &cookie), None).status, 200);
    // A change with the cookie from another origin does not.
    let evil = s.req("POST", "/api/v1/auth/logout").set("Cookie", &cookie).set("Origin", "http://evil.example");
    send(evil, None).assert_error(403, "forbidden");
    // The same with a Bearer token from anywhere is fine (no ambient credential).
    let other = send_json(s.req("POST", "/api/v1/auth/login"), &creds("frank", "password123")).json()["token"]
        .as_str()
        .expect("token")
        .to_string();
    let bearer = s.auth("POST", "/api/v1/auth/logout", &other).set("Origin", "http://evil.example");
    assert_eq!(send(bearer, None).status, 204);
    // From our own origin the cookie works.
    let own = s.req("POST", "/api/v1/auth/logout").set("Cookie", &cookie).set("Origin", &format!("http://{host}"));
    assert_eq!(send(own, None).status, 204);
}

#[test]
fn closed_signups_are_refused_and_announced() {
    let s = Server::start_with(|c| c.accounts.signups = Signups::Closed);
    assert_eq!(send(s.req("GET", "/api/v1/server"), None).json()["signups"], "closed");
    send_json(s.req("POST", "/api/v1/auth/signup"), &creds("gina", "password123")).assert_error(403, "signups_closed");
}

#[test]
fn deleting_the_account_needs_the_password_and_removes_everything() {
    let s = Server::start();
    let token = s.signup("hank");
    let other = s.signup("ivy");
    assert_eq!(s.upload(&token, "a.wav", &fixture("speech.wav")).status, 201);
    assert_eq!(s.upload(&other, "b.wav", &fixture("speech.wav")).status, 201);
    s.wait_for_jobs();
    assert_eq!(s.files().len(), 2);
    send_json(s.auth("DELETE", "/api/v1/me", &token), &json!({"password": "nope-nope"}))
        .assert_error(401, "invalid_credentials");
    assert_eq!(send_json(s.auth("DELETE", "/api/v1/me", &token), &json!({"password": "password123"})).status, 204);
    send(s.auth("GET", "/api/v1/me", &token), None).assert_error(401, "unauthorized");
    send_json(s.req("POST", "/api/v1/auth/login"), &creds("hank", "password123"))
        .assert_error(401, "invalid_credentials");
    assert_eq!(s.files().len(), 1, "only ivy's file is left: {:?}", s.files());
}

#[test]
fn unknown_routes_and_wrong_methods_answer_json() {
    let s = Server::start();
    send(s.req("GET", "/api/v1/nothing-here"), None).assert_error(404, "not_found");
    send(s.req("GET", "/api/v2/recordings"), None).assert_error(404, "not_found");
    let r = send(s.req("PUT", "/api/v1/auth/login"), None);
    r.assert_error(405, "method_not_allowed");
    assert!(r.header("allow").is_some_and(|a| a.contains("POST")), "{:?}", r.headers);
    send(s.req("DELETE", "/api/v1/server"), None).assert_error(405, "method_not_allowed");
    // A path of its own beside a pattern that also matches it names its own methods only.
    let token = s.signup("allow");
    let r = send(s.auth("PUT", "/api/v1/recordings/archive", &token), None);
    r.assert_error(405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("GET, HEAD"), "{:?}", r.headers);
}

#[test]
fn json_bodies_must_be_objects_not_arrays_of_fields() {
    let s = Server::start();
    // serde reads a struct from an array of its fields in order; the API speaks objects only.
    send_json(s.req("POST", "/api/v1/auth/signup"), &json!(["mallory", "password123"]))
        .assert_error(400, "bad_request");
    send_json(s.req("POST", "/api/v1/auth/login"), &json!(["mallory", "password123"])).assert_error(400, "bad_request");
    let token = s.signup("nadia");
    let id = s.upload_id(&token, "memo.wav", &tone_wav(1, |_, _| 0.3));
    let path = format!("/api/v1/recordings/{id}");
    send_json(s.auth("PATCH", &path, &token), &json!(["renamed.wav"])).assert_error(400, "bad_request");
    let transcript = format!("{path}/transcript");
    send_json(s.auth("PUT", &transcript, &token), &json!([[{"start_ms": 0, "end_ms": 10, "text": "x"}]]))
        .assert_error(400, "bad_request");
    send_json(s.auth("PUT", &transcript, &token), &json!({"segments": [[0, 10, "words"]]}))
        .assert_error(400, "bad_request");
    // Nothing of it was taken: the name is the one it had, and no account was made.
    let recording = send(s.auth("GET", &path, &token), None).json();
    assert_eq!(recording["name"], "memo.wav", "{recording}");
    send_json(s.req("POST", "/api/v1/auth/login"), &json!({"username": "mallory", "password": "password123"}))
        .assert_error(401, "invalid_credentials");
    // The same requests as objects are taken.
    assert_eq!(send_json(s.auth("PATCH", &path, &token), &json!({"name": "renamed.wav"})).status, 200);
    let segments = json!({"segments": [{"start_ms": 0, "end_ms": 10, "text": "words"}]});
    assert_eq!(send_json(s.auth("PUT", &transcript, &token), &segments).status, 200);
}
