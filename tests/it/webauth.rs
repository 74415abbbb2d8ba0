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
        driftgauge::output::webhook::install_crypto_provider();
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
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("rules")).expect("mkdir");
        std::fs::write(dir.path().join("driftgauge.yml"), SERVICE_CONFIG).expect("write");
        std::fs::write(dir.path().join("rules/q.yml"), EMA_RULES).expect("write");
        let options = driftgauge::app::Options {
            config_file: Some(dir.path().join("driftgauge.yml")),
            storage_path: dir.path().join("data"),
            flush_interval: Duration::from_millis(100),
            enable_lifecycle: true,
            web_config: Some(web_config),
            ..Default::default()
        };
        driftgauge::output::webhook::install_crypto_provider();
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
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(r) = ready(addr).send().await {
                if r.status() == 200 {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "driftgauge did not become ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
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

/// Polls `cond` every 50 ms; returns how long it took to hold. Panics after 15 s.
async fn time_until<F, Fut>(what: &str, mut cond: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !cond().await {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
    let served = loop {
        if let Ok(r) = trusts_new.get(&url).send().await {
            break presented(&r);
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let took = started.elapsed();
    assert!(took < PICKED_UP_WITHIN, "took {took:?}");
    assert_eq!(served, der_of(&next.read("server.crt")));
    assert!(
        trusts_old.get(&url).send().await.is_err(),
        "the old certificate is no longer presented"
    );
    service.stop().await;
}
