//! HTTPS from the client's side: one request over rustls, trusting only the roots given (the
//! server's own CA), with the certificate chain the server presented.

use rustls::pki_types::{CertificateDer, ServerName};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

/// An answer over HTTPS, and the chain the server presented (its own certificate first).
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub chain: Vec<Vec<u8>>,
}

impl Answer {
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client configuration trusting only `roots` (DER).
pub fn client_config(roots: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add(CertificateDer::from(root.to_vec())).expect("a root the client can use");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(store)
        .with_no_client_auth();
    Arc::new(config)
}

/// The TLS handshake with `base` (`https://host:port`) as `name`: the chain, or why it failed.
pub fn handshake(base: &str, name: &str, roots: &[&[u8]]) -> Result<Vec<Vec<u8>>, String> {
    let (mut conn, mut tcp) = connect(base, name, roots)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).map_err(|e| e.to_string())?;
    }
    Ok(chain(&conn))
}

fn connect(base: &str, name: &str, roots: &[&[u8]]) -> Result<(rustls::ClientConnection, TcpStream), String> {
    let addr = base.trim_start_matches("https://").trim_end_matches('/');
    let tcp = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let server_name = ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
    let conn = rustls::ClientConnection::new(client_config(roots), server_name).map_err(|e| e.to_string())?;
    Ok((conn, tcp))
}

fn chain(conn: &rustls::ClientConnection) -> Vec<Vec<u8>> {
    conn.peer_certificates().map(|c| c.iter().map(|d| d.to_vec()).collect()).unwrap_or_default()
}

/// One request over a fresh connection (`Connection: close`), as `name` (SNI and `Host`).
pub fn request(
    base: &str,
    name: &str,
    roots: &[&[u8]],
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Answer, String> {
    let port = base.rsplit(':').next().unwrap_or("443").trim_end_matches('/');
    let (mut conn, mut tcp) = connect(base, name, roots)?;
    let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
    let host = if name.contains(':') { format!("[{name}]:{port}") } else { format!("{name}:{port}") };
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    tls.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    tls.write_all(body).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        // A server that closes without close_notify after a complete answer is fine here.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e.to_string()),
    }
    let chain = chain(&conn);
    parse(&raw, chain, method == "HEAD")
}

fn parse(raw: &[u8], chain: Vec<Vec<u8>>, head_only: bool) -> Result<Answer, String> {
    let mut reader = BufReader::new(raw);
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| e.to_string())?;
    let status: u16 =
        line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or(format!("status line {line:?}"))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).map_err(|e| e.to_string())?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((n, v)) = l.split_once(':') {
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).map_err(|e| e.to_string())?;
    let chunked = headers.iter().any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if head_only {
        Vec::new()
    } else if chunked {
        dechunk(&rest)?
    } else {
        rest
    };
    Ok(Answer { status, headers, body, chain })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let end = data.windows(2).position(|w| w == b"\r\n").ok_or("a chunk size line")?;
        let size_text = String::from_utf8_lossy(&data[..end]);
        let size =
            usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16).map_err(|e| e.to_string())?;
        data = &data[end + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(data.get(..size).ok_or("a short chunk")?);
        data = data.get(size + 2..).ok_or("a chunk without its end")?;
    }
}

/// The DNS names and addresses a certificate (DER) names.
pub fn sans(der: &[u8]) -> (Vec<String>, Vec<std::net::IpAddr>) {
    let (_, cert) = x509_parser::parse_x509_certificate(der).expect("a certificate");
    let (mut dns, mut ips) = (Vec::new(), Vec::new());
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(d) => dns.push(d.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(b) => {
                    if let Ok(v4) = <[u8; 4]>::try_from(*b) {
                        ips.push(v4.into());
                    } else if let Ok(v6) = <[u8; 16]>::try_from(*b) {
                        ips.push(v6.into());
                    }
                }
                _ => {}
            }
        }
    }
    (dns, ips)
}
