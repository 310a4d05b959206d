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

pub mod analysis;
pub mod queue;
pub mod table;

pub use analysis::{Analysis, Settings, backfill, budget, failed_analyses, retry_undecodable, waveform};
pub use queue::{JobKind, Queue, Writes};
pub use table::{ANALYSIS, Counts, Job, MAX_ATTEMPTS, TRANSCRIPTION, counts, enqueue, recover};
