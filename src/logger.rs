//! A plain line logger to stderr (`<time> <LEVEL> <message>`), and the startup announcement of
//! where the server can be reached.

use crate::clock::{rfc3339, system_now_ms};
use log::{Level, LevelFilter, Log, Metadata, Record};
use std::io::Write;
use std::net::IpAddr;

struct Logger {
    level: LevelFilter,
}

impl Log for Logger {
    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        if meta.target().starts_with("recorder") {
            meta.level() <= self.level
        } else {
            // Rocket and hyper report ordinary 404s and hang-ups as errors: only when debugging.
            meta.level() <= Level::Warn && self.level >= LevelFilter::Debug
        }
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{} {:<5} {}", rfc3339(system_now_ms()), record.level(), record.args());
        }
    }

    fn flush(&self) {}
}

/// Installs the logger (once per process; later calls change nothing).
pub fn init(level: LevelFilter) {
    if log::set_boxed_logger(Box::new(Logger { level })).is_ok() {
        log::set_max_level(LevelFilter::Trace);
    }
}

/// The URLs a phone on the network can use, one per local interface address.
pub fn urls(address: IpAddr, port: u16) -> Vec<String> {
    let format = |ip: IpAddr| match ip {
        IpAddr::V4(v4) => format!("http://{v4}:{port}"),
        IpAddr::V6(v6) => format!("http://[{v6}]:{port}"),
    };
    if !address.is_unspecified() {
        return vec![format(address)];
    }
    let mut addrs: Vec<IpAddr> =
        if_addrs::get_if_addrs().map(|ifs| ifs.into_iter().map(|i| i.ip()).collect()).unwrap_or_default();
    addrs.retain(|ip| address.is_ipv6() || ip.is_ipv4());
    addrs.retain(|ip| !matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80));
    addrs.sort_by_key(|ip| (ip.is_loopback(), ip.is_ipv6()));
    if addrs.is_empty() {
        addrs.push(IpAddr::from([127, 0, 0, 1]));
    }
    addrs.into_iter().map(format).collect()
}

/// Logs where the server listens, and a line a script can wait for.
pub fn announce(address: IpAddr, port: u16) {
    for url in urls(address, port) {
        log::info!(target: "recorder", "reachable at {url}");
    }
    log::info!(target: "recorder", "listening on {address}:{port}");
}

/// A request path as the request log writes it: a share link's token is a credential (only its
/// hash is stored), so `/s/<token>…` is written `/s/…`.
pub fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    match path.strip_prefix("/s/") {
        Some(rest) if !rest.is_empty() => {
            let tail = rest.find('/').map_or("", |i| &rest[i..]);
            std::borrow::Cow::Owned(format!("/s/…{tail}"))
        }
        _ => std::borrow::Cow::Borrowed(path),
    }
}

#[cfg(test)]
mod path_tests {
    use super::loggable_path;

    #[test]
    fn share_tokens_are_left_out_of_logged_paths() {
        assert_eq!(loggable_path("/s/abcDEF123_-xyz"), "/s/…");
        assert_eq!(loggable_path("/s/abcDEF123_-xyz/audio"), "/s/…/audio");
        assert_eq!(loggable_path("/api/v1/recordings"), "/api/v1/recordings");
        assert_eq!(loggable_path("/s/"), "/s/");
    }
}
