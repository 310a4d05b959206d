//! WebDAV on its own port, for the apps people already have: folder-sync and recorder apps with
//! a WebDAV target, rclone, desktop file managers.
//!
//! Rocket cannot route WebDAV's methods, so this is a second listener (hyper) in the same
//! process, sharing the server's state and stopping with it. The protocol (XML, PROPFIND, LOCK,
//! Range, conditional headers) is `dav-server`'s; what it sees is [`RecordingsFs`], a file system
//! of our own over one user's recordings:
//!
//! - `/` holds the live recordings, each a file named by its recording's name, and `/Trash/`.
//! - Names are shown as they are, but for a `/` (shown as U+2215) and for duplicates: the folder
//!   is listed in name order, the oldest of several recordings with one name has it plain, each
//!   other is `stem [xxxxxxxx].ext` with the last 8 hex digits of its id. A recording named
//!   `Trash` always has the suffix (the folder has the plain name).
//! - `PUT` is a new recording through [`ingest::record`], as every upload; a taken name gets a
//!   ` (2)` suffix, the same bytes under the same name are the recording already there.
//! - `DELETE` moves to the trash (deletes for good inside `/Trash/`), `MOVE` renames, trashes
//!   (into `/Trash/`) or restores (out of it).
//!
//! Authentication is HTTP Basic with the username and an app token (never the password: a hash
//! per request would be too slow on small hardware), throttled as logins are.

mod guard;
mod xml;

use crate::answer::Answer;
use crate::auth;
use crate::error::Error;
use crate::ingest::{self, Draft, Place, Stored};
use crate::recordings::{self as rec, Folder, Purge, Recording};
use crate::removal::{delete_recording, purge};
use crate::state::AppState;
use crate::storage::{self, StreamError, Upload};
use bytes::{Buf, Bytes, BytesMut};
use dav_server::DavHandler;
use dav_server::body::Body;
use dav_server::davpath::DavPath;
use dav_server::fs::{
    DavDirEntry, DavFile, DavMetaData, FsError, FsFuture, FsResult, FsStream, GuardedFileSystem, OpenOptions,
    ReadDirMeta,
};
use dav_server::memls::MemLs;
use futures_util::FutureExt;
use guard::{Scope, bounded_body, scope};
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::io::{self, SeekFrom};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::AsyncReadExt;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// The folder of the trash, beside the recordings.
const TRASH: &str = "Trash";
/// A '/' in a recording's name is shown as DIVISION SLASH: file names cannot hold a '/'.
const SLASH: char = '\u{2215}';
/// Recordings fetched per step of a listing: memory per listing stays bounded at any size.
const PAGE: u32 = 500;
/// Bytes read from a recording's file per chunk of a GET.
const READ_CHUNK: usize = 256 * 1024;
const REALM: &str = "Basic realm=\"recorder\", charset=\"UTF-8\"";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The WebDAV port, bound when the state is opened (so a taken port stops startup with a clear
/// line) and served from liftoff until the server shuts down.
pub struct Listener {
    addr: SocketAddr,
    socket: Mutex<Option<std::net::TcpListener>>,
    task: Mutex<Option<JoinHandle<()>>>,
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

/// Starts serving WebDAV (once), until `shutdown`.
pub fn start(listener: &Listener, state: &AppState, shutdown: impl Future<Output = ()> + Send + 'static) {
    let Some(socket) = lock(&listener.socket).take() else { return };
    let tcp = match tokio::net::TcpListener::from_std(socket) {
        Ok(tcp) => tcp,
        Err(e) => {
            log::error!("cannot serve WebDAV on {}: {e}", listener.addr);
            return;
        }
    };
    for url in crate::logger::urls(listener.addr.ip(), listener.addr.port()) {
        log::info!(target: "recorder", "WebDAV reachable at {url} (sign in with your username and an app token)");
    }
    let task = tokio::spawn(serve(tcp, state.clone(), shutdown));
    *lock(&listener.task) = Some(task);
}

/// Waits for the WebDAV listener's requests to finish after a shutdown (at most the grace time).
pub async fn stopped(listener: &Listener) {
    let Some(task) = lock(&listener.task).take() else { return };
    let _ = task.await;
}

/// Per-user lock tables: one user's locks never touch another's paths.
struct Dav {
    state: AppState,
    locks: Mutex<HashMap<String, Box<MemLs>>>,
}

impl Dav {
    fn handler(&self, user_id: &str) -> DavHandler<Caller> {
        let locks = lock(&self.locks).entry(user_id.to_string()).or_insert_with(MemLs::new).clone();
        DavHandler::builder()
            .filesystem(Box::new(RecordingsFs { state: self.state.clone() }))
            .locksystem(locks)
            .read_buf_size(READ_CHUNK)
            .build_handler()
    }
}

async fn serve(tcp: tokio::net::TcpListener, state: AppState, shutdown: impl Future<Output = ()>) {
    let grace = Duration::from_secs(u64::from(state.config.shutdown_grace_secs));
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
        let dav = dav.clone();
        let service = hyper::service::service_fn(move |req| {
            let dav = dav.clone();
            async move { Ok::<_, Infallible>(handle(&dav, peer, req).await) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30))
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                log::debug!("WebDAV connection from {peer}: {e}");
            }
        });
    }
    drop(tcp);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(grace) => log::warn!("WebDAV requests still running after the grace period were cut"),
    }
}

/// One request: authenticate, let dav-server answer over the caller's recordings, then put our
/// own answer in where the file system refused with a reason, and log one line.
/// The body of every answer: the library's, or ours.
type AnyBody = http_body_util::combinators::UnsyncBoxBody<Bytes, io::Error>;

async fn handle(dav: &Dav, peer: SocketAddr, req: Request<Incoming>) -> Response<AnyBody> {
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
fn quote_etags(chunk: Bytes) -> Bytes {
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

async fn answer(dav: &Dav, req: Request<Incoming>, user_id: String, username: String) -> Response<Body> {
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

fn error_response(error: &Error) -> Response<Body> {
    answer_response(&Answer::from(error))
}

fn answer_response(answer: &Answer) -> Response<Body> {
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
fn encode_segment(segment: &str) -> String {
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

fn client_ip(state: &AppState, req: &Request<Incoming>, peer: SocketAddr) -> Option<IpAddr> {
    match &state.config.client_ip_header {
        Some(name) => req.headers().get(name.as_str())?.to_str().ok()?.trim().parse().ok(),
        None => Some(peer.ip()),
    }
}

/// The user of a request's Basic credentials (username and app token), or the answer to send.
async fn authenticate(
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

fn basic_credentials(req: &Request<Incoming>) -> Option<(String, String)> {
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

/// The caller of one request, and what the file system has to tell the response about it.
#[derive(Clone)]
struct Caller(Arc<CallerInner>);

struct CallerInner {
    user_id: String,
    /// What the request may remove.
    scope: Scope,
    /// Our own answer instead of the library's (415 for a file that is not audio, 413, 507…).
    refusal: Mutex<Option<Error>>,
    /// The recording's stored type, for a GET's Content-Type (the library guesses by name).
    content_type: Mutex<Option<String>>,
    /// What a PUT stored.
    stored: Mutex<Option<PutOutcome>>,
    /// The last name looked up and the recording it stands for: the library asks for a file's
    /// metadata and then opens it (or deletes, or moves it), and one lookup serves both.
    found: Mutex<Option<(Folder, String, Recording)>>,
}

enum PutOutcome {
    /// Stored under this name.
    Created(String),
    Existing,
}

impl Caller {
    /// Keeps `error` as the answer and gives the library an error to stop with.
    fn refuse(&self, error: Error, stop: FsError) -> FsError {
        *lock(&self.0.refusal) = Some(error);
        stop
    }
}

/// Where a path points.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Spot {
    Root,
    TrashFolder,
    File(Folder, String),
    Nowhere,
}

fn spot(path: &DavPath) -> Spot {
    let Ok(text) = std::str::from_utf8(path.as_bytes()) else { return Spot::Nowhere };
    let parts: Vec<&str> = text.split('/').filter(|s| !s.is_empty()).collect();
    match parts.as_slice() {
        [] => Spot::Root,
        [folder] if *folder == TRASH => Spot::TrashFolder,
        [name] => Spot::File(Folder::Live, (*name).to_string()),
        [folder, name] if *folder == TRASH => Spot::File(Folder::Trash, (*name).to_string()),
        _ => Spot::Nowhere,
    }
}

/// The shown name of a recording's name: '/' cannot be in a file name.
fn shown(name: &str) -> String {
    name.replace('/', &SLASH.to_string())
}

/// The names a shown name may stand for.
fn stored_names(shown: &str) -> Vec<String> {
    let mut names = vec![shown.to_string()];
    if shown.contains(SLASH) {
        names.push(shown.replace(SLASH, "/"));
    }
    names
}

/// The last 8 hex digits of an id: the suffix that tells recordings of one name apart.
fn tail(id: &str) -> String {
    let hex: String = id.chars().filter(char::is_ascii_hexdigit).collect();
    hex[hex.len().saturating_sub(8)..].to_ascii_lowercase()
}

fn with_tail(shown: &str, id: &str) -> String {
    let (stem, ext) = rec::split_extension(shown);
    format!("{stem} [{}]{ext}", tail(id))
}

/// "memo [1a2b3c4d].m4a" → ("memo.m4a", "1a2b3c4d").
fn parse_tail(shown: &str) -> Option<(String, String)> {
    let (stem, ext) = rec::split_extension(shown);
    let stem = stem.strip_suffix(']')?;
    let (base, hex) = stem.rsplit_once(" [")?;
    (hex.len() == 8 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| (format!("{base}{ext}"), hex.to_string()))
}

/// Whether the plain name is not the recording's to show (the Trash folder has it).
fn reserved(folder: Folder, name: &str) -> bool {
    folder == Folder::Live && name == TRASH
}

/// The recording a shown name stands for. Blocking.
fn resolve(
    conn: &rusqlite::Connection,
    user_id: &str,
    folder: Folder,
    shown: &str,
) -> Result<Option<Recording>, Error> {
    for name in stored_names(shown) {
        if reserved(folder, &name) {
            continue;
        }
        if let Some(first) = rec::named(conn, user_id, folder, &name)?.into_iter().next() {
            return Ok(Some(first));
        }
    }
    if let Some((base, hex)) = parse_tail(shown) {
        for name in stored_names(&base) {
            let all = rec::named(conn, user_id, folder, &name)?;
            let skip = usize::from(!reserved(folder, &name));
            if let Some(found) = all.into_iter().skip(skip).find(|r| tail(&r.id) == hex) {
                return Ok(Some(found));
            }
        }
    }
    Ok(None)
}

fn ms_time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

#[derive(Debug, Clone)]
struct Meta {
    len: u64,
    modified: SystemTime,
    created: SystemTime,
    dir: bool,
    etag: Option<String>,
}

impl Meta {
    fn folder(at_ms: i64) -> Meta {
        Meta { len: 0, modified: ms_time(at_ms), created: ms_time(at_ms), dir: true, etag: None }
    }

    fn of(recording: &Recording) -> Meta {
        // A recording's bytes never change: its time is when it was stored, its tag its hash
        // (as the API's audio ETag).
        Meta {
            len: recording.size.max(0) as u64,
            modified: ms_time(recording.created_ms),
            created: ms_time(recording.created_ms),
            dir: false,
            etag: Some(recording.sha256.clone()),
        }
    }
}

impl DavMetaData for Meta {
    fn len(&self) -> u64 {
        self.len
    }

    fn modified(&self) -> FsResult<SystemTime> {
        Ok(self.modified)
    }

    fn created(&self) -> FsResult<SystemTime> {
        Ok(self.created)
    }

    fn is_dir(&self) -> bool {
        self.dir
    }

    fn etag(&self) -> Option<String> {
        match &self.etag {
            Some(tag) => Some(tag.clone()),
            None => self.modified.duration_since(UNIX_EPOCH).ok().map(|d| format!("{:x}", d.as_millis())),
        }
    }
}

struct Entry {
    name: String,
    meta: Meta,
}

impl DavDirEntry for Entry {
    fn name(&self) -> Vec<u8> {
        self.name.as_bytes().to_vec()
    }

    fn metadata(&self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let meta: Box<dyn DavMetaData> = Box::new(self.meta.clone());
        Box::pin(std::future::ready(Ok(meta)))
    }
}

/// A database or disk failure: logged here, a plain 500 to the client.
fn failure(e: Error) -> FsError {
    log::error!("WebDAV: {}", e);
    FsError::GeneralFailure
}

/// One user's recordings as a file system (the user comes with each call).
#[derive(Clone)]
struct RecordingsFs {
    state: AppState,
}

impl RecordingsFs {
    async fn find(&self, caller: &Caller, folder: Folder, name: &str) -> FsResult<Recording> {
        if let Some((f, n, recording)) = lock(&caller.0.found).as_ref()
            && *f == folder
            && n == name
        {
            return Ok(recording.clone());
        }
        let (user, wanted) = (caller.0.user_id.clone(), name.to_string());
        let found = self.state.db.run(move |conn| resolve(conn, &user, folder, &wanted)).await.map_err(failure)?;
        let recording = found.ok_or(FsError::NotFound)?;
        *lock(&caller.0.found) = Some((folder, name.to_string(), recording.clone()));
        Ok(recording)
    }

    async fn open_write(
        &self,
        caller: &Caller,
        folder: Folder,
        name: &str,
        options: &OpenOptions,
    ) -> FsResult<PutFile> {
        if folder == Folder::Trash {
            return Err(caller.refuse(Error::forbidden("nothing can be put in the trash"), FsError::Forbidden));
        }
        let name = rec::normalize_name(name).map_err(|e| caller.refuse(e, FsError::Forbidden))?;
        let config = &self.state.config;
        let max = config.max_upload_size;
        if options.size.is_some_and(|size| size > max) {
            return Err(caller.refuse(ingest::too_large(max), FsError::TooLarge));
        }
        let budget = ingest::space_budget(&self.state).await.map_err(failure)?;
        if options.size.unwrap_or(1) > budget {
            return Err(caller.refuse(storage::insufficient_storage(), FsError::InsufficientStorage));
        }
        let upload = ingest::start_upload(&self.state, &caller.0.user_id, Some(&name), None).await.map_err(failure)?;
        Ok(PutFile {
            state: self.state.clone(),
            caller: caller.clone(),
            name,
            upload: Some(upload),
            max,
            budget,
            stored: None,
        })
    }

    async fn open_read(&self, caller: &Caller, folder: Folder, name: &str) -> FsResult<ReadFile> {
        let recording = self.find(caller, folder, name).await?;
        let id = Uuid::parse_str(&recording.id).map_err(|_| FsError::GeneralFailure)?;
        // Opened at the first read, from where a seek left it (a ranged GET seeks first).
        let (size, store) = (recording.size.max(0) as u64, recording.store);
        *lock(&caller.0.content_type) = Some(recording.content_type.clone());
        Ok(ReadFile {
            storage: self.state.storage.clone(),
            store,
            id,
            size,
            pos: 0,
            body: None,
            meta: Meta::of(&recording),
        })
    }

    fn listing(&self, caller: &Caller, folder: Folder) -> FsStream<Box<dyn DavDirEntry>> {
        let walk = Walk {
            state: self.state.clone(),
            user_id: caller.0.user_id.clone(),
            folder,
            after: None,
            previous: None,
            buffer: VecDeque::new(),
            done: false,
        };
        let mut first = Vec::new();
        if folder == Folder::Live {
            let trash: Box<dyn DavDirEntry> =
                Box::new(Entry { name: TRASH.to_string(), meta: Meta::folder(self.state.started_ms) });
            first.push(Ok(trash));
        }
        let rest = futures_util::stream::unfold(walk, |mut walk| async move {
            let entry = walk.next().await?;
            Some((entry, walk))
        });
        Box::pin(futures_util::StreamExt::chain(futures_util::stream::iter(first), rest))
    }

    async fn rename_to(&self, caller: &Caller, from: Spot, to: Spot) -> FsResult<()> {
        let (from_folder, from_name, to_folder, to_name) = match (from, to) {
            (Spot::File(a, x), Spot::File(b, y)) => (a, x, b, y),
            _ => return Err(FsError::Forbidden),
        };
        let recording = self.find(caller, from_folder, &from_name).await?;
        let user_id = caller.0.user_id.clone();
        match (from_folder, to_folder) {
            (Folder::Live, Folder::Live) => {
                let name = rec::normalize_name(&to_name).map_err(|e| caller.refuse(e, FsError::Forbidden))?;
                if name != recording.name {
                    let user = user_id.clone();
                    let renamed =
                        self.state.db.run_durably(move |conn| rec::rename(conn, &user, &recording.id, &name)).await;
                    renamed.map_err(failure)?.ok_or(FsError::NotFound)?;
                    self.state.changes.user(&user_id);
                }
                Ok(())
            }
            (Folder::Live, Folder::Trash) => {
                let trashed = delete_recording(&self.state, user_id, recording.id, false).await;
                if trashed.map_err(failure)? { Ok(()) } else { Err(FsError::NotFound) }
            }
            (Folder::Trash, Folder::Live) => {
                let name = rec::normalize_name(&to_name).map_err(|e| caller.refuse(e, FsError::Forbidden))?;
                let user = user_id.clone();
                let restored = self
                    .state
                    .db
                    .run_durably(move |conn| {
                        let tx = rec::write_transaction(conn)?;
                        let restored = rec::restore(&tx, &user, &recording.id)?;
                        if restored.is_some() && name != recording.name {
                            rec::rename(&tx, &user, &recording.id, &name)?;
                        }
                        tx.commit()?;
                        Ok(restored.is_some())
                    })
                    .await
                    .map_err(failure)?;
                if !restored {
                    return Err(FsError::NotFound);
                }
                self.state.changes.user(&user_id);
                Ok(())
            }
            (Folder::Trash, Folder::Trash) => {
                Err(caller.refuse(Error::forbidden("recordings in the trash cannot be renamed"), FsError::Forbidden))
            }
        }
    }

    async fn remove(&self, caller: &Caller, at: Spot) -> FsResult<()> {
        let Spot::File(folder, name) = at else {
            return Err(if at == Spot::Nowhere { FsError::NotFound } else { FsError::Forbidden });
        };
        // The library removes what it decides to (the files of a folder, a destination): only
        // the one file the request itself names may go.
        let scope = &caller.0.scope;
        if scope.removable.as_ref().is_none_or(|(f, n)| *f != folder || *n != name) {
            log::warn!("WebDAV: refused to remove {name:?}, which the request does not name");
            let refusal = Error::forbidden("a request removes at most the one file it names");
            return Err(caller.refuse(refusal, FsError::Forbidden));
        }
        let user_id = caller.0.user_id.clone();
        match folder {
            // A MOVE into the trash over a file of the same name: the trash keeps both (its
            // listing tells them apart), nothing is purged.
            Folder::Trash if scope.moving => Ok(()),
            Folder::Live => {
                let recording = self.find(caller, Folder::Live, &name).await?;
                let trashed = delete_recording(&self.state, user_id, recording.id, false).await;
                if trashed.map_err(failure)? { Ok(()) } else { Err(FsError::NotFound) }
            }
            Folder::Trash => {
                let recording = self.find(caller, Folder::Trash, &name).await?;
                let purged = purge(&self.state, user_id, Purge::OneInTrash(recording.id)).await.map_err(failure)?;
                if purged > 0 { Ok(()) } else { Err(FsError::NotFound) }
            }
        }
    }
}

/// A folder listed page by page in (name, id) order, telling duplicates apart as it goes.
struct Walk {
    state: AppState,
    user_id: String,
    folder: Folder,
    after: Option<(String, String)>,
    /// The stored name of the entry before: one that repeats it gets the id suffix.
    previous: Option<String>,
    buffer: VecDeque<Recording>,
    done: bool,
}

impl Walk {
    async fn next(&mut self) -> Option<FsResult<Box<dyn DavDirEntry>>> {
        if self.buffer.is_empty() && !self.done {
            let (user, folder, after) = (self.user_id.clone(), self.folder, self.after.clone());
            let page = self
                .state
                .db
                .run(move |conn| {
                    rec::by_name_page(conn, &user, folder, after.as_ref().map(|(n, i)| (n.as_str(), i.as_str())), PAGE)
                })
                .await;
            match page {
                Ok(rows) => {
                    self.done = rows.len() < PAGE as usize;
                    self.after = rows.last().map(|r| (r.name.clone(), r.id.clone()));
                    self.buffer.extend(rows);
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(failure(e)));
                }
            }
        }
        let recording = self.buffer.pop_front()?;
        let repeated = self.previous.as_deref() == Some(recording.name.as_str());
        let plain = shown(&recording.name);
        let name =
            if repeated || reserved(self.folder, &recording.name) { with_tail(&plain, &recording.id) } else { plain };
        self.previous = Some(recording.name.clone());
        let entry: Box<dyn DavDirEntry> = Box::new(Entry { name, meta: Meta::of(&recording) });
        Some(Ok(entry))
    }
}

impl GuardedFileSystem<Caller> for RecordingsFs {
    fn open<'a>(
        &'a self,
        path: &'a DavPath,
        options: OpenOptions,
        caller: &'a Caller,
    ) -> FsFuture<'a, Box<dyn DavFile>> {
        async move {
            let Spot::File(folder, name) = spot(path) else { return Err(FsError::Forbidden) };
            let file: Box<dyn DavFile> = if options.write {
                Box::new(self.open_write(caller, folder, &name, &options).await?)
            } else {
                Box::new(self.open_read(caller, folder, &name).await?)
            };
            Ok(file)
        }
        .boxed()
    }

    fn read_dir<'a>(
        &'a self,
        path: &'a DavPath,
        _meta: ReadDirMeta,
        caller: &'a Caller,
    ) -> FsFuture<'a, FsStream<Box<dyn DavDirEntry>>> {
        async move {
            match spot(path) {
                Spot::Root => Ok(self.listing(caller, Folder::Live)),
                Spot::TrashFolder => Ok(self.listing(caller, Folder::Trash)),
                Spot::File(..) => Err(FsError::Forbidden),
                Spot::Nowhere => Err(FsError::NotFound),
            }
        }
        .boxed()
    }

    fn metadata<'a>(&'a self, path: &'a DavPath, caller: &'a Caller) -> FsFuture<'a, Box<dyn DavMetaData>> {
        async move {
            let meta = match spot(path) {
                Spot::Root | Spot::TrashFolder => Meta::folder(self.state.started_ms),
                Spot::File(folder, name) => Meta::of(&self.find(caller, folder, &name).await?),
                Spot::Nowhere => return Err(FsError::NotFound),
            };
            let meta: Box<dyn DavMetaData> = Box::new(meta);
            Ok(meta)
        }
        .boxed()
    }

    fn create_dir<'a>(&'a self, _path: &'a DavPath, caller: &'a Caller) -> FsFuture<'a, ()> {
        let refusal = Error::forbidden("there are no folders to make: recordings live in one folder");
        let error = caller.refuse(refusal, FsError::Forbidden);
        Box::pin(std::future::ready(Err(error)))
    }

    fn remove_dir<'a>(&'a self, _path: &'a DavPath, _caller: &'a Caller) -> FsFuture<'a, ()> {
        Box::pin(std::future::ready(Err(FsError::Forbidden)))
    }

    fn remove_file<'a>(&'a self, path: &'a DavPath, caller: &'a Caller) -> FsFuture<'a, ()> {
        async move { self.remove(caller, spot(path)).await }.boxed()
    }

    fn rename<'a>(&'a self, from: &'a DavPath, to: &'a DavPath, caller: &'a Caller) -> FsFuture<'a, ()> {
        async move { self.rename_to(caller, spot(from), spot(to)).await }.boxed()
    }

    fn copy<'a>(&'a self, _from: &'a DavPath, _to: &'a DavPath, caller: &'a Caller) -> FsFuture<'a, ()> {
        let refusal = Error::forbidden("recordings cannot be copied on the server; download and upload instead");
        let error = caller.refuse(refusal, FsError::Forbidden);
        Box::pin(std::future::ready(Err(error)))
    }

    fn get_quota<'a>(&'a self, caller: &'a Caller) -> FsFuture<'a, (u64, Option<u64>)> {
        async move {
            let user = caller.0.user_id.clone();
            let usage = self.state.db.run(move |conn| rec::usage(conn, &user)).await.map_err(failure)?;
            let free = ingest::space_budget(&self.state).await.map_err(failure)?;
            Ok(((usage.bytes + usage.trash_bytes).max(0) as u64, Some(free)))
        }
        .boxed()
    }
}

/// A recording's file, read for GET.
struct ReadFile {
    storage: storage::Storage,
    store: crate::storage::store::Backend,
    id: Uuid,
    size: u64,
    pos: u64,
    /// The bytes from `pos` on, once a read asked for them.
    body: Option<crate::storage::store::Body>,
    meta: Meta,
}

impl std::fmt::Debug for ReadFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadFile").field("id", &self.id).field("pos", &self.pos).finish_non_exhaustive()
    }
}

impl DavFile for ReadFile {
    fn metadata(&mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let meta: Box<dyn DavMetaData> = Box::new(self.meta.clone());
        Box::pin(std::future::ready(Ok(meta)))
    }

    fn write_buf(&mut self, _buf: Box<dyn Buf + Send>) -> FsFuture<'_, ()> {
        Box::pin(std::future::ready(Err(FsError::Forbidden)))
    }

    fn write_bytes(&mut self, _buf: Bytes) -> FsFuture<'_, ()> {
        Box::pin(std::future::ready(Err(FsError::Forbidden)))
    }

    fn read_bytes(&mut self, count: usize) -> FsFuture<'_, Bytes> {
        async move {
            if self.body.is_none() {
                let len = self.size.saturating_sub(self.pos);
                let opening = self.storage.store(self.store).map(|store| store.open_range(self.id, self.pos, len));
                let opened = match opening {
                    Ok(opening) => opening.await,
                    Err(e) => Err(e),
                };
                self.body = Some(opened.map_err(|e| {
                    log::error!("WebDAV: cannot open recording {}: {e}", self.id);
                    if matches!(e, crate::storage::store::BlobError::NotFound) {
                        FsError::NotFound
                    } else {
                        FsError::GeneralFailure
                    }
                })?);
            }
            let mut buf = BytesMut::with_capacity(count);
            if let Some(body) = self.body.as_mut() {
                while buf.len() < count {
                    let n = body.read_buf(&mut buf).await.map_err(|e| {
                        log::error!("WebDAV: reading a recording: {e}");
                        FsError::GeneralFailure
                    })?;
                    if n == 0 {
                        break;
                    }
                }
            }
            self.pos += buf.len() as u64;
            Ok(buf.freeze())
        }
        .boxed()
    }

    fn seek(&mut self, pos: SeekFrom) -> FsFuture<'_, u64> {
        let target = match pos {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(n) => self.size.checked_add_signed(n),
            SeekFrom::Current(n) => self.pos.checked_add_signed(n),
        };
        let moved = match target {
            Some(target) => {
                if target != self.pos {
                    self.body = None;
                    self.pos = target;
                }
                Ok(target)
            }
            None => Err(FsError::GeneralFailure),
        };
        Box::pin(std::future::ready(moved))
    }

    fn flush(&mut self) -> FsFuture<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// A PUT in progress: the body streams into a temp file (hashed as it goes, its first bytes
/// sniffed), and the flush at its end stores it as every upload is stored.
struct PutFile {
    state: AppState,
    caller: Caller,
    name: String,
    /// `None` once finished (or failed).
    upload: Option<Upload>,
    max: u64,
    budget: u64,
    stored: Option<Meta>,
}

impl std::fmt::Debug for PutFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutFile").field("name", &self.name).finish_non_exhaustive()
    }
}

impl PutFile {
    async fn push(&mut self, bytes: &[u8]) -> FsResult<()> {
        let Some(upload) = self.upload.as_mut() else { return Err(FsError::GeneralFailure) };
        let limit = self.max.min(self.budget);
        match upload.push(bytes, limit).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let size = upload.size() + bytes.len() as u64;
                self.upload = None;
                let stop = match &e {
                    StreamError::TooLarge if size > self.budget && self.budget < self.max => {
                        FsError::InsufficientStorage
                    }
                    StreamError::TooLarge => FsError::TooLarge,
                    StreamError::NotAudio => FsError::Forbidden,
                    _ => FsError::GeneralFailure,
                };
                Err(self.caller.refuse(ingest::stream_error(e, self.max, self.budget, size), stop))
            }
        }
    }

    async fn store(&mut self) -> FsResult<()> {
        let Some(upload) = self.upload.take() else {
            return if self.stored.is_some() { Ok(()) } else { Err(FsError::GeneralFailure) };
        };
        if upload.size() == 0 {
            return Err(self.caller.refuse(ingest::empty_body(), FsError::Forbidden));
        }
        let mut finished = upload.finish().await.map_err(|e| self.caller.refuse(e, FsError::GeneralFailure))?;
        let streamed = finished.object().await.map_err(|e| self.caller.refuse(e, FsError::GeneralFailure))?;
        let state = &self.state;
        let draft = Draft {
            user_id: self.caller.0.user_id.clone(),
            name: Some(self.name.clone()),
            recorded_at: None,
            idempotency_key: None,
            file_name: true,
            streamed,
        };
        let (db, storage, now) = (state.db.clone(), state.storage.clone(), state.clock.now_ms());
        let temp_path = finished.temp.path().to_path_buf();
        let (size, sha256) = (finished.size, finished.sha256.clone());
        let stored = crate::db::blocking(move || {
            let mut conn = db.conn()?;
            ingest::record(&mut conn, &storage, now, &temp_path, size, sha256, Place::Move, &draft, &mut |_, _| {
                Ok(true)
            })
        })
        .await
        .map_err(|e| {
            let stop = if matches!(e, Error::NotAudio(_)) { FsError::Forbidden } else { FsError::GeneralFailure };
            self.caller.refuse(e, stop)
        })?;
        let outcome = match stored {
            Stored::Created(recording) => {
                finished.temp.disarm();
                state.jobs.wake();
                state.changes.user(&self.caller.0.user_id);
                state.metrics.uploaded(recording.size.max(0) as u64);
                self.stored = Some(Meta::of(&recording));
                PutOutcome::Created(recording.name)
            }
            Stored::Existing(recording) => {
                self.stored = Some(Meta::of(&recording));
                PutOutcome::Existing
            }
            Stored::Declined => return Err(FsError::GeneralFailure),
        };
        *lock(&self.caller.0.stored) = Some(outcome);
        Ok(())
    }
}

impl DavFile for PutFile {
    fn metadata(&mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let meta = self.stored.clone().unwrap_or(Meta {
            len: self.upload.as_ref().map_or(0, Upload::size),
            modified: SystemTime::now(),
            created: SystemTime::now(),
            dir: false,
            etag: None,
        });
        let meta: Box<dyn DavMetaData> = Box::new(meta);
        Box::pin(std::future::ready(Ok(meta)))
    }

    fn write_buf(&mut self, mut buf: Box<dyn Buf + Send>) -> FsFuture<'_, ()> {
        async move {
            let bytes = buf.copy_to_bytes(buf.remaining());
            self.push(&bytes).await
        }
        .boxed()
    }

    fn write_bytes(&mut self, buf: Bytes) -> FsFuture<'_, ()> {
        async move { self.push(&buf).await }.boxed()
    }

    fn read_bytes(&mut self, _count: usize) -> FsFuture<'_, Bytes> {
        Box::pin(std::future::ready(Err(FsError::Forbidden)))
    }

    fn seek(&mut self, pos: SeekFrom) -> FsFuture<'_, u64> {
        // Only a PUT of a whole file: a ranged PUT (Content-Range) is refused.
        let at_start = matches!(pos, SeekFrom::Start(0));
        let error = Error::invalid("partial PUTs are not supported: send the whole file");
        let result = if at_start { Ok(0) } else { Err(self.caller.refuse(error, FsError::NotImplemented)) };
        Box::pin(std::future::ready(result))
    }

    fn flush(&mut self) -> FsFuture<'_, ()> {
        async move { self.store().await }.boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_round_trip() {
        let id = "0192f0c4-7d1e-7abc-9def-0123456789ab";
        assert_eq!(with_tail("memo.m4a", id), "memo [456789ab].m4a");
        assert_eq!(parse_tail("memo [456789ab].m4a"), Some(("memo.m4a".to_string(), "456789ab".to_string())));
        assert_eq!(with_tail("memo", id), "memo [456789ab]");
        assert_eq!(parse_tail("memo [456789ab]"), Some(("memo".to_string(), "456789ab".to_string())));
        assert_eq!(parse_tail("memo [45678]"), None);
        assert_eq!(parse_tail("memo.m4a"), None);
    }

    #[test]
    fn slashes_are_shown_and_found() {
        assert_eq!(shown("a/b.wav"), "a\u{2215}b.wav");
        assert_eq!(stored_names("a\u{2215}b.wav"), vec!["a\u{2215}b.wav".to_string(), "a/b.wav".to_string()]);
    }

    #[test]
    fn etags_in_listings_are_quoted_once() {
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
    fn locations_are_encoded() {
        assert_eq!(encode_segment("memo (2).m4a"), "memo%20(2).m4a");
        assert_eq!(encode_segment("é?"), "%C3%A9%3F");
    }
}
