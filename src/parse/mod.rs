//! Reading and parsing the request body, once.
//!
//! [`Parse`] reads the body up to a limit (413 past it: early from `Content-Length`, and
//! without reading further when the length is not announced) and within a deadline (408
//! past it: a client sending its body a byte at a time), parses it into an
//! [`LlmRequest`] kept in the request's extensions, and hands the inner service a
//! `Request<Bytes>`. Failures of the inner service become OpenAI-style error responses here,
//! so everything outside this layer sees only responses.
//!
//! Around your own service, which then gets `Request<Bytes>` with the parsed view:
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use llm_tower::parse::ParseLayer;
//! use llm_tower::{Body, GatewayError, LlmRequest};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let service = ServiceBuilder::new()
//!     .layer(ParseLayer::new(4 * 1024 * 1024))
//!     .service_fn(|req: Request<Bytes>| async move {
//!         let model = req.extensions().get::<LlmRequest>().unwrap().model().to_owned();
//!         Ok::<_, GatewayError>(Response::new(Body::from(model)))
//!     });
//! let req = Request::post("/v1/chat/completions")
//!     .body(http_body_util::Full::new(Bytes::from(
//!         r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
//!     )))
//!     .unwrap();
//! let response = service.oneshot(req).await.unwrap();
//! assert!(response.status().is_success());
//! # });
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tower::{Layer, Service};

use crate::body::{Body, BoxError};
use crate::error::GatewayError;
use crate::protocol::Protocol;
use crate::request::{Endpoint, LlmRequest};

/// Layer that applies the [`Parse`] middleware.
#[derive(Debug, Clone, Copy)]
pub struct ParseLayer {
    limits: Limits,
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    max_body_bytes: usize,
    body_read_timeout: Duration,
}

impl ParseLayer {
    /// Bodies larger than `max_body_bytes` are refused with 413; a body not read within
    /// 30 s ([`body_read_timeout`](Self::body_read_timeout)) with 408.
    pub fn new(max_body_bytes: usize) -> Self {
        Self {
            limits: Limits {
                max_body_bytes,
                body_read_timeout: Duration::from_secs(30),
            },
        }
    }

    /// How long the client has to send its whole body once the headers are in (408 beyond).
    #[must_use]
    pub fn body_read_timeout(mut self, timeout: Duration) -> Self {
        self.limits.body_read_timeout = timeout;
        self
    }
}

impl<S> Layer<S> for ParseLayer {
    type Service = Parse<S>;
    fn layer(&self, inner: S) -> Parse<S> {
        Parse {
            inner,
            limits: self.limits,
            not_ready: None,
        }
    }
}

/// Reads and parses the body of chat and embeddings requests into an [`LlmRequest`].
#[derive(Debug, Clone)]
pub struct Parse<S> {
    inner: S,
    limits: Limits,
    not_ready: Option<GatewayError>,
}

/// The future of [`Parse`].
pub type ParseFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl<S, B> Service<Request<B>> for Parse<S>
where
    S: Service<Request<Bytes>, Response = Response<Body>, Error = GatewayError>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ParseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // An inner service that cannot become ready is answered per request, as an error.
        match self.inner.poll_ready(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(err)) => {
                self.not_ready = Some(err);
                Poll::Ready(Ok(()))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn call(&mut self, req: Request<B>) -> ParseFuture {
        // Errors reach the client in its endpoint's API (Anthropic's for `/v1/messages`).
        let protocol =
            Endpoint::from_path(req.uri().path()).map_or(Protocol::OpenAi, Endpoint::protocol);
        if let Some(err) = self.not_ready.take() {
            return Box::pin(std::future::ready(Ok(err.into_response_as(protocol))));
        }
        // The ready service goes into the future; `self` keeps a fresh clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let limits = self.limits;
        Box::pin(async move {
            match read(req, limits).await {
                Ok(req) => match inner.call(req).await {
                    Ok(response) => Ok(response),
                    Err(err) => Ok(err.into_response_as(protocol)),
                },
                Err(err) => Ok(err.into_response_as(protocol)),
            }
        })
    }
}

async fn read<B>(req: Request<B>, limits: Limits) -> Result<Request<Bytes>, GatewayError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let endpoint = Endpoint::from_path(req.uri().path())
        .ok_or_else(|| GatewayError::route_not_found(req.method(), req.uri().path()))?;
    if req.method() != Method::POST {
        return Err(GatewayError::method_not_allowed(
            req.method(),
            req.uri().path(),
        ));
    }
    let limit = limits.max_body_bytes;
    let announced = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(GatewayError::payload_too_large(limit));
    }
    let (parts, body) = req.into_parts();
    let collect = Limited::new(body, limit).collect();
    let Ok(collected) = tokio::time::timeout(limits.body_read_timeout, collect).await else {
        return Err(GatewayError::request_timeout(limits.body_read_timeout));
    };
    let bytes = match collected {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.is::<LengthLimitError>() => {
            return Err(GatewayError::payload_too_large(limit))
        }
        Err(err) => {
            return Err(GatewayError::bad_request(format!(
                "Could not read the request body: {err}"
            )))
        }
    };
    let llm = LlmRequest::parse(endpoint, &bytes)?;
    let mut req = Request::from_parts(parts, bytes);
    req.extensions_mut().insert(llm);
    Ok(req)
}
