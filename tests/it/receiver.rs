//! A real webhook receiver for tests: an HTTP/1 server on `127.0.0.1:0` that records every
//! request and answers by a script.
//!
//! ```ignore
//! let receiver = Receiver::start(Script::statuses([500, 500])).await; // 500, 500, then 200
//! let url = receiver.url("/retrain");
//! // ... point a webhook at `url`, make it fire ...
//! let requests = receiver.wait_for(3, Duration::from_secs(5)).await;
//! assert_eq!(requests[2].status, 200);
//! assert_eq!(requests[0].header("idempotency-key"), requests[2].header("idempotency-key"));
//! ```
//!
//! - [`Script`] says how to answer: a queue of [`Reply`]s taken one per request, then a
//!   fallback (200 unless [`Script::then`] / [`Script::then_fn`] says otherwise). A fallback
//!   function sees the recorded [`Request`], so a test can answer by what arrived (verify a
//!   signature, count retries, ...). [`Receiver::set_script`] swaps the script mid-test.
//! - A [`Reply`] may wait before answering ([`Reply::delay`]), for timeout tests.
//! - [`Receiver::wait_for`] returns once `n` requests have arrived, and panics with the requests
//!   seen so far when the timeout passes first; nothing needs `sleep`.
//! - [`Receiver::set_hanging`] makes it accept connections and never answer on them (it reads
//!   what arrives until the client hangs up), as a stuck receiver does; requests on those
//!   connections are not recorded, only their `Idempotency-Key` ([`Receiver::held_keys`]).
//!   `set_hanging(false)` closes the connections held, as a restarted receiver would.
//! - [`Receiver::connections`] counts TCP connections: accepted and not yet closed by the
//!   client, the most seen open at once, and accepted in all.
//! - Dropping the receiver stops the server and closes its connections.

// A shared test API: not every test module uses every part of it.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{HeaderMap, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// One request as it arrived, with the status it was answered.
#[derive(Clone)]
pub struct Request {
    pub method: String,
    /// Path and query, e.g. `/retrain?x=1`.
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// When its headers and body had arrived (before any [`Reply::delay`]).
    pub received_at: Instant,
    /// The status the script answered (sent after the reply's delay, if the client waited).
    pub status: u16,
}

impl Request {
    /// A header's value as text; `None` when absent or not visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every value of a header, in arrival order.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics, naming the body, when it is not.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        match serde_json::from_slice(&self.body) {
            Ok(value) => value,
            Err(e) => panic!("request body is not JSON ({e}): {:?}", self.body_text()),
        }
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} -> {} {:?}",
            self.method,
            self.path,
            self.status,
            self.body_text()
        )
    }
}

/// One answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Wait this long before answering.
    pub delay: Duration,
}

impl Reply {
    /// Panics on a status hyper cannot send (outside 100..=999).
    #[track_caller]
    pub fn status(status: u16) -> Reply {
        assert!(
            StatusCode::from_u16(status).is_ok(),
            "invalid status {status} in a test script"
        );
        Reply {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn ok() -> Reply {
        Reply::status(200)
    }

    /// Panics on a name or value that is not a valid header.
    #[track_caller]
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        assert!(
            hyper::header::HeaderName::from_bytes(name.as_bytes()).is_ok()
                && hyper::header::HeaderValue::from_str(value).is_ok(),
            "invalid reply header {name:?}: {value:?} in a test script"
        );
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(mut self, body: &str) -> Reply {
        self.body = body.to_string();
        self
    }

    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

type ReplyFn = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

/// How the receiver answers: queued replies first, one per request, then the fallback.
#[derive(Clone)]
pub struct Script {
    queue: VecDeque<Reply>,
    fallback: Fallback,
}

#[derive(Clone)]
enum Fallback {
    Fixed(Reply),
    Fn(ReplyFn),
}

impl Script {
    /// 200 to everything.
    pub fn ok() -> Script {
        Script::replies([])
    }

    /// These statuses in order, one per request, then 200.
    #[track_caller]
    pub fn statuses(statuses: impl IntoIterator<Item = u16>) -> Script {
        Script::replies(statuses.into_iter().map(Reply::status).collect::<Vec<_>>())
    }

    /// These replies in order, one per request, then 200.
    pub fn replies(replies: impl IntoIterator<Item = Reply>) -> Script {
        Script {
            queue: replies.into_iter().collect(),
            fallback: Fallback::Fixed(Reply::ok()),
        }
    }

    /// Answers every request with what `f` returns for it.
    pub fn from_fn(f: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Script {
        Script::replies([]).then_fn(f)
    }

    /// Once the queue is used up, answer this (instead of 200).
    pub fn then(mut self, reply: Reply) -> Script {
        self.fallback = Fallback::Fixed(reply);
        self
    }

    /// Once the queue is used up, answer what `f` returns for each request.
    pub fn then_fn(mut self, f: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Script {
        self.fallback = Fallback::Fn(Arc::new(f));
        self
    }

    fn next(&mut self, request: &Request) -> Reply {
        match self.queue.pop_front() {
            Some(reply) => reply,
            None => match &self.fallback {
                Fallback::Fixed(reply) => reply.clone(),
                Fallback::Fn(f) => f(request),
            },
        }
    }
}

struct Shared {
    requests: Mutex<Vec<Request>>,
    script: Mutex<Script>,
    /// How many requests were recorded, for `wait_for`.
    count: watch::Sender<usize>,
    /// New connections are held and never answered; back to false, held ones are closed.
    hanging: watch::Sender<bool>,
    /// The `Idempotency-Key` of each request that arrived on a held connection.
    held_keys: Mutex<Vec<String>>,
    /// Connections accepted and not yet seen closed.
    open: AtomicUsize,
    /// The most `open` ever was.
    max_open: AtomicUsize,
    /// Connections accepted in all.
    accepted: AtomicUsize,
}

/// What [`Receiver::connections`] counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connections {
    /// Accepted and not yet seen closed (the receiver sees a close a moment after the client
    /// makes it, so this never undercounts).
    pub open: usize,
    /// The most open at once so far.
    pub max_open: usize,
    /// Accepted in all.
    pub accepted: usize,
}

/// A running receiver; dropping it stops the server.
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Binds `127.0.0.1:0` and serves in the background on the current tokio runtime.
    pub async fn start(script: Script) -> Receiver {
        Receiver::start_on("127.0.0.1:0", script).await
    }

    /// Binds `addr` (e.g. a port a test reserved earlier, for a receiver that comes up late).
    pub async fn start_on(addr: &str, script: Script) -> Receiver {
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("bind {addr} for the test receiver: {e}"));
        let addr = listener
            .local_addr()
            .expect("local address of the test receiver");
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            script: Mutex::new(script),
            count: watch::channel(0).0,
            hanging: watch::channel(false).0,
            held_keys: Mutex::new(Vec::new()),
            open: AtomicUsize::new(0),
            max_open: AtomicUsize::new(0),
            accepted: AtomicUsize::new(0),
        });
        let server = tokio::spawn(serve(listener, Arc::clone(&shared)));
        Receiver {
            addr,
            shared,
            server,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` + `path` (give it a leading `/`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Every request recorded so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared.requests).clone()
    }

    /// From now on, hold new connections without ever answering (`true`); or serve them by
    /// the script again and close those held (`false`).
    pub fn set_hanging(&self, hanging: bool) {
        self.shared.hanging.send_replace(hanging);
    }

    /// The `Idempotency-Key` of every request that arrived on a held connection, in order.
    pub fn held_keys(&self) -> Vec<String> {
        lock(&self.shared.held_keys).clone()
    }

    /// The TCP connections counted so far.
    pub fn connections(&self) -> Connections {
        Connections {
            open: self.shared.open.load(Ordering::SeqCst),
            max_open: self.shared.max_open.load(Ordering::SeqCst),
            accepted: self.shared.accepted.load(Ordering::SeqCst),
        }
    }

    /// Replaces the script (queued replies not yet used are dropped).
    pub fn set_script(&self, script: Script) {
        *lock(&self.shared.script) = script;
    }

    /// Returns every request recorded once at least `n` have arrived; panics, listing those
    /// that did, if `timeout` passes first.
    #[track_caller]
    pub fn wait_for(
        &self,
        n: usize,
        timeout: Duration,
    ) -> impl std::future::Future<Output = Vec<Request>> + '_ {
        let caller = std::panic::Location::caller();
        async move {
            let mut count = self.shared.count.subscribe();
            // `is_ok` drops the watch guard at once, so the server is never held up by it.
            let reached = async { count.wait_for(|c| *c >= n).await.is_ok() };
            match tokio::time::timeout(timeout, reached).await {
                Ok(true) => self.requests(),
                _ => panic!(
                    "{caller}: waited {timeout:?} for {n} request(s) at {}, got {}: {:#?}",
                    self.addr,
                    self.requests().len(),
                    self.requests()
                ),
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection task.
        self.server.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not hide the requests from the next assertion.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                // Closes that arrived with this connection are counted before it.
                tokio::task::yield_now().await;
                let open = OpenConnection::count(Arc::clone(&shared));
                let shared = Arc::clone(&shared);
                connections.spawn(async move {
                    let _open = open;
                    if *shared.hanging.borrow() {
                        hang(stream, &shared).await;
                        return;
                    }
                    let service = service_fn(move |request| answer(Arc::clone(&shared), request));
                    // A client that hangs up mid-request (e.g. after its timeout) is no error here.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// One accepted connection, counted open until its task ends (or is aborted).
struct OpenConnection(Arc<Shared>);

impl OpenConnection {
    fn count(shared: Arc<Shared>) -> OpenConnection {
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        let open = shared.open.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_open.fetch_max(open, Ordering::SeqCst);
        OpenConnection(shared)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Reads whatever arrives and never answers, until the client hangs up or hanging is switched
/// off (then it closes the connection). Notes the `Idempotency-Key` of the request's head (one
/// request a connection: a client waits for an answer that never comes).
async fn hang(mut stream: TcpStream, shared: &Shared) {
    let mut released = shared.hanging.subscribe();
    let mut buf = [0u8; 4096];
    // The head so far; `None` once read (or when it grows past 64 KiB).
    let mut head = Some(Vec::new());
    loop {
        let n = tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            // `is_ok` drops the watch guard at once.
            _ = async { released.wait_for(|h| !*h).await.is_ok() } => return,
        };
        let Some(bytes) = head.as_mut() else { continue };
        bytes.extend_from_slice(&buf[..n]);
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&bytes[..end]).into_owned();
            let key = text.lines().find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.trim()
                    .eq_ignore_ascii_case("idempotency-key")
                    .then(|| value.trim().to_string())
            });
            if let Some(key) = key {
                lock(&shared.held_keys).push(key);
            }
            head = None;
        } else if bytes.len() > 64 * 1024 {
            head = None;
        }
    }
}

async fn answer(
    shared: Arc<Shared>,
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes().to_vec(),
        // The body never arrived whole: nothing to record.
        Err(_) => return Ok(respond(&Reply::status(400))),
    };
    let mut recorded = Request {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_string(), |pq| pq.to_string()),
        headers: parts.headers,
        body,
        received_at: Instant::now(),
        status: 0,
    };
    let reply = lock(&shared.script).next(&recorded);
    recorded.status = reply.status;
    {
        let mut requests = lock(&shared.requests);
        requests.push(recorded);
        shared.count.send_replace(requests.len());
    }
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    Ok(respond(&reply))
}

fn respond(reply: &Reply) -> hyper::Response<Full<Bytes>> {
    let mut response = hyper::Response::new(Full::new(Bytes::from(reply.body.clone())));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in &reply.headers {
        // `Reply::header` checked both.
        if let (Ok(name), Ok(value)) = (
            hyper::header::HeaderName::from_bytes(name.as_bytes()),
            hyper::header::HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}
