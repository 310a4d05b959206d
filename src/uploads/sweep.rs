//! At startup, and every so often: files cut back to their durable offsets, expired uploads removed.

use super::append::store;
use super::registry::Registry;
use super::resource::remove_file;
use super::rows::{COLUMNS, Upload, delete_row, from_row};
use crate::db::Db;
use crate::error::Error;
use crate::storage::Storage;
use rusqlite::params;
use std::collections::HashMap;

// ---------------------------------------------------------------------------------------------
// Startup and the sweep.

/// At startup: removes upload files without an incomplete upload, and cuts every upload's file
/// back to its durable offset. Blocking.
pub fn recover(db: &Db, storage: &Storage) -> Result<(), Error> {
    let conn = db.conn()?;
    let mut open: HashMap<String, u64> = HashMap::new();
    {
        let mut stmt = conn.prepare("SELECT id, received FROM uploads WHERE recording_id IS NULL")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (id, received) = row?;
            open.insert(id, received.max(0) as u64);
        }
    }
    let listing = |e| Error::internal("listing uploads/", e);
    for entry in std::fs::read_dir(storage.uploads_dir()).map_err(listing)? {
        let entry = entry.map_err(listing)?;
        let name = entry.file_name().to_string_lossy().to_string();
        if !open.contains_key(&name) {
            remove_file(storage, &name);
        }
    }
    for (id, received) in open {
        let path = storage.upload_path(&id);
        match std::fs::metadata(&path) {
            Ok(meta) if meta.len() > received => {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(received))
                    .map_err(|e| Error::internal(&format!("truncate {}", path.display()), e))?;
            }
            Ok(meta) if meta.len() == received => {}
            found => {
                // The file lost bytes it had acknowledged (or is gone): the disk failed under us.
                // Invalidate the upload rather than report an offset that is not there.
                log::error!(
                    "upload {id}: its file does not hold the {received} bytes acknowledged ({found:?}); removing it"
                );
                delete_row(&conn, &id)?;
                remove_file(storage, &id);
            }
        }
    }
    Ok(())
}

/// What one sweep of uploads did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Incomplete uploads removed.
    pub expired: usize,
    /// Incomplete `keep_partial` uploads stored as recordings.
    pub kept: usize,
}

/// Removes expired uploads; an expired `keep_partial` upload whose bytes are audio becomes a
/// recording instead. Uploads a request is working on are left for the next sweep. Blocking.
pub fn sweep(db: &Db, storage: &Storage, registry: &Registry, now: i64) -> Result<Swept, Error> {
    let mut swept = Swept::default();
    let expired: Vec<Upload> = {
        let conn = db.conn()?;
        let sql = format!("SELECT {COLUMNS} FROM uploads WHERE expires_at <= ?1 ORDER BY expires_at LIMIT 1000");
        let mut stmt = conn.prepare(&sql)?;
        stmt.query_map([now], from_row)?.collect::<Result<_, _>>()?
    };
    for upload in expired {
        let Some(_turn) = registry.try_turn(&upload.id) else { continue };
        if upload.keep_partial && !upload.is_complete() && upload.received > 0 {
            match store(db, storage, &upload, None, now, Some(now)) {
                Ok(Some(recording)) => {
                    log::info!(
                        "upload {} expired; its {} bytes were kept as recording {}",
                        upload.id,
                        upload.received,
                        recording.id
                    );
                    swept.kept += 1;
                    registry.forget(&upload.id);
                    continue;
                }
                Ok(None) => continue,
                Err(e) => log::info!("expired upload {} is not kept: {}", upload.id, e),
            }
        }
        let conn = db.conn()?;
        let removed =
            conn.execute("DELETE FROM uploads WHERE id = ?1 AND expires_at <= ?2", params![upload.id, now])?;
        if removed == 1 {
            remove_file(storage, &upload.id);
            registry.forget(&upload.id);
            if !upload.is_complete() {
                swept.expired += 1;
            }
        }
    }
    Ok(swept)
}
