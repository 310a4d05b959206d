//! The in-flight journal: bytes on their way into a store are noted (the `in_flight` table)
//! before they are written there, and the note is cleared in the transaction that inserts their
//! recording. A note is the only proof that stored bytes without a row are this installation's
//! own litter; bytes that no note names are never deleted (see `maintenance` and
//! `lostfound`).
//!
//! Notes are settled once their process has stopped: at the server's start, at the start of the
//! commands that write to a store, and hourly for other processes' notes. Each costs one small
//! SQLite commit per stored recording (no fsync of its own: with `synchronous=NORMAL` a crash of
//! the process keeps it; a power cut may lose it, and then the bytes it named are kept in
//! lost+found instead of being deleted, the safe side).

use crate::db::Db;
use crate::error::Error;
use crate::storage::Storage;
use crate::storage::store::Backend;
use rusqlite::{Connection, params};
use uuid::Uuid;

/// What a note is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Bytes under an id this process made up (an upload, a migration's copy): without a row
    /// they are litter, deleted.
    New,
    /// A file `check --recover` is moving out of lost+found: without a row it goes back there.
    Recovered,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::New => "new",
            Kind::Recovered => "recovered",
        }
    }
}

/// Notes bytes about to be written as recording `id` in `store`. Commit it before writing.
pub fn note(conn: &Connection, id: &Uuid, store: Backend, kind: Kind, now_ms: i64) -> Result<(), Error> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO in_flight (id, store, kind, pid, noted_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![id.hyphenated().to_string(), store.as_str(), kind.as_str(), std::process::id(), now_ms])?;
    Ok(())
}

/// Clears a note: in the transaction that inserts the recording, or once its bytes are gone.
pub fn clear(conn: &Connection, id: &Uuid, store: Backend) -> Result<(), Error> {
    conn.prepare_cached("DELETE FROM in_flight WHERE id = ?1 AND store = ?2")?
        .execute(params![id.hyphenated().to_string(), store.as_str()])?;
    Ok(())
}

/// Whether bytes are noted as in flight (another process may be storing them right now).
pub fn is_noted(conn: &Connection, id: &str, store: Backend) -> Result<bool, Error> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM in_flight WHERE id = ?1 AND store = ?2")?
        .exists(params![id, store.as_str()])?)
}

/// What settling did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    /// Interrupted uploads' and copies' bytes deleted.
    pub deleted: usize,
    /// Files an interrupted recovery was moving, back in lost+found.
    pub returned: usize,
    /// Notes whose recording had arrived.
    pub arrived: usize,
}

struct Note {
    id: String,
    store: Backend,
    kind: Kind,
    pid: u32,
}

/// Settles the notes of processes that have stopped; with `fresh` (a process that has noted
/// nothing yet) also those under its own pid, left by an earlier boot. Blocking.
pub fn settle(db: &Db, storage: &Storage, fresh: bool) -> Result<Settled, Error> {
    let conn = db.conn()?;
    let notes: Vec<Note> = {
        let mut stmt = conn.prepare("SELECT id, store, kind, pid FROM in_flight ORDER BY noted_at")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Backend>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(3)?))
        })?;
        rows.collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .map(|(id, store, kind, pid)| Note {
                id,
                store,
                kind: if kind == "recovered" { Kind::Recovered } else { Kind::New },
                pid: u32::try_from(pid).unwrap_or(0),
            })
            .collect()
    };
    let own = std::process::id();
    let mut settled = Settled::default();
    for note in notes {
        if (note.pid == own && !fresh) || (note.pid != own && crate::process::running(note.pid)) {
            continue;
        }
        let Ok(uuid) = Uuid::parse_str(&note.id) else { continue };
        // The object store is not configured now: the note waits until it is.
        let Ok(store) = storage.store(note.store) else { continue };
        if crate::recordings::in_store(&conn, &note.id, note.store)? {
            settled.arrived += 1;
        } else {
            match note.kind {
                Kind::New => {
                    if let Err(e) = store.delete(&uuid) {
                        log::warn!(
                            "cannot remove the bytes of interrupted upload {uuid} from {}: {e}",
                            store.describe()
                        );
                        continue;
                    }
                    log::info!("removed the bytes of upload {uuid}, interrupted before its recording was saved");
                    settled.deleted += 1;
                }
                Kind::Recovered => {
                    if note.store == Backend::Local
                        && let Err(e) = crate::lostfound::put_back(storage.root(), &uuid)
                    {
                        log::warn!("cannot return {uuid} to lost+found: {e}");
                        continue;
                    }
                    settled.returned += 1;
                }
            }
        }
        clear(&conn, &uuid, note.store)?;
    }
    Ok(settled)
}
