//! Where recordings' bytes live: a [`Store`], the data directory's `recordings/` ([`LocalStore`])
//! or an S3-compatible object store ([`crate::storage::s3::S3Store`]). Each recording's row says which
//! (`recordings.store`), so recordings can move between them (`recorder storage migrate`) while
//! the server reads them; new recordings go to the configured `storage.backend`.
//!
//! Every store keeps the same promises: bytes are durable before a row names them, a recording's
//! bytes are found by its id alone (no names or user data in paths or keys), and deleting is
//! idempotent (already gone is fine).

use crate::error::Error;
use futures_util::future::BoxFuture;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use tokio::io::AsyncRead;
use uuid::Uuid;

/// Which store holds a recording's bytes; `recordings.store` in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Backend {
    #[default]
    Local,
    S3,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Local => "local",
            Backend::S3 => "s3",
        }
    }

    pub fn parse(text: &str) -> Option<Backend> {
        match text {
            "local" => Some(Backend::Local),
            "s3" => Some(Backend::S3),
            _ => None,
        }
    }
}

/// `recordings.store` (its CHECK constraint allows only these two).
impl rusqlite::types::FromSql for Backend {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Backend> {
        Backend::parse(value.as_str()?).ok_or(rusqlite::types::FromSqlError::InvalidType)
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a store could not do something.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// No bytes for that id.
    #[error("not found")]
    NotFound,
    /// The local disk failed.
    #[error("{0}")]
    Disk(io::Error),
    /// The object store failed or cannot be reached (or is not configured): worth a retry later.
    #[error("{0}")]
    Unavailable(String),
}

impl BlobError {
    /// The answer for a request: 404 for missing bytes, 503 `unavailable` for an object store
    /// that failed, 500 for a disk error. Details go to the log.
    pub fn api(self, context: &str) -> Error {
        match self {
            BlobError::NotFound => {
                log::error!("{context}: the recording's bytes are missing; `recorder check` reports it");
                Error::not_found("the file of this recording is missing from the server")
            }
            BlobError::Disk(e) => super::files::disk_error(e),
            BlobError::Unavailable(why) => Error::unavailable(context, why),
        }
    }

    /// As an I/O error, for readers and tools.
    pub fn into_io(self) -> io::Error {
        match self {
            BlobError::NotFound => io::Error::new(io::ErrorKind::NotFound, "not found"),
            BlobError::Disk(e) => e,
            BlobError::Unavailable(why) => io::Error::other(why),
        }
    }
}

impl From<io::Error> for BlobError {
    fn from(e: io::Error) -> BlobError {
        if e.kind() == io::ErrorKind::NotFound { BlobError::NotFound } else { BlobError::Disk(e) }
    }
}

/// An object in a store's listing.
#[derive(Debug, Clone)]
pub struct Object {
    pub id: Uuid,
    pub size: u64,
    /// Milliseconds since the epoch (unknown: the far future, so it never counts as old).
    pub modified_ms: i64,
}

/// What a stored file keeps beside its bytes, so that it can become a recording again without
/// the database (`recorder check --recover`): an extended attribute on disk ([`XATTR`]), object
/// metadata in an object store ([`S3_METADATA`]). Written in the same durable step as the bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Keep {
    /// The owner's username and account id when the bytes were stored.
    pub owner: String,
    pub user_id: String,
    /// The name the recording was given at upload, when one was (else it is named from
    /// `recorded_at`, as at upload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_at: Option<i64>,
    /// Milliseconds since the epoch.
    pub created_at: i64,
}

/// The extended attribute holding a local file's [`Keep`], as JSON.
pub const XATTR: &str = "user.recorder";
/// The object metadata key (`x-amz-meta-recorder`) holding an object's [`Keep`], as base64url
/// JSON (header values are ASCII).
pub const S3_METADATA: &str = "recorder";
/// Above this, what is kept is not written (a name is at most 255 characters; this is plenty).
const KEEP_MAX: usize = 1536;

impl Keep {
    pub fn to_json(&self) -> Option<Vec<u8>> {
        serde_json::to_vec(self).ok().filter(|json| json.len() <= KEEP_MAX)
    }

    pub fn from_json(bytes: &[u8]) -> Option<Keep> {
        if bytes.len() > KEEP_MAX {
            return None;
        }
        serde_json::from_slice(bytes).ok()
    }

    /// For object metadata.
    pub fn to_header(&self) -> Option<String> {
        use base64::Engine as _;
        self.to_json().map(|json| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json))
    }

    pub fn from_header(text: &str) -> Option<Keep> {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text.trim()).ok().and_then(|b| Keep::from_json(&b))
    }

    /// Writes it on a local file. A file system without extended attributes (FAT, exFAT) keeps
    /// nothing: recovering such a file needs `--owner`, and the log says so once. It never fails
    /// the write of the recording itself.
    pub fn write_on(&self, path: &Path) {
        let Some(json) = self.to_json() else { return };
        if let Err(e) = xattr::set(path, XATTR, &json) {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                log::warn!(
                    "cannot keep a recording's owner and name in an extended attribute of its file ({e}): \
                     without the database, `recorder check --recover` will need --owner"
                );
            });
        }
    }

    /// What a local file keeps, if anything.
    pub fn read_from(path: &Path) -> Option<Keep> {
        xattr::get(path, XATTR).ok().flatten().and_then(|bytes| Keep::from_json(&bytes))
    }
}

/// Bytes for a response, read as the client takes them.
pub type Body = Pin<Box<dyn AsyncRead + Send + Sync>>;

/// How finished bytes at a local path become a recording's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The source is the store's to take (a one-shot upload's temp file): renamed into place on
    /// disk, removed after it is uploaded to an object store.
    Move,
    /// The source stays (a resumable upload's file, kept until the row is committed).
    Link,
}

/// A recording store. Methods without `async` block: call them from the blocking pool or a tool.
pub trait Store: Send + Sync {
    fn backend(&self) -> Backend;
    /// For messages: "the data directory /srv/recorder", "S3 bucket b at http://…".
    fn describe(&self) -> String;
    /// Stores the finished, fsynced file at `source` as recording `id`, durably, with what it
    /// keeps for recovery.
    fn put_file(&self, source: &Path, id: &Uuid, place: Place, keep: Option<&Keep>) -> Result<(), BlobError>;
    /// Stores `size` bytes read from `reader` as recording `id`, durably (migration, restore).
    fn put_reader(&self, reader: &mut dyn Read, size: u64, id: &Uuid, keep: Option<&Keep>) -> Result<(), BlobError>;
    /// What the stored bytes keep for recovery, if anything.
    fn kept(&self, id: &Uuid) -> Result<Option<Keep>, BlobError>;
    /// Removes a recording's bytes; already gone is fine.
    fn delete(&self, id: &Uuid) -> Result<(), BlobError>;
    /// The size of a recording's bytes; `None` when there are none.
    fn size_of(&self, id: &Uuid) -> Result<Option<u64>, BlobError>;
    /// Every recording's bytes in the store (anything not named by an id is ignored).
    fn list(&self) -> Result<Vec<Object>, BlobError>;
    /// Reads a recording's bytes from the start.
    fn reader(&self, id: &Uuid) -> Result<Box<dyn Read + Send>, BlobError>;
    /// `len` bytes from `start`, for a response (a ranged GET or a seek).
    fn open_range(&self, id: Uuid, start: u64, len: u64) -> BoxFuture<'static, Result<Body, BlobError>>;
    /// A local file with the recording's bytes, for decoders that seek (analysis,
    /// transcription): the file itself on disk, a temp copy in `tmp_dir` from an object store.
    fn local_copy(&self, id: &Uuid, tmp_dir: &Path) -> Result<LocalCopy, BlobError> {
        let tmp = tmp_dir.join(format!("copy-{}", Uuid::now_v7()));
        let copy = LocalCopy { path: tmp.clone(), temporary: true };
        let mut out = fs::File::create(&tmp)?;
        io::copy(&mut self.reader(id)?, &mut out)?;
        Ok(copy)
    }
}

/// A file holding a recording's bytes for as long as this lives.
#[derive(Debug)]
pub struct LocalCopy {
    path: PathBuf,
    temporary: bool,
}

impl LocalCopy {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LocalCopy {
    fn drop(&mut self) {
        if self.temporary
            && let Err(e) = fs::remove_file(&self.path)
            && e.kind() != io::ErrorKind::NotFound
        {
            log::warn!("cannot remove temp copy {}: {e}", self.path.display());
        }
    }
}

/// Recordings under the data directory: `recordings/<last 2 hex of id>/<id>`.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn new(root: &Path) -> LocalStore {
        LocalStore { root: root.to_path_buf() }
    }

    /// The path of a recording's file, relative to the data directory.
    pub fn relative_path(id: &Uuid) -> String {
        let hex = id.simple().to_string();
        format!("recordings/{}/{}", &hex[30..], id.hyphenated())
    }

    pub fn path(&self, id: &Uuid) -> PathBuf {
        self.root.join(LocalStore::relative_path(id))
    }

    /// A new recording's place, its shard created (durably) if missing.
    fn place(&self, id: &Uuid) -> io::Result<(PathBuf, PathBuf)> {
        let target = self.path(id);
        let shard = target.parent().unwrap_or(&self.root).to_path_buf();
        if !shard.is_dir() {
            fs::create_dir_all(&shard)?;
            super::files::sync_dir(&self.root.join("recordings"))?;
        }
        Ok((target, shard))
    }

    /// The shard directories under `recordings/`.
    pub fn shards(&self) -> io::Result<Vec<PathBuf>> {
        let mut shards = Vec::new();
        for entry in fs::read_dir(self.root.join("recordings"))? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                shards.push(entry.path());
            }
        }
        shards.sort();
        Ok(shards)
    }

    /// The files in one shard named as a recording id.
    pub fn files_in(&self, shard: &Path) -> io::Result<Vec<Object>> {
        let mut out = Vec::new();
        for file in fs::read_dir(shard)? {
            let file = file?;
            let name = file.file_name().to_string_lossy().to_string();
            if let Ok(id) = Uuid::parse_str(&name) {
                let meta = file.metadata()?;
                out.push(Object { id, size: meta.len(), modified_ms: super::files::modified_ms(&meta) });
            }
        }
        Ok(out)
    }
}

impl Store for LocalStore {
    fn backend(&self) -> Backend {
        Backend::Local
    }

    fn describe(&self) -> String {
        format!("the data directory {}", self.root.display())
    }

    fn put_file(&self, source: &Path, id: &Uuid, place: Place, keep: Option<&Keep>) -> Result<(), BlobError> {
        let (target, shard) = self.place(id).map_err(BlobError::Disk)?;
        // On the inode before the rename: the directory's fsync below commits both in one
        // journal transaction (ext4 and XFS log metadata in order).
        if let Some(keep) = keep {
            keep.write_on(source);
        }
        match place {
            Place::Move => fs::rename(source, &target).map_err(BlobError::Disk)?,
            Place::Link => {
                // The link's time is now, so the orphan sweep never takes it for old litter.
                fs::OpenOptions::new()
                    .write(true)
                    .open(source)
                    .and_then(|f| f.set_modified(std::time::SystemTime::now()))
                    .map_err(BlobError::Disk)?;
                fs::hard_link(source, &target).map_err(BlobError::Disk)?;
            }
        }
        super::files::sync_dir(&shard).map_err(BlobError::Disk)
    }

    fn put_reader(&self, reader: &mut dyn Read, size: u64, id: &Uuid, keep: Option<&Keep>) -> Result<(), BlobError> {
        let (target, shard) = self.place(id).map_err(BlobError::Disk)?;
        let tmp = self.root.join("tmp").join(format!("put-{}", Uuid::now_v7()));
        let written = (|| {
            let mut out = fs::File::create(&tmp)?;
            let copied = io::copy(reader, &mut out)?;
            if copied != size {
                return Err(io::Error::other(format!("read {copied} bytes where {size} were expected")));
            }
            if let Some(keep) = keep {
                keep.write_on(&tmp);
            }
            out.sync_all()?;
            fs::rename(&tmp, &target)?;
            super::files::sync_dir(&shard)
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written.map_err(BlobError::Disk)
    }

    fn delete(&self, id: &Uuid) -> Result<(), BlobError> {
        match fs::remove_file(self.path(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(BlobError::Disk(e)),
            _ => Ok(()),
        }
    }

    fn kept(&self, id: &Uuid) -> Result<Option<Keep>, BlobError> {
        Ok(Keep::read_from(&self.path(id)))
    }

    fn size_of(&self, id: &Uuid) -> Result<Option<u64>, BlobError> {
        match fs::metadata(self.path(id)) {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(BlobError::Disk(e)),
        }
    }

    fn list(&self) -> Result<Vec<Object>, BlobError> {
        let mut out = Vec::new();
        for shard in self.shards()? {
            out.extend(self.files_in(&shard)?);
        }
        Ok(out)
    }

    fn reader(&self, id: &Uuid) -> Result<Box<dyn Read + Send>, BlobError> {
        Ok(Box::new(fs::File::open(self.path(id))?))
    }

    fn open_range(&self, id: Uuid, start: u64, len: u64) -> BoxFuture<'static, Result<Body, BlobError>> {
        let path = self.path(&id);
        Box::pin(async move {
            // Open and seek in one trip to the blocking pool: a player sends a ranged request per
            // seek.
            let file = tokio::task::spawn_blocking(move || {
                let mut f = fs::File::open(&path)?;
                if start > 0 {
                    io::Seek::seek(&mut f, io::SeekFrom::Start(start))?;
                }
                Ok::<_, io::Error>(f)
            })
            .await
            .map_err(|e| BlobError::Disk(io::Error::other(e)))??;
            let body: Body = Box::pin(tokio::io::AsyncReadExt::take(tokio::fs::File::from_std(file), len));
            Ok(body)
        })
    }

    fn local_copy(&self, id: &Uuid, _tmp_dir: &Path) -> Result<LocalCopy, BlobError> {
        let path = self.path(id);
        fs::metadata(&path)?;
        Ok(LocalCopy { path, temporary: false })
    }
}

/// Where a pending delete (`pending_unlinks.path`) points: a local file by its path relative
/// to the data directory, or `s3/<id>` for an object.
pub fn pending_path(backend: Backend, id: &Uuid) -> String {
    match backend {
        Backend::Local => LocalStore::relative_path(id),
        Backend::S3 => format!("s3/{}", id.hyphenated()),
    }
}

/// The store and id a pending delete names; `None` for a path this version does not know.
pub fn parse_pending_path(path: &str) -> Option<(Backend, Uuid)> {
    if let Some(id) = path.strip_prefix("s3/") {
        return Uuid::parse_str(id).ok().map(|id| (Backend::S3, id));
    }
    let name = path.strip_prefix("recordings/")?.rsplit('/').next()?;
    Uuid::parse_str(name).ok().map(|id| (Backend::Local, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_by_the_last_two_hex_digits() {
        let id = Uuid::parse_str("01935c4e-0000-7000-8000-0000000000ab").expect("uuid");
        assert_eq!(LocalStore::relative_path(&id), "recordings/ab/01935c4e-0000-7000-8000-0000000000ab");
    }

    #[test]
    fn pending_paths_round_trip() {
        let id = Uuid::now_v7();
        for backend in [Backend::Local, Backend::S3] {
            assert_eq!(parse_pending_path(&pending_path(backend, &id)), Some((backend, id)));
        }
        assert_eq!(parse_pending_path("uploads/abc"), None);
        assert_eq!(parse_pending_path("s3/not-an-id"), None);
    }

    #[test]
    fn what_a_file_keeps_survives_the_put_and_both_encodings() {
        let keep = Keep {
            owner: "alice".into(),
            user_id: Uuid::now_v7().to_string(),
            name: Some("Café memo \u{1F399}.m4a".into()),
            recorded_at: Some(1_764_000_000_000),
            created_at: 1_764_000_001_000,
        };
        assert_eq!(Keep::from_header(&keep.to_header().expect("header")), Some(keep.clone()));
        assert!(keep.to_header().expect("header").is_ascii());
        // Nothing oversized or broken is taken for what a file kept.
        assert_eq!(Keep::from_json(b"{not json"), None);
        assert_eq!(Keep::from_json(&vec![b' '; KEEP_MAX + 1]), None);
        let long = Keep { name: Some("x".repeat(KEEP_MAX)), ..keep.clone() };
        assert_eq!(long.to_json(), None);

        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::new(dir.path());
        fs::create_dir_all(dir.path().join("recordings")).expect("mkdir");
        let source = dir.path().join("upload.part");
        fs::write(&source, b"RIFF").expect("write");
        let id = Uuid::now_v7();
        store.put_file(&source, &id, Place::Move, Some(&keep)).expect("put");
        assert_eq!(store.kept(&id).expect("kept"), Some(keep));
    }
}
