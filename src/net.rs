//! The one outgoing HTTP client builder (webhooks, scrapes, query sources): rustls on the
//! `ring` provider, driftgauge's `User-Agent`, no proxy from the environment; and the error
//! text every caller reports.

/// `User-Agent` of every outgoing request.
pub const USER_AGENT: &str = concat!("driftgauge/", env!("CARGO_PKG_VERSION"));

/// Makes rustls use the `ring` provider; idempotent, called before any client is built.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A client builder with driftgauge's defaults; callers add timeouts, headers, redirects.
pub fn client_builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder().user_agent(USER_AGENT).no_proxy()
}

/// An error and its sources, e.g. "error sending request: client error (Connect): tcp connect
/// error: Connection refused (os error 111)".
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct E(&'static str, Option<Box<E>>);
    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for E {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn error_chain_joins_causes_once() {
        let e = E(
            "send failed: refused",
            Some(Box::new(E(
                "refused",
                Some(Box::new(E("os error 111", None))),
            ))),
        );
        assert_eq!(error_chain(&e), "send failed: refused: os error 111");
    }
}
