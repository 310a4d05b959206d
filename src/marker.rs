//! One store, one owner. An installation writes a marker object, `<prefix>/.recorder-store`,
//! holding its id (kept in its database, so a database restored from a backup is the same
//! installation), on first use of a bucket and prefix. A server whose marker differs, or that
//! finds recordings' objects and no marker, does not start: two installations on one store
//! would each take the other's recordings for unknown objects.

use crate::db::Db;
use crate::error::Error;
use crate::storage::s3::S3Store;
use crate::storage::store::Store as _;
use rusqlite::Connection;

/// The marker's name under the prefix.
pub const MARKER: &str = ".recorder-store";

/// This installation's id.
pub fn installation_id(conn: &Connection) -> Result<String, Error> {
    Ok(conn.query_row("SELECT value FROM settings WHERE key = 'installation_id'", [], |r| r.get(0))?)
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Marker {
    installation: String,
    marked_at: String,
}

/// The installation a store's marker names, if it has one.
pub fn read(store: &S3Store) -> Result<Option<String>, String> {
    let bytes = store.get_named(MARKER).map_err(|e| format!("cannot read the marker in {}: {e}", store.place()))?;
    Ok(bytes.map(|b| {
        serde_json::from_slice::<Marker>(&b)
            .map(|m| m.installation)
            .unwrap_or_else(|_| String::from_utf8_lossy(&b).trim().to_string())
    }))
}

/// Writes this installation's marker.
pub fn write(store: &S3Store, id: &str) -> Result<(), String> {
    let marker =
        Marker { installation: id.to_string(), marked_at: crate::clock::rfc3339(crate::clock::system_now_ms()) };
    let json = serde_json::to_vec_pretty(&marker).map_err(|e| e.to_string())?;
    store.put_named(MARKER, json.into()).map_err(|e| format!("cannot write the marker in {}: {e}", store.place()))
}

/// How a store became this installation's.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// Its marker names this installation.
    Ours,
    /// It was empty: marked now.
    Marked,
    /// Written before markers existed, by this installation (its rows name the objects): marked now.
    Adopted,
}

/// Checks that the store is this installation's, marking it on first use. The error is the one
/// line startup prints.
pub fn claim(store: &S3Store, db: &Db) -> Result<Claim, String> {
    let conn = db.conn().map_err(|e| e.to_string())?;
    let ours = installation_id(&conn).map_err(|e| e.to_string())?;
    match read(store)? {
        Some(id) if id == ours => return Ok(Claim::Ours),
        Some(other) => {
            return Err(format!(
                "{} belongs to another recorder installation (its {MARKER} names {other}; this data directory is \
                 {ours}). Two installations must not share a store: set storage.s3.prefix to a prefix of this \
                 installation's own, or, if this data directory replaces the one that wrote it (a re-installation), \
                 adopt the store with `recorder storage adopt`",
                store.place()
            ));
        }
        None => {}
    }
    let objects = store.list().map_err(|e| format!("cannot list {}: {e}", store.place()))?;
    if objects.is_empty() {
        write(store, &ours)?;
        return Ok(Claim::Marked);
    }
    // Written before markers existed: this installation's when its rows name the objects.
    let mut named = false;
    for object in objects.iter().take(1000) {
        if crate::recordings::in_store(&conn, &object.id.hyphenated().to_string(), crate::storage::store::Backend::S3)
            .map_err(|e| e.to_string())?
        {
            named = true;
            break;
        }
    }
    if named {
        write(store, &ours)?;
        return Ok(Claim::Adopted);
    }
    Err(format!(
        "{} holds {} recordings' objects and no {MARKER}, and no recording in this database is among them: they \
         are another installation's, or this database is not the one that stored them. Set storage.s3.prefix to a \
         prefix of this installation's own, or adopt the store with `recorder storage adopt` (then bring its \
         recordings back with `recorder check --recover`)",
        store.place(),
        objects.len()
    ))
}
