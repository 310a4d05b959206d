//! `<data_dir>/lost+found/`: files found among the recordings that no recording in this
//! database refers to, and that no note of this installation proves to be litter. They are
//! never deleted automatically: the database may have been restored from an older backup.
//! `recorder check` reports them and `recorder check --recover` turns them back into
//! recordings. Each keeps its recording id as its name.

use crate::storage::store::LocalStore;
use crate::storage::sync_dir;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use uuid::Uuid;

pub const DIR: &str = "lost+found";

pub fn dir(root: &Path) -> PathBuf {
    root.join(DIR)
}

/// A file in lost+found.
#[derive(Debug, Clone)]
pub struct Found {
    pub id: Uuid,
    pub path: PathBuf,
    pub size: u64,
}

/// Moves a recording file that no row refers to into lost+found, durably; returns where it
/// went. A name taken already (the same id found twice) gets a suffix: both are kept.
pub fn put(root: &Path, id: &Uuid) -> io::Result<PathBuf> {
    let source = root.join(LocalStore::relative_path(id));
    let found = dir(root);
    fs::create_dir_all(&found)?;
    let mut target = found.join(id.hyphenated().to_string());
    let mut n = 1;
    while target.exists() {
        target = found.join(format!("{}.{n}", id.hyphenated()));
        n += 1;
    }
    fs::rename(&source, &target)?;
    sync_dir(&found)?;
    if let Some(shard) = source.parent() {
        sync_dir(shard)?;
    }
    Ok(target)
}

/// Moves a file an interrupted recovery had taken out of lost+found back there (nothing to do
/// when it had not been moved yet).
pub fn put_back(root: &Path, id: &Uuid) -> io::Result<()> {
    match fs::symlink_metadata(root.join(LocalStore::relative_path(id))) {
        Ok(_) => put(root, id).map(|_| ()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The files in lost+found named by a recording id (with or without a suffix), sorted.
pub fn list(root: &Path) -> io::Result<Vec<Found>> {
    let entries = match fs::read_dir(dir(root)) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(id) = name.get(..36).and_then(|head| Uuid::parse_str(head).ok()) else { continue };
        let meta = entry.metadata()?;
        if meta.is_file() {
            out.push(Found { id, path: entry.path(), size: meta.len() });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Moves a file out of lost+found into its place among the recordings, durably. Refuses when
/// that place is taken.
pub fn take(root: &Path, found: &Found) -> io::Result<()> {
    let target = root.join(LocalStore::relative_path(&found.id));
    let shard = target.parent().unwrap_or(root).to_path_buf();
    fs::create_dir_all(&shard)?;
    if fs::symlink_metadata(&target).is_ok() {
        return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{} exists", target.display())));
    }
    fs::rename(&found.path, &target)?;
    sync_dir(&shard)?;
    sync_dir(&dir(root))
}
