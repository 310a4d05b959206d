//! Resumable uploads: the upload resources tus 1.0 and the IETF draft share (`http/uploads.rs`
//! speaks both protocols over these).
//!
//! An upload is a row in `uploads` and a file `uploads/<id>` in the data directory. Its durable
//! offset is `received`: bytes are written, the file fsynced, and only then is `received` moved
//! forward, so any offset the server reports survives `kill -9` and power loss. Bytes past
//! `received` (a request cut off by a crash) were never acknowledged; the next request (and
//! startup) cuts them off.
//!
//! One request works on an upload at a time. Each request takes the upload's *turn*; a newer
//! request asks the one holding it to stop (a phone that switched networks while its old
//! connection hangs), and the older one keeps what it durably wrote and lets go.
//!
//! When the last byte is durable, [`crate::ingest::record`] stores the file as a recording and
//! marks the upload complete in the same transaction: exactly once, whatever the retries.

pub mod append;
pub mod registry;
pub mod resource;
pub mod rows;
pub mod sweep;

pub use append::{Append, append, checksum_mismatch, status};
pub use registry::Registry;
pub use resource::{NewUpload, Progress, cancel, create, describe, find, list};
pub use rows::{Upload, UploadView, conflict, not_found, queue_unlinks_for_user, usage};
pub use sweep::{Swept, recover, sweep};
