//! Bytes moving: a stream of an object as a reader, one PUT or a multipart upload of 16 MiB
//! parts, an upload streaming as its bytes arrive.

use crate::storage::store::{BlobError, Keep};
use bytes::Bytes;
use futures_util::StreamExt as _;
use object_store::aws::AmazonS3;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as Key;
use object_store::{Attributes, GetOptions, GetRange, MultipartId, ObjectStore, PutMultipartOptions, PutPayload};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt as _, ReadBuf};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::client::{PART, READ_AHEAD, S3Store, attributes, check_size, from_store, put_with, short_read, unavailable};

impl S3Store {
    /// Streams `range` of an object into a channel, as a reader.
    pub(super) fn stream(&self, id: &Uuid, range: Option<std::ops::Range<u64>>) -> Result<ChunkReader, BlobError> {
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
    pub(super) async fn upload(
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

    pub(super) fn put_from(&self, source: Source, size: u64, id: &Uuid, keep: Option<&Keep>) -> Result<(), BlobError> {
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
    pub(super) tx: mpsc::Sender<Msg>,
    pub(super) done: oneshot::Receiver<Result<(), BlobError>>,
}

pub(super) enum Msg {
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
pub(super) async fn stream_to(
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

/// A multipart upload: one part in flight while the next fills (at most two parts in memory).
/// It is noted in the journal directory from its creation until it is completed or aborted, so
/// one a crash abandoned is aborted at the next start ([`S3Store::abort_abandoned`]) instead of
/// keeping its parts in the store.
pub(super) struct Multipart {
    pub(super) store: Arc<AmazonS3>,
    pub(super) key: Key,
    pub(super) id: MultipartId,
    pub(super) note: PathBuf,
    pub(super) parts: Vec<PartId>,
    pub(super) filling: Vec<Bytes>,
    pub(super) filled: usize,
    pub(super) in_flight: Option<tokio::task::JoinHandle<object_store::Result<PartId>>>,
}

impl Multipart {
    pub(super) async fn start(
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

    pub(super) async fn put(&mut self, bytes: Bytes) -> Result<(), BlobError> {
        self.filled += bytes.len();
        self.filling.push(bytes);
        if self.filled >= PART { self.send_part().await } else { Ok(()) }
    }

    /// Waits for the part in flight, then sends the filled one.
    pub(super) async fn send_part(&mut self) -> Result<(), BlobError> {
        self.settle().await?;
        let payload: PutPayload = std::mem::take(&mut self.filling).into_iter().collect();
        self.filled = 0;
        let (store, key, id, index) = (self.store.clone(), self.key.clone(), self.id.clone(), self.parts.len());
        self.in_flight = Some(tokio::spawn(async move { store.put_part(&key, &id, index, payload).await }));
        Ok(())
    }

    pub(super) async fn settle(&mut self) -> Result<(), BlobError> {
        if let Some(part) = self.in_flight.take() {
            let part = part.await.map_err(unavailable)?.map_err(unavailable)?;
            self.parts.push(part);
        }
        Ok(())
    }

    pub(super) async fn complete(mut self) -> Result<(), BlobError> {
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

    pub(super) async fn abort(mut self) {
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

/// Where an upload's bytes come from.
pub(super) enum Source {
    File(std::path::PathBuf),
    /// Fed by a blocking reader on another thread.
    Channel(mpsc::Receiver<io::Result<Bytes>>),
}

/// A response body read in place; the mutex only makes it `Sync` (it is never contended: reads
/// take it through `&mut`).
pub(super) struct Direct(pub(super) std::sync::Mutex<Pin<Box<dyn AsyncRead + Send>>>);

impl AsyncRead for Direct {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let inner = self.get_mut().0.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner());
        inner.as_mut().poll_read(cx, buf)
    }
}

/// Chunks from the client's runtime, read as a byte stream (async or blocking).
pub(super) struct ChunkReader {
    pub(super) rx: mpsc::Receiver<io::Result<Bytes>>,
    /// Whether the GET was answered; awaited before the first read.
    pub(super) first: Option<oneshot::Receiver<Result<(), BlobError>>>,
    pub(super) current: Bytes,
}

impl ChunkReader {
    pub(super) fn wait_first(&mut self) -> Result<(), BlobError> {
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
