//! The durable job queue: work done after an upload, in the background, at idle priority.
//!
//! A job is a row in `jobs`, inserted in the same transaction that stores its recording, so no
//! stored recording is ever without its job and no job outlives its recording (the foreign key
//! deletes it). One worker thread runs jobs one at a time, newest recording first, under
//! `SCHED_IDLE`: any request preempts it. A job is marked `running` (and its attempt counted)
//! before it starts; a crash leaves it `running`, and the next start queues it again, up to
//! `MAX_ATTEMPTS` times. A job that fails, panics, or runs past its time budget is marked
//! failed with the reason and is not retried (`recorder check --repair` queues it again).
//!
//! Recordings stored before analysis existed are queued by a backfill that walks them newest
//! first, a batch at a time, when the queue is empty: startup does no work for them.

use crate::analysis::{self, Limits};
use crate::db::Db;
use crate::error::Error;
use crate::storage::Storage;
use rusqlite::{Connection, OptionalExtension, params};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use uuid::Uuid;

/// The exact duration and the waveform of a recording.
pub const ANALYSIS: &str = "analysis";
/// The transcription job kind.
pub const TRANSCRIPTION: &str = "transcription";

/// A job interrupted this many times (the server crashed or was killed while it ran) is failed.
pub const MAX_ATTEMPTS: i64 = 3;

/// Recordings queued by one step of the backfill.
const BACKFILL_BATCH: usize = 200;
/// The backfill's progress in `settings`: the id below which every recording has been queued, or
/// `done`.
const BACKFILL_KEY: &str = "analysis_backfill_before";
/// How often an idle worker looks at the queue without being woken.
const IDLE_POLL: Duration = Duration::from_secs(30);
/// Analysis time (CPU time) granted whatever the length.
const MIN_BUDGET: Duration = Duration::from_secs(1);
/// For a file without a known duration: the hours it may hold, from its size at this rate (bytes
/// per second; 64 kbit/s speech), so a budget errs long.
const ASSUMED_BYTES_PER_SECOND: u64 = 8_000;

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
        conn.execute(
            "UPDATE recordings SET waveform = 'failed',
                    analysis_error = (SELECT error FROM jobs WHERE jobs.recording_id = recordings.id AND kind = 'analysis')
             WHERE id IN (SELECT recording_id FROM jobs WHERE kind = 'analysis' AND state = 'failed')
               AND waveform = 'pending'",
            [],
        )?;
        conn.execute(
            "UPDATE recordings SET transcript = 'failed',
                    transcript_error = (SELECT error FROM jobs WHERE jobs.recording_id = recordings.id AND kind = 'transcription')
             WHERE id IN (SELECT recording_id FROM jobs WHERE kind = 'transcription' AND state = 'failed')
               AND transcript = 'pending'",
            [],
        )?;
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
pub(crate) struct Job {
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

/// Queues analysis for a batch of recordings stored before analysis existed, newest first.
/// Returns how many were queued; 0 when there are none left.
pub fn backfill(conn: &mut Connection, now: i64) -> Result<usize, Error> {
    backfill_kind(conn, now, ANALYSIS, BACKFILL_KEY, |waveform, _| waveform.is_none())
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

/// What the worker needs besides the database.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Seconds of analysis allowed per hour of audio.
    pub seconds_per_hour: u32,
    /// A recording analysed without error is queued for transcription.
    pub transcribe: bool,
}

/// Wakes and stops the worker; shared with the request handlers that queue jobs.
#[derive(Clone, Default)]
pub struct Queue {
    inner: Arc<QueueInner>,
}

#[derive(Default)]
struct QueueInner {
    wake: Mutex<bool>,
    bell: Condvar,
    stop: AtomicBool,
    done: AtomicU64,
    failed: AtomicU64,
    /// The queue this one's jobs feed (analysis queues transcription), woken after each job.
    next: Mutex<Option<Queue>>,
}

impl Queue {
    /// A job was queued: the worker looks now rather than at its next poll.
    pub fn wake(&self) {
        let mut woken = self.inner.wake.lock().unwrap_or_else(|p| p.into_inner());
        *woken = true;
        self.inner.bell.notify_all();
    }

    /// After each of this queue's jobs, `next` is woken: the job may have queued one there.
    pub fn feeds(&self, next: Queue) {
        *self.inner.next.lock().unwrap_or_else(|p| p.into_inner()) = Some(next);
    }

    /// The worker finishes its current job and stops.
    pub fn stop(&self) {
        self.inner.stop.store(true, Ordering::Relaxed);
        self.wake();
    }

    /// Jobs finished and failed since the start.
    pub fn finished(&self) -> (u64, u64) {
        (self.inner.done.load(Ordering::Relaxed), self.inner.failed.load(Ordering::Relaxed))
    }

    pub(crate) fn stopped(&self) -> bool {
        self.inner.stop.load(Ordering::Relaxed)
    }

    /// Counts a finished job.
    pub(crate) fn count(&self, ok: bool) {
        let counter = if ok { &self.inner.done } else { &self.inner.failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Sleeps until woken, stopped, or `IDLE_POLL` passed.
    pub(crate) fn idle(&self) {
        let woken = self.inner.wake.lock().unwrap_or_else(|p| p.into_inner());
        let (mut woken, _) = self
            .inner
            .bell
            .wait_timeout_while(woken, IDLE_POLL, |w| !*w && !self.inner.stop.load(Ordering::Relaxed))
            .unwrap_or_else(|p| p.into_inner());
        *woken = false;
    }

    /// Starts the worker thread; `changes` hears of every recording it analysed.
    pub fn start(
        &self,
        db: Db,
        storage: Storage,
        settings: Settings,
        clock: crate::Clock,
        changes: crate::changes::Notifier,
    ) -> std::io::Result<()> {
        let queue = self.clone();
        let writes = Writes(tokio::runtime::Handle::try_current().ok());
        std::thread::Builder::new().name("recorder-jobs".into()).spawn(move || {
            crate::auth::lower_priority("background jobs");
            queue.work(&db, &storage, settings, &clock, &changes, &writes);
        })?;
        Ok(())
    }

    fn work(
        &self,
        db: &Db,
        storage: &Storage,
        settings: Settings,
        clock: &crate::Clock,
        changes: &crate::changes::Notifier,
        writes: &Writes,
    ) {
        while !self.stopped() {
            let (pool, now) = (db.clone(), clock.now_ms());
            let next = writes.run(move || claim(&mut *pool.conn()?, now, ANALYSIS));
            match next {
                Ok(Some(job)) => {
                    let ok = run(db, storage, settings, clock, &job, writes);
                    if let Some(owner) = owner(db, &job.recording_id) {
                        changes.user(&owner);
                    }
                    self.count(ok);
                    if let Some(next) = self.inner.next.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                        next.wake();
                    }
                }
                Ok(None) => match writes.run({
                    let pool = db.clone();
                    move || backfill(&mut *pool.conn()?, now)
                }) {
                    Ok(0) => self.idle(),
                    Ok(n) => log::info!("queued {n} earlier recordings for analysis"),
                    Err(e) => {
                        log::error!("analysis backfill: {}", e);
                        self.idle();
                    }
                },
                Err(e) => {
                    log::error!("job queue: {}", e);
                    self.idle();
                }
            }
        }
    }
}

/// Where the worker's database writes run: on the runtime's blocking pool, at normal priority.
/// The worker thread is `SCHED_IDLE`; a write transaction it held while preempted by requests
/// would hold up every request's write behind it (priority inversion).
pub(crate) struct Writes(pub(crate) Option<tokio::runtime::Handle>);

impl Writes {
    pub(crate) fn run<T: Send + 'static>(
        &self,
        write: impl FnOnce() -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        match &self.0 {
            // Asked for from a runtime worker, not from this idle thread: a thread the blocking
            // pool starts takes its creator's scheduling policy, and would serve requests at
            // idle priority ever after.
            Some(handle) => handle
                .block_on(handle.spawn(async move { tokio::task::spawn_blocking(write).await }))
                .map_err(|e| Error::internal("job queue write", e))
                .and_then(|joined| joined.unwrap_or_else(|e| Err(Error::internal("job queue write", e)))),
            None => write(),
        }
    }
}

/// Whose recording it is (none once it is gone).
pub(crate) fn owner(db: &Db, recording_id: &str) -> Option<String> {
    let conn = db.conn().ok()?;
    conn.query_row("SELECT user_id FROM recordings WHERE id = ?1", [recording_id], |r| r.get(0)).optional().ok()?
}

/// Runs one job to its end and records the outcome; false when it failed.
fn run(db: &Db, storage: &Storage, settings: Settings, clock: &crate::Clock, job: &Job, writes: &Writes) -> bool {
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

/// A recording's waveform, when ready: (bucket_ms, peaks).
pub fn waveform(conn: &Connection, recording_id: &str) -> Result<Option<(u32, Vec<u8>)>, Error> {
    Ok(conn
        .query_row("SELECT bucket_ms, peaks FROM waveforms WHERE recording_id = ?1", [recording_id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?)
}

/// Recordings whose analysis failed: (recording id, owner, reason), for `recorder check`.
/// The codecs this build decodes beyond symphonia's own.
const EXTRA_CODECS: &str = if cfg!(feature = "opus") { "opus" } else { "" };

/// When this build decodes codecs the last one did not (a build with the `opus` feature), the
/// analyses that failed for want of a decoder are queued again, once. Returns how many.
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
