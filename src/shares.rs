//! Share links: the `shares` table. A link is a random token whose SHA-256 is stored (never the
//! token), bound to one recording of its owner. It is live while it is not revoked, not expired
//! and its recording is not in the trash; deleting the recording deletes its links (the foreign
//! key cascades).
//!
//! The public side finds a link by the hash of the token it was given: an index lookup on a
//! value the caller cannot steer (a guess's hash shares no useful prefix with a real one), so no
//! secret is ever compared byte by byte, and a guessed, expired or revoked token all cost the
//! same one lookup before the answer.

use crate::clock::rfc3339;
use crate::error::Error;
use crate::recordings::{self as rec, Recording};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Longest expiry a link can be given, in days (ten years).
pub const MAX_EXPIRY_DAYS: i64 = 3650;

/// A new link as its creator sees it, once: `url` holds the token.
#[derive(Debug, Serialize)]
pub struct NewShare {
    pub id: String,
    pub recording_id: String,
    pub url: String,
    pub download: bool,
    pub created_at: String,
    pub expires_at: Option<String>,
}

/// A live link in the owner's list. The token is not stored, so there is no URL.
#[derive(Debug, Serialize)]
pub struct ShareInfo {
    pub id: String,
    pub recording_id: String,
    /// The recording's current name.
    pub name: String,
    pub download: bool,
    pub created_at: String,
    pub expires_at: Option<String>,
    /// Page loads so far.
    pub opens: i64,
}

/// A live link, as the public routes use it.
#[derive(Debug, Clone)]
pub struct Shared {
    pub share_id: String,
    pub download: bool,
    pub recording: Recording,
}

/// A new random token (32 bytes, base64url: 43 characters) and the hash to store, of the same
/// form as session tokens.
fn new_token() -> (String, Vec<u8>) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = token_hash(&token);
    (token, hash)
}

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Whether a path segment could be a token at all; anything else is not found without a lookup.
/// (This reveals only the token's public shape.)
pub fn plausible_token(token: &str) -> bool {
    token.len() == 43 && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The public path of a link.
pub fn url(token: &str) -> String {
    format!("/s/{token}")
}

/// Makes a link to one of the user's recordings outside the trash; `None` when there is no such
/// recording (someone else's, unknown, or in the trash).
pub fn create(
    conn: &mut Connection,
    user_id: &str,
    recording_id: &str,
    download: bool,
    expires_in_days: Option<i64>,
    now: i64,
) -> Result<Option<NewShare>, Error> {
    // Reads the recording, then writes: the write lock first (see `write_transaction`).
    let tx = rec::write_transaction(conn)?;
    match rec::get(&tx, user_id, recording_id)? {
        Some(r) if r.deleted_ms.is_none() => {}
        _ => return Ok(None),
    }
    let id = Uuid::now_v7().hyphenated().to_string();
    let (token, hash) = new_token();
    let expires_ms = expires_in_days.map(|days| now + days * 86_400_000);
    tx.execute(
        "INSERT INTO shares (id, user_id, recording_id, token_hash, download, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![id, user_id, recording_id, hash, download, now, expires_ms],
    )?;
    tx.commit()?;
    Ok(Some(NewShare {
        id,
        recording_id: recording_id.to_string(),
        url: url(&token),
        download,
        created_at: rfc3339(now),
        expires_at: expires_ms.map(rfc3339),
    }))
}

/// The user's live links, newest first, with their recordings' names.
pub fn list(conn: &Connection, user_id: &str, now: i64) -> Result<Vec<ShareInfo>, Error> {
    // The recording's name and whether it is in the trash come from its row: a read-only join on
    // its primary key, so a renamed recording shows its new name.
    let mut stmt = conn.prepare_cached(
        "SELECT s.id, s.recording_id, r.name, s.download, s.created_at, s.expires_at, s.opens
         FROM shares s JOIN recordings r ON r.id = s.recording_id
         WHERE s.user_id = ?1 AND s.revoked_at IS NULL AND (s.expires_at IS NULL OR s.expires_at > ?2)
           AND r.deleted_at IS NULL
         ORDER BY s.id DESC",
    )?;
    let rows = stmt.query_map(params![user_id, now], |r| {
        Ok(ShareInfo {
            id: r.get(0)?,
            recording_id: r.get(1)?,
            name: r.get(2)?,
            download: r.get(3)?,
            created_at: rfc3339(r.get(4)?),
            expires_at: r.get::<_, Option<i64>>(5)?.map(rfc3339),
            opens: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Revokes one of the user's links (at once; again is a no-op). False when the user has no such
/// link.
pub fn revoke(conn: &Connection, user_id: &str, id: &str, now: i64) -> Result<bool, Error> {
    conn.execute(
        "UPDATE shares SET revoked_at = ?1 WHERE id = ?2 AND user_id = ?3 AND revoked_at IS NULL",
        params![now, id, user_id],
    )?;
    let exists =
        conn.prepare_cached("SELECT 1 FROM shares WHERE id = ?1 AND user_id = ?2")?.exists(params![id, user_id])?;
    Ok(exists)
}

/// The live link a token opens, with its recording; `None` for a malformed, unknown, revoked or
/// expired token, or a recording in the trash.
pub fn find(conn: &Connection, token: &str, now: i64) -> Result<Option<Shared>, Error> {
    if !plausible_token(token) {
        return Ok(None);
    }
    let hash = token_hash(token);
    let row = conn
        .prepare_cached(
            "SELECT id, user_id, recording_id, download, expires_at, revoked_at FROM shares WHERE token_hash = ?1",
        )?
        .query_row([hash], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, bool>(3)?,
                r.get::<_, Option<i64>>(4)?,
                r.get::<_, Option<i64>>(5)?,
            ))
        })
        .optional()?;
    let Some((share_id, user_id, recording_id, download, expires_at, revoked_at)) = row else { return Ok(None) };
    if revoked_at.is_some() || expires_at.is_some_and(|at| at <= now) {
        return Ok(None);
    }
    // Scoped by the link's owner, like every recording lookup.
    Ok(rec::get(conn, &user_id, &recording_id)?.filter(|r| r.deleted_ms.is_none()).map(|recording| Shared {
        share_id,
        download,
        recording,
    }))
}

/// Counts one page load of a link.
pub fn count_open(conn: &Connection, share_id: &str) -> Result<(), Error> {
    conn.prepare_cached("UPDATE shares SET opens = opens + 1 WHERE id = ?1")?.execute([share_id])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_43_url_safe_characters_and_only_their_hash_is_kept() {
        let (token, hash) = new_token();
        assert!(plausible_token(&token), "{token}");
        assert_eq!(hash, token_hash(&token));
        assert_eq!(hash.len(), 32);
        assert_ne!(new_token().0, token);
        assert!(!plausible_token("short"));
        assert!(!plausible_token(&format!("{}!", &token[..42])));
        assert!(!plausible_token(&format!("{token}A")));
    }
}
