//! How recordings appear as files: the two folders, shown names (a slash shown as U+2215, a
//! suffix of the id for names taken twice), and their metadata.

use crate::error::Error;
use crate::recordings::{self as rec, Folder, Recording};
use dav_server::davpath::DavPath;
use dav_server::fs::{DavDirEntry, DavMetaData, FsError, FsFuture, FsResult};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The folder of the trash, beside the recordings.
pub(super) const TRASH: &str = "Trash";
/// A '/' in a recording's name is shown as DIVISION SLASH: file names cannot hold a '/'.
pub(super) const SLASH: char = '\u{2215}';
/// Recordings fetched per step of a listing: memory per listing stays bounded at any size.
pub(super) const PAGE: u32 = 500;
/// Bytes read from a recording's file per chunk of a GET.
pub(super) const READ_CHUNK: usize = 256 * 1024;
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Where a path points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Spot {
    Root,
    TrashFolder,
    File(Folder, String),
    Nowhere,
}

pub(super) fn spot(path: &DavPath) -> Spot {
    let Ok(text) = std::str::from_utf8(path.as_bytes()) else { return Spot::Nowhere };
    let parts: Vec<&str> = text.split('/').filter(|s| !s.is_empty()).collect();
    match parts.as_slice() {
        [] => Spot::Root,
        [folder] if *folder == TRASH => Spot::TrashFolder,
        [name] => Spot::File(Folder::Live, (*name).to_string()),
        [folder, name] if *folder == TRASH => Spot::File(Folder::Trash, (*name).to_string()),
        _ => Spot::Nowhere,
    }
}

/// The shown name of a recording's name: '/' cannot be in a file name.
pub(super) fn shown(name: &str) -> String {
    name.replace('/', &SLASH.to_string())
}

/// The names a shown name may stand for.
pub(super) fn stored_names(shown: &str) -> Vec<String> {
    let mut names = vec![shown.to_string()];
    if shown.contains(SLASH) {
        names.push(shown.replace(SLASH, "/"));
    }
    names
}

/// The last 8 hex digits of an id: the suffix that tells recordings of one name apart.
pub(super) fn tail(id: &str) -> String {
    let hex: String = id.chars().filter(char::is_ascii_hexdigit).collect();
    hex[hex.len().saturating_sub(8)..].to_ascii_lowercase()
}

pub(super) fn with_tail(shown: &str, id: &str) -> String {
    let (stem, ext) = rec::split_extension(shown);
    format!("{stem} [{}]{ext}", tail(id))
}

/// "memo [1a2b3c4d].m4a" → ("memo.m4a", "1a2b3c4d").
pub(super) fn parse_tail(shown: &str) -> Option<(String, String)> {
    let (stem, ext) = rec::split_extension(shown);
    let stem = stem.strip_suffix(']')?;
    let (base, hex) = stem.rsplit_once(" [")?;
    (hex.len() == 8 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| (format!("{base}{ext}"), hex.to_string()))
}

/// Whether the plain name is not the recording's to show (the Trash folder has it).
pub(super) fn reserved(folder: Folder, name: &str) -> bool {
    folder == Folder::Live && name == TRASH
}

pub(super) fn ms_time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

#[derive(Debug, Clone)]
pub(super) struct Meta {
    pub(super) len: u64,
    pub(super) modified: SystemTime,
    pub(super) created: SystemTime,
    pub(super) dir: bool,
    pub(super) etag: Option<String>,
}

impl Meta {
    pub(super) fn folder(at_ms: i64) -> Meta {
        Meta { len: 0, modified: ms_time(at_ms), created: ms_time(at_ms), dir: true, etag: None }
    }

    pub(super) fn of(recording: &Recording) -> Meta {
        // A recording's bytes never change: its time is when it was stored, its tag its hash
        // (as the API's audio ETag).
        Meta {
            len: recording.size.max(0) as u64,
            modified: ms_time(recording.created_ms),
            created: ms_time(recording.created_ms),
            dir: false,
            etag: Some(recording.sha256.clone()),
        }
    }
}

impl DavMetaData for Meta {
    fn len(&self) -> u64 {
        self.len
    }

    fn modified(&self) -> FsResult<SystemTime> {
        Ok(self.modified)
    }

    fn created(&self) -> FsResult<SystemTime> {
        Ok(self.created)
    }

    fn is_dir(&self) -> bool {
        self.dir
    }

    fn etag(&self) -> Option<String> {
        match &self.etag {
            Some(tag) => Some(tag.clone()),
            None => self.modified.duration_since(UNIX_EPOCH).ok().map(|d| format!("{:x}", d.as_millis())),
        }
    }
}

pub(super) struct Entry {
    pub(super) name: String,
    pub(super) meta: Meta,
}

impl DavDirEntry for Entry {
    fn name(&self) -> Vec<u8> {
        self.name.as_bytes().to_vec()
    }

    fn metadata(&self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let meta: Box<dyn DavMetaData> = Box::new(self.meta.clone());
        Box::pin(std::future::ready(Ok(meta)))
    }
}

/// A database or disk failure: logged here, a plain 500 to the client.
pub(super) fn failure(e: Error) -> FsError {
    log::error!("WebDAV: {}", e);
    FsError::GeneralFailure
}
