//! File-system steps every store and the data directory share: a directory's fsync, a file's
//! modification time, and what a failed write means to a client.

use crate::error::Error;
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io;
use std::io::Write;
use std::path::Path;

/// Bytes hashed and written at a time: one chunk is written while the next is read, so an upload
/// holds about twice this in memory.
pub const CHUNK: usize = 128 * 1024;

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

/// The hex SHA-256 of a file, read in 256 KiB chunks. Blocking.
pub fn hash_file(path: &Path) -> io::Result<String> {
    copy_hashed(&mut File::open(path)?, &mut io::sink()).map(|(_, hash)| hash)
}

/// Copies bytes into `out` while hashing them: (bytes, hex SHA-256). Blocking.
pub fn copy_hashed(file: &mut dyn io::Read, out: &mut dyn Write) -> io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        total += n as u64;
    }
    Ok((total, hex(&hasher.finalize())))
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
