//! The commands on the data itself: `check`, `storage adopt|migrate`, `backup`, `restore` and
//! `transcribe`.

use crate::clock::system_now_ms;
use crate::config::Config;
use crate::db::Db;
use crate::error::Error;
use crate::storage::Storage;
use std::path::Path;
use std::time::Instant;

use super::base::{Failure, Ticker, existing_data_dir, human_bytes, open, open_with_store, plural};

/// What `recorder check` was asked to do.
pub struct CheckArgs {
    pub verify: bool,
    pub repair: bool,
    pub force: bool,
    /// `--recover`, with `--owner` if given.
    pub recover: Option<Option<String>>,
}

/// `recorder check [--verify] [--repair [--force]] [--recover [--owner USERNAME]]`
pub fn check(config: &Config, args: CheckArgs) -> Result<(), Failure> {
    use crate::check::{self, Event, Kind};
    let CheckArgs { verify, repair, force, recover } = args;
    existing_data_dir(config)?;
    let (db, storage) = open_with_store(config)?;
    // Interrupted writes of processes that have stopped (a killed recovery's file goes back to
    // lost+found) are settled first.
    crate::inflight::settle(&db, &storage, false)?;
    if let Some(owner) = recover {
        recover_lost(&db, &storage, owner.as_deref())?;
    }
    let options =
        check::Options { verify, repair, force, now_ms: system_now_ms(), retention_days: config.trash.retention_days };
    let mut ticker = Ticker::new();
    let report = check::run(&db, &storage, options, &mut |event| match event {
        Event::Problem(problem) => {
            ticker.clear();
            println!("{}", check::describe(problem));
        }
        Event::Repaired { id, result } => {
            ticker.clear();
            match result {
                Ok(done) => println!("{:<14} {id}: {done}", "repaired"),
                Err(why) => println!("{:<14} {id}: {why}", "not repaired"),
            }
        }
        Event::Progress { rows, total_rows, hashed_bytes } => ticker.tick(|| {
            let hashed = if verify { format!(", {} hashed", human_bytes(hashed_bytes)) } else { String::new() };
            format!("checked {rows} of {total_rows} recordings{hashed}")
        }),
    })?;
    ticker.clear();
    let kinds = [
        (Kind::MissingFile, "missing file", "missing files"),
        (Kind::Orphan, "file without a recording", "files without a recording"),
        (Kind::SizeMismatch, "size mismatch", "size mismatches"),
        (Kind::HashMismatch, "hash mismatch", "hash mismatches"),
        (Kind::Unreadable, "unreadable file", "unreadable files"),
        (Kind::UsageMismatch, "usage counter mismatch", "usage counter mismatches"),
        (Kind::AnalysisFailed, "failed analysis", "failed analyses"),
        (Kind::LostFound, "file in lost+found", "files in lost+found"),
    ];
    let detail = |problems: bool| -> Vec<String> {
        kinds
            .iter()
            .filter(|(kind, _, _)| kind.is_problem() == problems)
            .filter(|(kind, _, _)| {
                (verify || *kind != Kind::HashMismatch)
                    && (matches!(kind, Kind::MissingFile | Kind::SizeMismatch | Kind::HashMismatch)
                        || report.by_kind[*kind as usize] > 0)
            })
            .map(|(kind, one, many)| plural(report.by_kind[*kind as usize], one, many))
            .collect()
    };
    println!(
        "checked {} ({}) and {}: {} ({})",
        plural(report.rows as usize, "recording", "recordings"),
        human_bytes(report.row_bytes),
        plural(report.files as usize, "file", "files"),
        plural(report.problems, "problem", "problems"),
        detail(true).join(", ")
    );
    if report.notes > 0 {
        println!("{}: {}", plural(report.notes, "note", "notes"), detail(false).join(", "));
    }
    let lost = report.by_kind[Kind::Orphan as usize] + report.by_kind[Kind::LostFound as usize];
    if lost > 0 {
        println!(
            "{} no recording refers to {} kept; `recorder check --recover` makes them recordings again",
            plural(lost, "file or object", "files or objects"),
            if lost == 1 { "is" } else { "are" }
        );
    }
    if repair && (report.problems > 0 || report.notes > 0) {
        println!("repaired {} of {}", report.repaired, report.problems);
    }
    if report.repair_refused > 0 {
        println!(
            "{} not repaired: most recordings' files are missing, or most files have no recording, which \
             looks like an unmounted disk, a lost database or the wrong data directory; if that is really so, \
             run `recorder check --repair --force`",
            plural(report.repair_refused, "problem", "problems")
        );
    }
    if report.known > 0 {
        println!(
            "{} already in their owner's trash, marked by an earlier repair",
            plural(report.known, "recording is", "recordings are")
        );
    }
    if !verify {
        println!("file contents were not read; `recorder check --verify` also compares every file's SHA-256");
    }
    if report.clean() {
        return Ok(());
    }
    let left = report.problems - report.repaired;
    Err(Failure::work(if repair {
        format!("{} could not be repaired", plural(left, "problem", "problems"))
    } else {
        format!("{} found; `recorder check --repair` fixes them", plural(left, "problem", "problems"))
    }))
}

/// The `--recover` part of `recorder check`.
fn recover_lost(db: &Db, storage: &Storage, owner: Option<&str>) -> Result<(), Failure> {
    use crate::recover::Event;
    let report = crate::recover::run(db, storage, owner, &mut |event| match event {
        Event::Recovered { id, name, owner, place } => {
            if owner.is_empty() {
                println!("{:<14} {id}  {place}: back in place for {name}", "recovered");
            } else {
                println!("{:<14} {id}  {place}: as {name:?} for {owner}", "recovered");
            }
        }
        Event::Left { id, place, why } => println!("{:<14} {id}  {place}: {why}", "not recovered"),
    })
    .map_err(|e| {
        if matches!(e, Error::Invalid { .. }) { Failure::usage(e.to_string()) } else { Failure::work(e.to_string()) }
    })?;
    println!(
        "recovered {} of {} lost files and objects{}{}",
        report.recovered + report.returned,
        report.found,
        if report.left > 0 { format!("; {} left where they are (reasons above)", report.left) } else { String::new() },
        if report.recovered > 0 { "; their analysis is queued" } else { "" }
    );
    Ok(())
}

/// `recorder storage adopt`
pub fn storage_adopt(config: &Config) -> Result<(), Failure> {
    let Some(s3) = &config.storage.s3 else {
        return Err(Failure::usage("there is no store to adopt: [storage.s3] is not configured"));
    };
    existing_data_dir(config)?;
    let (db, _) = open(config)?;
    let store =
        crate::storage::s3::S3Store::open(s3, &config.storage.data_dir.join("s3-multipart")).map_err(Failure::work)?;
    store.probe().map_err(Failure::work)?;
    let ours = crate::marker::installation_id(&*db.conn()?)?;
    let before = crate::marker::read(&store).map_err(Failure::work)?;
    crate::marker::write(&store, &ours).map_err(Failure::work)?;
    match before {
        Some(id) if id == ours => println!("{} is this installation's already", store.place()),
        Some(id) => println!("{} is this installation's now (it was {id}'s)", store.place()),
        None => println!("{} is this installation's now", store.place()),
    }
    println!("recordings there that this database does not know: `recorder check --recover` brings them back");
    Ok(())
}

/// `recorder restore SNAPSHOT --data-dir DIR`
pub fn restore(config: &Config, snapshot: &Path) -> Result<(), Failure> {
    let started = Instant::now();
    let mut ticker = Ticker::new();
    let mut on = |done, total| ticker.tick(|| format!("restored {done} of {total} recordings"));
    let restored = match snapshot.to_str().and_then(|s| s.strip_prefix("s3:")) {
        Some(name) => {
            let Some(s3) = &config.storage.s3 else {
                return Err(Failure::usage("restoring from the object store needs [storage.s3] configured"));
            };
            let store = crate::storage::s3::S3Store::open(s3, &config.storage.data_dir.join("s3-multipart"))
                .map_err(Failure::work)?;
            store.probe().map_err(Failure::work)?;
            crate::snapshots::restore_from_store(&store, name, &config.storage.data_dir, &mut on)
        }
        None => crate::snapshots::restore(snapshot, &config.storage.data_dir, &mut on),
    }
    .map_err(|e| Failure { message: e.message, code: if e.usage { 2 } else { 1 } })?;
    ticker.clear();
    println!(
        "restored {} ({}) from {} into {} in {:.1} s; every file's SHA-256 verified",
        plural(restored.recordings as usize, "recording", "recordings"),
        human_bytes(restored.bytes),
        snapshot.display(),
        config.storage.data_dir.display(),
        started.elapsed().as_secs_f64()
    );
    println!("serve it with storage.data_dir = {:?} (or --data-dir)", config.storage.data_dir.display().to_string());
    Ok(())
}

/// `recorder storage migrate --to s3|local`
pub fn storage_migrate(config: &Config, to: &str) -> Result<(), Failure> {
    use crate::migrate::{self, Event};
    use crate::storage::store::Backend;
    let to = Backend::parse(to).ok_or_else(|| Failure::usage(format!("--to {to:?}: expected \"s3\" or \"local\"")))?;
    if to == Backend::S3 && config.storage.s3.is_none() {
        return Err(Failure::usage(
            "moving recordings to s3 needs [storage.s3] configured (storage.s3.endpoint, storage.s3.bucket and the keys)",
        ));
    }
    existing_data_dir(config)?;
    let (db, storage) = open_with_store(config)?;
    // One migration at a time (beside a server, which does not hold this lock).
    let _lock = migrate_lock(&config.storage.data_dir)?;
    // An interrupted run's copies, noted in flight, are deleted before it starts again.
    crate::inflight::settle(&db, &storage, false)?;
    let target = storage.store(to).map_err(|e| Failure::work(e.to_string()))?.describe();
    let started = Instant::now();
    let mut ticker = Ticker::new();
    let report = migrate::run(&db, &storage, to, &mut |event| match event {
        Event::Progress { done, total, bytes, total_bytes } => ticker.tick(|| {
            format!(
                "moved {done} of {total} recordings ({} of {}) to {to}",
                human_bytes(bytes),
                human_bytes(total_bytes)
            )
        }),
        Event::Failed { id, why } => {
            ticker.clear();
            eprintln!("not moved {id}: {why}");
        }
    })?;
    ticker.clear();
    if report.finished_deletes > 0 {
        println!("finished {} deletes an interrupted run had queued", report.finished_deletes);
    }
    if report.total == 0 {
        println!("nothing to move: every recording is in {target}");
    } else {
        println!(
            "moved {} of {} recordings ({}) to {target} in {:.1} s; each copy's SHA-256 was verified before its source was deleted",
            report.moved,
            report.total,
            human_bytes(report.moved_bytes),
            started.elapsed().as_secs_f64()
        );
    }
    if report.gone > 0 {
        println!("{} deleted meanwhile", plural(report.gone as usize, "recording was", "recordings were"));
    }
    if config.storage.backend != to {
        println!(
            "new recordings still go to {}: set storage.backend = \"{to}\" and restart the server, then run this again \
             to move those that arrived meanwhile",
            config.storage.backend
        );
    }
    if report.failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::work(format!(
            "{} not moved (they stay readable where they are); run the command again to retry",
            plural(report.failed.len(), "recording was", "recordings were")
        )))
    }
}

fn migrate_lock(data_dir: &Path) -> Result<std::fs::File, Failure> {
    let path = data_dir.join("migrate.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Failure::work(format!("cannot open {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(Failure::work(format!("another `recorder storage migrate` is running on {}", data_dir.display())))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(Failure::work(format!("cannot lock {}: {e}", path.display()))),
    }
}

/// `recorder backup [DEST_DIR]`
pub fn backup(config: &Config, dest: Option<&Path>, force: bool) -> Result<(), Failure> {
    use crate::backup::{self, Event};
    existing_data_dir(config)?;
    let snapshot_dir = match (dest, &config.backup.dir) {
        (Some(_), _) => None,
        (None, Some(dir)) => Some(dir.clone()),
        (None, None) => {
            return Err(Failure::usage(
                "no destination: give DEST_DIR, or set backup.dir in the config (RECORDER_BACKUP_DIR) for dated snapshots",
            ));
        }
    };
    let (_, storage) = open_with_store(config)?;
    let started = Instant::now();
    let mut ticker = Ticker::new();
    let shown = dest.map(Path::to_path_buf).or(snapshot_dir.clone()).unwrap_or_default();
    let mut on = |event: Event<'_>| match event {
        Event::Database { bytes } => {
            println!("copied the database ({}) to {}", human_bytes(bytes), shown.display());
        }
        Event::Files { done, total, copied_bytes, total_bytes } => ticker.tick(|| {
            format!(
                "recordings: {done} of {total} looked at, {} copied of at most {}",
                human_bytes(copied_bytes),
                human_bytes(total_bytes)
            )
        }),
        Event::HashMismatch { id } => {
            ticker.clear();
            println!("warning: recording {id} does not hash to its sha256; copied as it is");
        }
        Event::MissingOnServer { id } => {
            ticker.clear();
            println!("warning: recording {id} has no file on the server; left out of the backup");
        }
    };
    let failure = |e: backup::BackupError| Failure { message: e.message, code: if e.usage { 2 } else { 1 } };
    let (report, written) = match (dest, &snapshot_dir) {
        (Some(dest), _) => (backup::run(&storage, dest, force, &mut on).map_err(failure)?, dest.to_path_buf()),
        (None, Some(dir)) => {
            let taken =
                crate::snapshots::take(&storage, dir, config.backup.keep, system_now_ms(), &mut on).map_err(failure)?;
            ticker.clear();
            for old in &taken.removed {
                println!("removed the old snapshot {}", old.display());
            }
            println!(
                "{} kept in {} (backup.keep = {}); {} linked from the previous snapshot",
                plural(taken.kept, "snapshot", "snapshots"),
                dir.display(),
                config.backup.keep,
                plural(taken.linked as usize, "unchanged file", "unchanged files")
            );
            if let Some(key) = &taken.uploaded {
                println!("uploaded the snapshot's database to the object store as {key}");
            }
            (taken.report, taken.path)
        }
        (None, None) => return Err(Failure::usage("no destination")),
    };
    ticker.clear();
    println!(
        "backed up {} to {} in {:.1} s: copied {} ({}), {} already there",
        plural(report.recordings as usize, "recording", "recordings"),
        written.display(),
        started.elapsed().as_secs_f64(),
        plural(report.copied_files as usize, "file", "files"),
        human_bytes(report.copied_bytes),
        report.present_files
    );
    if report.left_out > 0 {
        println!(
            "{} deleted while the backup ran left out",
            plural(report.left_out as usize, "recording", "recordings")
        );
    }
    if report.removed_files > 0 {
        println!(
            "removed {} of recordings deleted since the previous backup",
            plural(report.removed_files as usize, "file", "files")
        );
    }
    if report.marked_damaged > 0 {
        println!(
            "{} already marked damaged by `recorder check --repair` (in their owners' trash): copied as \
             they are, or left out where the file is missing",
            plural(report.marked_damaged as usize, "recording", "recordings")
        );
    }
    let damaged = (report.hash_mismatches + report.missing_on_server) as usize;
    if damaged == 0 {
        Ok(())
    } else {
        Err(Failure::work(format!(
            "{} missing or damaged on the server; run `recorder check --verify`",
            plural(damaged, "recording is", "recordings are")
        )))
    }
}

/// `recorder transcribe FILE`: what the configured model hears in one file, one segment a line
/// (`[mm:ss.s → mm:ss.s] text`), then how long it took. Needs no server and no data directory.
pub fn transcribe(config: &Config, file: &Path) -> Result<(), Failure> {
    let usage = |message: String| Failure { message, code: 2 };
    let Some(settings) = crate::transcription::Settings::from_config(&config.transcription) else {
        return Err(usage(
            "transcription.model is not set: give the model directory in the config or RECORDER_TRANSCRIPTION_MODEL"
                .to_string(),
        ));
    };
    if !file.is_file() {
        return Err(usage(format!("{}: no such file", file.display())));
    }
    #[cfg(feature = "transcription")]
    {
        let started = Instant::now();
        let model = crate::transcription::whisper::Model::load(&settings.model, settings.options()).map_err(usage)?;
        let bytes = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
        let limits = crate::analysis::Limits::for_size(bytes);
        let transcript = model
            .transcribe(file, limits, &mut || true)
            .map_err(|e| Failure { message: format!("{}: {e}", file.display()), code: 1 })?
            .ok_or_else(|| Failure { message: "transcription stopped".to_string(), code: 1 })?;
        let clock = |ms: i64| format!("{:02}:{:04.1}", ms / 60_000, (ms % 60_000) as f64 / 1000.0);
        for segment in &transcript.segments {
            println!("[{} → {}] {}", clock(segment.start_ms), clock(segment.end_ms), segment.text);
        }
        eprintln!(
            "{}: language {}, model {}, {} segments, {:.1} s",
            file.display(),
            transcript.language,
            transcript.model,
            transcript.segments.len(),
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }
    #[cfg(not(feature = "transcription"))]
    {
        Err(usage(format!(
            "this build has no transcription (model {}): build with `--features transcription`",
            settings.model.display()
        )))
    }
}
