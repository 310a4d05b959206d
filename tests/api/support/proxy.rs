//! The fault-injecting proxy: a TCP proxy on loopback in front of a server that passes bytes
//! both ways, and cuts connections (drops both ends at once) when told to (`cut`: a network that
//! drops, as a phone's does when it changes networks) or at planned points of what the clients
//! send (`Proxy::with_plan`), saying where in the HTTP exchange each planned cut landed.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::watch;

pub struct Proxy {
    pub addr: SocketAddr,
    /// Whether new connections are dropped at once (between `cut` and `restore`).
    down: Arc<AtomicBool>,
    /// Bumped to cut every open connection.
    cut: watch::Sender<u64>,
    /// The planned cuts made so far.
    cuts: Arc<Mutex<Vec<Cut>>>,
    rt: Option<tokio::runtime::Runtime>,
}

impl Proxy {
    /// A proxy to `upstream` that cuts only when told to.
    pub fn start(upstream: SocketAddr) -> Proxy {
        Proxy::with_plan(upstream, Vec::new())
    }

    /// A proxy to `upstream` that cuts at the planned points, then passes everything through.
    /// Each entry of `plan` is a number of bytes from clients since the previous cut (or the
    /// start), counted over all connections, not per connection: a client may keep an idle
    /// connection beside the one it is using, and a count per connection could leave a planned
    /// cut to a connection that never gets that far.
    pub fn with_plan(upstream: SocketAddr, plan: Vec<u64>) -> Proxy {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("the proxy's runtime");
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let plan = Arc::new(Mutex::new(Plan { left: VecDeque::from(plan), since_cut: 0 }));
        let down = Arc::new(AtomicBool::new(false));
        let (cut, _) = watch::channel(0u64);
        let cuts = Arc::new(Mutex::new(Vec::new()));
        let (is_down, cut_all, made) = (down.clone(), cut.clone(), cuts.clone());
        rt.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if is_down.load(Ordering::SeqCst) {
                    continue; // dropped at once: the client gets no answer
                }
                let (plan, made, cut_all) = (plan.clone(), made.clone(), cut_all.subscribe());
                tokio::spawn(async move {
                    if let Some(cut) = relay(client, upstream, &plan, cut_all).await {
                        made.lock().unwrap_or_else(|p| p.into_inner()).push(cut);
                    }
                });
            }
        });
        Proxy { addr, down, cut, cuts, rt: Some(rt) }
    }

    /// `http://` and the proxy's address.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Cuts every open connection and refuses new ones until `restore`.
    pub fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    pub fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }

    /// The planned cuts made so far, in the order they were made.
    pub fn cuts(&self) -> Vec<Cut> {
        self.cuts.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// A planned cut the proxy made: after `at` bytes from the client on the connection, at `place`.
#[derive(Debug, Clone)]
pub struct Cut {
    pub at: u64,
    pub place: Place,
}

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cut after {} bytes: ", self.at)?;
        match &self.place {
            Place::Headers(line) => write!(f, "in the headers of `{line}`"),
            Place::Body(line, at) => write!(f, "{at} bytes into the body of `{line}`"),
            Place::Between(line) if line.is_empty() => write!(f, "before any request"),
            Place::Between(line) => write!(f, "right after `{line}`"),
        }
    }
}

/// Where in the HTTP exchange a cut landed.
#[derive(Debug, Clone)]
pub enum Place {
    /// Inside a request's headers; what had come of its first line.
    Headers(String),
    /// This many bytes into the body of the request with this first line.
    Body(String, u64),
    /// Between requests: after the request with this first line (empty: before any).
    Between(String),
}

/// The planned cuts still to make, and the bytes from clients since the last one.
struct Plan {
    left: VecDeque<u64>,
    since_cut: u64,
}

impl Plan {
    /// How much of `n` bytes from a client to forward, and whether to cut after them.
    fn take(&mut self, n: usize) -> (usize, bool) {
        let Some(&at) = self.left.front() else { return (n, false) };
        let due = usize::try_from(at - self.since_cut).unwrap_or(usize::MAX);
        if due <= n {
            self.left.pop_front();
            self.since_cut = 0;
            (due, true)
        } else {
            self.since_cut += n as u64;
            (n, false)
        }
    }
}

/// Relays one connection until either side ends it, the plan cuts it (then returns the cut),
/// or every connection is cut.
async fn relay(
    client: tokio::net::TcpStream,
    upstream: SocketAddr,
    plan: &Mutex<Plan>,
    mut cut_all: watch::Receiver<u64>,
) -> Option<Cut> {
    let server = tokio::net::TcpStream::connect(upstream).await.ok()?;
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    // Where a cut lands is followed only while cuts are planned (a connection opened after the
    // last one is never cut).
    let mut framing = (!plan.lock().unwrap_or_else(|p| p.into_inner()).left.is_empty()).then(Framing::default);
    let up = async {
        let mut buf = vec![0u8; 64 << 10];
        let mut sent = 0u64;
        loop {
            let n = match from_client.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    let _ = to_server.shutdown().await;
                    return None;
                }
                Ok(n) => n,
            };
            let (take, cut) = plan.lock().unwrap_or_else(|p| p.into_inner()).take(n);
            if let Some(framing) = framing.as_mut() {
                framing.advance(&buf[..take]);
            }
            let wrote = to_server.write_all(&buf[..take]).await.is_ok();
            sent += take as u64;
            if cut {
                let framing = framing.as_ref().expect("a connection opened while cuts were planned is followed");
                return Some(framing.cut(sent));
            }
            if !wrote {
                return None;
            }
        }
    };
    let down = tokio::io::copy(&mut from_server, &mut to_client);
    tokio::pin!(up, down);
    // On a cut both sides are dropped at once: the client and the server each see the
    // connection die.
    tokio::select! {
        cut = &mut up => {
            if cut.is_none() {
                tokio::select! {
                    _ = &mut down => {}
                    _ = cut_all.changed() => {}
                }
            }
            cut
        }
        _ = &mut down => None,
        _ = cut_all.changed() => None,
    }
}

/// Follows the HTTP/1.1 requests on a connection (bodies by `Content-Length`), to say where a
/// cut landed.
#[derive(Default)]
struct Framing {
    /// The current request's bytes so far while in its headers.
    head: Vec<u8>,
    /// The current request's first line, once its headers are complete.
    request: String,
    /// Body bytes forwarded and still expected, once the headers are complete.
    body: Option<(u64, u64)>,
}

impl Framing {
    fn advance(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match &mut self.body {
                Some((done, left)) => {
                    let n = (*left).min(bytes.len() as u64);
                    *done += n;
                    *left -= n;
                    bytes = &bytes[usize::try_from(n).unwrap_or(bytes.len())..];
                    if *left == 0 {
                        self.body = None;
                    }
                }
                None => {
                    self.head.push(bytes[0]);
                    bytes = &bytes[1..];
                    if self.head.ends_with(b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&self.head).to_string();
                        self.request = head.lines().next().unwrap_or_default().to_string();
                        let length = head
                            .lines()
                            .filter_map(|l| l.split_once(':'))
                            .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
                            .and_then(|(_, v)| v.trim().parse::<u64>().ok())
                            .unwrap_or(0);
                        self.head.clear();
                        self.body = (length > 0).then_some((0, length));
                    }
                }
            }
        }
    }

    fn cut(&self, at: u64) -> Cut {
        let place = match self.body {
            Some((done, _)) => Place::Body(self.request.clone(), done),
            None if self.head.is_empty() => Place::Between(self.request.clone()),
            None => Place::Headers(String::from_utf8_lossy(&self.head).lines().next().unwrap_or_default().to_string()),
        };
        Cut { at, place }
    }
}
