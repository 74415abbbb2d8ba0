//! TLS for the server: the rustls `ServerConfig` built from a web config's
//! `tls_server_config` (rustls on the `ring` provider, HTTP/1.1 only), and the handshake of an
//! accepted connection, bounded in time.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;

use crate::config::web::{ClientAuth, TlsSpec, TlsVersion};
use crate::config::Diagnostic;

/// How long a client gets to finish the TLS handshake after connecting (well inside the
/// service's 10 s shutdown grace, so a handshake in progress never outlasts a shutdown).
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The TLS side of a loaded web config.
pub struct Tls {
    acceptor: TlsAcceptor,
    /// Where the certificate came from (`cert_file PATH`, or `cert (inline)`), for logs.
    cert_source: String,
    client_auth: ClientAuth,
    min_version: TlsVersion,
    max_version: TlsVersion,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.cert_source)
            .field("client_auth_type", &self.client_auth.as_str())
            .field("min_version", &self.min_version.as_str())
            .field("max_version", &self.max_version.as_str())
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// The acceptor to wrap accepted connections with.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }
}

/// Builds the server side of `tls_server_config`. What parsing could not know is reported at
/// the key it concerns in `file`: a key that does not match the certificate, a CA certificate
/// rustls cannot use.
pub fn build(spec: &TlsSpec, file: &str) -> Result<Tls, Diagnostic> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
        (TlsVersion::Tls12, &rustls::version::TLS12),
        (TlsVersion::Tls13, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(v, _)| (spec.min_version..=spec.max_version).contains(v))
    .map(|(_, p)| p)
    .collect();
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| spec.at.diag(file, format!("tls_server_config: {e}")))?;
    let builder = match (&spec.client_ca, spec.client_auth) {
        (
            Some(ca),
            ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert,
        ) => {
            let mut roots = RootCertStore::empty();
            for (i, der) in ca.der.iter().enumerate() {
                roots.add(der.clone()).map_err(|e| {
                    ca.at.diag(
                        file,
                        format!(
                            "{}: certificate {} is not usable as a CA: {e}",
                            ca.label,
                            i + 1
                        ),
                    )
                })?;
            }
            let mut verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider));
            if spec.client_auth == ClientAuth::VerifyClientCertIfGiven {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier
                .build()
                .map_err(|e| ca.at.diag(file, format!("{}: {e}", ca.label)))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let (cert, key) = (&spec.cert, &spec.key);
    let mut config = match builder.with_single_cert(cert.der.clone(), key.der.clone_key()) {
        Ok(c) => c,
        Err(rustls::Error::InconsistentKeys(_)) => {
            return Err(key.at.diag(
                file,
                format!(
                    "{}: the private key does not match the certificate of {}",
                    key.label, cert.label
                ),
            ));
        }
        Err(e) => {
            return Err(cert
                .at
                .diag(file, format!("{} with {}: {e}", cert.label, key.label)));
        }
    };
    // Only HTTP/1.1 is served.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.ignore_client_order = spec.prefer_server_cipher_suites;
    Ok(Tls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        cert_source: cert.label.clone(),
        client_auth: spec.client_auth,
        min_version: spec.min_version,
        max_version: spec.max_version,
    })
}

/// Completes the TLS handshake of an accepted connection within `timeout` (use
/// [`TLS_HANDSHAKE_TIMEOUT`]), so a client that connects and stays silent cannot hold a task.
pub async fn accept_tls<IO>(
    acceptor: &TlsAcceptor,
    stream: IO,
    timeout: Duration,
) -> std::io::Result<tokio_rustls::server::TlsStream<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("TLS handshake did not finish within {timeout:?}"),
        )),
    }
}
