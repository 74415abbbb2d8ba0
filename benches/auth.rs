//! A wrong-password flood (`cargo bench --bench auth`): does it hold up anything but the
//! password checks? Issue 10, item 2.
//!
//! 1. Writes a temporary config: a web config with one user (`alice`, bcrypt cost 10 as
//!    `htpasswd -nBC 10` makes it) and one write token, no TLS; one group (`interval: 1s`)
//!    with one EMA rule. Starts `target/release/driftgauge serve` (the binary Cargo builds for
//!    this bench) as a separate process on a free loopback port; waits for `/-/ready` with
//!    alice's password, which caches it.
//! 2. **Quiet**, for `--seconds`: a scraper (`GET /metrics` as alice) and a pusher
//!    (`POST /api/v1/samples` with the token), each on its own keep-alive connection, one
//!    request every 50 ms, every request timed.
//! 3. **Flood**: `--attackers` connections (900 by default; a tokio runtime on one thread
//!    here) send `GET /metrics` with a wrong password, half as alice, half as a name that
//!    does not exist, each request again as soon as the last is answered (a new connection
//!    when the server closes one). Once all are connected, the scraper and the pusher run
//!    again for `--seconds`.
//!
//! Reported for both phases: the scraper's and the pusher's median, p99 (nearest rank) and
//! max; evaluation: the longest gap between two successive evaluations the scrapes showed
//! (`driftgauge_rule_group_last_evaluation_timestamp_seconds`) and the oldest last evaluation
//! a scrape saw, against the 1 s interval ("never more than one interval late": gap ≤ 2 s);
//! for the flood, the attackers' answers by status and per second, and the server's CPU time
//! and threads. Every legitimate answer must be 200, every refusal 401 or 429; the bench fails
//! loudly otherwise.
//!
//! Options (after `--`): `--attackers=N` (900), `--seconds=S` (20), `--cost=C` (alice's bcrypt
//! cost, 10), `--binary=PATH` (another driftgauge binary, e.g. an older build to compare).
//! Each attacker holds a descriptor here and one in the server: the bench refuses to start
//! when `ulimit -n` is below attackers + 256.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;

const INTERVAL_S: f64 = 1.0;

const CONFIG: &str = "global: {evaluation_interval: 1s}\nrule_files: [\"rules/*.yml\"]\n";

const RULES: &str = r#"groups:
  - name: quality
    interval: 1s
    rules:
      - name: accuracy_degradation
        detector: ema
        series: 'model_accuracy'
        smoothing: 0.5
        below: 0.85
"#;

const SAMPLE: &str =
    r#"{"samples":[{"metric":"model_accuracy","labels":{"model":"fraud"},"value":0.93}]}"#;

struct Opts {
    attackers: usize,
    seconds: f64,
    cost: u32,
    binary: Option<PathBuf>,
}

fn parse_args() -> Opts {
    let mut o = Opts {
        attackers: 900,
        seconds: 20.0,
        cost: 10,
        binary: None,
    };
    for a in std::env::args().skip(1) {
        let (k, v) = match a.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (a.as_str(), None),
        };
        match k {
            "--bench" => {}
            "--attackers" => {
                o.attackers = v
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| die(&format!("bad option {a}")))
            }
            "--seconds" => {
                o.seconds = v
                    .and_then(|v| v.parse().ok())
                    .filter(|&s: &f64| s > 0.0 && s < 3600.0)
                    .unwrap_or_else(|| die(&format!("bad option {a}")))
            }
            "--cost" => {
                o.cost = v
                    .and_then(|v| v.parse().ok())
                    .filter(|c| (4..=16).contains(c))
                    .unwrap_or_else(|| die(&format!("bad option {a}")))
            }
            "--binary" => o.binary = v.map(PathBuf::from),
            _ => die(&format!(
                "unknown option {a}; usage: cargo bench --bench auth -- [--attackers=N] \
                 [--seconds=S] [--cost=C] [--binary=PATH]"
            )),
        }
    }
    o
}

fn die(msg: &str) -> ! {
    eprintln!("auth bench: {msg}");
    std::process::exit(1);
}

fn main() {
    let opts = parse_args();
    let binary = opts
        .binary
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_driftgauge")));
    if !binary.is_file() {
        die(&format!("{} does not exist", binary.display()));
    }
    let limit = open_files_limit();
    if limit < (opts.attackers + 256) as u64 {
        die(&format!(
            "ulimit -n is {limit}: {} attackers need at least {} descriptors here and in the \
             server (ulimit -n {} before running)",
            opts.attackers,
            opts.attackers + 256,
            opts.attackers * 2 + 256
        ));
    }
    println!("binary: {}", binary.display());
    println!("{} UTC, load average before: {}", now_utc(), loadavg());
    let mut server = Server::start(&binary, opts.cost);
    println!(
        "alice: bcrypt cost {}; group `quality`, interval 1s; {} attackers; {} s a phase",
        opts.cost, opts.attackers, opts.seconds
    );
    let phase = Duration::from_secs_f64(opts.seconds);

    let quiet = legitimate_clients(&mut server, phase);
    report("quiet", &quiet);

    let stop = Arc::new(AtomicBool::new(false));
    let answers = Arc::new(Mutex::new(Answers::default()));
    let connected = Arc::new(AtomicUsize::new(0));
    let attackers = {
        let (stop, answers, connected) = (
            Arc::clone(&stop),
            Arc::clone(&answers),
            Arc::clone(&connected),
        );
        let (addr, n) = (server.addr(), opts.attackers);
        std::thread::spawn(move || flood(addr, n, &stop, &answers, &connected))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while connected.load(Ordering::Relaxed) < opts.attackers {
        if Instant::now() > deadline {
            server.fail(&format!(
                "only {} of {} attackers connected within 60 s",
                connected.load(Ordering::Relaxed),
                opts.attackers
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = (answers.lock().unwrap().clone(), server.cpu_seconds());
    let flood_started = Instant::now();
    let flooded = legitimate_clients(&mut server, phase);
    let elapsed = flood_started.elapsed().as_secs_f64();
    let after = (answers.lock().unwrap().clone(), server.cpu_seconds());
    let threads = server.threads();
    stop.store(true, Ordering::Relaxed);
    let _ = attackers.join();
    report("flood", &flooded);
    let during = |status| {
        after.0.statuses.get(&status).copied().unwrap_or(0)
            - before.0.statuses.get(&status).copied().unwrap_or(0)
    };
    let others: Vec<_> = after
        .0
        .statuses
        .iter()
        .filter(|(s, _)| **s != 401 && **s != 429)
        .collect();
    println!(
        "flood: attackers answered {:.0}/s 429 (not checked), {:.1}/s 401 (checked), other \
         statuses {:?}, errors {}; 429 without Retry-After: {}; server CPU {:.2} cores, {} threads",
        during(429) as f64 / elapsed,
        during(401) as f64 / elapsed,
        others,
        after.0.errors,
        after.0.no_retry_after,
        (after.1 - before.1) / elapsed,
        threads
    );
    if !others.is_empty() || after.0.no_retry_after > 0 {
        server.fail("attackers got answers other than 401 and 429 with Retry-After");
    }
    server.stop();
    println!("load average after: {}", loadavg());
}

// ---------------------------------------------------------------------------------------
// Legitimate clients

struct Timings {
    scrapes: Vec<Duration>,
    pushes: Vec<Duration>,
    /// Distinct last-evaluation timestamps the scrapes showed, in order.
    evaluations: Vec<f64>,
    /// At each scrape: how old the last evaluation was (s).
    ages: Vec<f64>,
}

/// A scrape's last evaluation (Unix time) and how old it was then (s).
type Seen = (f64, f64);

/// The scraper and the pusher for `phase`, each on its own thread and connection.
fn legitimate_clients(server: &mut Server, phase: Duration) -> Timings {
    let addr = server.addr();
    let alice = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice:alice-password")
    );
    let scrape = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {alice}\r\n\r\n")
        .into_bytes();
    let push = format!(
        "POST /api/v1/samples HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer writer-token\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{SAMPLE}",
        SAMPLE.len()
    )
    .into_bytes();
    let started = Instant::now();
    let result = std::thread::scope(|s| {
        let scraper = s.spawn(|| -> Result<(Vec<Duration>, Vec<Seen>), String> {
            let mut conn = Conn::open(addr).map_err(|e| format!("connect: {e}"))?;
            let (mut took, mut seen) = (Vec::new(), Vec::new());
            while started.elapsed() < phase {
                let t = Instant::now();
                let r = conn
                    .send(&scrape)
                    .map_err(|e| format!("GET /metrics: {e}"))?;
                took.push(t.elapsed());
                if r.status != 200 {
                    return Err(format!("GET /metrics answered {}", r.status));
                }
                let text = String::from_utf8_lossy(&r.body);
                if let Some(ts) = last_evaluation(&text) {
                    seen.push((ts, now_unix() - ts));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok((took, seen))
        });
        let pusher = s.spawn(|| -> Result<Vec<Duration>, String> {
            let mut conn = Conn::open(addr).map_err(|e| format!("connect: {e}"))?;
            let mut took = Vec::new();
            while started.elapsed() < phase {
                let t = Instant::now();
                let r = conn
                    .send(&push)
                    .map_err(|e| format!("POST /api/v1/samples: {e}"))?;
                took.push(t.elapsed());
                if r.status != 200 {
                    return Err(format!("POST /api/v1/samples answered {}", r.status));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(took)
        });
        (
            scraper.join().unwrap_or(Err("scraper panicked".into())),
            pusher.join().unwrap_or(Err("pusher panicked".into())),
        )
    });
    let ((scrapes, seen), pushes) = match result {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => server.fail(&e),
    };
    let mut evaluations: Vec<f64> = Vec::new();
    for (ts, _) in &seen {
        if evaluations.last() != Some(ts) {
            evaluations.push(*ts);
        }
    }
    Timings {
        scrapes,
        pushes,
        evaluations,
        ages: seen.iter().map(|s| s.1).collect(),
    }
}

fn report(phase: &str, t: &Timings) {
    let row = |what: &str, v: &[Duration]| {
        let (p50, p99, max) = spread(v);
        println!(
            "{phase}: {what:<28} n={:<4} p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
            v.len(),
            ms(p50),
            ms(p99),
            ms(max)
        );
    };
    row("cached user GET /metrics", &t.scrapes);
    row("token POST /api/v1/samples", &t.pushes);
    let gaps: Vec<f64> = t.evaluations.windows(2).map(|w| w[1] - w[0]).collect();
    let max_gap = gaps.iter().copied().fold(0.0, f64::max);
    let oldest = t.ages.iter().copied().fold(0.0, f64::max);
    println!(
        "{phase}: evaluation: {} seen, longest gap {:.3} s (interval {INTERVAL_S} s: at most \
         {:.3} s late), oldest last evaluation at a scrape {:.3} s",
        t.evaluations.len(),
        max_gap,
        (max_gap - INTERVAL_S).max(0.0),
        oldest
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// (median, p99 nearest rank, max).
fn spread(v: &[Duration]) -> (Duration, Duration, Duration) {
    if v.is_empty() {
        return Default::default();
    }
    let mut v = v.to_vec();
    v.sort();
    let p99 = v[(v.len() * 99).div_ceil(100) - 1];
    (v[v.len() / 2], p99, v[v.len() - 1])
}

fn last_evaluation(metrics: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        l.strip_prefix(
            "driftgauge_rule_group_last_evaluation_timestamp_seconds{group=\"quality\"} ",
        )
        .and_then(|v| v.trim().parse().ok())
    })
}

// ---------------------------------------------------------------------------------------
// The attackers

#[derive(Debug, Default, Clone)]
struct Answers {
    statuses: std::collections::BTreeMap<u16, usize>,
    no_retry_after: usize,
    errors: usize,
}

fn flood(
    addr: SocketAddr,
    n: usize,
    stop: &Arc<AtomicBool>,
    answers: &Arc<Mutex<Answers>>,
    connected: &Arc<AtomicUsize>,
) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| die(&format!("attackers' runtime: {e}")));
    runtime.block_on(async {
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let user = if i % 2 == 0 { "alice" } else { "mallory" };
                let credentials =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:guess-{i}"));
                let request = format!(
                    "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {credentials}\r\n\r\n"
                )
                .into_bytes();
                tokio::spawn(attack(
                    addr,
                    request,
                    Arc::clone(stop),
                    Arc::clone(answers),
                    Arc::clone(connected),
                ))
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    });
}

async fn attack(
    addr: SocketAddr,
    request: Vec<u8>,
    stop: Arc<AtomicBool>,
    answers: Arc<Mutex<Answers>>,
    connected: Arc<AtomicUsize>,
) {
    let mut first = true;
    let mut conn = None;
    while !stop.load(Ordering::Relaxed) {
        let stream = match &mut conn {
            Some(s) => s,
            None => match tokio::net::TcpStream::connect(addr).await {
                Ok(s) => {
                    if std::mem::take(&mut first) {
                        connected.fetch_add(1, Ordering::Relaxed);
                    }
                    conn.insert(tokio::io::BufReader::new(s))
                }
                Err(_) => {
                    answers.lock().unwrap().errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        match exchange(stream, &request).await {
            Ok((status, retry_after, close)) => {
                let mut a = answers.lock().unwrap();
                *a.statuses.entry(status).or_default() += 1;
                a.no_retry_after += usize::from(status == 429 && !retry_after);
                if close {
                    conn = None;
                }
            }
            Err(_) => {
                answers.lock().unwrap().errors += 1;
                conn = None;
            }
        }
    }
}

/// One request and its answer: (status, `Retry-After: 1`, the server closes).
async fn exchange(
    conn: &mut tokio::io::BufReader<tokio::net::TcpStream>,
    request: &[u8],
) -> io::Result<(u16, bool, bool)> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    conn.get_mut().write_all(request).await?;
    let mut line = String::new();
    conn.read_line(&mut line).await?;
    let status = parse_status(&line)?;
    let (mut length, mut retry_after, mut close) = (0usize, false, false);
    loop {
        line.clear();
        if conn.read_line(&mut line).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        header_into(header, &mut length, &mut retry_after, &mut close)?;
    }
    let mut body = vec![0; length];
    conn.read_exact(&mut body).await?;
    Ok((status, retry_after, close))
}

fn parse_status(line: &str) -> io::Result<u16> {
    line.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("status line {line:?}")))
}

fn header_into(
    header: &str,
    length: &mut usize,
    retry_after: &mut bool,
    close: &mut bool,
) -> io::Result<()> {
    let invalid = || io::Error::new(io::ErrorKind::InvalidData, format!("header {header:?}"));
    let (name, value) = header.split_once(':').ok_or_else(invalid)?;
    match name.to_ascii_lowercase().as_str() {
        "content-length" => *length = value.trim().parse().map_err(|_| invalid())?,
        "retry-after" => *retry_after = value.trim() == "1",
        "connection" => *close = value.trim().eq_ignore_ascii_case("close"),
        _ => {}
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// A blocking keep-alive client for the legitimate requests

struct Resp {
    status: u16,
    body: Vec<u8>,
}

struct Conn {
    addr: SocketAddr,
    reader: Option<BufReader<TcpStream>>,
}

impl Conn {
    fn open(addr: SocketAddr) -> io::Result<Conn> {
        let mut c = Conn { addr, reader: None };
        c.connect()?;
        Ok(c)
    }

    fn connect(&mut self) -> io::Result<&mut BufReader<TcpStream>> {
        let stream = TcpStream::connect(self.addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        Ok(self.reader.insert(BufReader::new(stream)))
    }

    /// Sends `request`; on a connection the server closed, once more on a new one.
    fn send(&mut self, request: &[u8]) -> io::Result<Resp> {
        match self.try_send(request) {
            Ok(r) => Ok(r),
            Err(_) => {
                self.connect()?;
                self.try_send(request)
            }
        }
    }

    fn try_send(&mut self, request: &[u8]) -> io::Result<Resp> {
        let reader = match &mut self.reader {
            Some(r) => r,
            None => self.connect()?,
        };
        reader.get_mut().write_all(request)?;
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let status = parse_status(&line)?;
        let (mut length, mut retry_after, mut close) = (0usize, false, false);
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            header_into(header, &mut length, &mut retry_after, &mut close)?;
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        if close {
            self.reader = None;
        }
        Ok(Resp { status, body })
    }
}

// ---------------------------------------------------------------------------------------
// The server process

struct Server {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Server {
    fn start(binary: &Path, cost: u32) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("driftgauge-auth-")
            .tempdir()
            .unwrap_or_else(|e| die(&format!("creating a temp dir: {e}")));
        let d = dir.path();
        let hash =
            bcrypt::hash("alice-password", cost).unwrap_or_else(|e| die(&format!("bcrypt: {e}")));
        let write = |name: &str, text: &str| {
            std::fs::write(d.join(name), text)
                .unwrap_or_else(|e| die(&format!("writing {name}: {e}")))
        };
        std::fs::create_dir_all(d.join("rules")).unwrap_or_else(|e| die(&e.to_string()));
        write("driftgauge.yml", CONFIG);
        write("rules/q.yml", RULES);
        write("writer.token", "writer-token\n");
        write(
            "web.yml",
            &format!(
                "basic_auth_users:\n  alice: {hash}\nwrite_bearer_token_files: [writer.token]\n"
            ),
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| die(&format!("finding a free port: {e}")));
        let log = std::fs::File::create(d.join("server.log"))
            .unwrap_or_else(|e| die(&format!("server.log: {e}")));
        let child = Command::new(binary)
            .arg("serve")
            .arg(format!(
                "--config.file={}",
                d.join("driftgauge.yml").display()
            ))
            .arg(format!("--web.config.file={}", d.join("web.yml").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!("--storage.path={}", d.join("data").display()))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap_or_else(|e| die(&e.to_string())))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| die(&format!("starting {}: {e}", binary.display())));
        let mut server = Server { child, port, dir };
        server.wait_ready();
        server
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn wait_ready(&mut self) {
        let ready = format!(
            "GET /-/ready HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {}\r\nConnection: close\r\n\r\n",
            base64::engine::general_purpose::STANDARD.encode("alice:alice-password")
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.fail(&format!("driftgauge serve exited early ({status})"));
            }
            let answer = Conn::open(self.addr()).and_then(|mut c| c.try_send(ready.as_bytes()));
            if answer.is_ok_and(|r| r.status == 200) {
                return;
            }
            if Instant::now() > deadline {
                self.fail("driftgauge serve was not ready within 60s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's user + system CPU time so far.
    fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which is in parentheses): utime is the 12th, stime
        // the 13th; in clock ticks (100 a second on Linux).
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (ticks(11) + ticks(12)) / 100.0
    }

    fn threads(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Threads:"))
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0)
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn fail(&mut self, msg: &str) -> ! {
        let tail = self.log_tail();
        self.stop();
        let _ = std::fs::remove_dir_all(self.dir.path());
        die(&format!("{msg}\nserver log (last lines):\n{tail}"));
    }

    /// SIGTERM, then SIGKILL after 30 s.
    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The soft `RLIMIT_NOFILE` of this process (children inherit it).
fn open_files_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(u64::MAX)
}

fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn now_utc() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    out.unwrap_or_default()
}
