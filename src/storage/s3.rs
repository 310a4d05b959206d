//! Recordings in an S3-compatible object store (Garage, SeaweedFS, MinIO, AWS), through the
//! `object_store` crate (it signs the requests). One object per recording, keyed
//! `<prefix>/<recording id>`: no names or user data in keys.
//!
//! A one-shot upload streams to the store as it arrives (and into `tmp/` beside it, where it is
//! sniffed and checked): one PUT when it fits in a part, else a multipart upload of 16 MiB
//! parts, one in flight while the next fills. At most [`TRANSFERS_AT_ONCE`] uploads hold part
//! buffers at a time; others wait in `tmp/` and are sent from there when a transfer frees
//! (resumable uploads and migrations are sent from their files the same way). The row is written
//! only after the store acknowledged the object, and a multipart upload that fails is aborted
//! (one a crash abandoned, at the next start). Nothing relies on conditional PUTs (Garage
//! ignores `If-None-Match`): a key is written once, by the upload that made up its id, or again
//! with the same bytes by a migration.
//!
//! The client runs on a small runtime of its own, so its connections outlive any one request
//! and blocking callers (the job workers, `check`, `backup`, `migrate`) can wait for it. Reads
//! stream through a bounded channel: memory stays a few chunks per reader whatever the size.

use crate::storage::store::{Backend, BlobError, Body, Keep, Object, Place, Store};
use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as Key;
use object_store::{
    Attribute, Attributes, ClientOptions, GetOptions, GetRange, MultipartId, ObjectStore, ObjectStoreExt as _,
    PutMultipartOptions, PutOptions, PutPayload, RetryConfig,
};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt as _, ReadBuf};
use tokio::sync::{Semaphore, mpsc, oneshot};
use uuid::Uuid;

/// `[storage.s3]`: an S3-compatible object store (Garage, SeaweedFS, MinIO, AWS).
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    /// `http://host:port` or `https://…`.
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Keys start with this (no leading or trailing `/`); empty: the bucket's root.
    pub prefix: String,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret never reaches a log line.
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Multipart part size: S3 wants at least 5 MiB for every part but the last, and stores take
/// fewer, larger parts faster (SeaweedFS took 512 MiB in 8 MiB parts at 0.58 of one PUT's rate).
const PART: usize = 16 * 1024 * 1024;
/// Uploads to the store at once, streaming or from a file: each holds at most a part filling
/// and a part in flight, so all of them together at most 64 MiB of buffers.
pub const TRANSFERS_AT_ONCE: usize = 2;
/// Chunks a reader may have waiting.
const READ_AHEAD: usize = 8;

/// The object store and the runtime its client runs on.
pub struct S3Store {
    store: Arc<AmazonS3>,
    config: S3Config,
    runtime: Runtime,
    /// Permits for [`TRANSFERS_AT_ONCE`].
    transfers: Arc<Semaphore>,
    /// Multipart uploads in progress, one small file each (see [`Multipart`]).
    journal: PathBuf,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store").field("config", &self.config).finish_non_exhaustive()
    }
}

/// A runtime that can be dropped anywhere (also inside another runtime's task).
struct Runtime(Option<tokio::runtime::Runtime>);

impl Runtime {
    fn handle(&self) -> Option<&tokio::runtime::Handle> {
        self.0.as_ref().map(|r| r.handle())
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> BlobError {
    BlobError::Unavailable(one_line(&e.to_string()))
}

/// A store's error as one line: an S3 XML error body becomes its code and message.
fn one_line(text: &str) -> String {
    let between = |open: &str, close: &str| {
        let start = text.find(open)? + open.len();
        let end = text[start..].find(close)? + start;
        Some(text[start..end].to_string())
    };
    match (text.find("<?xml").or_else(|| text.find("<Error>")), between("<Code>", "</Code>")) {
        (Some(xml), Some(code)) => {
            let message = between("<Message>", "</Message>").unwrap_or_default();
            format!("{} {code}: {message}", text[..xml].trim_end().trim_end_matches(':'))
        }
        _ => text.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

fn from_store(e: object_store::Error) -> BlobError {
    match e {
        object_store::Error::NotFound { .. } => BlobError::NotFound,
        other => unavailable(other),
    }
}

impl S3Store {
    /// Builds the client (nothing is sent yet; see [`S3Store::probe`]).
    /// `journal` is a directory of the data directory's for notes of multipart uploads.
    pub fn open(config: &S3Config, journal: &Path) -> Result<S3Store, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(4)
            .thread_name("recorder-s3")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the S3 client's runtime: {e}"))?;
        let options = ClientOptions::new()
            .with_allow_http(config.endpoint.starts_with("http://"))
            .with_connect_timeout(Duration::from_secs(5))
            // No limit on a whole request (a slow listener plays a long recording), but a store
            // that stops sending mid-response is given up on.
            .with_timeout_disabled()
            .with_read_timeout(Duration::from_secs(30))
            .with_pool_idle_timeout(Duration::from_secs(60));
        // A few quick retries: a store that is down answers 503 within seconds, not minutes.
        let retry = RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(15),
            backoff: object_store::BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                base: 2.0,
            },
        };
        let store = AmazonS3Builder::new()
            .with_endpoint(&config.endpoint)
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_access_key_id(&config.access_key_id)
            .with_secret_access_key(&config.secret_access_key)
            .with_virtual_hosted_style_request(false)
            .with_client_options(options)
            .with_retry(retry)
            .build()
            .map_err(|e| format!("{}: {e}", describe(config)))?;
        Ok(S3Store {
            store: Arc::new(store),
            config: config.clone(),
            runtime: Runtime(Some(runtime)),
            transfers: Arc::new(Semaphore::new(TRANSFERS_AT_ONCE)),
            journal: journal.to_path_buf(),
        })
    }

    /// Lists one page under the prefix: reachable, signed in, and the bucket exists.
    pub fn probe(&self) -> Result<(), String> {
        let (store, prefix) = (self.store.clone(), self.prefix());
        self.wait(async move {
            match store.list(prefix.as_ref()).next().await {
                None | Some(Ok(_)) => Ok(()),
                Some(Err(e)) => Err(e),
            }
        })
        .and_then(|r| r.map_err(unavailable))
        .map_err(|e| format!("cannot use {}: {e}", self.describe()))
    }

    fn prefix(&self) -> Option<Key> {
        Some(self.config.prefix.as_str()).filter(|p| !p.is_empty()).map(Key::from)
    }

    fn key(&self, id: &Uuid) -> Key {
        let id = id.hyphenated().to_string();
        if self.config.prefix.is_empty() { Key::from(id) } else { Key::from(format!("{}/{id}", self.config.prefix)) }
    }

    /// A key of the store's own under the prefix (the marker, database copies): named with a
    /// leading dot, so never taken for a recording.
    fn named(&self, name: &str) -> Key {
        if self.config.prefix.is_empty() {
            Key::from(name)
        } else {
            Key::from(format!("{}/{name}", self.config.prefix))
        }
    }

    /// An object of the store's own; `None` when there is none. Blocking.
    pub fn get_named(&self, name: &str) -> Result<Option<Bytes>, BlobError> {
        let (store, key) = (self.store.clone(), self.named(name));
        self.wait(async move {
            match store.get(&key).await {
                Ok(result) => result.bytes().await.map(Some).map_err(unavailable),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(unavailable(e)),
            }
        })?
    }

    /// Writes an object of the store's own (small: one PUT). Blocking.
    pub fn put_named(&self, name: &str, bytes: Bytes) -> Result<(), BlobError> {
        let (store, key) = (self.store.clone(), self.named(name));
        let size = bytes.len() as u64;
        self.wait(async move {
            store.put(&key, PutPayload::from(bytes)).await.map_err(unavailable)?;
            check_size(&store, &key, size).await
        })?
    }

    /// Uploads a file as an object of the store's own, in parts when large. Blocking.
    pub fn put_named_file(&self, name: &str, path: &Path) -> Result<(), BlobError> {
        let size = std::fs::metadata(path).map_err(BlobError::Disk)?.len();
        let (store, key, journal, path) =
            (self.store.clone(), self.named(name), self.journal.clone(), path.to_path_buf());
        self.wait(async move {
            let file = tokio::fs::File::open(&path).await.map_err(BlobError::Disk)?;
            S3Store::upload(store, journal, key, file, size, Attributes::new()).await
        })?
    }

    /// Removes an object of the store's own. Blocking.
    pub fn delete_named(&self, name: &str) -> Result<(), BlobError> {
        let (store, key) = (self.store.clone(), self.named(name));
        match self.wait(async move { store.delete(&key).await })? {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// The names of the store's own objects under `<prefix>/<dir>/`, relative to it. Blocking.
    pub fn list_named(&self, dir: &str) -> Result<Vec<String>, BlobError> {
        let (store, under) = (self.store.clone(), self.named(dir));
        self.wait(async move {
            let mut out = Vec::new();
            let mut listing = store.list(Some(&under));
            while let Some(meta) = listing.next().await {
                let meta = meta.map_err(unavailable)?;
                if let Some(rest) = meta.location.prefix_match(&under) {
                    out.push(rest.map(|part| part.as_ref().to_string()).collect::<Vec<_>>().join("/"));
                }
            }
            out.sort();
            Ok(out)
        })?
    }

    /// The bucket and prefix, for messages that must name both.
    pub fn place(&self) -> String {
        let prefix = if self.config.prefix.is_empty() {
            "no prefix".to_string()
        } else {
            format!("prefix {}", self.config.prefix)
        };
        format!("bucket {} at {} ({prefix})", self.config.bucket, self.config.endpoint)
    }

    /// Runs `work` on the client's runtime and waits for it from a thread that may block.
    fn wait<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T, BlobError> {
        let handle = self.runtime.handle().ok_or_else(|| unavailable("the S3 client has stopped"))?;
        let (tx, rx) = oneshot::channel();
        handle.spawn(async move {
            let _ = tx.send(work.await);
        });
        rx.blocking_recv().map_err(|_| unavailable("the S3 client stopped before answering"))
    }

    /// Streams `range` of an object into a channel, as a reader.
    fn stream(&self, id: &Uuid, range: Option<std::ops::Range<u64>>) -> Result<ChunkReader, BlobError> {
        let handle = self.runtime.handle().ok_or_else(|| unavailable("the S3 client has stopped"))?;
        let (store, key) = (self.store.clone(), self.key(id));
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(READ_AHEAD);
        let (first_tx, first_rx) = oneshot::channel::<Result<(), BlobError>>();
        handle.spawn(async move {
            let options = GetOptions::new().with_range(range.map(GetRange::Bounded));
            let mut stream = match store.get_opts(&key, options).await {
                Ok(result) => {
                    let _ = first_tx.send(Ok(()));
                    result.into_stream()
                }
                Err(e) => {
                    let _ = first_tx.send(Err(from_store(e)));
                    return;
                }
            };
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(io::Error::other);
                let failed = chunk.is_err();
                // The reader went away (the client hung up): stop reading from the store.
                if tx.send(chunk).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(ChunkReader { rx, first: Some(first_rx), current: Bytes::new() })
    }

    /// Uploads `size` bytes from `source`: one PUT when they fit in a part, else a multipart
    /// upload, aborted if anything fails.
    async fn upload(
        store: Arc<AmazonS3>,
        journal: PathBuf,
        key: Key,
        mut source: impl AsyncRead + Unpin,
        size: u64,
        attributes: Attributes,
    ) -> Result<(), BlobError> {
        if size <= PART as u64 {
            let mut buf = Vec::with_capacity(size as usize);
            (&mut source).take(size + 1).read_to_end(&mut buf).await.map_err(BlobError::Disk)?;
            if buf.len() as u64 != size {
                return Err(BlobError::Disk(short_read(buf.len() as u64, size)));
            }
            put_with(&store, &key, PutPayload::from(buf), attributes).await?;
            return check_size(&store, &key, size).await;
        }
        let mut upload = Multipart::start(store.clone(), key.clone(), &journal, attributes).await?;
        let copied: Result<(), BlobError> = async {
            let mut sent = 0u64;
            loop {
                let mut buf = bytes::BytesMut::with_capacity(1024 * 1024);
                let n = (&mut source).take(1024 * 1024).read_buf(&mut buf).await.map_err(BlobError::Disk)?;
                if n == 0 {
                    break;
                }
                sent += n as u64;
                upload.put(buf.freeze()).await?;
            }
            if sent != size { Err(BlobError::Disk(short_read(sent, size))) } else { Ok(()) }
        }
        .await;
        match copied {
            Ok(()) => {
                upload.complete().await?;
                check_size(&store, &key, size).await
            }
            Err(e) => {
                upload.abort().await;
                Err(e)
            }
        }
    }

    fn put_from(&self, source: Source, size: u64, id: &Uuid, keep: Option<&Keep>) -> Result<(), BlobError> {
        let (store, key, transfers, journal) =
            (self.store.clone(), self.key(id), self.transfers.clone(), self.journal.clone());
        let attributes = attributes(keep);
        self.wait(async move {
            let _permit = transfers.acquire_owned().await.map_err(unavailable)?;
            match source {
                Source::File(path) => {
                    let file = tokio::fs::File::open(&path).await.map_err(BlobError::Disk)?;
                    S3Store::upload(store, journal, key, file, size, attributes).await
                }
                Source::Channel(rx) => {
                    let reader = ChunkReader { rx, first: None, current: Bytes::new() };
                    S3Store::upload(store, journal, key, reader, size, attributes).await
                }
            }
        })?
    }
}

/// An upload streaming to the store as its bytes arrive (see [`S3Store::stream_upload`]).
pub struct Streaming {
    /// The recording id its object is keyed by.
    pub id: Uuid,
    tx: mpsc::Sender<Msg>,
    done: oneshot::Receiver<Result<(), BlobError>>,
}

enum Msg {
    Chunk(Bytes),
    /// Every byte was sent: this many.
    End(u64),
}

impl Streaming {
    /// Sends the next bytes; an error means the store failed (the upload is over).
    pub async fn send(&self, chunk: Bytes) -> Result<(), BlobError> {
        self.tx.send(Msg::Chunk(chunk)).await.map_err(|_| unavailable("the upload to the S3 store failed"))
    }

    /// Sends the end and waits until the store has the whole object (durable, its size checked).
    /// Dropping a `Streaming` without this aborts the upload instead.
    pub async fn finish(self, size: u64) -> Result<(), BlobError> {
        let Streaming { tx, done, .. } = self;
        // A failed send means the task stopped early; its answer says why.
        let _ = tx.send(Msg::End(size)).await;
        drop(tx);
        done.await.map_err(|_| unavailable("the S3 client stopped before answering"))?
    }
}

impl S3Store {
    /// Starts streaming an upload to the store under a new id: bytes are sent as they arrive, in
    /// one PUT when the whole upload fits in a part, else as a multipart upload with one part in
    /// flight while the next fills (two parts of memory at most). Dropped unfinished, or
    /// failing, it is aborted and leaves no object.
    ///
    /// `Ok(None)` when [`TRANSFERS_AT_ONCE`] uploads are streaming already: this one goes to
    /// `tmp/` alone and is sent from there.
    pub fn stream_upload(&self, id: Uuid, keep: Option<&Keep>) -> Result<Option<Streaming>, BlobError> {
        let handle = self.runtime.handle().ok_or_else(|| unavailable("the S3 client has stopped"))?;
        let Ok(permit) = self.transfers.clone().try_acquire_owned() else { return Ok(None) };
        let (store, key, journal) = (self.store.clone(), self.key(&id), self.journal.clone());
        let attributes = attributes(keep);
        let (tx, rx) = mpsc::channel(READ_AHEAD);
        let (done_tx, done) = oneshot::channel();
        handle.spawn(async move {
            let result = stream_to(store, journal, key.clone(), rx, attributes).await;
            drop(permit);
            if let Err(e) = &result {
                log::debug!("streaming upload of {key} ended: {e}");
            }
            let _ = done_tx.send(result);
        });
        Ok(Some(Streaming { id, tx, done }))
    }
}

/// The task behind [`S3Store::stream_upload`].
async fn stream_to(
    store: Arc<AmazonS3>,
    journal: PathBuf,
    key: Key,
    mut rx: mpsc::Receiver<Msg>,
    attributes: Attributes,
) -> Result<(), BlobError> {
    let aborted = || unavailable("the upload ended before its last byte");
    let mut first = Vec::new();
    let mut buffered = 0usize;
    // Up to one part is kept: an upload that ends within it is one PUT.
    while buffered < PART {
        match rx.recv().await {
            Some(Msg::Chunk(bytes)) => {
                buffered += bytes.len();
                first.push(bytes);
            }
            Some(Msg::End(size)) => {
                if buffered as u64 != size {
                    return Err(aborted());
                }
                let payload: PutPayload = first.into_iter().collect();
                put_with(&store, &key, payload, attributes).await?;
                return check_size(&store, &key, size).await;
            }
            None => return Err(aborted()),
        }
    }
    let mut upload = Multipart::start(store.clone(), key.clone(), &journal, attributes).await?;
    let streamed: Result<u64, BlobError> = async {
        for bytes in first {
            upload.put(bytes).await?;
        }
        let mut sent = buffered as u64;
        loop {
            match rx.recv().await {
                Some(Msg::Chunk(bytes)) => {
                    sent += bytes.len() as u64;
                    upload.put(bytes).await?;
                }
                Some(Msg::End(size)) if size == sent => return Ok(size),
                Some(Msg::End(_)) | None => return Err(aborted()),
            }
        }
    }
    .await;
    drop(rx);
    match streamed {
        Ok(size) => {
            upload.complete().await?;
            check_size(&store, &key, size).await
        }
        Err(e) => {
            upload.abort().await;
            Err(e)
        }
    }
}

/// What an object keeps for recovery, as its metadata.
fn attributes(keep: Option<&Keep>) -> Attributes {
    let mut attributes = Attributes::new();
    if let Some(value) = keep.and_then(Keep::to_header) {
        attributes.insert(Attribute::Metadata(crate::storage::store::S3_METADATA.into()), value.into());
    }
    attributes
}

async fn put_with(store: &AmazonS3, key: &Key, payload: PutPayload, attributes: Attributes) -> Result<(), BlobError> {
    let options = PutOptions { attributes, ..Default::default() };
    store.put_opts(key, payload, options).await.map(|_| ()).map_err(unavailable)
}

fn short_read(read: u64, size: u64) -> io::Error {
    io::Error::other(format!("read {read} bytes where {size} were expected"))
}

/// A multipart upload: one part in flight while the next fills (at most two parts in memory).
/// It is noted in the journal directory from its creation until it is completed or aborted, so
/// one a crash abandoned is aborted at the next start ([`S3Store::abort_abandoned`]) instead of
/// keeping its parts in the store.
struct Multipart {
    store: Arc<AmazonS3>,
    key: Key,
    id: MultipartId,
    note: PathBuf,
    parts: Vec<PartId>,
    filling: Vec<Bytes>,
    filled: usize,
    in_flight: Option<tokio::task::JoinHandle<object_store::Result<PartId>>>,
}

impl Multipart {
    async fn start(
        store: Arc<AmazonS3>,
        key: Key,
        journal: &Path,
        attributes: Attributes,
    ) -> Result<Multipart, BlobError> {
        let options = PutMultipartOptions { attributes, ..Default::default() };
        let id = store.create_multipart_opts(&key, options).await.map_err(unavailable)?;
        let note = journal.join(format!("{}-{}", std::process::id(), Uuid::now_v7()));
        let noted = async {
            tokio::fs::create_dir_all(journal).await?;
            tokio::fs::write(&note, format!("{key}\n{id}\n")).await
        }
        .await;
        if let Err(e) = noted {
            let _ = store.abort_multipart(&key, &id).await;
            return Err(BlobError::Disk(e));
        }
        Ok(Multipart { store, key, id, note, parts: Vec::new(), filling: Vec::new(), filled: 0, in_flight: None })
    }

    async fn put(&mut self, bytes: Bytes) -> Result<(), BlobError> {
        self.filled += bytes.len();
        self.filling.push(bytes);
        if self.filled >= PART { self.send_part().await } else { Ok(()) }
    }

    /// Waits for the part in flight, then sends the filled one.
    async fn send_part(&mut self) -> Result<(), BlobError> {
        self.settle().await?;
        let payload: PutPayload = std::mem::take(&mut self.filling).into_iter().collect();
        self.filled = 0;
        let (store, key, id, index) = (self.store.clone(), self.key.clone(), self.id.clone(), self.parts.len());
        self.in_flight = Some(tokio::spawn(async move { store.put_part(&key, &id, index, payload).await }));
        Ok(())
    }

    async fn settle(&mut self) -> Result<(), BlobError> {
        if let Some(part) = self.in_flight.take() {
            let part = part.await.map_err(unavailable)?.map_err(unavailable)?;
            self.parts.push(part);
        }
        Ok(())
    }

    async fn complete(mut self) -> Result<(), BlobError> {
        let completed = async {
            if self.filled > 0 {
                self.send_part().await?;
            }
            self.settle().await?;
            let parts = std::mem::take(&mut self.parts);
            self.store.complete_multipart(&self.key, &self.id, parts).await.map_err(unavailable)
        }
        .await;
        match completed {
            Ok(_) => {
                let _ = tokio::fs::remove_file(&self.note).await;
                Ok(())
            }
            Err(e) => {
                self.abort().await;
                Err(e)
            }
        }
    }

    async fn abort(mut self) {
        if let Some(part) = self.in_flight.take() {
            let _ = part.await;
        }
        match self.store.abort_multipart(&self.key, &self.id).await {
            // Left noted: the next start tries again.
            Err(e) => log::warn!("cannot abort the multipart upload of {}: {e}", self.key),
            Ok(()) => {
                let _ = tokio::fs::remove_file(&self.note).await;
            }
        }
    }
}

impl S3Store {
    /// Aborts the multipart uploads a process that is gone (a crash, `kill -9`) left noted in
    /// the journal: their parts would otherwise stay in the store, unlisted. Blocking.
    pub fn abort_abandoned(&self) -> Result<usize, BlobError> {
        let entries = match std::fs::read_dir(&self.journal) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(BlobError::Disk(e)),
        };
        let mut aborted = 0;
        for entry in entries {
            let path = entry.map_err(BlobError::Disk)?.path();
            let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            let pid = name.split('-').next().unwrap_or_default();
            // Still running (a migration beside this server): its uploads are its own.
            let pid: u32 = pid.parse().unwrap_or(0);
            if pid == std::process::id() || crate::process::running(pid) {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(BlobError::Disk)?;
            let mut lines = text.lines();
            let (Some(key), Some(id)) = (lines.next(), lines.next()) else {
                let _ = std::fs::remove_file(&path);
                continue;
            };
            let (store, key, id) = (self.store.clone(), Key::from(key), id.to_string());
            match self.wait(async move { store.abort_multipart(&key, &id).await })? {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                    std::fs::remove_file(&path).map_err(BlobError::Disk)?;
                    aborted += 1;
                }
                Err(e) => return Err(unavailable(e)),
            }
        }
        Ok(aborted)
    }
}

/// Acknowledged is durable; the size read back catches a store that kept less.
async fn check_size(store: &AmazonS3, key: &Key, size: u64) -> Result<(), BlobError> {
    let meta = store.head(key).await.map_err(unavailable)?;
    if meta.size == size {
        Ok(())
    } else {
        let _ = store.delete(key).await;
        Err(unavailable(format!("the store kept {} bytes of {size}", meta.size)))
    }
}

/// Where an upload's bytes come from.
enum Source {
    File(std::path::PathBuf),
    /// Fed by a blocking reader on another thread.
    Channel(mpsc::Receiver<io::Result<Bytes>>),
}

fn describe(config: &S3Config) -> String {
    let prefix = if config.prefix.is_empty() { String::new() } else { format!(", prefix {}", config.prefix) };
    format!("the S3 store at {} (bucket {}{prefix})", config.endpoint, config.bucket)
}

impl Store for S3Store {
    fn backend(&self) -> Backend {
        Backend::S3
    }

    fn describe(&self) -> String {
        describe(&self.config)
    }

    fn put_file(&self, source: &Path, id: &Uuid, place: Place, keep: Option<&Keep>) -> Result<(), BlobError> {
        let size = std::fs::metadata(source).map_err(BlobError::Disk)?.len();
        self.put_from(Source::File(source.to_path_buf()), size, id, keep)?;
        if place == Place::Move
            && let Err(e) = std::fs::remove_file(source)
        {
            log::warn!("cannot remove {} after uploading it: {e}", source.display());
        }
        Ok(())
    }

    fn put_reader(&self, reader: &mut dyn Read, size: u64, id: &Uuid, keep: Option<&Keep>) -> Result<(), BlobError> {
        // The blocking reader feeds the upload through a channel from this thread.
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(READ_AHEAD);
        std::thread::scope(|scope| {
            let uploading = scope.spawn(move || self.put_from(Source::Channel(rx), size, id, keep));
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let chunk = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => Ok(Bytes::copy_from_slice(&buf[..n])),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => Err(e),
                };
                let failed = chunk.is_err();
                if tx.blocking_send(chunk).is_err() || failed {
                    break;
                }
            }
            drop(tx);
            uploading.join().unwrap_or_else(|_| Err(unavailable("the upload thread panicked")))
        })
    }

    fn delete(&self, id: &Uuid) -> Result<(), BlobError> {
        let (store, key) = (self.store.clone(), self.key(id));
        match self.wait(async move { store.delete(&key).await })? {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    fn kept(&self, id: &Uuid) -> Result<Option<Keep>, BlobError> {
        let (store, key) = (self.store.clone(), self.key(id));
        let got = self.wait(async move { store.get_opts(&key, GetOptions::new().with_head(true)).await })?;
        match got {
            Ok(result) => Ok(result
                .attributes
                .get(&Attribute::Metadata(crate::storage::store::S3_METADATA.into()))
                .and_then(|value| Keep::from_header(value))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    fn size_of(&self, id: &Uuid) -> Result<Option<u64>, BlobError> {
        let (store, key) = (self.store.clone(), self.key(id));
        match self.wait(async move { store.head(&key).await })? {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    fn list(&self) -> Result<Vec<Object>, BlobError> {
        let (store, prefix) = (self.store.clone(), self.prefix());
        let depth = prefix.as_ref().map_or(0, |p| p.parts().count());
        self.wait(async move {
            let mut out = Vec::new();
            let mut listing = store.list(prefix.as_ref());
            while let Some(meta) = listing.next().await {
                let meta = meta.map_err(unavailable)?;
                // Only `<prefix>/<id>`: anything deeper or otherwise named is not ours.
                let parts: Vec<_> = meta.location.parts().collect();
                if parts.len() != depth + 1 {
                    continue;
                }
                if let Some(id) = parts.last().and_then(|p| Uuid::parse_str(p.as_ref()).ok()) {
                    out.push(Object { id, size: meta.size, modified_ms: meta.last_modified.timestamp_millis() });
                }
            }
            Ok(out)
        })?
    }

    fn reader(&self, id: &Uuid) -> Result<Box<dyn Read + Send>, BlobError> {
        let mut reader = self.stream(id, None)?;
        reader.wait_first()?;
        Ok(Box::new(reader))
    }

    fn open_range(&self, id: Uuid, start: u64, len: u64) -> BoxFuture<'static, Result<Body, BlobError>> {
        let handle = self.runtime.handle().cloned();
        let (store, key) = (self.store.clone(), self.key(&id));
        Box::pin(async move {
            // S3 refuses an empty range; there is nothing to read.
            if len == 0 {
                return Ok(Box::pin(tokio::io::empty()) as Body);
            }
            let handle = handle.ok_or_else(|| unavailable("the S3 client has stopped"))?;
            // The request is made on the client's runtime (its connection lives there); the body
            // is then read straight from the caller's task, with no hand-over per chunk.
            let options = GetOptions::new().with_range(Some(GetRange::Bounded(start..start + len)));
            let got = handle
                .spawn(async move { store.get_opts(&key, options).await })
                .await
                .map_err(|e| unavailable(format!("the S3 request failed: {e}")))?
                .map_err(from_store)?;
            let stream = got.into_stream().map(|chunk| chunk.map_err(io::Error::other));
            let reader: Pin<Box<dyn AsyncRead + Send>> = Box::pin(tokio_util::io::StreamReader::new(stream));
            Ok(Box::pin(Direct(std::sync::Mutex::new(reader))) as Body)
        })
    }
}

/// A response body read in place; the mutex only makes it `Sync` (it is never contended: reads
/// take it through `&mut`).
struct Direct(std::sync::Mutex<Pin<Box<dyn AsyncRead + Send>>>);

impl AsyncRead for Direct {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let inner = self.get_mut().0.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner());
        inner.as_mut().poll_read(cx, buf)
    }
}

/// Chunks from the client's runtime, read as a byte stream (async or blocking).
struct ChunkReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    /// Whether the GET was answered; awaited before the first read.
    first: Option<oneshot::Receiver<Result<(), BlobError>>>,
    current: Bytes,
}

impl ChunkReader {
    fn wait_first(&mut self) -> Result<(), BlobError> {
        match self.first.take() {
            Some(first) => first.blocking_recv().map_err(|_| unavailable("the S3 client stopped before answering"))?,
            None => Ok(()),
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.wait_first().map_err(BlobError::into_io)?;
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

impl AsyncRead for ChunkReader {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        while self.current.is_empty() {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(chunk)) => self.current = chunk?,
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = buf.remaining().min(self.current.len());
        let chunk = self.current.split_to(n);
        buf.put_slice(&chunk);
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_are_one_line() {
        let xml = "GET http://h/b failed - Server returned non-2xx status code: 403 Forbidden: <?xml version=\"1.0\"?>\n\
                   <Error><Code>SignatureDoesNotMatch</Code><Message>Check your key.</Message></Error>";
        assert_eq!(
            one_line(xml),
            "GET http://h/b failed - Server returned non-2xx status code: 403 Forbidden SignatureDoesNotMatch: Check your key."
        );
        assert_eq!(one_line("error sending\n  request"), "error sending request");
    }
}
