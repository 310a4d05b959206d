//! Ports and raw connections: HTTP/1.1 over a `TcpStream`, the request as written and the
//! response as read, for what an HTTP client library would not send as written (it resolves
//! `/a/..` and `%2E` before sending, and gives up on a request whose answer came before its
//! body was written).

use super::http::Resp;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// How long one read or write on a raw connection may block.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a whole response on a raw connection may take.
const RESPONSE_DEADLINE: Duration = Duration::from_secs(30);

/// A loopback port that was free a moment ago (and that nothing listens on now).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("addr").port()
}

/// Writes a request: the target verbatim, `Host` (unless given), the headers, `Content-Length`
/// when there is a body, and `Connection: close`.
pub fn write_request(
    stream: &mut TcpStream,
    host: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> io::Result<()> {
    let mut head = format!("{method} {target} HTTP/1.1\r\n");
    if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: {host}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes())?;
    if let Some(body) = body {
        stream.write_all(body)?;
    }
    stream.flush()
}

/// Writes `body` with chunked transfer encoding in chunks of `chunk` bytes, and its last chunk;
/// stops early, without a word, once the server stops reading (it answered).
pub fn write_chunked(stream: &mut TcpStream, body: &[u8], chunk: usize) {
    for part in body.chunks(chunk) {
        if stream.write_all(format!("{:x}\r\n", part.len()).as_bytes()).is_err()
            || stream.write_all(part).is_err()
            || stream.write_all(b"\r\n").is_err()
        {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n");
}

/// One request on a fresh connection. A server may answer (and close) before it read a body it
/// refuses: the answer is read even when writing the body failed.
pub fn raw(host: &str, method: &str, target: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> io::Result<Resp> {
    let mut stream = TcpStream::connect(host)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let written = write_request(&mut stream, host, method, target, headers, body);
    match read_response(&mut stream, method == "HEAD", 64 << 20) {
        Ok(r) => Ok(r),
        Err(e) => match written {
            Err(w) => Err(io::Error::new(e.kind(), format!("writing the request: {w}; then reading: {e}"))),
            Ok(()) => Err(e),
        },
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads more of the response into `buf`; 0 at the end of the stream.
fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>, deadline: Instant) -> io::Result<usize> {
    if Instant::now() > deadline {
        return Err(io::Error::new(io::ErrorKind::TimedOut, "the response took too long"));
    }
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

fn unexpected_eof(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, format!("the connection closed {what}"))
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// The status and headers of a response head (without its final empty line).
fn parse_head(head: &str) -> io::Result<(u16, Vec<(String, String)>)> {
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid(format!("not a status line: {status_line:?}")))?;
    let headers = lines
        .filter(|line| !line.is_empty())
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
        .collect();
    Ok((status, headers))
}

/// Reads one final response (interim 1xx ones are skipped) as framed by its headers, keeping at
/// most a little over `max_body` bytes of its body.
pub fn read_response(stream: &mut TcpStream, head_request: bool, max_body: usize) -> io::Result<Resp> {
    let deadline = Instant::now() + RESPONSE_DEADLINE;
    let mut buf = Vec::new();
    loop {
        let end = loop {
            if let Some(at) = find(&buf, b"\r\n\r\n") {
                break at + 4;
            }
            if buf.len() > 1 << 20 {
                return Err(invalid("a response head over 1 MiB".to_string()));
            }
            if fill(stream, &mut buf, deadline)? == 0 {
                return Err(unexpected_eof(&format!(
                    "before a whole response head (got {:?})",
                    String::from_utf8_lossy(&buf)
                )));
            }
        };
        let head = String::from_utf8_lossy(&buf[..end - 4]).into_owned();
        buf.drain(..end);
        let (status, headers) = parse_head(&head)?;
        if (100..200).contains(&status) {
            continue;
        }
        let header = |name: &str| {
            headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.to_ascii_lowercase())
        };
        let body = if head_request || status == 204 || status == 304 {
            Vec::new()
        } else if header("Transfer-Encoding").is_some_and(|te| te.contains("chunked")) {
            read_chunked(stream, buf, deadline, max_body)?
        } else if let Some(length) = header("Content-Length") {
            let length: usize = length.parse().map_err(|_| invalid(format!("Content-Length {length:?}")))?;
            let wanted = length.min(max_body + 1);
            while buf.len() < wanted {
                if fill(stream, &mut buf, deadline)? == 0 {
                    return Err(unexpected_eof(&format!("after {} of {length} body bytes", buf.len())));
                }
            }
            buf.truncate(wanted);
            buf
        } else {
            // Delimited by the end of the connection; a reset after the head ends it too (a
            // server that closes with a refused body unread resets the connection).
            while buf.len() <= max_body {
                match fill(stream, &mut buf, deadline) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
                    Err(e) => return Err(e),
                }
            }
            buf
        };
        return Ok(Resp { status, headers, body });
    }
}

/// A chunked body (trailers ignored), up to a little over `max_body` bytes.
fn read_chunked(stream: &mut TcpStream, mut buf: Vec<u8>, deadline: Instant, max_body: usize) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(at) = find(&buf, b"\r\n") {
                break at;
            }
            if fill(stream, &mut buf, deadline)? == 0 {
                return Err(unexpected_eof("in a chunk's size line"));
            }
        };
        let line = String::from_utf8_lossy(&buf[..line_end]).into_owned();
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| invalid(format!("a chunk size {line:?}")))?;
        buf.drain(..line_end + 2);
        if size == 0 {
            return Ok(body);
        }
        while buf.len() < size + 2 {
            if fill(stream, &mut buf, deadline)? == 0 {
                return Err(unexpected_eof(&format!("in a chunk of {size} bytes")));
            }
        }
        body.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
        if body.len() > max_body {
            return Ok(body);
        }
    }
}

/// One request on a connection of its own, which must be answered whole: the answer, and the
/// client's port, which names the connection (in a trace of the server's system calls).
pub fn exchange(host: &str, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> (Resp, u16) {
    let mut stream = TcpStream::connect(host).unwrap_or_else(|e| panic!("connect to {host}: {e}"));
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
    let port = stream.local_addr().expect("local address").port();
    write_request(&mut stream, host, method, target, headers, Some(body)).expect("the request");
    let answer = read_response(&mut stream, method == "HEAD", 64 << 20)
        .unwrap_or_else(|e| panic!("{method} {target}: no answer: {e}"));
    (answer, port)
}
