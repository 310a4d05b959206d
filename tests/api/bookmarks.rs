//! Bookmarks: added, moved, renamed and deleted over the API, counted in list entries, kept
//! through the trash, gone with the recording; and marks made while recording, sent with a
//! one-shot upload (`X-Recording-Marks`) or a tus upload (metadata `marks`), become bookmarks.

use crate::support::*;
use base64::Engine as _;
use serde_json::{Value, json};

fn bookmarks_of(s: &Server, token: &str, id: &str) -> Resp {
    send(s.auth("GET", &format!("/api/v1/recordings/{id}/bookmarks"), token), None)
}

fn at_ms(list: &Value) -> Vec<i64> {
    list["bookmarks"].as_array().expect("bookmarks").iter().map(|b| b["at_ms"].as_i64().expect("at_ms")).collect()
}

fn add(s: &Server, token: &str, id: &str, body: Value) -> Resp {
    send_json(s.auth("POST", &format!("/api/v1/recordings/{id}/bookmarks"), token), &body)
}

/// A recording whose analysis has given it its exact duration (4.179 s).
fn analysed_wav(s: &Server, token: &str) -> String {
    let id = s.upload_id(token, "memo.wav", &fixture("speech.wav"));
    let r = settled(s, token, &id, std::time::Duration::from_secs(30));
    assert_eq!(r["duration_ms"], 4179, "{r}");
    id
}

#[test]
fn bookmarks_are_added_listed_in_order_changed_and_deleted() {
    let s = Server::start();
    let token = s.signup("bob");
    let id = analysed_wav(&s, &token);
    assert_eq!(bookmarks_of(&s, &token, &id).json(), json!({"bookmarks": []}));

    let late = add(&s, &token, &id, json!({"at_ms": 3000, "note": "the decision"}));
    assert_eq!(late.status, 201, "{}", late.text());
    let late = late.json();
    assert_eq!(late["at_ms"], 3000);
    assert_eq!(late["note"], "the decision");
    assert!(late["created_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    let early = add(&s, &token, &id, json!({"at_ms": 500})).json();
    assert_eq!(early["note"], "", "a note is optional");
    assert_eq!(at_ms(&bookmarks_of(&s, &token, &id).json()), vec![500, 3000], "in at_ms order");
    let entry = send(s.auth("GET", &format!("/api/v1/recordings/{id}"), &token), None).json();
    assert_eq!(entry["bookmarks"], 2, "{entry}");
    let listed = list(&s, &token, "/api/v1/recordings");
    assert_eq!(listed[0]["bookmarks"], 2);

    // Moved and renamed.
    let path = format!("/api/v1/recordings/{id}/bookmarks/{}", early["id"].as_str().expect("id"));
    let moved = send_json(s.auth("PATCH", &path, &token), &json!({"at_ms": 4000}));
    assert_eq!(moved.status, 200, "{}", moved.text());
    assert_eq!(moved.json()["at_ms"], 4000);
    let noted = send_json(s.auth("PATCH", &path, &token), &json!({"note": "  the end  "})).json();
    assert_eq!((noted["at_ms"].clone(), noted["note"].clone()), (json!(4000), json!("the end")));
    assert_eq!(at_ms(&bookmarks_of(&s, &token, &id).json()), vec![3000, 4000]);
    send_json(s.auth("PATCH", &path, &token), &json!({})).assert_error(400, "bad_request");
    send_json(s.auth("PATCH", &path, &token), &json!({"note": null})).assert_error(400, "bad_request");
    // A whole number written as a float is the same number; a fraction is refused.
    assert_eq!(send_json(s.auth("PATCH", &path, &token), &json!({"at_ms": 4000.0})).status, 200);
    send_json(s.auth("PATCH", &path, &token), &json!({"at_ms": 4000.5})).assert_error(400, "bad_request");

    // Deleted.
    assert_eq!(send(s.auth("DELETE", &path, &token), None).status, 204);
    send(s.auth("DELETE", &path, &token), None).assert_error(404, "not_found");
    assert_eq!(at_ms(&bookmarks_of(&s, &token, &id).json()), vec![3000]);
}

#[test]
fn bookmarks_are_checked_and_belong_to_their_owner_only() {
    let s = Server::start();
    let token = s.signup("cyd");
    let id = analysed_wav(&s, &token);
    for bad in [
        json!({"at_ms": 4180}),
        json!({"at_ms": -1}),
        json!({"at_ms": 1.5}),
        json!({"at_ms": "100"}),
        json!({"note": "no moment"}),
        json!({"at_ms": 10, "note": "x".repeat(501)}),
        json!({"at_ms": 10, "note": "bell\u{7}"}),
        json!({"at_ms": 10, "colour": "red"}),
        json!({"at_ms": null}),
        json!([{"at_ms": 10}]),
    ] {
        assert_eq!(add(&s, &token, &id, bad.clone()).status, 400, "{bad}");
    }
    // 500 characters, not bytes: a note in Korean fits.
    let korean = "회".repeat(500);
    assert_eq!(add(&s, &token, &id, json!({"at_ms": 4179, "note": korean})).status, 201);

    // Another user sees none of it: 404, as if it did not exist.
    let other = s.signup("dee");
    bookmarks_of(&s, &other, &id).assert_error(404, "not_found");
    add(&s, &other, &id, json!({"at_ms": 10})).assert_error(404, "not_found");
    let mine = bookmarks_of(&s, &token, &id).json();
    let bid = mine["bookmarks"][0]["id"].as_str().expect("id");
    let path = format!("/api/v1/recordings/{id}/bookmarks/{bid}");
    send_json(s.auth("PATCH", &path, &other), &json!({"note": "mine now"})).assert_error(404, "not_found");
    send(s.auth("DELETE", &path, &other), None).assert_error(404, "not_found");
    // A bookmark id under another of the owner's recordings is not found there either.
    let second = s.upload_id(&token, "second.wav", &fixture("speech.wav"));
    send(s.auth("DELETE", &format!("/api/v1/recordings/{second}/bookmarks/{bid}"), &token), None)
        .assert_error(404, "not_found");
    send(s.auth("GET", "/api/v1/recordings/not-an-id/bookmarks", &token), None).assert_error(404, "not_found");
    assert_eq!(bookmarks_of(&s, &token, &id).json()["bookmarks"].as_array().map(Vec::len), Some(1));
}

#[test]
fn marks_sent_with_a_one_shot_upload_become_bookmarks_and_a_recording_holds_at_most_a_thousand() {
    let s = Server::start();
    let token = s.signup("edd");
    let r = send(
        s.auth("POST", "/api/v1/recordings?name=marked.wav", &token).set("X-Recording-Marks", "2500,1000,0"),
        Some(&fixture("speech.wav")),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["bookmarks"], 3);
    let id = r.json()["id"].as_str().expect("id").to_string();
    assert_eq!(at_ms(&bookmarks_of(&s, &token, &id).json()), vec![0, 1000, 2500]);

    // Bad marks refuse the upload; nothing is stored.
    for bad in ["1,x", "-5", "1,,2", "1, 2", &vec!["1"; 1001].join(",")] {
        let r = send(
            s.auth("POST", "/api/v1/recordings?name=bad.wav", &token).set("X-Recording-Marks", bad),
            Some(&fixture("speech.wav")),
        );
        r.assert_error(400, "bad_request");
    }
    assert_eq!(list(&s, &token, "/api/v1/recordings").len(), 1);

    // A thousand marks is the most; one more bookmark is refused.
    let many = (0..1000).map(|i| (i * 4).to_string()).collect::<Vec<_>>().join(",");
    let full = send(
        s.auth("POST", "/api/v1/recordings?name=full.wav", &token).set("X-Recording-Marks", &many),
        Some(&fixture("speech.wav")),
    );
    assert_eq!(full.status, 201, "{}", full.text());
    let full_id = full.json()["id"].as_str().expect("id").to_string();
    assert_eq!(bookmarks_of(&s, &token, &full_id).json()["bookmarks"].as_array().map(Vec::len), Some(1000));
    add(&s, &token, &full_id, json!({"at_ms": 1})).assert_error(409, "too_many");
}

#[test]
fn marks_in_tus_metadata_become_bookmarks_when_the_upload_completes() {
    let s = Server::start();
    let token = s.signup("fay");
    let bytes = fixture("speech.wav");
    let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
    let create = send(
        s.auth("POST", "/api/v1/uploads", &token)
            .set("Tus-Resumable", "1.0.0")
            .set("Upload-Length", &bytes.len().to_string())
            .set("Upload-Metadata", &format!("filename {},marks {}", b64("take.wav"), b64("1200,3400"))),
        None,
    );
    assert_eq!(create.status, 201, "{}", create.text());
    let path = create.header("Location").expect("Location").to_string();
    let half = bytes.len() / 2;
    for (offset, piece) in [(0, &bytes[..half]), (half, &bytes[half..])] {
        let r = send(
            s.auth("PATCH", &path, &token)
                .set("Tus-Resumable", "1.0.0")
                .set("Content-Type", "application/offset+octet-stream")
                .set("Upload-Offset", &offset.to_string()),
            Some(piece),
        );
        assert_eq!(r.status, 204, "{}", r.text());
    }
    let stored = list(&s, &token, "/api/v1/recordings");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["bookmarks"], 2);
    let id = stored[0]["id"].as_str().expect("id");
    assert_eq!(at_ms(&bookmarks_of(&s, &token, id).json()), vec![1200, 3400]);
    // Marks that are not milliseconds refuse the creation.
    let bad = send(
        s.auth("POST", "/api/v1/uploads", &token)
            .set("Tus-Resumable", "1.0.0")
            .set("Upload-Length", "10")
            .set("Upload-Metadata", &format!("marks {}", b64("soon"))),
        None,
    );
    bad.assert_error(400, "bad_request");
}

#[test]
fn bookmarks_go_to_the_trash_and_back_with_their_recording_and_are_changes_in_the_feed() {
    let s = Server::start();
    let token = s.signup("gil");
    let id = analysed_wav(&s, &token);
    let cursor =
        send(s.auth("GET", "/api/v1/changes", &token), None).json()["cursor"].as_str().expect("cursor").to_string();
    assert_eq!(add(&s, &token, &id, json!({"at_ms": 100})).status, 201);
    let feed = send(s.auth("GET", &format!("/api/v1/changes?since={cursor}"), &token), None).json();
    let changes = feed["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 1, "{feed}");
    assert_eq!(changes[0]["type"], "updated");
    assert_eq!(changes[0]["id"], json!(id));
    assert_eq!(changes[0]["recording"]["bookmarks"], 1, "{feed}");

    // In the trash they are kept (and not reachable); restored, they are back.
    assert_eq!(send(s.auth("DELETE", &format!("/api/v1/recordings/{id}"), &token), None).status, 204);
    bookmarks_of(&s, &token, &id).assert_error(404, "not_found");
    assert_eq!(send(s.auth("POST", &format!("/api/v1/trash/{id}/restore"), &token), None).status, 200);
    assert_eq!(at_ms(&bookmarks_of(&s, &token, &id).json()), vec![100]);

    // Deleted for good, they go with it.
    let gone = send(s.auth("DELETE", &format!("/api/v1/recordings/{id}?permanent=true"), &token), None);
    assert_eq!(gone.status, 204);
    let left: i64 =
        s.db().conn().expect("conn").query_row("SELECT COUNT(*) FROM bookmarks", [], |r| r.get(0)).expect("count");
    assert_eq!(left, 0);
}
