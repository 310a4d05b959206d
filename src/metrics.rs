//! `GET /metrics`: Prometheus (OpenMetrics) text for dashboards. Counters and histograms are
//! updated as requests finish; the stored totals and the free disk space are read when scraped.

use crate::db::Db;
use crate::error::Error;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::path::PathBuf;
use std::time::Duration;

/// One series of the request counter. `route` is the matched route's pattern (bounded: never a
/// raw path, which would carry ids and names), or `unmatched`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

/// One series of the job gauges and counters: a state (`queued`, `running`, `failed`) or an
/// outcome (`done`, `failed`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    kind: String,
    state: String,
}

/// The server's metrics.
pub struct Metrics {
    jobs: Family<JobLabels, Gauge>,
    jobs_finished: Family<JobLabels, Gauge>,
    event_streams: Gauge,
    /// Set by the startup sweep (see [`crate::maintenance::Unknown`]).
    pub lost_files: Gauge,
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    upload_bytes: Counter,
    upload_seconds: Histogram,
    list_seconds: Histogram,
    recordings: Gauge,
    stored_bytes: Gauge,
    trash_recordings: Gauge,
    trash_bytes: Gauge,
    users: Gauge,
    pending_unlinks: Gauge,
    disk_free: Gauge,
    resident_bytes: Gauge,
    threads: Gauge,
}

/// The routes whose latency has a histogram of its own.
const UPLOAD_ROUTES: &[(&str, &str)] = &[("POST", "/api/v1/recordings"), ("PUT", "/upload/record/<name>")];
const LIST_ROUTE: (&str, &str) = ("GET", "/api/v1/recordings");

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("recorder");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered, by route and status", requests.clone());
        let upload_bytes = Counter::default();
        registry.register_with_unit(
            "upload",
            "Bytes of recordings stored by uploads",
            Unit::Bytes,
            upload_bytes.clone(),
        );
        // 1 ms to about 65 s.
        let upload_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 17));
        registry.register_with_unit(
            "upload_duration",
            "Time to take one upload, from its first byte to the answer",
            Unit::Seconds,
            upload_seconds.clone(),
        );
        // 0.1 ms to about 3 s.
        let list_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 15));
        registry.register_with_unit(
            "list_duration",
            "Time to answer one page of the recordings list",
            Unit::Seconds,
            list_seconds.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str, unit: Option<Unit>| {
            let gauge = Gauge::default();
            match unit {
                Some(unit) => registry.register_with_unit(name, help, unit, gauge.clone()),
                None => registry.register(name, help, gauge.clone()),
            }
            gauge
        };
        let recordings = gauge(&mut registry, "recordings", "Recordings stored, not in the trash", None);
        let stored_bytes =
            gauge(&mut registry, "recordings", "Bytes of recordings not in the trash", Some(Unit::Bytes));
        let trash_recordings = gauge(&mut registry, "trash_recordings", "Recordings in the trash", None);
        let trash_bytes = gauge(&mut registry, "trash", "Bytes of recordings in the trash", Some(Unit::Bytes));
        let users = gauge(&mut registry, "users", "Accounts", None);
        let pending_unlinks =
            gauge(&mut registry, "pending_unlinks", "Files of deleted recordings not yet removed from disk", None);
        let disk_free =
            gauge(&mut registry, "disk_free", "Free space on the data directory's file system", Some(Unit::Bytes));
        let resident_bytes =
            gauge(&mut registry, "process_resident", "Resident memory of the server", Some(Unit::Bytes));
        let threads = gauge(&mut registry, "process_threads", "Threads of the server", None);
        let jobs = Family::<JobLabels, Gauge>::default();
        registry.register("jobs", "Background jobs (analysis) by state: queued, running, failed", jobs.clone());
        let jobs_finished = Family::<JobLabels, Gauge>::default();
        registry.register(
            "jobs_finished",
            "Background jobs finished since the server started, by outcome: done, failed",
            jobs_finished.clone(),
        );
        let event_streams = gauge(&mut registry, "event_streams", "Live event streams (GET /api/v1/events)", None);
        let lost_files = gauge(
            &mut registry,
            "lost_files",
            "Stored files and objects no recording refers to, kept for `recorder check --recover` (lost+found on disk, \
             unknown objects in the store), as the startup sweep found them",
            None,
        );
        Metrics {
            jobs,
            jobs_finished,
            event_streams,
            lost_files,
            registry,
            requests,
            upload_bytes,
            upload_seconds,
            list_seconds,
            recordings,
            stored_bytes,
            trash_recordings,
            trash_bytes,
            users,
            pending_unlinks,
            disk_free,
            resident_bytes,
            threads,
        }
    }

    /// Counts an answered request; `route` is the matched route's path pattern, if any.
    pub fn request(&self, method: &str, route: Option<&str>, status: u16, elapsed: Duration) {
        let labels =
            RequestLabels { method: method.to_string(), route: route.unwrap_or("unmatched").to_string(), status };
        self.requests.get_or_create(&labels).inc();
        let Some(route) = route else { return };
        if UPLOAD_ROUTES.contains(&(method, route)) {
            self.upload_seconds.observe(elapsed.as_secs_f64());
        } else if (method, route) == LIST_ROUTE {
            self.list_seconds.observe(elapsed.as_secs_f64());
        }
    }

    /// Counts the bytes of a stored upload.
    pub fn uploaded(&self, bytes: u64) {
        self.upload_bytes.inc_by(bytes);
    }

    /// Reads the stored totals and the free space (on the blocking pool), then encodes every
    /// metric as OpenMetrics text.
    pub async fn scrape(
        &self,
        db: &Db,
        data_dir: PathBuf,
        finished: (u64, u64),
        event_streams: usize,
    ) -> Result<String, Error> {
        self.event_streams.set(i64::try_from(event_streams).unwrap_or(i64::MAX));
        let (totals, free, (resident, threads), jobs) = db
            .run(move |conn| {
                let totals: [i64; 6] = conn.query_row(
                    "SELECT coalesce(sum(recordings), 0), coalesce(sum(bytes), 0), coalesce(sum(trash_recordings), 0),
                            coalesce(sum(trash_bytes), 0), (SELECT count(*) FROM users),
                            (SELECT count(*) FROM pending_unlinks)
                     FROM usage",
                    [],
                    |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?]),
                )?;
                let free = fs4::available_space(&data_dir).map_err(|e| Error::internal("free disk space", e))?;
                Ok((totals, free, process_status(), crate::jobs::counts(conn)?))
            })
            .await?;
        let gauges = [
            &self.recordings,
            &self.stored_bytes,
            &self.trash_recordings,
            &self.trash_bytes,
            &self.users,
            &self.pending_unlinks,
        ];
        for (gauge, value) in gauges.into_iter().zip(totals) {
            gauge.set(value);
        }
        self.disk_free.set(i64::try_from(free).unwrap_or(i64::MAX));
        self.resident_bytes.set(resident);
        self.threads.set(threads);
        let series = |state: &str| JobLabels { kind: crate::jobs::ANALYSIS.to_string(), state: state.to_string() };
        for (state, n) in [("queued", jobs.queued), ("running", jobs.running), ("failed", jobs.failed)] {
            self.jobs.get_or_create(&series(state)).set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        for (outcome, n) in [("done", finished.0), ("failed", finished.1)] {
            self.jobs_finished.get_or_create(&series(outcome)).set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .map_err(|e| Error::internal("encoding metrics", e))?;
        Ok(text)
    }
}

/// Resident bytes and threads of this process, from `/proc/self/status` (zeros elsewhere).
fn process_status() -> (i64, i64) {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else { return (0, 0) };
    let field = |name: &str| -> i64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:") * 1024, field("Threads:"))
}
