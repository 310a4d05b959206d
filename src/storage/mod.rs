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
