//! Live updates: what idle event streams (`GET /api/v1/events`) cost the server, and how fast a
//! change reaches all of them.

use crate::report::Report;
use crate::stats::{Samples, size};
use crate::{Bench, data, progress};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Idle subscribers measured (the figure).
const SUBSCRIBERS: usize = 200;

/// Opens an event stream and reads up to the end of its headers.
fn subscribe(base: &str, token: &str) -> BufReader<TcpStream> {
    let mut stream = TcpStream::connect(base.trim_start_matches("http://")).expect("connecting for events");
    write!(
        stream,
        "GET /api/v1/events HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .expect("sending the events request");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("read timeout");
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).expect("the events status line");
    assert!(line.starts_with("HTTP/1.1 200"), "events: {line}");
    loop {
        line.clear();
        reader.read_line(&mut line).expect("an events header");
        if line == "\r\n" {
            return reader;
        }
    }
}

pub fn run(bench: &Bench, report: &mut Report) {
    let account = bench.signup("bench-events");
    progress(&format!("{SUBSCRIBERS} idle event streams"));
    let before = bench.server.memory().rss;
    let streams: Vec<BufReader<TcpStream>> =
        (0..SUBSCRIBERS).map(|_| subscribe(&bench.server.base, &account.token)).collect();
    // Let the server settle its per-stream state before measuring.
    thread::sleep(Duration::from_millis(500));
    let (rss, threads) = bench.server.rss_and_threads();
    let growth = rss.saturating_sub(before);
    report.row(
        "events",
        format!("{SUBSCRIBERS} idle event streams open"),
        format!("+{} ({} each), {threads} threads", size(growth), size(growth / SUBSCRIBERS as u64)),
        format!("before: {}", size(before)),
    );
    report.metric("events.idle_streams.growth_bytes", growth);

    // One upload: the time until every stream has its `created` event.
    let (done, arrivals) = mpsc::channel();
    let started = Instant::now();
    for mut reader in streams {
        let done = done.clone();
        thread::spawn(move || {
            let mut line = String::new();
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) if line.starts_with("event: change") || line.starts_with("event:change") => {
                        let _ = done.send(Instant::now());
                        return;
                    }
                    Ok(_) => {}
                }
            }
        });
    }
    let client = bench.client(&account);
    let sent = Instant::now();
    client.upload("event.wav", &data::wav(64 << 10, 0xE7E7));
    let mut delays = Vec::with_capacity(SUBSCRIBERS);
    for _ in 0..SUBSCRIBERS {
        match arrivals.recv_timeout(Duration::from_secs(30)) {
            Ok(at) => delays.push(at.saturating_duration_since(sent)),
            Err(_) => break,
        }
    }
    let received = delays.len();
    let delays = Samples::new(delays);
    report.target(
        "events",
        format!("one upload reaching all {SUBSCRIBERS} streams"),
        format!("{received} of {SUBSCRIBERS} received; from the upload's start: {}", delays.summary()),
        "target: within 1 s",
        received == SUBSCRIBERS && delays.max() < Duration::from_secs(1),
    );
    report.metric("events.delivery", delays.to_json());
    progress(&format!("events delivered in {:?}", started.elapsed()));
}
