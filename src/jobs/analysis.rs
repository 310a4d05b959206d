//! Analysis as a job kind: the exact duration and the waveform of each recording, within a
//! CPU-time budget.

use crate::analysis::{self, Limits};
use crate::db::Db;
use crate::error::Error;
use crate::storage::Storage;
use rusqlite::{Connection, OptionalExtension, params};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;
use uuid::Uuid;

use super::queue::{JobKind, Writes};
use super::table::{ANALYSIS, Job, TRANSCRIPTION, backfill_kind, enqueue, fail};

/// The backfill's progress in `settings`: the id below which every recording has been queued, or
/// `done`.
const BACKFILL_KEY: &str = "analysis_backfill_before";
/// Analysis time (CPU time) granted whatever the length.
const MIN_BUDGET: Duration = Duration::from_secs(1);
/// For a file without a known duration: the hours it may hold, from its size at this rate (bytes
/// per second; 64 kbit/s speech), so a budget errs long.
const ASSUMED_BYTES_PER_SECOND: u64 = 8_000;

/// Queues analysis for a batch of recordings stored before analysis existed, newest first.
/// Returns how many were queued; 0 when there are none left.
pub fn backfill(conn: &mut Connection, now: i64) -> Result<usize, Error> {
    backfill_kind(conn, now, ANALYSIS, BACKFILL_KEY, |waveform, _| waveform.is_none())
}

/// What the worker needs besides the database.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Seconds of analysis allowed per hour of audio.
    pub seconds_per_hour: u32,
    /// A recording analysed without error is queued for transcription.
    pub transcribe: bool,
}

/// Analysis as a job kind: the exact duration and the waveform.
pub struct Analysis {
    pub db: Db,
    pub storage: Storage,
    pub settings: Settings,
    pub clock: crate::clock::Clock,
}

impl JobKind for Analysis {
    fn name(&self) -> &'static str {
        ANALYSIS
    }

    fn thread(&self) -> &'static str {
        "recorder-jobs"
    }

    fn run(&mut self, job: &Job, writes: &Writes) -> bool {
        run(&self.db, &self.storage, self.settings, &self.clock, job, writes)
    }

    fn backfill(&self) -> fn(&mut Connection, i64) -> Result<usize, Error> {
        backfill
    }
}

/// Runs one job to its end and records the outcome; false when it failed.
fn run(
    db: &Db,
    storage: &Storage,
    settings: Settings,
    clock: &crate::clock::Clock,
    job: &Job,
    writes: &Writes,
) -> bool {
    let started = std::time::Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| match job.kind.as_str() {
        ANALYSIS => analyse(db, storage, settings, job),
        other => Err(format!("unknown job kind {other:?}")),
    }))
    .unwrap_or_else(|_| Err("the job crashed on unexpected input".to_string()));
    let now = clock.now_ms();
    let (pool, record, written) = (db.clone(), job.clone(), outcome.clone());
    let recorded = writes.run(move || {
        let mut conn = pool.conn()?;
        match &written {
            Ok(Some(result)) => finish(&mut conn, &record, result, settings.transcribe, now),
            // The recording is gone: so is its job (if the delete did not take it already).
            Ok(None) => {
                conn.execute(
                    "DELETE FROM jobs WHERE id = ?1 AND recording_id = ?2",
                    params![record.id, record.recording_id],
                )?;
                Ok(())
            }
            Err(reason) => {
                fail(&mut conn, &record, reason, now)?;
                // Audio that cannot be decoded cannot be transcribed either.
                if settings.transcribe && record.kind == ANALYSIS {
                    conn.execute(
                        "UPDATE recordings SET transcript = 'failed', transcript_error = ?2
                         WHERE id = ?1 AND transcript IS NULL",
                        params![record.recording_id, format!("the audio could not be decoded: {reason}")],
                    )?;
                }
                Ok(())
            }
        }
    });
    if let Err(e) = recorded {
        log::error!("job {} ({} of {}): recording its outcome: {}", job.id, job.kind, job.recording_id, e);
    }
    match &outcome {
        Ok(Some(_)) => log::info!("analysed {} in {} ms", job.recording_id, started.elapsed().as_millis()),
        Ok(None) => {}
        Err(reason) => log::warn!("analysis of {} failed: {reason}", job.recording_id),
    }
    outcome.is_ok()
}

/// A recording's size and duration as stored, for a job about to read it; `None` once it is gone.
/// A recording's size, claimed duration and store; `None` when it is gone.
pub(crate) fn size_and_duration(
    db: &Db,
    recording_id: &str,
) -> Result<Option<(i64, Option<i64>, crate::storage::store::Backend)>, String> {
    db.conn()
        .and_then(|conn| {
            conn.query_row("SELECT size, duration_ms, store FROM recordings WHERE id = ?1", [recording_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
            .map_err(Error::from)
        })
        .map_err(|e| e.to_string())
}

/// The decoded facts of a recording. `Ok(None)`: the recording is gone (deleted meanwhile).
fn analyse(db: &Db, storage: &Storage, settings: Settings, job: &Job) -> Result<Option<analysis::Decoded>, String> {
    let Some((size, claimed_ms, store)) = size_and_duration(db, &job.recording_id)? else { return Ok(None) };
    let id = Uuid::parse_str(&job.recording_id).map_err(|e| e.to_string())?;
    // The file itself on disk; a temp copy from an object store (decoders seek).
    let copy = match storage.local_copy(store, &id) {
        Ok(copy) => copy,
        Err(crate::storage::store::BlobError::NotFound) => return missing_bytes(db, &job.recording_id).map(|()| None),
        Err(e) => return Err(format!("cannot read the recording: {e}")),
    };
    let limits = Limits {
        time_budget: budget(settings, size.max(0) as u64, claimed_ms),
        ..Limits::for_size(size.max(0) as u64)
    };
    match analysis::decode_with(copy.path(), &limits) {
        Ok(decoded) => Ok(Some(decoded)),
        Err(analysis::DecodeError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            missing_bytes(db, &job.recording_id).map(|()| None)
        }
        Err(e) => Err(e.to_string()),
    }
}

/// After a recording's bytes were not found: `Ok` when its row is gone too (deleted while the
/// job waited or ran: nothing to record, nothing to complain about), else why the job failed
/// (`recorder check` reports the missing bytes too).
pub(crate) fn missing_bytes(db: &Db, recording_id: &str) -> Result<(), String> {
    let still_there = db
        .conn()
        .and_then(|conn| {
            conn.query_row("SELECT 1 FROM recordings WHERE id = ?1", [recording_id], |_| Ok(()))
                .optional()
                .map_err(Error::from)
        })
        .map_err(|e| e.to_string())?;
    match still_there {
        Some(()) => Err("the recording's file is missing".to_string()),
        None => Ok(()),
    }
}

/// The time one analysis may take: `seconds_per_hour` for each hour the file claims to hold (or,
/// without a claim, could hold at speech bitrates), at least `MIN_BUDGET`.
pub fn budget(settings: Settings, size: u64, claimed_ms: Option<i64>) -> Duration {
    let by_size = size as f64 / ASSUMED_BYTES_PER_SECOND as f64 / 3600.0;
    let hours = match claimed_ms {
        Some(ms) if ms > 0 => ms as f64 / 3_600_000.0,
        _ => by_size,
    };
    MIN_BUDGET.max(Duration::from_secs_f64(hours * f64::from(settings.seconds_per_hour)))
}

fn finish(
    conn: &mut Connection,
    job: &Job,
    decoded: &analysis::Decoded,
    transcribe: bool,
    now: i64,
) -> Result<(), Error> {
    let tx = conn.transaction()?;
    let updated = tx.execute(
        "UPDATE recordings SET duration_ms = ?2, waveform = 'ready', analysis_error = NULL WHERE id = ?1",
        params![job.recording_id, decoded.duration_ms],
    )?;
    if updated == 1 {
        tx.execute(
            "INSERT INTO waveforms (recording_id, bucket_ms, peaks) VALUES (?1, ?2, ?3)
             ON CONFLICT (recording_id) DO UPDATE SET bucket_ms = excluded.bucket_ms, peaks = excluded.peaks",
            params![job.recording_id, decoded.waveform.bucket_ms, decoded.waveform.peaks],
        )?;
        // What was said comes next (a transcript the user wrote stays as it is).
        if transcribe {
            let has_transcript: bool = tx.query_row(
                "SELECT transcript IS NOT NULL AND transcript != 'pending' FROM recordings WHERE id = ?1",
                [&job.recording_id],
                |r| r.get(0),
            )?;
            if !has_transcript {
                enqueue(&tx, TRANSCRIPTION, &job.recording_id, now)?;
            }
        }
    }
    tx.execute("DELETE FROM jobs WHERE id = ?1 AND recording_id = ?2", params![job.id, job.recording_id])?;
    tx.commit()?;
    Ok(())
}

/// A recording's waveform, when ready: (bucket_ms, peaks).
pub fn waveform(conn: &Connection, recording_id: &str) -> Result<Option<(u32, Vec<u8>)>, Error> {
    Ok(conn
        .query_row("SELECT bucket_ms, peaks FROM waveforms WHERE recording_id = ?1", [recording_id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?)
}

/// Recordings whose analysis failed: (recording id, owner, reason), for `recorder check`.
/// The codecs this build decodes beyond symphonia's own (Opus, in every build since it is
/// decoded in pure Rust).
const EXTRA_CODECS: &str = "opus";

/// When this build decodes codecs the last one did not (Opus, for an installation that ran a
/// build without a decoder for it), the analyses that failed for want of a decoder are queued
/// again, once. Returns how many.
pub fn retry_undecodable(conn: &Connection, now: i64) -> Result<usize, Error> {
    let last: Option<String> =
        conn.query_row("SELECT value FROM settings WHERE key = 'decoders'", [], |r| r.get(0)).optional()?;
    if last.as_deref() == Some(EXTRA_CODECS) {
        return Ok(0);
    }
    let ids: Vec<String> = {
        let mut stmt = conn.prepare(
            "SELECT id FROM recordings WHERE waveform = 'failed' AND analysis_error LIKE '%no decoder for this codec%'",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    for id in &ids {
        enqueue(conn, ANALYSIS, id, now)?;
    }
    conn.execute(
        "INSERT INTO settings (key, value) VALUES ('decoders', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [EXTRA_CODECS],
    )?;
    Ok(ids.len())
}

pub fn failed_analyses(conn: &Connection) -> Result<Vec<(String, String, String)>, Error> {
    let mut stmt = conn.prepare(
        "SELECT r.id, r.user_id, coalesce(r.analysis_error, '') FROM recordings r
         WHERE r.waveform = 'failed' ORDER BY r.id",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod retry_tests {
    use super::*;

    #[test]
    fn analyses_that_lacked_a_decoder_run_again_once_when_the_decoders_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = crate::db::Db::open(&dir.path().join("recorder.db")).expect("db");
        let conn = db.conn().expect("conn");
        let user = crate::users::create(&conn, "alice", "hash", 0).expect("user");
        for (id, error) in [("r-codec", "no decoder for this codec: opus"), ("r-corrupt", "corrupt audio: bad frame")] {
            conn.execute(
                "INSERT INTO recordings (id, user_id, name, content_type, size, sha256, created_at, waveform,
                                         analysis_error)
                 VALUES (?1, ?2, ?1, 'audio/ogg', 1, 'x', 0, 'failed', ?3)",
                params![id, user.id, error],
            )
            .expect("row");
        }
        // As an earlier build without the opus feature left it.
        conn.execute("INSERT INTO settings (key, value) VALUES ('decoders', 'none-such')", []).expect("setting");
        assert_eq!(retry_undecodable(&conn, 1).expect("retry"), 1, "only the one that lacked a decoder");
        let state: String =
            conn.query_row("SELECT waveform FROM recordings WHERE id = 'r-codec'", [], |r| r.get(0)).expect("state");
        assert_eq!(state, "pending");
        // The same build again: nothing more.
        conn.execute("UPDATE recordings SET waveform = 'failed' WHERE id = 'r-codec'", []).expect("fail again");
        assert_eq!(retry_undecodable(&conn, 2).expect("retry"), 0);
    }
}
