//! HTTP routes. Errors map to status codes in one place, [`ApiError::into_response`].
//!
//! | route | what |
//! |---|---|
//! | `GET /metrics` | Prometheus text 0.0.4, or OpenMetrics when `Accept` asks for it |
//! | `POST /api/v1/samples` | push samples (JSON), all or nothing |
//! | `POST /api/v1/write` | Prometheus remote write 1.0 and 2.0 receiver (protobuf + snappy) |
//! | `GET /api/v1/sources` | query sources: health, last success, last error, failures |
//! | `POST /api/v1/evaluate` | one stateless KS evaluation |
//! | `GET /api/v1/rules` | groups, rules, evaluated series with state |
//! | `GET /-/healthy`, `GET /-/ready` | liveness, readiness |
//! | `POST /-/reload` | reload config and rules (only with `--web.enable-lifecycle`) |
//! | `GET /` | the status page (HTML): groups, rules, series, history, plots (`status.rs`) |

mod api;
pub mod auth;
pub mod budget;
pub mod remote_write;
pub mod server;
pub mod status;
pub mod tls;
pub mod web_config;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use crate::config::LoadError;
use crate::engine::Engine;
use crate::formats::exposition::Format;
use crate::labels::RejectReason;
use crate::telemetry::Telemetry;

pub type Body = Full<Bytes>;

/// Reloads config and rules (and the web config) on `POST /-/reload`: the composition root
/// implements it, as it does for SIGHUP.
pub trait Reloader: Send + Sync + 'static {
    fn reload(&self) -> Pin<Box<dyn Future<Output = Result<(), LoadError>> + Send + '_>>;
}

/// What every request sees.
pub struct State {
    pub engine: Arc<Engine>,
    /// `--web.config.file`, when given: who gets in.
    pub web: Option<Arc<web_config::WebConfigHandle>>,
    /// `--web.enable-lifecycle`: `/-/reload` allowed.
    pub enable_lifecycle: bool,
    pub reloader: Arc<dyn Reloader>,
    /// Memory for bodies being read and parsed.
    pub budget: budget::ParseBudget,
    /// How long a request body may take to arrive (`--web.read-timeout`).
    pub read_timeout: std::time::Duration,
    /// Connections served at once (`--web.max-connections`).
    pub max_connections: usize,
    ready: AtomicBool,
}

impl State {
    pub fn new(
        engine: Arc<Engine>,
        web: Option<Arc<web_config::WebConfigHandle>>,
        enable_lifecycle: bool,
        reloader: Arc<dyn Reloader>,
    ) -> State {
        State {
            engine,
            web,
            enable_lifecycle,
            reloader,
            budget: budget::ParseBudget::default(),
            read_timeout: server::DEFAULT_READ_TIMEOUT,
            max_connections: server::DEFAULT_MAX_CONNECTIONS,
            ready: AtomicBool::new(false),
        }
    }

    /// `/-/ready`: rules loaded and state restored, not shutting down, and state can be
    /// persisted (the store works).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && self.engine.telemetry.storage_healthy.get()
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }
}

/// Everything a route can refuse with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadData {
        message: String,
        index: Option<usize>,
    },
    #[error("request body exceeds limits.max_body_bytes={limit}")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    TooManySeries(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("method {method} not allowed; allowed: {allow}")]
    MethodNotAllowed { method: String, allow: &'static str },
    #[error("Lifecycle API is not enabled.")]
    LifecycleDisabled,
    #[error("reload failed:\n{0}")]
    ReloadFailed(String),
    #[error("could not read the request body: {0}")]
    Body(String),
    #[error("not ready: {0}")]
    NotReady(&'static str),
    #[error("unauthorized: {0}")]
    Unauthorized(auth::AuthError),
    /// Too many large bodies are being parsed at once: retry later.
    #[error("too many large request bodies are being read at once; retry in a few seconds")]
    Busy,
    /// The body did not arrive within the read timeout.
    #[error("the request body did not arrive within {0:?}")]
    BodyTimeout(std::time::Duration),
    /// The password was not checked: too many checks are waiting (429, `Retry-After`).
    #[error("{0}")]
    AuthBusy(auth::AuthError),
    /// A task failed (panicked) on the blocking pool.
    #[error("internal error: {0}")]
    Internal(String),
    /// Remote write from an HA replica that is not the elected one: 202, as Mimir answers,
    /// so Prometheus does not retry; the samples are dropped.
    #[error("{0}")]
    HaDeduped(String),
    /// A body in a format or encoding the route does not read (remote write's content
    /// negotiation).
    #[error("{0}")]
    UnsupportedMediaType(String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadData { .. } | ApiError::Body(_) => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManySeries(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::LifecycleDisabled => StatusCode::FORBIDDEN,
            ApiError::ReloadFailed(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::AuthBusy(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::HaDeduped(_) => StatusCode::ACCEPTED,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }

    fn error_type(&self) -> &'static str {
        match self {
            ApiError::BadData { .. } | ApiError::Body(_) => "bad_data",
            ApiError::PayloadTooLarge { .. } => "too_large",
            ApiError::TooManySeries(_) => "limit",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::LifecycleDisabled => "forbidden",
            ApiError::ReloadFailed(_) => "reload",
            ApiError::NotReady(_) => "unavailable",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::AuthBusy(_) => "unavailable",
            ApiError::Internal(_) => "internal",
            ApiError::Busy => "unavailable",
            ApiError::BodyTimeout(_) => "timeout",
            ApiError::HaDeduped(_) => "ha_dedupe",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
        }
    }

    /// `{"status":"error","errorType":..,"error":..[,"index":N]}`, as Prometheus's API answers.
    pub fn into_response(self) -> Response<Body> {
        let mut body =
            json!({"status": "error", "errorType": self.error_type(), "error": self.to_string()});
        if let ApiError::BadData { index: Some(i), .. } = &self {
            body["index"] = json!(i);
        }
        let mut resp = json_response(self.status(), &body);
        if let ApiError::MethodNotAllowed { allow, .. } = &self {
            resp.headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
        }
        if let ApiError::Busy = &self {
            resp.headers_mut()
                .insert(hyper::header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        if let ApiError::Unauthorized(e) = &self {
            for challenge in e.challenges() {
                resp.headers_mut()
                    .append(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
            }
        }
        if let ApiError::AuthBusy(_) = &self {
            resp.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(auth::RETRY_AFTER_SECS));
        }
        resp
    }
}

impl From<auth::AuthError> for ApiError {
    fn from(e: auth::AuthError) -> Self {
        match e.reason() {
            auth::AuthFailure::Busy => ApiError::AuthBusy(e),
            _ => ApiError::Unauthorized(e),
        }
    }
}

pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn text_response(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

impl State {
    /// Reads the whole body of `req` within the read timeout, refusing more than
    /// `limits.max_body_bytes` with 413 (by `Content-Length` before reading, and while reading
    /// for chunked bodies). First reserves `factor` times the body's size from the parse
    /// budget (the limit's size when the length is not given); the reservation is returned,
    /// to be held while the body is parsed.
    pub async fn read_body(
        &self,
        req: Request<Incoming>,
        factor: usize,
    ) -> Result<(Bytes, tokio::sync::SemaphorePermit<'_>), ApiError> {
        let limit = self.engine.current().config.limits.max_body_bytes;
        let declared = match req.headers().get(hyper::header::CONTENT_LENGTH) {
            Some(len) => {
                let n = len
                    .to_str()
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or_else(|| ApiError::Body("invalid Content-Length".into()))?;
                if n > limit as u64 {
                    return Err(ApiError::PayloadTooLarge { limit });
                }
                n as usize
            }
            None => limit,
        };
        let reservation = self.budget.reserve(declared.saturating_mul(factor)).await?;
        let collect = Limited::new(req.into_body(), limit).collect();
        match tokio::time::timeout(self.read_timeout, collect).await {
            Err(_) => Err(ApiError::BodyTimeout(self.read_timeout)),
            Ok(Ok(collected)) => Ok((collected.to_bytes(), reservation)),
            Ok(Err(e))
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                Err(ApiError::PayloadTooLarge { limit })
            }
            Ok(Err(e)) => Err(ApiError::Body(e.to_string())),
        }
    }
}

/// Counts a refused push or remote write request: once in `requests_rejected`, and the
/// values it carried, when its body was decoded, in `samples_rejected`, under the same
/// reason (the rule is written on [`Telemetry::requests_rejected`]).
fn count_refused(telemetry: &Telemetry, reason: RejectReason, values: usize) {
    telemetry.requests_rejected.add(reason.as_str(), 1.0);
    if values > 0 {
        telemetry
            .samples_rejected
            .add(reason.as_str(), values as f64);
    }
}

/// Why [`State::read_body`] refused a body: over the limit, no room in the parse budget, too
/// slow, or unreadable.
fn body_reason(e: &ApiError) -> RejectReason {
    match e {
        ApiError::PayloadTooLarge { .. } => RejectReason::TooLarge,
        ApiError::Busy => RejectReason::Busy,
        ApiError::BodyTimeout(_) => RejectReason::Timeout,
        _ => RejectReason::BadBody,
    }
}

fn only(method: &Method, allowed: &Method, allow: &'static str) -> Result<(), ApiError> {
    if method == allowed || (allowed == Method::GET && method == Method::HEAD) {
        Ok(())
    } else {
        Err(ApiError::MethodNotAllowed {
            method: method.to_string(),
            allow,
        })
    }
}

/// The service entry point for every request; `pause` is the connection's (see
/// [`auth::ConnectionPause`]).
pub async fn handle(
    app: Arc<State>,
    pause: Arc<auth::ConnectionPause>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    // A client refused for too many password checks waits out its Retry-After here.
    pause.wait().await;
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    // Who gets in, before routing and before any body is read: an unknown path without
    // credentials is 401 too, so routes cannot be probed. The web config as it is now (it
    // reloads when its files change); one snapshot serves the whole request.
    let web = match &app.web {
        Some(handle) => Some(handle.current().await),
        None => None,
    };
    let authorized = match &web {
        Some(web) => web
            .authorize_async(&method, &path, req.headers())
            .await
            .map_err(ApiError::from),
        None => Ok(()),
    };
    if let Err(ApiError::AuthBusy(_)) = &authorized {
        pause.arm();
    }
    let result = match authorized {
        Ok(()) => route(&app, req, &path, &method).await,
        Err(e) => Err(e),
    };
    let mut resp = result.unwrap_or_else(|e| {
        tracing::debug!(%method, %path, error = %e, "request refused");
        e.into_response()
    });
    if let Some(web) = &web {
        for (name, value) in web.response_headers() {
            resp.headers_mut().insert(name.clone(), value.clone());
        }
    }
    Ok(resp)
}

async fn route(
    app: &Arc<State>,
    req: Request<Incoming>,
    path: &str,
    method: &Method,
) -> Result<Response<Body>, ApiError> {
    match path {
        "/metrics" => {
            only(method, &Method::GET, "GET")?;
            let accept = req
                .headers()
                .get(hyper::header::ACCEPT)
                .and_then(|v| v.to_str().ok());
            let format = Format::from_accept(accept);
            // ~75 ms for 100k rule series: off the async workers.
            let engine = Arc::clone(&app.engine);
            let body = tokio::task::spawn_blocking(move || {
                crate::output::metrics::render(&engine, format)
            })
            .await
            .map_err(|e| ApiError::Internal(format!("rendering /metrics failed: {e}")))?;
            Ok(text_response(StatusCode::OK, format.content_type(), body))
        }
        "/api/v1/samples" => {
            only(method, &Method::POST, "POST")?;
            api::push(app, req).await
        }
        "/api/v1/write" => {
            only(method, &Method::POST, "POST")?;
            remote_write::handle(app, req).await
        }
        "/api/v1/sources" => {
            only(method, &Method::GET, "GET")?;
            let body = json!({"status": "success", "data": {"query_sources": app.engine.telemetry.query_sources.to_json()}});
            Ok(json_response(StatusCode::OK, &body))
        }
        "/api/v1/evaluate" => {
            only(method, &Method::POST, "POST")?;
            api::evaluate(app, req).await
        }
        "/api/v1/rules" => {
            only(method, &Method::GET, "GET")?;
            let app = Arc::clone(app);
            tokio::task::spawn_blocking(move || api::rules(&app))
                .await
                .map_err(|e| ApiError::Internal(format!("listing rules failed: {e}")))
        }
        "/-/healthy" => {
            only(method, &Method::GET, "GET")?;
            Ok(text_response(
                StatusCode::OK,
                "text/plain; charset=utf-8",
                "driftgauge is Healthy.\n".into(),
            ))
        }
        "/-/ready" => {
            only(method, &Method::GET, "GET")?;
            if app.is_ready() {
                Ok(text_response(
                    StatusCode::OK,
                    "text/plain; charset=utf-8",
                    "driftgauge is Ready.\n".into(),
                ))
            } else {
                Err(ApiError::NotReady(
                    if app.engine.telemetry.storage_healthy.get() {
                        "rules are still loading, or the service is stopping"
                    } else {
                        "the state store is failing; state cannot be persisted"
                    },
                ))
            }
        }
        "/-/reload" => {
            if method != Method::POST && method != Method::PUT {
                return Err(ApiError::MethodNotAllowed {
                    method: method.to_string(),
                    allow: "POST, PUT",
                });
            }
            if !app.enable_lifecycle {
                return Err(ApiError::LifecycleDisabled);
            }
            match app.reloader.reload().await {
                Ok(()) => Ok(text_response(
                    StatusCode::OK,
                    "text/plain; charset=utf-8",
                    String::new(),
                )),
                Err(e) => Err(ApiError::ReloadFailed(e.to_string())),
            }
        }
        "/" => {
            only(method, &Method::GET, "GET")?;
            let query = req.uri().query().map(str::to_string);
            let engine = Arc::clone(&app.engine);
            // Reads windows (and may sort a rolling reference): off the async workers.
            let body = tokio::task::spawn_blocking(move || {
                status::render(&engine, query.as_deref(), crate::time::now_ms())
            })
            .await
            .map_err(|e| ApiError::Internal(format!("rendering the status page failed: {e}")))?;
            Ok(text_response(
                StatusCode::OK,
                "text/html; charset=utf-8",
                body,
            ))
        }
        other => Err(ApiError::NotFound(other.to_string())),
    }
}
