//! A recording's file as the library reads it (GET) and writes it (PUT, through the upload
//! path).

use crate::error::Error;
use crate::ingest::{self, Draft, Place, Stored};
use crate::state::AppState;
use crate::storage::{self, StreamError, Upload};
use bytes::{Buf, Bytes, BytesMut};
use dav_server::fs::{DavFile, DavMetaData, FsError, FsFuture, FsResult};
use futures_util::FutureExt;
use std::io::SeekFrom;
use std::time::SystemTime;
use tokio::io::AsyncReadExt;
use uuid::Uuid;

use super::caller::{Caller, PutOutcome};
use super::meta::{Meta, lock};

/// A recording's file, read for GET.
pub(super) struct ReadFile {
    pub(super) storage: storage::Storage,
    pub(super) store: crate::storage::store::Backend,
    pub(super) id: Uuid,
    pub(super) size: u64,
    pub(super) pos: u64,
    /// The bytes from `pos` on, once a read asked for them.
    pub(super) body: Option<crate::storage::store::Body>,
    pub(super) meta: Meta,
}

impl std::fmt::Debug for ReadFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadFile").field("id", &self.id).field("pos", &self.pos).finish_non_exhaustive()
    }
}

impl DavFile for ReadFile {
    fn metadata(&mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let meta: Box<dyn DavMetaData> = Box::new(self.meta.clone());
        Box::pin(std::future::ready(Ok(meta)))
    }

    fn write_buf(&mut self, _buf: Box<dyn Buf + Send>) -> FsFuture<'_, ()> {
        Box::pin(std::future::ready(Err(FsError::Forbidden)))
    }

    fn write_bytes(&mut self, _buf: Bytes) -> FsFuture<'_, ()> {
        Box::pin(std::future::ready(Err(FsError::Forbidden)))
    }

    fn read_bytes(&mut self, count: usize) -> FsFuture<'_, Bytes> {
        async move {
            if self.body.is_none() {
                let len = self.size.saturating_sub(self.pos);
                let opening = self.storage.store(self.store).map(|store| store.open_range(self.id, self.pos, len));
                let opened = match opening {
                    Ok(opening) => opening.await,
                    Err(e) => Err(e),
                };
                self.body = Some(opened.map_err(|e| {
                    log::error!("WebDAV: cannot open recording {}: {e}", self.id);
                    if matches!(e, crate::storage::store::BlobError::NotFound) {
                        FsError::NotFound
                    } else {
                        FsError::GeneralFailure
                    }
                })?);
            }
            let mut buf = BytesMut::with_capacity(count);
            if let Some(body) = self.body.as_mut() {
                while buf.len() < count {
                    let n = body.read_buf(&mut buf).await.map_err(|e| {
                        log::error!("WebDAV: reading a recording: {e}");
                        FsError::GeneralFailure
                    })?;
                    if n == 0 {
                        break;
                    }
                }
            }
            self.pos += buf.len() as u64;
            Ok(buf.freeze())
        }
        .boxed()
    }

    fn seek(&mut self, pos: SeekFrom) -> FsFuture<'_, u64> {
        let target = match pos {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(n) => self.size.checked_add_signed(n),
            SeekFrom::Current(n) => self.pos.checked_add_signed(n),
        };
        let moved = match target {
            Some(target) => {
                if target != self.pos {
                    self.body = None;
                    self.pos = target;
                }
                Ok(target)
            }
            None => Err(FsError::GeneralFailure),
        };
        Box::pin(std::future::ready(moved))
    }

    fn flush(&mut self) -> FsFuture<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// A PUT in progress: the body streams into a temp file (hashed as it goes, its first bytes
/// sniffed), and the flush at its end stores it as every upload is stored.
pub(super) struct PutFile {
    pub(super) state: AppState,
    pub(super) caller: Caller,
    pub(super) name: String,
    /// `None` once finished (or failed).
    pub(super) upload: Option<Upload>,
    pub(super) max: u64,
    pub(super) budget: u64,
    pub(super) stored: Option<Meta>,
}

impl std::fmt::Debug for PutFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutFile").field("name", &self.name).finish_non_exhaustive()
    }
}

impl PutFile {
    pub(super) async fn push(&mut self, bytes: &[u8]) -> FsResult<()> {
        let Some(upload) = self.upload.as_mut() else { return Err(FsError::GeneralFailure) };
        let limit = self.max.min(self.budget);
        match upload.push(bytes, limit).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let size = upload.size() + bytes.len() as u64;
                self.upload = None;
                let stop = match &e {
                    StreamError::TooLarge if size > self.budget && self.budget < self.max => {
                        FsError::InsufficientStorage
                    }
                    StreamError::TooLarge => FsError::TooLarge,
                    StreamError::NotAudio => FsError::Forbidden,
                    _ => FsError::GeneralFailure,
                };
                Err(self.caller.refuse(ingest::stream_error(e, self.max, self.budget, size), stop))
            }
        }
    }

    pub(super) async fn store(&mut self) -> FsResult<()> {
        let Some(upload) = self.upload.take() else {
            return if self.stored.is_some() { Ok(()) } else { Err(FsError::GeneralFailure) };
        };
        if upload.size() == 0 {
            return Err(self.caller.refuse(ingest::empty_body(), FsError::Forbidden));
        }
        let mut finished = upload.finish().await.map_err(|e| self.caller.refuse(e, FsError::GeneralFailure))?;
        let streamed = finished.object().await.map_err(|e| self.caller.refuse(e, FsError::GeneralFailure))?;
        let state = &self.state;
        let draft = Draft {
            user_id: self.caller.0.user_id.clone(),
            name: Some(self.name.clone()),
            recorded_at: None,
            idempotency_key: None,
            file_name: true,
            streamed,
            marks: Vec::new(),
        };
        let (db, storage, now) = (state.db.clone(), state.storage.clone(), state.clock.now_ms());
        let temp_path = finished.temp.path().to_path_buf();
        let (size, sha256) = (finished.size, finished.sha256.clone());
        let stored = crate::db::blocking(move || {
            let mut conn = db.conn()?;
            ingest::record(&mut conn, &storage, now, &temp_path, size, sha256, Place::Move, &draft, &mut |_, _| {
                Ok(true)
            })
        })
        .await
        .map_err(|e| {
            let stop = if matches!(e, Error::NotAudio(_)) { FsError::Forbidden } else { FsError::GeneralFailure };
            self.caller.refuse(e, stop)
        })?;
        let outcome = match stored {
            Stored::Created(recording) => {
                finished.temp.disarm();
                state.jobs.wake();
                state.changes.user(&self.caller.0.user_id);
                state.metrics.uploaded(recording.size.max(0) as u64);
                self.stored = Some(Meta::of(&recording));
                PutOutcome::Created(recording.name)
            }
            Stored::Existing(recording) => {
                self.stored = Some(Meta::of(&recording));
                PutOutcome::Existing
            }
            Stored::Declined => return Err(FsError::GeneralFailure),
        };
        *lock(&self.caller.0.stored) = Some(outcome);
        Ok(())
    }
}

impl DavFile for PutFile {
    fn metadata(&mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let meta = self.stored.clone().unwrap_or(Meta {
            len: self.upload.as_ref().map_or(0, Upload::size),
            modified: SystemTime::now(),
            created: SystemTime::now(),
            dir: false,
            etag: None,
        });
        let meta: Box<dyn DavMetaData> = Box::new(meta);
        Box::pin(std::future::ready(Ok(meta)))
    }

    fn write_buf(&mut self, mut buf: Box<dyn Buf + Send>) -> FsFuture<'_, ()> {
        async move {
            let bytes = buf.copy_to_bytes(buf.remaining());
            self.push(&bytes).await
        }
        .boxed()
    }

    fn write_bytes(&mut self, buf: Bytes) -> FsFuture<'_, ()> {
        async move { self.push(&buf).await }.boxed()
    }

    fn read_bytes(&mut self, _count: usize) -> FsFuture<'_, Bytes> {
        Box::pin(std::future::ready(Err(FsError::Forbidden)))
    }

    fn seek(&mut self, pos: SeekFrom) -> FsFuture<'_, u64> {
        // Only a PUT of a whole file: a ranged PUT (Content-Range) is refused.
        let at_start = matches!(pos, SeekFrom::Start(0));
        let error = Error::invalid("partial PUTs are not supported: send the whole file");
        let result = if at_start { Ok(0) } else { Err(self.caller.refuse(error, FsError::NotImplemented)) };
        Box::pin(std::future::ready(result))
    }

    fn flush(&mut self) -> FsFuture<'_, ()> {
        async move { self.store().await }.boxed()
    }
}
