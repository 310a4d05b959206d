//! Scheduled backups: `recorder backup` without a destination writes a dated snapshot into
//! `backup.dir` and keeps the newest `backup.keep`; `recorder restore SNAPSHOT` puts one back into
//! an empty data directory, verifying every file.
//!
//! A snapshot is a data directory of its own (`recorder.db`, `recordings/`), written as
//! `.partial-<name>` and renamed to `<name>` once complete, so a half-written snapshot is never
//! taken for one. Audio files never change once stored, so a new snapshot starts as hard links to
//! the previous one's files and copies only what is new: a week of snapshots costs one copy of
//! the audio plus seven databases. With the object store, each snapshot's database is also
//! uploaded under `<prefix>/.recorder-backups/`, so losing the machine's disk loses nothing.

use crate::backup::{BackupError, Report, ctx, fail};
use crate::storage::store::{Keep, Place, Store as _};
use crate::storage::{Storage, copy_hashed, sync_dir};
use rusqlite::Connection;
use std::fs;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// Snapshot directory names start with this; the rest is the UTC time, so names sort by age.
const PREFIX: &str = "recorder-";
const PARTIAL: &str = ".partial-";
/// Where snapshots' databases go in the object store, under the prefix.
pub const STORE_DIR: &str = ".recorder-backups";

/// What a snapshot run did.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub path: PathBuf,
    pub report: Report,
    /// Files linked from the previous snapshot instead of copied.
    pub linked: u64,
    /// Older snapshots removed to keep `backup.keep`.
    pub removed: Vec<PathBuf>,
    pub kept: usize,
    /// Where the database went in the object store, if it did.
    pub uploaded: Option<String>,
}

/// The complete snapshots in `dir`, oldest first.
pub fn list(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with(PREFIX) && entry.path().join("recorder.db").is_file() {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// Writes a new snapshot of `source` into `dir` and keeps the newest `keep`. Blocking.
pub fn take(
    source: &Storage,
    dir: &Path,
    keep: u32,
    now_ms: i64,
    on: &mut dyn FnMut(crate::backup::Event<'_>),
) -> Result<Snapshot, BackupError> {
    let data_dir = fs::canonicalize(source.root()).map_err(ctx(source.root().display()))?;
    if crate::backup::resolve(dir).starts_with(&data_dir) {
        return Err(BackupError {
            message: format!("backup.dir {} is inside the data directory {}", dir.display(), data_dir.display()),
            usage: true,
        });
    }
    fs::create_dir_all(dir).map_err(ctx(format!("cannot create {}", dir.display())))?;
    // A run that was interrupted left its partial snapshot: only links and copies, removed.
    for entry in fs::read_dir(dir).map_err(ctx(dir.display()))? {
        let entry = entry.map_err(ctx(dir.display()))?;
        if entry.file_name().to_string_lossy().starts_with(PARTIAL) {
            fs::remove_dir_all(entry.path()).map_err(ctx(format!("cannot remove {}", entry.path().display())))?;
        }
    }
    let previous = list(dir).map_err(ctx(dir.display()))?;
    // Names sort by age, and a new one sorts after every existing one (a clock set back, or two
    // runs in one millisecond): the newest `keep` are the ones kept.
    let stamp = crate::clock::name_stamp(now_ms).replace(' ', "T");
    let mut name = format!("{PREFIX}{stamp}.{:03}Z", now_ms.rem_euclid(1000));
    if let Some(newest) = previous.last().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().to_string())
        && newest >= name
    {
        name = format!("{newest}+");
    }
    let partial = dir.join(format!("{PARTIAL}{name}"));
    fs::create_dir_all(partial.join("recordings")).map_err(ctx(partial.display()))?;
    let linked = match previous.last() {
        Some(last) => link_recordings(last, &partial)?,
        None => 0,
    };
    let report = crate::backup::run(source, &partial, true, on)?;
    // Nothing of the server's own in a snapshot but the database and the recordings.
    let _ = fs::remove_file(partial.join(crate::storage::LOCK_FILE));
    let target = dir.join(&name);
    fs::rename(&partial, &target).map_err(ctx(format!("cannot move the snapshot into {}", target.display())))?;
    sync_dir(dir).map_err(ctx(dir.display()))?;

    let mut all = list(dir).map_err(ctx(dir.display()))?;
    let mut removed = Vec::new();
    while all.len() > keep as usize {
        let oldest = all.remove(0);
        fs::remove_dir_all(&oldest).map_err(ctx(format!("cannot remove the old snapshot {}", oldest.display())))?;
        removed.push(oldest);
    }
    let uploaded = match source.s3() {
        Some(s3) => Some(upload_database(source, s3, &name, keep)?),
        None => None,
    };
    Ok(Snapshot { path: target, report, linked, removed, kept: all.len(), uploaded })
}

/// Hard-links every recording file of `from` into `to`'s `recordings/`.
fn link_recordings(from: &Path, to: &Path) -> Result<u64, BackupError> {
    let previous = crate::storage::store::LocalStore::new(from);
    let mut linked = 0;
    for object in previous.list().map_err(ctx(format!("listing {}", from.display())))? {
        let relative = Storage::relative_path(&object.id);
        let target = to.join(&relative);
        if let Some(shard) = target.parent() {
            fs::create_dir_all(shard).map_err(ctx(shard.display()))?;
        }
        match fs::hard_link(from.join(&relative), &target) {
            Ok(()) => linked += 1,
            // Another file system, or links not supported: the backup copies it instead.
            Err(e) => log::debug!("cannot link {relative}: {e}; it is copied"),
        }
    }
    Ok(linked)
}

/// Uploads a copy of the server's database (its rows still naming the object store, unlike the
/// snapshot's own, which names its local copies) to the object store, and keeps the newest
/// `keep` there. `recorder restore s3:<name>` brings it back.
fn upload_database(
    source: &Storage,
    s3: &crate::storage::s3::S3Store,
    name: &str,
    keep: u32,
) -> Result<String, BackupError> {
    let key = format!("{STORE_DIR}/{name}.db");
    let copy = source.tmp_dir().join(format!("upload-{}.db", Uuid::now_v7()));
    crate::backup::copy_database(&source.db_path(), &copy)?;
    let uploaded = s3.put_named_file(&key, &copy);
    let _ = fs::remove_file(&copy);
    uploaded.map_err(ctx(format!("cannot upload the database to {}", s3.place())))?;
    let mut names = s3.list_named(STORE_DIR).map_err(ctx(format!("cannot list {STORE_DIR} in {}", s3.place())))?;
    names.retain(|n| n.starts_with(PREFIX) && n.ends_with(".db"));
    while names.len() > keep as usize {
        let oldest = names.remove(0);
        s3.delete_named(&format!("{STORE_DIR}/{oldest}")).map_err(ctx(format!("cannot remove {oldest}")))?;
    }
    Ok(key)
}

/// A restore goes into an empty or new directory only.
fn require_empty(target: &Path) -> Result<(), BackupError> {
    if target.exists() && fs::read_dir(target).map_err(ctx(target.display()))?.next().is_some() {
        return Err(BackupError {
            message: format!(
                "{} is not empty: restore into an empty or new data directory, then point storage.data_dir at it",
                target.display()
            ),
            usage: true,
        });
    }
    Ok(())
}

/// Removes what a failed restore wrote: the directory was empty before it.
fn empty_again(target: &Path) {
    if let Ok(entries) = fs::read_dir(target) {
        for entry in entries.flatten() {
            let path = entry.path();
            let _ = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
        }
    }
}

/// What a restore did.
#[derive(Debug, Default)]
pub struct Restored {
    pub recordings: u64,
    pub bytes: u64,
}

/// Restores `snapshot` (a snapshot, or a backup made with a destination) into the empty
/// directory `target`, verifying every recording's size and SHA-256. On failure `target` is
/// left empty again. Blocking.
pub fn restore(snapshot: &Path, target: &Path, on: &mut dyn FnMut(u64, u64)) -> Result<Restored, BackupError> {
    let usage = |message: String| BackupError { message, usage: true };
    let db = snapshot.join("recorder.db");
    if !db.is_file() {
        return Err(usage(format!("{} is not a snapshot: it has no recorder.db", snapshot.display())));
    }
    require_empty(target)?;
    let result = restore_into(snapshot, &db, target, on);
    if result.is_err() {
        empty_again(target);
    }
    result
}

/// Restores a snapshot's database from the object store (`s3:<name>`: the object
/// `<prefix>/.recorder-backups/<name>.db`) into the empty directory `target`, reading every
/// recording's object back and checking its size and SHA-256. For when the machine's disk and
/// its snapshots are lost and the audio is in the store. Blocking.
pub fn restore_from_store(
    s3: &crate::storage::s3::S3Store,
    name: &str,
    target: &Path,
    on: &mut dyn FnMut(u64, u64),
) -> Result<Restored, BackupError> {
    let usage = |message: String| BackupError { message, usage: true };
    require_empty(target)?;
    let name = name.strip_suffix(".db").unwrap_or(name);
    let key = format!("{STORE_DIR}/{name}.db");
    let bytes = s3.get_named(&key).map_err(ctx(format!("cannot read {key} from {}", s3.place())))?;
    let Some(bytes) = bytes else {
        let names = s3.list_named(STORE_DIR).unwrap_or_default().join(", ");
        return Err(usage(format!("{} has no {key}; it has: {names}", s3.place())));
    };
    let result = (|| {
        let storage = Storage::open(target).map_err(ctx(format!("cannot use {}", target.display())))?;
        let copy = storage.tmp_dir().join("recorder.db.partial");
        fs::write(&copy, &bytes).map_err(ctx(copy.display()))?;
        let conn = Connection::open(&copy).map_err(ctx(copy.display()))?;
        let rows: Vec<(String, i64, String, String)> = {
            let mut stmt = conn
                .prepare("SELECT id, size, sha256, store FROM recordings ORDER BY id")
                .map_err(ctx("reading it"))?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .and_then(|rows| rows.collect::<Result<_, _>>())
                .map_err(ctx("reading it"));
            rows?
        };
        let total = rows.len() as u64;
        let mut restored = Restored::default();
        for (id, size, sha256, store) in rows {
            if store != "s3" {
                return Err(fail(format!(
                    "recording {id} was in the lost data directory, not in the store: restore a local snapshot instead"
                )));
            }
            let uuid = Uuid::parse_str(&id).map_err(ctx(format!("a recording with the malformed id {id:?}")))?;
            let read = s3
                .reader(&uuid)
                .map_err(crate::storage::store::BlobError::into_io)
                .and_then(|mut reader| copy_hashed(&mut reader, &mut io::sink()));
            let (bytes, hash) = read.map_err(ctx(format!("recording {id}: cannot read it from {}", s3.place())))?;
            if bytes != size.max(0) as u64 || hash != sha256 {
                return Err(fail(format!(
                    "recording {id}: its object is {bytes} bytes with SHA-256 {hash}; the database says {size} bytes with {sha256}"
                )));
            }
            restored.recordings += 1;
            restored.bytes += bytes;
            on(restored.recordings, total);
        }
        drop(conn);
        crate::backup::publish(&copy, &storage.db_path())?;
        Ok(restored)
    })();
    if result.is_err() {
        empty_again(target);
    }
    result
}

fn restore_into(
    snapshot: &Path,
    db: &Path,
    target: &Path,
    on: &mut dyn FnMut(u64, u64),
) -> Result<Restored, BackupError> {
    let storage = Storage::open(target).map_err(ctx(format!("cannot use {}", target.display())))?;
    let _lock = crate::storage::lock_dir(target)
        .map_err(ctx(target.display()))?
        .ok_or_else(|| fail(format!("{} is in use by another recorder", target.display())))?;
    let copy = storage.tmp_dir().join("recorder.db.partial");
    crate::backup::copy_database(db, &copy)?;
    let conn = Connection::open(&copy).map_err(ctx(copy.display()))?;
    let rows: Vec<(String, i64, String)> = {
        let mut stmt =
            conn.prepare("SELECT id, size, sha256 FROM recordings ORDER BY id").map_err(ctx("reading the snapshot"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .and_then(|rows| rows.collect::<Result<_, _>>())
            .map_err(ctx("reading the snapshot"));
        rows?
    };
    let total = rows.len() as u64;
    let mut restored = Restored::default();
    for (id, size, sha256) in rows {
        let uuid = Uuid::parse_str(&id).map_err(ctx(format!("a recording with the malformed id {id:?}")))?;
        let relative = Storage::relative_path(&uuid);
        let from = snapshot.join(&relative);
        let partial = storage.tmp_dir().join(format!("{id}.partial"));
        let copied = (|| {
            let mut reader = fs::File::open(&from)?;
            let mut out = BufWriter::with_capacity(256 * 1024, fs::File::create(&partial)?);
            let (bytes, hash) = copy_hashed(&mut reader, &mut out)?;
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            Ok::<_, io::Error>((bytes, hash))
        })();
        let (bytes, hash) = copied.map_err(ctx(format!("recording {id}: cannot copy {}", from.display())))?;
        if bytes != size.max(0) as u64 || hash != sha256 {
            return Err(fail(format!(
                "recording {id}: {} is damaged ({bytes} bytes with SHA-256 {hash}; the database says {size} bytes with \
                 {sha256}); restore an older snapshot, or `recorder check --verify` on this one",
                from.display()
            )));
        }
        let keep = Keep::read_from(&from);
        storage
            .local()
            .put_file(&partial, &uuid, Place::Move, keep.as_ref())
            .map_err(ctx(format!("cannot store {relative}")))?;
        restored.recordings += 1;
        restored.bytes += bytes;
        on(restored.recordings, total);
    }
    // Every recording is in this directory now, whatever store the snapshot's server used.
    conn.execute("UPDATE recordings SET store = 'local' WHERE store <> 'local'", [])
        .map_err(ctx("updating the restored database"))?;
    drop(conn);
    crate::backup::publish(&copy, &storage.db_path())?;
    Ok(restored)
}
