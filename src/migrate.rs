//! `recorder storage migrate --to s3|local`: moves every recording's bytes to the other store,
//! one recording at a time, safely beside a running server.
//!
//! For each recording still in the other store: copy its bytes (hashing the source as they are
//! read), read the copy back and compare its SHA-256 and size with the row's, then switch the
//! row to the new store and queue the source for deletion in one durable transaction, and only
//! then delete the source. An interruption at any point leaves every recording readable:
//! - before the switch, the row still names the source (a copy in the target is overwritten by
//!   the next run, or removed by `recorder check --repair` once old);
//! - after it, the source is in `pending_unlinks` and the next run (or the server's next start)
//!   deletes it.
//!
//! A recording deleted by the server while it was being copied is not switched, and its copy
//! is deleted. Running it again when everything has moved does nothing.

use crate::db::Db;
use crate::error::Error;
use crate::storage::store::{Backend, BlobError, Store, pending_path};
use crate::storage::{Storage, copy_hashed};
use rusqlite::{Connection, params};
use std::io::{self, Read};
use uuid::Uuid;

/// Rows read at a time.
const BATCH: i64 = 100;

/// What happened.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Recordings in the other store when it started.
    pub total: u64,
    pub total_bytes: u64,
    pub moved: u64,
    pub moved_bytes: u64,
    /// Deleted by the server while they were being copied.
    pub gone: u64,
    /// Not moved, with why (they stay where they were).
    pub failed: Vec<(String, String)>,
    /// Source deletes an earlier, interrupted run left queued, finished now.
    pub finished_deletes: usize,
}

/// Progress, for the command's output.
pub enum Event<'a> {
    Progress { done: u64, total: u64, bytes: u64, total_bytes: u64 },
    Failed { id: &'a str, why: &'a str },
}

struct Row {
    id: String,
    size: i64,
    sha256: String,
    store: Backend,
}

/// Moves every recording to `to`. Blocking.
pub fn run(db: &Db, storage: &Storage, to: Backend, on: &mut dyn FnMut(Event<'_>)) -> Result<Report, Error> {
    let target = storage.store(to).map_err(|e| e.api("migrating"))?;
    let mut conn = db.conn()?;
    let mut report = Report::default();
    // Deletes an interrupted run queued (and any the server has in flight: deleting twice is
    // harmless).
    let pending = crate::recordings::pending_unlinks(&conn)?;
    report.finished_deletes = crate::recordings::finish_unlinks(&conn, storage, &pending)?;
    let (total, total_bytes): (i64, i64) = conn.query_row(
        "SELECT count(*), coalesce(sum(size), 0) FROM recordings WHERE store <> ?1",
        [to.as_str()],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    (report.total, report.total_bytes) = (total.max(0) as u64, total_bytes.max(0) as u64);
    let mut after = String::new();
    let mut done = 0u64;
    loop {
        let rows = rows_after(&conn, to, &after)?;
        let Some(last) = rows.last() else { break };
        after = last.id.clone();
        for row in rows {
            match move_one(&mut conn, storage, target, &row) {
                Ok(true) => {
                    report.moved += 1;
                    report.moved_bytes += row.size.max(0) as u64;
                }
                Ok(false) => report.gone += 1,
                Err(why) => {
                    on(Event::Failed { id: &row.id, why: &why });
                    report.failed.push((row.id.clone(), why));
                }
            }
            done += 1;
            on(Event::Progress {
                done,
                total: report.total,
                bytes: report.moved_bytes,
                total_bytes: report.total_bytes,
            });
        }
    }
    Ok(report)
}

fn rows_after(conn: &Connection, to: Backend, after: &str) -> Result<Vec<Row>, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, size, sha256, store FROM recordings WHERE store <> ?1 AND id > ?2 ORDER BY id LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![to.as_str(), after, BATCH], |r| {
        Ok(Row { id: r.get(0)?, size: r.get(1)?, sha256: r.get(2)?, store: r.get(3)? })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Hashes what passes through.
struct Hashing<'a> {
    inner: &'a mut dyn Read,
    hasher: sha2::Sha256,
    bytes: u64,
}

impl Read for Hashing<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use sha2::Digest as _;
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Copies, verifies and switches one recording; `Ok(false)` when it was deleted meanwhile.
fn move_one(conn: &mut Connection, storage: &Storage, target: &dyn Store, row: &Row) -> Result<bool, String> {
    use sha2::Digest as _;
    let id = Uuid::parse_str(&row.id).map_err(|e| format!("malformed id: {e}"))?;
    let source = storage.store(row.store).map_err(|e| e.to_string())?;
    let size = row.size.max(0) as u64;
    let mut reader = match source.reader(&id) {
        Ok(reader) => reader,
        Err(BlobError::NotFound) if !in_store(conn, &row.id, row.store)? => return Ok(false),
        Err(BlobError::NotFound) => {
            return Err(format!("its bytes are missing from {} (`recorder check` reports it)", source.describe()));
        }
        Err(e) => return Err(format!("cannot read it from {}: {e}", source.describe())),
    };
    let mut hashing = Hashing { inner: &mut *reader, hasher: sha2::Sha256::new(), bytes: 0 };
    // The copy is noted before it is written: an interrupted run's copy is deleted at the next
    // start, and a copy no note names is never taken for litter.
    let keep = crate::recordings::keep_of(conn, &row.id).map_err(|e| e.to_string())?;
    let now = crate::clock::system_now_ms();
    crate::inflight::note(conn, &id, target.backend(), crate::inflight::Kind::New, now).map_err(|e| e.to_string())?;
    let copied = target.put_reader(&mut hashing, size, &id, keep.as_ref());
    let read_hash = crate::storage::hex(&hashing.hasher.finalize());
    if let Err(e) = copied {
        if !in_store(conn, &row.id, row.store)? {
            drop_copy(conn, target, &id);
            return Ok(false);
        }
        return Err(format!("cannot copy it to {}: {e}", target.describe()));
    }
    if read_hash != row.sha256 {
        drop_copy(conn, target, &id);
        return Err(format!(
            "its bytes in {} hash to {read_hash}, not the recorded {} (`recorder check --verify` reports it); left where it is",
            source.describe(),
            row.sha256
        ));
    }
    // The copy, read back: only a verified copy replaces the source.
    let verified =
        target.reader(&id).map_err(BlobError::into_io).and_then(|mut copy| copy_hashed(&mut copy, &mut io::sink()));
    match verified {
        Ok((bytes, hash)) if bytes == size && hash == row.sha256 => {}
        Ok((bytes, hash)) => {
            drop_copy(conn, target, &id);
            return Err(format!(
                "the copy in {} reads back as {bytes} bytes with SHA-256 {hash}, not {size} with {}; left where it is",
                target.describe(),
                row.sha256
            ));
        }
        Err(e) => return Err(format!("cannot read the copy back from {}: {e}", target.describe())),
    }
    let switched = switch(conn, &row.id, row.store, target.backend()).map_err(|e| e.to_string())?;
    let Some(pending) = switched else {
        // Deleted (or moved by another run) while it was copied: the copy is nobody's.
        if !in_store(conn, &row.id, target.backend())? {
            drop_copy(conn, target, &id);
        }
        return Ok(false);
    };
    crate::recordings::finish_unlinks(conn, storage, &[pending]).map_err(|e| e.to_string())?;
    Ok(true)
}

/// Deletes this run's own copy (noted in flight), then its note; a copy that cannot be deleted
/// keeps its note, and the next start deletes it.
fn drop_copy(conn: &Connection, target: &dyn Store, id: &Uuid) {
    match target.delete(id) {
        Ok(()) => {
            if let Err(e) = crate::inflight::clear(conn, id, target.backend()) {
                log::warn!("cannot clear the in-flight note of {id}: {}", e);
            }
        }
        Err(e) => log::warn!("cannot remove the copy of {id} from {}: {e}", target.describe()),
    }
}

/// [`crate::recordings::in_store`], its error as this module reports them.
fn in_store(conn: &Connection, id: &str, store: Backend) -> Result<bool, String> {
    crate::recordings::in_store(conn, id, store).map_err(|e| e.to_string())
}

/// Points the row at the new store and queues the source for deletion, in one transaction
/// flushed through the WAL before the source is touched. `None` when the row is no longer in
/// the source store.
fn switch(conn: &mut Connection, id: &str, from: Backend, to: Backend) -> Result<Option<String>, Error> {
    let uuid = Uuid::parse_str(id).map_err(|e| Error::internal("migrating", e))?;
    crate::db::durably(conn, |conn| {
        let tx = crate::recordings::write_transaction(conn)?;
        let changed = tx.execute(
            "UPDATE recordings SET store = ?1 WHERE id = ?2 AND store = ?3",
            params![to.as_str(), id, from.as_str()],
        )?;
        if changed == 0 {
            return Ok(None);
        }
        // The copy has its row now: no longer in flight.
        crate::inflight::clear(&tx, &uuid, to)?;
        let path = pending_path(from, &uuid);
        tx.execute(
            "INSERT OR IGNORE INTO pending_unlinks (path, created_at) VALUES (?1, ?2)",
            params![path, crate::clock::system_now_ms()],
        )?;
        tx.commit()?;
        Ok(Some(path))
    })
}
