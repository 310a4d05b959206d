//! The data directory, and the stores recordings' bytes live in ([`store`]).
//!
//! Uploads in flight are streamed into `tmp/` and hashed chunk by chunk. On disk
//! (`recordings/<last 2 hex of id>/<id>`) the file is fsynced, renamed into place and the
//! directory fsynced; with an object store as the backend the same chunks stream to it as they
//! arrive ([`s3`]) and the temp file only serves sniffing. Either way the bytes are durable
//! before their row exists.

pub mod dir;
pub mod files;
pub mod incoming;
pub mod s3;
pub mod store;

pub use dir::{LOCK_FILE, Storage, lock_dir};
pub use files::{copy_hashed, disk_error, hash_file, hex, insufficient_storage, modified_ms, sync_dir};
pub use incoming::{Appended, Checksum, Finished, HEAD_LEN, StreamError, TempFile, Upload};
pub use store::{Backend, BlobError, Keep, LocalStore, Store};

use s3::S3Config;
use std::path::PathBuf;

/// `[storage]`: the data directory, upload limits and where recordings' bytes go.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
    pub max_upload_size: u64,
    pub min_free_space: u64,
    /// Where new recordings' audio goes (`backend`).
    pub backend: Backend,
    /// The object store (`[storage.s3]`), when an endpoint and a bucket are set: used for new
    /// recordings when `backend` is S3, and for reading recordings already there either way.
    pub s3: Option<S3Config>,
}
