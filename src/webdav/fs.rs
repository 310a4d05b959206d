//! The recordings as a file system: listing, finding, moving, deleting and opening files.

use crate::error::Error;
use crate::ingest::{self};
use crate::recordings::{self as rec, Folder, Purge, Recording};
use crate::removal::{delete_recording, purge};
use crate::state::AppState;
use crate::storage::{self};
use dav_server::davpath::DavPath;
use dav_server::fs::{
    DavDirEntry, DavFile, DavMetaData, FsError, FsFuture, FsResult, FsStream, GuardedFileSystem, OpenOptions,
    ReadDirMeta,
};
use futures_util::FutureExt;
use std::collections::VecDeque;
use uuid::Uuid;

use super::caller::Caller;
use super::files::{PutFile, ReadFile};
use super::meta::{
    Entry, Meta, PAGE, Spot, TRASH, failure, lock, parse_tail, reserved, shown, spot, stored_names, tail, with_tail,
};

/// The recording a shown name stands for. Blocking.
pub(super) fn resolve(
    conn: &rusqlite::Connection,
    user_id: &str,
    folder: Folder,
    shown: &str,
) -> Result<Option<Recording>, Error> {
    for name in stored_names(shown) {
        if reserved(folder, &name) {
            continue;
        }
        if let Some(first) = rec::named(conn, user_id, folder, &name)?.into_iter().next() {
            return Ok(Some(first));
        }
    }
    if let Some((base, hex)) = parse_tail(shown) {
        for name in stored_names(&base) {
            let all = rec::named(conn, user_id, folder, &name)?;
            let skip = usize::from(!reserved(folder, &name));
            if let Some(found) = all.into_iter().skip(skip).find(|r| tail(&r.id) == hex) {
                return Ok(Some(found));
            }
        }
    }
    Ok(None)
}

/// One user's recordings as a file system (the user comes with each call).
#[derive(Clone)]
pub(super) struct RecordingsFs {
    pub(super) state: AppState,
}

impl RecordingsFs {
    pub(super) async fn find(&self, caller: &Caller, folder: Folder, name: &str) -> FsResult<Recording> {
        if let Some((f, n, recording)) = lock(&caller.0.found).as_ref()
            && *f == folder
            && n == name
        {
            return Ok(recording.clone());
        }
        let (user, wanted) = (caller.0.user_id.clone(), name.to_string());
        let found = self.state.db.run(move |conn| resolve(conn, &user, folder, &wanted)).await.map_err(failure)?;
        let recording = found.ok_or(FsError::NotFound)?;
        *lock(&caller.0.found) = Some((folder, name.to_string(), recording.clone()));
        Ok(recording)
    }

    pub(super) async fn open_write(
        &self,
        caller: &Caller,
        folder: Folder,
        name: &str,
        options: &OpenOptions,
    ) -> FsResult<PutFile> {
        if folder == Folder::Trash {
            return Err(caller.refuse(Error::forbidden("nothing can be put in the trash"), FsError::Forbidden));
        }
        let name = rec::normalize_name(name).map_err(|e| caller.refuse(e, FsError::Forbidden))?;
        let config = &self.state.config;
        let max = config.storage.max_upload_size;
        if options.size.is_some_and(|size| size > max) {
            return Err(caller.refuse(ingest::too_large(max), FsError::TooLarge));
        }
        let budget = ingest::space_budget(&self.state).await.map_err(failure)?;
        if options.size.unwrap_or(1) > budget {
            return Err(caller.refuse(storage::insufficient_storage(), FsError::InsufficientStorage));
        }
        let upload = ingest::start_upload(&self.state, &caller.0.user_id, Some(&name), None).await.map_err(failure)?;
        Ok(PutFile {
            state: self.state.clone(),
            caller: caller.clone(),
            name,
            upload: Some(upload),
            max,
            budget,
            stored: None,
        })
    }

    pub(super) async fn open_read(&self, caller: &Caller, folder: Folder, name: &str) -> FsResult<ReadFile> {
        let recording = self.find(caller, folder, name).await?;
        let id = Uuid::parse_str(&recording.id).map_err(|_| FsError::GeneralFailure)?;
        // Opened at the first read, from where a seek left it (a ranged GET seeks first).
        let (size, store) = (recording.size.max(0) as u64, recording.store);
        *lock(&caller.0.content_type) = Some(recording.content_type.clone());
        Ok(ReadFile {
            storage: self.state.storage.clone(),
            store,
            id,
            size,
            pos: 0,
            body: None,
            meta: Meta::of(&recording),
        })
    }

    pub(super) fn listing(&self, caller: &Caller, folder: Folder) -> FsStream<Box<dyn DavDirEntry>> {
        let walk = Walk {
            state: self.state.clone(),
            user_id: caller.0.user_id.clone(),
            folder,
            after: None,
            previous: None,
            buffer: VecDeque::new(),
            done: false,
        };
        let mut first = Vec::new();
        if folder == Folder::Live {
            let trash: Box<dyn DavDirEntry> =
                Box::new(Entry { name: TRASH.to_string(), meta: Meta::folder(self.state.started_ms) });
            first.push(Ok(trash));
        }
        let rest = futures_util::stream::unfold(walk, |mut walk| async move {
            let entry = walk.next().await?;
            Some((entry, walk))
        });
        Box::pin(futures_util::StreamExt::chain(futures_util::stream::iter(first), rest))
    }

    pub(super) async fn rename_to(&self, caller: &Caller, from: Spot, to: Spot) -> FsResult<()> {
        let (from_folder, from_name, to_folder, to_name) = match (from, to) {
            (Spot::File(a, x), Spot::File(b, y)) => (a, x, b, y),
            _ => return Err(FsError::Forbidden),
        };
        let recording = self.find(caller, from_folder, &from_name).await?;
        let user_id = caller.0.user_id.clone();
        match (from_folder, to_folder) {
            (Folder::Live, Folder::Live) => {
                let name = rec::normalize_name(&to_name).map_err(|e| caller.refuse(e, FsError::Forbidden))?;
                if name != recording.name {
                    let user = user_id.clone();
                    let renamed =
                        self.state.db.run_durably(move |conn| rec::rename(conn, &user, &recording.id, &name)).await;
                    renamed.map_err(failure)?.ok_or(FsError::NotFound)?;
                    self.state.changes.user(&user_id);
                }
                Ok(())
            }
            (Folder::Live, Folder::Trash) => {
                let trashed = delete_recording(&self.state, user_id, recording.id, false).await;
                if trashed.map_err(failure)? { Ok(()) } else { Err(FsError::NotFound) }
            }
            (Folder::Trash, Folder::Live) => {
                let name = rec::normalize_name(&to_name).map_err(|e| caller.refuse(e, FsError::Forbidden))?;
                let user = user_id.clone();
                let restored = self
                    .state
                    .db
                    .run_durably(move |conn| {
                        let tx = rec::write_transaction(conn)?;
                        let restored = rec::restore(&tx, &user, &recording.id)?;
                        if restored.is_some() && name != recording.name {
                            rec::rename(&tx, &user, &recording.id, &name)?;
                        }
                        tx.commit()?;
                        Ok(restored.is_some())
                    })
                    .await
                    .map_err(failure)?;
                if !restored {
                    return Err(FsError::NotFound);
                }
                self.state.changes.user(&user_id);
                Ok(())
            }
            (Folder::Trash, Folder::Trash) => {
                Err(caller.refuse(Error::forbidden("recordings in the trash cannot be renamed"), FsError::Forbidden))
            }
        }
    }

    pub(super) async fn remove(&self, caller: &Caller, at: Spot) -> FsResult<()> {
        let Spot::File(folder, name) = at else {
            return Err(if at == Spot::Nowhere { FsError::NotFound } else { FsError::Forbidden });
        };
        // The library removes what it decides to (the files of a folder, a destination): only
        // the one file the request itself names may go.
        let scope = &caller.0.scope;
        if scope.removable.as_ref().is_none_or(|(f, n)| *f != folder || *n != name) {
            log::warn!("WebDAV: refused to remove {name:?}, which the request does not name");
            let refusal = Error::forbidden("a request removes at most the one file it names");
            return Err(caller.refuse(refusal, FsError::Forbidden));
        }
        let user_id = caller.0.user_id.clone();
        match folder {
            // A MOVE into the trash over a file of the same name: the trash keeps both (its
            // listing tells them apart), nothing is purged.
            Folder::Trash if scope.moving => Ok(()),
            Folder::Live => {
                let recording = self.find(caller, Folder::Live, &name).await?;
                let trashed = delete_recording(&self.state, user_id, recording.id, false).await;
                if trashed.map_err(failure)? { Ok(()) } else { Err(FsError::NotFound) }
            }
            Folder::Trash => {
                let recording = self.find(caller, Folder::Trash, &name).await?;
                let purged = purge(&self.state, user_id, Purge::OneInTrash(recording.id)).await.map_err(failure)?;
                if purged > 0 { Ok(()) } else { Err(FsError::NotFound) }
            }
        }
    }
}

/// A folder listed page by page in (name, id) order, telling duplicates apart as it goes.
pub(super) struct Walk {
    pub(super) state: AppState,
    pub(super) user_id: String,
    pub(super) folder: Folder,
    pub(super) after: Option<(String, String)>,
    /// The stored name of the entry before: one that repeats it gets the id suffix.
    pub(super) previous: Option<String>,
    pub(super) buffer: VecDeque<Recording>,
    pub(super) done: bool,
}

impl Walk {
    pub(super) async fn next(&mut self) -> Option<FsResult<Box<dyn DavDirEntry>>> {
        if self.buffer.is_empty() && !self.done {
            let (user, folder, after) = (self.user_id.clone(), self.folder, self.after.clone());
            let page = self
                .state
                .db
                .run(move |conn| {
                    rec::by_name_page(conn, &user, folder, after.as_ref().map(|(n, i)| (n.as_str(), i.as_str())), PAGE)
                })
                .await;
            match page {
                Ok(rows) => {
                    self.done = rows.len() < PAGE as usize;
                    self.after = rows.last().map(|r| (r.name.clone(), r.id.clone()));
                    self.buffer.extend(rows);
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(failure(e)));
                }
            }
        }
        let recording = self.buffer.pop_front()?;
        let repeated = self.previous.as_deref() == Some(recording.name.as_str());
        let plain = shown(&recording.name);
        let name =
            if repeated || reserved(self.folder, &recording.name) { with_tail(&plain, &recording.id) } else { plain };
        self.previous = Some(recording.name.clone());
        let entry: Box<dyn DavDirEntry> = Box::new(Entry { name, meta: Meta::of(&recording) });
        Some(Ok(entry))
    }
}

impl GuardedFileSystem<Caller> for RecordingsFs {
    fn open<'a>(
        &'a self,
        path: &'a DavPath,
        options: OpenOptions,
        caller: &'a Caller,
    ) -> FsFuture<'a, Box<dyn DavFile>> {
        async move {
            let Spot::File(folder, name) = spot(path) else { return Err(FsError::Forbidden) };
            let file: Box<dyn DavFile> = if options.write {
                Box::new(self.open_write(caller, folder, &name, &options).await?)
            } else {
                Box::new(self.open_read(caller, folder, &name).await?)
            };
            Ok(file)
        }
        .boxed()
    }

    fn read_dir<'a>(
        &'a self,
        path: &'a DavPath,
        _meta: ReadDirMeta,
        caller: &'a Caller,
    ) -> FsFuture<'a, FsStream<Box<dyn DavDirEntry>>> {
        async move {
            match spot(path) {
                Spot::Root => Ok(self.listing(caller, Folder::Live)),
                Spot::TrashFolder => Ok(self.listing(caller, Folder::Trash)),
                Spot::File(..) => Err(FsError::Forbidden),
                Spot::Nowhere => Err(FsError::NotFound),
            }
        }
        .boxed()
    }

    fn metadata<'a>(&'a self, path: &'a DavPath, caller: &'a Caller) -> FsFuture<'a, Box<dyn DavMetaData>> {
        async move {
            let meta = match spot(path) {
                Spot::Root | Spot::TrashFolder => Meta::folder(self.state.started_ms),
                Spot::File(folder, name) => Meta::of(&self.find(caller, folder, &name).await?),
                Spot::Nowhere => return Err(FsError::NotFound),
            };
            let meta: Box<dyn DavMetaData> = Box::new(meta);
            Ok(meta)
        }
        .boxed()
    }

    fn create_dir<'a>(&'a self, _path: &'a DavPath, caller: &'a Caller) -> FsFuture<'a, ()> {
        let refusal = Error::forbidden("there are no folders to make: recordings live in one folder");
        let error = caller.refuse(refusal, FsError::Forbidden);
        Box::pin(std::future::ready(Err(error)))
    }

    fn remove_dir<'a>(&'a self, _path: &'a DavPath, _caller: &'a Caller) -> FsFuture<'a, ()> {
        Box::pin(std::future::ready(Err(FsError::Forbidden)))
    }

    fn remove_file<'a>(&'a self, path: &'a DavPath, caller: &'a Caller) -> FsFuture<'a, ()> {
        async move { self.remove(caller, spot(path)).await }.boxed()
    }

    fn rename<'a>(&'a self, from: &'a DavPath, to: &'a DavPath, caller: &'a Caller) -> FsFuture<'a, ()> {
        async move { self.rename_to(caller, spot(from), spot(to)).await }.boxed()
    }

    fn copy<'a>(&'a self, _from: &'a DavPath, _to: &'a DavPath, caller: &'a Caller) -> FsFuture<'a, ()> {
        let refusal = Error::forbidden("recordings cannot be copied on the server; download and upload instead");
        let error = caller.refuse(refusal, FsError::Forbidden);
        Box::pin(std::future::ready(Err(error)))
    }

    fn get_quota<'a>(&'a self, caller: &'a Caller) -> FsFuture<'a, (u64, Option<u64>)> {
        async move {
            let user = caller.0.user_id.clone();
            let usage = self.state.db.run(move |conn| rec::usage(conn, &user)).await.map_err(failure)?;
            let free = ingest::space_budget(&self.state).await.map_err(failure)?;
            Ok(((usage.bytes + usage.trash_bytes).max(0) as u64, Some(free)))
        }
        .boxed()
    }
}
