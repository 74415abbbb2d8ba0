//! The HTTP server: the accept loop (TLS per connection when the web config has it), one
//! task per connection, and the graceful drain of in-flight requests at shutdown.
//!
//! Connections are bounded, as Prometheus bounds them (`--web.max-connections`, default
//! 512): past the bound, [`OVERFLOW_CONNECTIONS`] more are accepted that only answer
//! `/-/healthy` and `/-/ready` (everything else gets 503 and the connection closes) with a
//! short header timeout, so liveness probes get through while slow clients hold every
//! normal slot; past those, new connections wait in the kernel's backlog, costing no
//! descriptor. Request headers must arrive within [`HEADER_READ_TIMEOUT`] and bodies within
//! `--web.read-timeout`, so a stalled client frees its slot.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{Body, State};

/// How long a client may take to send its request headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// `--web.read-timeout`'s default: how long a request body may take to arrive.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// `--web.max-connections`'s default, as in Prometheus.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// Connections accepted past the bound that only answer health probes.
pub const OVERFLOW_CONNECTIONS: usize = 32;
/// How long an overflow connection may take to send its request headers.
const OVERFLOW_HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// Which kind of slot a connection holds (held, not read: dropping it frees the slot).
enum Slot {
    Normal { _held: OwnedSemaphorePermit },
    Overflow { _held: OwnedSemaphorePermit },
}

/// A free slot: a normal one if any, else an overflow one; waits while there is none.
async fn slot(normal: &Arc<Semaphore>, overflow: &Arc<Semaphore>) -> Slot {
    if let Ok(p) = Arc::clone(normal).try_acquire_owned() {
        return Slot::Normal { _held: p };
    }
    if let Ok(p) = Arc::clone(overflow).try_acquire_owned() {
        return Slot::Overflow { _held: p };
    }
    // Neither semaphore is ever closed, so acquiring cannot fail.
    tokio::select! {
        Ok(p) = Arc::clone(normal).acquire_owned() => Slot::Normal { _held: p },
        Ok(p) = Arc::clone(overflow).acquire_owned() => Slot::Overflow { _held: p },
    }
}

/// What an overflow connection answers: health probes as usual, 503 to everything else.
async fn overflow_handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    match req.uri().path() {
        "/-/healthy" | "/-/ready" => {
            super::handle(
                state,
                Arc::new(super::auth::ConnectionPause::default()),
                req,
            )
            .await
        }
        _ => {
            let mut resp = Response::new(Full::new(Bytes::from_static(
                b"too many connections: retry later\n",
            )));
            *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            resp.headers_mut().insert(
                hyper::header::RETRY_AFTER,
                hyper::header::HeaderValue::from_static("1"),
            );
            Ok(resp)
        }
    }
}

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
    let normal = Arc::new(Semaphore::new(state.max_connections.max(1)));
    let overflow = Arc::new(Semaphore::new(OVERFLOW_CONNECTIONS));
    loop {
        // A slot first: while none is free, connections wait in the kernel's backlog.
        let slot = tokio::select! {
            slot = slot(&normal, &overflow) => slot,
            _ = &mut shutdown => break,
        };
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
                    let overflowing = matches!(slot, Slot::Overflow { .. });
                    // A connection refused for too many password checks waits out its
                    // Retry-After before its next request.
                    let pause = Arc::new(super::auth::ConnectionPause::default());
                    let service = service_fn(move |req| {
                        let (state, pause) = (Arc::clone(&state), Arc::clone(&pause));
                        async move {
                            if overflowing {
                                overflow_handle(state, req).await
                            } else {
                                super::handle(state, pause, req).await
                            }
                        }
                    });
                    let mut builder = http1::Builder::new();
                    builder.timer(TokioTimer::new());
                    if overflowing {
                        builder
                            .header_read_timeout(OVERFLOW_HEADER_TIMEOUT)
                            .keep_alive(false);
                    } else {
                        builder.header_read_timeout(HEADER_READ_TIMEOUT);
                    }
                    let result = match acceptor {
                        Some(acceptor) => {
                            match super::tls::accept_tls(
                                &acceptor,
                                stream,
                                super::tls::TLS_HANDSHAKE_TIMEOUT,
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
                    drop(slot);
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    Draining(graceful)
}
