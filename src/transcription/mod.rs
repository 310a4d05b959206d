//! Transcripts: what was said in a recording, as timed segments, and search by it.
//!
//! With the `transcription` cargo feature and `transcription.model` set, every recording is
//! transcribed after its analysis by a job on the durable queue (`jobs.rs`), in its own
//! `SCHED_IDLE` worker thread (`worker.rs`) so a long transcription never holds up analysis. The
//! model runs here, on the user's own machine (`whisper.rs`); nothing leaves it.
//!
//! Storage: a `transcripts` row per recording holds the model's segments and the user's
//! corrections (served instead, and kept when the model runs again); the served segments are
//! indexed in `transcript_fts` (FTS5), one row per segment, for `q` on the list.

pub mod index;
pub mod text;

#[cfg(feature = "transcription")]
pub mod mel;
#[cfg(feature = "transcription")]
pub mod resample;
#[cfg(feature = "transcription")]
pub mod whisper;
#[cfg(feature = "transcription")]
pub mod worker;

use crate::error::Error;
use crate::jobs::TRANSCRIPTION as JOB;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Segments one transcript may have (a corrected one too).
pub const MAX_SEGMENTS: usize = 20_000;
/// Characters one segment's text may have.
pub const MAX_SEGMENT_CHARS: usize = 2_000;

/// A stretch of speech and its words. Read from a JSON object only (never from an array of its
/// fields, which serde would otherwise take for a struct).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "serde_json::Map<String, serde_json::Value>")]
pub struct Segment {
    pub start_ms: i64,
    pub end_ms: i64,
    pub text: String,
}

/// A segment's fields as they are read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SegmentFields {
    #[serde(deserialize_with = "whole_number")]
    start_ms: i64,
    #[serde(deserialize_with = "whole_number")]
    end_ms: i64,
    text: String,
}

impl TryFrom<serde_json::Map<String, serde_json::Value>> for Segment {
    type Error = serde_json::Error;

    fn try_from(object: serde_json::Map<String, serde_json::Value>) -> Result<Segment, serde_json::Error> {
        let SegmentFields { start_ms, end_ms, text } = serde_json::from_value(serde_json::Value::Object(object))?;
        Ok(Segment { start_ms, end_ms, text })
    }
}

/// A JSON integer, written as one (`1200`) or as a number with nothing after the point
/// (`1200.0`), which JSON Schema's `integer` also is.
fn whole_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let n = serde_json::Number::deserialize(deserializer)?;
    const MAX: i64 = 9_007_199_254_740_991;
    if let Some(i) = n.as_i64() {
        if i.abs() > MAX {
            return Err(serde::de::Error::custom(format!("{i} is over {MAX} milliseconds")));
        }
        return Ok(i);
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_991.0 => Ok(f as i64),
        _ => Err(serde::de::Error::custom(format!("{n} is not a whole number of milliseconds"))),
    }
}

/// A model's transcript of one recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    pub language: String,
    pub model: String,
    pub segments: Vec<Segment>,
}

impl Transcript {
    pub fn text(&self) -> String {
        join_text(&self.segments)
    }
}

/// The segments' words as one text.
pub fn join_text(segments: &[Segment]) -> String {
    segments.iter().map(|s| s.text.trim()).filter(|t| !t.is_empty()).collect::<Vec<_>>().join(" ")
}

/// What the worker needs from the config; `None` when transcription is off.
/// `[transcription]`: the local Whisper model.
#[derive(Debug, Clone)]
pub struct TranscriptionConfig {
    /// A CTranslate2 Whisper model directory; `None`: transcription is off.
    pub model: Option<PathBuf>,
    /// A language code, or `None` to detect it (multilingual models).
    pub language: Option<String>,
    /// CPU threads the model may use.
    pub threads: usize,
    /// Run the model in int8 (else float32; `compute`).
    pub int8: bool,
    /// Recordings longer than this are not transcribed.
    pub max_minutes: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub model: PathBuf,
    /// A language code, or `None` to detect it (multilingual models).
    pub language: Option<String>,
    pub threads: usize,
    pub int8: bool,
    /// Recordings longer than this are not transcribed (their transcript fails with the reason).
    pub max_ms: i64,
}

impl Settings {
    pub fn from_config(config: &TranscriptionConfig) -> Option<Settings> {
        let model = config.model.clone()?;
        Some(Settings {
            model,
            language: config.language.clone(),
            threads: config.threads,
            int8: config.int8,
            max_ms: i64::from(config.max_minutes) * 60_000,
        })
    }

    #[cfg(feature = "transcription")]
    pub fn options(&self) -> whisper::Options {
        whisper::Options {
            threads: self.threads,
            int8: self.int8,
            language: self.language.clone(),
            ..whisper::Options::default()
        }
    }
}

/// Whether this build can transcribe.
pub const BUILT: bool = cfg!(feature = "transcription");

/// At startup: a configured model must load (a clear error, not a crash at the first job).
pub fn check_model(config: &TranscriptionConfig) -> Result<(), String> {
    let Some(settings) = Settings::from_config(config) else { return Ok(()) };
    #[cfg(feature = "transcription")]
    {
        whisper::Model::load(&settings.model, settings.options()).map(drop)
    }
    #[cfg(not(feature = "transcription"))]
    {
        Err(format!(
            "transcription.model is set ({}), but this build has no transcription: build with `--features transcription`",
            settings.model.display()
        ))
    }
}

/// A transcript as stored: the served segments and where they came from.
#[derive(Debug, Clone, Serialize)]
pub struct Stored {
    pub language: String,
    pub model: String,
    pub text: String,
    pub segments: Vec<Segment>,
    /// The segments are the user's corrections.
    pub edited: bool,
    pub updated_at: String,
}

fn parse_segments(json: &str) -> Vec<Segment> {
    serde_json::from_str(json).unwrap_or_default()
}

/// A recording's transcript, if it has one.
pub fn get(conn: &Connection, recording_id: &str) -> Result<Option<Stored>, Error> {
    let row = conn
        .query_row(
            "SELECT language, model, segments, edited, updated_at FROM transcripts WHERE recording_id = ?1",
            [recording_id],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            },
        )
        .optional()?;
    Ok(row.map(|(language, model, machine, edited, updated)| {
        let segments = parse_segments(edited.as_deref().unwrap_or(&machine));
        Stored {
            language,
            model,
            text: join_text(&segments),
            segments,
            edited: edited.is_some(),
            updated_at: crate::clock::rfc3339(updated),
        }
    }))
}

/// Why a recording's transcription failed, if it did.
pub fn error(conn: &Connection, recording_id: &str) -> Result<Option<String>, Error> {
    Ok(conn
        .query_row("SELECT transcript_error FROM recordings WHERE id = ?1", [recording_id], |r| r.get(0))
        .optional()?
        .flatten())
}

/// Stores what the model wrote (the user's corrections, if any, stay the served version) and
/// marks the transcript ready, inside the caller's transaction.
pub fn save_machine(tx: &Transaction<'_>, recording_id: &str, transcript: &Transcript, now: i64) -> Result<(), Error> {
    let json = serde_json::to_string(&transcript.segments).map_err(|e| Error::internal("transcript", e))?;
    tx.execute(
        "INSERT INTO transcripts (recording_id, language, model, segments, edited, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, NULL, ?5, ?5)
         ON CONFLICT (recording_id) DO UPDATE SET
             language = excluded.language, model = excluded.model, segments = excluded.segments,
             updated_at = excluded.updated_at",
        params![recording_id, transcript.language, transcript.model, json, now],
    )?;
    let edited: Option<String> =
        tx.query_row("SELECT edited FROM transcripts WHERE recording_id = ?1", [recording_id], |r| r.get(0))?;
    if edited.is_none() {
        index::reindex(tx, recording_id, texts(&transcript.segments))?;
    }
    tx.execute("UPDATE recordings SET transcript = 'ready', transcript_error = NULL WHERE id = ?1", [recording_id])?;
    Ok(())
}

/// Checks a user's segments: times in order, texts of bounded length.
pub fn check_segments(segments: &[Segment]) -> Result<(), Error> {
    if segments.len() > MAX_SEGMENTS {
        return Err(Error::invalid(format!("a transcript has at most {MAX_SEGMENTS} segments")));
    }
    let mut previous_start = 0;
    for (i, s) in segments.iter().enumerate() {
        if s.start_ms < 0 || s.end_ms < s.start_ms {
            return Err(Error::invalid(format!(
                "segment {i}: start_ms must be 0 or more and end_ms at least start_ms"
            )));
        }
        if s.start_ms < previous_start {
            return Err(Error::invalid(format!("segment {i}: segments must be in order of start_ms")));
        }
        if s.text.chars().count() > MAX_SEGMENT_CHARS || s.text.chars().any(|c| c.is_control() && c != '\n') {
            return Err(Error::invalid(format!(
                "segment {i}: text is at most {MAX_SEGMENT_CHARS} characters, without control characters"
            )));
        }
        previous_start = s.start_ms;
    }
    Ok(())
}

/// Saves a user's corrections (checked) as the served transcript; `Ok(false)` when the
/// recording is not the user's (or is in the trash).
pub fn save_edit(
    conn: &mut Connection,
    user_id: &str,
    recording_id: &str,
    segments: &[Segment],
    now: i64,
) -> Result<bool, Error> {
    check_segments(segments)?;
    let json = serde_json::to_string(segments).map_err(|e| Error::internal("transcript", e))?;
    let tx = crate::recordings::write_transaction(conn)?;
    let mine: Option<i64> = tx
        .query_row(
            "SELECT rowid FROM recordings WHERE id = ?1 AND user_id = ?2 AND deleted_at IS NULL",
            params![recording_id, user_id],
            |r| r.get(0),
        )
        .optional()?;
    if mine.is_none() {
        return Ok(false);
    }
    tx.execute(
        "INSERT INTO transcripts (recording_id, language, model, segments, edited, created_at, updated_at)
         VALUES (?1, '', '', '[]', ?2, ?3, ?3)
         ON CONFLICT (recording_id) DO UPDATE SET edited = excluded.edited, updated_at = excluded.updated_at",
        params![recording_id, json, now],
    )?;
    index::reindex(&tx, recording_id, texts(segments))?;
    // A corrected transcript is ready, whatever the model did or will do.
    tx.execute("UPDATE recordings SET transcript = 'ready', transcript_error = NULL WHERE id = ?1", [recording_id])?;
    tx.commit()?;
    Ok(true)
}

/// The words of at most [`MAX_SEGMENTS`] segments and where each starts, for the index.
fn texts(segments: &[Segment]) -> impl Iterator<Item = (&str, i64)> {
    segments.iter().take(MAX_SEGMENTS).map(|s| (s.text.as_str(), s.start_ms))
}

/// Queues transcription again for one of the user's recordings and answers it as it now is;
/// `None` when it is not theirs (or is in the trash).
pub fn retry(
    conn: &mut Connection,
    user_id: &str,
    recording_id: &str,
    now: i64,
) -> Result<Option<crate::recordings::Recording>, Error> {
    let tx = crate::recordings::write_transaction(conn)?;
    let mine: Option<i64> = tx
        .query_row(
            "SELECT 1 FROM recordings WHERE id = ?1 AND user_id = ?2 AND deleted_at IS NULL",
            params![recording_id, user_id],
            |r| r.get(0),
        )
        .optional()?;
    if mine.is_none() {
        return Ok(None);
    }
    crate::jobs::enqueue(&tx, JOB, recording_id, now)?;
    let recording = crate::recordings::get(&tx, user_id, recording_id)?;
    tx.commit()?;
    Ok(recording)
}

/// At startup with transcription off: what waited for a model does not any more (its
/// transcript is "off" again, its job gone), so turning it on later starts afresh. Only done
/// when the last start had it on, so an ordinary start does no work.
pub fn turned_off(conn: &mut Connection) -> Result<(), Error> {
    let was_on: Option<String> =
        conn.query_row("SELECT value FROM settings WHERE key = 'transcription_on'", [], |r| r.get(0)).optional()?;
    if was_on.is_none() {
        return Ok(());
    }
    let tx = crate::recordings::write_transaction(conn)?;
    tx.execute("DELETE FROM jobs WHERE kind = ?1 AND state != 'failed'", [JOB])?;
    tx.execute("UPDATE recordings SET transcript = NULL WHERE transcript = 'pending'", [])?;
    tx.execute("DELETE FROM settings WHERE key IN ('transcription_on', 'transcription_backfill_before')", [])?;
    tx.commit()?;
    Ok(())
}

/// At startup with transcription on: remembered, for `turned_off`.
pub fn turned_on(conn: &Connection) -> Result<(), Error> {
    conn.execute(
        "INSERT INTO settings (key, value) VALUES ('transcription_on', '1') ON CONFLICT (key) DO NOTHING",
        [],
    )?;
    Ok(())
}

/// Time as SubRip (`00:01:02,345`) or WebVTT (`00:01:02.345`) writes it.
fn timestamp(ms: i64, separator: char) -> String {
    let ms = ms.max(0);
    let (h, m, s, frac) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    format!("{h:02}:{m:02}:{s:02}{separator}{frac:03}")
}

/// A transcript as a file: `txt` (one segment a line), `srt` or `vtt`.
pub fn render(segments: &[Segment], format: &str) -> Option<(&'static str, String)> {
    let lines = segments.iter().filter(|s| !s.text.trim().is_empty());
    match format {
        "txt" => Some(("text/plain; charset=utf-8", lines.map(|s| format!("{}\n", s.text.trim())).collect::<String>())),
        "srt" => Some((
            "application/x-subrip; charset=utf-8",
            lines
                .enumerate()
                .map(|(i, s)| {
                    format!(
                        "{}\n{} --> {}\n{}\n\n",
                        i + 1,
                        timestamp(s.start_ms, ','),
                        timestamp(s.end_ms, ','),
                        s.text.trim()
                    )
                })
                .collect(),
        )),
        "vtt" => {
            let mut out = String::from("WEBVTT\n\n");
            for s in lines {
                // "-->" may not appear in a cue's text.
                let text = s.text.trim().replace("-->", "->");
                out.push_str(&format!("{} --> {}\n{}\n\n", timestamp(s.start_ms, '.'), timestamp(s.end_ms, '.'), text));
            }
            Some(("text/vtt; charset=utf-8", out))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(start_ms: i64, end_ms: i64, text: &str) -> Segment {
        Segment { start_ms, end_ms, text: text.to_string() }
    }

    #[test]
    fn subtitles_have_their_formats() {
        let segments = vec![seg(0, 1500, " Hello there."), seg(61_500, 3_723_004, "Bye --> now")];
        let (_, srt) = render(&segments, "srt").unwrap_or_default();
        assert_eq!(
            srt,
            "1\n00:00:00,000 --> 00:00:01,500\nHello there.\n\n2\n00:01:01,500 --> 01:02:03,004\nBye --> now\n\n"
        );
        let (_, vtt) = render(&segments, "vtt").unwrap_or_default();
        assert!(vtt.starts_with("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello there.\n\n"));
        assert!(vtt.contains("01:02:03.004\nBye -> now\n"));
        let (_, txt) = render(&segments, "txt").unwrap_or_default();
        assert_eq!(txt, "Hello there.\nBye --> now\n");
        assert!(render(&segments, "doc").is_none());
    }

    #[test]
    fn queries_are_prefix_words_of_one_user() {
        let q = index::fts_query("0192-ab", "Caf\u{e9}, \"stars\" OR x*").unwrap_or_default();
        assert_eq!(q, "owner : \"u0192ab\" AND body : (\"Caf\u{e9}\"* AND \"stars\"* AND \"OR\"* AND \"x\"*)");
        assert!(index::fts_query("u", " ,.; ").is_none());
    }

    #[test]
    fn corrections_are_checked() {
        assert!(check_segments(&[seg(0, 10, "a"), seg(5, 20, "b")]).is_ok());
        assert!(check_segments(&[seg(10, 5, "a")]).is_err());
        assert!(check_segments(&[seg(10, 20, "a"), seg(5, 30, "b")]).is_err());
        assert!(check_segments(&[seg(0, 1, "a\u{7}")]).is_err());
        assert!(check_segments(&[]).is_ok());
    }
}
