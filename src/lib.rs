//! recorder: a self-hosted home for voice recordings. `rocket()` assembles the server; the
//! binary in `main.rs` parses the command line and launches it.

#![forbid(unsafe_code)]

pub mod analysis;
pub mod archive;
pub mod audio;
pub mod auth;
pub mod backup;
pub mod blobs;
pub mod changes;
pub mod check;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod inflight;
pub mod ingest;
pub mod jobs;
pub mod logger;
pub mod lostfound;
pub mod maintenance;
pub mod marker;
pub mod metrics;
pub mod migrate;
pub mod process;
pub mod ranges;
pub mod recordings;
pub mod recover;
pub mod removal;
pub mod routes;
pub mod s3;
pub mod shares;
pub mod snapshots;
pub mod state;
pub mod storage;
pub mod transcription;
pub mod uploads;
pub mod users;
pub mod webdav;

use rocket::config::{Ident, LogLevel, Shutdown};
use rocket::fairing::AdHoc;
use rocket::{Build, Rocket, catchers};
use std::time::Instant;

pub use clock::Clock;
pub use config::Config;
pub use state::AppState;

/// The signed-in user of a request, for the request log.
#[derive(Default)]
pub struct RequestUser(pub Option<String>);

struct RequestStart(Instant);

/// Assembles the server from opened state: one place for routes, catchers and fairings.
pub fn rocket(state: AppState) -> Rocket<Build> {
    let c = &state.config;
    let rocket_config = rocket::Config {
        address: c.address,
        port: c.port,
        ip_header: c.client_ip_header.clone().map(Into::into),
        log_level: LogLevel::Off,
        cli_colors: false,
        ident: Ident::try_new("recorder").unwrap_or_default(),
        temp_dir: state.storage.tmp_dir().into(),
        shutdown: Shutdown { ctrlc: true, grace: c.shutdown_grace_secs, mercy: 5, ..Shutdown::default() },
        ..rocket::Config::release_default()
    };
    let compat = if c.compat_enabled { routes::compat::routes() } else { Vec::new() };
    rocket::custom(rocket_config)
        .mount("/", rocket::routes![routes::server::healthz, routes::server::metrics])
        .mount("/", compat)
        .mount("/api/v1", routes::api())
        .mount("/", routes::shares::public_routes())
        .mount("/", routes::ui::routes())
        .register("/", catchers![error::json_catcher])
        .attach(AdHoc::on_request("request start", |req, _| {
            Box::pin(async move {
                req.local_cache(|| RequestStart(Instant::now()));
            })
        }))
        .attach(AdHoc::on_response("headers and log", |req, res| {
            Box::pin(async move {
                res.set_raw_header("X-Content-Type-Options", "nosniff");
                // tus: every answer to a tus request says which version it speaks.
                if req.headers().contains("Tus-Resumable") && req.uri().path().starts_with("/api/v1/uploads") {
                    res.set_raw_header("Tus-Resumable", routes::uploads::TUS_VERSION);
                }
                res.set_raw_header("Referrer-Policy", "same-origin");
                res.set_raw_header("X-Frame-Options", "DENY");
                if !res.headers().contains("Content-Security-Policy") {
                    res.set_raw_header("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'");
                }
                let started = req.local_cache(|| RequestStart(Instant::now())).0;
                if let Some(state) = req.rocket().state::<AppState>() {
                    let route = req.route().map(|r| r.uri.path());
                    state.metrics.request(req.method().as_str(), route, res.status().code, started.elapsed());
                }
                let user = req.local_cache(RequestUser::default).0.as_deref().unwrap_or("-");
                let bytes = res.headers().get_one("Content-Length").unwrap_or("-");
                // The path only: queries may carry names, and nothing secret is ever logged.
                log::info!(
                    target: "recorder::http",
                    "{} {} {} {}B {}ms user={}",
                    req.method(),
                    logger::loggable_path(req.uri().path().as_str()),
                    res.status().code,
                    bytes,
                    started.elapsed().as_millis(),
                    user
                );
            })
        }))
        .attach(AdHoc::on_liftoff("maintenance", |rocket| {
            Box::pin(async move {
                let config = rocket.config();
                logger::announce(config.address, config.port);
                if let Some(state) = rocket.state::<AppState>() {
                    let (db, storage, uploads, clock, started) = (
                        state.db.clone(),
                        state.storage.clone(),
                        state.uploads.clone(),
                        state.clock.clone(),
                        state.started_ms,
                    );
                    if state.config.analysis_enabled {
                        let settings = jobs::Settings {
                            seconds_per_hour: state.config.analysis_seconds_per_hour,
                            transcribe: state.config.transcription_model.is_some(),
                        };
                        let changes = state.changes.clone();
                        if let Err(e) = state.jobs.start(db.clone(), storage.clone(), settings, clock.clone(), changes)
                        {
                            log::error!("cannot start the background job worker: {e}");
                        }
                    }
                    // The feed keeps at least as long as the trash, and a day more.
                    let days = i64::from(state.config.retention_days.max(1)) + 1;
                    let background = maintenance::Background {
                        uploads,
                        changes: state.changes.clone(),
                        clock,
                        started_ms: started,
                        changes_keep_ms: days * 86_400_000,
                        lost_files: state.metrics.lost_files.clone(),
                    };
                    // An analysed recording is queued for transcription: its worker hears of it.
                    state.jobs.feeds(state.transcripts.clone());
                    #[cfg(feature = "transcription")]
                    if state.config.analysis_enabled
                        && let Some(settings) = transcription::Settings::from_config(&state.config)
                    {
                        let (db, storage, clock, changes) =
                            (db.clone(), storage.clone(), state.clock.clone(), state.changes.clone());
                        if let Err(e) = transcription::worker::start(
                            state.transcripts.clone(),
                            db,
                            storage,
                            settings,
                            clock,
                            changes,
                        ) {
                            log::error!("cannot start the transcription worker: {e}");
                        }
                    }
                    tokio::spawn(maintenance::run(db, storage, background, rocket.shutdown()));
                    webdav::start(state, rocket.shutdown());
                }
            })
        }))
        .attach(AdHoc::on_shutdown("background jobs", |rocket| {
            Box::pin(async move {
                if let Some(state) = rocket.state::<AppState>() {
                    state.jobs.stop();
                    state.transcripts.stop();
                }
            })
        }))
        .manage(state)
}
