//! `recorder backup DEST_DIR`: a consistent copy of the database and of every file its rows refer
//! to, taken while the server keeps serving. DEST_DIR is then a data directory of its own.
//!
//! The order makes an interrupted backup harmless and a repeated one cheap:
//! 1. the database is copied with SQLite's online backup API in one step (one read snapshot,
//!    so it is consistent however busy the server is) to `DEST/tmp/`;
//! 2. each file a copied row refers to is copied unless DEST already has it (files never change
//!    once written, so a file of the right size is the same file): to `DEST/tmp/`, fsynced,
//!    renamed into place;
//! 3. rows whose file was deleted after the snapshot are left out of the copy;
//! 4. the new database replaces `DEST/recorder.db` in one rename;
//! 5. only then are files the new database no longer refers to removed from DEST.
//!
//! Until step 4 DEST keeps the previous backup's database, whose files are all still there.

use crate::storage::store::{BlobError, Place, Store as _};
use crate::storage::{Storage, copy_hashed, sync_dir};
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, params};
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::time::Duration;
use uuid::Uuid;

/// Why a backup failed; `usage` failures are the caller's mistake (exit 2).
#[derive(Debug)]
pub struct BackupError {
    pub message: String,
    pub usage: bool,
}

pub(crate) fn fail(message: impl Into<String>) -> BackupError {
    BackupError { message: message.into(), usage: false }
}

pub(crate) fn ctx<E: std::fmt::Display>(what: impl std::fmt::Display) -> impl FnOnce(E) -> BackupError {
    move |e| fail(format!("{what}: {e}"))
}

/// Progress, as it happens.
pub enum Event<'a> {
    /// The database was copied: its size in bytes.
    Database { bytes: u64 },
    /// Files: done so far of the total, with bytes copied so far of the bytes to look at.
    Files { done: u64, total: u64, copied_bytes: u64, total_bytes: u64 },
    /// A recording whose stored bytes do not hash to its sha256 (copied all the same).
    HashMismatch { id: &'a str },
    /// A recording whose file is missing on the server: left out of the backup.
    MissingOnServer { id: &'a str },
}

/// What a backup did.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub recordings: u64,
    pub copied_files: u64,
    pub copied_bytes: u64,
    pub present_files: u64,
    /// Recordings deleted on the server after the snapshot, so not in the backup.
    pub left_out: u64,
    /// Recordings whose file is missing on the server itself (left out too; `recorder check`).
    pub missing_on_server: u64,
    /// Files in DEST from an earlier backup that the new one no longer has.
    pub removed_files: u64,
    pub hash_mismatches: u64,
    /// Damaged recordings that `recorder check --repair` already marked and moved to their
    /// owner's trash: copied as they are (left out where the file is missing), not counted above.
    pub marked_damaged: u64,
}

struct Row {
    id: String,
    size: i64,
    sha256: String,
    /// Marked damaged by `check --repair`: its owner has been told.
    marked: bool,
    store: crate::storage::store::Backend,
}

/// Backs the data directory of `source` up into `dest`. Blocking.
///
/// Refuses (unless `force`) to replace a backup that the new one would mostly empty: a wrong
/// or freshly recreated data directory must not wipe a good backup.
pub fn run(source: &Storage, dest: &Path, force: bool, on: &mut dyn FnMut(Event<'_>)) -> Result<Report, BackupError> {
    check_destination(source.root(), dest)?;
    // Storage::open creates a missing DEST readable by its owner only.
    let target = Storage::open(dest).map_err(ctx(format!("cannot use {}", dest.display())))?;
    let _lock =
        crate::storage::lock_dir(dest).map_err(ctx(format!("cannot lock {}", dest.display())))?.ok_or_else(|| {
            fail(format!("{} is in use by another recorder (a server, or another backup)", dest.display()))
        })?;
    let snapshot = target.tmp_dir().join("recorder.db.partial");
    remove_db_files(&snapshot, &["", "-wal", "-shm", "-journal"])?;

    let db_bytes = copy_database(&source.db_path(), &snapshot)?;
    on(Event::Database { bytes: db_bytes });

    let mut report = Report::default();
    let source_conn = Connection::open(source.db_path()).map_err(ctx(source.db_path().display()))?;
    let mut conn = Connection::open(&snapshot).map_err(ctx(snapshot.display()))?;
    let (total, total_bytes): (i64, i64) = conn
        .query_row("SELECT count(*), coalesce(sum(size), 0) FROM recordings", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(ctx("reading the copied database"))?;
    let (total, total_bytes) = (total.max(0) as u64, total_bytes.max(0) as u64);
    let mut left_out = Vec::new();
    let mut after = String::new();
    let mut done = 0u64;
    let mut marked_missing = 0u64;
    loop {
        let rows = rows_after(&conn, &after)?;
        let Some(last) = rows.last() else { break };
        after = last.id.clone();
        for row in rows {
            match copy_file(source, &target, &row, &conn)? {
                Outcome::Present => report.present_files += 1,
                Outcome::Copied { bytes, hash_ok } => {
                    report.copied_files += 1;
                    report.copied_bytes += bytes;
                    if !hash_ok && row.marked {
                        report.marked_damaged += 1;
                    } else if !hash_ok {
                        report.hash_mismatches += 1;
                        on(Event::HashMismatch { id: &row.id });
                    }
                }
                Outcome::Gone => {
                    if still_listed(&source_conn, &row.id)? {
                        if row.marked {
                            report.marked_damaged += 1;
                            marked_missing += 1;
                        } else {
                            report.missing_on_server += 1;
                            on(Event::MissingOnServer { id: &row.id });
                        }
                    }
                    left_out.push(row.id.clone());
                }
            }
            done += 1;
        }
        on(Event::Files { done, total, copied_bytes: report.copied_bytes, total_bytes });
    }

    // Rows deleted after the snapshot, and deletes the server had queued: not part of the copy.
    let tx = conn.transaction().map_err(ctx("updating the copied database"))?;
    for id in &left_out {
        tx.execute("DELETE FROM recordings WHERE id = ?1", [id]).map_err(ctx("updating the copied database"))?;
    }
    tx.execute("DELETE FROM pending_unlinks", []).map_err(ctx("updating the copied database"))?;
    // Every recording's bytes are in the backup's own recordings/, wherever the server keeps
    // them: the backup works as a data directory on its own.
    tx.execute("UPDATE recordings SET store = 'local' WHERE store <> 'local'", [])
        .map_err(ctx("updating the copied database"))?;
    tx.commit().map_err(ctx("updating the copied database"))?;
    report.left_out = left_out.len() as u64 - report.missing_on_server - marked_missing;
    report.recordings = total - left_out.len() as u64;
    let keep = referenced_ids(&conn)?;
    if !force {
        refuse_shrinking(&conn, &target.db_path(), dest)?;
    }
    drop(conn);

    publish(&snapshot, &target.db_path())?;
    report.removed_files = remove_unreferenced(&target, &keep)?;
    Ok(report)
}

/// DEST must not be the data directory (or inside it), and must be empty or a data directory.
fn check_destination(source: &Path, dest: &Path) -> Result<(), BackupError> {
    let usage = |message: String| BackupError { message, usage: true };
    let source = fs::canonicalize(source).map_err(ctx(format!("data directory {}", source.display())))?;
    if resolve(dest).starts_with(&source) {
        return Err(usage(format!("{} is inside the data directory {}", dest.display(), source.display())));
    }
    if dest.exists() && !dest.is_dir() {
        return Err(usage(format!("{} exists and is not a directory", dest.display())));
    }
    if let Ok(dest_real) = fs::canonicalize(dest) {
        let looks_like_data_dir = dest_real.join("recorder.db").exists() || dest_real.join("recordings").is_dir();
        let empty = fs::read_dir(&dest_real).map_err(ctx(dest.display()))?.next().is_none();
        if !empty && !looks_like_data_dir {
            return Err(usage(format!(
                "{} is neither empty nor a recorder data directory; choose an empty directory",
                dest.display()
            )));
        }
    }
    Ok(())
}

/// Whether the server still has a row for this recording.
fn still_listed(source: &Connection, id: &str) -> Result<bool, BackupError> {
    source
        .prepare_cached("SELECT 1 FROM recordings WHERE id = ?1")
        .and_then(|mut stmt| stmt.exists([id]))
        .map_err(ctx("reading the server's database"))
}

/// Refuses a new backup that would replace the previous one with one sharing none of its
/// accounts, or with fewer than half of its recordings.
fn refuse_shrinking(new: &Connection, previous: &Path, dest: &Path) -> Result<(), BackupError> {
    if !previous.exists() {
        return Ok(());
    }
    let read = |conn: &Connection| -> rusqlite::Result<(i64, HashSet<String>)> {
        let count = conn.query_row("SELECT count(*) FROM recordings", [], |r| r.get(0))?;
        let mut stmt = conn.prepare("SELECT id FROM users")?;
        let users = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        Ok((count, users))
    };
    let old = Connection::open_with_flags(previous, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|conn| read(&conn))
        .map_err(ctx(format!("reading the previous backup {}", previous.display())))?;
    let now = read(new).map_err(ctx("reading the copied database"))?;
    let (old_count, old_users) = old;
    let (new_count, new_users) = now;
    let strangers = !old_users.is_empty() && old_users.is_disjoint(&new_users);
    let shrinking = old_count >= 10 && new_count * 2 < old_count;
    if strangers || shrinking {
        return Err(fail(format!(
            "refusing to replace the backup in {}: it holds {old_count} recordings{}, this data directory {new_count}; \
             is this the right data directory? Pass --force to replace it anyway",
            dest.display(),
            if strangers { " of other accounts" } else { "" }
        )));
    }
    Ok(())
}

/// The absolute path `path` names once created: its nearest existing ancestor resolved, the rest
/// appended.
pub(crate) fn resolve(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    for ancestor in absolute.ancestors() {
        if let Ok(real) = fs::canonicalize(ancestor) {
            let rest = absolute.strip_prefix(ancestor).unwrap_or(Path::new(""));
            return real.join(rest);
        }
    }
    absolute
}

/// Copies the live database into `to` with the online backup API: one step, one read snapshot.
pub(crate) fn copy_database(from: &Path, to: &Path) -> Result<u64, BackupError> {
    let src = Connection::open(from).map_err(ctx(from.display()))?;
    src.busy_timeout(Duration::from_secs(10)).map_err(ctx(from.display()))?;
    let mut dst = Connection::open(to).map_err(ctx(to.display()))?;
    {
        let backup = Backup::new(&src, &mut dst).map_err(ctx("starting the database backup"))?;
        let mut waits = 0;
        loop {
            match backup.step(-1).map_err(ctx("copying the database"))? {
                StepResult::Done => break,
                StepResult::More => {}
                StepResult::Busy | StepResult::Locked if waits < 600 => {
                    waits += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                _ => return Err(fail("copying the database: it stayed locked for a minute")),
            }
        }
    }
    // A single file, with no -wal beside it, is what gets renamed into place.
    dst.pragma_update_and_check(None, "journal_mode", "DELETE", |_| Ok(())).map_err(ctx("copying the database"))?;
    drop(dst);
    drop(src);
    Ok(fs::metadata(to).map(|m| m.len()).unwrap_or(0))
}

fn rows_after(conn: &Connection, after: &str) -> Result<Vec<Row>, BackupError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, size, sha256, problem IS NOT NULL, store FROM recordings WHERE id > ?1 ORDER BY id LIMIT 1000",
        )
        .map_err(ctx("reading the copied database"))?;
    let rows = stmt
        .query_map(params![after], |r| {
            Ok(Row { id: r.get(0)?, size: r.get(1)?, sha256: r.get(2)?, marked: r.get(3)?, store: r.get(4)? })
        })
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>());
    rows.map_err(ctx("reading the copied database"))
}

enum Outcome {
    Present,
    Copied {
        bytes: u64,
        hash_ok: bool,
    },
    /// The source file is gone: the recording was deleted after the snapshot.
    Gone,
}

fn copy_file(source: &Storage, target: &Storage, row: &Row, copied_db: &Connection) -> Result<Outcome, BackupError> {
    let Ok(id) = Uuid::parse_str(&row.id) else {
        log::warn!("recording row with a malformed id {:?} left out", row.id);
        return Ok(Outcome::Gone);
    };
    let relative = Storage::relative_path(&id);
    if fs::metadata(target.path(&relative)).is_ok_and(|m| m.len() == row.size as u64) {
        return Ok(Outcome::Present);
    }
    let partial = target.tmp_dir().join(format!("{id}.partial"));
    let reader = source.store(row.store).and_then(|store| store.reader(&id));
    let gone = matches!(reader, Err(BlobError::NotFound));
    let result = reader.map_err(BlobError::into_io).and_then(|mut reader| {
        let file = {
            use std::os::unix::fs::OpenOptionsExt as _;
            fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&partial)?
        };
        let mut out = BufWriter::with_capacity(256 * 1024, file);
        let (bytes, hash) = copy_hashed(&mut reader, &mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok::<_, io::Error>((bytes, hash))
    });
    match result {
        Ok((bytes, hash)) => {
            // The backup's files keep their owner and name, as the copied row says, for a
            // recovery from them alone (no request to the store for it).
            let keep = crate::recordings::keep_of(copied_db, &row.id).map_err(|e| fail(e.to_string()))?;
            target
                .local()
                .put_file(&partial, &id, Place::Move, keep.as_ref())
                .map_err(ctx(format!("cannot store {relative} in the backup")))?;
            Ok(Outcome::Copied { bytes, hash_ok: hash == row.sha256 })
        }
        Err(e) => {
            let _ = fs::remove_file(&partial);
            if gone {
                Ok(Outcome::Gone)
            } else {
                Err(fail(format!("cannot copy recording {id} from {}: {e}", source_name(source, row.store))))
            }
        }
    }
}

/// The store a recording is copied from, for messages.
fn source_name(source: &Storage, backend: crate::storage::store::Backend) -> String {
    source.store(backend).map(|s| s.describe()).unwrap_or_else(|e| e.to_string())
}

fn referenced_ids(conn: &Connection) -> Result<HashSet<String>, BackupError> {
    let mut stmt = conn.prepare("SELECT id FROM recordings").map_err(ctx("reading the copied database"))?;
    let ids = stmt.query_map([], |r| r.get(0)).and_then(|rows| rows.collect::<Result<HashSet<String>, _>>());
    ids.map_err(ctx("reading the copied database"))
}

/// Removes a database file (suffix "") and its journal companions, whichever are present.
fn remove_db_files(db: &Path, suffixes: &[&str]) -> Result<(), BackupError> {
    for suffix in suffixes {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        let path = PathBuf::from(name);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(fail(format!("cannot remove {}: {e}", path.display())));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Makes the new database durable and puts it in place of the previous backup's.
pub(crate) fn publish(snapshot: &Path, db: &Path) -> Result<(), BackupError> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(snapshot, fs::Permissions::from_mode(0o600)).map_err(ctx(snapshot.display()))?;
    File::open(snapshot).and_then(|f| f.sync_all()).map_err(ctx(snapshot.display()))?;
    // A -wal left beside the old database would be replayed into the new one.
    remove_db_files(db, &["-wal", "-shm", "-journal"])?;
    fs::rename(snapshot, db).map_err(ctx(format!("cannot move the database into {}", db.display())))?;
    if let Some(dir) = db.parent() {
        sync_dir(dir).map_err(ctx(dir.display()))?;
    }
    Ok(())
}

fn remove_unreferenced(target: &Storage, keep: &HashSet<String>) -> Result<u64, BackupError> {
    let mut removed = 0;
    let local = target.local();
    for object in local.list().map_err(ctx("listing the backup's recordings/"))? {
        if !keep.contains(&object.id.hyphenated().to_string()) {
            local.delete(&object.id).map_err(ctx(format!("cannot remove {} from the backup", object.id)))?;
            removed += 1;
        }
    }
    Ok(removed)
}
