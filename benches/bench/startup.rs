//! Startup: from exec to the first 200 from `/healthz`, restarting the server on the seeded data
//! directory, beside the bare cost of executing the binary.

use crate::report::Report;
use crate::server::{BINARY, Server};
use crate::stats::{count, median, ms, size};
use crate::{Bench, progress};
use rusqlite::{Connection, OpenFlags};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Target: ready within this long, whatever the number of recordings.
const STARTUP: Duration = Duration::from_secs(1);

/// Restarts the (stopped) server on the same data directory `startup_runs` times.
pub fn run(bench: &mut Bench, first_start: Duration, report: &mut Report) {
    let db = bench.setup.db_path();
    let conn = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|e| panic!("opening {} read-only: {e}", db.display()));
    let rows: i64 = conn.query_row("SELECT count(*) FROM recordings", [], |r| r.get(0)).expect("counting recordings");
    drop(conn);
    let rows = count(rows as usize);

    let execs: Vec<Duration> = (0..5).map(|_| exec_version()).collect();
    let mut starts = Vec::new();
    let mut idle = 0;
    for run in 1..=bench.plan.startup_runs {
        progress(&format!("startup: restarting on {rows} recordings ({run}/{})", bench.plan.startup_runs));
        bench.server.stop();
        bench.server = Server::start(&bench.setup);
        starts.push(bench.server.ready_after);
        idle = bench.server.memory().rss;
    }
    let start = median(&starts);
    let runs = if starts.len() > 1 { format!(" (median of {})", starts.len()) } else { String::new() };
    report.row("startup", "exec to /healthz 200, empty database", ms(first_start), "");
    report.target(
        "startup",
        format!("exec to /healthz 200, {rows} recordings{runs}"),
        ms(start),
        format!("target < {} s", STARTUP.as_secs()),
        start < STARTUP,
    );
    report.row("startup", "exec of `recorder --version` (median of 5)", ms(median(&execs)), "the floor of any start");
    report.row("memory", format!("idle after that restart on {rows} recordings"), size(idle), "");
    report.metric("startup.empty_seconds", first_start.as_secs_f64());
    report.metric("startup.seeded_seconds", starts.iter().map(Duration::as_secs_f64).collect::<Vec<_>>());
    report.metric("startup.version_exec_seconds", median(&execs).as_secs_f64());
    report.metric("memory.idle_after_restart_bytes", idle);
}

fn exec_version() -> Duration {
    let started = Instant::now();
    let status = Command::new(BINARY)
        .arg("--version")
        .env_clear()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("running {BINARY} --version: {e}"));
    assert!(status.success(), "{BINARY} --version failed: {status}");
    started.elapsed()
}
