//! `--web.config.file`: TLS with certificates the `openssl` CLI makes at test time, basic auth
//! with bcrypt hashes, bearer tokens on the write routes; over real sockets with reqwest.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use driftgauge::http::tls::accept_tls;
use driftgauge::http::web_config::{load_web_config, WebConfig};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::support::{wait_until, WAIT};

/// bcrypt's lowest cost keeps the tests fast.
const COST: u32 = 4;

/// Runs `openssl` in `dir`; panics loudly when it is missing or fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("these tests need the openssl command line tool to make certificates: {e}")
        });
    assert!(
        out.status.success(),
        "openssl {} failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A throwaway PKI in a temp dir: `ca.crt`; `server.crt`/`server.key` (RSA 2048, for
/// 127.0.0.1 and localhost, signed by the CA); `client.crt`/`client.key` (signed by the CA,
/// clientAuth); `rogue.crt`/`rogue.key` (a self-signed client the CA never signed); and
/// `other.key`, a key that belongs to no certificate.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        let mut ca = vec!["req", "-x509", "-nodes", "-days", "1"];
        ca.extend(ec);
        ca.extend([
            "-subj",
            "/CN=driftgauge test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ]);
        openssl(d, &ca);
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write");
        std::fs::write(
            d.join("client.ext"),
            "basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth\n",
        )
        .expect("write");
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
        );
        let mut client = vec!["req", "-nodes"];
        client.extend(ec);
        client.extend([
            "-subj",
            "/CN=client",
            "-keyout",
            "client.key",
            "-out",
            "client.csr",
        ]);
        openssl(d, &client);
        for (name, serial) in [("server", "2"), ("client", "3")] {
            openssl(
                d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &format!("{name}.csr"),
                    "-CA",
                    "ca.crt",
                    "-CAkey",
                    "ca.key",
                    "-set_serial",
                    serial,
                    "-days",
                    "1",
                    "-extfile",
                    &format!("{name}.ext"),
                    "-out",
                    &format!("{name}.crt"),
                ],
            );
        }
        let mut rogue = vec!["req", "-x509", "-nodes", "-days", "1"];
        rogue.extend(ec);
        rogue.extend([
            "-subj",
            "/CN=rogue",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-keyout",
            "rogue.key",
            "-out",
            "rogue.crt",
        ]);
        openssl(d, &rogue);
        openssl(
            d,
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                "other.key",
            ],
        );
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// Writes `web.yml` (and any `extra` files) next to the certificates; returns its path.
    fn web_config(&self, text: &str, extra: &[(&str, &str)]) -> PathBuf {
        for (name, content) in extra {
            let p = self.path(name);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).expect("mkdir");
            }
            std::fs::write(p, content).expect("write");
        }
        let path = self.path("web.yml");
        std::fs::write(&path, text).expect("write web.yml");
        path
    }

    /// An HTTPS client that trusts only the test CA.
    fn client(&self) -> reqwest::ClientBuilder {
        driftgauge::net::install_crypto_provider();
        let ca = reqwest::Certificate::from_pem(&self.read("ca.crt")).expect("CA certificate");
        reqwest::Client::builder()
            .tls_certs_only([ca])
            .no_proxy()
            .timeout(Duration::from_secs(10))
    }

    /// The test client with the CA-signed client certificate (or the rogue one).
    fn client_with_identity(&self, name: &str) -> reqwest::Client {
        let mut pem = self.read(&format!("{name}.crt"));
        pem.extend(self.read(&format!("{name}.key")));
        let identity = reqwest::Identity::from_pem(&pem).expect("identity");
        self.client().identity(identity).build().expect("client")
    }
}

fn bcrypt_hash(password: &str) -> String {
    bcrypt::hash(password, COST).expect("bcrypt")
}

/// A small server on the module's functions alone, the way the service wires them: TLS
/// handshake (with a timeout) in the connection's own task, then hyper; `authorize` before
/// anything else; 401 with the challenges.
struct TestServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(config: WebConfig, handshake_timeout: Duration) -> TestServer {
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = config.tls_acceptor();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (config, acceptor) = (Arc::clone(&config), acceptor.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let config = Arc::clone(&config);
                    async move {
                        let verdict = config
                            .authorize_async(req.method(), req.uri().path(), req.headers())
                            .await;
                        let mut resp = match verdict {
                            Ok(()) => Response::new(Full::new(Bytes::from("ok"))),
                            Err(e) => {
                                let mut r = Response::new(Full::new(Bytes::from(e.to_string())));
                                *r.status_mut() = StatusCode::UNAUTHORIZED;
                                for c in e.challenges() {
                                    r.headers_mut().append(
                                        hyper::header::WWW_AUTHENTICATE,
                                        hyper::header::HeaderValue::from_static(c),
                                    );
                                }
                                r
                            }
                        };
                        for (name, value) in config.response_headers() {
                            resp.headers_mut().insert(name.clone(), value.clone());
                        }
                        Ok::<_, Infallible>(resp)
                    }
                });
                match acceptor {
                    Some(acceptor) => {
                        if let Ok(tls) = accept_tls(&acceptor, stream, handshake_timeout).await {
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(tls), service)
                                .await;
                        }
                    }
                    None => {
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                }
            });
        }
    });
    TestServer { addr, task }
}

fn https(addr: SocketAddr, path: &str) -> String {
    format!("https://{addr}{path}")
}

#[test]
fn a_web_config_with_openssl_made_files_loads() {
    let pki = Pki::new();
    let path = pki.web_config(
        &format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  min_version: TLS12\nbasic_auth_users:\n  alice: {}\nwrite_bearer_token_files: [secrets/writer.token]\n",
            bcrypt_hash("alice-password")
        ),
        &[("secrets/writer.token", "writer-token-value\n")],
    );
    let config = load_web_config(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(config.tls_acceptor().is_some());
    assert_eq!(config.scheme(), "https");
    let debug = format!("{config:?}");
    assert!(
        debug.contains("RequireAndVerifyClientCert") && debug.contains("alice"),
        "{debug}"
    );
    // No key material, hash or token in Debug output.
    let key = String::from_utf8(pki.read("server.key")).expect("PEM is text");
    let key_line = key.lines().nth(1).expect("a base64 line");
    for secret in [
        "PRIVATE KEY",
        key_line,
        "writer-token-value",
        "alice-password",
        "$2",
    ] {
        assert!(!debug.contains(secret), "{secret:?} in {debug}");
    }
}

#[test]
fn certificate_and_key_problems_are_reported_at_their_keys() {
    let pki = Pki::new();
    let load = |text: &str| {
        let path = pki.web_config(text, &[]);
        load_web_config(&path)
            .expect_err("should be refused")
            .to_string()
    };
    let origin = pki.path("web.yml").display().to_string();
    let d = pki.dir.path().display();
    assert_eq!(
        load("tls_server_config:\n  cert_file: server.crt\n  key_file: other.key\n"),
        format!(
            "{origin}:3:13: key_file {d}/other.key: the private key does not match the certificate of cert_file {d}/server.crt"
        )
    );
    assert_eq!(
        load("tls_server_config:\n  cert_file: server.key\n  key_file: server.key\n"),
        format!("{origin}:2:14: cert_file {d}/server.key: no PEM CERTIFICATE found")
    );
    assert_eq!(
        load("tls_server_config:\n  cert_file: server.crt\n  key_file: server.crt\n"),
        format!(
            "{origin}:3:13: key_file {d}/server.crt: no PEM private key found (PKCS#8, PKCS#1 or SEC1)"
        )
    );
    assert_eq!(
        load("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: missing-ca.crt\n"),
        format!("{origin}:5:19: client_ca_file: cannot read {d}/missing-ca.crt: no such file")
    );
    // A mismatch error never quotes the key.
    let key = String::from_utf8(pki.read("other.key")).expect("PEM is text");
    let message = load("tls_server_config:\n  cert_file: server.crt\n  key_file: other.key\n");
    assert!(!message.contains(key.lines().nth(1).expect("a base64 line")));
}

#[test]
fn a_key_mismatch_is_reported_with_the_other_problems_in_file_order() {
    let pki = Pki::new();
    let path = pki.web_config(
        "rate_limit: {burst: 1}\ntls_server_config:\n  cert_file: server.crt\n  key_file: other.key\nbasic_auth_users:\n  alice: not-a-hash\n",
        &[],
    );
    let origin = path.display().to_string();
    let d = pki.dir.path().display();
    assert_eq!(
        load_web_config(&path).expect_err("refused").to_string(),
        format!(
            "{origin}:1:1: rate_limit is not supported: rate limiting is not supported by driftgauge\n\
             {origin}:4:13: key_file {d}/other.key: the private key does not match the certificate of cert_file {d}/server.crt\n\
             {origin}:6:10: basic_auth_users: the password hash of user \"alice\" is not a valid bcrypt hash ($2y$, $2b$ or $2a$, cost 4 to 31, 60 characters)"
        )
    );
}

#[test]
fn inline_certificate_and_key_work_like_files() {
    let pki = Pki::new();
    let indent = |name: &str| {
        String::from_utf8(pki.read(name))
            .expect("PEM is text")
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    };
    let text = format!(
        "tls_server_config:\n  cert: |\n{}  key: |\n{}",
        indent("server.crt"),
        indent("server.key")
    );
    let path = pki.web_config(&text, &[]);
    let config = load_web_config(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(config.tls_acceptor().is_some());
    assert!(!format!("{config:?}").contains("PRIVATE"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_basic_auth_and_write_tokens() {
    let pki = Pki::new();
    let path = pki.web_config(
        &format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nhttp_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\nbasic_auth_users:\n  alice: {}\nwrite_bearer_token_files: [secrets/writer.token]\n",
            bcrypt_hash("alice-password")
        ),
        &[("secrets/writer.token", "writer-token-value\n")],
    );
    let server = serve(
        load_web_config(&path).unwrap_or_else(|e| panic!("{e}")),
        Duration::from_secs(5),
    )
    .await;
    let client = pki.client().build().expect("client");
    let url = |p: &str| https(server.addr, p);

    let r = client.get(url("/metrics")).send().await.expect("HTTPS GET");
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Basic realm=\"driftgauge\"")
    );
    assert_eq!(
        r.headers()
            .get("x-content-type-options")
            .and_then(|v| v.to_str().ok()),
        Some("nosniff")
    );
    let r = client
        .get(url("/metrics"))
        .basic_auth("alice", Some("alice-password"))
        .send()
        .await
        .expect("HTTPS GET");
    assert_eq!(r.status(), 200);
    for (user, password) in [("alice", "wrong"), ("mallory", "alice-password")] {
        let r = client
            .get(url("/metrics"))
            .basic_auth(user, Some(password))
            .send()
            .await
            .expect("HTTPS GET");
        assert_eq!(r.status(), 401, "{user}");
    }
    // The write token opens the write routes only.
    let r = client
        .post(url("/api/v1/samples"))
        .bearer_auth("writer-token-value")
        .body("{}")
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 200);
    let r = client
        .post(url("/api/v1/samples"))
        .body("{}")
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 401);
    let challenges: Vec<&str> = r
        .headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(
        challenges,
        ["Basic realm=\"driftgauge\"", "Bearer realm=\"driftgauge\""]
    );
    let r = client
        .get(url("/metrics"))
        .bearer_auth("writer-token-value")
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 401);

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    assert!(
        plain
            .get(format!("http://{}/metrics", server.addr))
            .send()
            .await
            .is_err(),
        "plain HTTP must not be served on the TLS port"
    );
    // A client that does not trust the CA refuses the server.
    let rogue_root = reqwest::Certificate::from_pem(&pki.read("rogue.crt")).expect("cert");
    let untrusting = reqwest::Client::builder()
        .tls_certs_only([rogue_root])
        .no_proxy()
        .build()
        .expect("client");
    assert!(untrusting.get(url("/metrics")).send().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_required_and_verified() {
    let pki = Pki::new();
    let path = pki.web_config(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n",
        &[],
    );
    let server = serve(
        load_web_config(&path).unwrap_or_else(|e| panic!("{e}")),
        Duration::from_secs(5),
    )
    .await;
    let url = https(server.addr, "/metrics");
    let r = pki
        .client_with_identity("client")
        .get(&url)
        .send()
        .await
        .expect("mutual TLS");
    assert_eq!(r.status(), 200);
    let anonymous = pki.client().build().expect("client");
    assert!(
        anonymous.get(&url).send().await.is_err(),
        "no client certificate"
    );
    assert!(
        pki.client_with_identity("rogue")
            .get(&url)
            .send()
            .await
            .is_err(),
        "a client certificate the CA did not sign"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_client_certificates_must_still_verify() {
    let pki = Pki::new();
    let path = pki.web_config(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n",
        &[],
    );
    let server = serve(
        load_web_config(&path).unwrap_or_else(|e| panic!("{e}")),
        Duration::from_secs(5),
    )
    .await;
    let url = https(server.addr, "/metrics");
    let anonymous = pki.client().build().expect("client");
    assert_eq!(anonymous.get(&url).send().await.expect("GET").status(), 200);
    let r = pki
        .client_with_identity("client")
        .get(&url)
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 200);
    assert!(pki
        .client_with_identity("rogue")
        .get(&url)
        .send()
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_version_tls13_refuses_tls12_clients() {
    let pki = Pki::new();
    let path = pki.web_config(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS13\n",
        &[],
    );
    let server = serve(
        load_web_config(&path).unwrap_or_else(|e| panic!("{e}")),
        Duration::from_secs(5),
    )
    .await;
    let url = https(server.addr, "/");
    let tls12 = pki
        .client()
        .tls_version_max(reqwest::tls::Version::TLS_1_2)
        .build()
        .expect("client");
    assert!(tls12.get(&url).send().await.is_err());
    let default = pki.client().build().expect("client");
    assert_eq!(default.get(&url).send().await.expect("GET").status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_dropped_after_the_handshake_timeout() {
    let pki = Pki::new();
    let path = pki.web_config(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
        &[],
    );
    let server = serve(
        load_web_config(&path).unwrap_or_else(|e| panic!("{e}")),
        Duration::from_millis(200),
    )
    .await;
    let mut silent = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(10), silent.read(&mut buf))
        .await
        .expect("the server closes the connection well before 10 s");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(started.elapsed() >= Duration::from_millis(150));
}
// ---- driftgauge itself: app::run with `Options::web_config` ----

const SERVICE_CONFIG: &str = "global: {evaluation_interval: 50ms}\nrule_files: [\"rules/*.yml\"]\n";

const EMA_RULES: &str = r#"
groups:
  - name: quality
    interval: 50ms
    rules:
      - name: accuracy_degradation
        detector: ema
        min_samples: 1
        series: 'model_accuracy{model="fraud"}'
        smoothing: 0.5
        below: 0.85
"#;

/// driftgauge started in-process on `127.0.0.1:0` with a web config next to the test PKI.
struct Service {
    addr: SocketAddr,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), driftgauge::app::AppError>>>,
}

impl Service {
    /// Starts the service; `ready` builds the request `/-/ready` is polled with (over HTTPS,
    /// with credentials) for the address it got.
    async fn start(
        web_config: PathBuf,
        ready: impl Fn(SocketAddr) -> reqwest::RequestBuilder,
    ) -> Service {
        Service::start_with(web_config, SERVICE_CONFIG, EMA_RULES, ready).await
    }

    /// [`Service::start`] with this service config and rule file.
    async fn start_with(
        web_config: PathBuf,
        service_config: &str,
        rules: &str,
        ready: impl Fn(SocketAddr) -> reqwest::RequestBuilder,
    ) -> Service {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("rules")).expect("mkdir");
        std::fs::write(dir.path().join("driftgauge.yml"), service_config).expect("write");
        std::fs::write(dir.path().join("rules/q.yml"), rules).expect("write");
        let options = driftgauge::app::Options {
            config_file: Some(dir.path().join("driftgauge.yml")),
            storage_path: dir.path().join("data"),
            flush_interval: Duration::from_millis(100),
            enable_lifecycle: true,
            web_config: Some(web_config),
            ..Default::default()
        };
        driftgauge::net::install_crypto_provider();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(driftgauge::app::run(options, listener, async move {
            let _ = stopped.await;
        }));
        let service = Service {
            addr,
            _dir: dir,
            stop: Some(stop),
            task: Some(task),
        };
        wait_until("driftgauge to become ready", WAIT, || async {
            ready(addr).send().await.is_ok_and(|r| r.status() == 200)
        })
        .await;
        service
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let r = tokio::time::timeout(Duration::from_secs(15), t)
                .await
                .expect("shutdown within bound")
                .expect("join");
            r.expect("clean exit");
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driftgauge_serves_https_with_basic_auth_and_write_tokens() {
    let pki = Pki::new();
    let web = pki.web_config(
        &format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  alice: {}\nwrite_bearer_token_files: [secrets/writer.token]\n",
            bcrypt_hash("alice-password")
        ),
        &[("secrets/writer.token", "writer-token-value\n")],
    );
    let client = pki.client().build().expect("client");
    let service = Service::start(web, |addr| {
        client
            .get(https(addr, "/-/ready"))
            .basic_auth("alice", Some("alice-password"))
    })
    .await;
    let url = |p: &str| https(service.addr, p);

    let r = client.get(url("/metrics")).send().await.expect("HTTPS GET");
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Basic realm=\"driftgauge\"")
    );
    let r = client
        .get(url("/metrics"))
        .basic_auth("alice", Some("alice-password"))
        .send()
        .await
        .expect("HTTPS GET");
    assert_eq!(r.status(), 200);
    assert!(r
        .text()
        .await
        .expect("body")
        .contains("driftgauge_build_info"));
    for (user, password) in [("alice", "wrong"), ("mallory", "alice-password")] {
        let r = client
            .get(url("/metrics"))
            .basic_auth(user, Some(password))
            .send()
            .await
            .expect("HTTPS GET");
        assert_eq!(r.status(), 401, "{user}");
    }
    // No route enumeration without credentials: an unknown path is 401, not 404.
    let r = client.get(url("/no/such/route")).send().await.expect("GET");
    assert_eq!(r.status(), 401);

    let sample =
        r#"{"samples":[{"metric":"model_accuracy","labels":{"model":"fraud"},"value":0.93}]}"#;
    let r = client
        .post(url("/api/v1/samples"))
        .bearer_auth("writer-token-value")
        .header("content-type", "application/json")
        .body(sample)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 200);
    let body: serde_json::Value =
        serde_json::from_str(&r.text().await.expect("body")).expect("JSON");
    assert_eq!(body["accepted"], 1);
    let r = client
        .post(url("/api/v1/samples"))
        .body(sample)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 401);
    let r = client
        .post(url("/api/v1/samples"))
        .bearer_auth("not-the-token")
        .body(sample)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 401);
    let r = client
        .post(url("/api/v1/samples"))
        .basic_auth("alice", Some("alice-password"))
        .body(sample)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 200);
    let r = client
        .post(url("/-/reload"))
        .bearer_auth("writer-token-value")
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 200);
    // The write token is not a read credential.
    let r = client
        .get(url("/metrics"))
        .bearer_auth("writer-token-value")
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 401);

    let plain = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    assert!(
        plain
            .get(format!("http://{}/-/healthy", service.addr))
            .send()
            .await
            .is_err(),
        "plain HTTP must not be served on the TLS port"
    );
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_web_config_stops_the_start() {
    let pki = Pki::new();
    let web = pki.web_config(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  cert_fil: typo\n",
        &[],
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let options = driftgauge::app::Options {
        storage_path: dir.path().join("data"),
        web_config: Some(web.clone()),
        ..Default::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let result = tokio::time::timeout(
        Duration::from_secs(15),
        driftgauge::app::run(options, listener, std::future::pending()),
    )
    .await
    .expect("refused at once");
    let err = result.expect_err("a bad web config must stop the start");
    assert!(
        err.to_string().contains(&format!(
            "{}:4:3: unknown key \"cert_fil\" in tls_server_config",
            web.display()
        )),
        "{err}"
    );
}

// ---- changes to the web config apply without a restart ----

/// A TLS web config with these users (bcrypt) and, when given, one write token file.
fn tls_web_config(users: &[(&str, &str)], token_file: Option<&str>) -> String {
    let mut text =
        String::from("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n");
    if !users.is_empty() {
        text.push_str("basic_auth_users:\n");
        for (user, password) in users {
            text.push_str(&format!("  {user}: {}\n", bcrypt_hash(password)));
        }
    }
    if let Some(file) = token_file {
        text.push_str(&format!("write_bearer_token_files: [{file}]\n"));
    }
    text
}

async fn status(request: reqwest::RequestBuilder) -> u16 {
    request.send().await.expect("request").status().as_u16()
}

/// Polls `cond` until it holds; returns how long that took.
async fn time_until<F, Fut>(what: &str, cond: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    wait_until(what, WAIT, cond).await;
    started.elapsed()
}

/// The files are looked at once a second at most, and a reload takes a bcrypt hash or so:
/// "a couple of seconds", with room for a busy 2-core test machine.
const PICKED_UP_WITHIN: Duration = Duration::from_secs(5);

const SAMPLE: &str =
    r#"{"samples":[{"metric":"model_accuracy","labels":{"model":"fraud"},"value":0.93}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_users_and_tokens_apply_without_a_restart() {
    let pki = Pki::new();
    let web = pki.web_config(
        &tls_web_config(&[("alice", "alice-password")], Some("secrets/writer.token")),
        &[("secrets/writer.token", "writer-token-1\n")],
    );
    let client = pki.client().build().expect("client");
    let service = Service::start(web, |addr| {
        client
            .get(https(addr, "/-/ready"))
            .basic_auth("alice", Some("alice-password"))
    })
    .await;
    let url = |p: &str| https(service.addr, p);
    let metrics =
        |user: &str, password: &str| client.get(url("/metrics")).basic_auth(user, Some(password));
    assert_eq!(status(metrics("alice", "alice-password")).await, 200);
    assert_eq!(status(metrics("bob", "bob-password")).await, 401);

    // A user added and a password changed, on disk only.
    pki.web_config(
        &tls_web_config(
            &[("alice", "alice-new-password"), ("bob", "bob-password")],
            Some("secrets/writer.token"),
        ),
        &[],
    );
    let took = time_until("the new user gets in", || async {
        status(metrics("bob", "bob-password")).await == 200
    })
    .await;
    assert!(took < PICKED_UP_WITHIN, "took {took:?}");
    assert_eq!(status(metrics("alice", "alice-password")).await, 401);
    assert_eq!(status(metrics("alice", "alice-new-password")).await, 200);

    // A write token rotated in its file.
    let push = |token: &str| {
        client
            .post(url("/api/v1/samples"))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(SAMPLE)
    };
    assert_eq!(status(push("writer-token-1")).await, 200);
    std::fs::write(pki.path("secrets/writer.token"), "writer-token-2\n").expect("write");
    let took = time_until("the new token gets in", || async {
        status(push("writer-token-2")).await == 200
    })
    .await;
    assert!(took < PICKED_UP_WITHIN, "took {took:?}");
    assert_eq!(status(push("writer-token-1")).await, 401);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_web_config_keeps_the_running_one() {
    let pki = Pki::new();
    let web = pki.web_config(
        &tls_web_config(&[("alice", "alice-password")], Some("writer.token")),
        &[("writer.token", "writer-token\n")],
    );
    let client = pki.client().build().expect("client");
    let service = Service::start(web.clone(), |addr| {
        client
            .get(https(addr, "/-/ready"))
            .basic_auth("alice", Some("alice-password"))
    })
    .await;
    let url = |p: &str| https(service.addr, p);
    let metrics =
        |user: &str, password: &str| client.get(url("/metrics")).basic_auth(user, Some(password));
    let reload = || client.post(url("/-/reload")).bearer_auth("writer-token");

    // A valid new user next to a broken one: nothing of the file is taken.
    let bob_hash = bcrypt_hash("bob-password");
    pki.web_config(
        &format!(
            "{}  bob: {}\n  carol: not-a-bcrypt-hash\nwrite_bearer_token_files: [writer.token]\n",
            tls_web_config(&[("alice", "alice-password")], None),
            bob_hash
        ),
        &[],
    );
    // Long enough for several checks of the files; the service keeps serving throughout.
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(2500) {
        assert_eq!(status(metrics("alice", "alice-password")).await, 200);
        assert_eq!(status(metrics("bob", "bob-password")).await, 401);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = reload().send().await.expect("POST");
    assert_eq!(r.status(), 500);
    let body = r.text().await.expect("body");
    assert!(
        body.contains(&format!(
            "{}:7:10: basic_auth_users: the password hash of user \\\"carol\\\" is not a valid bcrypt hash",
            web.display()
        )),
        "{body}"
    );
    for secret in [bob_hash.as_str(), "not-a-bcrypt-hash"] {
        assert!(!body.contains(secret), "{secret} in the answer: {body}");
    }
    assert_eq!(status(metrics("alice", "alice-password")).await, 200);
    assert_eq!(
        status(
            client
                .get(url("/-/healthy"))
                .basic_auth("alice", Some("alice-password"))
        )
        .await,
        200
    );

    // Emptied (as a file caught half written reads): neither TLS nor authentication goes.
    pki.web_config("", &[]);
    let r = reload().send().await.expect("POST");
    assert_eq!(r.status(), 500);
    let body = r.text().await.expect("body");
    assert!(
        body.contains("switching from HTTPS to HTTP needs a restart")
            && body.contains("turning authentication off needs a restart"),
        "{body}"
    );
    assert_eq!(status(client.get(url("/metrics"))).await, 401);
    assert_eq!(status(metrics("alice", "alice-password")).await, 200);

    // Fixed: taken at the next check.
    pki.web_config(
        &tls_web_config(
            &[("alice", "alice-password"), ("bob", "bob-password")],
            Some("writer.token"),
        ),
        &[],
    );
    let took = time_until("the fixed file is taken", || async {
        status(metrics("bob", "bob-password")).await == 200
    })
    .await;
    assert!(took < PICKED_UP_WITHIN, "took {took:?}");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_a_web_config_change_at_once() {
    let pki = Pki::new();
    let web = pki.web_config(
        &tls_web_config(&[("alice", "alice-password")], Some("writer.token")),
        &[("writer.token", "writer-token\n")],
    );
    let client = pki.client().build().expect("client");
    let service = Service::start(web, |addr| {
        client
            .get(https(addr, "/-/ready"))
            .basic_auth("alice", Some("alice-password"))
    })
    .await;
    let url = |p: &str| https(service.addr, p);
    let metrics =
        |user: &str, password: &str| client.get(url("/metrics")).basic_auth(user, Some(password));
    pki.web_config(
        &tls_web_config(&[("bob", "bob-password")], Some("writer.token")),
        &[],
    );
    // The token opens /-/reload under the old file and the new one alike.
    let r = client
        .post(url("/-/reload"))
        .bearer_auth("writer-token")
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    // At once: no polling.
    assert_eq!(status(metrics("bob", "bob-password")).await, 200);
    assert_eq!(status(metrics("alice", "alice-password")).await, 401);
    service.stop().await;
}

/// The DER of the first certificate in a PEM file.
fn der_of(pem: &[u8]) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .next()
        .expect("a certificate")
        .expect("valid PEM")
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_is_served_on_the_next_handshake() {
    let pki = Pki::new();
    // Another CA, and a server certificate and key it signed: what the rotation installs.
    let next = Pki::new();
    let web = pki.web_config(&tls_web_config(&[], None), &[]);
    // No pooled connections: every request is a new handshake; `tls_info` shows the
    // certificate the server presented.
    let fresh = |pki: &Pki| {
        pki.client()
            .pool_max_idle_per_host(0)
            .tls_info(true)
            .build()
            .expect("client")
    };
    let (trusts_old, trusts_new) = (fresh(&pki), fresh(&next));
    let service = Service::start(web, |addr| trusts_old.get(https(addr, "/-/ready"))).await;
    let url = https(service.addr, "/-/healthy");
    let presented = |r: &reqwest::Response| {
        r.extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|i| i.peer_certificate())
            .map(<[u8]>::to_vec)
            .expect("the peer certificate")
    };
    let r = trusts_old.get(&url).send().await.expect("GET");
    assert_eq!(presented(&r), der_of(&pki.read("server.crt")));
    assert!(trusts_new.get(&url).send().await.is_err());

    // Same paths, new content; the key first, so for a moment the pair does not match (that
    // state is refused and the running certificate stays).
    std::fs::write(pki.path("server.key"), next.read("server.key")).expect("write key");
    std::fs::write(pki.path("server.crt"), next.read("server.crt")).expect("write cert");
    let started = Instant::now();
    let served = wait_until("the new certificate to be served", WAIT, || async {
        trusts_new
            .get(&url)
            .send()
            .await
            .ok()
            .map(|r| presented(&r))
    })
    .await;
    let took = started.elapsed();
    assert!(took < PICKED_UP_WITHIN, "took {took:?}");
    assert_eq!(served, der_of(&next.read("server.crt")));
    assert!(
        trusts_old.get(&url).send().await.is_err(),
        "the old certificate is no longer presented"
    );
    service.stop().await;
}

// ---- a flood of wrong passwords (issue 10, item 2) ----

/// Connections that each send `GET /metrics` with a wrong password and, whatever the answer,
/// send it again at once (ignoring `Retry-After`). With the server's ends that is about twice
/// as many descriptors in this process: well within the 1,024 CI may allow. The 900-attacker
/// figures are `cargo bench --bench auth` (BENCHMARKS.md).
const ATTACKERS: usize = 300;

/// How long the legitimate clients are timed while the flood runs.
const FLOOD_FOR: Duration = Duration::from_secs(5);

/// Latency bound for the cached user's scrapes and the token's pushes in this test: a debug
/// build on a shared 2-core machine, next to other tests and the attackers. Typically 1-2 ms
/// at the median and tens of milliseconds at worst; before the password pool they timed out
/// (30 s) here.
const FLOOD_LATENCY_BOUND: Duration = Duration::from_millis(500);

const FLOOD_CONFIG: &str = "global: {evaluation_interval: 1s}\nrule_files: [\"rules/*.yml\"]\n";

const FLOOD_RULES: &str = r#"
groups:
  - name: quality
    interval: 1s
    rules:
      - name: accuracy_degradation
        detector: ema
        min_samples: 1
        series: 'model_accuracy{model="fraud"}'
        smoothing: 0.5
        below: 0.85
"#;

/// What the attackers were answered.
#[derive(Debug, Default)]
struct Answers {
    /// Status → how many.
    statuses: std::collections::BTreeMap<u16, usize>,
    /// How long each 429 that was the first answer on its connection took (the next request
    /// on that connection waits out `Retry-After` before it is answered).
    refused_in: Vec<Duration>,
    /// How long each 401 (a password checked) took.
    checked_in: Vec<Duration>,
    /// 429s without `Retry-After`.
    no_retry_after: usize,
    /// Attackers that have connected.
    connected: usize,
}

/// One request and its answer on a keep-alive connection: (status, has `Retry-After`, the
/// server closes).
async fn exchange(
    conn: &mut tokio::io::BufReader<tokio::net::TcpStream>,
    request: &[u8],
) -> std::io::Result<(u16, bool, bool)> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let invalid = || std::io::Error::from(std::io::ErrorKind::InvalidData);
    conn.get_mut().write_all(request).await?;
    let mut line = String::new();
    conn.read_line(&mut line).await?;
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(invalid)?;
    let (mut length, mut retry_after, mut close) = (0usize, false, false);
    loop {
        line.clear();
        if conn.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            return Err(invalid());
        };
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().map_err(|_| invalid())?,
            "retry-after" => retry_after = value.trim() == "1",
            "connection" => close = value.trim().eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    conn.read_exact(&mut body).await?;
    Ok((status, retry_after, close))
}

/// An attacker: one connection (again after the server closes it), requests back to back.
async fn attack(
    addr: SocketAddr,
    request: Arc<Vec<u8>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    answers: Arc<std::sync::Mutex<Answers>>,
) {
    let mut conn = None;
    let mut first = true;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let stream = match &mut conn {
            Some(stream) => stream,
            None => match tokio::net::TcpStream::connect(addr).await {
                Ok(s) => {
                    first = true;
                    answers.lock().expect("answers").connected += 1;
                    conn.insert(tokio::io::BufReader::new(s))
                }
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let started = Instant::now();
        match exchange(stream, &request).await {
            Ok((status, retry_after, close)) => {
                let took = started.elapsed();
                let first = std::mem::take(&mut first);
                let mut a = answers.lock().expect("answers");
                *a.statuses.entry(status).or_default() += 1;
                if status == 429 {
                    if first {
                        a.refused_in.push(took);
                    }
                    a.no_retry_after += usize::from(!retry_after);
                } else if status == 401 {
                    a.checked_in.push(took);
                }
                if close {
                    conn = None;
                }
            }
            Err(_) => conn = None,
        }
    }
}

/// (median, p99 nearest rank, max).
fn spread(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    assert!(!v.is_empty());
    v.sort();
    let p99 = v[(v.len() * 99).div_ceil(100) - 1];
    (v[v.len() / 2], p99, v[v.len() - 1])
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

/// The group's last evaluation, from a `/metrics` text.
fn last_evaluation(metrics: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        l.strip_prefix(
            "driftgauge_rule_group_last_evaluation_timestamp_seconds{group=\"quality\"} ",
        )
        .and_then(|v| v.trim().parse().ok())
    })
}

/// Issue 10, item 2: 600 connections sending a wrong password made a cached user's scrape
/// take 6.8 s and evaluation fall behind, because every check queued bcrypt on tokio's
/// blocking pool behind one mutex. The runtime here has a blocking pool of 32 threads (512 by
/// default), so that the old failure shows with 300 attackers: bcrypt queued on it held up
/// evaluation and `/metrics` (both run there) for seconds.
#[test]
fn a_wrong_password_flood_holds_up_neither_cached_users_nor_tokens_nor_evaluation() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(32)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(wrong_password_flood());
}

async fn wrong_password_flood() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("writer.token"), "writer-token\n").expect("write");
    // Cost 10, as htpasswd makes them: tens of milliseconds a check.
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        format!(
            "basic_auth_users:\n  alice: {}\nwrite_bearer_token_files: [writer.token]\n",
            bcrypt::hash("alice-password", 10).expect("bcrypt")
        ),
    )
    .expect("write");
    driftgauge::net::install_crypto_provider();
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    // The first /-/ready checks alice's password: from then on she is cached.
    let service = Service::start_with(web, FLOOD_CONFIG, FLOOD_RULES, |addr| {
        client
            .get(format!("http://{addr}/-/ready"))
            .basic_auth("alice", Some("alice-password"))
    })
    .await;
    let addr = service.addr;
    let url = |p: &str| format!("http://{addr}{p}");

    // The attackers, on a thread and a runtime of their own, as if from another process:
    // half with alice's name, half with a name that does not exist.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answers = Arc::new(std::sync::Mutex::new(Answers::default()));
    let attack_started = Instant::now();
    let attackers = {
        let (stop, answers) = (Arc::clone(&stop), Arc::clone(&answers));
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                use base64::Engine as _;
                let tasks: Vec<_> = (0..ATTACKERS)
                    .map(|i| {
                        let user = if i % 2 == 0 { "alice" } else { "mallory" };
                        let credentials = base64::engine::general_purpose::STANDARD
                            .encode(format!("{user}:guess-{i}"));
                        let request = format!(
                            "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {credentials}\r\n\r\n"
                        );
                        tokio::spawn(attack(
                            addr,
                            Arc::new(request.into_bytes()),
                            Arc::clone(&stop),
                            Arc::clone(&answers),
                        ))
                    })
                    .collect();
                for t in tasks {
                    let _ = t.await;
                }
            })
        })
    };
    time_until("every attacker connects", || async {
        answers.lock().expect("answers").connected >= ATTACKERS
    })
    .await;

    // Meanwhile: alice scrapes /metrics, a writer pushes with its token, 10 times a second.
    let flood_started = Instant::now();
    let scraper = {
        let client = client.clone();
        let url = url("/metrics");
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while flood_started.elapsed() < FLOOD_FOR {
                let started = Instant::now();
                let r = client
                    .get(&url)
                    .basic_auth("alice", Some("alice-password"))
                    .send()
                    .await
                    .expect("GET /metrics");
                let status = r.status();
                let text = r.text().await.expect("body");
                let took = started.elapsed();
                assert_eq!(status, 200, "{text}");
                let behind = last_evaluation(&text).map(|t| unix_now() - t);
                seen.push((took, behind));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            seen
        })
    };
    let pusher = {
        let client = client.clone();
        let url = url("/api/v1/samples");
        tokio::spawn(async move {
            let mut took = Vec::new();
            while flood_started.elapsed() < FLOOD_FOR {
                let started = Instant::now();
                let r = client
                    .post(&url)
                    .bearer_auth("writer-token")
                    .header("content-type", "application/json")
                    .body(SAMPLE)
                    .send()
                    .await
                    .expect("POST /api/v1/samples");
                took.push(started.elapsed());
                assert_eq!(r.status(), 200);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            took
        })
    };
    let scrapes = scraper.await.expect("scraper");
    let pushes = pusher.await.expect("pusher");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let attacked_for = attack_started.elapsed();
    tokio::task::spawn_blocking(move || attackers.join())
        .await
        .expect("join")
        .expect("attackers");
    service.stop().await;

    let answers = answers.lock().expect("answers");
    let (scrape_p50, scrape_p99, scrape_max) = spread(scrapes.iter().map(|s| s.0).collect());
    let (push_p50, push_p99, push_max) = spread(pushes.clone());
    let behind: Vec<f64> = scrapes.iter().filter_map(|s| s.1).collect();
    let most_behind = behind.iter().copied().fold(0.0, f64::max);
    let (refused_p50, refused_p99, _) = spread(answers.refused_in.clone());
    let (checked_p50, _, _) = spread(answers.checked_in.clone());
    println!(
        "{ATTACKERS} attackers: answers {:?}; 429 in p50 {refused_p50:?} p99 {refused_p99:?}, \
         401 in p50 {checked_p50:?}; \
         cached /metrics ({}) p50 {scrape_p50:?} p99 {scrape_p99:?} max {scrape_max:?}; \
         token pushes ({}) p50 {push_p50:?} p99 {push_p99:?} max {push_max:?}; \
         last evaluation at most {most_behind:.3} s old",
        answers.statuses,
        scrapes.len(),
        pushes.len()
    );
    assert!(
        scrape_max <= FLOOD_LATENCY_BOUND,
        "cached /metrics took {scrape_max:?}"
    );
    assert!(push_max <= FLOOD_LATENCY_BOUND, "pushes took {push_max:?}");
    // Refused at once, told when to come back, never checked: most attempts.
    let refused = answers.statuses.get(&429).copied().unwrap_or(0);
    let checked = answers.statuses.get(&401).copied().unwrap_or(0);
    assert!(refused > checked, "{:?}", answers.statuses);
    assert_eq!(answers.no_retry_after, 0);
    // An attacker that does not wait out Retry-After gets about one answer a second (without
    // that pause, thousands a second between them).
    let per_connection = refused as f64 / ATTACKERS as f64 / attacked_for.as_secs_f64();
    assert!(
        per_connection <= 1.5,
        "{per_connection:.2} refusals a second a connection"
    );
    // "At once": without waiting for bcrypt, which a checked attempt does (behind up to
    // PASSWORD_QUEUE others); what a 429 takes is the attackers' own round trip.
    assert!(
        refused_p50 < checked_p50 && refused_p50 <= Duration::from_millis(500),
        "429 answers took {refused_p50:?}, 401 answers {checked_p50:?}"
    );
    assert_eq!(
        answers.statuses.keys().copied().collect::<Vec<_>>(),
        [401, 429]
    );
    // Evaluation on time: never more than one interval (1 s) late, so the last evaluation is
    // never more than two intervals old; and it kept advancing.
    assert_eq!(behind.len(), scrapes.len(), "every scrape shows the group");
    assert!(
        most_behind <= 2.0,
        "the last evaluation was {most_behind} s old"
    );
}

/// Issue 10, item 2: an unknown name was checked against a dummy hash of the highest cost, a
/// known user against their own: with users at costs 4 and 9, a wrong password for the first
/// was answered 32 times sooner than one for a name that does not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_check_takes_as_long_whichever_name_is_given() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().expect("temp dir");
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        format!(
            "basic_auth_users:\n  cheap: {}\n  dear: {}\n",
            bcrypt::hash("cheap-password", 4).expect("bcrypt"),
            bcrypt::hash("dear-password", 9).expect("bcrypt"),
        ),
    )
    .expect("write");
    let config = load_web_config(&web).unwrap_or_else(|e| panic!("{e}"));
    let headers = |user: &str| {
        let mut h = hyper::HeaderMap::new();
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:wrong-password"));
        h.insert(
            hyper::header::AUTHORIZATION,
            hyper::header::HeaderValue::from_str(&format!("Basic {credentials}")).expect("header"),
        );
        h
    };
    let users = ["cheap", "dear", "nobody"];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); users.len()];
    for _ in 0..7 {
        for (i, user) in users.iter().enumerate() {
            let h = headers(user);
            let started = Instant::now();
            let refused = config
                .authorize_async(&hyper::Method::GET, "/metrics", &h)
                .await
                .expect_err("wrong password");
            times[i].push(started.elapsed());
            assert_eq!(
                refused.reason(),
                driftgauge::http::auth::AuthFailure::BadCredentials
            );
        }
    }
    let medians: Vec<Duration> = times.into_iter().map(|t| spread(t).0).collect();
    println!(
        "median time of a failed check: cheap (cost 4) {:?}, dear (cost 9) {:?}, unknown {:?}",
        medians[0], medians[1], medians[2]
    );
    let unknown = medians[2].as_secs_f64();
    for (user, median) in users.iter().zip(&medians) {
        let ratio = median.as_secs_f64() / unknown;
        // Generous, for a busy machine; without the padding `cheap` is at 1/32.
        assert!(
            (0.5..=2.0).contains(&ratio),
            "{user}: {median:?} against {unknown} s for an unknown name"
        );
    }
}

/// Regression: the web config's files were read with no type check, so a FIFO named as a
/// token file hung the start and every reload.
#[test]
fn a_fifo_named_by_the_web_config_is_refused_not_waited_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fifo = dir.path().join("writer.token");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let web = dir.path().join("web.yml");
    std::fs::write(&web, "write_bearer_token_files: [writer.token]\n").expect("web config");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(driftgauge::http::web_config::WebConfigHandle::load(web).map(|_| ()));
    });
    let loaded = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("loading the web config waited on the FIFO");
    let e = loaded.expect_err("a FIFO is no token file").to_string();
    assert!(e.contains("writer.token"), "{e}");
    assert!(e.contains("not a regular file"), "{e}");
}
