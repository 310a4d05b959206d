//! The transcription worker: one `SCHED_IDLE` thread taking `transcription` jobs, newest
//! recording first, beside the analysis worker (a long transcription never holds up a new
//! recording's waveform). The model is loaded when there is work and let go after a minute
//! without any, so an idle server holds no model in memory. The model's own threads are started
//! from this thread and inherit its idle priority.
//!
//! Jobs follow the queue's rules (`jobs.rs`): marked running before they start, queued again
//! after a crash (failed after three), failed with the reason and not retried on an error.
//! Between windows of audio the worker checks that the recording still exists and the server is
//! not stopping: a recording deleted meanwhile leaves nothing behind, and a stop puts the job
//! back in the queue without counting it.

use super::Settings;
use super::whisper::Model;
use crate::analysis::Limits;
use crate::db::Db;
use crate::error::Error;
use crate::jobs::TRANSCRIPTION as JOB;
use crate::jobs::{self, Job, JobKind, Queue, Writes};
use crate::storage::Storage;
use rusqlite::{Connection, OptionalExtension};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// An idle worker lets go of its model after this long.
const KEEP_MODEL: Duration = Duration::from_secs(60);
const BACKFILL_KEY: &str = "transcription_backfill_before";

/// Transcription as a job kind over the queue's one loop (`jobs::Queue::start`).
pub struct Transcription {
    /// Its own queue: a job in progress stops between windows when the server stops.
    queue: Queue,
    db: Db,
    storage: Storage,
    settings: Settings,
    clock: crate::clock::Clock,
    model: Option<(Model, Instant)>,
}

impl Transcription {
    pub fn new(
        queue: Queue,
        db: Db,
        storage: Storage,
        settings: Settings,
        clock: crate::clock::Clock,
    ) -> Transcription {
        Transcription { queue, db, storage, settings, clock, model: None }
    }
}

/// How a job ended.
enum Outcome {
    Done(super::Transcript),
    /// The recording is gone.
    Gone,
    /// The server is stopping: the job goes back to the queue.
    Stopped,
}

impl JobKind for Transcription {
    fn name(&self) -> &'static str {
        JOB
    }

    fn thread(&self) -> &'static str {
        "recorder-transcribe"
    }

    fn run(&mut self, job: &Job, writes: &Writes) -> bool {
        self.run_job(job, writes)
    }

    fn backfill(&self) -> fn(&mut Connection, i64) -> Result<usize, Error> {
        backfill
    }

    fn idle(&mut self) {
        if self.model.as_ref().is_some_and(|(_, used)| used.elapsed() >= KEEP_MODEL) {
            self.model = None;
            log::info!("transcription model unloaded (idle)");
        }
    }
}

impl Transcription {
    fn model(&mut self) -> Result<&Model, String> {
        if self.model.is_none() {
            let started = Instant::now();
            let model = Model::load(&self.settings.model, self.settings.options())?;
            log::info!("transcription model {} loaded in {} ms", model.name, started.elapsed().as_millis());
            self.model = Some((model, Instant::now()));
        }
        match self.model.as_mut() {
            Some((model, used)) => {
                *used = Instant::now();
                Ok(model)
            }
            None => Err("no model".to_string()),
        }
    }

    /// Runs one job and records its outcome; false when it failed.
    fn run_job(&mut self, job: &Job, writes: &Writes) -> bool {
        let started = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| self.transcribe(job)))
            .unwrap_or_else(|_| Err("transcription crashed on unexpected input".to_string()));
        let now = self.clock.now_ms();
        let written: Result<Option<super::Transcript>, String> = match &outcome {
            Ok(Outcome::Done(t)) => Ok(Some(t.clone())),
            Ok(_) => Ok(None),
            Err(reason) => Err(reason.clone()),
        };
        let (pool, record) = (self.db.clone(), job.clone());
        let stopped = matches!(outcome, Ok(Outcome::Stopped));
        let recorded = writes.run(move || {
            let mut conn = pool.conn()?;
            match written {
                Ok(Some(transcript)) => finish(&mut conn, &record, &transcript, now),
                Ok(None) if stopped => {
                    // Not an attempt: it runs again from the start at the next start.
                    conn.execute(
                        "UPDATE jobs SET state = 'queued', attempts = max(attempts - 1, 0)
                         WHERE id = ?1 AND recording_id = ?2",
                        rusqlite::params![record.id, record.recording_id],
                    )?;
                    Ok(())
                }
                Ok(None) => {
                    conn.execute(
                        "DELETE FROM jobs WHERE id = ?1 AND recording_id = ?2",
                        rusqlite::params![record.id, record.recording_id],
                    )?;
                    Ok(())
                }
                Err(reason) => jobs::table::fail(&mut conn, &record, &reason, now),
            }
        });
        if let Err(e) = recorded {
            log::error!("transcription of {}: recording its outcome: {}", job.recording_id, e);
        }
        match &outcome {
            Ok(Outcome::Done(t)) => log::info!(
                "transcribed {} ({} segments) in {} ms",
                job.recording_id,
                t.segments.len(),
                started.elapsed().as_millis()
            ),
            Ok(_) => {}
            Err(reason) => log::warn!("transcription of {} failed: {reason}", job.recording_id),
        }
        outcome.is_ok()
    }

    fn transcribe(&mut self, job: &Job) -> Result<Outcome, String> {
        let Some((size, duration_ms, store)) = jobs::analysis::size_and_duration(&self.db, &job.recording_id)? else {
            return Ok(Outcome::Gone);
        };
        if duration_ms.is_some_and(|ms| ms > self.settings.max_ms) {
            return Err(format!(
                "longer than transcription.max_minutes ({} minutes): not transcribed",
                self.settings.max_ms / 60_000
            ));
        }
        let id = Uuid::parse_str(&job.recording_id).map_err(|e| e.to_string())?;
        // The file itself on disk; a temp copy from an object store (the decoder seeks).
        let copy = match self.storage.local_copy(store, &id) {
            Ok(copy) => copy,
            Err(crate::storage::store::BlobError::NotFound) => {
                return jobs::analysis::missing_bytes(&self.db, &job.recording_id).map(|()| Outcome::Gone);
            }
            Err(e) => return Err(format!("cannot read the recording: {e}")),
        };
        let path = copy.path().to_path_buf();
        let (db, queue, recording_id) = (self.db.clone(), self.queue.clone(), job.recording_id.clone());
        let mut gone = false;
        let mut stopping = false;
        let mut keep_going = || {
            if queue.stopped() {
                stopping = true;
                return false;
            }
            let exists = db
                .conn()
                .ok()
                .and_then(|conn| {
                    conn.query_row("SELECT 1 FROM recordings WHERE id = ?1", [&recording_id], |_| Ok(()))
                        .optional()
                        .ok()
                })
                .map(|found| found.is_some());
            // A database that cannot answer is not a reason to give up.
            if exists == Some(false) {
                gone = true;
                return false;
            }
            true
        };
        let limits = Limits::for_size(size.max(0) as u64);
        let model = self.model()?;
        match model.transcribe(&path, limits, &mut keep_going)? {
            Some(transcript) => Ok(Outcome::Done(transcript)),
            None if stopping && !gone => Ok(Outcome::Stopped),
            None => Ok(Outcome::Gone),
        }
    }
}

fn finish(conn: &mut Connection, job: &Job, transcript: &super::Transcript, now: i64) -> Result<(), Error> {
    let tx = crate::recordings::write_transaction(conn)?;
    let exists: Option<i64> =
        tx.query_row("SELECT 1 FROM recordings WHERE id = ?1", [&job.recording_id], |r| r.get(0)).optional()?;
    if exists.is_some() {
        super::save_machine(&tx, &job.recording_id, transcript, now)?;
    }
    tx.execute("DELETE FROM jobs WHERE id = ?1 AND recording_id = ?2", rusqlite::params![job.id, job.recording_id])?;
    tx.commit()?;
    Ok(())
}

/// Queues transcription for a batch of analysed recordings that have none (stored before the
/// model was configured), newest first; 0 when none are left.
fn backfill(conn: &mut Connection, now: i64) -> Result<usize, Error> {
    jobs::table::backfill_kind(conn, now, JOB, BACKFILL_KEY, |waveform, transcript| {
        waveform == Some("ready") && transcript.is_none()
    })
}
