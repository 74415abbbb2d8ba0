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
//! 5. **Stall** (`--only=stall`, not part of the default run; a server of its own): does rule
//!    evaluation hold up ingestion or `/metrics`? One group `interval: 2s` with one KS rule
//!    (`reference: {first: 20}`, `current: {last: 20}`, `min_samples: 20`, a webhook) over
//!    100,000 series `stall_value{series="s000000"}`..., filled with 40 values each (batches
//!    of 2,000 series; the last 20 values are the first 20 reversed, so D = 0 and no series
//!    ever changes state); once an evaluation over all of them has run:
//!    - scenario 1, for 20 s: one connection pushes one series × 20 values back to back
//!      (series 2,000.. in turn, again its reference values: still no transitions), another
//!      scrapes `/metrics` back to back; every request is timed, and every evaluation's start
//!      and `driftgauge_rule_group_last_duration_seconds` are read off the scrapes, so each
//!      push is known to overlap an evaluation or not;
//!    - scenario 2, the same two clients, plus one batch that shifts the current windows of
//!      series 0..2,000 by +5 sd, sent just after an evaluation was published so that the next
//!      one turns all of them `drifted` at once and calls the webhook 2,000 times (a receiver
//!      thread here answers 200 and counts the calls and their `Idempotency-Key`s); timed until
//!      every call has arrived, three evaluations have run and 2 s have passed since the last
//!      call. Reported: pushes overlapping that evaluation, and from its start to 2 s after
//!      the last call.
//!
//!    Both end with a check of `driftgauge_drift_status` (all stable; then exactly the 2,000
//!    drifted). Prints median, p99 (nearest rank) and max per kind, the evaluations'
//!    durations, and when the slowest requests were sent relative to an evaluation's start
//!    and to the end of a state flush.
//!
//! Every response status is checked (200 with `{"accepted":100000,"dropped":0}` for a push,
//! 204 for a remote write) and the bench fails loudly on anything else; at the end the server's own
//! `driftgauge_samples_received_total` must equal what was sent.
//!
//! Options (after `--`):
//!
//! - `--rounds=N` timed rounds per kind (default 5; the median is reported);
//! - `--seconds=S` per round (default 3: each connection sends requests until S seconds have
//!   passed, so most rounds span one of the server's 5 s state flushes), or `--batches=N`
//!   requests per connection per round instead;
//! - `--only=PARTS`: a comma-separated subset of `rss,push,rw,rw-prom,stall` (default:
//!   `rss,push,rw,rw-prom`), e.g. to profile one kind alone;
//! - `--stall-series=N` (default 100000), `--stall-drifting=N` (default 2000),
//!   `--stall-seconds=S` (default 20): the stall part's sizes;
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
    stall: bool,
    stall_series: usize,
    stall_drifting: usize,
    stall_seconds: f64,
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
        stall: false,
        stall_series: 100_000,
        stall_drifting: 2_000,
        stall_seconds: 20.0,
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
            "--seconds" | "--stall-seconds" => {
                let secs: f64 = v
                    .and_then(|s| s.parse().ok())
                    .filter(|&x: &f64| x > 0.0 && x < 3600.0)
                    .unwrap_or_else(|| die(&format!("{k} needs a number of seconds: {a}")));
                if k == "--seconds" {
                    o.until = Until::Time(Duration::from_secs_f64(secs))
                } else {
                    o.stall_seconds = secs
                }
            }
            "--stall-series" => o.stall_series = num(v),
            "--stall-drifting" => o.stall_drifting = num(v),
            "--only" => {
                let parts: Vec<&str> = v.unwrap_or("").split(',').collect();
                for p in &parts {
                    if !["rss", "push", "rw", "rw-prom", "stall"].contains(p) {
                        die(&format!(
                            "--only: unknown part {p:?} (rss, push, rw, rw-prom, stall)"
                        ));
                    }
                }
                o.stall = parts.contains(&"stall");
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
                     [--only=rss,push,rw,rw-prom,stall] [--stall-series=N] [--stall-drifting=N] \
                     [--stall-seconds=S] [--flush-interval=DUR] [--perf=FILE] [--binary=PATH]"
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
        let config = "global:\n  evaluation_interval: 15s\n\
             rule_files: [\"rules/*.yml\"]\n\
             limits:\n  max_series: 100000\n  max_series_per_rule: 10000\n  \
             max_body_bytes: 67108864\n  max_window_values: 1000000\n";
        let rules = format!(
            "groups:\n  - name: load\n    interval: 15s\n    rules:\n      - name: feature_drift\n        \
             detector: ks\n        series: 'feature_value'\n        reference: {{first: {REFERENCE}}}\n        \
             current: {{last: {CURRENT}}}\n        min_samples: 100\n"
        );
        Server::start_with(binary, flush_interval, config, &rules)
    }

    /// Starts a server on `config` (`driftgauge.yml`) and `rules` (`rules/load.yml`).
    fn start_with(
        binary: &Path,
        flush_interval: Option<&str>,
        config: &str,
        rules: &str,
    ) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("driftgauge-load-")
            .tempdir()
            .unwrap_or_else(|e| die(&format!("creating a temp dir: {e}")));
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

    fn metrics_text(&mut self) -> String {
        let r =
            get(self.port, "/metrics").unwrap_or_else(|e| self.fail(&format!("GET /metrics: {e}")));
        if r.status != 200 {
            self.fail(&format!("GET /metrics answered {}", r.status));
        }
        String::from_utf8_lossy(&r.body).into_owned()
    }

    fn metric(&mut self, name: &str, labels: &str) -> f64 {
        let text = self.metrics_text();
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
            let want = format!("{{\"accepted\":{VALUES_PER_BATCH},\"dropped\":0}}");
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
    if opts.rss || opts.push || opts.rw || opts.rw_prom {
        throughput(&opts, &binary);
    }
    if opts.stall {
        stall(&opts, &binary);
    }
}

/// Steps 2-4 of the module comment: memory, push and remote write throughput.
fn throughput(opts: &Opts, binary: &Path) {
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

    let mut server = Server::start(binary, opts.flush_interval.as_deref());
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

// ---------------------------------------------------------------------------------------
// Stall: does a rule evaluation hold up ingestion or `/metrics`?

/// The group's name and `interval` (seconds).
const STALL_GROUP: &str = "stall";
const STALL_INTERVAL_S: f64 = 2.0;
/// `reference: {first: 20}`, `current: {last: 20}`, `min_samples: 20`.
const STALL_WINDOW: usize = 20;
/// How far the drifting series' current windows move (the data's sd is about 1).
const STALL_SHIFT: f64 = 5.0;
/// Series per request while filling.
const STALL_FILL_BATCH: usize = 2_000;

/// Series `i`'s 20 values as JSON numbers, 3 decimals (so the same text, hence the same bits,
/// every time): its reference; `reversed`, the same values in another order (a current window
/// equal to the reference as a sample: D = 0, p = 1, never a transition); `shift` added to
/// each, for the series that are to drift.
fn stall_values(i: usize, shift: f64, reversed: bool) -> String {
    let mut rng = Rng(0x57a1_1000 ^ (i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
    let mut v: Vec<f64> = (0..STALL_WINDOW).map(|_| rng.normal()).collect();
    if reversed {
        v.reverse();
    }
    v.iter()
        .map(|x| format!("{:.3}", x + shift))
        .collect::<Vec<_>>()
        .join(",")
}

/// A `POST /api/v1/samples` request for series `(i, values, how many values)`, and the
/// number of values in it.
fn stall_request(port: u16, series: &[(usize, String, usize)]) -> (Vec<u8>, usize) {
    use std::fmt::Write as _;
    let mut s = String::from("{\"samples\":[");
    let mut n = 0;
    for (k, (i, values, count)) in series.iter().enumerate() {
        if k > 0 {
            s.push(',');
        }
        write!(
            s,
            "{{\"metric\":\"stall_value\",\"labels\":{{\"series\":\"s{i:06}\"}},\"values\":[{values}]}}"
        )
        .unwrap();
        n += count;
    }
    s.push_str("]}");
    let req = http_request(
        port,
        "/api/v1/samples",
        "Content-Type: application/json\r\n",
        s.as_bytes(),
    );
    (req, n)
}

fn check_accepted(r: &Resp, values: usize) -> Result<(), String> {
    let body = String::from_utf8_lossy(&r.body);
    if r.status != 200 || body.trim() != format!("{{\"accepted\":{values},\"dropped\":0}}") {
        return Err(format!(
            "push answered {} {body}, expected {{\"accepted\":{values},\"dropped\":0}}",
            r.status
        ));
    }
    Ok(())
}

/// The value of the first line of `name` in an exposition (`name{group="stall"} value` or
/// `name value`).
fn metric_in(text: &str, name: &str) -> Option<f64> {
    let at = text
        .find(&format!("\n{name}{{"))
        .or_else(|| text.find(&format!("\n{name} ")))?;
    let line = text[at + 1..].lines().next()?;
    line.rsplit(' ').next()?.parse().ok()
}

/// How many series `driftgauge_drift_status` shows in each state (stable, warning, drifted).
fn statuses(text: &str) -> [usize; 3] {
    let mut n = [0; 3];
    for line in text.lines() {
        if line.starts_with("driftgauge_drift_status{") {
            match line.rsplit(' ').next() {
                Some("0") => n[0] += 1,
                Some("1") => n[1] += 1,
                Some("2") => n[2] += 1,
                _ => {}
            }
        }
    }
    n
}

/// A webhook receiver: answers every request 200 and records (arrival, `Idempotency-Key`).
type Calls = std::sync::Arc<std::sync::Mutex<Vec<(f64, String)>>>;

fn start_receiver() -> io::Result<(u16, Calls)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let calls: Calls = Default::default();
    let all = calls.clone();
    // Lives until the process exits (blocked in `accept`); one thread a connection.
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let calls = all.clone();
            let _ = std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let _ = serve_hook(stream, &calls);
                });
        }
    });
    Ok((port, calls))
}

fn serve_hook(mut stream: TcpStream, calls: &Calls) -> io::Result<()> {
    let mut buf = Vec::with_capacity(8 * 1024);
    let mut chunk = [0u8; 8 * 1024];
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut len = 0;
        let mut key = String::new();
        for line in head.split("\r\n").skip(1) {
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    len = value.trim().parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("idempotency-key") {
                    key = value.trim().to_string();
                }
            }
        }
        while buf.len() < head_end + len {
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        buf.drain(..head_end + len);
        calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((now_unix_s(), key));
        stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")?;
    }
}

fn calls_of(calls: &Calls) -> Vec<(f64, String)> {
    calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// One request: when it was sent (Unix seconds) and how long its answer took (seconds).
#[derive(Clone, Copy)]
struct Timed {
    start: f64,
    secs: f64,
}

/// One evaluation of the group: its start (Unix seconds) and
/// `driftgauge_rule_group_last_duration_seconds`.
#[derive(Clone, Copy)]
struct Eval {
    start: f64,
    secs: f64,
}

impl Eval {
    fn end(&self) -> f64 {
        self.start + self.secs
    }
    fn overlaps(&self, t: &Timed) -> bool {
        t.start < self.end() && t.start + t.secs > self.start
    }
}

#[derive(Default)]
struct Shared {
    stop: std::sync::atomic::AtomicBool,
    /// Evaluations seen on `/metrics`, by start in milliseconds.
    evals: std::sync::Mutex<std::collections::BTreeMap<i64, f64>>,
    /// Ends of state flushes seen on `/metrics`, in milliseconds.
    flushes: std::sync::Mutex<std::collections::BTreeSet<i64>>,
    metrics_bytes: std::sync::atomic::AtomicUsize,
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn record(&self, text: &str) {
        let ts = metric_in(
            text,
            "driftgauge_rule_group_last_evaluation_timestamp_seconds",
        );
        let secs = metric_in(text, "driftgauge_rule_group_last_duration_seconds");
        if let Some(f) = metric_in(text, "driftgauge_storage_last_flush_timestamp_seconds") {
            if f > 0.0 {
                self.flushes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert((f * 1000.0).round() as i64);
            }
        }
        if let (Some(ts), Some(secs)) = (ts, secs) {
            if ts > 0.0 {
                self.evals
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert((ts * 1000.0).round() as i64, secs);
            }
        }
    }

    fn flushes(&self) -> Vec<f64> {
        self.flushes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|&ms| ms as f64 / 1000.0)
            .collect()
    }

    fn evals(&self) -> Vec<Eval> {
        self.evals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(&ms, &secs)| Eval {
                start: ms as f64 / 1000.0,
                secs,
            })
            .collect()
    }
}

/// Back-to-back one-series pushes (20 values, series `range` in turn, each its own reference
/// again: no transitions) until `shared.stop`.
fn pusher(port: u16, shared: &Shared, range: std::ops::Range<usize>) -> Result<Vec<Timed>, String> {
    let mut conn = Conn::open(port).map_err(|e| format!("pusher: connecting: {e}"))?;
    let mut out = Vec::new();
    let mut i = range.start;
    while !shared.stopped() {
        let (req, n) = stall_request(port, &[(i, stall_values(i, 0.0, false), STALL_WINDOW)]);
        let start = now_unix_s();
        let t0 = Instant::now();
        let r = conn.send(&req).map_err(|e| format!("pusher: {e}"))?;
        let secs = t0.elapsed().as_secs_f64();
        check_accepted(&r, n).map_err(|e| format!("pusher: {e}"))?;
        out.push(Timed { start, secs });
        i += 1;
        if i == range.end {
            i = range.start;
        }
    }
    Ok(out)
}

/// Back-to-back `GET /metrics` until `shared.stop`; records the evaluations it shows.
fn scraper(port: u16, shared: &Shared) -> Result<Vec<Timed>, String> {
    let mut conn = Conn::open(port).map_err(|e| format!("scraper: connecting: {e}"))?;
    let req = format!(
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: driftgauge-load/1\r\n\r\n"
    );
    let mut out = Vec::new();
    while !shared.stopped() {
        let start = now_unix_s();
        let t0 = Instant::now();
        let r = conn
            .send(req.as_bytes())
            .map_err(|e| format!("scraper: {e}"))?;
        let secs = t0.elapsed().as_secs_f64();
        if r.status != 200 {
            return Err(format!("scraper: GET /metrics answered {}", r.status));
        }
        out.push(Timed { start, secs });
        shared
            .metrics_bytes
            .store(r.body.len(), std::sync::atomic::Ordering::Relaxed);
        let text = std::str::from_utf8(&r.body)
            .map_err(|_| "scraper: /metrics is not UTF-8".to_string())?;
        shared.record(text);
    }
    Ok(out)
}

/// Runs the pusher and the scraper while `run` runs, then stops them.
fn with_clients<T>(
    port: u16,
    shared: &Shared,
    range: std::ops::Range<usize>,
    run: impl FnOnce() -> Result<T, String>,
) -> Result<(T, Vec<Timed>, Vec<Timed>), String> {
    std::thread::scope(|s| {
        let p = s.spawn(|| pusher(port, shared, range));
        let m = s.spawn(|| scraper(port, shared));
        let r = run();
        shared
            .stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let p = p.join().unwrap_or_else(|_| Err("pusher panicked".into()));
        let m = m.join().unwrap_or_else(|_| Err("scraper panicked".into()));
        Ok((r?, p?, m?))
    })
}

/// Polls `/metrics` until an evaluation that started at or after `t` (Unix seconds) has been
/// published; returns the last text read.
fn wait_eval_after(server: &mut Server, shared: &Shared, t: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let text = server.metrics_text();
        shared.record(&text);
        if shared.evals().iter().any(|e| e.start >= t) {
            return text;
        }
        if Instant::now() > deadline {
            server.fail("no rule group evaluation within 120s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// (count, median, p99, max) in seconds; p99 by nearest rank.
fn spread(v: &[f64]) -> Option<(usize, f64, f64, f64)> {
    if v.is_empty() {
        return None;
    }
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Some((v.len(), v[v.len() / 2], rank(0.99), v[v.len() - 1]))
}

fn ms(secs: f64) -> String {
    let m = secs * 1e3;
    if m < 10.0 {
        format!("{m:.2} ms")
    } else if m < 100.0 {
        format!("{m:.1} ms")
    } else {
        format!("{m:.0} ms")
    }
}

fn latency_row(what: &str, t: &[Timed]) -> String {
    let secs: Vec<f64> = t.iter().map(|t| t.secs).collect();
    match spread(&secs) {
        Some((n, med, p99, max)) => {
            format!("| {what} | {n} | {} | {} | {} |", ms(med), ms(p99), ms(max))
        }
        None => format!("| {what} | 0 | | | |"),
    }
}

/// Where the `k` slowest requests fell: how far into an evaluation, and how far from the
/// nearest end of a state flush.
fn slowest(t: &[Timed], evals: &[Eval], flushes: &[f64], k: usize) -> String {
    let mut t = t.to_vec();
    t.sort_by(|a, b| b.secs.total_cmp(&a.secs));
    t.iter()
        .take(k)
        .map(|t| {
            let during = match evals.iter().find(|e| e.overlaps(t)) {
                Some(e) => format!(
                    "sent {:+.0} ms from the start of a {} evaluation",
                    (t.start - e.start) * 1e3,
                    ms(e.secs)
                ),
                None => "no evaluation".into(),
            };
            let flush = flushes
                .iter()
                .map(|f| f - t.start)
                .min_by(|a, b| a.abs().total_cmp(&b.abs()))
                .map(|f| format!(", a flush ended {:+.0} ms from its sending", f * 1e3))
                .unwrap_or_default();
            format!("{} ({during}{flush})", ms(t.secs))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn eval_summary(evals: &[Eval]) -> String {
    let secs: Vec<f64> = evals.iter().map(|e| e.secs).collect();
    match spread(&secs) {
        Some((n, med, _, max)) => format!(
            "{n} evaluations; `driftgauge_rule_group_last_duration_seconds` median {}, max {}",
            ms(med),
            ms(max)
        ),
        None => "no evaluation seen".into(),
    }
}

/// The `stall` part: one KS rule over `--stall-series` series evaluated every 2 s, one
/// connection pushing one series at a time and one scraping `/metrics`, both back to back and
/// timed per request; then `--stall-drifting` of the series drift in one evaluation with a
/// webhook on the rule.
fn stall(opts: &Opts, binary: &Path) {
    let n = opts.stall_series;
    let d = opts.stall_drifting;
    if d >= n {
        die("--stall-drifting must be below --stall-series");
    }
    let (hook_port, calls) =
        start_receiver().unwrap_or_else(|e| die(&format!("starting the webhook receiver: {e}")));
    let max_series = (2 * n).max(200_000);
    let config = format!(
        "global:\n  evaluation_interval: 15s\nrule_files: [\"rules/*.yml\"]\n\
         webhooks:\n  hook:\n    url: http://127.0.0.1:{hook_port}/\n\
         limits:\n  max_series: {max_series}\n  max_series_per_rule: {max_series}\n"
    );
    let rules = format!(
        "groups:\n  - name: {STALL_GROUP}\n    interval: {STALL_INTERVAL_S}s\n    rules:\n      \
         - name: stall_drift\n        detector: ks\n        series: 'stall_value'\n        \
         reference: {{first: {STALL_WINDOW}}}\n        current: {{last: {STALL_WINDOW}}}\n        \
         min_samples: {STALL_WINDOW}\n        webhooks: [hook]\n"
    );
    let mut server = Server::start_with(binary, opts.flush_interval.as_deref(), &config, &rules);
    let port = server.port;
    println!(
        "stall: server pid {} on 127.0.0.1:{port}, webhook receiver on 127.0.0.1:{hook_port}",
        server.pid()
    );

    // Fill: every series gets its reference and a current window equal to it as a sample.
    let t0 = Instant::now();
    let mut conn = Conn::open(port).unwrap_or_else(|e| server.fail(&format!("connecting: {e}")));
    for first in (0..n).step_by(STALL_FILL_BATCH) {
        let batch: Vec<(usize, String, usize)> = (first..(first + STALL_FILL_BATCH).min(n))
            .map(|i| {
                let values = format!(
                    "{},{}",
                    stall_values(i, 0.0, false),
                    stall_values(i, 0.0, true)
                );
                (i, values, 2 * STALL_WINDOW)
            })
            .collect();
        let (req, values) = stall_request(port, &batch);
        let r = conn
            .send(&req)
            .unwrap_or_else(|e| server.fail(&format!("filling: {e}")));
        check_accepted(&r, values).unwrap_or_else(|e| server.fail(&format!("filling: {e}")));
    }
    drop(conn);
    let filled_at = now_unix_s();
    println!(
        "stall: filled {n} series x {} values in {:.2}s",
        2 * STALL_WINDOW,
        t0.elapsed().as_secs_f64()
    );
    let ready = Shared::default();
    let text = wait_eval_after(&mut server, &ready, filled_at);
    let st = statuses(&text);
    if st != [n, 0, 0] {
        server.fail(&format!(
            "after the fill: {st:?} series stable/warning/drifted, expected {n} stable"
        ));
    }
    let rss_filled = server.rss_bytes();
    println!(
        "stall: first evaluation over all {n} series: {}; /metrics {:.1} MB; server VmRSS {:.1} MB",
        ms(ready.evals().last().map_or(0.0, |e| e.secs)),
        text.len() as f64 / 1e6,
        rss_filled as f64 / 1e6
    );

    // Scenario 1: steady evaluations, no transitions.
    let load1 = loadavg();
    let clock1 = now_utc();
    let s1 = Shared::default();
    let began = now_unix_s();
    let ((), pushes1, scrapes1) = with_clients(port, &s1, d..n, || {
        std::thread::sleep(Duration::from_secs_f64(opts.stall_seconds));
        Ok(())
    })
    .unwrap_or_else(|e| server.fail(&e));
    let ended = now_unix_s();
    wait_eval_after(&mut server, &s1, ended);
    let load1_after = loadavg();
    let evals1: Vec<Eval> = s1
        .evals()
        .into_iter()
        .filter(|e| e.start < ended && e.end() > began)
        .collect();
    let (during, between): (Vec<Timed>, Vec<Timed>) = pushes1
        .iter()
        .partition(|t| evals1.iter().any(|e| e.overlaps(t)));
    let rss1 = server.rss_bytes();
    let got = calls_of(&calls).len();
    if got != 0 {
        server.fail(&format!("{got} webhook calls in scenario 1, expected none"));
    }

    // Scenario 2: `d` series drift in one evaluation; the rule calls the webhook for each.
    let drift: Vec<(usize, String, usize)> = (0..d)
        .map(|i| (i, stall_values(i, STALL_SHIFT, false), STALL_WINDOW))
        .collect();
    let (drift_req, drift_values) = stall_request(port, &drift);
    drop(drift);
    let load2 = loadavg();
    let clock2 = now_utc();
    let s2 = Shared::default();
    let began2 = now_unix_s();
    let run2 = with_clients(port, &s2, d..n, || {
        std::thread::sleep(Duration::from_secs(1));
        // Send the batch just after an evaluation is published, well before the next starts,
        // so that the next one sees all of it.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = s2.evals().last().map_or(0.0, |e| e.start);
        loop {
            if Instant::now() > deadline {
                return Err("no evaluation to align the drift batch with in 60s".into());
            }
            std::thread::sleep(Duration::from_millis(10));
            let Some(last) = s2.evals().last().copied() else {
                continue;
            };
            if last.start > seen {
                if now_unix_s() < last.start + STALL_INTERVAL_S - 0.3 {
                    break;
                }
                seen = last.start;
            }
        }
        let mut c = Conn::open(port).map_err(|e| format!("drift batch: connecting: {e}"))?;
        let sent = now_unix_s();
        let t = Instant::now();
        let r = c
            .send(&drift_req)
            .map_err(|e| format!("drift batch: {e}"))?;
        let drift_secs = t.elapsed().as_secs_f64();
        check_accepted(&r, drift_values).map_err(|e| format!("drift batch: {e}"))?;
        let answered = now_unix_s();
        // Until every call has arrived, two more evaluations have run and 2 s have passed
        // since the last call (the outbox entries are removed after the calls).
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let got = calls_of(&calls);
            let last_call = got.iter().map(|c| c.0).fold(0.0, f64::max);
            let after = s2.evals().iter().filter(|e| e.start >= answered).count();
            if got.len() >= d && after >= 3 && now_unix_s() > last_call + 2.0 {
                break;
            }
            if Instant::now() > deadline {
                eprintln!(
                    "stall: warning: after 120s, {} of {d} webhook calls, {after} evaluations",
                    got.len()
                );
                break;
            }
        }
        Ok((sent, answered, drift_secs))
    });
    let ((sent, answered, drift_secs), pushes2, scrapes2) =
        run2.unwrap_or_else(|e| server.fail(&e));
    let ended2 = now_unix_s();
    let text = wait_eval_after(&mut server, &s2, ended2);
    let load2_after = loadavg();
    let st = statuses(&text);
    if st != [n - d, 0, d] {
        server.fail(&format!(
            "after the drift: {st:?} series stable/warning/drifted, expected {} and {d} drifted",
            n - d
        ));
    }
    let evals2 = s2.evals();
    let Some(tr) = evals2.iter().find(|e| e.start >= answered).copied() else {
        server.fail("no evaluation after the drift batch");
    };
    let before_tr = evals2
        .iter()
        .rev()
        .find(|e| e.start < tr.start)
        .copied()
        .filter(|e| e.start >= began2);
    let aligned = before_tr.is_none_or(|e| e.end() < sent);
    let got = calls_of(&calls);
    let keys: std::collections::HashSet<&str> = got.iter().map(|c| c.1.as_str()).collect();
    let first_call = got.iter().map(|c| c.0).fold(f64::INFINITY, f64::min);
    let last_call = got.iter().map(|c| c.0).fold(0.0, f64::max);
    let span_end = last_call.max(tr.end()) + 2.0;
    let in_tr: Vec<Timed> = pushes2.iter().filter(|t| tr.overlaps(t)).copied().collect();
    let in_span = |t: &&Timed| t.start + t.secs > tr.start && t.start < span_end;
    let span: Vec<Timed> = pushes2.iter().filter(in_span).copied().collect();
    let scrape_span: Vec<Timed> = scrapes2.iter().filter(in_span).copied().collect();
    let other_evals: Vec<Eval> = evals2
        .iter()
        .filter(|e| e.start >= began2 && e.start != tr.start)
        .copied()
        .collect();
    let rss = server.rss_bytes();
    server.stop();

    let mb = s1.metrics_bytes.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e6;
    println!();
    println!(
        "### 1. {n} series, one KS rule (first 20 / last 20) evaluated every {STALL_INTERVAL_S} s, \
         {:.0} s of load",
        opts.stall_seconds
    );
    println!();
    println!(
        "{clock1}, load average {load1} before, {load1_after} after; {}",
        eval_summary(&evals1)
    );
    println!();
    println!("| requests, back to back on one connection each | count | median | p99 | max |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "{}",
        latency_row("push, 1 series x 20 values: all", &pushes1)
    );
    println!(
        "{}",
        latency_row("push: those overlapping an evaluation", &during)
    );
    println!("{}", latency_row("push: the others", &between));
    println!(
        "{}",
        latency_row(&format!("`GET /metrics` ({mb:.1} MB)"), &scrapes1)
    );
    println!();
    println!(
        "slowest pushes: {}",
        slowest(&pushes1, &evals1, &s1.flushes(), 5)
    );
    println!(
        "slowest scrapes: {}",
        slowest(&scrapes1, &evals1, &s1.flushes(), 3)
    );
    println!(
        "server VmRSS {:.1} MB after the fill, {:.1} MB after this scenario",
        rss_filled as f64 / 1e6,
        rss1 as f64 / 1e6
    );
    println!();
    println!(
        "### 2. {d} of them drift in one evaluation, a webhook on the rule (receiver answers 200)"
    );
    println!();
    println!(
        "{clock2}, load average {load2} before, {load2_after} after; drift batch ({d} series x \
         {STALL_WINDOW} values, +{STALL_SHIFT} sd) answered in {}, {:.2} s before the \
         evaluation that turned them drifted{}",
        ms(drift_secs),
        tr.start - answered,
        if aligned {
            ""
        } else {
            " (WARNING: the batch overlapped the evaluation before it)"
        }
    );
    println!();
    println!(
        "transition evaluation: `driftgauge_rule_group_last_duration_seconds` {}; the others \
         in this run: {}",
        ms(tr.secs),
        eval_summary(&other_evals)
    );
    println!(
        "webhook calls received: {} ({} distinct Idempotency-Keys) for {d} transitions, first \
         {:+.3} s, last {:+.3} s from the transition evaluation's start; server VmRSS {:.1} MB",
        got.len(),
        keys.len(),
        first_call - tr.start,
        last_call - tr.start,
        rss as f64 / 1e6
    );
    println!();
    println!("| requests, back to back on one connection each | count | median | p99 | max |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "{}",
        latency_row(
            "push, 1 series x 20 values: overlapping the transition evaluation",
            &in_tr
        )
    );
    println!(
        "{}",
        latency_row(
            "push: from its start to 2 s after the last webhook call",
            &span
        )
    );
    println!(
        "{}",
        latency_row("`GET /metrics`: the same span", &scrape_span)
    );
    println!("{}", latency_row("push: the whole run", &pushes2));
    println!();
    println!(
        "slowest pushes of the run: {}",
        slowest(&pushes2, &evals2, &s2.flushes(), 3)
    );
}

/// The wall clock as `YYYY-MM-DD HH:MM UTC`.
fn now_utc() -> String {
    let secs = now_unix_s() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}
