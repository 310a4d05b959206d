//! Recordings in an S3-compatible object store (Garage, SeaweedFS, MinIO, AWS), through the
//! `object_store` crate (it signs the requests). One object per recording, keyed
//! `<prefix>/<recording id>`: no names or user data in keys.
//!
//! Uploads arrive in `tmp/` first (sniffed, hashed and checked there), then go to the store in
//! one PUT, or as a multipart upload of 8 MiB parts (two in flight) when larger; the row is
//! written only after the store acknowledged the object, and a multipart upload that fails is
//! aborted. Nothing relies on conditional PUTs (Garage ignores `If-None-Match`): a key is
//! written once, by the upload that made up its id, or again with the same bytes by a migration.
//!
//! The client runs on a small runtime of its own, so its connections outlive any one request
//! and blocking callers (the job workers, `check`, `backup`, `migrate`) can wait for it. Reads
//! stream through a bounded channel: memory stays a few chunks per reader whatever the size.

use crate::blobs::{Backend, BlobError, Body, Object, Place, Store};
use crate::config::S3Config;
use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as Key;
use object_store::{
    ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt as _, PutPayload, RetryConfig, WriteMultipart,
};
use std::io::{self, Read};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt as _, ReadBuf};
use tokio::sync::{Semaphore, mpsc, oneshot};
use uuid::Uuid;

/// Multipart part size: S3 wants at least 5 MiB for every part but the last.
const PART: usize = 8 * 1024 * 1024;
/// Parts uploaded at once, per upload.
const PARTS_IN_FLIGHT: usize = 2;
/// Uploads to the store at once: with the parts above, at most about 48 MiB of buffers.
const PUTS_AT_ONCE: usize = 2;
/// Chunks a reader may have waiting.
const READ_AHEAD: usize = 8;

/// The object store and the runtime its client runs on.
pub struct S3Store {
    store: Arc<AmazonS3>,
    config: S3Config,
    runtime: Runtime,
    puts: Arc<Semaphore>,
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
    BlobError::Unavailable(e.to_string())
}

fn from_store(e: object_store::Error) -> BlobError {
    match e {
        object_store::Error::NotFound { .. } => BlobError::NotFound,
        other => unavailable(other),
    }
}

impl S3Store {
    /// Builds the client (nothing is sent yet; see [`S3Store::probe`]).
    pub fn open(config: &S3Config) -> Result<S3Store, String> {
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
            puts: Arc::new(Semaphore::new(PUTS_AT_ONCE)),
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

    /// Uploads a file: one PUT when small, else a multipart upload, aborted if it fails.
    async fn upload(store: Arc<AmazonS3>, key: Key, mut source: impl AsyncRead + Unpin, size: u64) -> io::Result<()> {
        if size <= PART as u64 {
            let mut buf = Vec::with_capacity(size as usize);
            (&mut source).take(size + 1).read_to_end(&mut buf).await?;
            if buf.len() as u64 != size {
                return Err(io::Error::other(format!("read {} bytes where {size} were expected", buf.len())));
            }
            store.put(&key, PutPayload::from(buf)).await.map_err(io::Error::other)?;
            return Ok(());
        }
        let upload = store.put_multipart(&key).await.map_err(io::Error::other)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
        let mut buf = vec![0u8; 1024 * 1024];
        let mut sent = 0u64;
        let result: io::Result<()> = async {
            loop {
                writer.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(io::Error::other)?;
                let n = source.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                sent += n as u64;
                if sent > size {
                    break;
                }
                writer.write(&buf[..n]);
            }
            if sent != size {
                return Err(io::Error::other(format!("read {sent} bytes where {size} were expected")));
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => writer.finish().await.map(|_| ()).map_err(io::Error::other),
            Err(e) => {
                if let Err(abort) = writer.abort().await {
                    log::warn!("cannot abort a failed multipart upload of {key}: {abort}");
                }
                Err(e)
            }
        }
    }

    fn put_from(&self, source: Source, size: u64, id: &Uuid) -> Result<(), BlobError> {
        let (store, key, puts) = (self.store.clone(), self.key(id), self.puts.clone());
        let done = self.wait(async move {
            let _permit = puts.acquire_owned().await.map_err(io::Error::other)?;
            match source {
                Source::File(path) => {
                    let file = tokio::fs::File::open(&path).await?;
                    S3Store::upload(store.clone(), key.clone(), file, size).await?;
                }
                Source::Channel(rx) => {
                    let reader = ChunkReader { rx, first: None, current: Bytes::new() };
                    S3Store::upload(store.clone(), key.clone(), reader, size).await?;
                }
            }
            // Acknowledged is durable; the size read back catches a store that kept less.
            let meta = store.head(&key).await.map_err(io::Error::other)?;
            if meta.size != size {
                return Err(io::Error::other(format!("the store kept {} bytes of {size}", meta.size)));
            }
            Ok(())
        })?;
        done.map_err(unavailable)
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

    fn put_file(&self, source: &Path, id: &Uuid, place: Place) -> Result<(), BlobError> {
        let size = std::fs::metadata(source).map_err(BlobError::Disk)?.len();
        self.put_from(Source::File(source.to_path_buf()), size, id)?;
        if place == Place::Move
            && let Err(e) = std::fs::remove_file(source)
        {
            log::warn!("cannot remove {} after uploading it: {e}", source.display());
        }
        Ok(())
    }

    fn put_reader(&self, reader: &mut dyn Read, size: u64, id: &Uuid) -> Result<(), BlobError> {
        // The blocking reader feeds the upload through a channel from this thread.
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(READ_AHEAD);
        let this = self;
        std::thread::scope(|scope| {
            let uploading = scope.spawn(move || this.put_from(Source::Channel(rx), size, id));
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
        let reader = if len == 0 {
            // S3 refuses an empty range; there is nothing to read.
            Ok(None)
        } else {
            self.stream(&id, Some(start..start + len)).map(Some)
        };
        Box::pin(async move {
            match reader? {
                None => Ok(Box::pin(tokio::io::empty()) as Body),
                Some(mut reader) => {
                    if let Some(first) = reader.first.take() {
                        first.await.map_err(|_| unavailable("the S3 client stopped before answering"))??;
                    }
                    Ok(Box::pin(reader) as Body)
                }
            }
        })
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
