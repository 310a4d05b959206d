//! The WebDAV listener: Basic sign-in with an app token, the request guard, one range policy,
//! and the library's answers turned into this server's.

use crate::answer::Answer;
use crate::auth;
use crate::error::Error;
use crate::state::AppState;
use bytes::Bytes;
use dav_server::DavHandler;
use dav_server::body::Body;
use dav_server::memls::MemLs;
use futures_util::FutureExt;
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{self};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

use super::caller::{Caller, CallerInner, PutOutcome};
use super::fs::RecordingsFs;
use super::guard::{AnyBody, bounded_body, scope};
use super::meta::{READ_CHUNK, lock, shown};

pub(super) const REALM: &str = "Basic realm=\"recorder\", charset=\"UTF-8\"";

/// The WebDAV port, bound when the state is opened (so a taken port stops startup with a clear
/// line) and served from liftoff until the server shuts down.
pub struct Listener {
    pub(super) addr: SocketAddr,
    pub(super) socket: Mutex<Option<std::net::TcpListener>>,
    pub(super) task: Mutex<Option<JoinHandle<()>>>,
}

impl Listener {
    pub fn bind(addr: SocketAddr) -> io::Result<Listener> {
        let socket = std::net::TcpListener::bind(addr)?;
        socket.set_nonblocking(true)?;
        let addr = socket.local_addr()?;
        Ok(Listener { addr, socket: Mutex::new(Some(socket)), task: Mutex::new(None) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Starts serving WebDAV (once), until `shutdown`; over TLS when `tls` is given.
pub fn start(
    listener: &Listener,
    state: &AppState,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let Some(socket) = lock(&listener.socket).take() else { return };
    let tcp = match tokio::net::TcpListener::from_std(socket) {
        Ok(tcp) => tcp,
        Err(e) => {
            log::error!("cannot serve WebDAV on {}: {e}", listener.addr);
            return;
        }
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    for url in crate::logger::urls(listener.addr.ip(), listener.addr.port()) {
        let url = url.replacen("http://", &format!("{scheme}://"), 1);
        log::info!(target: "recorder", "WebDAV reachable at {url} (sign in with your username and an app token)");
    }
    let task = tokio::spawn(serve(tcp, state.clone(), tls, shutdown));
    *lock(&listener.task) = Some(task);
}

/// Waits for the WebDAV listener's requests to finish after a shutdown (at most the grace time).
pub async fn stopped(listener: &Listener) {
    let Some(task) = lock(&listener.task).take() else { return };
    let _ = task.await;
}

/// Per-user lock tables: one user's locks never touch another's paths.
pub(super) struct Dav {
    pub(super) state: AppState,
    pub(super) locks: Mutex<HashMap<String, Box<MemLs>>>,
}

impl Dav {
    pub(super) fn handler(&self, user_id: &str) -> DavHandler<Caller> {
        let locks = lock(&self.locks).entry(user_id.to_string()).or_insert_with(MemLs::new).clone();
        DavHandler::builder()
            .filesystem(Box::new(RecordingsFs { state: self.state.clone() }))
            .locksystem(locks)
            .read_buf_size(READ_CHUNK)
            .build_handler()
    }
}

/// How long a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) async fn serve(
    tcp: tokio::net::TcpListener,
    state: AppState,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let grace = Duration::from_secs(u64::from(state.config.server.shutdown_grace_secs));
    let dav = Arc::new(Dav { state, locks: Mutex::new(HashMap::new()) });
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = tcp.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, most likely: wait a little instead of spinning.
                log::warn!("WebDAV accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (dav, watcher) = (dav.clone(), graceful.watcher());
        match tls.clone() {
            None => connection(dav, peer, stream, watcher),
            Some(acceptor) => {
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => connection(dav, peer, stream, watcher),
                        Ok(Err(e)) => log::debug!("WebDAV TLS handshake with {peer}: {e}"),
                        Err(_) => log::debug!("WebDAV TLS handshake with {peer} took too long"),
                    }
                });
            }
        }
    }
    drop(tcp);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(grace) => log::warn!("WebDAV requests still running after the grace period were cut"),
    }
}

/// Serves one connection (plain or TLS) until it closes or the server shuts down.
fn connection<S>(dav: Arc<Dav>, peer: SocketAddr, stream: S, watcher: hyper_util::server::graceful::Watcher)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let dav = dav.clone();
        async move { Ok::<_, Infallible>(handle(&dav, peer, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(TokioIo::new(stream), service);
    let conn = watcher.watch(conn);
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            log::debug!("WebDAV connection from {peer}: {e}");
        }
    });
}

/// One request: authenticate, let dav-server answer over the caller's recordings, then put our
/// own answer in where the file system refused with a reason, and log one line.
pub(super) async fn handle(dav: &Dav, peer: SocketAddr, req: Request<Incoming>) -> Response<AnyBody> {
    let started = Instant::now();
    let state = &dav.state;
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let ip = client_ip(state, &req, peer);
    let (mut res, user) = match authenticate(state, &req, ip).await {
        Err(refused) => (refused, None),
        Ok((user_id, username)) => {
            let res = answer(dav, req, user_id.clone(), username).await;
            (res, Some(user_id))
        }
    };
    let headers = res.headers_mut();
    headers.insert("X-Content-Type-Options", HeaderValue::from_static("nosniff"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox; default-src 'none'"));
    let status = res.status().as_u16();
    state.metrics.request(method.as_str(), Some("webdav"), status, started.elapsed());
    // The path only, never a header: the credentials travel in one.
    log::info!(
        target: "recorder::webdav",
        "{} {} {} {}ms user={}",
        method,
        path,
        status,
        started.elapsed().as_millis(),
        user.as_deref().unwrap_or("-")
    );
    let multistatus = res.status() == StatusCode::MULTI_STATUS;
    res.map(|body| {
        use http_body_util::BodyExt;
        if multistatus {
            body.map_frame(|frame| frame.map_data(quote_etags)).boxed_unsync()
        } else {
            body.boxed_unsync()
        }
    })
}

/// `getetag` values as RFC 4918 writes them, quoted like the `ETag` header (the library writes
/// the bare tag into the XML). Each chunk of a multistatus answer holds whole `response`
/// elements, so a property is never split across two.
pub(super) fn quote_etags(chunk: Bytes) -> Bytes {
    const OPEN: &[u8] = b"<D:getetag>";
    if !chunk.windows(OPEN.len()).any(|w| w == OPEN) {
        return chunk;
    }
    let mut out = Vec::with_capacity(chunk.len() + 64);
    let mut rest = &chunk[..];
    while let Some(at) = rest.windows(OPEN.len()).position(|w| w == OPEN) {
        let value_at = at + OPEN.len();
        out.extend_from_slice(&rest[..value_at]);
        rest = &rest[value_at..];
        let quoted = rest.starts_with(b"\"") || rest.starts_with(b"&quot;") || rest.starts_with(b"W/");
        let end = rest.iter().position(|&b| b == b'<').unwrap_or(rest.len());
        if quoted || end == 0 {
            continue;
        }
        out.push(b'"');
        out.extend_from_slice(&rest[..end]);
        out.push(b'"');
        rest = &rest[end..];
    }
    out.extend_from_slice(rest);
    Bytes::from(out)
}

pub(super) async fn answer(dav: &Dav, req: Request<Incoming>, user_id: String, username: String) -> Response<Body> {
    let (mut parts, body) = req.into_parts();
    let method = parts.method.clone();
    // What the request may change is decided here, from its own path and Destination, before
    // the library sees it: the library clears an existing destination *folder* before a MOVE
    // or COPY onto it, and walks a folder it is asked to DELETE.
    let scope = match scope(&parts) {
        Ok(scope) => scope,
        Err(refusal) => return answer_response(&refusal),
    };
    // One range policy on every face: a single range is served, anything else is the whole
    // file once (the library would answer every range of a list, each a copy of the file).
    // The one it serves is passed on as the policy read it (the library's own arithmetic
    // overflows on an end near 2^64).
    if matches!(method, http::Method::GET | http::Method::HEAD)
        && let Some(range) = parts.headers.remove(header::RANGE)
        && let Some(spec) = range.to_str().ok().and_then(crate::ranges::single)
        && let Ok(canonical) = HeaderValue::from_str(&spec.header())
    {
        parts.headers.insert(header::RANGE, canonical);
    }
    let body = if method == http::Method::PUT {
        use http_body_util::BodyExt;
        body.map_err(io::Error::other).boxed_unsync()
    } else {
        match bounded_body(body).await {
            Ok(body) => body,
            Err(refusal) => return error_response(&refusal),
        }
    };
    let req = Request::from_parts(parts, body);
    let caller = Caller(Arc::new(CallerInner {
        user_id: user_id.clone(),
        scope,
        refusal: Mutex::new(None),
        content_type: Mutex::new(None),
        stored: Mutex::new(None),
        found: Mutex::new(None),
    }));
    // A panic in the library (or in our file system) answers 500 instead of dropping the
    // connection; the process goes on either way.
    let handler = dav.handler(&user_id);
    let handled = std::panic::AssertUnwindSafe(handler.handle_guarded(req, username, caller.clone()));
    let mut res = match handled.catch_unwind().await {
        Ok(res) => res,
        Err(_) => {
            // The library's in-memory lock table can panic on some sequences of LOCK, MOVE and
            // DELETE, and a panic inside it poisons it for good: the user's locks are dropped
            // (as a restart drops them) so the next request starts from a sound table.
            lock(&dav.locks).remove(&user_id);
            log::error!("WebDAV: {method} panicked; answered 500 and dropped the user's locks");
            return error_response(&Error::internal("webdav", "the request handler panicked"));
        }
    };
    if let Some(refusal) = lock(&caller.0.refusal).take() {
        return error_response(&refusal);
    }
    match method.as_str() {
        // RFC 4918 9.1: an infinite-depth PROPFIND the server does not do is 403 with this
        // precondition (the library answers 501).
        "PROPFIND" if res.status() == StatusCode::NOT_IMPLEMENTED => *res.status_mut() = StatusCode::FORBIDDEN,
        "GET" | "HEAD" if res.status().is_success() => {
            let multipart =
                res.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"multipart/"));
            if let Some(ct) = lock(&caller.0.content_type).take()
                && !multipart
                && let Ok(value) = HeaderValue::from_str(&ct)
            {
                res.headers_mut().insert(header::CONTENT_TYPE, value);
            }
        }
        "PUT" if res.status().is_success() => match lock(&caller.0.stored).take() {
            // A new recording, under the name it got (the one asked for, or with a suffix).
            Some(PutOutcome::Created(name)) => {
                *res.status_mut() = StatusCode::CREATED;
                let location = format!("/{}", encode_segment(&shown(&name)));
                if let Ok(value) = HeaderValue::from_str(&location) {
                    res.headers_mut().insert(header::LOCATION, value);
                }
            }
            // The same bytes were already there under that name: nothing new.
            Some(PutOutcome::Existing) => *res.status_mut() = StatusCode::NO_CONTENT,
            None => {}
        },
        _ => {}
    }
    res
}

pub(super) fn error_response(error: &Error) -> Response<Body> {
    answer_response(&Answer::from(error))
}

pub(super) fn answer_response(answer: &Answer) -> Response<Body> {
    let mut res = Response::new(Body::from(answer.body()));
    *res.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in &answer.headers {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(*name, value);
        }
    }
    res
}

/// Percent-encodes one path segment for a `Location`.
pub(super) fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(super) fn client_ip(state: &AppState, req: &Request<Incoming>, peer: SocketAddr) -> Option<IpAddr> {
    match &state.config.server.client_ip_header {
        Some(name) => req.headers().get(name.as_str())?.to_str().ok()?.trim().parse().ok(),
        None => Some(peer.ip()),
    }
}

/// The user of a request's Basic credentials (username and app token), or the answer to send.
pub(super) async fn authenticate(
    state: &AppState,
    req: &Request<Incoming>,
    ip: Option<IpAddr>,
) -> Result<(String, String), Response<Body>> {
    let unauthorized = || {
        let mut res = error_response(&Error::Unauthenticated);
        res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(REALM));
        res
    };
    let Some((username, token)) = basic_credentials(req) else { return Err(unauthorized()) };
    let key = username.to_ascii_lowercase();
    let now = state.clock.now_ms();
    state.throttle.admit(&key, ip, now).map_err(|e| error_response(&e))?;
    let found = if auth::plausible_token(&token) {
        let hash = auth::token_hash(&token);
        let lookup = state.db.run(move |conn| crate::users::app_token_user(conn, &hash, now)).await;
        match lookup {
            Ok(found) => found,
            Err(e) => return Err(error_response(&e)),
        }
    } else {
        None
    };
    let user = found.map(|(user, _)| user).filter(|user| user.username == key);
    state.throttle.record(&key, ip, now, user.is_some());
    user.map(|user| (user.id, user.username)).ok_or_else(unauthorized)
}

pub(super) fn basic_credentials(req: &Request<Incoming>) -> Option<(String, String)> {
    use base64::Engine;
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, token) = text.split_once(':')?;
    Some((user.to_string(), token.to_string()))
}

#[cfg(test)]
mod tests {
    use super::super::meta::*;
    use super::*;

    #[test]
    pub(super) fn suffixes_round_trip() {
        let id = "0192f0c4-7d1e-7abc-9def-0123456789ab";
        assert_eq!(with_tail("memo.m4a", id), "memo [456789ab].m4a");
        assert_eq!(parse_tail("memo [456789ab].m4a"), Some(("memo.m4a".to_string(), "456789ab".to_string())));
        assert_eq!(with_tail("memo", id), "memo [456789ab]");
        assert_eq!(parse_tail("memo [456789ab]"), Some(("memo".to_string(), "456789ab".to_string())));
        assert_eq!(parse_tail("memo [45678]"), None);
        assert_eq!(parse_tail("memo.m4a"), None);
    }

    #[test]
    pub(super) fn slashes_are_shown_and_found() {
        assert_eq!(shown("a/b.wav"), "a\u{2215}b.wav");
        assert_eq!(stored_names("a\u{2215}b.wav"), vec!["a\u{2215}b.wav".to_string(), "a/b.wav".to_string()]);
    }

    #[test]
    pub(super) fn etags_in_listings_are_quoted_once() {
        let xml = Bytes::from_static(
            b"<D:prop><D:getetag>abc</D:getetag></D:prop><D:getetag>\"q\"</D:getetag><D:getetag></D:getetag>",
        );
        let fixed = quote_etags(xml);
        assert_eq!(
            &fixed[..],
            &b"<D:prop><D:getetag>\"abc\"</D:getetag></D:prop><D:getetag>\"q\"</D:getetag><D:getetag></D:getetag>"[..]
        );
        let plain = Bytes::from_static(b"<D:href>/</D:href>");
        assert_eq!(quote_etags(plain.clone()), plain);
    }

    #[test]
    pub(super) fn locations_are_encoded() {
        assert_eq!(encode_segment("memo (2).m4a"), "memo%20(2).m4a");
        assert_eq!(encode_segment("é?"), "%C3%A9%3F");
    }
}
