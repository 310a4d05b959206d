//! The `jobs` table: queueing, claiming, the crash retry, failures and the backfill walk.

use crate::db::Db;
use crate::error::Error;
use rusqlite::{Connection, OptionalExtension, params};

/// The exact duration and the waveform of a recording.
pub const ANALYSIS: &str = "analysis";
/// The transcription job kind.
pub const TRANSCRIPTION: &str = "transcription";

/// A job interrupted this many times (the server crashed or was killed while it ran) is failed.
pub const MAX_ATTEMPTS: i64 = 3;

/// Recordings queued by one step of the backfill.
const BACKFILL_BATCH: usize = 200;

/// Queues a job for a recording (or queues a failed one again).
pub fn enqueue(conn: &Connection, kind: &str, recording_id: &str, now: i64) -> Result<(), Error> {
    conn.execute(
        "INSERT INTO jobs (kind, recording_id, state, attempts, created_at, updated_at)
         VALUES (?1, ?2, 'queued', 0, ?3, ?3)
         ON CONFLICT (kind, recording_id) DO UPDATE SET
             state = 'queued', attempts = 0, error = NULL, updated_at = excluded.updated_at",
        params![kind, recording_id, now],
    )?;
    if kind == ANALYSIS {
        conn.execute(
            "UPDATE recordings SET waveform = 'pending', analysis_error = NULL
             WHERE id = ?1 AND waveform IS NOT 'pending'",
            [recording_id],
        )?;
    } else if kind == TRANSCRIPTION {
        conn.execute(
            "UPDATE recordings SET transcript = 'pending', transcript_error = NULL
             WHERE id = ?1 AND transcript IS NOT 'pending'",
            [recording_id],
        )?;
    }
    Ok(())
}

/// How many jobs are queued, running and failed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub queued: u64,
    pub running: u64,
    pub failed: u64,
}

pub fn counts(conn: &Connection) -> Result<Counts, Error> {
    let mut counts = Counts::default();
    let mut stmt = conn.prepare("SELECT state, count(*) FROM jobs GROUP BY state")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    for row in rows {
        let (state, n) = row?;
        let n = n.max(0) as u64;
        match state.as_str() {
            "queued" => counts.queued = n,
            "running" => counts.running = n,
            "failed" => counts.failed = n,
            _ => {}
        }
    }
    Ok(counts)
}

/// At startup: jobs a crash interrupted are queued again, or failed after `MAX_ATTEMPTS`.
pub fn recover(conn: &Connection, now: i64) -> Result<(), Error> {
    let failed = conn.execute(
        "UPDATE jobs SET state = 'failed', updated_at = ?2,
                error = 'interrupted ' || attempts || ' times (the server stopped while it ran)'
         WHERE state = 'running' AND attempts >= ?1",
        params![MAX_ATTEMPTS, now],
    )?;
    if failed > 0 {
        // Each kind's outcome shows on the recording in a state column and an error column.
        for (kind, column, error) in
            [(ANALYSIS, "waveform", "analysis_error"), (TRANSCRIPTION, "transcript", "transcript_error")]
        {
            conn.execute(
                &format!(
                    "UPDATE recordings SET {column} = 'failed',
                            {error} = (SELECT error FROM jobs WHERE jobs.recording_id = recordings.id AND kind = ?1)
                     WHERE id IN (SELECT recording_id FROM jobs WHERE kind = ?1 AND state = 'failed')
                       AND {column} = 'pending'"
                ),
                [kind],
            )?;
        }
        log::warn!("{failed} background jobs were interrupted {MAX_ATTEMPTS} times and are marked failed");
    }
    let requeued = conn.execute("UPDATE jobs SET state = 'queued' WHERE state = 'running'", [])?;
    if requeued > 0 {
        log::info!("{requeued} interrupted background jobs will run again");
    }
    Ok(())
}

/// A job taken by a worker.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub recording_id: String,
}

/// Takes the next job of a kind, newest recording first.
pub(crate) fn claim(conn: &mut Connection, now: i64, kind: &str) -> Result<Option<Job>, Error> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let job = tx
        .query_row(
            "SELECT id, kind, recording_id FROM jobs WHERE kind = ?1 AND state = 'queued'
             ORDER BY recording_id DESC LIMIT 1",
            [kind],
            |r| Ok(Job { id: r.get(0)?, kind: r.get(1)?, recording_id: r.get(2)? }),
        )
        .optional()?;
    if let Some(job) = &job {
        tx.execute(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, updated_at = ?2 WHERE id = ?1",
            params![job.id, now],
        )?;
    }
    tx.commit()?;
    Ok(job)
}

/// Walks the recordings newest first, a batch at a time, queueing a `kind` job for each one
/// `needs(waveform, transcript)` picks; its progress is kept in `settings` under `key` (the id
/// below which all were seen, or `done`). Returns how many were queued by the first batch that
/// queued any; 0 when none are left.
pub(crate) fn backfill_kind(
    conn: &mut Connection,
    now: i64,
    kind: &str,
    key: &str,
    needs: fn(Option<&str>, Option<&str>) -> bool,
) -> Result<usize, Error> {
    loop {
        let before: Option<String> =
            conn.query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| r.get(0)).optional()?;
        if before.as_deref() == Some("done") {
            return Ok(0);
        }
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let rows: Vec<(String, Option<String>, Option<String>)> = {
            let mut stmt = tx.prepare_cached(
                "SELECT id, waveform, transcript FROM recordings WHERE (?1 IS NULL OR id < ?1) ORDER BY id DESC LIMIT ?2",
            )?;
            stmt.query_map(params![before, BACKFILL_BATCH as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()?
        };
        let mut queued = 0;
        for (id, waveform, transcript) in &rows {
            if needs(waveform.as_deref(), transcript.as_deref()) {
                enqueue(&tx, kind, id, now)?;
                queued += 1;
            }
        }
        let more = rows.len() == BACKFILL_BATCH;
        let next = match rows.last() {
            Some((id, _, _)) if more => id.clone(),
            _ => "done".to_string(),
        };
        tx.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, next],
        )?;
        tx.commit()?;
        if queued > 0 || !more {
            return Ok(queued);
        }
    }
}

/// Whose recording it is (none once it is gone).
pub(crate) fn owner(db: &Db, recording_id: &str) -> Option<String> {
    let conn = db.conn().ok()?;
    conn.query_row("SELECT user_id FROM recordings WHERE id = ?1", [recording_id], |r| r.get(0)).optional().ok()?
}

/// Records a job's failure on it and its recording. A job whose row is gone (its recording was
/// deleted while it ran) records nothing: its id may be another job's by now, as SQLite reuses
/// the highest rowid once it is deleted, so a job row is always named with its recording.
pub(crate) fn fail(conn: &mut Connection, job: &Job, reason: &str, now: i64) -> Result<(), Error> {
    let tx = conn.transaction()?;
    let changed = tx.execute(
        "UPDATE jobs SET state = 'failed', error = ?2, updated_at = ?3 WHERE id = ?1 AND recording_id = ?4",
        params![job.id, reason, now, job.recording_id],
    )?;
    if changed == 0 {
        return Ok(());
    }
    if job.kind == ANALYSIS {
        tx.execute(
            "UPDATE recordings SET waveform = 'failed', analysis_error = ?2 WHERE id = ?1",
            params![job.recording_id, reason],
        )?;
    } else if job.kind == TRANSCRIPTION {
        tx.execute(
            "UPDATE recordings SET transcript = 'failed', transcript_error = ?2 WHERE id = ?1",
            params![job.recording_id, reason],
        )?;
    }
    tx.commit()?;
    Ok(())
}
