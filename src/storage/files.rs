//! File-system steps every store and the data directory share: a directory's fsync, a file's
//! modification time, and what a failed write means to a client.

use crate::error::Error;
use std::fs::{self, File};
use std::io;
use std::path::Path;

/// A file's modification time in milliseconds since the epoch (unknown: the far future, so it
/// never counts as old).
pub fn modified_ms(meta: &fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(i64::MAX, |d| d.as_millis() as i64)
}

/// fsync a directory, so a rename or create in it survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A write failure: a full disk is the server's state (insufficient storage), anything else is a failure of ours.
pub fn disk_error(e: io::Error) -> Error {
    if e.raw_os_error() == Some(28) || e.kind() == io::ErrorKind::StorageFull {
        log::warn!("upload refused: disk full");
        insufficient_storage()
    } else {
        Error::internal("writing upload", e)
    }
}

/// No room for the bytes.
pub fn insufficient_storage() -> Error {
    Error::InsufficientStorage("the server does not have enough free disk space for this upload".into())
}
