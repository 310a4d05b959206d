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

pub mod client;
pub mod objects;
pub mod transfer;

pub use client::{S3Config, S3Store, TRANSFERS_AT_ONCE};
pub use transfer::Streaming;
