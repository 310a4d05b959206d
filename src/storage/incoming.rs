//! Uploads in flight: streamed into `tmp/` (or appended to a resumable upload's file) and hashed
//! chunk by chunk on the blocking pool, teed to the object store when new recordings go there.

use crate::error::Error;
use bytes::{Bytes, BytesMut};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::dir::Storage;
use super::files::{CHUNK, disk_error, hex};
use super::store::Backend;

/// Room kept for each read from the network.
const MIN_READ: usize = 8192;

/// Deletes a temp file when dropped, unless it was committed: whatever way an upload ends
/// (an error, a refusal, the client hanging up and the request being dropped), no temp file stays.
pub struct TempFile {
    path: Option<PathBuf>,
}

impl TempFile {
    pub fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }

    /// The file has been moved away; nothing to clean up.
    pub fn disarm(mut self) {
        self.path = None;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let remove = move || {
                if let Err(e) = fs::remove_file(&path)
                    && e.kind() != io::ErrorKind::NotFound
                {
                    log::warn!("cannot remove temp file {}: {e}", path.display());
                }
            };
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => drop(handle.spawn_blocking(remove)),
                Err(_) => remove(),
            }
        }
    }
}

/// Why an upload stream ended early.
#[derive(Debug)]
pub enum StreamError {
    /// More bytes than allowed.
    TooLarge,
    /// Reading the request body failed (the client hung up, a malformed body).
    Client(io::Error),
    /// Writing the file failed.
    Disk(Error),
    /// The first bytes are not what the caller accepts.
    NotAudio,
    /// The body is readable but not a valid form of the upload (multipart without a file part…).
    Malformed(&'static str),
}

/// A streaming upload in progress. Each full chunk is hashed and written by one short job on the
/// blocking pool while the next chunk is read from the network; no thread is held for the
/// upload's lifetime, and at most two chunks of it are in memory.
///
/// The same pipeline writes a one-shot upload into a new temp file (`start`) and appends a
/// resumable upload's request to the file it already has (`resume`).
pub struct Upload {
    temp: TempFile,
    /// The same bytes streaming to the object store as they arrive, when new recordings go
    /// there: the temp file is then only for sniffing and decoding, and is not fsynced.
    tee: Option<crate::storage::s3::Streaming>,
    buf: BytesMut,
    size: u64,
    head: Vec<u8>,
    writer: Writer,
    jobs: Arc<Semaphore>,
    accept_head: fn(&[u8]) -> bool,
}

/// Where the file and the hashes so far are.
enum Writer {
    /// Here, between chunks (boxed: the hashers are a few hundred bytes).
    Ready(Box<Sink>),
    /// With the job writing a chunk, which hands them back.
    Writing(JoinHandle<(Box<Sink>, io::Result<()>)>),
    /// Lost with a failed write; the upload is over.
    Failed,
}

struct Sink {
    file: File,
    /// The whole file's SHA-256; `None` when the bytes before this request were not hashed in
    /// this process (the file is hashed again when it completes).
    hasher: Option<Sha256>,
    /// A checksum of this request's bytes alone (tus `Upload-Checksum`).
    check: Option<Checksum>,
}

/// A digest of one request's bytes, for tus's `checksum` extension.
#[derive(Clone)]
pub enum Checksum {
    Sha1(sha1::Sha1),
    Sha256(Sha256),
}

impl Checksum {
    /// The digest for a tus algorithm name (`sha1`, `sha256`), if supported.
    pub fn for_algorithm(name: &str) -> Option<Checksum> {
        match name.to_ascii_lowercase().as_str() {
            "sha1" => Some(Checksum::Sha1(sha1::Sha1::new())),
            "sha256" => Some(Checksum::Sha256(Sha256::new())),
            _ => None,
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Checksum::Sha1(h) => h.update(bytes),
            Checksum::Sha256(h) => h.update(bytes),
        }
    }

    pub fn finalize(self) -> Vec<u8> {
        match self {
            Checksum::Sha1(h) => h.finalize().to_vec(),
            Checksum::Sha256(h) => h.finalize().to_vec(),
        }
    }
}

/// A finished upload: in `tmp/` (fsynced, unless it streamed to the object store), not yet
/// committed.
pub struct Finished {
    pub temp: TempFile,
    pub size: u64,
    pub sha256: String,
    /// The object it streamed to, to be completed by [`Finished::object`].
    tee: Option<crate::storage::s3::Streaming>,
}

impl Finished {
    /// Waits for the object store to have the whole upload, when it streamed there: the
    /// recording id its object is keyed by (for [`crate::ingest::Draft::streamed`]).
    pub async fn object(&mut self) -> Result<Option<Uuid>, Error> {
        let Some(tee) = self.tee.take() else { return Ok(None) };
        let id = tee.id;
        tee.finish(self.size).await.map_err(|e| e.api("storing an upload"))?;
        Ok(Some(id))
    }
}

/// An appended request, written and fsynced.
pub struct Appended {
    pub file: File,
    /// The file's size: every byte up to it is durable.
    pub size: u64,
    pub hasher: Option<Sha256>,
    pub check: Option<Checksum>,
}

/// How many leading bytes are kept for a quick look at the container.
pub const HEAD_LEN: usize = 64;

impl Upload {
    /// Creates the temp file.
    /// `accept_head` sees the first bytes once there are enough (or at the end): refusing them
    /// stops the upload before the rest of the body is read.
    /// With `stream_as` (an id already noted in flight, and what its bytes keep) and the object
    /// store as the current store, the bytes also stream there as they arrive.
    pub async fn start(
        storage: &Storage,
        accept_head: fn(&[u8]) -> bool,
        stream_as: Option<(Uuid, Option<crate::storage::store::Keep>)>,
    ) -> Result<Upload, Error> {
        let path = storage.tmp_dir().join(format!("{}.part", Uuid::now_v7()));
        let open_path = path.clone();
        let file = crate::db::blocking(move || {
            File::create_new(&open_path).map_err(|e| Error::internal(&format!("create {}", open_path.display()), e))
        })
        .await?;
        let temp = TempFile { path: Some(path) };
        let tee = match (&storage.s3, storage.backend, stream_as) {
            (Some(s3), Backend::S3, Some((id, keep))) => {
                s3.stream_upload(id, keep.as_ref()).map_err(|e| e.api("starting an upload"))?
            }
            _ => None,
        };
        Ok(Upload {
            temp,
            tee,
            buf: BytesMut::with_capacity(CHUNK),
            size: 0,
            head: Vec::with_capacity(HEAD_LEN),
            writer: Writer::Ready(Box::new(Sink { file, hasher: Some(Sha256::new()), check: None })),
            jobs: storage.upload_jobs.clone(),
            accept_head,
        })
    }

    /// Appends to a file that already holds `size` bytes (positioned at its end), whose first
    /// bytes are `head`. `hasher` is the SHA-256 of those `size` bytes, when known.
    pub fn resume(
        storage: &Storage,
        file: File,
        size: u64,
        head: Vec<u8>,
        hasher: Option<Sha256>,
        check: Option<Checksum>,
        accept_head: fn(&[u8]) -> bool,
    ) -> Upload {
        Upload {
            temp: TempFile { path: None },
            tee: None,
            buf: BytesMut::with_capacity(CHUNK),
            size,
            head,
            writer: Writer::Ready(Box::new(Sink { file, hasher, check })),
            jobs: storage.upload_jobs.clone(),
            accept_head,
        }
    }

    /// Bytes received so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The buffer to read the next bytes from the network into (at least `MIN_READ` free).
    pub fn spare(&mut self) -> &mut BytesMut {
        if self.buf.capacity() - self.buf.len() < MIN_READ {
            self.buf.reserve(CHUNK - self.buf.len());
        }
        &mut self.buf
    }

    /// Accounts for `n` bytes just read into `spare()`: checks the limit and the head, and hands
    /// a full chunk to the writer.
    pub async fn took(&mut self, n: usize, max: u64) -> Result<(), StreamError> {
        self.note(n)?;
        if self.size > max {
            return Err(StreamError::TooLarge);
        }
        self.send_full_chunks().await
    }

    fn note(&mut self, data_len: usize) -> Result<(), StreamError> {
        self.size += data_len as u64;
        if self.head.len() < HEAD_LEN {
            let start = self.buf.len() - data_len;
            let take = (HEAD_LEN - self.head.len()).min(data_len);
            self.head.extend_from_slice(&self.buf[start..start + take]);
            if self.head.len() == HEAD_LEN && !(self.accept_head)(&self.head) {
                return Err(StreamError::NotAudio);
            }
        }
        Ok(())
    }

    async fn send_full_chunks(&mut self) -> Result<(), StreamError> {
        // A buffer without room for one more read is full: sent as it is, it is never grown
        // past `CHUNK`.
        if self.buf.len() + MIN_READ > CHUNK {
            let chunk = self.buf.split().freeze();
            self.send(chunk).await.map_err(StreamError::Disk)?;
            self.buf.reserve(CHUNK);
        }
        Ok(())
    }

    /// The sink, once the chunk before is written.
    async fn settle(&mut self) -> Result<Box<Sink>, Error> {
        match std::mem::replace(&mut self.writer, Writer::Failed) {
            Writer::Ready(sink) => Ok(sink),
            Writer::Writing(job) => {
                let (sink, written) = job.await.map_err(|e| Error::internal("upload writer", e))?;
                written.map_err(disk_error)?;
                Ok(sink)
            }
            Writer::Failed => Err(Error::internal("upload", "the file was lost after an earlier error")),
        }
    }

    /// Hands a chunk to the blocking pool, after the one before it is written.
    async fn send(&mut self, chunk: Bytes) -> Result<(), Error> {
        let mut sink = self.settle().await?;
        if let Some(tee) = &self.tee
            && let Err(e) = tee.send(chunk.clone()).await
        {
            self.writer = Writer::Ready(sink);
            return Err(e.api("streaming an upload"));
        }
        let permit = self.job_permit().await?;
        self.writer = Writer::Writing(tokio::task::spawn_blocking(move || {
            let _permit = permit;
            if let Some(hasher) = &mut sink.hasher {
                hasher.update(&chunk);
            }
            if let Some(check) = &mut sink.check {
                check.update(&chunk);
            }
            let written = sink.file.write_all(&chunk);
            (sink, written)
        }));
        Ok(())
    }

    async fn job_permit(&self) -> Result<OwnedSemaphorePermit, Error> {
        self.jobs.clone().acquire_owned().await.map_err(|e| Error::internal("upload jobs", e))
    }

    /// Appends bytes (from a multipart field).
    pub async fn push(&mut self, data: &[u8], max: u64) -> Result<(), StreamError> {
        if self.size + data.len() as u64 > max {
            return Err(StreamError::TooLarge);
        }
        self.buf.extend_from_slice(data);
        self.note(data.len())?;
        self.send_full_chunks().await
    }

    /// Reads a raw body to its end, straight into the chunk buffer.
    pub async fn read_all<R: AsyncRead + Unpin>(&mut self, reader: &mut R, max: u64) -> Result<(), StreamError> {
        loop {
            let n = reader.read_buf(self.spare()).await.map_err(StreamError::Client)?;
            if n == 0 {
                return Ok(());
            }
            self.took(n, max).await?;
        }
    }

    /// Writes what is buffered and fsyncs: every byte counted in `size()` is then durable.
    pub async fn sync(&mut self) -> Result<(), Error> {
        if !self.buf.is_empty() {
            let chunk = self.buf.split().freeze();
            self.send(chunk).await?;
        }
        let sink = self.settle().await?;
        let permit = self.job_permit().await?;
        let sink = crate::db::blocking(move || {
            let _permit = permit;
            sink.file.sync_all().map_err(disk_error)?;
            Ok(sink)
        })
        .await?;
        self.writer = Writer::Ready(sink);
        Ok(())
    }

    /// Syncs and hands back the file and the hashes (an appended request).
    pub async fn close(mut self) -> Result<Appended, Error> {
        self.sync().await?;
        let Sink { file, hasher, check } = *self.settle().await?;
        Ok(Appended { file, size: self.size, hasher, check })
    }

    /// Writes what is left, fsyncs the file and returns its hash. An upload dropped before this
    /// (a refusal, the client hanging up) is never synced: its temp file is just removed.
    pub async fn finish(mut self) -> Result<Finished, Error> {
        if self.tee.is_some() {
            // The object store keeps it durable; the temp file is only read back here.
            if !self.buf.is_empty() {
                let chunk = self.buf.split().freeze();
                self.send(chunk).await?;
            }
        } else {
            self.sync().await?;
        }
        let Sink { hasher, .. } = *self.settle().await?;
        let sha256 = hex(&hasher.unwrap_or_default().finalize());
        Ok(Finished { temp: self.temp, size: self.size, sha256, tee: self.tee })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn upload_streams_hashes_and_commits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path()).expect("open");
        let mut upload = Upload::start(&storage, |_| true, None).await.expect("start");
        let data = vec![7u8; CHUNK * 3 + 5];
        upload.read_all(&mut &data[..], u64::MAX).await.map_err(|_| ()).expect("read");
        let finished = upload.finish().await.expect("finish");
        assert_eq!(finished.size, data.len() as u64);
        assert_eq!(finished.sha256, hex(&Sha256::digest(&data)));
        let id = Uuid::now_v7();
        storage
            .current()
            .put_file(finished.temp.path(), &id, crate::storage::store::Place::Move, None)
            .expect("commit");
        finished.temp.disarm();
        assert_eq!(fs::read(storage.path(&Storage::relative_path(&id))).expect("read back"), data);
        assert_eq!(fs::read_dir(storage.tmp_dir()).expect("tmp").count(), 0);
    }

    #[tokio::test]
    async fn uploads_sharing_one_job_slot_all_finish_intact() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path()).expect("open").limit_upload_jobs(1);
        let uploads = (0..3u8).map(|n| {
            let storage = storage.clone();
            tokio::spawn(async move {
                let data = vec![n; CHUNK * 3 + 5];
                let mut upload = Upload::start(&storage, |_| true, None).await.expect("start");
                upload.read_all(&mut &data[..], u64::MAX).await.map_err(|_| ()).expect("read");
                let finished = upload.finish().await.expect("finish");
                (finished.sha256 == hex(&Sha256::digest(&data)), finished.size == data.len() as u64)
            })
        });
        for upload in uploads.collect::<Vec<_>>() {
            assert_eq!(upload.await.expect("joined"), (true, true));
        }
    }

    #[tokio::test]
    async fn abandoned_upload_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path()).expect("open");
        let mut upload = Upload::start(&storage, |_| true, None).await.expect("start");
        let err = upload.push(&[1u8; 100], 10).await;
        assert!(matches!(err, Err(StreamError::TooLarge)));
        drop(upload);
        for _ in 0..100 {
            if fs::read_dir(storage.tmp_dir()).expect("tmp").count() == 0 {
                return;
            }
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("temp file left behind");
    }
}
