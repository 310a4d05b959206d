//! The one queue loop every job kind runs on: a worker thread per kind, woken when a job is
//! queued, stopped at shutdown, its writes on the runtime's blocking pool.

use crate::db::Db;
use crate::error::Error;
use rusqlite::Connection;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::table::{Job, claim, owner};

/// How often an idle worker looks at the queue without being woken.
const IDLE_POLL: Duration = Duration::from_secs(30);

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

    /// Starts a worker thread for one kind of job over this queue; `changes` hears of every
    /// recording a job of it finished.
    pub fn start<K: JobKind>(
        &self,
        kind: K,
        db: Db,
        clock: crate::clock::Clock,
        changes: crate::changes::Notifier,
    ) -> std::io::Result<()> {
        let queue = self.clone();
        let writes = Writes(tokio::runtime::Handle::try_current().ok());
        std::thread::Builder::new().name(kind.thread().into()).spawn(move || {
            crate::auth::lower_priority(kind.name());
            queue.work(kind, &db, &clock, &changes, &writes);
        })?;
        Ok(())
    }

    /// The one queue loop: claim the oldest job of the kind, run it, tell its owner's live
    /// streams and the queue it feeds; with nothing queued, backfill, then let the kind idle
    /// and sleep until woken.
    fn work<K: JobKind>(
        &self,
        mut kind: K,
        db: &Db,
        clock: &crate::clock::Clock,
        changes: &crate::changes::Notifier,
        writes: &Writes,
    ) {
        let name = kind.name();
        while !self.stopped() {
            let (pool, now) = (db.clone(), clock.now_ms());
            let next = writes.run(move || claim(&mut *pool.conn()?, now, name));
            match next {
                Ok(Some(job)) => {
                    let ok = kind.run(&job, writes);
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
                    let backfill = kind.backfill();
                    move || backfill(&mut *pool.conn()?, now)
                }) {
                    Ok(0) => {
                        kind.idle();
                        self.idle();
                    }
                    Ok(n) => log::info!("queued {n} earlier recordings for {name}"),
                    Err(e) => {
                        log::error!("{name} backfill: {e}");
                        self.idle();
                    }
                },
                Err(e) => {
                    log::error!("{name} queue: {e}");
                    self.idle();
                }
            }
        }
    }
}

/// One kind of background job over the durable queue (analysis, transcription).
pub trait JobKind: Send + 'static {
    /// The kind's name in the `jobs` table.
    fn name(&self) -> &'static str;
    /// Its worker thread's name (at most 15 bytes, as the kernel keeps it).
    fn thread(&self) -> &'static str;
    /// Runs one claimed job and records its outcome (through `writes`); false when it failed.
    fn run(&mut self, job: &Job, writes: &Writes) -> bool;
    /// Queues a batch of recordings from before this kind ran; how many (0: none are left).
    fn backfill(&self) -> fn(&mut Connection, i64) -> Result<usize, Error>;
    /// Nothing is queued: let go of what an idle worker should not hold.
    fn idle(&mut self) {}
}

/// Where the worker's database writes run: on the runtime's blocking pool, at normal priority.
/// The worker thread is `SCHED_IDLE`; a write transaction it held while preempted by requests
/// would hold up every request's write behind it (priority inversion).
pub struct Writes(Option<tokio::runtime::Handle>);

impl Writes {
    pub fn run<T: Send + 'static>(
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
