//! The changes feed: every change to a user's recordings gets a per-user, gap-free, monotonic
//! position, written by triggers in the same transaction as the change (whatever makes it: a
//! request, the worker, the sweep, `recorder check --repair`). `GET /api/v1/changes` pages
//! through it; `GET /api/v1/events` streams it, woken by [`Notifier`].

use tokio::sync::broadcast;

/// Wakes the live event streams after a commit that changed someone's recordings.
#[derive(Clone)]
pub struct Notifier {
    sender: broadcast::Sender<Wake>,
}

/// Whose feed has something new.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wake {
    User(String),
    /// Several users at once (the trash sweep): every stream looks.
    Everyone,
    /// One of this user's credentials was revoked: each of their streams checks its own.
    Credentials(String),
}

impl Default for Notifier {
    fn default() -> Self {
        Notifier { sender: broadcast::channel(1024).0 }
    }
}

impl Notifier {
    /// A user's recordings changed (call after the commit).
    pub fn user(&self, user_id: &str) {
        let _ = self.sender.send(Wake::User(user_id.to_string()));
    }

    /// Recordings of several users changed.
    pub fn everyone(&self) {
        let _ = self.sender.send(Wake::Everyone);
    }

    /// A credential of a user was revoked (call after the commit): streams that use it end.
    pub fn credentials(&self, user_id: &str) {
        let _ = self.sender.send(Wake::Credentials(user_id.to_string()));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Wake> {
        self.sender.subscribe()
    }

    /// Live event streams.
    pub fn subscribers(&self) -> usize {
        self.sender.receiver_count()
    }
}

use crate::error::Error;
use crate::recordings::{self as rec, Recording};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// One change, as the feed and the event stream show it.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    /// The recording as it is now (in the trash or not); null once it is deleted for good.
    pub recording: Option<Recording>,
    /// Its position, for the event stream's ids.
    #[serde(skip)]
    pub seq: u64,
}

/// A page of the feed.
#[derive(Debug, Serialize)]
pub struct Page {
    pub changes: Vec<Change>,
    pub cursor: String,
    pub has_more: bool,
}

/// Changes in one page at most.
pub const MAX_LIMIT: u32 = 1000;

/// Ties a cursor to its account: a cursor from another account is refused, never read as this
/// one's position.
fn account_tag(user_id: &str) -> String {
    crate::storage::hex(&Sha256::digest(user_id.as_bytes())[..6])
}

/// The opaque cursor of a position in a user's feed.
pub fn cursor(user_id: &str, seq: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{seq}.{}", account_tag(user_id)))
}

fn bad_cursor() -> Error {
    Error::invalid("`since` is not a cursor of this account's changes feed")
}

/// The position a cursor names; 400 for a malformed cursor or one from another account.
pub fn decode_cursor(user_id: &str, text: &str) -> Result<u64, Error> {
    let bytes = URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| bad_cursor())?;
    let text = String::from_utf8(bytes).map_err(|_| bad_cursor())?;
    let (seq, tag) = text.split_once('.').ok_or_else(bad_cursor)?;
    if tag != account_tag(user_id) {
        return Err(bad_cursor());
    }
    seq.parse().map_err(|_| bad_cursor())
}

/// The user's latest position (0 before any change).
pub fn latest(conn: &Connection, user_id: &str) -> Result<u64, Error> {
    let seq: Option<i64> =
        conn.query_row("SELECT seq FROM feeds WHERE user_id = ?1", [user_id], |r| r.get(0)).optional()?;
    Ok(seq.unwrap_or(0).max(0) as u64)
}

pub fn gone() -> Error {
    Error::Gone(
        "this cursor is older than the kept history of changes: list the recordings again, then follow the feed from a new cursor"
            .into(),
    )
}

/// The changes after position `since`, oldest first, at most `limit`. 410 when some of them were
/// pruned; 400 for a position the feed never reached.
pub fn page(conn: &Connection, user_id: &str, since: u64, limit: u32) -> Result<Page, Error> {
    let latest = latest(conn, user_id)?;
    if since > latest {
        return Err(bad_cursor());
    }
    if since < latest {
        let oldest: Option<i64> =
            conn.query_row("SELECT min(seq) FROM changes WHERE user_id = ?1", [user_id], |r| r.get(0))?;
        if oldest.is_none_or(|oldest| since + 1 < oldest.max(0) as u64) {
            return Err(gone());
        }
    }
    let mut stmt = conn.prepare_cached(
        "SELECT seq, type, recording_id FROM changes WHERE user_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    )?;
    let rows: Vec<(i64, String, String)> = stmt
        .query_map(params![user_id, since as i64, i64::from(limit) + 1], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let has_more = rows.len() > limit as usize;
    let mut changes = Vec::with_capacity(rows.len().min(limit as usize));
    for (seq, kind, id) in rows.into_iter().take(limit as usize) {
        let recording = if kind == "deleted" { None } else { rec::get(conn, user_id, &id)? };
        changes.push(Change { kind, id, recording, seq: seq.max(0) as u64 });
    }
    let last = changes.last().map_or(since, |c| c.seq);
    Ok(Page { changes, cursor: cursor(user_id, last), has_more })
}

/// Removes changes older than `before` (milliseconds); the feed keeps at least as long as the
/// trash. Blocking.
pub fn prune(conn: &Connection, before: i64) -> Result<usize, Error> {
    Ok(conn.execute("DELETE FROM changes WHERE at < ?1", [before])?)
}
