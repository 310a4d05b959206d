//! HTTPS on the LAN: the certificate the HTTPS listeners present, kept current.
//!
//! With `tls.mode = "auto"` the server's own authority ([`authority`]) issues it, and issues
//! it again, without a restart, when an address is missing from it or expiry nears; with
//! `"files"` it is the configured chain and key, read again when they change. Either way the
//! listeners take the current one from [`Certificates::subscribe`]: the HTTPS API is relaunched
//! on it, WebDAV's TLS acceptor presents it from the next handshake on ([`acceptor`]).

pub mod acceptor;
pub mod authority;

pub use authority::{Authority, Names, hostname, local_addresses};

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::watch;

/// `[tls] mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The server's own certificate authority issues the certificate.
    Auto,
    /// A certificate and key from files (a real domain's).
    Files,
    /// No HTTPS.
    Off,
}

/// `[tls]`.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub mode: Mode,
    /// The HTTPS port, on the server's address (0: any free port).
    pub port: u16,
    /// The chain and key, PEM (mode `"files"`).
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Extra DNS names or addresses for the automatic certificate.
    pub names: Vec<String>,
    /// How often the certificate is checked: the addresses (auto) or the files' contents.
    pub refresh: Duration,
}

/// A certificate chain and its key, PEM: what a listener presents.
#[derive(Debug, PartialEq, Eq)]
pub struct Pem {
    pub chain: String,
    pub key: String,
}

/// Where the certificate comes from.
enum Source {
    Auto { authority: Box<Authority>, dir: PathBuf, names: Vec<String>, bind: IpAddr },
    Files { cert: PathBuf, key: PathBuf },
}

/// The certificate the HTTPS listeners present, and how to keep it current.
pub struct Certificates {
    source: Source,
    current: watch::Sender<Arc<Pem>>,
    /// Addresses to name besides the machine's own (tests add one to see a reissue).
    extra_addresses: Mutex<Vec<IpAddr>>,
    /// The HTTPS port served (`tls.port`, or the one picked for 0).
    port: AtomicU16,
    /// This machine's name as last read (at start and at each refresh, off the async runtime):
    /// the pages that show addresses use it without reading `/proc` per request.
    host: Mutex<String>,
}

impl Certificates {
    /// The certificate for `config`, made or read now (`None` when TLS is off). `dir` is
    /// `<data_dir>/tls`; `bind` is `server.address`.
    pub fn open(config: &TlsConfig, dir: &Path, bind: IpAddr) -> Result<Option<Certificates>, String> {
        let host = hostname();
        let source = match config.mode {
            Mode::Off => return Ok(None),
            Mode::Files => {
                let (Some(cert), Some(key)) = (config.cert.clone(), config.key.clone()) else {
                    return Err("tls.mode = \"files\" needs tls.cert and tls.key".into());
                };
                Source::Files { cert, key }
            }
            Mode::Auto => {
                let authority = Authority::open(dir, &host, &config.names, OffsetDateTime::now_utc())?;
                Source::Auto {
                    authority: Box::new(authority),
                    dir: dir.to_path_buf(),
                    names: config.names.clone(),
                    bind,
                }
            }
        };
        let first = match &source {
            Source::Files { cert, key } => read_files(cert, key)?,
            Source::Auto { authority, dir, names, bind } => {
                let wanted = Names::wanted(&host, &local_addresses(*bind), names);
                let (leaf, _) = authority.ensure_leaf(dir, &wanted, OffsetDateTime::now_utc())?;
                Pem { chain: leaf.chain_pem, key: leaf.key_pem }
            }
        };
        let (current, _) = watch::channel(Arc::new(first));
        Ok(Some(Certificates {
            source,
            current,
            extra_addresses: Mutex::new(Vec::new()),
            port: AtomicU16::new(config.port),
            host: Mutex::new(host),
        }))
    }

    /// The certificate presented now.
    pub fn current(&self) -> Arc<Pem> {
        self.current.borrow().clone()
    }

    /// Hears of every new certificate.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Pem>> {
        self.current.subscribe()
    }

    /// The local authority, in mode `"auto"`.
    pub fn authority(&self) -> Option<&Authority> {
        match &self.source {
            Source::Auto { authority, .. } => Some(authority),
            Source::Files { .. } => None,
        }
    }

    /// The HTTPS port served.
    pub fn port(&self) -> u16 {
        self.port.load(Ordering::Relaxed)
    }

    /// Records the port bound for `tls.port = 0`.
    pub fn set_port(&self, port: u16) {
        self.port.store(port, Ordering::Relaxed);
    }

    /// Whether the current certificate names `host` (a DNS name or an address).
    pub fn names_host(&self, host: &str) -> bool {
        let current = self.current();
        let Some(der) = authority::pem_body(&current.chain) else { return false };
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) else { return false };
        let Ok(Some(san)) = cert.subject_alternative_name() else { return false };
        let ip = host.parse::<IpAddr>().ok();
        san.value.general_names.iter().any(|name| match name {
            x509_parser::extensions::GeneralName::DNSName(d) => d.eq_ignore_ascii_case(host),
            x509_parser::extensions::GeneralName::IPAddress(bytes) => ip.is_some_and(|ip| match ip {
                IpAddr::V4(v4) => *bytes == v4.octets().as_slice(),
                IpAddr::V6(v6) => *bytes == v6.octets().as_slice(),
            }),
            _ => false,
        })
    }

    /// This machine's name as last read.
    pub fn hostname(&self) -> String {
        self.host.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Names `ip` too from the next refresh on, as if an interface had gained it.
    pub fn add_address(&self, ip: IpAddr) {
        self.extra_addresses.lock().unwrap_or_else(|p| p.into_inner()).push(ip);
    }

    /// Checks the certificate (blocking: reads files, may sign): issues a new one when an
    /// address is missing or expiry nears (auto), or reads the files again when they changed.
    /// `true` when the listeners were handed a new one.
    pub fn refresh(&self, now: OffsetDateTime) -> Result<bool, String> {
        let host = hostname();
        *self.host.lock().unwrap_or_else(|p| p.into_inner()) = host.clone();
        let next = match &self.source {
            Source::Files { cert, key } => read_files(cert, key)?,
            Source::Auto { authority, dir, names, bind } => {
                let mut addresses = local_addresses(*bind);
                addresses.extend(self.extra_addresses.lock().unwrap_or_else(|p| p.into_inner()).iter().copied());
                let wanted = Names::wanted(&host, &addresses, names);
                let (leaf, _) = authority.ensure_leaf(dir, &wanted, now)?;
                Pem { chain: leaf.chain_pem, key: leaf.key_pem }
            }
        };
        Ok(self.current.send_if_modified(|current| {
            if **current == next {
                return false;
            }
            *current = Arc::new(next);
            true
        }))
    }
}

/// Checks the certificate every `every` until `shutdown` (see [`Certificates::refresh`]).
pub async fn keep_current(certificates: Arc<Certificates>, every: Duration, shutdown: impl Future<Output = ()>) {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(every) => {}
        }
        let certs = certificates.clone();
        match tokio::task::spawn_blocking(move || certs.refresh(OffsetDateTime::now_utc())).await {
            Ok(Ok(true)) => log::info!(target: "recorder", "HTTPS certificate renewed"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => log::error!("cannot renew the HTTPS certificate (the current one stays): {e}"),
            Err(e) => log::error!("the HTTPS certificate check failed: {e}"),
        }
    }
}

/// The configured chain and key, checked to be PEM a listener can use.
fn read_files(cert: &Path, key: &Path) -> Result<Pem, String> {
    let read = |path: &Path| std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()));
    let pem = Pem { chain: read(cert)?, key: read(key)? };
    acceptor::certified_key(&pem).map_err(|e| format!("{} and {}: {e}", cert.display(), key.display()))?;
    Ok(pem)
}
