//! recorder: a self-hosted home for voice recordings.
//!
//! This file is the composition root: [`Server::open`] builds the core ([`AppState`]), finishes
//! what a crash interrupted and binds the second listener; [`rocket`] puts the HTTP face over
//! the core and, at liftoff, starts the background work and the WebDAV face. The binary in
//! `main.rs` parses the command line and launches it.

#![forbid(unsafe_code)]

pub mod analysis;
pub mod answer;
pub mod archive;
pub mod audio;
pub mod auth;
pub mod backup;
pub mod body;
pub mod bookmarks;
pub mod changes;
pub mod check;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod http;
pub mod inflight;
pub mod ingest;
pub mod jobs;
pub mod logger;
pub mod lostfound;
pub mod maintenance;
pub mod marker;
pub mod metrics;
pub mod migrate;
pub mod opus;
pub mod process;
pub mod ranges;
pub mod recordings;
pub mod recover;
pub mod removal;
pub mod shares;
pub mod snapshots;
pub mod state;
pub mod storage;
pub mod tls;
pub mod transcription;
pub mod uploads;
pub mod users;
pub mod webdav;

use rocket::fairing::AdHoc;
use rocket::{Build, Rocket};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

pub use clock::Clock;
pub use config::Config;
pub use state::{AppState, StartError};

/// The server, opened and not yet launched: the core, WebDAV's ports bound when it is on, and
/// the HTTPS port checked free when TLS is on.
pub struct Server {
    pub state: AppState,
    webdav: Option<Arc<webdav::Listener>>,
    webdav_tls: Option<Arc<webdav::Listener>>,
    https: Option<SocketAddr>,
    stopping: Stopping,
}

/// What a shutdown waits for besides the plain listener: WebDAV's requests and the HTTPS
/// instance, each with the same grace time.
#[derive(Clone, Default)]
pub struct Stopping {
    webdav: Vec<Arc<webdav::Listener>>,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Stopping {
    /// Waits until they have stopped (after the server's shutdown).
    pub async fn wait(&self) {
        for listener in &self.webdav {
            webdav::stopped(listener).await;
        }
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in tasks {
            let _ = task.await;
        }
    }
}

impl Server {
    /// Opens the core, finishes what a crash interrupted (queued deletes, `tmp/`, uploads cut
    /// back to their durable offsets), checks a configured model loads, and binds WebDAV's
    /// port, so each of these stops startup with one clear line. The slower sweeps run in the
    /// background after launch.
    pub fn open(config: Config, clock: Clock) -> Result<Server, StartError> {
        let state = AppState::open(config, clock)?;
        let recovery = |e: error::Error| StartError::Recovery(e.to_string());
        maintenance::recover(&state.db, &state.storage).map_err(recovery)?;
        let config = &state.config;
        // A configured model must load now: a clear error at startup, not a failure per job.
        transcription::check_model(&config.transcription).map_err(StartError::Model)?;
        {
            let mut conn = state.db.conn().map_err(recovery)?;
            // Transcription runs after analysis: with analysis off it is off too.
            let marked = if config.transcription.model.is_some() && config.analysis.enabled {
                transcription::turned_on(&conn)
            } else {
                transcription::turned_off(&mut conn)
            };
            marked.map_err(recovery)?;
        }
        let webdav = if config.webdav.enabled {
            let addr = SocketAddr::new(config.server.address, config.webdav.port);
            Some(Arc::new(webdav::Listener::bind(addr).map_err(|source| StartError::WebDav { addr, source })?))
        } else {
            None
        };
        let listen = |what, key, port| {
            let addr = SocketAddr::new(config.server.address, port);
            webdav::Listener::bind(addr).map_err(|source| StartError::Listen { what, key, addr, source })
        };
        let (mut https, mut webdav_tls) = (None, None);
        if state.tls.is_some() {
            // Rocket binds the port itself at launch: it is tried here, so a taken port stops
            // startup with one line, and port 0 becomes a fixed one the relaunches keep.
            let addr = listen("HTTPS", "tls.port", config.tls.port)?.addr();
            if let Some(certificates) = &state.tls {
                certificates.set_port(addr.port());
            }
            https = Some(addr);
            if config.webdav.enabled {
                webdav_tls = Some(Arc::new(listen("WebDAV over TLS", "webdav.tls_port", config.webdav.tls_port)?));
            }
        }
        let stopping =
            Stopping { webdav: webdav.iter().chain(webdav_tls.iter()).cloned().collect(), tasks: Arc::default() };
        Ok(Server { state, webdav, webdav_tls, https, stopping })
    }

    /// Where HTTPS is served, when TLS is on.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https
    }

    /// Where WebDAV over TLS is served, when both are on.
    pub fn webdav_tls_addr(&self) -> Option<SocketAddr> {
        self.webdav_tls.as_ref().map(|l| l.addr())
    }

    /// Where WebDAV is served, when it is on.
    pub fn webdav_addr(&self) -> Option<SocketAddr> {
        self.webdav.as_ref().map(|l| l.addr())
    }

    /// What to wait for after the server's shutdown.
    pub fn stopping(&self) -> Stopping {
        self.stopping.clone()
    }
}

/// The HTTP face over an opened server; at liftoff the background work and WebDAV start, and
/// at shutdown the job workers stop.
pub fn rocket(server: Server) -> Rocket<Build> {
    let Server { state, webdav, webdav_tls, https, stopping } = server;
    let background = state.clone();
    let webdav = Mutex::new((webdav, webdav_tls));
    http::rocket(state)
        .attach(AdHoc::on_liftoff("background work", move |rocket| {
            Box::pin(async move {
                logger::announce(rocket.config().address, rocket.config().port);
                let (plain, tls) = std::mem::take(&mut *webdav.lock().unwrap_or_else(|p| p.into_inner()));
                let listeners = Listeners { webdav: plain, webdav_tls: tls, https, stopping: stopping.clone() };
                start_background(&background, listeners, rocket.shutdown());
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
}

/// The listeners started at liftoff besides the plain HTTP one.
struct Listeners {
    webdav: Option<Arc<webdav::Listener>>,
    webdav_tls: Option<Arc<webdav::Listener>>,
    https: Option<SocketAddr>,
    stopping: Stopping,
}

/// Starts what runs beside the requests: the job workers, the maintenance loop, WebDAV, and
/// HTTPS with the loop that keeps its certificate current.
fn start_background(
    state: &AppState,
    listeners: Listeners,
    shutdown: impl std::future::Future<Output = ()> + Clone + Send + 'static,
) {
    let (db, storage, clock) = (state.db.clone(), state.storage.clone(), state.clock.clone());
    if state.config.analysis.enabled {
        let settings = jobs::Settings {
            seconds_per_hour: state.config.analysis.seconds_per_hour,
            transcribe: state.config.transcription.model.is_some(),
        };
        let analysis = jobs::Analysis { db: db.clone(), storage: storage.clone(), settings, clock: clock.clone() };
        if let Err(e) = state.jobs.start(analysis, db.clone(), clock.clone(), state.changes.clone()) {
            log::error!("cannot start the analysis worker: {e}");
        }
    }
    // An analysed recording is queued for transcription: its worker hears of it.
    state.jobs.feeds(state.transcripts.clone());
    #[cfg(feature = "transcription")]
    if state.config.analysis.enabled
        && let Some(settings) = transcription::Settings::from_config(&state.config.transcription)
    {
        let queue = state.transcripts.clone();
        let kind =
            transcription::worker::Transcription::new(queue, db.clone(), storage.clone(), settings, clock.clone());
        if let Err(e) = state.transcripts.start(kind, db.clone(), clock.clone(), state.changes.clone()) {
            log::error!("cannot start the transcription worker: {e}");
        }
    }
    // The feed keeps at least as long as the trash, and a day more.
    let days = i64::from(state.config.trash.retention_days.max(1)) + 1;
    let background = maintenance::Background {
        uploads: state.uploads.clone(),
        changes: state.changes.clone(),
        clock,
        started_ms: state.started_ms,
        changes_keep_ms: days * 86_400_000,
        lost_files: state.metrics.lost_files.clone(),
    };
    tokio::spawn(maintenance::run(db, storage, background, shutdown.clone()));
    if let Some(listener) = &listeners.webdav {
        webdav::start(listener, state, None, shutdown.clone());
    }
    let Some(certificates) = state.tls.clone() else { return };
    if let Some(listener) = &listeners.webdav_tls {
        match tls::acceptor::acceptor(certificates.subscribe()) {
            Ok(acceptor) => webdav::start(listener, state, Some(acceptor), shutdown.clone()),
            Err(e) => log::error!("cannot serve WebDAV over TLS: {e}"),
        }
    }
    if let Some(addr) = listeners.https {
        let task = tokio::spawn(http::https::serve(state.clone(), addr.port(), shutdown.clone()));
        listeners.stopping.tasks.lock().unwrap_or_else(|p| p.into_inner()).push(task);
    }
    tokio::spawn(tls::keep_current(certificates, state.config.tls.refresh, shutdown));
}
