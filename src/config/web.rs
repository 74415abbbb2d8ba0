//! `--web.config.file` (the Prometheus exporter-toolkit format), parsed into plain data: TLS
//! settings with the certificates and key they name decoded from PEM, users with their bcrypt
//! hashes, bearer-token digests, response headers. Building the TLS acceptor, deciding who
//! gets in and following the files as they change are `http`'s.
//!
//! ```yaml
//! tls_server_config:                 # absent: plain HTTP
//!   cert_file: server.crt            # or `cert:` inline PEM; files are relative to this file
//!   key_file: server.key             # or `key:` inline PEM
//!   client_auth_type: RequireAndVerifyClientCert   # NoClientCert (default),
//!                                    # VerifyClientCertIfGiven, RequireAndVerifyClientCert
//!   client_ca_file: ca.crt           # or `client_ca:`; needed by the two Verify… types
//!   min_version: TLS12               # TLS12 (default) or TLS13
//!   max_version: TLS13               # TLS12 or TLS13 (default)
//!   prefer_server_cipher_suites: true
//! http_server_config:
//!   headers: {X-Content-Type-Options: nosniff}   # added to every response
//! basic_auth_users:                  # empty or absent: no basic auth
//!   alice: $2y$10$...                # bcrypt hashes (htpasswd -nBC 10 "" | tr -d ':\n')
//! write_bearer_token_files:          # driftgauge's extension: tokens for the write routes
//!   - secrets/writer.token
//! ```
//!
//! The file is parsed strictly, with the rule files' walker: an unknown key, a wrong type or
//! an option of exporter-toolkit that driftgauge does not implement (`rate_limit`,
//! `cipher_suites`, `curve_preferences`, `client_allowed_sans`, `http2: true`, the client auth
//! types that skip verification, TLS 1.0/1.1) is an error at its `file:line:col`, never
//! silently ignored. Every problem of the file is reported at once.
//!
//! The files it names are read through a [`WebFiles`], so the service can stamp each one for
//! its watcher and tests can serve them from memory. No secret (hash, token, private key)
//! appears in a diagnostic or in `Debug` output.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use marked_yaml::types::MarkedMappingNode;
use marked_yaml::Node;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::config::diag::{io_reason, Diagnostic};
use crate::config::yaml::{self, describe, get, is_null, key_of, mapping_marker, Cx};

/// The headers `http_server_config.headers` may set, with their allowed values (empty: any),
/// as in exporter-toolkit.
const EXTRA_HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

const TOP_KEYS: &[&str] = &[
    "tls_server_config",
    "http_server_config",
    "basic_auth_users",
    "write_bearer_token_files",
];

const TOP_REFUSED: &[(&str, &str)] =
    &[("rate_limit", "rate limiting is not supported by driftgauge")];

const TLS_KEYS: &[&str] = &[
    "cert_file",
    "key_file",
    "cert",
    "key",
    "client_auth_type",
    "client_ca_file",
    "client_ca",
    "min_version",
    "max_version",
    "prefer_server_cipher_suites",
];

const TLS_REFUSED: &[(&str, &str)] = &[
    (
        "cipher_suites",
        "driftgauge does not configure cipher suites: rustls offers only modern ones",
    ),
    (
        "curve_preferences",
        "driftgauge does not configure curves: rustls offers only modern ones",
    ),
    (
        "client_allowed_sans",
        "matching client certificate SANs is not supported by driftgauge",
    ),
];

/// How the parser reads the files a web config names (certificates, keys, token files).
pub trait WebFiles {
    fn read(&mut self, path: &Path) -> std::io::Result<Vec<u8>>;
}

/// The files, read from disk as they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct FsWebFiles;

impl WebFiles for FsWebFiles {
    fn read(&mut self, path: &Path) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }
}

/// A place in the web config file (1-based), for problems found after parsing (a key that
/// does not match its certificate, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    fn of(node: &Node) -> Pos {
        Pos::from_marker(yaml::node_marker(node))
    }

    fn from_marker(marker: Option<marked_yaml::Marker>) -> Pos {
        marker.map_or(Pos { line: 1, col: 1 }, |m| Pos {
            line: m.line(),
            col: m.column(),
        })
    }

    /// A diagnostic here, in `file`.
    pub fn diag(self, file: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(file, self.line, self.col, message)
    }
}

/// `tls_server_config.client_auth_type`, the values driftgauge implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificate is asked for.
    NoClientCert,
    /// A client certificate is optional; one that is given must verify against the CA.
    VerifyClientCertIfGiven,
    /// A client certificate is required and must verify against the CA.
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuth::NoClientCert => "NoClientCert",
            ClientAuth::VerifyClientCertIfGiven => "VerifyClientCertIfGiven",
            ClientAuth::RequireAndVerifyClientCert => "RequireAndVerifyClientCert",
        }
    }
}

/// A TLS protocol version rustls offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "TLS12",
            TlsVersion::Tls13 => "TLS13",
        }
    }
}

/// Something decoded from PEM, with how messages name it and where they point.
#[derive(Debug)]
pub struct Pem<T> {
    pub der: T,
    /// `cert_file /etc/x.crt` or `cert (inline)`.
    pub label: String,
    /// The `*_file` or inline key's value.
    pub at: Pos,
}

/// A valid `tls_server_config`. `Debug` elides the private key (rustls-pki-types does).
#[derive(Debug)]
pub struct TlsSpec {
    pub cert: Pem<Vec<CertificateDer<'static>>>,
    pub key: Pem<PrivateKeyDer<'static>>,
    /// Present exactly when `client_auth` verifies client certificates.
    pub client_ca: Option<Pem<Vec<CertificateDer<'static>>>>,
    pub client_auth: ClientAuth,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
    pub prefer_server_cipher_suites: bool,
    /// The `tls_server_config` mapping.
    pub at: Pos,
}

/// A write-route bearer token: only its SHA-256 is kept.
pub struct TokenSpec {
    pub digest: [u8; 32],
    pub file: PathBuf,
}

/// A valid web config. `Debug` shows user names and file names only.
pub struct WebSpec {
    /// The web config file, as diagnostics name it.
    pub file: String,
    pub tls: Option<TlsSpec>,
    /// `http_server_config.headers`: (name as exporter-toolkit spells it, value), each value
    /// one an HTTP header can carry.
    pub headers: Vec<(&'static str, String)>,
    /// User name → bcrypt hash (`$2y$`, `$2b$` or `$2a$`, cost 4 to 31).
    pub users: BTreeMap<String, String>,
    pub tokens: Vec<TokenSpec>,
}

impl fmt::Debug for WebSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let token_files: Vec<&Path> = self.tokens.iter().map(|t| t.file.as_path()).collect();
        let headers: Vec<&str> = self.headers.iter().map(|(n, _)| *n).collect();
        f.debug_struct("WebSpec")
            .field("file", &self.file)
            .field("tls", &self.tls)
            .field("basic_auth_users", &self.users.keys().collect::<Vec<_>>())
            .field("write_bearer_token_files", &token_files)
            .field("headers", &headers)
            .finish()
    }
}

/// Parses a web config from its text. `origin` names the file in diagnostics; the files it
/// names are relative to `base` and read through `files`. Reports every problem at once.
pub fn parse(
    text: &str,
    origin: &str,
    base: &Path,
    files: &mut dyn WebFiles,
) -> Result<WebSpec, Vec<Diagnostic>> {
    let parsed = parse_partial(text, origin, base, files);
    if parsed.diags.is_empty() {
        Ok(parsed.spec)
    } else {
        Err(parsed.diags)
    }
}

/// A web config as far as it is valid, with every problem found: for callers that find more
/// problems later (building the TLS acceptor) and report them with these, in file order.
#[derive(Debug)]
pub struct Parsed {
    /// The valid parts; a part with a problem is left out (`tls: None`, no users, ...).
    pub spec: WebSpec,
    pub diags: Vec<Diagnostic>,
    /// How many of `diags` come before the parts after `tls_server_config`: where a problem
    /// of the TLS settings found later belongs.
    pub after_tls: usize,
}

/// [`parse`], best effort: see [`Parsed`].
pub fn parse_partial(text: &str, origin: &str, base: &Path, files: &mut dyn WebFiles) -> Parsed {
    let mut parsed = Parsed {
        spec: WebSpec {
            file: origin.to_string(),
            tls: None,
            headers: Vec::new(),
            users: BTreeMap::new(),
            tokens: Vec::new(),
        },
        diags: Vec::new(),
        after_tls: 0,
    };
    let text = yaml::strip_bom(text);
    let root = match yaml::parse(origin, text) {
        Ok(root) => root,
        Err(d) => {
            parsed.diags.push(d);
            parsed.after_tls = 1;
            return parsed;
        }
    };
    let mut cx = Cx::new(origin, text);
    Walker { base, files }.web_config(&mut cx, &root, &mut parsed);
    // In walk order (`after_tls` counts on it); a web config is too small to pass the cap.
    parsed.diags = cx.finish().0;
    parsed
}

struct Walker<'a> {
    base: &'a Path,
    files: &'a mut dyn WebFiles,
}

impl Walker<'_> {
    /// The whole file, into `out` (its diagnostics stay in `cx`).
    fn web_config(&mut self, cx: &mut Cx, root: &Node, out: &mut Parsed) {
        let Some(top) = root.as_mapping() else {
            cx.at(root, "expected a mapping at the top level");
            out.after_tls = cx.errors();
            return;
        };
        cx.check_keys_refusing(top, TOP_KEYS, TOP_REFUSED, "the web config");
        out.spec.tls = get(top, "tls_server_config").and_then(|n| self.tls(cx, n));
        out.after_tls = cx.errors();
        out.spec.headers = get(top, "http_server_config")
            .and_then(|n| http_server_config(cx, n))
            .unwrap_or_default();
        out.spec.users = get(top, "basic_auth_users")
            .and_then(|n| basic_auth_users(cx, n))
            .unwrap_or_default();
        out.spec.tokens = get(top, "write_bearer_token_files")
            .and_then(|n| self.token_files(cx, n))
            .unwrap_or_default();
    }

    /// `tls_server_config`, with its PEM decoded. `None` after reporting a problem.
    fn tls(&mut self, cx: &mut Cx, node: &Node) -> Option<TlsSpec> {
        let map = cx.mapping("tls_server_config", node)?;
        let before = cx.errors();
        cx.check_keys_refusing(map, TLS_KEYS, TLS_REFUSED, "tls_server_config");
        let cert = self.pem_source(cx, map, "cert_file", "cert");
        let key = self.pem_source(cx, map, "key_file", "key");
        let client_ca = match (get(map, "client_ca_file"), get(map, "client_ca")) {
            (None, None) => None,
            _ => self.pem_source(cx, map, "client_ca_file", "client_ca"),
        };
        let client_auth = match get(map, "client_auth_type") {
            None => Some(ClientAuth::NoClientCert),
            Some(n) => client_auth_type(cx, n),
        };
        let min_version = match get(map, "min_version") {
            None => Some(TlsVersion::Tls12),
            Some(n) => tls_version(cx, "min_version", n),
        };
        let max_version = match get(map, "max_version") {
            None => Some(TlsVersion::Tls13),
            Some(n) => tls_version(cx, "max_version", n),
        };
        let prefer_server = match get(map, "prefer_server_cipher_suites") {
            None => Some(true),
            Some(n) => cx.boolean("prefer_server_cipher_suites", n),
        };
        if let (Some(min), Some(max), Some(n)) = (min_version, max_version, get(map, "min_version"))
        {
            if min > max {
                cx.at(
                    n,
                    format!(
                        "min_version {} is above max_version {}",
                        min.as_str(),
                        max.as_str()
                    ),
                );
            }
        }
        if let Some(auth) = client_auth {
            let at = key_of(map, "client_auth_type")
                .or_else(|| key_of(map, "client_ca_file"))
                .or_else(|| key_of(map, "client_ca"))
                .and_then(|k| k.span().start().copied())
                .or_else(|| mapping_marker(map));
            match (auth, get(map, "client_ca_file").or(get(map, "client_ca"))) {
                (ClientAuth::NoClientCert, Some(_)) => cx.at_marker(
                    at,
                    "client_ca_file is set but client_auth_type is NoClientCert: set \
                     client_auth_type: RequireAndVerifyClientCert (or VerifyClientCertIfGiven)",
                ),
                (ClientAuth::NoClientCert, None) | (_, Some(_)) => {}
                (other, None) => cx.at_marker(
                    at,
                    format!(
                        "client_auth_type {} needs client_ca_file (or client_ca)",
                        other.as_str()
                    ),
                ),
            }
        }
        if cx.errors() != before {
            return None;
        }
        let (cert, key) = (cert?, key?);
        let cert = certificates(cx, cert)?;
        let key = private_key(cx, key)?;
        // Only with a verifying client_auth_type (anything else was refused above).
        let client_ca = match client_ca {
            Some(ca) => Some(certificates(cx, ca)?),
            None => None,
        };
        Some(TlsSpec {
            cert,
            key,
            client_ca,
            client_auth: client_auth?,
            min_version: min_version?,
            max_version: max_version?,
            prefer_server_cipher_suites: prefer_server?,
            at: Pos::from_marker(mapping_marker(map)),
        })
    }

    /// PEM bytes from `<file_key>` (a path relative to `base`) or `<inline_key>` (the PEM
    /// itself).
    fn pem_source(
        &mut self,
        cx: &mut Cx,
        map: &MarkedMappingNode,
        file_key: &str,
        inline_key: &str,
    ) -> Option<Pem<Vec<u8>>> {
        match (get(map, file_key), get(map, inline_key)) {
            (Some(_), Some(inline)) => {
                cx.at(
                    inline,
                    format!("{inline_key} and {file_key} are mutually exclusive"),
                );
                None
            }
            (None, None) => {
                cx.missing(map, file_key, "tls_server_config");
                None
            }
            (None, Some(inline)) => {
                let text = cx.string(inline_key, inline)?;
                Some(Pem {
                    der: text.into_bytes(),
                    label: format!("{inline_key} (inline)"),
                    at: Pos::of(inline),
                })
            }
            (Some(file), None) => {
                let name = cx.string(file_key, file)?;
                if name.trim().is_empty() {
                    cx.at(file, format!("{file_key}: must not be empty"));
                    return None;
                }
                let path = self.base.join(&name);
                match self.files.read(&path) {
                    Ok(bytes) => Some(Pem {
                        der: bytes,
                        label: format!("{file_key} {}", path.display()),
                        at: Pos::of(file),
                    }),
                    Err(e) => {
                        cx.at(
                            file,
                            format!(
                                "{file_key}: cannot read {}: {}",
                                path.display(),
                                io_reason(&e)
                            ),
                        );
                        None
                    }
                }
            }
        }
    }

    /// `write_bearer_token_files`: one token a file, trimmed; only digests are kept.
    fn token_files(&mut self, cx: &mut Cx, node: &Node) -> Option<Vec<TokenSpec>> {
        let Node::Sequence(seq) = node else {
            cx.at(
                node,
                format!(
                    "write_bearer_token_files: expected a list of files, got {}",
                    describe(node)
                ),
            );
            return None;
        };
        let mut out = Vec::new();
        for item in seq.iter() {
            let name = match item {
                Node::Scalar(s) if !is_null(item) && !s.as_str().trim().is_empty() => {
                    s.as_str().to_string()
                }
                // A blank name: the problem is its emptiness, not its quoting.
                Node::Scalar(s) if !is_null(item) => {
                    cx.at(
                        item,
                        format!(
                            "write_bearer_token_files: expected a file name, got {:?}",
                            s.as_str()
                        ),
                    );
                    continue;
                }
                _ => {
                    cx.at(
                        item,
                        format!(
                            "write_bearer_token_files: expected a file name, got {}",
                            describe(item)
                        ),
                    );
                    continue;
                }
            };
            let path = self.base.join(&name);
            let text = match self.files.read(&path) {
                Ok(bytes) => bytes,
                Err(e) => {
                    cx.at(
                        item,
                        format!(
                            "write_bearer_token_files: cannot read {}: {}",
                            path.display(),
                            io_reason(&e)
                        ),
                    );
                    continue;
                }
            };
            let token = std::str::from_utf8(&text).map(str::trim).unwrap_or("");
            if token.is_empty() {
                cx.at(
                    item,
                    format!(
                        "write_bearer_token_files: {} holds no token (empty or not UTF-8 text)",
                        path.display()
                    ),
                );
                continue;
            }
            if !token.bytes().all(|b| b.is_ascii_graphic()) {
                cx.at(
                    item,
                    format!(
                        "write_bearer_token_files: the token in {} has spaces or characters an \
                         HTTP header cannot carry",
                        path.display()
                    ),
                );
                continue;
            }
            out.push(TokenSpec {
                digest: Sha256::digest(token.as_bytes()).into(),
                file: path,
            });
        }
        Some(out)
    }
}

/// The certificates of a PEM source; at least one.
fn certificates(cx: &mut Cx, pem: Pem<Vec<u8>>) -> Option<Pem<Vec<CertificateDer<'static>>>> {
    let Pem { der, label, at } = pem;
    match CertificateDer::pem_slice_iter(&der).collect::<Result<Vec<_>, _>>() {
        Ok(certs) if !certs.is_empty() => Some(Pem {
            der: certs,
            label,
            at,
        }),
        Ok(_) => {
            cx.push(at.diag(cx.origin, format!("{label}: no PEM CERTIFICATE found")));
            None
        }
        Err(e) => {
            cx.push(at.diag(cx.origin, format!("{label}: not valid PEM: {e}")));
            None
        }
    }
}

/// The private key of a PEM source. Its own parse error is not shown: it could quote key
/// material.
fn private_key(cx: &mut Cx, pem: Pem<Vec<u8>>) -> Option<Pem<PrivateKeyDer<'static>>> {
    let Pem { der, label, at } = pem;
    match PrivateKeyDer::from_pem_slice(&der) {
        Ok(key) => Some(Pem {
            der: key,
            label,
            at,
        }),
        Err(rustls_pki_types::pem::Error::NoItemsFound) => {
            cx.push(at.diag(
                cx.origin,
                format!("{label}: no PEM private key found (PKCS#8, PKCS#1 or SEC1)"),
            ));
            None
        }
        Err(_) => {
            cx.push(at.diag(cx.origin, format!("{label}: not a valid PEM private key")));
            None
        }
    }
}

fn client_auth_type(cx: &mut Cx, node: &Node) -> Option<ClientAuth> {
    let value = cx.string("client_auth_type", node)?;
    match value.as_str() {
        "NoClientCert" => Some(ClientAuth::NoClientCert),
        "VerifyClientCertIfGiven" => Some(ClientAuth::VerifyClientCertIfGiven),
        "RequireAndVerifyClientCert" => Some(ClientAuth::RequireAndVerifyClientCert),
        "RequestClientCert" | "RequireAnyClientCert" => {
            cx.at(
                node,
                format!(
                    "client_auth_type {value} is not supported: it accepts client certificates \
                     without verifying them; use RequireAndVerifyClientCert (or \
                     VerifyClientCertIfGiven) with client_ca_file"
                ),
            );
            None
        }
        _ => {
            cx.at(
                node,
                format!(
                    "unknown client_auth_type {value:?}; expected NoClientCert, \
                     VerifyClientCertIfGiven or RequireAndVerifyClientCert"
                ),
            );
            None
        }
    }
}

fn tls_version(cx: &mut Cx, key: &str, node: &Node) -> Option<TlsVersion> {
    let value = cx.string(key, node)?;
    match value.as_str() {
        "TLS12" => Some(TlsVersion::Tls12),
        "TLS13" => Some(TlsVersion::Tls13),
        "TLS10" | "TLS11" => {
            cx.at(
                node,
                format!("{key}: {value} is not supported (rustls speaks TLS12 and TLS13)"),
            );
            None
        }
        _ => {
            cx.at(
                node,
                format!("{key}: unknown TLS version {value:?}; expected TLS12 or TLS13"),
            );
            None
        }
    }
}

/// Can an HTTP header carry this value? (What `http`'s `HeaderValue::from_str` accepts:
/// no control characters but tab.)
fn is_header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| (b >= 0x20 && b != 0x7f) || b == b'\t')
}

/// `http_server_config`: `headers` (as exporter-toolkit allows them) and `http2: false`.
fn http_server_config(cx: &mut Cx, node: &Node) -> Option<Vec<(&'static str, String)>> {
    let map = cx.mapping("http_server_config", node)?;
    cx.check_keys(map, &["headers", "http2"], "http_server_config");
    if let Some(n) = get(map, "http2") {
        if cx.boolean("http_server_config.http2", n) == Some(true) {
            cx.at(
                n,
                "http_server_config.http2: driftgauge serves HTTP/1.1 only; remove the key or \
                 set it to false",
            );
        }
    }
    let headers = get(map, "headers")?;
    let headers = cx.mapping("http_server_config.headers", headers)?;
    let mut out = Vec::new();
    for (k, v) in headers.iter() {
        let Some(&(name, allowed)) = EXTRA_HEADERS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k.as_str()))
        else {
            let names: Vec<&str> = EXTRA_HEADERS.iter().map(|(n, _)| *n).collect();
            cx.at_key(
                k,
                format!(
                    "http_server_config.headers: header {:?} can not be configured; allowed: {}",
                    k.as_str(),
                    names.join(", ")
                ),
            );
            continue;
        };
        if is_null(v) {
            continue;
        }
        let Some(value) = cx.string(&format!("http_server_config.headers.{name}"), v) else {
            continue;
        };
        if value.is_empty() {
            continue;
        }
        if !allowed.is_empty() && !allowed.iter().any(|a| a.eq_ignore_ascii_case(&value)) {
            cx.at(
                v,
                format!(
                    "http_server_config.headers.{name}: expected one of {}, got {value:?}",
                    allowed.join(", ")
                ),
            );
            continue;
        }
        if !is_header_value(&value) {
            cx.at(
                v,
                format!("http_server_config.headers.{name}: not a valid header value"),
            );
            continue;
        }
        out.push((name, value));
    }
    Some(out)
}

/// `basic_auth_users`: user → bcrypt hash, every hash checked now. Messages name the user,
/// never the hash.
fn basic_auth_users(cx: &mut Cx, node: &Node) -> Option<BTreeMap<String, String>> {
    let map = cx.mapping("basic_auth_users", node)?;
    let mut out = BTreeMap::new();
    for (k, v) in map.iter() {
        let user = k.as_str();
        if user.is_empty() {
            cx.at_key(k, "basic_auth_users: a user name must not be empty");
            continue;
        }
        if user.contains(':') {
            cx.at_key(
                k,
                format!(
                    "basic_auth_users: user name {user:?} contains ':', which basic auth cannot \
                     carry"
                ),
            );
            continue;
        }
        let hash = match v {
            Node::Scalar(s) if !is_null(v) => s.as_str(),
            _ => {
                cx.at(
                    v,
                    format!("basic_auth_users: user {user:?} needs a bcrypt hash as its value"),
                );
                continue;
            }
        };
        if bcrypt_cost(hash).is_none() {
            cx.at(
                v,
                format!(
                    "basic_auth_users: the password hash of user {user:?} is not a valid bcrypt \
                     hash ($2y$, $2b$ or $2a$, cost 4 to 31, 60 characters)"
                ),
            );
            continue;
        }
        out.insert(user.to_string(), hash.to_string());
    }
    Some(out)
}

/// The cost of a valid bcrypt hash (4 to 31); `None` for anything else.
pub fn bcrypt_cost(hash: &str) -> Option<u32> {
    hash.parse::<bcrypt::HashParts>()
        .ok()
        .map(|p| p.get_cost())
        .filter(|c| (4..=31).contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// bcrypt's lowest cost keeps the tests fast.
    fn hash(password: &str) -> String {
        bcrypt::hash(password, 4).expect("bcrypt hash")
    }

    fn parse_in(dir: &Path, text: &str) -> Result<WebSpec, Vec<Diagnostic>> {
        parse(text, "web.yml", dir, &mut FsWebFiles)
    }

    fn errors(text: &str) -> Vec<String> {
        match parse_in(Path::new("/nonexistent-driftgauge-dir"), text) {
            Ok(c) => panic!("expected errors, got {c:?}"),
            Err(e) => e.iter().map(Diagnostic::to_string).collect(),
        }
    }

    /// Files from memory.
    struct MapFiles(BTreeMap<PathBuf, Vec<u8>>);

    impl WebFiles for MapFiles {
        fn read(&mut self, path: &Path) -> std::io::Result<Vec<u8>> {
            self.0
                .get(path)
                .cloned()
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
        }
    }

    #[test]
    fn an_empty_file_is_no_tls_and_no_auth() {
        let spec = parse_in(Path::new("."), "# nothing\n").expect("valid");
        assert!(spec.tls.is_none() && spec.users.is_empty() && spec.tokens.is_empty());
        assert!(spec.headers.is_empty());
    }

    #[test]
    fn unknown_keys_are_errors_at_their_position() {
        assert_eq!(
            errors("basic_auth_users: {}\ntls_server_confg:\n  cert_file: a\n"),
            vec!["web.yml:2:1: unknown key \"tls_server_confg\" in the web config"]
        );
        assert_eq!(
            errors("tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n  cert_fil: x\n"),
            vec![
                "web.yml:4:3: unknown key \"cert_fil\" in tls_server_config",
                "web.yml:2:14: cert_file: cannot read /nonexistent-driftgauge-dir/a.crt: no such file",
                "web.yml:3:13: key_file: cannot read /nonexistent-driftgauge-dir/a.key: no such file",
            ]
        );
        assert_eq!(
            errors("http_server_config:\n  headers:\n    X-Powered-By: me\n  http3: true\n"),
            vec![
                "web.yml:4:3: unknown key \"http3\" in http_server_config",
                "web.yml:3:5: http_server_config.headers: header \"X-Powered-By\" can not be configured; allowed: Strict-Transport-Security, X-Content-Type-Options, X-Frame-Options, X-XSS-Protection, Content-Security-Policy",
            ]
        );
        assert_eq!(
            errors("rate_limit: {interval: 1s, burst: 5}\n"),
            vec!["web.yml:1:1: rate_limit is not supported: rate limiting is not supported by driftgauge"]
        );
        assert_eq!(
            errors("tls_server_config:\n  cert: x\n  key: y\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n"),
            vec!["web.yml:4:3: cipher_suites is not supported: driftgauge does not configure cipher suites: rustls offers only modern ones"]
        );
    }

    #[test]
    fn yaml_syntax_and_shape_errors() {
        assert_eq!(
            errors("basic_auth_users:\n  a: x\n  a: y\n"),
            vec!["web.yml:3:3: duplicate key \"a\" (first at line 2, column 3)"]
        );
        assert_eq!(
            errors("- 1\n"),
            vec!["web.yml:1:1: expected a mapping at the top level"]
        );
        assert_eq!(
            errors("basic_auth_users: {}\n---\nbasic_auth_users: {}\n"),
            vec!["web.yml:2:1: multiple YAML documents in one file are not supported"]
        );
        assert_eq!(
            errors("basic_auth_users: [alice]\n"),
            vec!["web.yml:1:19: basic_auth_users: expected a mapping, got a list"]
        );
        assert_eq!(
            errors("write_bearer_token_files: secrets/t\n"),
            vec!["web.yml:1:27: write_bearer_token_files: expected a list of files, got \"secrets/t\""]
        );
    }

    #[test]
    fn missing_files_are_named_with_their_resolved_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        let err = parse_in(
            dir.path(),
            "tls_server_config:\n  cert_file: certs/server.crt\n  key_file: server.key\nwrite_bearer_token_files:\n  - missing.token\n",
        )
        .expect_err("files are missing");
        let d = dir.path().display();
        let shown: Vec<String> = err.iter().map(Diagnostic::to_string).collect();
        assert_eq!(
            shown,
            vec![
                format!("web.yml:2:14: cert_file: cannot read {d}/certs/server.crt: no such file"),
                format!("web.yml:3:13: key_file: cannot read {d}/server.key: no such file"),
                format!(
                    "web.yml:5:5: write_bearer_token_files: cannot read {d}/missing.token: no such file"
                ),
            ]
        );
    }

    #[test]
    fn tls_key_rules() {
        assert_eq!(
            errors("tls_server_config:\n  key_file: a.key\n"),
            vec![
                "web.yml:2:3: missing required key \"cert_file\" in tls_server_config",
                "web.yml:2:13: key_file: cannot read /nonexistent-driftgauge-dir/a.key: no such file",
            ]
        );
        assert_eq!(
            errors("tls_server_config:\n  cert_file: a.crt\n  cert: inline\n  key: k\n"),
            vec!["web.yml:3:9: cert and cert_file are mutually exclusive"]
        );
    }

    #[test]
    fn client_auth_types() {
        let tls = |extra: &str| format!("tls_server_config:\n  cert: c\n  key: k\n{extra}");
        assert_eq!(
            errors(&tls("  client_auth_type: RequireAnyClientCert\n")),
            vec!["web.yml:4:21: client_auth_type RequireAnyClientCert is not supported: it accepts client certificates without verifying them; use RequireAndVerifyClientCert (or VerifyClientCertIfGiven) with client_ca_file"]
        );
        assert_eq!(
            errors(&tls("  client_auth_type: RequestClientCert\n")).len(),
            1
        );
        assert_eq!(
            errors(&tls("  client_auth_type: Sometimes\n")),
            vec!["web.yml:4:21: unknown client_auth_type \"Sometimes\"; expected NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert"]
        );
        assert_eq!(
            errors(&tls("  client_auth_type: RequireAndVerifyClientCert\n")),
            vec!["web.yml:4:3: client_auth_type RequireAndVerifyClientCert needs client_ca_file (or client_ca)"]
        );
        assert_eq!(
            errors(&tls("  client_ca: x\n")),
            vec!["web.yml:4:3: client_ca_file is set but client_auth_type is NoClientCert: set client_auth_type: RequireAndVerifyClientCert (or VerifyClientCertIfGiven)"]
        );
    }

    #[test]
    fn tls_versions() {
        let tls = |extra: &str| format!("tls_server_config:\n  cert: c\n  key: k\n{extra}");
        assert_eq!(
            errors(&tls("  min_version: TLS11\n")),
            vec![
                "web.yml:4:16: min_version: TLS11 is not supported (rustls speaks TLS12 and TLS13)"
            ]
        );
        assert_eq!(
            errors(&tls("  max_version: SSL3\n")),
            vec![
                "web.yml:4:16: max_version: unknown TLS version \"SSL3\"; expected TLS12 or TLS13"
            ]
        );
        assert_eq!(
            errors(&tls("  min_version: TLS13\n  max_version: TLS12\n")),
            vec!["web.yml:4:16: min_version TLS13 is above max_version TLS12"]
        );
        // Valid settings, but "c" is no certificate: the PEM check comes next.
        assert_eq!(
            errors(&tls("  min_version: TLS13\n")),
            vec!["web.yml:2:9: cert (inline): no PEM CERTIFICATE found"]
        );
    }

    #[test]
    fn http_server_config_rules() {
        assert_eq!(
            errors("http_server_config:\n  http2: true\n"),
            vec!["web.yml:2:10: http_server_config.http2: driftgauge serves HTTP/1.1 only; remove the key or set it to false"]
        );
        assert_eq!(
            errors("http_server_config:\n  headers:\n    X-Frame-Options: allow\n"),
            vec!["web.yml:3:22: http_server_config.headers.X-Frame-Options: expected one of deny, sameorigin, got \"allow\""]
        );
        assert_eq!(
            errors("http_server_config:\n  headers:\n    Content-Security-Policy: \"a\\u0001b\"\n"),
            vec!["web.yml:3:30: http_server_config.headers.Content-Security-Policy: not a valid header value"]
        );
        let spec = parse_in(
            Path::new("."),
            "http_server_config:\n  http2: false\n  headers:\n    x-frame-options: deny\n    Strict-Transport-Security: max-age=31536000\n    X-XSS-Protection: ''\n",
        )
        .expect("valid");
        assert_eq!(
            spec.headers,
            vec![
                ("X-Frame-Options", "deny".to_string()),
                ("Strict-Transport-Security", "max-age=31536000".to_string()),
            ]
        );
    }

    #[test]
    fn a_bad_hash_names_the_user_never_the_hash() {
        let errs = errors(
            "basic_auth_users:\n  alice: $2y$10$notarealhashatall\n  bob: plaintext-password\n  carol: [x]\n  'a:b': x\n",
        );
        assert_eq!(
            errs,
            vec![
                "web.yml:2:10: basic_auth_users: the password hash of user \"alice\" is not a valid bcrypt hash ($2y$, $2b$ or $2a$, cost 4 to 31, 60 characters)",
                "web.yml:3:8: basic_auth_users: the password hash of user \"bob\" is not a valid bcrypt hash ($2y$, $2b$ or $2a$, cost 4 to 31, 60 characters)",
                "web.yml:4:10: basic_auth_users: user \"carol\" needs a bcrypt hash as its value",
                "web.yml:5:3: basic_auth_users: user name \"a:b\" contains ':', which basic auth cannot carry",
            ]
        );
        let all = errs.join("\n");
        assert!(!all.contains("notarealhash") && !all.contains("plaintext-password"));
        // Cost out of range, otherwise well formed.
        let too_cheap = hash("x").replacen("$04$", "$03$", 1);
        assert_eq!(
            errors(&format!("basic_auth_users:\n  dave: {too_cheap}\n")).len(),
            1
        );
    }

    #[test]
    fn exporter_toolkit_sample_hash_is_accepted() {
        // From exporter-toolkit's docs: htpasswd's $2y$ hashes.
        let spec = parse_in(
            Path::new("."),
            "basic_auth_users:\n  alice: $2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG\n",
        )
        .expect("valid");
        assert_eq!(spec.users.len(), 1);
        assert_eq!(bcrypt_cost(&spec.users["alice"]), Some(10));
    }

    #[test]
    fn token_files_must_hold_a_token() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("empty"), " \n").expect("write");
        std::fs::write(dir.path().join("spaced"), "two words\n").expect("write");
        let err = parse_in(
            dir.path(),
            "write_bearer_token_files:\n  - empty\n  - spaced\n  - ''\n  - [x]\n",
        )
        .expect_err("bad tokens");
        let d = dir.path().display();
        let shown: Vec<String> = err.iter().map(Diagnostic::to_string).collect();
        assert_eq!(
            shown.join("\n"),
            format!(
                "web.yml:2:5: write_bearer_token_files: {d}/empty holds no token (empty or not UTF-8 text)\n\
                 web.yml:3:5: write_bearer_token_files: the token in {d}/spaced has spaces or characters an HTTP header cannot carry\n\
                 web.yml:4:5: write_bearer_token_files: expected a file name, got \"\"\n\
                 web.yml:5:5: write_bearer_token_files: expected a file name, got a list"
            )
        );
        assert!(!shown.join("\n").contains("two words"));
    }

    #[test]
    fn files_are_read_through_the_seam_relative_to_base() {
        let mut files = MapFiles(BTreeMap::from([(
            PathBuf::from("/etc/dg/secrets/writer.token"),
            b"  s3cr3t\n".to_vec(),
        )]));
        let spec = parse(
            "write_bearer_token_files: [secrets/writer.token]\n",
            "web.yml",
            Path::new("/etc/dg"),
            &mut files,
        )
        .expect("valid");
        assert_eq!(spec.tokens.len(), 1);
        assert_eq!(
            spec.tokens[0].digest,
            <[u8; 32]>::from(Sha256::digest(b"s3cr3t"))
        );
    }

    #[test]
    fn secrets_stay_out_of_debug_and_errors() {
        let mut files = MapFiles(BTreeMap::from([(
            PathBuf::from("/d/t"),
            b"s3cr3t-writer-token".to_vec(),
        )]));
        let spec = parse(
            &format!(
                "basic_auth_users:\n  alice: {}\nwrite_bearer_token_files: [t]\n",
                hash("alice-pw")
            ),
            "web.yml",
            Path::new("/d"),
            &mut files,
        )
        .expect("valid");
        let text = format!("{spec:?}");
        for secret in ["s3cr3t-writer-token", "alice-pw", "$2"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("alice") && text.contains("/d/t"), "{text}");
        // A malformed inline key is not echoed.
        let errs = errors(
            "tls_server_config:\n  cert: c\n  key: |\n    -----BEGIN PRIVATE KEY-----\n    TOPSECRETKEYMATERIAL\n    -----END PRIVATE KEY-----\n",
        )
        .join("\n");
        assert!(!errs.contains("TOPSECRET"), "{errs}");
    }
}
