//! Logins: one at a time, beside Argon2 verifying the same stored hash in-process; and the list
//! while many clients log in at once, beside the same list on an idle server (password hashing
//! must not starve other requests).

use crate::client::{Account, Client, PASSWORD};
use crate::report::Report;
use crate::stats::{Samples, count};
use crate::{Bench, progress};
use argon2::{Argon2, PasswordHash, PasswordVerifier};
use rusqlite::{Connection, OpenFlags};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Target: list p99 during the login storm at most this many times the idle p99.
const STORM_VS_IDLE: f64 = 3.0;
/// Recordings per list page.
const PAGE: usize = 50;

/// Successful logins only: the throttle counts failures, so one address may log in at any rate.
pub fn run(bench: &Bench, lister: &Account, report: &mut Report) {
    let plan = &bench.plan;
    let user = bench.signup("login-storm");
    let client = Client::new(&bench.server.base);
    progress(&format!("login: {} logins one after another", plan.logins));
    client.login(&user.username);
    let logins = Samples::new((0..plan.logins).map(|_| client.login(&user.username)).collect());
    let argon2 = verify_in_process(&bench.setup.db_path(), &user, plan.logins);
    report.row(
        "login",
        format!("one login (n = {})", plan.logins),
        logins.summary(),
        format!("Argon2 verify in-process: {}", argon2.summary()),
    );
    report.metric("login.one", logins.to_json());
    report.metric("login.argon2_verify", argon2.to_json());

    let samples = plan.storm_samples;
    let lists = bench.client(lister);
    progress(&format!("login: list first page x {samples} on an idle server"));
    for _ in 0..20 {
        lists.list(PAGE, None);
    }
    let idle = Samples::new((0..samples).map(|_| lists.list(PAGE, None).1).collect());

    let clients = plan.storm_clients;
    progress(&format!("login: list first page x {samples} while {clients} clients log in"));
    let stop = AtomicBool::new(false);
    let storm_logins = Mutex::new(Vec::new());
    let storm_started = Instant::now();
    let (during, storm_time) = thread::scope(|scope| {
        for _ in 0..clients {
            scope.spawn(|| {
                let client = Client::new(&bench.server.base);
                let mut mine = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    mine.push(client.login(&user.username));
                }
                storm_logins.lock().unwrap_or_else(|p| p.into_inner()).extend(mine);
            });
        }
        // Let the queue of password checks build up before measuring.
        thread::sleep(Duration::from_millis(500));
        let during = Samples::new((0..samples).map(|_| lists.list(PAGE, None).1).collect());
        stop.store(true, Ordering::Relaxed);
        (during, storm_started.elapsed())
    });
    let storm_logins = Samples::new(storm_logins.into_inner().unwrap_or_else(|p| p.into_inner()));

    report.row("login", format!("list first page, idle server (n = {samples})"), idle.summary(), "");
    let factor = during.p99().as_secs_f64() / idle.p99().as_secs_f64().max(1e-9);
    report.target(
        "login",
        format!("list first page, {clients} clients logging in (n = {samples})"),
        format!("{}; p99 {factor:.2}x idle", during.summary()),
        format!("target p99 <= {STORM_VS_IDLE}x idle"),
        factor <= STORM_VS_IDLE,
    );
    report.row(
        "login",
        format!("logins during that ({} in {:.1} s)", count(storm_logins.len()), storm_time.as_secs_f64()),
        storm_logins.summary(),
        "",
    );
    // The references: the same list beside loops in the idle scheduling class, one per core (as
    // many as the server's hashing threads), in this process: plain busy loops (the scheduler's
    // share of the storm's tail), then loops that sweep a 19 MiB buffer as Argon2 does (the
    // share of the caches it evicts). No server code can remove either.
    let cores = thread::available_parallelism().map_or(1, |n| n.get()).min(4);
    for (label, key, buffer) in [
        ("busy loops", "list_beside_idle_busy_loops", 0usize),
        ("19 MiB memory sweeps", "list_beside_idle_memory_sweeps", 19 << 20),
    ] {
        progress(&format!("login: list first page x {samples} beside {cores} idle-priority {label}"));
        let spin = AtomicBool::new(false);
        let beside = thread::scope(|scope| {
            for _ in 0..cores {
                scope.spawn(|| {
                    idle_priority();
                    let mut memory = vec![1u64; buffer / 8];
                    let mut x = 0u64;
                    while !spin.load(Ordering::Relaxed) {
                        if memory.is_empty() {
                            x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
                        } else {
                            for word in memory.iter_mut().step_by(8) {
                                *word = word.wrapping_add(x);
                            }
                            x = std::hint::black_box(x + 1);
                        }
                    }
                });
            }
            thread::sleep(Duration::from_millis(200));
            let beside = Samples::new((0..samples).map(|_| lists.list(PAGE, None).1).collect());
            spin.store(true, Ordering::Relaxed);
            beside
        });
        let factor = beside.p99().as_secs_f64() / idle.p99().as_secs_f64().max(1e-9);
        report.row(
            "login",
            format!("list first page beside {cores} idle-priority {label}, no logins (n = {samples})"),
            format!("{}; p99 {factor:.2}x idle", beside.summary()),
            "",
        );
        report.metric(&format!("login.{key}"), beside.to_json());
    }
    report.metric("login.list_idle", idle.to_json());
    report.metric("login.list_during_storm", during.to_json());
    report.metric("login.storm_logins", storm_logins.to_json());
}

/// Moves the calling thread to SCHED_IDLE, as the server's password hashing threads are.
fn idle_priority() {
    use thread_priority::unix::{
        NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy, thread_native_id,
    };
    let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    set_thread_priority_and_policy(thread_native_id(), thread_priority::ThreadPriority::Min, idle)
        .expect("moving a busy loop to the idle scheduling class");
}

/// Argon2 verifying the account's stored hash (its own parameters) in this process.
fn verify_in_process(db: &std::path::Path, user: &Account, n: usize) -> Samples {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|e| panic!("opening {} read-only: {e}", db.display()));
    let stored: String = conn
        .query_row("SELECT password_hash FROM users WHERE id = ?1", [&user.id], |r| r.get(0))
        .expect("reading the stored password hash");
    let hash = PasswordHash::new(&stored).expect("the stored hash is a PHC string");
    let verify = || {
        let started = Instant::now();
        assert!(Argon2::default().verify_password(PASSWORD.as_bytes(), &hash).is_ok(), "the password verifies");
        started.elapsed()
    };
    Samples::new((0..n).map(|_| verify()).collect())
}
