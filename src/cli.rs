//! The `user` commands: they work on the data directory directly, safely beside a running server.

use crate::clock::{rfc3339, system_now_ms};
use crate::config::Config;
use crate::db::Db;
use crate::error::ApiError;
use crate::recordings;
use crate::storage::Storage;
use crate::users;
use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

/// A command's failure: the line to print and the exit status.
pub struct Failure {
    pub message: String,
    pub code: u8,
}

impl Failure {
    fn work(message: impl Into<String>) -> Failure {
        Failure { message: message.into(), code: 1 }
    }

    fn usage(message: impl Into<String>) -> Failure {
        Failure { message: message.into(), code: 2 }
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Failure {
        Failure::work(e.message.to_string())
    }
}

/// Prints a failure and turns it into an exit status.
pub fn finish(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("recorder: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn open(config: &Config) -> Result<(Db, Storage), Failure> {
    let storage = Storage::open(&config.data_dir)
        .map_err(|e| Failure::work(format!("data directory {}: {e}", config.data_dir.display())))?;
    let db = Db::open(&storage.db_path()).map_err(|e| Failure::work(e.to_string()))?;
    Ok((db, storage))
}

fn read_password(from_stdin: bool, confirm: bool) -> Result<String, Failure> {
    let password = if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Failure::work(format!("reading the password: {e}")))?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        let first = rpassword::prompt_password("Password: ")
            .map_err(|e| Failure::work(format!("reading the password: {e}")))?;
        if confirm {
            let again = rpassword::prompt_password("Again: ")
                .map_err(|e| Failure::work(format!("reading the password: {e}")))?;
            if again != first {
                return Err(Failure::usage("the passwords do not match"));
            }
        }
        first
    };
    users::check_password(&password).map_err(|e| Failure::usage(e.message.to_string()))?;
    Ok(password)
}

fn find(db: &Db, name: &str) -> Result<users::User, Failure> {
    let username = users::normalize_username(name).map_err(|e| Failure::usage(e.message.to_string()))?;
    let conn = db.conn()?;
    users::find_with_hash(&conn, &username)?
        .map(|(u, _)| u)
        .ok_or_else(|| Failure::work(format!("no user named {username}")))
}

/// `recorder user add NAME`
pub fn user_add(config: &Config, name: &str, password_stdin: bool) -> Result<(), Failure> {
    let username = users::normalize_username(name).map_err(|e| Failure::usage(e.message.to_string()))?;
    let (db, _) = open(config)?;
    if users::exists(&*db.conn()?, &username)? {
        return Err(Failure::work(format!("user {username} already exists")));
    }
    let password = read_password(password_stdin, true)?;
    let hash = crate::auth::hash_password_blocking(&password)?;
    let user = users::create(&*db.conn()?, &username, &hash, system_now_ms())
        .map_err(|e| Failure::work(format!("cannot add {username}: {}", e.message)))?;
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
    users::set_password(&mut *db.conn()?, &user.id, &hash, None)?;
    println!("password changed for {}; their sessions are signed out", user.username);
    Ok(())
}

/// `recorder user remove NAME`: the account and all its recordings.
pub fn user_remove(config: &Config, name: &str) -> Result<(), Failure> {
    let (db, storage) = open(config)?;
    let user = find(&db, name)?;
    let mut conn = db.conn()?;
    let paths = users::delete(&mut conn, &user.id, system_now_ms())?;
    let removed = recordings::finish_unlinks(&conn, &storage, &paths)?;
    println!("removed user {} and {removed} recordings (at {})", user.username, rfc3339(system_now_ms()));
    Ok(())
}
