//! The `recorder` command: parse the command line, load the configuration, run a command.

use clap::{Parser, Subcommand};
use recorder::Clock;
use recorder::cli::{self, Failure};
use recorder::config::{self, Overrides, ProcessEnv};
use std::path::PathBuf;
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "recorder", version, about = "A self-hosted home for voice recordings")]
struct Cli {
    /// Config file (else $RECORDER_CONFIG, ./recorder.toml, or the platform config directory).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (database and audio files).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, global = true, value_name = "ADDR")]
    address: Option<String>,
    /// Port to listen on.
    #[arg(long, global = true, value_name = "N")]
    port: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Compare recording rows with the stored files; safe while the server runs. Exit 1 when
    /// data is at risk (missing, damaged or unreadable bytes), 0 when there are only notes.
    Check {
        /// Also read every file and compare its SHA-256 with the recorded one.
        #[arg(long)]
        verify: bool,
        /// Move recordings whose file is missing or damaged to their owner's trash, marked; move
        /// files on disk that no recording refers to into lost+found; recount usage. Never
        /// deletes a file.
        #[arg(long)]
        repair: bool,
        /// With --repair: repair even when most recordings' files are missing.
        #[arg(long, requires = "repair")]
        force: bool,
        /// Turn files in lost+found, and stored files and objects no recording refers to, back
        /// into recordings (owner and name from what each kept beside its bytes).
        #[arg(long)]
        recover: bool,
        /// With --recover: make every recovered recording this user's.
        #[arg(long, requires = "recover", value_name = "USERNAME")]
        owner: Option<String>,
    },
    /// Copy the database and every recording's file to DEST_DIR, safe while the server runs.
    /// DEST_DIR then works as a data directory; a second run copies only new files. Without
    /// DEST_DIR: a dated snapshot in backup.dir, keeping the newest backup.keep.
    Backup {
        #[arg(value_name = "DEST_DIR")]
        dest: Option<PathBuf>,
        /// Replace DEST_DIR's backup even when the new one shares none of its accounts or has
        /// fewer than half of its recordings.
        #[arg(long)]
        force: bool,
    },
    /// Restore a snapshot (or a backup directory) into the empty data directory given by
    /// --data-dir, verifying every file's SHA-256. `s3:NAME` restores the database a snapshot
    /// left in the object store ([storage.s3] as when it was taken); the audio stays there.
    Restore {
        #[arg(value_name = "SNAPSHOT")]
        snapshot: PathBuf,
    },
    /// Move recordings between the data directory and the S3 store; adopt a store.
    #[command(subcommand)]
    Storage(StorageCommand),
    /// Transcribe one audio file with the configured model (transcription.model) and print what
    /// was said, one timed segment a line: for trying a model before turning it on.
    Transcribe {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum StorageCommand {
    /// Move every recording's bytes to the other store while the server runs: each copy's
    /// SHA-256 is verified before its source is deleted; resumable, and safe to run again.
    Migrate {
        /// Where to: `s3` ([storage.s3] must be configured) or `local` (the data directory).
        #[arg(long, value_name = "s3|local", value_parser = ["s3", "local"])]
        to: String,
    },
    /// Make the configured bucket and prefix this installation's: rewrite its marker with this
    /// data directory's id (after a re-installation). The installation that wrote it before
    /// must not use it any more.
    Adopt,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account (works with signups closed).
    Add {
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List accounts.
    List,
    /// Set a new password and sign out the user's sessions.
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete an account and all its recordings.
    Remove { name: String },
}

/// mimalloc's `mi_option_purge_delay`: its place in `mi_option_t`, the same in mimalloc 2 and 3
/// (the bindings name the options on either side of it, 14 and 16, but not this one).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory goes back to the system at once instead of after mimalloc's default delay:
/// under a burst of uploads that halves the peak (the README's memory section), whatever
/// starts the server. A `MIMALLOC_PURGE_DELAY` in the environment still decides.
#[allow(unsafe_code)]
fn purge_freed_memory_at_once() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: `mi_option_set` stores an integer option; it takes no pointers and may be
        // called at any time (mimalloc reads the option at each purge). Called once, before any
        // other thread exists.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) }
    }
}

fn main() -> ExitCode {
    purge_freed_memory_at_once();
    let cli = Cli::parse();
    let overrides = Overrides { config_file: cli.config, data_dir: cli.data_dir, address: cli.address, port: cli.port };
    let config = match config::load(&overrides, &ProcessEnv) {
        Ok(config) => config,
        Err(e) => return cli::finish(Err(Failure { message: e.to_string(), code: 2 })),
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config),
        Command::User(UserCommand::Add { name, password_stdin }) => {
            cli::finish(cli::user_add(&config, &name, password_stdin))
        }
        Command::User(UserCommand::List) => cli::finish(cli::user_list(&config)),
        Command::User(UserCommand::Passwd { name, password_stdin }) => {
            cli::finish(cli::user_passwd(&config, &name, password_stdin))
        }
        Command::User(UserCommand::Remove { name }) => cli::finish(cli::user_remove(&config, &name)),
        Command::Check { verify, repair, force, recover, owner } => {
            let recover = recover.then_some(owner);
            cli::finish(cli::check(&config, cli::CheckArgs { verify, repair, force, recover }))
        }
        Command::Backup { dest, force } => cli::finish(cli::backup(&config, dest.as_deref(), force)),
        Command::Restore { snapshot } => cli::finish(cli::restore(&config, &snapshot)),
        Command::Storage(StorageCommand::Migrate { to }) => cli::finish(cli::storage_migrate(&config, &to)),
        Command::Storage(StorageCommand::Adopt) => cli::finish(cli::storage_adopt(&config)),
        Command::Transcribe { file } => cli::finish(cli::transcribe(&config, &file)),
    }
}

fn serve(config: recorder::Config) -> ExitCode {
    recorder::logger::init(config.server.log_level);
    match &config.source {
        Some(path) => log::info!("config file: {}", path.display()),
        None => log::info!("config file: none found, using built-in defaults"),
    }
    log::info!("data directory: {}", config.storage.data_dir.display());
    if config.compat.social_login {
        log::warn!("compat.social_login is on: anyone who can reach this server can sign in as any social id");
    }
    let server = match recorder::Server::open(config, Clock::default()) {
        Ok(server) => server,
        // A model that cannot be used is bad configuration.
        Err(e @ recorder::StartError::Model(_)) => {
            return cli::finish(Err(Failure { message: e.to_string(), code: 2 }));
        }
        Err(e) => return cli::finish(Err(Failure { message: e.to_string(), code: 1 })),
    };
    // The runtime is sized by the config (Rocket's own would allow 512 blocking threads, each
    // with its own stack and allocator arena: too many for a 512 MB board).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(server.state.config.server.workers)
        .max_blocking_threads(server.state.config.server.blocking_threads)
        .thread_name("recorder-worker")
        .on_thread_start(recorder::auth::normal_priority)
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => return cli::finish(Err(Failure { message: format!("cannot start the runtime: {e}"), code: 1 })),
    };
    let storage = server.state.storage.clone();
    let stopping = server.stopping();
    let launched = runtime.block_on(async {
        let launched = recorder::rocket(server).launch().await;
        // WebDAV and HTTPS stop with the server: their requests get the same grace time.
        if launched.is_ok() {
            stopping.wait().await;
        }
        launched
    });
    // Tasks that outlived the graceful shutdown (a stuck client) are not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    // Their temp files go with them (the next start would empty tmp/ too): nothing else writes
    // there while this server holds the data directory.
    match storage.empty_tmp() {
        Ok(0) => {}
        Ok(n) => log::info!("removed {n} unfinished uploads from tmp/"),
        Err(e) => log::warn!("cannot empty tmp/: {e}"),
    }
    match launched {
        Ok(_) => {
            log::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => cli::finish(Err(Failure { message: format!("server failed: {e}"), code: 1 })),
    }
}
