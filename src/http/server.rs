//! The HTTP server: the accept loop (TLS per connection when the web config has it), one
//! task per connection, and the graceful drain of in-flight requests at shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use super::State;

/// How long a client may take to send its request headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections still being served after the accept loop ended.
pub struct Draining(GracefulShutdown);

impl Draining {
    /// Lets in-flight requests finish within `grace`; false when some did not.
    pub async fn finish(self, grace: Duration) -> bool {
        tokio::time::timeout(grace, self.0.shutdown()).await.is_ok()
    }
}

/// Accepts connections on `listener` and serves them until `shutdown` completes; then stops
/// accepting (the listener is dropped) and returns the connections still open.
pub async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    shutdown: impl Future<Output = ()>,
) -> Draining {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let state = Arc::clone(&state);
                let watcher = graceful.watcher();
                // The TLS handshake runs in the connection's own task and is bounded, so a
                // slow or silent client holds neither the accept loop nor a task for long.
                tokio::spawn(async move {
                    // The TLS settings of the web config as it is now: a rotated certificate
                    // is served from the next handshake on.
                    let acceptor = match &state.web {
                        Some(web) => web.current().await.tls_acceptor(),
                        None => None,
                    };
                    let service = service_fn(move |req| super::handle(Arc::clone(&state), req));
                    let mut builder = http1::Builder::new();
                    builder
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEADER_READ_TIMEOUT);
                    let result = match acceptor {
                        Some(acceptor) => {
                            match super::auth::accept_tls(
                                &acceptor,
                                stream,
                                super::auth::TLS_HANDSHAKE_TIMEOUT,
                            )
                            .await
                            {
                                Ok(tls) => {
                                    watcher
                                        .watch(builder.serve_connection(TokioIo::new(tls), service))
                                        .await
                                }
                                Err(e) => {
                                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                    return;
                                }
                            }
                        }
                        None => {
                            watcher
                                .watch(builder.serve_connection(TokioIo::new(stream), service))
                                .await
                        }
                    };
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    Draining(graceful)
}
