//! tus resumable uploads with a real client: tus-js-client (its Node build, `tests/tus/upload.mjs`)
//! uploads a 64 MiB WAV through a proxy of ours that cuts a dozen connections at random points,
//! in request headers and deep in bodies. The client must get through on its own retries, and
//! the recording must exist once, whole, byte for byte. Without Node or the client's package
//! (`npm ci --prefix tests/tus`) the tests say loudly that they skipped, and fail instead when
//! `RECORDER_REQUIRE_TUS_CLIENT=1` (as in CI). `RECORDER_TUS_SEED=<u64>` replays other cuts.

use crate::support::clients::TusClient;
use crate::support::proxy::{Cut, Place, Proxy};
use crate::support::{Server, noise_wav_at, send, sha256_hex};
use rand::Rng as _;
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use rand::seq::SliceRandom as _;
use serde_json::Value;
use std::sync::Mutex;

/// Connections the proxy cuts before it passes everything through.
const CUTS: usize = 12;
/// The WAV's `data` chunk: 64 MiB of 16-bit PCM.
const DATA_BYTES: usize = 64 << 20;
const FILENAME: &str = "long memo.wav";

/// One upload at a time: two 64 MiB uploads and their clients at once on two cores would turn
/// the time limit into a race.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn tus_js_client_survives_cut_connections_in_8_mib_chunks() {
    upload_through_cuts("tus_js_client_survives_cut_connections_in_8_mib_chunks", Some(8 << 20), 0x7e57_c0de_0008);
}

#[test]
fn tus_js_client_survives_cut_connections_in_one_patch() {
    upload_through_cuts("tus_js_client_survives_cut_connections_in_one_patch", None, 0x7e57_c0de_0001);
}

fn upload_through_cuts(test: &str, chunk_size: Option<usize>, default_seed: u64) {
    let Some(client) = TusClient::find(test) else { return };
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let seed = match std::env::var("RECORDER_TUS_SEED") {
        Ok(s) => s.parse().expect("RECORDER_TUS_SEED is a u64"),
        Err(_) => default_seed,
    };
    let why = format!("{test}, seed {seed} (RECORDER_TUS_SEED={seed} replays it)");

    let server = Server::start();
    let token = server.signup("tusclient");
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = noise_wav_at(48_000, DATA_BYTES, seed);
    let file = dir.path().join(FILENAME);
    std::fs::write(&file, &wav).expect("write the WAV");
    let url_storage = dir.path().join("tus-urls.json");

    let proxy = Proxy::with_plan(server.addr(), cut_plan(&mut StdRng::seed_from_u64(seed)));
    let endpoint = format!("http://{}/api/v1/uploads", proxy.addr);

    let mut args = vec!["--endpoint".to_string(), endpoint, "--file".to_string(), file.display().to_string()];
    args.extend(["--url-storage".to_string(), url_storage.display().to_string()]);
    if let Some(size) = chunk_size {
        args.extend(["--chunk-size".to_string(), size.to_string()]);
    }
    let run = client.run(&args, &token);
    let cuts = proxy.cuts();
    let report = run.report();
    assert!(run.status.success() && report["ok"] == true, "{why}: the client failed; {}\n{run}", describe(&cuts));

    // The cuts were made, where they were meant to be, and the client really went through them.
    assert!(cuts.len() >= CUTS, "{why}: the proxy made only {} cuts:{}\n{run}", cuts.len(), describe(&cuts));
    assert!(
        cuts.iter().any(|c| matches!(c.place, Place::Headers(_))),
        "{why}: no cut in request headers:{}",
        describe(&cuts)
    );
    assert!(
        cuts.iter().any(|c| matches!(c.place, Place::Body(_, at) if at >= 1 << 20)),
        "{why}: no cut deep in a body:{}",
        describe(&cuts)
    );
    let retries = report["retries"].as_u64().expect("retries");
    assert!(retries >= CUTS as u64, "{why}: {} cuts but the client retried {retries} times\n{run}", cuts.len());
    // A retry went on from where the server had got to, not from the start.
    let resumed = report["resumed_at"].as_array().expect("resumed_at");
    assert!(
        resumed.iter().any(|o| o.as_u64().is_some_and(|o| o > 0)),
        "{why}: after every cut the client started over at offset 0: the server kept nothing of a \
         cut PATCH; resumed at {resumed:?}\n{run}"
    );
    // One upload resource, created once; its URL is forgotten by the client once done.
    let created =
        server.seen().iter().filter(|s| s.method == "POST" && s.path == "/api/v1/uploads" && s.status == 201).count();
    assert_eq!(created, 1, "{why}: {created} upload resources created\n{run}");
    let stored: Value =
        serde_json::from_slice(&std::fs::read(&url_storage).expect("the client's URL storage")).expect("JSON");
    let kept: Vec<&String> = stored.as_object().expect("object").keys().filter(|k| k.starts_with("tus::")).collect();
    assert!(kept.is_empty(), "{why}: removeFingerprintOnSuccess left {kept:?}");

    // Exactly one recording, the very bytes.
    let list = send(server.auth("GET", "/api/v1/recordings", &token), None);
    assert_eq!(list.status, 200, "{}", list.text());
    let list = list.json();
    let recordings = list["recordings"].as_array().expect("recordings");
    assert_eq!(recordings.len(), 1, "{why}: {list}");
    let rec = &recordings[0];
    assert_eq!(rec["size"].as_u64(), Some(wav.len() as u64), "{why}: {rec}");
    assert_eq!(rec["sha256"].as_str(), Some(sha256_hex(&wav).as_str()), "{why}: {rec}");
    assert_eq!(rec["content_type"], "audio/wav", "{why}: {rec}");
    assert_eq!(rec["name"], FILENAME, "{why}: {rec}");
    let id = rec["id"].as_str().expect("id");
    let audio = send(server.auth("GET", &format!("/api/v1/recordings/{id}/audio"), &token), None);
    assert_eq!(audio.status, 200, "{why}: {}", audio.text());
    assert_eq!(audio.body.len(), wav.len(), "{why}: audio length");
    assert!(audio.body == wav, "{why}: the audio differs from the source");

    // The upload resource (asked of the server directly) points at that recording.
    let url = report["url"].as_str().expect("url");
    let path = url.strip_prefix(&format!("http://{}", proxy.addr)).expect("the upload URL is on the endpoint's origin");
    assert!(path.starts_with("/api/v1/uploads/"), "{why}: upload URL {url}");
    let upload = send(server.auth("GET", path, &token).set("Accept", "application/json"), None);
    assert_eq!(upload.status, 200, "{why}: {}", upload.text());
    assert_eq!(upload.json()["recording"]["id"], id, "{why}: {}", upload.text());
}

/// Where the proxy cuts, in random order: each entry is a number of bytes from the client since
/// the previous cut (or the start), over whatever connections carry them. After a cut the client
/// sends a new request, so small entries land in its headers, middling ones around its end or
/// early in a body, big ones deep in a body, up to past an 8 MiB chunk. They add up to well under
/// the file, so the upload cannot finish before every cut is made, whatever the server keeps of
/// a cut request and however the client spreads its requests over connections.
fn cut_plan(rng: &mut StdRng) -> Vec<u64> {
    let mut plan = Vec::with_capacity(CUTS);
    plan.extend((0..3).map(|_| rng.gen_range(0..200)));
    plan.extend((0..3).map(|_| rng.gen_range(200..64 << 10)));
    plan.extend((0..3).map(|_| rng.gen_range(64 << 10..2 << 20)));
    plan.extend((0..3).map(|_| rng.gen_range(2 << 20..=12 << 20)));
    plan.shuffle(rng);
    assert!(plan.iter().sum::<u64>() < DATA_BYTES as u64);
    plan
}

/// The cuts, one a line.
fn describe(cuts: &[Cut]) -> String {
    cuts.iter().map(|c| format!("\n  {c}")).collect()
}
