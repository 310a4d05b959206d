//! HTTP from the client's side: requests through ureq, the answer as it came (`Resp`), and the
//! small encodings requests need.

use serde_json::Value;
use std::io::Read;

/// A response, whatever its status.
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// Asserts the API error shape with this status and code.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.text());
        assert!(
            self.header("content-type").is_some_and(|c| c.starts_with("application/json")),
            "not JSON: {:?}",
            self.headers
        );
        let json = self.json();
        assert_eq!(json["error"]["code"], code, "{json}");
        assert!(json["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{json}");
    }
}

/// The answer with at most `limit` bytes of its body read.
fn to_resp_limited(r: ureq::Response, limit: u64) -> Resp {
    let status = r.status();
    let headers = r
        .headers_names()
        .into_iter()
        .flat_map(|n| r.all(&n).into_iter().map(|v| (n.clone(), v.to_string())).collect::<Vec<_>>())
        .collect();
    let mut body = Vec::new();
    r.into_reader().take(limit).read_to_end(&mut body).expect("read body");
    Resp { status, headers, body }
}

pub fn send(req: ureq::Request, body: Option<&[u8]>) -> Resp {
    let result = match body {
        Some(b) => req.send_bytes(b),
        None => req.call(),
    };
    match result {
        Ok(r) | Err(ureq::Error::Status(_, r)) => to_resp_limited(r, u64::MAX),
        Err(e) => panic!("transport error: {e}"),
    }
}

/// A request without a body whose answer is read up to `limit` bytes of its body.
pub fn send_bounded(req: ureq::Request, limit: u64) -> Resp {
    match req.call() {
        Ok(r) | Err(ureq::Error::Status(_, r)) => to_resp_limited(r, limit),
        Err(e) => panic!("transport error: {e}"),
    }
}

pub fn send_json(req: ureq::Request, value: &Value) -> Resp {
    send(req.set("Content-Type", "application/json"), Some(value.to_string().as_bytes()))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// An `Authorization` value for HTTP Basic.
pub fn basic(username: &str, password: &str) -> String {
    use base64::Engine as _;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}")))
}

/// An `Authorization` value for a Bearer token.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
