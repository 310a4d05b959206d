//! Listing: the first page and a page deep down (reached by walking real cursors), for users
//! holding few to a million recordings and for a small user whose rows are interleaved with a
//! million of another user's; beside the same keyset query run in-process on the database.
//! The rows are seeded straight into SQLite (they need no files); the users are real accounts.

use crate::client::{Account, Client};
use crate::report::Report;
use crate::stats::{Samples, count, ms};
use crate::{Bench, data, progress};
use rand::{Rng, RngCore, SeedableRng};
use rusqlite::{Connection, OpenFlags, params};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Target: a page for the biggest user costs at most this many times the same page for the
/// smallest (p50).
const LARGE_VS_SMALL: f64 = 2.0;
/// Recordings per page, as the apps ask.
const PAGE: usize = 50;
/// Page size used to walk down to the deep cursor.
const WALK_PAGE: usize = 200;
/// Seeded rows are spread over the three years before the run.
const SPAN_MS: u64 = 3 * 365 * 86_400_000;

/// The list endpoint's keyset query (newest first, after a cursor), for the in-process reference.
const LIST_SQL: &str = "SELECT id, name, content_type, size, sha256, duration_ms, recorded_at, created_at, \
                        deleted_at, purge_at FROM recordings WHERE user_id = ?1 AND deleted_at IS NULL AND id < ?2 \
                        ORDER BY id DESC LIMIT ?3";

/// The first page and the deep page of one user.
struct Figures {
    first: Samples,
    deep: Samples,
}

/// Seeds and measures every population; returns the smallest user (for the login phase).
pub fn run(bench: &Bench, report: &mut Report) -> Account {
    let plan = &bench.plan;
    let db = bench.setup.db_path();
    let small = bench.signup("list-small");
    let medium = bench.signup("list-medium");
    let large = bench.signup("list-large");
    let among = bench.signup("list-among");

    report.note(format!(
        "list: a user's recordings (\"among N others\": rows interleaved in time with another user's N), \
         seeded straight into SQLite; each figure is {} sequential requests (limit={PAGE}) on one connection; \
         \"SQL alone\" is the same keyset query run in-process on the same database",
        plan.list_samples
    ));
    seed(&db, &[(&small, plan.list_small)], report);
    let small_figures = measure(bench, &small, plan.list_small, "", report);
    seed(&db, &[(&medium, plan.list_medium)], report);
    measure(bench, &medium, plan.list_medium, "", report);
    seed(&db, &[(&large, plan.list_large), (&among, plan.list_small)], report);
    let large_figures = measure(bench, &large, plan.list_large, "", report);
    let others = format!(" among {} others", count(plan.list_large));
    let among_figures = measure(bench, &among, plan.list_small, &others, report);
    usage_totals(bench, &large, report);

    let compare = |report: &mut Report, what: String, big: &Samples, base: &Samples| {
        let factor = big.p50().as_secs_f64() / base.p50().as_secs_f64().max(1e-9);
        report.target(
            "list",
            what,
            format!("{factor:.2}x ({} vs {})", ms(big.p50()), ms(base.p50())),
            format!("target <= {LARGE_VS_SMALL}x"),
            factor <= LARGE_VS_SMALL,
        );
    };
    let (n_small, n_large) = (count(plan.list_small), count(plan.list_large));
    let vs = format!("{n_large} vs {n_small}");
    compare(report, format!("first page p50, {vs}"), &large_figures.first, &small_figures.first);
    compare(report, format!("deep page p50, {vs}"), &large_figures.deep, &small_figures.deep);
    let vs = format!("{n_small} among {n_large} others vs alone");
    compare(report, format!("first page p50, {vs}"), &among_figures.first, &small_figures.first);
    compare(report, format!("deep page p50, {vs}"), &among_figures.deep, &small_figures.deep);
    small
}

/// Target: `/me` (usage totals) for the largest user costs at most this many times the same for
/// a user with a handful of recordings (p50).
const ME_LARGE_VS_SMALL: f64 = 2.0;

/// `GET /api/v1/me` for a user with a few recordings and for the largest one: the usage totals
/// the UI asks for on every load must not cost more with more recordings.
fn usage_totals(bench: &Bench, large: &Account, report: &mut Report) {
    let plan = &bench.plan;
    let few = bench.signup("me-few");
    seed(&bench.setup.db_path(), &[(&few, plan.me_small)], report);
    let time = |account: &Account, held: usize| {
        let client = bench.client(account);
        let (usage, _) = client.me();
        assert_eq!(usage["recordings"].as_u64(), Some(held as u64), "the usage totals count every recording");
        for _ in 0..20 {
            client.me();
        }
        timed(plan.list_samples, || client.me().1)
    };
    progress(&format!("list: /me for {} and {} recordings", count(plan.me_small), count(plan.list_large)));
    let small = time(&few, plan.me_small);
    let big = time(large, plan.list_large);
    let factor = big.p50().as_secs_f64() / small.p50().as_secs_f64().max(1e-9);
    report.row("list", format!("/me (usage totals), {} recordings", count(plan.me_small)), small.summary(), "");
    report.target(
        "list",
        format!("/me (usage totals), {} recordings", count(plan.list_large)),
        format!("{}; p50 {factor:.2}x", big.summary()),
        format!("target p50 <= {ME_LARGE_VS_SMALL}x of {}", count(plan.me_small)),
        factor <= ME_LARGE_VS_SMALL,
    );
    report.metric("list.me_small", small.to_json());
    report.metric("list.me_large", big.to_json());
}

/// Inserts the owners' rows in one transaction, interleaved in time order as if they had been
/// uploaded side by side over the same three years (UUIDv7 ids of increasing timestamps).
fn seed(db: &Path, owners: &[(&Account, usize)], report: &mut Report) {
    let total: usize = owners.iter().map(|(_, n)| n).sum();
    let who: Vec<String> = owners.iter().map(|(a, n)| format!("{} for {}", count(*n), a.username)).collect();
    progress(&format!("seeding {} rows in SQLite ({})", count(total), who.join(", ")));
    let started = Instant::now();
    let mut conn = Connection::open(db).unwrap_or_else(|e| panic!("opening {}: {e}", db.display()));
    conn.busy_timeout(Duration::from_secs(30)).expect("setting the busy timeout");
    conn.pragma_update(None, "cache_size", -262_144).expect("setting the cache size");
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let first_ms = now_ms - SPAN_MS - 86_400_000;
    let mut rng = rand::rngs::StdRng::seed_from_u64(total as u64);
    let tx = conn.transaction().expect("starting the seeding transaction");
    {
        // An explicit column list: later migrations may add (nullable) columns.
        let mut insert = tx
            .prepare(
                "INSERT INTO recordings (id, user_id, name, content_type, size, sha256, duration_ms, recorded_at, \
                 created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .expect("preparing the seeding insert");
        let mut emitted = vec![0usize; owners.len()];
        for i in 0..total {
            // The owner furthest behind its share so far: each owner's rows spread evenly.
            let behind = |k: usize| (owners[k].1 * (i + 1)) as i128 - (emitted[k] * total) as i128;
            let k = (0..owners.len()).max_by_key(|&k| behind(k)).expect("at least one owner");
            emitted[k] += 1;
            let at_ms = first_ms + (i as u64 * SPAN_MS / total as u64);
            let size: i64 = rng.gen_range(20_000..5_000_000);
            let sha256: String = (0..4).map(|_| format!("{:016x}", rng.next_u64())).collect();
            insert
                .execute(params![
                    data::uuid_v7(at_ms, &mut rng),
                    owners[k].0.id,
                    format!("Memo {}.m4a", emitted[k]),
                    "audio/mp4",
                    size,
                    sha256,
                    size / 4,
                    at_ms as i64 - 1_000,
                    at_ms as i64,
                ])
                .expect("inserting a seeded row");
        }
    }
    tx.commit().expect("committing the seeded rows");
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).expect("checkpointing the WAL");
    let elapsed = started.elapsed();
    let per_s = (total as f64 / elapsed.as_secs_f64()) as usize;
    progress(&format!("seeded in {} ({} rows/s)", ms(elapsed), count(per_s)));
    report.metric(&format!("list.seed_seconds.{total}_rows"), elapsed.as_secs_f64());
}

fn measure(bench: &Bench, account: &Account, held: usize, others: &str, report: &mut Report) -> Figures {
    let samples = bench.plan.list_samples;
    let label = format!("{}{others}", count(held));
    let client = bench.client(account);
    progress(&format!("list: {label}: first page x {samples}"));
    for _ in 0..20 {
        client.list(PAGE, None);
    }
    let first = timed(samples, || {
        let (page, elapsed) = client.list(PAGE, None);
        assert_eq!(page.len, PAGE.min(held), "length of the first page");
        elapsed
    });

    let depth = bench.plan.list_depth.min(held.saturating_sub(PAGE));
    progress(&format!("list: {label}: walking {} recordings deep, then that page x {samples}", count(depth)));
    let cursor = walk(&client, depth);
    let deep = timed(samples, || {
        let (page, elapsed) = client.list(PAGE, cursor.as_deref());
        assert_eq!(page.len, PAGE, "length of the deep page");
        elapsed
    });

    let (sql_first, sql_deep) = sql_reference(&bench.setup.db_path(), &account.id, depth, samples);
    let last = if depth + PAGE == held { " (the last)" } else { "" };
    let sql = |s: &Samples| format!("SQL alone: {}", s.summary());
    report.row("list", format!("{label}: first page"), first.summary(), sql(&sql_first));
    report.row("list", format!("{label}: page {} deep{last}", count(depth)), deep.summary(), sql(&sql_deep));
    let key = format!("list.{held}{}", if others.is_empty() { "" } else { "_among_others" });
    report.metric(&format!("{key}.first_page"), first.to_json());
    report.metric(&format!("{key}.deep_page"), deep.to_json());
    report.metric(&format!("{key}.deep_page_position"), depth);
    report.metric(&format!("{key}.first_page_sql"), sql_first.to_json());
    report.metric(&format!("{key}.deep_page_sql"), sql_deep.to_json());
    Figures { first, deep }
}

/// Follows `next_cursor` with real requests until `depth` recordings have been passed; returns
/// the cursor of the page that starts there (none for depth 0: the first page).
fn walk(client: &Client, depth: usize) -> Option<String> {
    let mut cursor: Option<String> = None;
    let mut passed = 0;
    while passed < depth {
        let limit = WALK_PAGE.min(depth - passed);
        let (page, _) = client.list(limit, cursor.as_deref());
        assert_eq!(page.len, limit, "length of a page while walking");
        passed += page.len;
        cursor = Some(page.next_cursor.expect("more pages while walking"));
    }
    cursor
}

/// The list query run in-process on the same database: the first page, and the page after the
/// `depth` newest recordings.
fn sql_reference(db: &Path, user_id: &str, depth: usize, samples: usize) -> (Samples, Samples) {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|e| panic!("opening {} read-only: {e}", db.display()));
    conn.busy_timeout(Duration::from_secs(30)).expect("setting the busy timeout");
    // "~" sorts after every id: the first page.
    let first_after = "~".to_string();
    let after_id: String = match depth {
        0 => first_after.clone(),
        _ => conn
            .query_row(
                "SELECT id FROM recordings WHERE user_id = ?1 AND deleted_at IS NULL ORDER BY id DESC LIMIT 1 OFFSET ?2",
                params![user_id, depth as i64 - 1],
                |r| r.get(0),
            )
            .expect("finding the id at the deep position"),
    };
    let page = |after: &str| {
        let mut stmt = conn.prepare_cached(LIST_SQL).expect("preparing the list query");
        let started = Instant::now();
        let mut rows = stmt.query(params![user_id, after, PAGE as i64 + 1]).expect("running the list query");
        let mut n = 0;
        while let Some(row) = rows.next().expect("reading a row") {
            for column in 0..10 {
                let _value: rusqlite::types::Value = row.get(column).expect("reading a column");
            }
            n += 1;
        }
        assert!(n > 0, "the in-process list query found rows");
        started.elapsed()
    };
    for _ in 0..20 {
        page(&first_after);
    }
    let first = timed(samples, || page(&first_after));
    let deep = timed(samples, || page(&after_id));
    (first, deep)
}

fn timed(n: usize, mut sample: impl FnMut() -> Duration) -> Samples {
    Samples::new((0..n).map(|_| sample()).collect())
}
