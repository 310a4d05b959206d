//! The data directory: its layout, its lock, and which store a recording's bytes are in.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::s3::S3Store;
use super::store::{Backend, BlobError, LocalStore, Store};

/// The data directory.
#[derive(Debug, Clone)]
pub struct Storage {
    pub(super) root: PathBuf,
    /// Recordings under `recordings/`.
    pub(super) local: LocalStore,
    /// The object store, when `[storage.s3]` is configured.
    pub(super) s3: Option<Arc<S3Store>>,
    /// Where new recordings go.
    pub(super) backend: Backend,
    /// Upload chunk writes and fsyncs at once: a burst of uploads never fills the whole blocking
    /// pool, so database queries (the list, logins) still find a thread.
    pub(super) upload_jobs: Arc<Semaphore>,
}

/// Upload jobs at once unless the server sets it from its blocking pool's size.
const DEFAULT_UPLOAD_JOBS: usize = 2;

impl Storage {
    /// At most `jobs` upload writes and fsyncs run at once (at least one).
    pub fn limit_upload_jobs(mut self, jobs: usize) -> Storage {
        self.upload_jobs = Arc::new(Semaphore::new(jobs.max(1)));
        self
    }

    /// Opens the data directory, creating it and its `recordings/` and `tmp/` if missing.
    pub fn open(root: &Path) -> io::Result<Storage> {
        use std::os::unix::fs::DirBuilderExt as _;
        for dir in [root.to_path_buf(), root.join("recordings"), root.join("tmp"), root.join("uploads")] {
            // Password hashes and everyone's recordings: a new data directory is its owner's
            // alone (the mode applies only to directories created here).
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display())))?;
        }
        Ok(Storage {
            root: root.to_path_buf(),
            local: LocalStore::new(root),
            s3: None,
            backend: Backend::Local,
            upload_jobs: Arc::new(Semaphore::new(DEFAULT_UPLOAD_JOBS)),
        })
    }

    /// Whether uploads stream to the object store as they arrive (it is the current store).
    pub fn streams(&self) -> bool {
        self.s3.is_some() && self.backend == Backend::S3
    }

    /// Adds the object store; new recordings go to `backend`.
    pub fn with_s3(mut self, s3: Option<Arc<S3Store>>, backend: Backend) -> Storage {
        self.backend = if s3.is_some() { backend } else { Backend::Local };
        self.s3 = s3;
        self
    }

    /// The store new recordings go to.
    pub fn current(&self) -> &dyn Store {
        match (&self.s3, self.backend) {
            (Some(s3), Backend::S3) => s3.as_ref(),
            _ => &self.local,
        }
    }

    /// The store that holds recordings of `backend`: an object store that is not configured is
    /// unavailable.
    pub fn store(&self, backend: Backend) -> Result<&dyn Store, BlobError> {
        match (backend, &self.s3) {
            (Backend::Local, _) => Ok(&self.local),
            (Backend::S3, Some(s3)) => Ok(s3.as_ref()),
            (Backend::S3, None) => Err(BlobError::Unavailable(
                "this recording is in the S3 store, and [storage.s3] is not configured".into(),
            )),
        }
    }

    /// A local file with a recording's bytes for decoders that seek (see [`Store::local_copy`]).
    pub fn local_copy(&self, backend: Backend, id: &Uuid) -> Result<crate::storage::store::LocalCopy, BlobError> {
        self.store(backend)?.local_copy(id, &self.tmp_dir())
    }

    pub fn local(&self) -> &LocalStore {
        &self.local
    }

    pub fn s3(&self) -> Option<&S3Store> {
        self.s3.as_deref()
    }

    /// Removes what a pending delete names: a recording's bytes in its store, or a file under
    /// the data directory (a resumable upload's).
    pub fn unlink_pending(&self, path: &str) -> Result<(), BlobError> {
        match crate::storage::store::parse_pending_path(path) {
            Some((backend, id)) => self.store(backend)?.delete(&id),
            None => self.unlink(path).map_err(BlobError::Disk),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn db_path(&self) -> PathBuf {
        self.root.join("recorder.db")
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Resumable uploads' files, one per upload, kept across restarts (unlike `tmp/`).
    pub fn uploads_dir(&self) -> PathBuf {
        self.root.join("uploads")
    }

    /// A resumable upload's file.
    pub fn upload_path(&self, upload_id: &str) -> PathBuf {
        self.uploads_dir().join(upload_id)
    }

    /// The path of a recording's file on disk, relative to the data directory.
    pub fn relative_path(id: &Uuid) -> String {
        LocalStore::relative_path(id)
    }

    /// An absolute path from a relative one.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// Free bytes on the data directory's file system.
    pub fn available_space(&self) -> io::Result<u64> {
        fs4::available_space(&self.root)
    }

    /// Removes a file; one that is already gone is fine.
    pub fn unlink(&self, relative: &str) -> io::Result<()> {
        match fs::remove_file(self.path(relative)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Deletes everything in `tmp/` (uploads a crash interrupted); returns how many.
    pub fn empty_tmp(&self) -> io::Result<usize> {
        let mut removed = 0;
        for entry in fs::read_dir(self.tmp_dir())? {
            let path = entry?.path();
            let result = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
            match result {
                Ok(()) => removed += 1,
                Err(e) => log::warn!("cannot remove {}: {e}", path.display()),
            }
        }
        Ok(removed)
    }

    /// The ids of every recording file on disk (all shards); for tools and tests, not for hot
    /// paths.
    pub fn recording_files(&self) -> io::Result<Vec<Uuid>> {
        Ok(self.local.list().map_err(BlobError::into_io)?.into_iter().map(|object| object.id).collect())
    }
}

/// The name of the lock file a server or a backup holds in its data directory.
pub const LOCK_FILE: &str = "recorder.lock";

/// Takes the exclusive lock of a data directory: `Ok(None)` when another process holds it (a
/// server serving it, or a backup writing into it). The lock lasts as long as the file is open.
pub fn lock_dir(dir: &Path) -> io::Result<Option<File>> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = fs::OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(dir.join(LOCK_FILE))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(fs::TryLockError::WouldBlock) => Ok(None),
        Err(fs::TryLockError::Error(e)) => Err(e),
    }
}
