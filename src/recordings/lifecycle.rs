//! A recording's life after it is stored: renamed, trashed, restored, purged (its row and
//! the queued delete of its bytes in one transaction), and the usage it counts.

use crate::error::Error;
use crate::storage::Storage;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use uuid::Uuid;

use super::row::{COLUMNS, Recording, from_row, get, write_transaction};

/// Renames a recording.
pub fn rename(conn: &Connection, user_id: &str, id: &str, name: &str) -> Result<Option<Recording>, Error> {
    let changed =
        conn.execute("UPDATE recordings SET name = ?1 WHERE id = ?2 AND user_id = ?3", params![name, id, user_id])?;
    if changed == 0 { Ok(None) } else { get(conn, user_id, id) }
}

/// Moves a recording to the trash; false when the user has no such recording. A recording
/// already in the trash stays as it is.
pub fn trash(conn: &Connection, user_id: &str, id: &str, now: i64, retention_ms: i64) -> Result<bool, Error> {
    let changed = conn.execute(
        "UPDATE recordings SET deleted_at = ?1, purge_at = ?2 WHERE id = ?3 AND user_id = ?4 AND deleted_at IS NULL",
        params![now, now + retention_ms, id, user_id],
    )?;
    Ok(changed > 0 || get(conn, user_id, id)?.is_some())
}

/// Takes a recording out of the trash.
pub fn restore(conn: &Connection, user_id: &str, id: &str) -> Result<Option<Recording>, Error> {
    let changed = conn.execute(
        "UPDATE recordings SET deleted_at = NULL, purge_at = NULL
         WHERE id = ?1 AND user_id = ?2 AND deleted_at IS NOT NULL",
        params![id, user_id],
    )?;
    if changed == 0 { Ok(None) } else { get(conn, user_id, id) }
}

/// Moves several of the user's recordings to the trash in one transaction, as [`trash`] does
/// each: for every id, whether the user has it (an id in the trash already stays as it is).
pub fn trash_many(
    conn: &mut Connection,
    user_id: &str,
    ids: &[String],
    now: i64,
    retention_ms: i64,
) -> Result<Vec<bool>, Error> {
    let tx = write_transaction(conn)?;
    let done = ids.iter().map(|id| trash(&tx, user_id, id, now, retention_ms)).collect::<Result<_, _>>()?;
    tx.commit()?;
    Ok(done)
}

/// Takes several of the user's recordings out of the trash in one transaction: for every id,
/// whether it was in the user's trash.
pub fn restore_many(conn: &mut Connection, user_id: &str, ids: &[String]) -> Result<Vec<bool>, Error> {
    let tx = write_transaction(conn)?;
    let done = ids.iter().map(|id| Ok(restore(&tx, user_id, id)?.is_some())).collect::<Result<_, Error>>()?;
    tx.commit()?;
    Ok(done)
}

/// Several of the user's recordings outside the trash, in the order asked; `None` when any id
/// is not one of them (unknown, someone else's or in the trash).
pub fn live_many(conn: &Connection, user_id: &str, ids: &[String]) -> Result<Option<Vec<Recording>>, Error> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM recordings WHERE id = ?1 AND user_id = ?2 AND deleted_at IS NULL"
    ))?;
    let mut found = Vec::with_capacity(ids.len());
    for id in ids {
        match stmt.query_row(params![id, user_id], from_row).optional()? {
            Some(recording) => found.push(recording),
            None => return Ok(None),
        }
    }
    Ok(Some(found))
}

/// Counts and bytes in the list and in the trash.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub recordings: i64,
    pub bytes: i64,
    pub trash_recordings: i64,
    pub trash_bytes: i64,
}

/// The user's totals, from the counters the `recordings` triggers keep (one indexed row,
/// whatever the number of recordings).
pub fn usage(conn: &Connection, user_id: &str) -> Result<Usage, Error> {
    let mut stmt =
        conn.prepare_cached("SELECT recordings, bytes, trash_recordings, trash_bytes FROM usage WHERE user_id = ?1")?;
    let usage = stmt
        .query_row([user_id], |r| {
            Ok(Usage { recordings: r.get(0)?, bytes: r.get(1)?, trash_recordings: r.get(2)?, trash_bytes: r.get(3)? })
        })
        .optional()?;
    Ok(usage.unwrap_or_default())
}

/// The user's totals summed from the rows themselves (a scan of their recordings): what the
/// counters must equal.
pub fn usage_from_rows(conn: &Connection, user_id: &str) -> Result<Usage, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT deleted_at IS NULL, count(*), coalesce(sum(size), 0) FROM recordings WHERE user_id = ?1
         GROUP BY deleted_at IS NULL",
    )?;
    let mut usage = Usage::default();
    let rows = stmt.query_map([user_id], |r| Ok((r.get::<_, bool>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))?;
    for row in rows {
        match row? {
            (true, n, bytes) => (usage.recordings, usage.bytes) = (n, bytes),
            (false, n, bytes) => (usage.trash_recordings, usage.trash_bytes) = (n, bytes),
        }
    }
    Ok(usage)
}

/// Sets the user's counters to the sums of their rows, in one transaction (safe beside a
/// running server: the triggers' increments wait for it).
pub fn recount_usage(conn: &mut Connection, user_id: &str) -> Result<Usage, Error> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let usage = usage_from_rows(&tx, user_id)?;
    tx.execute(
        "INSERT INTO usage (user_id, recordings, bytes, trash_recordings, trash_bytes) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (user_id) DO UPDATE SET recordings = excluded.recordings, bytes = excluded.bytes,
         trash_recordings = excluded.trash_recordings, trash_bytes = excluded.trash_bytes",
        params![user_id, usage.recordings, usage.bytes, usage.trash_recordings, usage.trash_bytes],
    )?;
    tx.commit()?;
    Ok(usage)
}

/// Which recordings a permanent delete takes.
pub enum Purge {
    /// One recording, wherever it is.
    One(String),
    /// One recording, only if it is in the trash.
    OneInTrash(String),
    /// The user's whole trash.
    Trash,
}

pub(super) fn queue(tx: &Transaction<'_>, ids: &[String], now: i64) -> Result<Vec<String>, Error> {
    let mut paths = Vec::with_capacity(ids.len());
    let mut delete = tx.prepare_cached("DELETE FROM recordings WHERE id = ?1")?;
    let mut pending = tx.prepare_cached("INSERT OR IGNORE INTO pending_unlinks (path, created_at) VALUES (?1, ?2)")?;
    let mut store = tx.prepare_cached("SELECT store FROM recordings WHERE id = ?1")?;
    for id in ids {
        let Ok(uuid) = Uuid::parse_str(id) else { continue };
        let backend = store.query_row([id], |r| r.get(0)).optional()?.unwrap_or_default();
        let path = crate::storage::store::pending_path(backend, &uuid);
        pending.execute(params![path, now])?;
        delete.execute([id])?;
        paths.push(path);
    }
    Ok(paths)
}

pub(super) fn ids(tx: &Transaction<'_>, sql: &str, params: impl rusqlite::Params) -> Result<Vec<String>, Error> {
    let mut stmt = tx.prepare(sql)?;
    let rows = stmt.query_map(params, |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Deletes the rows a purge takes and queues their files; commit, then `finish_unlinks`.
pub fn queue_purge(conn: &mut Connection, user_id: &str, which: Purge, now: i64) -> Result<Vec<String>, Error> {
    crate::db::durably(conn, |conn| queue_purge_in(conn, user_id, which, now))
}

pub(super) fn queue_purge_in(
    conn: &mut Connection,
    user_id: &str,
    which: Purge,
    now: i64,
) -> Result<Vec<String>, Error> {
    let tx = write_transaction(conn)?;
    let ids = match which {
        Purge::One(id) => ids(&tx, "SELECT id FROM recordings WHERE id = ?1 AND user_id = ?2", params![id, user_id])?,
        Purge::OneInTrash(id) => ids(
            &tx,
            "SELECT id FROM recordings WHERE id = ?1 AND user_id = ?2 AND deleted_at IS NOT NULL",
            params![id, user_id],
        )?,
        Purge::Trash => ids(&tx, "SELECT id FROM recordings WHERE user_id = ?1 AND deleted_at IS NOT NULL", [user_id])?,
    };
    let paths = queue(&tx, &ids, now)?;
    tx.commit()?;
    Ok(paths)
}

/// Deletes several of the user's recordings (in the trash or not) and queues their files, in one
/// transaction; commit, then `finish_unlinks` with the paths. For every id, whether the user had
/// it.
pub fn queue_purge_many(
    conn: &mut Connection,
    user_id: &str,
    ids: &[String],
    now: i64,
) -> Result<(Vec<bool>, Vec<String>), Error> {
    crate::db::durably(conn, |conn| queue_purge_many_in(conn, user_id, ids, now))
}

pub(super) fn queue_purge_many_in(
    conn: &mut Connection,
    user_id: &str,
    ids: &[String],
    now: i64,
) -> Result<(Vec<bool>, Vec<String>), Error> {
    let tx = write_transaction(conn)?;
    let mut owned = Vec::with_capacity(ids.len());
    {
        let mut stmt = tx.prepare_cached("SELECT 1 FROM recordings WHERE id = ?1 AND user_id = ?2")?;
        for id in ids {
            owned.push(stmt.exists(params![id, user_id])?);
        }
    }
    let taken: Vec<String> = ids.iter().zip(&owned).filter(|(_, own)| **own).map(|(id, _)| id.clone()).collect();
    let paths = queue(&tx, &taken, now)?;
    tx.commit()?;
    Ok((owned, paths))
}

/// Queues every file of a user inside the caller's transaction (account deletion).
pub fn queue_unlinks_for_user(tx: &Transaction<'_>, user_id: &str, now: i64) -> Result<Vec<String>, Error> {
    let ids = ids(tx, "SELECT id FROM recordings WHERE user_id = ?1", [user_id])?;
    queue(tx, &ids, now)
}

/// Deletes up to `batch` trashed recordings whose time is up; commit, then `finish_unlinks`.
pub fn queue_expired(conn: &mut Connection, now: i64, batch: u32) -> Result<Vec<String>, Error> {
    crate::db::durably(conn, |conn| {
        let tx = write_transaction(conn)?;
        let ids = ids(&tx, "SELECT id FROM recordings WHERE purge_at <= ?1 LIMIT ?2", params![now, batch])?;
        let paths = queue(&tx, &ids, now)?;
        tx.commit()?;
        Ok(paths)
    })
}

/// Every path still queued (after a crash).
pub fn pending_unlinks(conn: &Connection) -> Result<Vec<String>, Error> {
    let mut stmt = conn.prepare("SELECT path FROM pending_unlinks")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Unlinks queued files and then forgets them; a failed unlink stays queued for the next try.
pub fn finish_unlinks(conn: &Connection, storage: &Storage, paths: &[String]) -> Result<usize, Error> {
    let mut done = 0;
    let mut forget = conn.prepare_cached("DELETE FROM pending_unlinks WHERE path = ?1")?;
    for path in paths {
        match storage.unlink_pending(path) {
            Ok(()) => {
                forget.execute([path])?;
                done += 1;
            }
            Err(e) => log::error!("cannot delete {path}: {e}; will retry within the hour"),
        }
    }
    Ok(done)
}
