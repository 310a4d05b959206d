//! A blocking HTTP client (ureq) for the API calls the benchmark makes. One `Client` is one
//! keep-alive connection: give each concurrent thread its own.

use serde_json::{Value, json};
use std::io::Read;
use std::time::{Duration, Instant};

/// The password of every benchmark account.
pub const PASSWORD: &str = "benchmark password";

/// A signed-up account.
#[derive(Debug, Clone)]
pub struct Account {
    pub username: String,
    pub id: String,
    pub token: String,
}

pub struct Client {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
}

/// A list page as the benchmark needs it.
pub struct Page {
    pub len: usize,
    pub next_cursor: Option<String>,
}

impl Client {
    pub fn new(base: &str) -> Client {
        let agent = ureq::AgentBuilder::new().timeout_connect(Duration::from_secs(10)).build();
        Client { agent, base: base.to_string(), token: None }
    }

    /// A new connection acting as `account`.
    pub fn as_user(base: &str, account: &Account) -> Client {
        Client { token: Some(account.token.clone()), ..Client::new(base) }
    }

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        let request = self.agent.request(method, &format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.set("Authorization", &format!("Bearer {token}")),
            None => request,
        }
    }

    pub fn signup(&self, username: &str) -> Account {
        let body = json!({"username": username, "password": PASSWORD});
        let session: Value =
            json_of(expect(self.request("POST", "/api/v1/auth/signup").send_json(body), 201, "signup"));
        let field = |v: &Value| v.as_str().map(str::to_string).expect("signup answer has a user id and a token");
        Account { username: username.to_string(), id: field(&session["user"]["id"]), token: field(&session["token"]) }
    }

    /// Logs in; returns how long the request took.
    pub fn login(&self, username: &str) -> Duration {
        let body = json!({"username": username, "password": PASSWORD});
        let started = Instant::now();
        let response = expect(self.request("POST", "/api/v1/auth/login").send_json(body), 200, "login");
        drain(response, "login");
        started.elapsed()
    }

    /// Uploads a raw body; returns the recording and how long the request took.
    pub fn upload(&self, name: &str, body: &[u8]) -> (Value, Duration) {
        let request = self.request("POST", "/api/v1/recordings").query("name", name).set("Content-Type", "audio/wav");
        let started = Instant::now();
        let response = expect(request.send_bytes(body), 201, "upload");
        let recording = json_of(response);
        (recording, started.elapsed())
    }

    /// Uploads a raw body; the time it took, or what went wrong (for the load scenario, which
    /// counts errors instead of stopping).
    pub fn try_upload(&self, name: &str, body: &[u8]) -> Result<Duration, String> {
        let request = self.request("POST", "/api/v1/recordings").query("name", name).set("Content-Type", "audio/wav");
        let started = Instant::now();
        match request.send_bytes(body) {
            Ok(response) if response.status() == 201 => {
                drain(response, "upload");
                Ok(started.elapsed())
            }
            Ok(response) => Err(format!("status {}", response.status())),
            Err(ureq::Error::Status(status, response)) => {
                Err(format!("status {status}: {}", response.into_string().unwrap_or_default()))
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Creates a tus upload of `length` bytes; returns its path.
    pub fn tus_create(&self, name: &str, length: usize) -> String {
        use base64::Engine as _;
        let metadata = format!("filename {}", base64::engine::general_purpose::STANDARD.encode(name));
        let request = self
            .request("POST", "/api/v1/uploads")
            .set("Tus-Resumable", "1.0.0")
            .set("Upload-Length", &length.to_string())
            .set("Upload-Metadata", &metadata);
        let response = expect(request.call(), 201, "tus creation");
        let location = response.header("Location").expect("a tus creation answers with Location").to_string();
        drain(response, "tus creation");
        location
    }

    /// One tus PATCH at `offset`; returns the new offset and, when it completed the upload, the
    /// recording's id.
    pub fn tus_patch(&self, path: &str, offset: usize, bytes: &[u8]) -> (usize, Option<String>) {
        let request = self
            .request("PATCH", path)
            .set("Tus-Resumable", "1.0.0")
            .set("Content-Type", "application/offset+octet-stream")
            .set("Upload-Offset", &offset.to_string());
        let response = expect(request.send_bytes(bytes), 204, "tus PATCH");
        let new_offset = response.header("Upload-Offset").and_then(|v| v.parse().ok()).expect("Upload-Offset");
        let recording = response.header("Recording-Id").map(str::to_string);
        drain(response, "tus PATCH");
        (new_offset, recording)
    }

    /// Uploads a body through tus in `chunk`-byte PATCHes; returns the recording id and the time
    /// from creation to the completing answer.
    pub fn tus_upload(&self, name: &str, body: &[u8], chunk: usize) -> (String, Duration) {
        let started = Instant::now();
        let path = self.tus_create(name, body.len());
        let mut offset = 0;
        let mut recording = None;
        for part in body.chunks(chunk) {
            let (next, done) = self.tus_patch(&path, offset, part);
            assert_eq!(next, offset + part.len(), "the server acknowledged every byte of the PATCH");
            offset = next;
            recording = done;
        }
        (recording.expect("the last PATCH completes the upload"), started.elapsed())
    }

    /// Deletes an incomplete upload.
    pub fn tus_delete(&self, path: &str) {
        let request = self.request("DELETE", path).set("Tus-Resumable", "1.0.0");
        drain(expect(request.call(), 204, "tus DELETE"), "tus DELETE");
    }

    /// `GET /api/v1/recordings/{id}` as JSON.
    pub fn recording(&self, id: &str) -> Value {
        json_of(expect(self.request("GET", &format!("/api/v1/recordings/{id}")).call(), 200, "get recording"))
    }

    /// `GET /api/v1/recordings/{id}/waveform` as JSON (`bucket_ms`, `peaks`).
    pub fn waveform(&self, id: &str) -> Value {
        json_of(expect(self.request("GET", &format!("/api/v1/recordings/{id}/waveform")).call(), 200, "get waveform"))
    }

    /// `GET /metrics` (Prometheus text; open to loopback when enabled).
    pub fn metrics(&self) -> String {
        expect(self.request("GET", "/metrics").call(), 200, "metrics").into_string().expect("reading /metrics")
    }

    /// `GET /healthz`; the time it took.
    pub fn health(&self) -> Duration {
        let started = Instant::now();
        drain(expect(self.request("GET", "/healthz").call(), 200, "healthz"), "healthz");
        started.elapsed()
    }

    /// `GET /api/v1/me` (the account and its usage totals); the usage and the time it took.
    pub fn me(&self) -> (Value, Duration) {
        let started = Instant::now();
        let text = expect(self.request("GET", "/api/v1/me").call(), 200, "me").into_string().expect("reading /me");
        let elapsed = started.elapsed();
        let me: Value = serde_json::from_str(&text).expect("/me is JSON");
        (me["usage"].clone(), elapsed)
    }

    pub fn delete_permanently(&self, id: &str) {
        let response =
            expect(self.request("DELETE", &format!("/api/v1/recordings/{id}?permanent=true")).call(), 204, "delete");
        drain(response, "delete");
    }

    /// One list page; the time covers the request and reading the whole body, not parsing it.
    pub fn list(&self, limit: usize, cursor: Option<&str>) -> (Page, Duration) {
        let mut request = self.request("GET", "/api/v1/recordings").query("limit", &limit.to_string());
        if let Some(cursor) = cursor {
            request = request.query("cursor", cursor);
        }
        let started = Instant::now();
        let text = expect(request.call(), 200, "list").into_string().expect("reading a list page");
        let elapsed = started.elapsed();
        let page: Value = serde_json::from_str(&text).expect("a list page is JSON");
        let len = page["recordings"].as_array().map_or(0, Vec::len);
        let next_cursor = page["next_cursor"].as_str().map(str::to_string);
        (Page { len, next_cursor }, elapsed)
    }

    /// Downloads a recording's bytes (discarding them); returns the byte count, the ETag and
    /// the time to the last byte.
    pub fn download(&self, id: &str, buf: &mut [u8]) -> (usize, String, Duration) {
        let started = Instant::now();
        let response = expect(self.request("GET", &format!("/api/v1/recordings/{id}/audio")).call(), 200, "download");
        let etag = response.header("ETag").unwrap_or_default().trim_matches('"').to_string();
        let total = read_all(response.into_reader(), buf);
        (total, etag, started.elapsed())
    }

    /// One `Range: bytes=start-(start+len-1)` request; returns the body length and the time.
    pub fn range(&self, id: &str, start: u64, len: u64, buf: &mut [u8]) -> (usize, Duration) {
        let request = self
            .request("GET", &format!("/api/v1/recordings/{id}/audio"))
            .set("Range", &format!("bytes={start}-{}", start + len - 1));
        let started = Instant::now();
        let response = expect(request.call(), 206, "range request");
        let total = read_all(response.into_reader(), buf);
        (total, started.elapsed())
    }
}

/// The response when it has the expected status; anything else stops the benchmark with the
/// server's answer.
fn expect(result: Result<ureq::Response, ureq::Error>, status: u16, what: &str) -> ureq::Response {
    match result {
        Ok(response) if response.status() == status => response,
        Ok(response) => {
            let got = response.status();
            panic!("{what}: expected {status}, got {got}: {}", response.into_string().unwrap_or_default())
        }
        Err(ureq::Error::Status(got, response)) => {
            panic!("{what}: expected {status}, got {got}: {}", response.into_string().unwrap_or_default())
        }
        Err(e) => panic!("{what}: {e}"),
    }
}

fn json_of(response: ureq::Response) -> Value {
    response.into_json().expect("the answer is JSON")
}

/// Reads a body to its end so the connection can be reused.
fn drain(response: ureq::Response, what: &str) {
    std::io::copy(&mut response.into_reader(), &mut std::io::sink()).unwrap_or_else(|e| panic!("{what}: {e}"));
}

fn read_all(mut reader: impl Read, buf: &mut [u8]) -> usize {
    let mut total = 0;
    loop {
        match reader.read(buf) {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) => panic!("reading a response body: {e}"),
        }
    }
}
