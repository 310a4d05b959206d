//! `recorder check --recover [--owner USERNAME]`: turns stored bytes that no recording refers
//! to back into recordings. It looks at the files in lost+found, the files among the recordings
//! on disk that no row names, and the objects in the object store that no row names, and makes
//! each one that holds recognisable audio a recording again, under its own id, with its analysis
//! queued. The owner, name and times come from what the bytes kept beside them (see
//! [`crate::storage::store::Keep`]); `--owner` gives bytes that kept nothing (or all of them) an owner.
//!
//! It is idempotent (a second run finds nothing left), safe while the server is stopped, and
//! safe to interrupt: a file leaving lost+found is noted in flight first, and one whose
//! recording did not arrive goes back there at the next start.

use crate::db::Db;
use crate::error::Error;
use crate::ingest::Stored;
use crate::recordings::NewRecording;
use crate::storage::Storage;
use crate::storage::store::{Backend, Keep, Store};
use rusqlite::{Connection, OptionalExtension as _};
use std::path::Path;
use uuid::Uuid;

/// What became of one lost file or object.
pub enum Event<'a> {
    Recovered {
        id: &'a Uuid,
        name: &'a str,
        owner: &'a str,
        place: &'a str,
    },
    /// Left where it is, and why.
    Left {
        id: &'a Uuid,
        place: &'a str,
        why: &'a str,
    },
}

/// The summary.
#[derive(Debug, Default, Clone, Copy)]
pub struct Report {
    pub found: usize,
    pub recovered: usize,
    /// Files in lost+found that were a recording's own (its row was there, its file missing):
    /// put back in place.
    pub returned: usize,
    pub left: usize,
}

impl Report {
    fn count_recovered(
        &mut self,
        on: &mut dyn FnMut(Event<'_>),
        id: &Uuid,
        place: &str,
        (name, owner): (String, String),
    ) {
        self.recovered += 1;
        on(Event::Recovered { id, name: &name, owner: &owner, place });
    }

    fn count_left(&mut self, on: &mut dyn FnMut(Event<'_>), id: &Uuid, place: &str, why: &str) {
        self.left += 1;
        on(Event::Left { id, place, why });
    }
}

/// Recovers what can be recovered. Blocking.
pub fn run(db: &Db, storage: &Storage, owner: Option<&str>, on: &mut dyn FnMut(Event<'_>)) -> Result<Report, Error> {
    let mut conn = db.conn()?;
    let owner = match owner {
        Some(name) => {
            let name = crate::users::normalize_username(name)?;
            let user = user_by_name(&conn, &name)?
                .ok_or_else(|| Error::invalid(format!("no user named {name}: create it first")))?;
            Some(user)
        }
        None => None,
    };
    let mut report = Report::default();
    let root = storage.root().to_path_buf();

    // lost+found first: its files leave it for their place among the recordings.
    let found = crate::lostfound::list(&root).map_err(|e| Error::internal("listing lost+found", e))?;
    for file in found {
        report.found += 1;
        let place = file.path.strip_prefix(&root).unwrap_or(&file.path).display().to_string();
        let text = file.id.hyphenated().to_string();
        // The recording is there and its file missing: this is its file (a database put back
        // after the sweep moved it).
        if let Some(size) = row_size(&conn, &text, Backend::Local)? {
            let home = root.join(Storage::relative_path(&file.id));
            if !home.exists() && size == file.size {
                crate::lostfound::take(&root, &file).map_err(|e| Error::internal("returning a file", e))?;
                report.returned += 1;
                on(Event::Recovered { id: &file.id, name: "its recording", owner: "", place: &place });
            } else {
                report.count_left(on, &file.id, &place, "a recording with this id exists already");
            }
            continue;
        }
        if crate::recordings::exists(&conn, &text)? {
            report.count_left(on, &file.id, &place, "a recording with this id exists in the other store");
            continue;
        }
        let keep = Keep::read_from(&file.path);
        let new = match describe(&conn, &file.path, &file.id, keep.as_ref(), owner.as_ref(), file.size)? {
            Ok(new) => new,
            Err(why) => {
                report.count_left(on, &file.id, &place, &why);
                continue;
            }
        };
        let now = crate::clock::system_now_ms();
        crate::inflight::note(&conn, &file.id, Backend::Local, crate::inflight::Kind::Recovered, now)?;
        if let Err(e) = crate::lostfound::take(&root, &file) {
            crate::inflight::clear(&conn, &file.id, Backend::Local)?;
            report.count_left(on, &file.id, &place, &format!("cannot move it: {e}"));
            continue;
        }
        match insert(&mut conn, new)? {
            Ok(done) => report.count_recovered(on, &file.id, &place, done),
            Err(why) => {
                crate::lostfound::put_back(&root, &file.id).map_err(|e| Error::internal("lost+found", e))?;
                crate::inflight::clear(&conn, &file.id, Backend::Local)?;
                report.count_left(on, &file.id, &place, &why);
            }
        }
    }

    // Then the bytes in the stores that no row names, where they are.
    let stores: Vec<&dyn Store> =
        std::iter::once(storage.local() as &dyn Store).chain(storage.s3().map(|s| s as &dyn Store)).collect();
    for store in stores {
        let backend = store.backend();
        let objects = store.list().map_err(|e| e.api(&format!("listing {}", store.describe())))?;
        for object in objects {
            if !crate::maintenance::unreferenced(&conn, &object.id, backend)? {
                continue;
            }
            report.found += 1;
            let place = crate::storage::store::pending_path(backend, &object.id);
            if crate::recordings::exists(&conn, &object.id.hyphenated().to_string())? {
                report.count_left(on, &object.id, &place, "a copy of a recording in the other store");
                continue;
            }
            let keep = store.kept(&object.id).map_err(|e| e.api("reading what an object keeps"))?;
            let copy = store.local_copy(&object.id, &storage.tmp_dir()).map_err(|e| e.api("reading an object"))?;
            let described = describe(&conn, copy.path(), &object.id, keep.as_ref(), owner.as_ref(), object.size)?;
            drop(copy);
            let new = match described {
                Ok(new) => NewRecording { store: backend, ..new },
                Err(why) => {
                    report.count_left(on, &object.id, &place, &why);
                    continue;
                }
            };
            match insert(&mut conn, new)? {
                Ok(done) => report.count_recovered(on, &object.id, &place, done),
                Err(why) => report.count_left(on, &object.id, &place, &why),
            }
        }
    }
    Ok(report)
}

fn user_by_name(conn: &Connection, username: &str) -> Result<Option<crate::users::User>, Error> {
    Ok(crate::users::find_with_hash(conn, username)?.map(|(user, _)| user))
}

fn row_size(conn: &Connection, id: &str, store: Backend) -> Result<Option<u64>, Error> {
    Ok(conn
        .prepare_cached("SELECT size FROM recordings WHERE id = ?1 AND store = ?2")?
        .query_row([id, store.as_str()], |r| r.get::<_, i64>(0))
        .optional()?
        .map(|size| size.max(0) as u64))
}

/// The recording a lost file becomes, or why it cannot (not audio, no owner). The row is in
/// the local store; the caller changes that for an object.
fn describe(
    conn: &Connection,
    path: &Path,
    id: &Uuid,
    keep: Option<&Keep>,
    owner: Option<&crate::users::User>,
    size: u64,
) -> Result<Result<NewRecording, String>, Error> {
    let detected = match crate::audio::detect(path) {
        Ok(Some(detected)) => detected,
        Ok(None) => return Ok(Err("not recognisable audio".into())),
        Err(e) => return Ok(Err(format!("cannot be read: {e}"))),
    };
    let user = match (owner, keep) {
        (Some(user), _) => user.clone(),
        (None, Some(keep)) => match user_by_name(conn, &keep.owner)? {
            Some(user) => user,
            None => {
                return Ok(Err(format!(
                    "its owner {} has no account here: create it, or pass --owner USERNAME",
                    keep.owner
                )));
            }
        },
        (None, None) => return Ok(Err("it kept no owner: pass --owner USERNAME".into())),
    };
    let sha256 = match crate::storage::hash_file(path) {
        Ok(hash) => hash,
        Err(e) => return Ok(Err(format!("cannot be read: {e}"))),
    };
    let stamp = id.get_timestamp().map(|t| {
        let (secs, nanos) = t.to_unix();
        secs as i64 * 1000 + i64::from(nanos / 1_000_000)
    });
    let created_at = keep.map(|k| k.created_at).or(stamp).unwrap_or_else(crate::clock::system_now_ms);
    let recorded_at = keep.and_then(|k| k.recorded_at);
    let ext = detected.container.ext;
    let name = match (keep, keep.and_then(|k| k.name.clone())) {
        (_, Some(name)) => name,
        // Named as the upload was: from when it was recorded.
        (Some(_), None) => format!("Recording {}.{ext}", crate::clock::name_stamp(recorded_at.unwrap_or(created_at))),
        (None, None) => format!("Recovered {}.{ext}", crate::clock::name_stamp(created_at)),
    };
    let name = crate::recordings::normalize_name(&name).unwrap_or_else(|_| format!("Recovered {}.{ext}", id.simple()));
    Ok(Ok(NewRecording {
        id: *id,
        user_id: user.id,
        name,
        content_type: detected.container.content_type.to_string(),
        size: size as i64,
        sha256,
        duration_ms: detected.duration_ms,
        recorded_at,
        created_at,
        idempotency_key: None,
        store: Backend::Local,
    }))
}

/// Inserts the recording (its analysis queued, its in-flight note cleared): `(name, owner)`, or
/// why not.
fn insert(conn: &mut Connection, new: NewRecording) -> Result<Result<(String, String), String>, Error> {
    let owner: String = conn
        .query_row("SELECT username FROM users WHERE id = ?1", [&new.user_id], |r| r.get(0))
        .optional()?
        .unwrap_or_default();
    match crate::ingest::insert_durably(conn, new, true, &[], &mut |_, _| Ok(true))? {
        Stored::Created(recording) => Ok(Ok((recording.name, owner))),
        Stored::Existing(same) => Ok(Err(format!("the same bytes are recording {} already", same.id))),
        Stored::Declined => Ok(Err("declined".into())),
    }
}
