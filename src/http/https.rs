//! The HTTPS listener: the same routes over the same core, on `tls.port`.
//!
//! Rocket 0.5 reads its certificate once, at launch, and serves one port per instance. So the
//! HTTPS API is a second Rocket instance over the same [`AppState`], and a new certificate
//! (issued again, or changed files) relaunches it on the same port: requests in flight get the
//! shutdown grace period, new connections wait the moment the port is rebound.

use crate::logger;
use crate::state::AppState;
use crate::tls::{Mode, Pem};
use rocket::config::{Shutdown, TlsConfig};
use rocket::fairing::AdHoc;
use std::sync::Arc;

/// The `https://` URLs a phone may use, best first: the LAN addresses, then the hostname's
/// `.local` name (mode `"auto"`, listening on every address), then loopback.
pub fn urls(state: &AppState, port: u16) -> Vec<String> {
    let address = state.config.server.address;
    let all = logger::urls(address, port).into_iter().map(|u| u.replacen("http", "https", 1));
    let (mut urls, loopback): (Vec<String>, Vec<String>) =
        all.partition(|u| !u.contains("://127.") && !u.contains("://[::1]"));
    let host = state.tls.as_ref().map(|t| t.hostname()).unwrap_or_default();
    if state.config.tls.mode == Mode::Auto && address.is_unspecified() && !host.is_empty() && host != "localhost" {
        let bare = host.strip_suffix(".local").unwrap_or(&host);
        urls.push(format!("https://{bare}.local:{port}"));
    }
    urls.extend(loopback);
    urls
}

/// Serves HTTPS on `port` until `shutdown`, relaunched on each new certificate.
pub async fn serve(state: AppState, port: u16, shutdown: impl Future<Output = ()> + Send + 'static) {
    let Some(certificates) = state.tls.clone() else { return };
    let mut updates = certificates.subscribe();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut first = true;
    loop {
        let pem = updates.borrow_and_update().clone();
        let ignited = match launcher(&state, port, &pem, first).ignite().await {
            Ok(ignited) => ignited,
            Err(e) => {
                log::error!("cannot serve HTTPS on port {port}: {e}");
                return;
            }
        };
        first = false;
        let handle = ignited.shutdown();
        let mut launched = tokio::spawn(ignited.launch());
        let relaunch = tokio::select! {
            _ = &mut shutdown => false,
            changed = updates.changed() => changed.is_ok(),
            ended = &mut launched => {
                match ended {
                    Ok(Err(e)) => log::error!("HTTPS on port {port} stopped: {e}"),
                    Ok(Ok(_)) => {}
                    Err(e) => log::error!("HTTPS on port {port} stopped: {e}"),
                }
                return;
            }
        };
        handle.notify();
        let _ = launched.await;
        if !relaunch {
            return;
        }
        log::info!(target: "recorder", "HTTPS certificate changed: serving the new one on port {port}");
    }
}

/// The HTTPS instance: the API's routes with the certificate, no signal handling of its own
/// (the plain listener's shutdown stops it).
fn launcher(state: &AppState, port: u16, pem: &Arc<Pem>, announce: bool) -> rocket::Rocket<rocket::Build> {
    let mut config = super::rocket_config(state);
    config.port = port;
    config.tls = Some(TlsConfig::from_bytes(pem.chain.as_bytes(), pem.key.as_bytes()));
    config.shutdown = Shutdown {
        ctrlc: false,
        #[cfg(unix)]
        signals: Default::default(),
        grace: state.config.server.shutdown_grace_secs,
        mercy: 5,
        ..Shutdown::default()
    };
    // No HSTS: it would hold for the host on every port, and the plain port keeps serving apps
    // configured with an http:// address. (Rocket adds a year of it with TLS unless a policy is
    // set: this one says max-age=0, which also makes a browser forget an earlier one.)
    let no_hsts = rocket::shield::Hsts::Enable(rocket::time::Duration::ZERO);
    // The rest as on the plain listener, whose own fairing sets X-Frame-Options and nosniff.
    let shield = rocket::shield::Shield::new().enable(rocket::shield::Permission::default()).enable(no_hsts);
    let rocket = super::assemble(state.clone(), config).attach(shield);
    if !announce {
        return rocket;
    }
    rocket.attach(AdHoc::on_liftoff("https urls", |rocket| {
        Box::pin(async move {
            let Some(state) = rocket.state::<AppState>() else { return };
            let port = rocket.config().port;
            for url in urls(state, port) {
                log::info!(target: "recorder", "secure address: {url} (to record from a phone: {url}/setup)");
            }
            if let Some(authority) = state.tls.as_ref().and_then(|t| t.authority()) {
                log::info!(target: "recorder", "local CA fingerprint (SHA-256): {}", authority.fingerprint());
            }
        })
    }))
}
