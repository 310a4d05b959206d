//! ZIP archives of recordings, written as a stream: each stored file is copied into the archive
//! in chunks as the client reads, with no temporary file and memory bounded by one buffer, one
//! pipe and the central directory (a few hundred bytes an entry). Entries are stored, not
//! compressed: audio is compressed already.
//!
//! The `zip` crate writes the archive on a blocking thread into a sync bridge over an in-memory
//! pipe whose other end is the response body. A failure part-way (a file removed meanwhile, an
//! I/O error) ends the body with an error. Rocket 0.5 then closes the chunked body as if it were
//! complete, so what tells the client is the archive itself: its central directory and end
//! record are written last, and an archive cut short has neither (strict tools refuse it;
//! lenient ones recover the entries before the cut).

use crate::recordings::Recording;
use crate::storage::Storage;
use crate::storage::store::BlobError;
use std::cell::Cell;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, DuplexStream, ReadBuf};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

/// Bytes in flight between the writer thread and the response.
const PIPE_BYTES: usize = 256 * 1024;
/// One read of a stored file.
const CHUNK_BYTES: usize = 256 * 1024;

/// One file of an archive.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The name in the archive (unique, case-insensitively).
    pub name: String,
    /// The recording, and the store its bytes are in.
    pub id: uuid::Uuid,
    pub store: crate::storage::store::Backend,
    pub size: u64,
    /// When the recording was stored, for the entry's time (UTC).
    pub created_ms: i64,
}

/// The entries for these recordings, in order: each named by its recording, with characters
/// that file systems refuse replaced, and names taken already suffixed ` (2)`, ` (3)`…
/// before the extension.
pub fn entries(recordings: &[Recording]) -> Result<Vec<Entry>, crate::error::Error> {
    let mut taken = HashSet::new();
    let mut out = Vec::with_capacity(recordings.len());
    for recording in recordings {
        let id = crate::recordings::parse_id(&recording.id)?;
        out.push(Entry {
            name: unique_name(&safe_name(&recording.name), &mut taken),
            id,
            store: recording.store,
            size: recording.size.max(0) as u64,
            created_ms: recording.created_ms,
        });
    }
    Ok(out)
}

/// A recording name as a file name that unpacks anywhere: no path separators (an entry never
/// lands outside the folder it is unpacked into), none of the characters Windows refuses, and
/// not `.` or `..`.
pub fn safe_name(name: &str) -> String {
    let cleaned: String =
        name.chars().map(|c| if "/\\:*?\"<>|".contains(c) || c.is_control() { '_' } else { c }).collect();
    if cleaned.chars().all(|c| c == '.') { cleaned.replace('.', "_") } else { cleaned }
}

/// `name`, or `stem (n).ext` with the smallest n from 2 that is free; compared
/// case-insensitively, as the file systems of Windows and macOS do.
fn unique_name(name: &str, taken: &mut HashSet<String>) -> String {
    if taken.insert(name.to_lowercase()) {
        return name.to_string();
    }
    // A leading dot is a hidden file's name, not an extension.
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => name.split_at(i),
        _ => (name, ""),
    };
    (2..)
        .map(|n| format!("{stem} ({n}){ext}"))
        .find(|candidate| taken.insert(candidate.to_lowercase()))
        .unwrap_or_else(|| name.to_string())
}

fn zip_time(ms: i64) -> DateTime {
    let t = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let year = u16::try_from(t.year()).unwrap_or(1980);
    DateTime::from_date_and_time(year, t.month().into(), t.day(), t.hour(), t.minute(), t.second()).unwrap_or_default()
}

/// The archive's way out, until it is shut. After a failure nothing more may reach the client:
/// the `zip` writer, when dropped, finishes the archive (its directory of the entries written so
/// far), which would make a cut archive look whole. Once shut, writes are swallowed.
struct Gate<W> {
    inner: W,
    shut: Rc<Cell<bool>>,
}

impl<W: Write> Write for Gate<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.shut.get() { Ok(buf.len()) } else { self.inner.write(buf) }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.shut.get() { Ok(()) } else { self.inner.flush() }
    }
}

/// Writes a stored ZIP of `entries` to `out`, one file after another. On an error, what was
/// written stays without the ZIP's directory and end record.
pub fn write(out: impl Write, storage: &Storage, entries: &[Entry]) -> std::io::Result<()> {
    let shut = Rc::new(Cell::new(false));
    let mut zip = ZipWriter::new_stream(Gate { inner: out, shut: shut.clone() });
    let mut buf = vec![0u8; CHUNK_BYTES];
    let mut add = |entry: &Entry| -> std::io::Result<()> {
        let mut file =
            storage.store(entry.store).and_then(|store| store.reader(&entry.id)).map_err(BlobError::into_io)?;
        let size = entry.size;
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Stored)
            .last_modified_time(zip_time(entry.created_ms))
            .large_file(size >= u64::from(u32::MAX))
            .unix_permissions(0o644);
        zip.start_file(entry.name.as_str(), options)?;
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            zip.write_all(&buf[..n])?;
        }
    };
    if let Err(e) = entries.iter().try_for_each(&mut add) {
        shut.set(true);
        return Err(e);
    }
    zip.finish()?;
    Ok(())
}

/// The response body of an archive being written: the pipe's reading end, which ends in an error
/// when the writer failed.
pub struct ArchiveBody {
    pipe: DuplexStream,
    failed: Arc<AtomicBool>,
}

impl AsyncRead for ArchiveBody {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.pipe).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled
            && buf.filled().len() == before
            && buf.remaining() > 0
            && self.failed.load(Ordering::SeqCst)
        {
            return Poll::Ready(Err(std::io::Error::other("the archive could not be written to the end")));
        }
        polled
    }
}

/// Starts writing an archive of `entries` on the blocking pool; the returned body yields it as
/// it is written. Must be called on the runtime.
pub fn stream(storage: Storage, entries: Vec<Entry>) -> ArchiveBody {
    let (reader, writer) = tokio::io::duplex(PIPE_BYTES);
    let failed = Arc::new(AtomicBool::new(false));
    let flag = failed.clone();
    let mut bridge = tokio_util::io::SyncIoBridge::new(writer);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = write(&mut bridge, &storage, &entries) {
            // A client that hung up is not a failure of the server.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                log::debug!("archive not finished: the client went away");
            } else {
                log::error!("archive not finished: {e}");
            }
            // Before the pipe closes, so the reader sees the failure with its end.
            flag.store(true, Ordering::SeqCst);
        }
        drop(bridge);
    });
    ArchiveBody { pipe: reader, failed }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_names_are_suffixed_before_the_extension() {
        let mut taken = HashSet::new();
        let names: Vec<String> =
            ["memo.m4a", "memo.m4a", "Memo.M4A", "memo (2).m4a", "notes", "notes", ".hidden", ".hidden"]
                .iter()
                .map(|n| unique_name(n, &mut taken))
                .collect();
        assert_eq!(
            names,
            [
                "memo.m4a",
                "memo (2).m4a",
                "Memo (3).M4A",
                "memo (2) (2).m4a",
                "notes",
                "notes (2)",
                ".hidden",
                ".hidden (2)"
            ]
        );
    }

    #[test]
    fn names_never_leave_the_folder_they_are_unpacked_into() {
        assert_eq!(safe_name("../../etc/passwd"), ".._.._etc_passwd");
        assert_eq!(safe_name(".."), "__");
        assert_eq!(safe_name("C:\\memo.m4a"), "C__memo.m4a");
        assert_eq!(safe_name("Café: take 2?.m4a"), "Café_ take 2_.m4a");
    }

    #[test]
    fn entry_times_are_dos_times_in_utc() {
        let t = zip_time(1_795_549_228_123); // 2026-11-24T19:40:28Z
        assert_eq!((t.year(), t.month(), t.day(), t.hour(), t.minute(), t.second()), (2026, 11, 24, 19, 40, 28));
        assert_eq!(zip_time(0), DateTime::default(), "before 1980: the format's earliest time");
    }
}
