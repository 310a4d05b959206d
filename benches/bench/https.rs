//! HTTPS on the LAN: a one-shot upload over the server's own HTTPS port beside the same upload
//! over plain HTTP (the same client code, a TLS stream instead of a TCP one), and what a new
//! connection costs with its TLS handshake. The client trusts only the server's local CA.

use crate::client::{Account, Client};
use crate::report::Report;
use crate::stats::{mb_per_s, median, ms, rate};
use crate::{Bench, progress};
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Target: an upload over HTTPS keeps at least this share of plain HTTP's throughput.
const RATIO: f64 = 0.8;

pub fn run(bench: &Bench, account: &Account, report: &mut Report) {
    let plain = bench.server.base.trim_start_matches("http://").to_string();
    let secure = format!("127.0.0.1:{}", bench.setup.tls_port);
    let ca = fetch_ca(&bench.server.base);
    let config = client_config(&ca);
    wait_listening(&secure);

    let size = if bench.plan.quick { 32 << 20 } else { 256 << 20 };
    let runs = if bench.plan.quick { 2 } else { 4 };
    let body: Vec<u8> = crate::data::wav(size, 7);
    let (mut http, mut https) = (Vec::new(), Vec::new());
    let client = Client::as_user(&bench.server.base, account);
    for run in 1..=runs {
        progress(&format!("https: {} upload over HTTP and over HTTPS ({run}/{runs})", crate::stats::size(size as u64)));
        let mut tcp = connect(&plain);
        let (id, took) = upload(&mut tcp, &plain, account, &body, run, "http");
        http.push(took);
        client.delete_permanently(&id);
        let mut tls = tls_connect(&secure, &config);
        let (id, took) = upload(&mut tls, &secure, account, &body, run, "https");
        https.push(took);
        client.delete_permanently(&id);
    }
    let (http_rate, https_rate) = (mb_per_s(size, median(&http)), mb_per_s(size, median(&https)));
    let ratio = https_rate / http_rate.max(1e-9);
    let what = format!("one-shot upload of {} (median of {runs})", crate::stats::size(size as u64));
    report.row("https", format!("{what}, plain HTTP"), rate(http_rate), "");
    report.target(
        "https",
        format!("{what}, HTTPS"),
        rate(https_rate),
        format!("≥ {RATIO}× plain HTTP ({ratio:.2}×)"),
        ratio >= RATIO,
    );

    // A new connection: connect and ask /healthz, with and without the TLS handshake.
    let n = if bench.plan.quick { 50 } else { 300 };
    progress(&format!("https: {n} new connections over HTTP and over HTTPS"));
    let (mut plain_conns, mut tls_conns) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let started = Instant::now();
        let mut tcp = connect(&plain);
        health(&mut tcp, &plain);
        plain_conns.push(started.elapsed());
        let started = Instant::now();
        let mut tls = tls_connect(&secure, &config);
        health(&mut tls, &secure);
        tls_conns.push(started.elapsed());
    }
    let (p, t) = (median(&plain_conns), median(&tls_conns));
    report.row("https", format!("new connection + GET /healthz, plain (median of {n})"), ms(p), "");
    report.row(
        "https",
        format!("new connection + TLS 1.3 handshake (ECDSA P-256) + GET /healthz (median of {n})"),
        ms(t),
        format!("the handshake adds {}", ms(t.saturating_sub(p))),
    );
    report.metric("https.upload_http_mb_s", http_rate);
    report.metric("https.upload_https_mb_s", https_rate);
    report.metric("https.upload_ratio", ratio);
    report.metric("https.connection_plain_seconds", p.as_secs_f64());
    report.metric("https.connection_tls_seconds", t.as_secs_f64());
}

fn fetch_ca(base: &str) -> Vec<u8> {
    let response = ureq::get(&format!("{base}/ca.crt")).call().unwrap_or_else(|e| panic!("GET /ca.crt: {e}"));
    let mut der = Vec::new();
    response.into_reader().read_to_end(&mut der).expect("reading the CA");
    der
}

fn client_config(ca: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(ca.to_vec())).expect("the local CA");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// The HTTPS instance starts a moment after the plain one answers.
fn wait_listening(addr: &str) {
    let started = Instant::now();
    while TcpStream::connect(addr).is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "HTTPS never listened on {addr}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn connect(addr: &str) -> TcpStream {
    let tcp = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    tcp.set_nodelay(true).expect("nodelay");
    tcp.set_read_timeout(Some(Duration::from_secs(120))).expect("timeout");
    tcp
}

fn tls_connect(
    addr: &str,
    config: &Arc<rustls::ClientConfig>,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let name = ServerName::try_from("127.0.0.1").expect("a name");
    let conn = rustls::ClientConnection::new(config.clone(), name).expect("a TLS client");
    rustls::StreamOwned::new(conn, connect(addr))
}

/// One request on `stream` (HTTP/1.1, `Connection: close`): the status and the body.
fn exchange(stream: &mut (impl Read + Write), host: &str, head: &str, body: &[u8]) -> (u16, Vec<u8>) {
    stream
        .write_all(
            format!("{head}Host: {host}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(),
        )
        .expect("request head");
    for piece in body.chunks(1 << 20) {
        stream.write_all(piece).expect("request body");
    }
    stream.flush().expect("flush");
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).expect("status line");
    let status: u16 = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut length = 0usize;
    loop {
        line.clear();
        reader.read_line(&mut line).expect("a header");
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut answer = vec![0; length];
    reader.read_exact(&mut answer).expect("the answer's body");
    (status, answer)
}

fn upload(
    stream: &mut (impl Read + Write),
    host: &str,
    account: &Account,
    body: &[u8],
    run: usize,
    over: &str,
) -> (String, Duration) {
    let head = format!(
        "POST /api/v1/recordings?name=bench-{over}-{run}.wav HTTP/1.1\r\nAuthorization: Bearer {}\r\nContent-Type: application/octet-stream\r\n",
        account.token
    );
    let started = Instant::now();
    let (status, answer) = exchange(stream, host, &head, body);
    let took = started.elapsed();
    assert_eq!(status, 201, "upload over {over}: {}", String::from_utf8_lossy(&answer));
    let json: serde_json::Value = serde_json::from_slice(&answer).expect("JSON");
    (json["id"].as_str().expect("an id").to_string(), took)
}

fn health(stream: &mut (impl Read + Write), host: &str) {
    let (status, _) = exchange(stream, host, "GET /healthz HTTP/1.1\r\n", b"");
    assert_eq!(status, 200);
}
