//! The original recorder app's API, beside /api/v1 on the same data.

use crate::support::{Server, fixture, send, sha256_hex};
use serde_json::json;

fn old_header(user: &str, token: &str) -> String {
    format!("{user} {token}")
}

#[test]
fn social_login_is_off_by_default() {
    let s = Server::start();
    send(s.req("GET", "/login?social_id=1&social_type=kakao"), None).assert_error(404, "not_found");
}

#[test]
fn social_login_signs_up_then_logs_in() {
    let s = Server::start_with(|c| c.compat.social_login = true);
    let r = send(s.req("GET", "/login?social_id=12345"), None);
    assert_eq!(r.status, 400);
    assert_eq!(r.json(), json!({"error": "social_id or social_type is null."}));
    let first = send(s.req("GET", "/login?social_id=12345&social_type=kakao"), None);
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.json()["user_id"], "kakao_12345");
    let key = first.json()["auth_key"].as_str().expect("auth_key").to_string();
    let again = send(s.req("GET", "/login?social_id=12345&social_type=kakao"), None);
    assert_eq!(again.json()["user_id"], "kakao_12345");
    assert_ne!(again.json()["auth_key"], first.json()["auth_key"]);
    // The key is a v1 token too.
    let me = send(s.auth("GET", "/api/v1/me", &key), None);
    assert_eq!(me.json()["user"]["username"], "kakao_12345");
}

#[test]
fn old_api_and_v1_share_recordings_both_ways() {
    let s = Server::start();
    let token = s.signup("olduser");
    let m4a = fixture("speech.m4a");
    let up = send(
        s.req("PUT", "/upload/record/memo%20one.m4a")
            .set("Authorization", &old_header("olduser", &token))
            .set("Content-Type", "application/octet-stream"),
        Some(&m4a),
    );
    assert_eq!(up.status, 200, "{}", up.text());
    assert_eq!(up.json(), json!({"result": "success"}));
    let v1 = s.upload(&token, "from-v1.wav", &fixture("speech.wav")).json();

    let list = send(s.auth("GET", "/record/list", &token), None);
    assert_eq!(list.status, 200);
    let records = list.json()["records"].as_array().expect("records").clone();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["id"], v1["id"], "newest first");
    assert_eq!(records[1]["file_name"], "memo one.m4a");
    assert_eq!(records[1]["user_id"], "olduser");
    let date = records[1]["created_at"].as_str().expect("date");
    assert!(date.len() == 10 && date.as_bytes()[4] == b'-', "{date}");

    // The old upload plays through v1.
    let old_id = records[1]["id"].as_str().expect("id").to_string();
    let audio = send(s.auth("GET", &format!("/api/v1/recordings/{old_id}/audio"), &token), None);
    assert_eq!(sha256_hex(&audio.body), sha256_hex(&m4a));

    // Deleting through the old API moves to the trash like v1; the reverse shows in the old list.
    let del =
        send(s.req("DELETE", &format!("/record/{old_id}")).set("Authorization", &old_header("olduser", &token)), None);
    assert_eq!(del.json(), json!({"result": "success"}));
    let trash = send(s.auth("GET", "/api/v1/trash", &token), None).json();
    assert_eq!(trash["recordings"][0]["id"], old_id);
    let again =
        send(s.req("DELETE", &format!("/record/{old_id}")).set("Authorization", &old_header("olduser", &token)), None);
    assert_eq!(again.status, 400);
    assert_eq!(again.json(), json!({"result": "fail"}));
    assert_eq!(
        send(s.auth("DELETE", &format!("/api/v1/recordings/{}", v1["id"].as_str().expect("id")), &token), None).status,
        204
    );
    let list = send(s.req("GET", "/record/list").set("Authorization", &old_header("olduser", &token)), None);
    assert_eq!(list.json(), json!({"records": []}));
}

#[test]
fn old_api_errors_have_the_old_shapes() {
    let s = Server::start();
    let token = s.signup("olduser");
    let other = s.signup("someone");
    let r = send(s.req("GET", "/record/list"), None);
    assert_eq!(r.status, 400);
    assert_eq!(r.json(), json!({"error": "Authorization Header is required."}));
    for header in [old_header("olduser", "wrongtoken"), old_header("someone", &token), "Bearer nope".to_string()] {
        let r = send(s.req("GET", "/record/list").set("Authorization", &header), None);
        assert_eq!(r.status, 401, "{header}");
        assert_eq!(r.json(), json!({"error": "Not Authorization"}));
    }
    let bad = send(
        s.req("PUT", "/upload/record/x.mp3").set("Authorization", &old_header("olduser", &token)),
        Some(&fixture("not-audio/page.html")),
    );
    assert_eq!(bad.status, 415);
    assert_eq!(bad.json()["result"], "fail");
    assert!(bad.json()["error"].as_str().is_some_and(|e| !e.is_empty()));
    // Another user's recording cannot be deleted through the old API either.
    let theirs = s.upload_id(&other, "theirs.wav", &fixture("speech.wav"));
    let r =
        send(s.req("DELETE", &format!("/record/{theirs}")).set("Authorization", &old_header("olduser", &token)), None);
    assert_eq!(r.status, 400);
    assert_eq!(send(s.auth("GET", &format!("/api/v1/recordings/{theirs}"), &other), None).status, 200);
}

#[test]
fn compat_can_be_turned_off() {
    let s = Server::start_with(|c| c.compat.enabled = false);
    let token = s.signup("olduser");
    send(s.auth("GET", "/record/list", &token), None).assert_error(404, "not_found");
}
