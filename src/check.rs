//! `recorder check`: compares the recording rows with the stored files, and with `--repair`
//! puts things right without ever deleting a stored file.
//!
//! What it finds is a problem or a note. Problems put data at risk (a recording whose bytes are
//! missing, damaged or unreadable): the exit status is 1 until they are repaired. Notes do not
//! (files no recording refers to, files in lost+found, a failed analysis such as a codec this
//! build cannot decode, usage counters that drifted): exit status 0. `--repair` moves damaged
//! recordings to their owner's trash, marked; moves files on disk that no recording refers to
//! into lost+found; and recounts usage. It never deletes a file, and leaves failed analyses
//! alone (nothing is wrong with the bytes). `--recover` turns lost files back into recordings.
//!
//! It is safe beside a running server. Files are immutable once committed, rows are inserted
//! only after their file is in place and deleted before their file is unlinked, so every
//! apparent problem is re-read before it is reported or repaired:
//! - a file without a row may be an upload between its rename and its insert: those are noted
//!   in flight (see [`crate::inflight`]), and files queued in `pending_unlinks` (a delete
//!   finishing) are not orphans either;
//! - a row without a file may have been deleted a moment ago, so the row is looked up again.

use crate::db::Db;
use crate::error::Error;
use crate::storage::Storage;
use crate::storage::store::{Backend, BlobError, Object, Store, pending_path};
use rusqlite::{Connection, OptionalExtension, params};
use std::io;
use uuid::Uuid;

/// How long a repaired recording stays in the trash when the trash is off (`retention_days = 0`):
/// its owner should get to see what happened.
const REPAIRED_MIN_RETENTION_MS: i64 = 30 * 24 * 3600 * 1000;

const BATCH: i64 = 1000;

/// What is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A row whose file is missing.
    MissingFile,
    /// A file no row refers to.
    Orphan,
    /// A file whose length is not the row's size.
    SizeMismatch,
    /// A file whose SHA-256 is not the row's (only with `verify`).
    HashMismatch,
    /// A file that exists but cannot be read (permissions, I/O errors): reported, never repaired.
    Unreadable,
    /// A user's usage counters differ from the sums of their rows (the id is the user's).
    UsageMismatch,
    /// The background analysis of a recording failed (a codec this build cannot decode, or
    /// bytes no decoder understands): a note.
    AnalysisFailed,
    /// A file in lost+found: a note until `--recover` brings it back.
    LostFound,
}

impl Kind {
    /// The label printed, and stored in `recordings.problem` for row problems.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::MissingFile => "missing_file",
            Kind::Orphan => "orphan_file",
            Kind::SizeMismatch => "size_mismatch",
            Kind::HashMismatch => "hash_mismatch",
            Kind::Unreadable => "unreadable",
            Kind::UsageMismatch => "usage_mismatch",
            Kind::AnalysisFailed => "analysis_failed",
            Kind::LostFound => "lost_found",
        }
    }

    /// Whether it puts data at risk (exit status 1); else it is a note.
    pub fn is_problem(self) -> bool {
        matches!(self, Kind::MissingFile | Kind::SizeMismatch | Kind::HashMismatch | Kind::Unreadable)
    }
}

/// One problem found.
#[derive(Debug, Clone)]
pub struct Problem {
    pub kind: Kind,
    /// The recording id (or the id in the orphan file's name).
    pub id: String,
    /// The recording's owner (none for an orphan file).
    pub owner: Option<String>,
    /// The file, relative to the data directory.
    pub path: String,
    pub detail: String,
    /// Already repaired by an earlier run: the row is in the trash, marked. Not counted.
    pub known: bool,
}

/// How to check.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub verify: bool,
    pub repair: bool,
    /// Repair even when most recordings' files are missing (else that looks like an unmounted
    /// disk, and nothing is moved).
    pub force: bool,
    pub now_ms: i64,
    pub retention_days: u32,
}

/// Progress and findings, as they happen.
pub enum Event<'a> {
    Problem(&'a Problem),
    /// Rows checked so far, of all rows; bytes hashed so far (with `verify`).
    Progress {
        rows: u64,
        total_rows: u64,
        hashed_bytes: u64,
    },
    /// What a repair of a recording did, or why it could not.
    Repaired {
        id: &'a str,
        result: &'a Result<&'static str, String>,
    },
}

/// The summary.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub rows: u64,
    pub row_bytes: u64,
    pub files: u64,
    pub problems: usize,
    /// Findings that put nothing at risk.
    pub notes: usize,
    pub known: usize,
    pub repaired: usize,
    pub repair_failures: usize,
    /// Repairs not attempted because most recordings' files were missing: how many.
    pub repair_refused: usize,
    pub by_kind: [usize; 8],
}

impl Report {
    fn count(&mut self, problem: &Problem) {
        if problem.known {
            self.known += 1;
            return;
        }
        if problem.kind.is_problem() {
            self.problems += 1;
        } else {
            self.notes += 1;
        }
        self.by_kind[problem.kind as usize] += 1;
    }

    /// Counts a repair of a problem (repairs of notes are only reported).
    fn repaired(&mut self, kind: Kind, result: &Result<&'static str, String>) {
        if !kind.is_problem() {
            return;
        }
        match result {
            Ok(_) => self.repaired += 1,
            Err(_) => self.repair_failures += 1,
        }
    }

    /// Whether anything is still wrong after this run.
    pub fn clean(&self) -> bool {
        self.problems == self.repaired && self.repair_failures == 0
    }
}

struct Row {
    id: String,
    size: i64,
    sha256: String,
    deleted: bool,
    problem: Option<String>,
    store: Backend,
}

/// Checks every row and every file. Blocking.
pub fn run(db: &Db, storage: &Storage, options: Options, on: &mut dyn FnMut(Event<'_>)) -> Result<Report, Error> {
    let mut conn = db.conn()?;
    let mut report = Report::default();
    let total_rows: i64 = conn.query_row("SELECT count(*) FROM recordings", [], |r| r.get(0))?;
    let mut hashed_bytes = 0u64;
    let mut repairs = Vec::new();
    let mut after = String::new();
    loop {
        let rows = rows_after(&conn, &after)?;
        let Some(last) = rows.last() else { break };
        after = last.id.clone();
        for row in rows {
            report.rows += 1;
            report.row_bytes += row.size.max(0) as u64;
            if let Some(problem) = check_row(&conn, storage, &row, options, &mut hashed_bytes)? {
                report.count(&problem);
                on(Event::Problem(&problem));
                if options.repair && !problem.known && problem.kind != Kind::Unreadable {
                    repairs.push((row.id.clone(), problem.kind));
                }
            }
        }
        on(Event::Progress { rows: report.rows, total_rows: total_rows.max(0) as u64, hashed_bytes });
    }
    // Most files missing looks like an unmounted disk or a wrong directory, not like damage:
    // moving every recording to the trash would only start the clock on deleting them.
    let missing = repairs.iter().filter(|(_, kind)| *kind == Kind::MissingFile).count();
    if !options.force && crate::maintenance::most_of(missing as u64, report.rows) {
        report.repair_refused = repairs.len();
    } else {
        for (id, kind) in repairs {
            let result = repair_row(&conn, &id, kind, options);
            report.repaired(kind, &result);
            on(Event::Repaired { id: &id, result: &result });
        }
    }
    check_files(&conn, storage, options, &mut report, on)?;
    check_lost_found(storage, &mut report, on)?;
    check_usage(&mut conn, options, &mut report, on)?;
    check_analysis(&conn, &mut report, on)?;
    Ok(report)
}

/// Notes every file in lost+found.
fn check_lost_found(storage: &Storage, report: &mut Report, on: &mut dyn FnMut(Event<'_>)) -> Result<(), Error> {
    let found = crate::lostfound::list(storage.root()).map_err(|e| Error::internal("listing lost+found", e))?;
    for file in found {
        let path = file.path.strip_prefix(storage.root()).unwrap_or(&file.path).display().to_string();
        let problem = Problem {
            kind: Kind::LostFound,
            id: file.id.hyphenated().to_string(),
            owner: None,
            path,
            detail: format!(
                "{} bytes no recording refers to, kept; `recorder check --recover` makes it a recording again",
                file.size
            ),
            known: false,
        };
        report.count(&problem);
        on(Event::Problem(&problem));
    }
    Ok(())
}

/// Notes recordings whose analysis failed, with the reason. Nothing is wrong with their bytes,
/// so `--repair` leaves them alone (a build that can decode them analyses them again when it
/// starts: see [`crate::jobs::retry_undecodable`]).
fn check_analysis(conn: &Connection, report: &mut Report, on: &mut dyn FnMut(Event<'_>)) -> Result<(), Error> {
    for (id, user_id, reason) in crate::jobs::failed_analyses(conn)? {
        let path = Uuid::parse_str(&id).map(|u| Storage::relative_path(&u)).unwrap_or_default();
        let username: Option<String> =
            conn.query_row("SELECT username FROM users WHERE id = ?1", [&user_id], |r| r.get(0)).optional()?;
        let problem = Problem {
            kind: Kind::AnalysisFailed,
            id: id.clone(),
            owner: username,
            path,
            detail: format!("analysis failed: {reason}"),
            known: false,
        };
        report.count(&problem);
        on(Event::Problem(&problem));
    }
    Ok(())
}

/// Compares each user's usage counters with the sums of their rows (both read in one snapshot,
/// so a change made meanwhile by the server is not a problem); `repair` recounts them.
fn check_usage(
    conn: &mut Connection,
    options: Options,
    report: &mut Report,
    on: &mut dyn FnMut(Event<'_>),
) -> Result<(), Error> {
    let users: Vec<(String, String)> = {
        let mut stmt = conn.prepare("SELECT id, username FROM users ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (user_id, username) in users {
        let (counted, summed) = {
            let tx = conn.transaction()?;
            let counted = crate::recordings::usage(&tx, &user_id)?;
            let summed = crate::recordings::usage_from_rows(&tx, &user_id)?;
            tx.finish()?;
            (counted, summed)
        };
        if counted == summed {
            continue;
        }
        let show = |u: &crate::recordings::Usage| {
            format!(
                "{} recordings ({} bytes), {} in the trash ({} bytes)",
                u.recordings, u.bytes, u.trash_recordings, u.trash_bytes
            )
        };
        let problem = Problem {
            kind: Kind::UsageMismatch,
            id: user_id.clone(),
            owner: Some(username),
            path: "usage".to_string(),
            detail: format!("the counters say {}; the rows add up to {}", show(&counted), show(&summed)),
            known: false,
        };
        report.count(&problem);
        on(Event::Problem(&problem));
        if options.repair {
            let result = crate::recordings::recount_usage(conn, &user_id)
                .map(|_| "counters recounted from the rows")
                .map_err(|e| e.to_string());
            report.repaired(Kind::UsageMismatch, &result);
            on(Event::Repaired { id: &user_id, result: &result });
        }
    }
    Ok(())
}

fn rows_after(conn: &Connection, after: &str) -> Result<Vec<Row>, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, size, sha256, deleted_at IS NOT NULL, problem, store FROM recordings WHERE id > ?1
         ORDER BY id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![after, BATCH], |r| {
        Ok(Row {
            id: r.get(0)?,
            size: r.get(1)?,
            sha256: r.get(2)?,
            deleted: r.get(3)?,
            problem: r.get(4)?,
            store: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn check_row(
    conn: &Connection,
    storage: &Storage,
    row: &Row,
    options: Options,
    hashed_bytes: &mut u64,
) -> Result<Option<Problem>, Error> {
    let Ok(uuid) = Uuid::parse_str(&row.id) else {
        log::warn!("recording row with a malformed id {:?} skipped", row.id);
        return Ok(None);
    };
    let path = pending_path(row.store, &uuid);
    let found = match storage.store(row.store).and_then(|store| Ok((store, store.size_of(&uuid)?))) {
        Ok((store, Some(len))) => {
            if len != row.size as u64 {
                Some((Kind::SizeMismatch, format!("the row says {} bytes, the file has {len}", row.size)))
            } else if options.verify {
                *hashed_bytes += len;
                match store
                    .reader(&uuid)
                    .map_err(BlobError::into_io)
                    .and_then(|mut r| crate::storage::copy_hashed(&mut r, &mut io::sink()))
                {
                    Ok((_, hash)) if hash == row.sha256 => None,
                    Ok((_, hash)) => Some((
                        Kind::HashMismatch,
                        format!("the row says sha256 {}, the file hashes to {hash}", row.sha256),
                    )),
                    // Deleted by the server while it was being read.
                    Err(e) if e.kind() == io::ErrorKind::NotFound && !crate::recordings::exists(conn, &row.id)? => None,
                    Err(e) => Some((Kind::Unreadable, format!("the file cannot be read: {e}"))),
                }
            } else {
                None
            }
        }
        // Deleted (or moved by a migration) a moment ago by the server? Then there is nothing
        // wrong.
        Ok((_, None)) => {
            if !crate::recordings::in_store(conn, &row.id, row.store)? {
                return Ok(None);
            }
            Some((Kind::MissingFile, "the file is missing".to_string()))
        }
        Err(e) => Some((Kind::Unreadable, format!("the file cannot be examined: {e}"))),
    };
    let Some((kind, detail)) = found else { return Ok(None) };
    Ok(Some(Problem {
        kind,
        id: row.id.clone(),
        owner: owner(conn, &row.id)?,
        path,
        detail,
        known: row.deleted && row.problem.is_some(),
    }))
}

/// Moves a damaged recording to the trash, marked, so its owner sees it; the file stays.
fn repair_row(conn: &Connection, id: &str, kind: Kind, options: Options) -> Result<&'static str, String> {
    let retention_ms = (i64::from(options.retention_days) * 24 * 3600 * 1000).max(REPAIRED_MIN_RETENTION_MS);
    let changed = conn
        .execute(
            "UPDATE recordings SET problem = ?1, deleted_at = coalesce(deleted_at, ?2),
                                   purge_at = max(coalesce(purge_at, 0), ?3)
             WHERE id = ?4",
            params![kind.as_str(), options.now_ms, options.now_ms + retention_ms, id],
        )
        .map_err(|e| format!("cannot update the row: {e}"))?;
    if changed == 0 { Err("the row is gone".into()) } else { Ok("moved to the trash, marked") }
}

fn check_files(
    conn: &Connection,
    storage: &Storage,
    options: Options,
    report: &mut Report,
    on: &mut dyn FnMut(Event<'_>),
) -> Result<(), Error> {
    let mut orphans = Vec::new();
    let stores: Vec<&dyn Store> =
        std::iter::once(storage.local() as &dyn Store).chain(storage.s3().map(|s3| s3 as &dyn Store)).collect();
    for store in stores {
        let backend = store.backend();
        let objects = store.list().map_err(|e| Error::internal(&format!("listing {}", store.describe()), e))?;
        report.files += objects.len() as u64;
        for batch in objects.chunks(BATCH as usize) {
            for Object { id: uuid, size, .. } in batch {
                // Asked now, not at the listing: a delete or an upload may have finished since.
                if !crate::maintenance::unreferenced(conn, uuid, backend)?
                    || !matches!(store.size_of(uuid), Ok(Some(_)))
                {
                    continue;
                }
                let path = pending_path(backend, uuid);
                let id = uuid.hyphenated().to_string();
                let copy = crate::recordings::exists(conn, &id)?;
                let problem = Problem {
                    kind: Kind::Orphan,
                    id,
                    owner: None,
                    path,
                    detail: if copy {
                        format!(
                            "{size} bytes, a copy left by an interrupted migration (the recording is in the other \
                             store); kept"
                        )
                    } else {
                        format!(
                            "{size} bytes no recording refers to, kept; `recorder check --recover` makes it a recording again"
                        )
                    },
                    known: false,
                };
                report.count(&problem);
                on(Event::Problem(&problem));
                // On disk, `--repair` moves it aside; in an object store it stays where it is.
                if options.repair && backend == Backend::Local && !copy {
                    orphans.push((problem.id, problem.path));
                }
            }
        }
    }
    // Most files without a row is a lost or replaced database: put the right one back first.
    if !options.force && crate::maintenance::most_of(orphans.len() as u64, report.files) {
        report.repair_refused += orphans.len();
        return Ok(());
    }
    for (id, path) in orphans {
        let result = to_lost_found(conn, storage, &id);
        report.repaired(Kind::Orphan, &result);
        on(Event::Repaired { id: &path, result: &result });
    }
    Ok(())
}

fn to_lost_found(conn: &Connection, storage: &Storage, id: &str) -> Result<&'static str, String> {
    let uuid = Uuid::parse_str(id).map_err(|e| e.to_string())?;
    // Looked up once more right before the move: a recording arriving now keeps its file.
    match crate::maintenance::unreferenced(conn, &uuid, Backend::Local) {
        Ok(true) => {}
        Ok(false) => return Err("a recording refers to it now; left alone".into()),
        Err(e) => return Err(e.to_string()),
    }
    crate::lostfound::put(storage.root(), &uuid).map_err(|e| format!("cannot move it: {e}"))?;
    Ok("moved to lost+found")
}

/// A problem as one line: kind, id, owner, path and detail.
pub fn describe(problem: &Problem) -> String {
    let owner = problem.owner.as_deref().map(|o| format!(" (of {o})")).unwrap_or_default();
    let mut line = format!("{:<14} {}{owner}  {}: {}", problem.kind.as_str(), problem.id, problem.path, problem.detail);
    if problem.known {
        line.push_str(" (already in its owner's trash, marked)");
    }
    line
}

/// A recording owner's username, for the report.
fn owner(conn: &Connection, id: &str) -> Result<Option<String>, Error> {
    Ok(conn
        .query_row("SELECT u.username FROM recordings r JOIN users u ON u.id = r.user_id WHERE r.id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?)
}
