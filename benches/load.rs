//! Ingestion load generator (`cargo bench --bench load`): drives a real `driftgauge serve`
//! process over loopback, the way clients and Prometheus would.
//!
//! What it does:
//!
//! 1. Writes a temporary config directory (one KS rule over `feature_value`, reference
//!    `{first: 100000}`, current `{last: 10000}`, limits well above the load) and starts
//!    `target/release/driftgauge serve` (the binary Cargo builds for this bench) as a separate
//!    process on a free loopback port with a temporary `--storage.path`; waits for `/-/ready`.
//! 2. **Memory**: reads the server's `VmRSS` (`/proc/PID/status`) once ready, then pushes
//!    exactly 100 series × 110,000 values (100,000 for the frozen reference, 10,000 for the
//!    current window: 11e6 values held), reads `VmRSS` again half a second later and prints
//!    `(RSS after − RSS before) / 11e6` bytes per held value; then once more after the
//!    server's next state flush (`driftgauge_storage_last_flush_timestamp_seconds` moves).
//! 3. **Push**: `POST /api/v1/samples` over exactly two keep-alive HTTP/1.1 connections (a
//!    small hand-written client on `std::net::TcpStream`, one thread per connection), each
//!    request 100 series × 1,000 values as JSON, encoded before the clock starts. Several
//!    rounds; values/s is the median round.
//! 4. **Remote write**: `POST /api/v1/write` the same way, each request a snappy-compressed
//!    `prometheus.WriteRequest` of 100 series × 1,000 samples, encoded by hand here; in two
//!    shapes, on two other sets of 100 series: one `TimeSeries` message a series (1,000
//!    samples in it), and one `TimeSeries` message a sample (100,000 messages, series
//!    interleaved), which is how Prometheus itself sends samples.
//!
//! Every response status is checked (200 with `{"accepted":100000}` for a push, 204 for a
//! remote write) and the bench fails loudly on anything else; at the end the server's own
//! `driftgauge_samples_received_total` must equal what was sent.
//!
//! Options (after `--`):
//!
//! - `--rounds=N` timed rounds per kind (default 5; the median is reported);
//! - `--seconds=S` per round (default 3: each connection sends requests until S seconds have
//!   passed, so most rounds span one of the server's 5 s state flushes), or `--batches=N`
//!   requests per connection per round instead;
//! - `--only=PARTS`: a comma-separated subset of `rss,push,rw,rw-prom` (default: all), e.g.
//!   to profile one kind alone;
//! - `--flush-interval=DUR`: the server's `--storage.flush-interval` (default its own, 5s);
//! - `--perf=FILE`: `perf record` (cpu-clock, DWARF call graphs) on the server during the
//!   timed rounds; read it with `perf report -i FILE --no-children --sort sym`;
//! - `--binary=PATH`: another driftgauge binary.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant};

const SERIES: usize = 100;
const VALUES_PER_SERIES: usize = 1_000;
const VALUES_PER_BATCH: usize = SERIES * VALUES_PER_SERIES;
const REFERENCE: usize = 100_000;
const CURRENT: usize = 10_000;
/// Distinct pre-encoded bodies per kind, cycled through.
const BODIES: usize = 4;

struct Opts {
    rounds: usize,
    until: Until,
    push: bool,
    rw: bool,
    rw_prom: bool,
    rss: bool,
    flush_interval: Option<String>,
    perf: Option<PathBuf>,
    binary: Option<PathBuf>,
}

fn parse_args() -> Opts {
    let mut o = Opts {
        rounds: 5,
        until: Until::Time(Duration::from_secs(3)),
        push: true,
        rw: true,
        rw_prom: true,
        rss: true,
        flush_interval: None,
        perf: None,
        binary: None,
    };
    for a in std::env::args().skip(1) {
        let (k, v) = match a.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (a.as_str(), None),
        };
        let num = |v: Option<&str>| -> usize {
            v.and_then(|s| s.parse().ok())
                .filter(|&n: &usize| n > 0)
                .unwrap_or_else(|| die(&format!("{k} needs a positive integer: {a}")))
        };
        match k {
            "--bench" => {}
            "--rounds" => o.rounds = num(v),
            "--batches" => o.until = Until::Count(num(v)),
            "--seconds" => {
                let secs: f64 = v
                    .and_then(|s| s.parse().ok())
                    .filter(|&x: &f64| x > 0.0 && x < 3600.0)
                    .unwrap_or_else(|| die(&format!("{k} needs a number of seconds: {a}")));
                o.until = Until::Time(Duration::from_secs_f64(secs))
            }
            "--only" => {
                let parts: Vec<&str> = v.unwrap_or("").split(',').collect();
                for p in &parts {
                    if !["rss", "push", "rw", "rw-prom"].contains(p) {
                        die(&format!(
                            "--only: unknown part {p:?} (rss, push, rw, rw-prom)"
                        ));
                    }
                }
                o.rss = parts.contains(&"rss");
                o.push = parts.contains(&"push");
                o.rw = parts.contains(&"rw");
                o.rw_prom = parts.contains(&"rw-prom");
            }
            "--flush-interval" => o.flush_interval = v.map(str::to_string),
            "--perf" => o.perf = v.map(PathBuf::from),
            "--binary" => o.binary = v.map(PathBuf::from),
            "-h" | "--help" => {
                println!(
                    "cargo bench --bench load -- [--rounds=N] [--seconds=S | --batches=N] \
                     [--only=rss,push,rw,rw-prom] [--flush-interval=DUR] [--perf=FILE] [--binary=PATH]"
                );
                std::process::exit(0);
            }
            _ => die(&format!("unknown argument {a:?} (try --help)")),
        }
    }
    o
}

fn die(msg: &str) -> ! {
    eprintln!("load bench: error: {msg}");
    std::process::exit(1);
}

// ---------------------------------------------------------------------------------------
// Data

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Roughly normal (sum of 12 uniforms), full f64 precision.
    fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.next()).sum::<f64>() - 6.0
    }
}

fn feature(i: usize) -> String {
    format!("f{i:03}")
}

/// One push body: 100 series × 1,000 values, as `POST /api/v1/samples` takes it.
fn push_body(model: &str, rng: &mut Rng) -> Vec<u8> {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(VALUES_PER_BATCH * 20);
    s.push_str("{\"samples\":[");
    for i in 0..SERIES {
        if i > 0 {
            s.push(',');
        }
        write!(
            s,
            "{{\"metric\":\"feature_value\",\"labels\":{{\"model\":\"{model}\",\"version\":\"v3\",\"feature\":\"{}\"}},\"values\":[",
            feature(i)
        )
        .unwrap();
        for j in 0..VALUES_PER_SERIES {
            if j > 0 {
                s.push(',');
            }
            // Display of f64 is the shortest text that reads back to the same bits.
            write!(s, "{}", rng.normal()).unwrap();
        }
        s.push_str("]}");
    }
    s.push_str("]}");
    s.into_bytes()
}

fn pb_varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn pb_bytes(field: u64, b: &[u8], out: &mut Vec<u8>) {
    pb_varint(field << 3 | 2, out);
    pb_varint(b.len() as u64, out);
    out.extend_from_slice(b);
}

/// One remote write body: a snappy block-compressed `prometheus.WriteRequest` of 100 series ×
/// 1,000 samples (labels sorted by name, as Prometheus sends them). `per_ts` samples travel in
/// one `TimeSeries` message: 1,000 (one message a series), or 1 as Prometheus itself sends
/// them (one message a sample, series interleaved, 100,000 messages).
fn rw_body(model: &str, rng: &mut Rng, t0_ms: i64, per_ts: usize) -> (Vec<u8>, usize) {
    let mut req = Vec::with_capacity(VALUES_PER_BATCH * 20);
    let mut ts = Vec::new();
    let mut label = Vec::new();
    let mut sample = Vec::new();
    let features: Vec<String> = (0..SERIES).map(feature).collect();
    for j0 in (0..VALUES_PER_SERIES).step_by(per_ts) {
        for f in &features {
            ts.clear();
            for (name, value) in [
                ("__name__", "feature_value"),
                ("feature", f.as_str()),
                ("model", model),
                ("version", "v3"),
            ] {
                label.clear();
                pb_bytes(1, name.as_bytes(), &mut label);
                pb_bytes(2, value.as_bytes(), &mut label);
                pb_bytes(1, &label, &mut ts);
            }
            for j in j0..(j0 + per_ts).min(VALUES_PER_SERIES) {
                sample.clear();
                pb_varint(1 << 3 | 1, &mut sample); // double value = 1
                sample.extend_from_slice(&rng.normal().to_bits().to_le_bytes());
                pb_varint(2 << 3, &mut sample); // int64 timestamp = 2
                pb_varint((t0_ms + j as i64 * 15) as u64, &mut sample);
                pb_bytes(2, &sample, &mut ts);
            }
            pb_bytes(1, &ts, &mut req);
        }
    }
    let raw_len = req.len();
    let compressed = snap::raw::Encoder::new()
        .compress_vec(&req)
        .expect("snappy compression");
    (compressed, raw_len)
}

fn http_request(port: u16, path: &str, extra_headers: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: driftgauge-load/1\r\n{extra_headers}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

// ---------------------------------------------------------------------------------------
// A minimal HTTP/1.1 keep-alive client

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

struct Resp {
    status: u16,
    body: Vec<u8>,
}

impl Conn {
    fn open(port: u16) -> io::Result<Conn> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// Sends one whole pre-encoded request and reads its response.
    fn send(&mut self, request: &[u8]) -> io::Result<Resp> {
        self.stream.write_all(request)?;
        self.read_response()
    }

    fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "server closed the connection",
            ));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    fn read_response(&mut self) -> io::Result<Resp> {
        let bad = |m: String| io::Error::new(io::ErrorKind::InvalidData, m);
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if self.buf.len() > 64 * 1024 {
                return Err(bad("response head over 64 KiB".into()));
            }
            self.fill()?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end])
            .map_err(|_| bad("response head is not UTF-8".into()))?
            .to_string();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let status: u16 = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
        let mut len = 0usize;
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                len = value
                    .parse()
                    .map_err(|_| bad(format!("bad Content-Length {value:?}")))?;
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(bad(format!("unexpected Transfer-Encoding {value:?}")));
            } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close")
            {
                return Err(bad("server asked to close the connection".into()));
            }
        }
        while self.buf.len() < head_end + len {
            self.fill()?;
        }
        let body = self.buf[head_end..head_end + len].to_vec();
        self.buf.drain(..head_end + len);
        Ok(Resp { status, body })
    }
}

fn get(port: u16, path: &str) -> io::Result<Resp> {
    let mut c = Conn::open(port)?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: driftgauge-load/1\r\n\r\n"
    );
    c.send(req.as_bytes())
}

// ---------------------------------------------------------------------------------------
// The server process

struct Server {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Server {
    fn start(binary: &Path, flush_interval: Option<&str>) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("driftgauge-load-")
            .tempdir()
            .unwrap_or_else(|e| die(&format!("creating a temp dir: {e}")));
        let config = "global:\n  evaluation_interval: 15s\n\
             rule_files: [\"rules/*.yml\"]\n\
             limits:\n  max_series: 100000\n  max_series_per_rule: 10000\n  \
             max_body_bytes: 67108864\n  max_window_values: 1000000\n";
        let rules = format!(
            "groups:\n  - name: load\n    interval: 15s\n    rules:\n      - name: feature_drift\n        \
             detector: ks\n        series: 'feature_value'\n        reference: {{first: {REFERENCE}}}\n        \
             current: {{last: {CURRENT}}}\n        min_samples: 100\n"
        );
        std::fs::create_dir_all(dir.path().join("rules")).unwrap();
        std::fs::write(dir.path().join("driftgauge.yml"), config).unwrap();
        std::fs::write(dir.path().join("rules/load.yml"), rules).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| {
                let _ = std::fs::remove_dir_all(dir.path());
                die(&format!("finding a free port: {e}"))
            });
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let mut cmd = Command::new(binary);
        cmd.arg("serve")
            .arg(format!(
                "--config.file={}",
                dir.path().join("driftgauge.yml").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Some(f) = flush_interval {
            cmd.arg(format!("--storage.flush-interval={f}"));
        }
        let child = cmd.spawn().unwrap_or_else(|e| {
            let _ = std::fs::remove_dir_all(dir.path());
            die(&format!("starting {}: {e}", binary.display()))
        });
        let mut server = Server { child, port, dir };
        server.wait_ready();
        server
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn fail(&mut self, msg: &str) -> ! {
        let tail = self.log_tail();
        self.stop();
        // `die` exits without running destructors: the temp dir goes here.
        let _ = std::fs::remove_dir_all(self.dir.path());
        die(&format!("{msg}\nserver log (last lines):\n{tail}"));
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.fail(&format!("driftgauge serve exited early ({status})"));
            }
            if let Ok(r) = get(self.port, "/-/ready") {
                if r.status == 200 {
                    return;
                }
            }
            if Instant::now() > deadline {
                self.fail("driftgauge serve was not ready within 60s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn rss_bytes(&self) -> u64 {
        status_kb(self.pid(), "VmRSS:") * 1024
    }

    fn metric(&mut self, name: &str, labels: &str) -> f64 {
        let r =
            get(self.port, "/metrics").unwrap_or_else(|e| self.fail(&format!("GET /metrics: {e}")));
        let text = String::from_utf8_lossy(&r.body).into_owned();
        let prefix = format!("{name}{labels} ");
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// SIGTERM (a graceful stop, with the last flush), then SIGKILL after 30s.
    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
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

fn status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn now_unix_s() -> f64 {
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

// ---------------------------------------------------------------------------------------
// Driving load

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Push,
    RemoteWrite,
}

/// Sends requests on each of the two connections at the same time, cycling through
/// `requests` (connection `c` starts at body `c`): `Count(n)` requests each, or as many as
/// start within `Time(d)`. Returns the wall time to the last answer and the requests answered.
fn drive(
    server: &mut Server,
    conns: &mut [Conn; 2],
    requests: &[Vec<u8>],
    until: Until,
    kind: Kind,
) -> (Duration, usize) {
    let barrier = Barrier::new(3);
    let (elapsed, results) = std::thread::scope(|s| {
        let handles: Vec<_> = conns
            .iter_mut()
            .enumerate()
            .map(|(c, conn)| {
                let barrier = &barrier;
                s.spawn(move || -> Result<usize, String> {
                    barrier.wait();
                    let t0 = Instant::now();
                    let mut i = 0;
                    loop {
                        match until {
                            Until::Count(n) if i >= n => break,
                            Until::Time(d) if t0.elapsed() >= d => break,
                            _ => {}
                        }
                        let req = &requests[(c + 2 * i) % requests.len()];
                        let r = conn
                            .send(req)
                            .map_err(|e| format!("connection {c}, request {i}: {e}"))?;
                        check(kind, &r).map_err(|m| format!("connection {c}, request {i}: {m}"))?;
                        i += 1;
                    }
                    Ok(i)
                })
            })
            .collect();
        barrier.wait();
        let t0 = Instant::now();
        let results: Vec<_> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("client thread panicked".into()))
            })
            .collect();
        (t0.elapsed(), results)
    });
    let mut done = 0;
    for r in results {
        match r {
            Ok(n) => done += n,
            Err(e) => server.fail(&e),
        }
    }
    (elapsed, done)
}

#[derive(Clone, Copy)]
enum Until {
    Count(usize),
    Time(Duration),
}

fn check(kind: Kind, r: &Resp) -> Result<(), String> {
    let body = || String::from_utf8_lossy(&r.body).into_owned();
    match kind {
        Kind::Push => {
            if r.status != 200 {
                return Err(format!("push answered {}: {}", r.status, body()));
            }
            let want = format!("{{\"accepted\":{VALUES_PER_BATCH}}}");
            if body().trim() != want {
                return Err(format!("push answered {}, expected {want}", body()));
            }
        }
        Kind::RemoteWrite => {
            if r.status != 204 {
                return Err(format!("remote write answered {}: {}", r.status, body()));
            }
        }
    }
    Ok(())
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else {
        format!("{:.0} k", x / 1e3)
    }
}

struct Row {
    what: String,
    unit: &'static str,
    rounds: Vec<f64>,
    per_round: usize,
    mb_per_s: f64,
}

struct Perf(Option<Child>);

impl Perf {
    fn start(file: Option<&Path>, pid: u32) -> Result<Perf, String> {
        let Some(file) = file else {
            return Ok(Perf(None));
        };
        let child = Command::new("perf")
            .args([
                "record",
                "-e",
                "cpu-clock",
                "-F",
                "499",
                "--call-graph=dwarf,16384",
                "-o",
            ])
            .arg(file)
            .arg("-p")
            .arg(pid.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting perf: {e}"))?;
        std::thread::sleep(Duration::from_millis(500));
        Ok(Perf(Some(child)))
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = Command::new("kill")
                .arg("-INT")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for Perf {
    fn drop(&mut self) {
        self.stop();
    }
}

fn main() {
    let opts = parse_args();
    let binary = opts
        .binary
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_driftgauge")));
    if !binary.is_file() {
        die(&format!(
            "{} does not exist: run `cargo build --release` first (or pass --binary=PATH)",
            binary.display()
        ));
    }
    println!("binary: {}", binary.display());
    println!("load average before: {}", loadavg());

    // Bodies, encoded before any clock starts.
    let mut rng = Rng(0x5eed);
    let t0_ms = 1_700_000_000_000i64;
    let push_bodies: Vec<Vec<u8>> = (0..BODIES).map(|_| push_body("fraud", &mut rng)).collect();
    // Remote write, two shapes, each on its own 100 series: one `TimeSeries` message a series
    // (1,000 samples each), and one a sample, as Prometheus sends them.
    let rw_shapes: Vec<Vec<(Vec<u8>, usize)>> = [("remote", VALUES_PER_SERIES), ("prometheus", 1)]
        .into_iter()
        .map(|(model, per_ts)| {
            (0..BODIES)
                .map(|b| {
                    let t0 = t0_ms + (b * VALUES_PER_SERIES * 15) as i64;
                    rw_body(model, &mut rng, t0, per_ts)
                })
                .collect()
        })
        .collect();
    let push_bytes = push_bodies.iter().map(Vec::len).sum::<usize>() / BODIES;
    let rw_bytes: Vec<usize> = rw_shapes
        .iter()
        .map(|bodies| bodies.iter().map(|b| b.0.len()).sum::<usize>() / BODIES)
        .collect();
    let rw_raw: Vec<usize> = rw_shapes
        .iter()
        .map(|bodies| bodies.iter().map(|b| b.1).sum::<usize>() / BODIES)
        .collect();
    println!(
        "request bodies: push JSON {:.2} MB; remote write {:.2} MB snappy ({:.2} MB protobuf), \
         one message a sample {:.2} MB snappy ({:.2} MB protobuf)",
        push_bytes as f64 / 1e6,
        rw_bytes[0] as f64 / 1e6,
        rw_raw[0] as f64 / 1e6,
        rw_bytes[1] as f64 / 1e6,
        rw_raw[1] as f64 / 1e6,
    );

    let mut server = Server::start(&binary, opts.flush_interval.as_deref());
    let port = server.port;
    println!("server: pid {} on 127.0.0.1:{port}", server.pid());
    let push_reqs: Vec<Vec<u8>> = push_bodies
        .iter()
        .map(|b| {
            http_request(
                port,
                "/api/v1/samples",
                "Content-Type: application/json\r\n",
                b,
            )
        })
        .collect();
    let rw_reqs: Vec<Vec<Vec<u8>>> = rw_shapes
        .iter()
        .map(|bodies| {
            bodies
                .iter()
                .map(|(b, _)| {
                    http_request(
                        port,
                        "/api/v1/write",
                        "Content-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\n\
                         X-Prometheus-Remote-Write-Version: 0.1.0\r\n",
                        b,
                    )
                })
                .collect()
        })
        .collect();
    drop(rw_shapes);

    let mut conns = [
        Conn::open(port).unwrap_or_else(|e| server.fail(&format!("connecting: {e}"))),
        Conn::open(port).unwrap_or_else(|e| server.fail(&format!("connecting: {e}"))),
    ];
    let mut pushed = 0usize;
    let mut written = 0usize;

    // Memory: 100 series × (100,000 reference + 10,000 current) values held.
    let mut memory = None;
    if opts.rss {
        std::thread::sleep(Duration::from_millis(500));
        let before = server.rss_bytes();
        let batches = (REFERENCE + CURRENT) / VALUES_PER_SERIES; // 110 requests
        let (t, _) = drive(
            &mut server,
            &mut conns,
            &push_reqs,
            Until::Count(batches / 2),
            Kind::Push,
        );
        pushed += batches * VALUES_PER_BATCH;
        std::thread::sleep(Duration::from_millis(500));
        let after = server.rss_bytes();
        let held = (SERIES * (REFERENCE + CURRENT)) as f64;
        println!(
            "memory: VmRSS {:.1} MB ready, {:.1} MB holding {:.0} values (VmHWM {:.1} MB); filled in {:.2}s",
            before as f64 / 1e6,
            after as f64 / 1e6,
            held,
            status_kb(server.pid(), "VmHWM:") as f64 * 1024.0 / 1e6,
            t.as_secs_f64()
        );
        // Then the same values after the next state flush has written them to the store.
        let filled_at = now_unix_s();
        let deadline = Instant::now() + Duration::from_secs(60);
        while server.metric("driftgauge_storage_last_flush_timestamp_seconds", "") < filled_at {
            if Instant::now() > deadline {
                server.fail("no state flush within 60s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(500));
        let flushed = server.rss_bytes();
        println!(
            "memory: VmRSS {:.1} MB after the next state flush (VmHWM {:.1} MB)",
            flushed as f64 / 1e6,
            status_kb(server.pid(), "VmHWM:") as f64 * 1024.0 / 1e6,
        );
        memory = Some((before, after, flushed, held));
    }

    let mut rows = Vec::new();
    let mut perf =
        Perf::start(opts.perf.as_deref(), server.pid()).unwrap_or_else(|e| server.fail(&e));
    for (enabled, kind, reqs, what, unit, bytes) in [
        (
            opts.push,
            Kind::Push,
            &push_reqs,
            "push `POST /api/v1/samples` (JSON)",
            "values/s",
            push_bytes,
        ),
        (
            opts.rw,
            Kind::RemoteWrite,
            &rw_reqs[0],
            "remote write `POST /api/v1/write`, one `TimeSeries` a series",
            "samples/s",
            rw_bytes[0],
        ),
        (
            opts.rw_prom,
            Kind::RemoteWrite,
            &rw_reqs[1],
            "remote write, one `TimeSeries` a sample (as Prometheus sends)",
            "samples/s",
            rw_bytes[1],
        ),
    ] {
        if !enabled {
            continue;
        }
        // Warm-up (not counted): for remote write, this also fills its series' references.
        let warm = if kind == Kind::RemoteWrite {
            REFERENCE / VALUES_PER_SERIES / 2 + 2
        } else {
            4
        };
        drive(&mut server, &mut conns, reqs, Until::Count(warm), kind);
        let mut sent = 2 * warm * VALUES_PER_BATCH;
        let mut rounds = Vec::new();
        let mut sent_rounds = 0;
        for r in 0..opts.rounds {
            let (t, requests) = drive(&mut server, &mut conns, reqs, opts.until, kind);
            let n = requests * VALUES_PER_BATCH;
            sent += n;
            sent_rounds += n;
            let per_s = n as f64 / t.as_secs_f64();
            println!(
                "  {what}, round {}: {} {} in {:.3}s = {}{unit}",
                r + 1,
                n,
                if kind == Kind::Push {
                    "values"
                } else {
                    "samples"
                },
                t.as_secs_f64(),
                rate(per_s)
            );
            rounds.push(per_s);
        }
        match kind {
            Kind::Push => pushed += sent,
            Kind::RemoteWrite => written += sent,
        }
        let med = median(&rounds);
        rows.push(Row {
            what: what.to_string(),
            unit,
            per_round: sent_rounds / opts.rounds,
            mb_per_s: med / VALUES_PER_BATCH as f64 * bytes as f64 / 1e6,
            rounds,
        });
    }
    perf.stop();
    drop(conns);

    // Nothing silently dropped: the server counted exactly what was sent.
    for (source, sent) in [("push", pushed), ("remote_write", written)] {
        if sent == 0 {
            continue;
        }
        let got = server.metric(
            "driftgauge_samples_received_total",
            &format!("{{source=\"{source}\"}}"),
        );
        if got != sent as f64 {
            server.fail(&format!(
                "driftgauge_samples_received_total{{source=\"{source}\"}} is {got}, sent {sent}"
            ));
        }
    }
    let rss_end = server.rss_bytes();
    server.stop();
    let load_after = loadavg();

    println!();
    println!(
        "two keep-alive HTTP/1.1 connections; each request 100 series x 1,000 values; \
         median of {} rounds ({})",
        opts.rounds,
        match opts.until {
            Until::Time(d) => format!("{:.1} s each", d.as_secs_f64()),
            Until::Count(n) => format!("{n} requests per connection each"),
        }
    );
    println!();
    println!("| what | values per round (mean) | median | min | max | request MB/s |");
    println!("|---|---:|---:|---:|---:|---:|");
    for row in &rows {
        let min = row.rounds.iter().copied().fold(f64::INFINITY, f64::min);
        let max = row.rounds.iter().copied().fold(0.0, f64::max);
        println!(
            "| {} | {:.1} M values | {}{u} | {}{u} | {}{u} | {:.0} |",
            row.what,
            row.per_round as f64 / 1e6,
            rate(median(&row.rounds)),
            rate(min),
            rate(max),
            row.mb_per_s,
            u = row.unit,
        );
    }
    if let Some((before, after, flushed, held)) = memory {
        println!(
            "| server RSS holding 100 x (100k + 10k) values | {:.1} MB -> {:.1} MB | {:.2} B/value | | | |",
            before as f64 / 1e6,
            after as f64 / 1e6,
            (after as f64 - before as f64) / held
        );
        println!(
            "| the same, after the next state flush | {:.1} MB -> {:.1} MB | {:.2} B/value | | | |",
            before as f64 / 1e6,
            flushed as f64 / 1e6,
            (flushed as f64 - before as f64) / held
        );
    }
    println!();
    println!(
        "server VmRSS at the end: {:.1} MB; load average after: {load_after}",
        rss_end as f64 / 1e6
    );
}
