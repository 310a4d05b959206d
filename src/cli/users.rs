//! `recorder user add|list|passwd|remove`.

use crate::clock::{rfc3339, system_now_ms};
use crate::config::Config;
use crate::recordings;
use crate::users;

use super::base::{Failure, find, open, open_with_store, read_password};

/// `recorder user add NAME`
pub fn user_add(config: &Config, name: &str, password_stdin: bool) -> Result<(), Failure> {
    let username = users::normalize_username(name).map_err(|e| Failure::usage(e.to_string()))?;
    let (db, _) = open(config)?;
    if users::exists(&*db.conn()?, &username)? {
        return Err(Failure::work(format!("user {username} already exists")));
    }
    let password = read_password(password_stdin, true)?;
    let hash = crate::auth::hash_password_blocking(&password)?;
    let user = users::create(&*db.conn()?, &username, &hash, system_now_ms())
        .map_err(|e| Failure::work(format!("cannot add {username}: {}", e)))?;
    println!("added user {} ({})", user.username, user.id);
    Ok(())
}

/// `recorder user list`
pub fn user_list(config: &Config) -> Result<(), Failure> {
    let (db, _) = open(config)?;
    let rows = users::list(&*db.conn()?)?;
    println!("{:<32}  {:<24}  {:>10}  {:>14}", "USERNAME", "CREATED", "RECORDINGS", "BYTES");
    for (user, count, bytes) in rows {
        println!("{:<32}  {:<24}  {:>10}  {:>14}", user.username, user.created_at, count, bytes);
    }
    Ok(())
}

/// `recorder user passwd NAME`: new password, every session revoked.
pub fn user_passwd(config: &Config, name: &str, password_stdin: bool) -> Result<(), Failure> {
    let (db, _) = open(config)?;
    let user = find(&db, name)?;
    let password = read_password(password_stdin, true)?;
    let hash = crate::auth::hash_password_blocking(&password)?;
    // From the command line (a forgotten or stolen password): every session and app token goes.
    users::set_password(&mut *db.conn()?, &user.id, &hash, None, true)?;
    println!("password changed for {}; their sessions are signed out", user.username);
    Ok(())
}

/// `recorder user remove NAME`: the account and all its recordings.
pub fn user_remove(config: &Config, name: &str) -> Result<(), Failure> {
    let (db, storage) = open_with_store(config)?;
    let user = find(&db, name)?;
    let mut conn = db.conn()?;
    let paths = users::delete(&mut conn, &user.id, system_now_ms())?;
    let removed = recordings::finish_unlinks(&conn, &storage, &paths)?;
    println!("removed user {} and {removed} recordings (at {})", user.username, rfc3339(system_now_ms()));
    Ok(())
}
