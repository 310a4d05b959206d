//! What every command shares: its failure and exit status, opening the data directory, a
//! password prompt, and progress lines.

use crate::config::Config;
use crate::db::Db;
use crate::error::Error;
use crate::storage::Storage;
use crate::users;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// A command's failure: the line to print and the exit status.
pub struct Failure {
    pub message: String,
    pub code: u8,
}

impl Failure {
    pub(super) fn work(message: impl Into<String>) -> Failure {
        Failure { message: message.into(), code: 1 }
    }

    pub(super) fn usage(message: impl Into<String>) -> Failure {
        Failure { message: message.into(), code: 2 }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::work(e.to_string())
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

pub(super) fn open_storage(config: &Config) -> Result<Storage, Failure> {
    Storage::open(&config.storage.data_dir)
        .map_err(|e| Failure::work(format!("data directory {}: {e}", config.storage.data_dir.display())))
}

pub(super) fn open(config: &Config) -> Result<(Db, Storage), Failure> {
    let storage = open_storage(config)?;
    let db = Db::open(&storage.db_path()).map_err(|e| Failure::work(e.to_string()))?;
    Ok((db, storage))
}

/// The data directory, the database and, when configured, the object store (checked to answer).
pub(super) fn open_with_store(config: &Config) -> Result<(Db, Storage), Failure> {
    let (db, storage) = open(config)?;
    let s3 = crate::state::open_s3(config, &db).map_err(|e| Failure::work(e.to_string()))?;
    Ok((db, storage.with_s3(s3, config.storage.backend)))
}

pub(super) fn read_password(from_stdin: bool, confirm: bool) -> Result<String, Failure> {
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
    users::check_password(&password).map_err(|e| Failure::usage(e.to_string()))?;
    Ok(password)
}

pub(super) fn find(db: &Db, name: &str) -> Result<users::User, Failure> {
    let username = users::normalize_username(name).map_err(|e| Failure::usage(e.to_string()))?;
    let conn = db.conn()?;
    users::find_with_hash(&conn, &username)?
        .map(|(u, _)| u)
        .ok_or_else(|| Failure::work(format!("no user named {username}")))
}

/// Progress on stderr for long work: at most one line every two seconds, redrawn in place on a
/// terminal.
pub(super) struct Ticker {
    last: Instant,
    tty: bool,
    drawn: bool,
}

impl Ticker {
    pub(super) fn new() -> Ticker {
        Ticker { last: Instant::now(), tty: std::io::stderr().is_terminal(), drawn: false }
    }

    pub(super) fn tick(&mut self, line: impl FnOnce() -> String) {
        if self.last.elapsed() < Duration::from_secs(2) {
            return;
        }
        self.last = Instant::now();
        let mut err = std::io::stderr().lock();
        let _ = if self.tty { write!(err, "\r\x1b[2K{}", line()) } else { writeln!(err, "{}", line()) };
        let _ = err.flush();
        self.drawn = true;
    }

    /// Ends a redrawn line before other output.
    pub(super) fn clear(&mut self) {
        if self.tty && self.drawn {
            eprint!("\r\x1b[2K");
            self.drawn = false;
        }
    }
}

/// Bytes for people: "20.2 KB", "1.5 GB".
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

pub(super) fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `check` and `backup` work on an existing data directory, never on one they would create.
pub(super) fn existing_data_dir(config: &Config) -> Result<(), Failure> {
    if config.storage.data_dir.join("recorder.db").is_file() {
        return Ok(());
    }
    Err(Failure::usage(format!(
        "{} has no recorder.db: is it the data directory? (--data-dir, or storage.data_dir in the config)",
        config.storage.data_dir.display()
    )))
}
