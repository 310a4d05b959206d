//! Transcripts and search by what was said.
//!
//! Without a model: transcripts written or corrected by hand (`PUT`), their formats, the full-text
//! search over them, and the errors. With the real model (a build with `--features transcription`,
//! `RECORDER_TEST_WHISPER_MODEL` naming a CTranslate2 Whisper directory and
//! `RECORDER_TEST_LIBRIVOX` the LibriVox test recordings of Debian's pocketsphinx-testdata, as
//! `.ci/run` provides): word error rate, a long recording windowed without losing sentences,
//! search by a word only the audio holds, corrections surviving a new transcription, deletion
//! in the middle of one. Those say loudly that they skipped, and fail instead when
//! `RECORDER_REQUIRE_TRANSCRIPTION=1` (as in CI).

use crate::support::process::{recorder, run};
use crate::support::transcription::{librivox, real_model, with_model};
use crate::support::{Resp, Server, pcm_wav, send, send_json, sine_wav, urlencode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn put_segments(server: &Server, token: &str, id: &str, segments: &Value) -> Resp {
    send_json(
        server.auth("PUT", &format!("/api/v1/recordings/{id}/transcript"), token),
        &json!({ "segments": segments }),
    )
}

fn search(server: &Server, token: &str, q: &str, extra: &str) -> Value {
    let r = send(server.auth("GET", &format!("/api/v1/recordings?q={}{extra}", urlencode(q)), token), None);
    assert_eq!(r.status, 200, "search {q}: {}", r.text());
    r.json()
}

fn ids(page: &Value) -> Vec<String> {
    page["recordings"]
        .as_array()
        .map_or(Vec::new(), |a| a.iter().filter_map(|r| r["id"].as_str().map(str::to_string)).collect())
}

#[test]
fn hand_written_transcripts_are_served_in_every_format_and_searchable() {
    let server = Server::start();
    let alice = server.signup("alice");
    let id = server.upload_id(&alice, "meeting.wav", &sine_wav(3.0));
    let recording = send(server.auth("GET", &format!("/api/v1/recordings/{id}"), &alice), None).json();
    assert_eq!(recording["transcript"], "off", "no model: transcription is off");
    let none = send(server.auth("GET", &format!("/api/v1/recordings/{id}/transcript"), &alice), None);
    none.assert_error(404, "not_found");
    assert!(none.text().contains("off"), "{}", none.text());

    let segments = json!([
        {"start_ms": 0, "end_ms": 1200, "text": "Le café était fermé."},
        {"start_ms": 1200, "end_ms": 2900, "text": "We spoke about the telescope --> and the stars."}
    ]);
    let saved = put_segments(&server, &alice, &id, &segments);
    assert_eq!(saved.status, 200, "{}", saved.text());
    let saved = saved.json();
    assert_eq!(saved["edited"], true);
    assert_eq!(saved["text"], "Le café était fermé. We spoke about the telescope --> and the stars.");
    let recording = send(server.auth("GET", &format!("/api/v1/recordings/{id}"), &alice), None).json();
    assert_eq!(recording["transcript"], "ready");

    let got = send(server.auth("GET", &format!("/api/v1/recordings/{id}/transcript"), &alice), None).json();
    assert_eq!(got["segments"], segments);
    // A correction of a ready transcript is a change of the recording, for apps that mirror.
    let cursor =
        send(server.auth("GET", "/api/v1/changes", &alice), None).json()["cursor"].as_str().unwrap_or("").to_string();
    let fixed = json!([{"start_ms": 0, "end_ms": 2900, "text": "Fixed."}]);
    assert_eq!(put_segments(&server, &alice, &id, &fixed).status, 200);
    let changes =
        send(server.auth("GET", &format!("/api/v1/changes?since={}", urlencode(&cursor)), &alice), None).json();
    assert_eq!(changes["changes"][0]["type"], "updated", "{changes}");
    assert_eq!(changes["changes"][0]["id"], id.as_str());
    assert_eq!(put_segments(&server, &alice, &id, &segments).status, 200);
    let txt = send(server.auth("GET", &format!("/api/v1/recordings/{id}/transcript?format=txt"), &alice), None);
    assert_eq!(txt.status, 200);
    assert!(txt.header("content-type").is_some_and(|c| c.starts_with("text/plain")));
    assert!(txt.header("content-disposition").is_some_and(|c| c.contains("meeting.txt")));
    assert_eq!(txt.text(), "Le café était fermé.\nWe spoke about the telescope --> and the stars.\n");
    let srt = send(server.auth("GET", &format!("/api/v1/recordings/{id}/transcript?format=srt"), &alice), None).text();
    assert!(
        srt.starts_with("1\n00:00:00,000 --> 00:00:01,200\nLe café était fermé.\n\n2\n00:00:01,200 --> 00:00:02,900\n"),
        "{srt}"
    );
    let vtt = send(server.auth("GET", &format!("/api/v1/recordings/{id}/transcript?format=vtt"), &alice), None).text();
    assert!(vtt.starts_with("WEBVTT\n\n00:00:00.000 --> 00:00:01.200\n"), "{vtt}");
    assert!(vtt.contains("telescope -> and"), "a cue's text cannot hold -->: {vtt}");
    send(server.auth("GET", &format!("/api/v1/recordings/{id}/transcript?format=doc"), &alice), None)
        .assert_error(400, "bad_request");

    // Search: a word prefix, without its accents or case, finds the segment and its time.
    for q in ["telesc", "CAFE", "etait ferm", "stars"] {
        let page = search(&server, &alice, q, "");
        assert_eq!(ids(&page), vec![id.clone()], "q={q}: {page}");
        let found = &page["recordings"][0]["match"];
        assert_eq!(found["field"], "transcript", "q={q}");
        let start = if q == "telesc" || q == "stars" { 1200 } else { 0 };
        assert_eq!(found["start_ms"], start, "q={q}");
        assert!(found["snippet"].as_str().is_some_and(|s| !s.is_empty()));
    }
    // Both words must be in one segment.
    assert!(ids(&search(&server, &alice, "cafe telescope", "")).is_empty());
    assert!(ids(&search(&server, &alice, "planet", "")).is_empty());
    // The name still matches as a substring, and says so.
    let by_name = search(&server, &alice, "eeting", "");
    assert_eq!(ids(&by_name), vec![id.clone()]);
    assert_eq!(by_name["recordings"][0]["match"]["field"], "name");
    assert_eq!(by_name["recordings"][0]["match"]["start_ms"], Value::Null);
    // A plain list has no `match`.
    let plain = send(server.auth("GET", "/api/v1/recordings", &alice), None).json();
    assert!(plain["recordings"][0].get("match").is_none());

    // Another user finds nothing of alice's, and cannot read or write her transcript.
    let bob = server.signup("bob");
    assert!(ids(&search(&server, &bob, "telescope", "")).is_empty());
    send(server.auth("GET", &format!("/api/v1/recordings/{id}/transcript"), &bob), None).assert_error(404, "not_found");
    put_segments(&server, &bob, &id, &segments).assert_error(404, "not_found");

    // In the trash it is not found; restored, it is again; deleted, its words are gone.
    assert_eq!(send(server.auth("DELETE", &format!("/api/v1/recordings/{id}"), &alice), None).status, 204);
    assert!(ids(&search(&server, &alice, "telescope", "")).is_empty());
    assert_eq!(send(server.auth("POST", &format!("/api/v1/trash/{id}/restore"), &alice), None).status, 200);
    assert_eq!(ids(&search(&server, &alice, "telescope", "")), vec![id.clone()]);
    assert_eq!(
        send(server.auth("DELETE", &format!("/api/v1/recordings/{id}?permanent=true"), &alice), None).status,
        204
    );
    let rows: i64 = server
        .db()
        .conn()
        .and_then(|c| c.query_row("SELECT count(*) FROM transcript_fts", [], |r| r.get(0)).map_err(Into::into))
        .unwrap_or(-1);
    assert_eq!(rows, 0, "a deleted recording's words leave the index");
}

#[test]
fn corrections_are_checked_and_retry_needs_a_model() {
    let server = Server::start();
    let alice = server.signup("alice");
    let id = server.upload_id(&alice, "a.wav", &sine_wav(1.0));
    for bad in [
        json!([{"start_ms": 500, "end_ms": 100, "text": "backwards"}]),
        json!([{"start_ms": 500, "end_ms": 900, "text": "b"}, {"start_ms": 100, "end_ms": 200, "text": "a"}]),
        json!([{"start_ms": -1, "end_ms": 100, "text": "negative"}]),
        json!([{"start_ms": 0, "end_ms": 100, "text": "bell \u{7}"}]),
        json!([{"start_ms": 0, "end_ms": 100}]),
    ] {
        put_segments(&server, &alice, &id, &bad).assert_error(400, "bad_request");
    }
    let long = "x".repeat(2001);
    put_segments(&server, &alice, &id, &json!([{"start_ms": 0, "end_ms": 1, "text": long}]))
        .assert_error(400, "bad_request");
    let not_json = send(
        server.auth("PUT", &format!("/api/v1/recordings/{id}/transcript"), &alice).set("Content-Type", "text/plain"),
        Some(b"hello"),
    );
    not_json.assert_error(415, "unsupported_media_type");
    // An unknown field is refused; a whole number written with a point is a whole number.
    put_segments(&server, &alice, &id, &json!([{"start_ms": 0, "end_ms": 1, "text": "a", "speaker": 2}]))
        .assert_error(400, "bad_request");
    put_segments(&server, &alice, &id, &json!([{"start_ms": 0, "end_ms": 1.5, "text": "a"}]))
        .assert_error(400, "bad_request");
    let pointed = put_segments(&server, &alice, &id, &json!([{"start_ms": 5794.0, "end_ms": 6000, "text": "a"}]));
    assert_eq!(pointed.status, 200, "{}", pointed.text());
    assert_eq!(pointed.json()["segments"][0]["start_ms"], 5794);
    // Control characters in a search are searched for, not an error.
    let odd = send(server.auth("GET", "/api/v1/recordings?q=%15%1E%03%00n%5ESoe", &alice), None);
    assert_eq!(odd.status, 200, "{}", odd.text());
    // An empty transcript is a transcript: nothing said.
    assert_eq!(put_segments(&server, &alice, &id, &json!([])).status, 200);
    let retry = send(server.auth("POST", &format!("/api/v1/recordings/{id}/transcript/retry"), &alice), None);
    retry.assert_error(409, "transcription_off");
    let missing = "01890000-0000-7000-8000-000000000000";
    put_segments(&server, &alice, missing, &json!([])).assert_error(404, "not_found");
}

#[test]
fn search_results_page_newest_first_without_repeats() {
    let server = Server::start();
    let alice = server.signup("alice");
    let mut made = Vec::new();
    for i in 0..5 {
        let id = server.upload_id(&alice, &format!("memo {i}.wav"), &sine_wav(0.5));
        let words = if i % 2 == 0 { "the harbour at dawn" } else { "nothing to see" };
        assert_eq!(
            put_segments(&server, &alice, &id, &json!([{"start_ms": 0, "end_ms": 400, "text": words}])).status,
            200
        );
        made.push(id);
    }
    // One more whose name holds the word, not its transcript.
    let named = server.upload_id(&alice, "harbour plans.wav", &sine_wav(0.5));
    let expected: Vec<String> = vec![named.clone(), made[4].clone(), made[2].clone(), made[0].clone()];
    let mut seen = Vec::new();
    let mut cursor = String::new();
    for _ in 0..5 {
        let page = search(&server, &alice, "harb", &format!("&limit=2{cursor}"));
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={}", urlencode(next)),
            None => break,
        }
    }
    assert_eq!(seen, expected, "newest first, each once, across pages");
    let oldest = search(&server, &alice, "harb", "&order=oldest");
    let mut reversed = expected.clone();
    reversed.reverse();
    assert_eq!(ids(&oldest), reversed);
}

#[test]
fn a_model_that_cannot_be_used_stops_startup_with_a_clear_line() {
    let home = tempfile::tempdir().expect("tempdir");
    let data = home.path().join("data");
    // Not a model directory at all, then one whose model.bin is damaged.
    let missing = home.path().join("no-such-model");
    let broken = home.path().join("broken-model");
    std::fs::create_dir_all(&broken).expect("mkdir");
    std::fs::write(broken.join("model.bin"), vec![7u8; 4096]).expect("write");
    std::fs::write(broken.join("config.json"), "{}").expect("write");
    std::fs::write(broken.join("vocabulary.txt"), "<|endoftext|>\n<|startoftranscript|>\n<|notimestamps|>\n<|0.00|>\n")
        .expect("write");
    for model in [&missing, &broken] {
        let mut cmd = recorder(home.path());
        cmd.arg("--data-dir").arg(&data).arg("--port").arg("0").env("RECORDER_TRANSCRIPTION_MODEL", model);
        let (code, _, stderr) = run(cmd, "");
        assert_eq!(code, 2, "a bad model is bad configuration: {stderr}");
        assert!(stderr.contains("transcription"), "{stderr}");
        assert!(stderr.contains(&model.display().to_string()) || !recorder::transcription::BUILT, "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // `recorder transcribe` without a model says what to set.
    let mut cmd = recorder(home.path());
    cmd.arg("transcribe").arg(home.path().join("x.wav"));
    let (code, _, stderr) = run(cmd, "");
    assert_eq!(code, 2);
    assert!(stderr.contains("transcription.model"), "{stderr}");
}

// ---- With the real model ----

/// Lower case, no punctuation, hyphens as spaces, "Mr." as "mister".
fn normalize(text: &str) -> Vec<String> {
    text.to_lowercase()
        .replace('-', " ")
        .split_whitespace()
        .map(|w| w.chars().filter(|c| c.is_alphanumeric() || *c == '\'').collect::<String>())
        .filter(|w| !w.is_empty())
        .map(|w| match w.as_str() {
            "mr" => "mister".to_string(),
            "mrs" => "missus".to_string(),
            _ => w,
        })
        .collect()
}

/// Word-level edit distance.
fn edits(reference: &[String], heard: &[String]) -> usize {
    let mut row: Vec<usize> = (0..=heard.len()).collect();
    for (i, r) in reference.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, h) in heard.iter().enumerate() {
            let cost = if r == h { prev } else { prev + 1 };
            prev = row[j + 1];
            row[j + 1] = cost.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[heard.len()]
}

/// Waits for a recording's transcript to be ready (or failed) and returns the recording.
fn transcribed(server: &Server, token: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let r = send(server.auth("GET", &format!("/api/v1/recordings/{id}"), token), None).json();
        if r["transcript"] == "ready" || r["transcript"] == "failed" {
            return r;
        }
        assert!(Instant::now() < deadline, "no transcript within 5 minutes: {r}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn transcript(server: &Server, token: &str, id: &str) -> Value {
    let r = send(server.auth("GET", &format!("/api/v1/recordings/{id}/transcript"), token), None);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn samples_of(wav: &[u8]) -> Vec<i16> {
    let at = wav.windows(4).position(|w| w == b"data").expect("data chunk") + 8;
    wav[at..].chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
}

#[test]
fn librivox_is_transcribed_under_ten_percent_word_error_rate() {
    let Some((model, dir)) = real_model("librivox_is_transcribed_under_ten_percent_word_error_rate") else { return };
    let server = with_model(&model);
    let alice = server.signup("alice");
    let files = librivox(&dir);
    let ids: Vec<String> = files
        .iter()
        .map(|(path, _)| {
            let bytes = std::fs::read(path).expect("librivox wav");
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            server.upload_id(&alice, &name, &bytes)
        })
        .collect();
    let (mut errors, mut words) = (0, 0);
    for ((_, reference), id) in files.iter().zip(&ids) {
        let recording = transcribed(&server, &alice, id);
        assert_eq!(recording["transcript"], "ready", "{recording}");
        let t = transcript(&server, &alice, id);
        assert_eq!(t["language"], "en");
        assert_eq!(t["edited"], false);
        let (r, h) = (normalize(reference), normalize(t["text"].as_str().unwrap_or("")));
        let e = edits(&r, &h);
        eprintln!("{e} errors in {} words: {:?}", r.len(), t["text"]);
        errors += e;
        words += r.len();
    }
    let wer = errors as f64 / words as f64;
    eprintln!("word error rate over {words} words: {:.1}%", wer * 100.0);
    assert!(wer < 0.10, "word error rate {:.1}% (limit 10%)", wer * 100.0);
}

#[test]
fn a_long_recording_keeps_every_sentence_in_order_and_search_finds_the_moment() {
    let test = "a_long_recording_keeps_every_sentence_in_order_and_search_finds_the_moment";
    let Some((model, dir)) = real_model(test) else { return };
    let server = with_model(&model);
    let alice = server.signup("alice");
    // The five recordings three times over, half a second apart: 74 s, past two windows.
    let files = librivox(&dir);
    let silence = vec![0i16; 8000];
    let mut samples = Vec::new();
    let mut reference = Vec::new();
    let mut amiable_at_ms = None;
    for _ in 0..3 {
        for (path, text) in &files {
            if amiable_at_ms.is_none() && text.contains("amiable") {
                amiable_at_ms = Some(samples.len() as i64 / 16);
            }
            samples.extend(samples_of(&std::fs::read(path).expect("wav")));
            samples.extend(&silence);
            reference.extend(normalize(text));
        }
    }
    let total_ms = samples.len() as i64 / 16;
    assert!(total_ms > 60_000);
    let id = server.upload_id(&alice, "reading.wav", &pcm_wav(16_000, &samples));
    let recording = transcribed(&server, &alice, &id);
    assert_eq!(recording["transcript"], "ready", "{recording}");
    let t = transcript(&server, &alice, &id);
    let segments = t["segments"].as_array().cloned().unwrap_or_default();
    let heard = normalize(t["text"].as_str().unwrap_or(""));
    let wer = edits(&reference, &heard) as f64 / reference.len() as f64;
    eprintln!("{} segments, word error rate {:.1}%: {}", segments.len(), wer * 100.0, t["text"]);
    assert!(wer < 0.12, "sentences were lost or garbled at window edges: {:.1}%", wer * 100.0);
    // Every sentence is there, each time.
    for needle in ["dashwood", "selfish", "respectable", "himself"] {
        assert_eq!(heard.iter().filter(|w| w.as_str() == needle).count(), 3, "{needle} three times: {heard:?}");
    }
    let mut previous_start = -1;
    for s in &segments {
        let (start, end) = (s["start_ms"].as_i64().unwrap_or(-1), s["end_ms"].as_i64().unwrap_or(-1));
        assert!(start >= previous_start && end >= start && end <= total_ms + 1000, "times go forward: {s}");
        previous_start = start;
    }
    assert!(segments.last().and_then(|s| s["end_ms"].as_i64()).is_some_and(|e| e > total_ms - 10_000));

    // A word only the audio holds finds it, at the segment where it is first said.
    let page = search(&server, &alice, "amiable", "");
    assert_eq!(ids(&page), vec![id.clone()], "{page}");
    let hit = &page["recordings"][0]["match"];
    assert_eq!(hit["field"], "transcript");
    let said_at = amiable_at_ms.unwrap_or(0);
    let start = hit["start_ms"].as_i64().unwrap_or(-1);
    assert!(
        start <= said_at + 500 && start >= said_at - 8000,
        "first 'amiable' is said at {said_at} ms; the hit starts at {start}"
    );
    assert!(hit["snippet"].as_str().is_some_and(|s| s.to_lowercase().contains("amiable")), "{hit}");
}

#[test]
fn corrections_survive_a_new_transcription() {
    let Some((model, dir)) = real_model("corrections_survive_a_new_transcription") else { return };
    let server = with_model(&model);
    let alice = server.signup("alice");
    let (path, _) = &librivox(&dir)[1];
    let id = server.upload_id(&alice, "short.wav", &std::fs::read(path).expect("wav"));
    assert_eq!(transcribed(&server, &alice, &id)["transcript"], "ready");
    let mine = json!([{"start_ms": 0, "end_ms": 2990, "text": "He was not an ill-disposed young man."}]);
    assert_eq!(put_segments(&server, &alice, &id, &mine).status, 200);
    let retry = send(server.auth("POST", &format!("/api/v1/recordings/{id}/transcript/retry"), &alice), None);
    assert_eq!(retry.status, 202, "{}", retry.text());
    assert_eq!(retry.json()["transcript"], "pending");
    // While it runs again, the corrected one is served.
    assert_eq!(transcript(&server, &alice, &id)["segments"], mine);
    assert_eq!(transcribed(&server, &alice, &id)["transcript"], "ready");
    let after = transcript(&server, &alice, &id);
    assert_eq!(after["segments"], mine);
    assert_eq!(after["edited"], true);
    assert_eq!(after["language"], "en", "the model's run is recorded beside the corrections");
    assert_eq!(ids(&search(&server, &alice, "disposed", "")), vec![id]);
}

#[test]
fn a_recording_deleted_while_it_is_transcribed_leaves_nothing() {
    let Some((model, dir)) = real_model("a_recording_deleted_while_it_is_transcribed_leaves_nothing") else { return };
    let server = with_model(&model);
    let alice = server.signup("alice");
    let mut samples = Vec::new();
    for _ in 0..6 {
        for (path, _) in librivox(&dir) {
            samples.extend(samples_of(&std::fs::read(path).expect("wav")));
        }
    }
    let id = server.upload_id(&alice, "doomed.wav", &pcm_wav(16_000, &samples));
    let db = server.db();
    let running = || -> bool {
        db.conn()
            .and_then(|c| {
                c.query_row("SELECT count(*) FROM jobs WHERE kind = 'transcription' AND state = 'running'", [], |r| {
                    r.get::<_, i64>(0)
                })
                .map_err(Into::into)
            })
            .unwrap_or(0)
            > 0
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while !running() {
        assert!(Instant::now() < deadline, "the transcription never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = send(server.auth("DELETE", &format!("/api/v1/recordings/{id}?permanent=true"), &alice), None);
    assert_eq!(r.status, 204);
    // The worker notices between windows and lets go.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left: (i64, i64, i64) = db
            .conn()
            .and_then(|c| {
                c.query_row(
                    "SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM transcripts), (SELECT count(*) FROM transcript_fts)",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .map_err(Into::into)
            })
            .unwrap_or((-1, -1, -1));
        if left == (0, 0, 0) && !running() {
            break;
        }
        assert!(Instant::now() < deadline, "left behind (jobs, transcripts, index rows): {left:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // And nothing is written for it afterwards: the worker takes one job at a time, so once the
    // next recording's transcript is written, anything left of the deleted one's would be too.
    let (path, _) = &librivox(&dir)[1];
    let next = server.upload_id(&alice, "next.wav", &std::fs::read(path).expect("wav"));
    assert_eq!(transcribed(&server, &alice, &next)["transcript"], "ready");
    let rows: i64 = db
        .conn()
        .and_then(|c| c.query_row("SELECT count(*) FROM transcripts", [], |r| r.get(0)).map_err(Into::into))
        .unwrap_or(-1);
    assert_eq!(rows, 1, "only the next recording's transcript");
    assert!(ids(&search(&server, &alice, "dashwood", "")).iter().all(|hit| *hit == next));
}

#[test]
fn recordings_stored_before_the_model_are_transcribed_once_it_is_configured() {
    let test = "recordings_stored_before_the_model_are_transcribed_once_it_is_configured";
    let Some((model, dir)) = real_model(test) else { return };
    let data = tempfile::tempdir().expect("tempdir");
    let data_dir = data.path().join("data");
    let (path, _) = &librivox(&dir)[0];
    let (token, id) = {
        let first = data_dir.clone();
        let server = Server::start_with(move |c| c.storage.data_dir = first);
        let token = server.signup("alice");
        let id = server.upload_id(&token, "earlier.wav", &std::fs::read(path).expect("wav"));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = send(server.auth("GET", &format!("/api/v1/recordings/{id}"), &token), None).json();
            if r["waveform"] == "ready" {
                assert_eq!(r["transcript"], "off", "no model yet");
                break;
            }
            assert!(Instant::now() < deadline, "not analysed: {r}");
            std::thread::sleep(Duration::from_millis(50));
        }
        (token, id)
    };
    // The same data directory, now with a model: the earlier recording is queued and transcribed.
    let second = data_dir.clone();
    let server = Server::start_with(move |c| {
        c.storage.data_dir = second;
        c.transcription.model = Some(model);
    });
    assert_eq!(transcribed(&server, &token, &id)["transcript"], "ready");
    let text = transcript(&server, &token, &id)["text"].as_str().unwrap_or("").to_lowercase();
    assert!(text.contains("dashwood"), "{text}");
}

#[test]
fn the_transcribe_command_prints_what_was_said_with_times() {
    let Some((model, dir)) = real_model("the_transcribe_command_prints_what_was_said_with_times") else { return };
    let home = tempfile::tempdir().expect("tempdir");
    let (path, _) = &librivox(&dir)[0];
    let mut cmd = recorder(home.path());
    cmd.arg("transcribe").arg(path).env("RECORDER_TRANSCRIPTION_MODEL", &model);
    let (code, stdout, stderr) = run(cmd, "");
    assert_eq!(code, 0, "{stderr}");
    let first = stdout.lines().next().unwrap_or("");
    assert!(first.starts_with("[00:00.0 → "), "a timed segment a line: {stdout}");
    assert!(stdout.to_lowercase().contains("dashwood"), "{stdout}");
    assert!(stderr.contains("language en"), "{stderr}");
}
