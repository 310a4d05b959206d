//! What one request carries through the library: its user, what it may remove, and what its
//! PUT stored.

use crate::error::Error;
use crate::recordings::{Folder, Recording};
use dav_server::fs::FsError;
use std::sync::{Arc, Mutex};

use super::guard::Scope;
use super::meta::lock;

/// The caller of one request, and what the file system has to tell the response about it.
#[derive(Clone)]
pub(super) struct Caller(pub(super) Arc<CallerInner>);

pub(super) struct CallerInner {
    pub(super) user_id: String,
    /// What the request may remove.
    pub(super) scope: Scope,
    /// Our own answer instead of the library's (415 for a file that is not audio, 413, 507…).
    pub(super) refusal: Mutex<Option<Error>>,
    /// The recording's stored type, for a GET's Content-Type (the library guesses by name).
    pub(super) content_type: Mutex<Option<String>>,
    /// What a PUT stored.
    pub(super) stored: Mutex<Option<PutOutcome>>,
    /// The last name looked up and the recording it stands for: the library asks for a file's
    /// metadata and then opens it (or deletes, or moves it), and one lookup serves both.
    pub(super) found: Mutex<Option<(Folder, String, Recording)>>,
}

pub(super) enum PutOutcome {
    /// Stored under this name.
    Created(String),
    Existing,
}

impl Caller {
    /// Keeps `error` as the answer and gives the library an error to stop with.
    pub(super) fn refuse(&self, error: Error, stop: FsError) -> FsError {
        *lock(&self.0.refusal) = Some(error);
        stop
    }
}
