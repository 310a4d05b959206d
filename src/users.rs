//! Accounts and their bearer credentials: the `users` and `sessions` tables. A credential is a
//! browser session (from a login, expiring) or an app token (named, until revoked).

use crate::clock::rfc3339;
use crate::error::Error;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

/// A user as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: String,
    pub username: String,
    pub created_at: String,
}

/// Lower-cases and checks a username: 3 to 32 of `a-z 0-9 _ . -`, starting with a letter or digit.
pub fn normalize_username(input: &str) -> Result<String, Error> {
    let name = input.to_ascii_lowercase();
    let ok_len = (3..=32).contains(&name.len());
    let ok_chars = name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
    let ok_first = name.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok_len && ok_chars && ok_first {
        Ok(name)
    } else {
        Err(Error::rule(
            "invalid_username",
            "usernames are 3 to 32 characters of a-z, 0-9, '_', '.' and '-', starting with a letter or digit",
        ))
    }
}

/// Checks a password's length: 8 to 1024 bytes.
pub fn check_password(password: &str) -> Result<(), Error> {
    if (8..=1024).contains(&password.len()) {
        Ok(())
    } else {
        Err(Error::rule("weak_password", "passwords are 8 to 1024 bytes long"))
    }
}

pub fn username_taken() -> Error {
    Error::Conflict { code: "username_taken", message: "that username is taken".into() }
}

/// Whether a username is in use (a cheap check before spending a hash on a signup).
pub fn exists(conn: &Connection, username: &str) -> Result<bool, Error> {
    Ok(conn.query_row("SELECT 1 FROM users WHERE username = ?1", [username], |_| Ok(())).optional()?.is_some())
}

/// Creates a user; the UNIQUE constraint settles concurrent signups of one name.
pub fn create(conn: &Connection, username: &str, password_hash: &str, now: i64) -> Result<User, Error> {
    let id = uuid::Uuid::now_v7().to_string();
    let inserted = conn.execute(
        "INSERT INTO users (id, username, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![id, username, password_hash, now],
    );
    match inserted {
        Ok(_) => Ok(User { id, username: username.to_string(), created_at: rfc3339(now) }),
        Err(rusqlite::Error::SqliteFailure(f, _)) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
            Err(username_taken())
        }
        Err(e) => Err(e.into()),
    }
}

fn user_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User { id: row.get(0)?, username: row.get(1)?, created_at: rfc3339(row.get(2)?) })
}

/// A user and their password hash, by (already normalised) username.
pub fn find_with_hash(conn: &Connection, username: &str) -> Result<Option<(User, String)>, Error> {
    Ok(conn
        .query_row("SELECT id, username, created_at, password_hash FROM users WHERE username = ?1", [username], |row| {
            Ok((user_from_row(row)?, row.get(3)?))
        })
        .optional()?)
}

/// A user's password hash, by id.
pub fn password_hash(conn: &Connection, user_id: &str) -> Result<Option<String>, Error> {
    Ok(conn.query_row("SELECT password_hash FROM users WHERE id = ?1", [user_id], |r| r.get(0)).optional()?)
}

/// All users, oldest first, with their recording counts and bytes.
pub fn list(conn: &Connection) -> Result<Vec<(User, i64, i64)>, Error> {
    let mut stmt = conn.prepare(
        "SELECT u.id, u.username, u.created_at,
                (SELECT count(*) FROM recordings r WHERE r.user_id = u.id),
                (SELECT coalesce(sum(size), 0) FROM recordings r WHERE r.user_id = u.id)
         FROM users u ORDER BY u.created_at, u.id",
    )?;
    let rows = stmt.query_map([], |row| Ok((user_from_row(row)?, row.get(3)?, row.get(4)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Records a new browser session; returns its id.
pub fn create_session(
    conn: &Connection,
    user_id: &str,
    token_hash: &[u8],
    now: i64,
    expires_at: i64,
) -> Result<String, Error> {
    let id = uuid::Uuid::now_v7().hyphenated().to_string();
    conn.execute(
        "INSERT INTO sessions (token_hash, user_id, created_at, expires_at, id, kind)
         VALUES (?1, ?2, ?3, ?4, ?5, 'session')",
        params![token_hash, user_id, now, expires_at, id],
    )?;
    Ok(id)
}

/// An app token's or session's description (never the token).
#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub name: Option<String>,
    /// `app` or `session`.
    pub kind: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    /// The credential of the request that asked.
    pub current: bool,
}

/// Records a new app token (no expiry); returns its id.
pub fn create_app_token(
    conn: &Connection,
    user_id: &str,
    token_hash: &[u8],
    name: &str,
    now: i64,
) -> Result<String, Error> {
    let id = uuid::Uuid::now_v7().hyphenated().to_string();
    conn.execute(
        "INSERT INTO sessions (token_hash, user_id, created_at, expires_at, id, kind, name)
         VALUES (?1, ?2, ?3, ?4, ?5, 'app', ?6)",
        params![token_hash, user_id, now, i64::MAX, id, name],
    )?;
    Ok(id)
}

/// Checks an app token's name: 1 to 100 characters after trimming, no control characters.
pub fn normalize_token_name(name: &str) -> Result<String, Error> {
    // Control characters are refused anywhere, before trimming (a tab or newline at an end too).
    let has_control = name.chars().any(|c| c.is_control() || crate::recordings::deceptive(c));
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || has_control {
        return Err(Error::invalid(
            "a token's name is 1 to 100 characters without control characters, bidirectional controls or invisible characters",
        ));
    }
    Ok(name.to_string())
}

/// The user's live credentials, newest first; `current` marks the one with `current_hash`.
pub fn list_tokens(conn: &Connection, user_id: &str, current_hash: &[u8], now: i64) -> Result<Vec<TokenInfo>, Error> {
    let mut stmt = conn.prepare(
        "SELECT id, name, kind, created_at, last_used_at, token_hash = ?3 FROM sessions
         WHERE user_id = ?1 AND expires_at > ?2 ORDER BY created_at DESC, id DESC",
    )?;
    let rows = stmt.query_map(params![user_id, now, current_hash], |r| {
        Ok(TokenInfo {
            id: r.get(0)?,
            name: r.get(1)?,
            kind: r.get(2)?,
            created_at: rfc3339(r.get(3)?),
            last_used_at: r.get::<_, Option<i64>>(4)?.map(rfc3339),
            current: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Revokes one of the user's credentials by id; false when the user has no such one.
pub fn revoke_token(conn: &Connection, user_id: &str, id: &str) -> Result<bool, Error> {
    Ok(conn.execute("DELETE FROM sessions WHERE user_id = ?1 AND id = ?2", params![user_id, id])? == 1)
}

/// How often a credential's `last_used_at` is written: at most once a minute, so requests do not
/// each write to the database.
const LAST_USED_EVERY_MS: i64 = 60_000;

/// The user a live (unexpired) credential belongs to, and the credential's id; notes its use.
pub fn session_user(conn: &Connection, token_hash: &[u8], now: i64) -> Result<Option<(User, String)>, Error> {
    credential_user(conn, token_hash, now, false)
}

/// The user an app token belongs to (a browser session's token is not one), and the token's id.
pub fn app_token_user(conn: &Connection, token_hash: &[u8], now: i64) -> Result<Option<(User, String)>, Error> {
    credential_user(conn, token_hash, now, true)
}

fn credential_user(
    conn: &Connection,
    token_hash: &[u8],
    now: i64,
    apps_only: bool,
) -> Result<Option<(User, String)>, Error> {
    let found = conn
        .query_row(
            "SELECT u.id, u.username, u.created_at, s.id, s.last_used_at FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.token_hash = ?1 AND s.expires_at > ?2 AND (?3 = 0 OR s.kind = 'app')",
            params![token_hash, now, apps_only],
            |r| Ok((user_from_row(r)?, r.get::<_, Option<String>>(3)?, r.get::<_, Option<i64>>(4)?)),
        )
        .optional()?;
    let Some((user, id, last_used)) = found else { return Ok(None) };
    if last_used.is_none_or(|t| now - t >= LAST_USED_EVERY_MS) {
        // Best effort: a busy database must not fail the request this credential is used for.
        if let Err(e) =
            conn.execute("UPDATE sessions SET last_used_at = ?2 WHERE token_hash = ?1", params![token_hash, now])
        {
            log::debug!("last use of a credential not recorded: {e}");
        }
    }
    Ok(Some((user, id.unwrap_or_default())))
}

/// Whether a credential is still live (not revoked, not expired). Read-only: an open event
/// stream asks this again and again.
pub fn credential_live(conn: &Connection, token_hash: &[u8], now: i64) -> Result<bool, Error> {
    let found = conn
        .query_row("SELECT 1 FROM sessions WHERE token_hash = ?1 AND expires_at > ?2", params![token_hash, now], |_| {
            Ok(())
        })
        .optional()?;
    Ok(found.is_some())
}

/// Revokes one session.
pub fn revoke_session(conn: &Connection, token_hash: &[u8]) -> Result<(), Error> {
    conn.execute("DELETE FROM sessions WHERE token_hash = ?1", [token_hash])?;
    Ok(())
}

/// Sets a new password hash and revokes every browser session of the user but `keep`, and their
/// app tokens too when `revoke_apps`.
pub fn set_password(
    conn: &mut Connection,
    user_id: &str,
    hash: &str,
    keep: Option<&[u8]>,
    revoke_apps: bool,
) -> Result<(), Error> {
    let tx = conn.transaction()?;
    tx.execute("UPDATE users SET password_hash = ?1 WHERE id = ?2", params![hash, user_id])?;
    tx.execute(
        "DELETE FROM sessions WHERE user_id = ?1 AND token_hash IS NOT ?2 AND (kind = 'session' OR ?3)",
        params![user_id, keep, revoke_apps],
    )?;
    tx.commit()?;
    Ok(())
}

/// Removes sessions past their expiry.
pub fn purge_expired_sessions(conn: &Connection, now: i64) -> Result<usize, Error> {
    Ok(conn.execute("DELETE FROM sessions WHERE expires_at <= ?1", [now])?)
}

/// Deletes a user, their sessions and recording rows in one transaction, recording the files to
/// unlink in `pending_unlinks`; returns those paths for the caller to unlink.
pub fn delete(conn: &mut Connection, user_id: &str, now: i64) -> Result<Vec<String>, Error> {
    // Flushed through the WAL before the files are unlinked.
    crate::db::durably(conn, |conn| {
        // Reads, then writes: the write lock first, so a concurrent writer is waited for, not a 503.
        let tx = crate::recordings::write_transaction(conn)?;
        let mut paths = crate::recordings::queue_unlinks_for_user(&tx, user_id, now)?;
        paths.extend(crate::uploads::queue_unlinks_for_user(&tx, user_id, now)?);
        tx.execute("DELETE FROM users WHERE id = ?1", [user_id])?;
        tx.commit()?;
        Ok(paths)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_lowercased_and_checked() {
        assert_eq!(normalize_username("Alice.B-1").ok().as_deref(), Some("alice.b-1"));
        for bad in ["ab", "_alice", "al ice", "ålice", &"a".repeat(33), ""] {
            assert!(normalize_username(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn password_length_is_in_bytes() {
        assert!(check_password("1234567").is_err());
        assert!(check_password("12345678").is_ok());
        assert!(check_password(&"é".repeat(512)).is_ok());
        assert!(check_password(&"é".repeat(513)).is_err());
    }
}
