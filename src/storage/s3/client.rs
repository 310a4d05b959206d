//! The client: its own small runtime, the store's keys, named objects (backups, the marker),
//! and what a failure of the store is called.

use crate::storage::store::{BlobError, Keep, Store};
use bytes::Bytes;
use futures_util::StreamExt as _;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::MultipartStore;
use object_store::path::Path as Key;
use object_store::{
    Attribute, Attributes, ClientOptions, ObjectStore, ObjectStoreExt as _, PutOptions, PutPayload, RetryConfig,
};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, oneshot};
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
pub(super) const PART: usize = 16 * 1024 * 1024;
/// Uploads to the store at once, streaming or from a file: each holds at most a part filling
/// and a part in flight, so all of them together at most 64 MiB of buffers.
pub const TRANSFERS_AT_ONCE: usize = 2;
/// Chunks a reader may have waiting.
pub(super) const READ_AHEAD: usize = 8;

/// The object store and the runtime its client runs on.
pub struct S3Store {
    pub(super) store: Arc<AmazonS3>,
    pub(super) config: S3Config,
    pub(super) runtime: Runtime,
    /// Permits for [`TRANSFERS_AT_ONCE`].
    pub(super) transfers: Arc<Semaphore>,
    /// Multipart uploads in progress, one small file each (see [`Multipart`]).
    pub(super) journal: PathBuf,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store").field("config", &self.config).finish_non_exhaustive()
    }
}

/// A runtime that can be dropped anywhere (also inside another runtime's task).
pub(super) struct Runtime(Option<tokio::runtime::Runtime>);

impl Runtime {
    pub(super) fn handle(&self) -> Option<&tokio::runtime::Handle> {
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

pub(super) fn unavailable(e: impl std::fmt::Display) -> BlobError {
    BlobError::Unavailable(one_line(&e.to_string()))
}

/// A store's error as one line: an S3 XML error body becomes its code and message.
pub(super) fn one_line(text: &str) -> String {
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

pub(super) fn from_store(e: object_store::Error) -> BlobError {
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

    pub(super) fn prefix(&self) -> Option<Key> {
        Some(self.config.prefix.as_str()).filter(|p| !p.is_empty()).map(Key::from)
    }

    pub(super) fn key(&self, id: &Uuid) -> Key {
        let id = id.hyphenated().to_string();
        if self.config.prefix.is_empty() { Key::from(id) } else { Key::from(format!("{}/{id}", self.config.prefix)) }
    }

    /// A key of the store's own under the prefix (the marker, database copies): named with a
    /// leading dot, so never taken for a recording.
    pub(super) fn named(&self, name: &str) -> Key {
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
    pub(super) fn wait<T: Send + 'static>(
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
}

/// What an object keeps for recovery, as its metadata.
pub(super) fn attributes(keep: Option<&Keep>) -> Attributes {
    let mut attributes = Attributes::new();
    if let Some(value) = keep.and_then(Keep::to_header) {
        attributes.insert(Attribute::Metadata(crate::storage::store::S3_METADATA.into()), value.into());
    }
    attributes
}

pub(super) async fn put_with(
    store: &AmazonS3,
    key: &Key,
    payload: PutPayload,
    attributes: Attributes,
) -> Result<(), BlobError> {
    let options = PutOptions { attributes, ..Default::default() };
    store.put_opts(key, payload, options).await.map(|_| ()).map_err(unavailable)
}

pub(super) fn short_read(read: u64, size: u64) -> io::Error {
    io::Error::other(format!("read {read} bytes where {size} were expected"))
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
pub(super) async fn check_size(store: &AmazonS3, key: &Key, size: u64) -> Result<(), BlobError> {
    let meta = store.head(key).await.map_err(unavailable)?;
    if meta.size == size {
        Ok(())
    } else {
        let _ = store.delete(key).await;
        Err(unavailable(format!("the store kept {} bytes of {size}", meta.size)))
    }
}

pub(super) fn describe(config: &S3Config) -> String {
    let prefix = if config.prefix.is_empty() { String::new() } else { format!(", prefix {}", config.prefix) };
    format!("the S3 store at {} (bucket {}{prefix})", config.endpoint, config.bucket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn store_errors_are_one_line() {
        let xml = "GET http://h/b failed - Server returned non-2xx status code: 403 Forbidden: <?xml version=\"1.0\"?>\n\
                   <Error><Code>SignatureDoesNotMatch</Code><Message>Check your key.</Message></Error>";
        assert_eq!(
            one_line(xml),
            "GET http://h/b failed - Server returned non-2xx status code: 403 Forbidden SignatureDoesNotMatch: Check your key."
        );
        assert_eq!(one_line("error sending\n  request"), "error sending request");
    }
}
