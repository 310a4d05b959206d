//! The object store as a [`Store`]: recordings' bytes by id.

use crate::storage::store::{Backend, BlobError, Body, Keep, Object, Place, Store};
use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;
use object_store::{Attribute, GetOptions, GetRange, ObjectStore, ObjectStoreExt as _};
use std::io::{self, Read};
use std::path::Path;
use std::pin::Pin;
use tokio::io::AsyncRead;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::client::{READ_AHEAD, S3Store, describe, from_store, unavailable};
use super::transfer::{Direct, Source};

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
