//! The mock as an HTTP server (the `test-util` feature).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response};
use http_body_util::{BodyExt, Limited};
use serde_json::json;
use tower::Service;

use super::super::inbound;
use super::super::registry::BoxExecutor;
use super::{answer, json_response, Counter, Cut, MockOptions};
use crate::body::{Body, BoxError};
use crate::error::GatewayError;
use crate::request::{Endpoint, LlmRequest};

/// The mock as an OpenAI-compatible HTTP server (which also answers the Messages and
/// Responses APIs, as Anthropic's and OpenAI's servers do): serve it with
/// [`serve`](crate::server::serve) on any listener. Model names are taken as sent
/// (`echo?status=500`). Counts requests and keeps the last one's headers and body, so tests
/// can check what reached the upstream.
#[derive(Debug, Clone, Default)]
pub struct MockUpstream {
    state: Arc<MockState>,
}

#[derive(Debug, Default)]
struct MockState {
    ids: Counter,
    requests: AtomicU64,
    last: Mutex<Option<(HeaderMap, Bytes)>>,
    last_uri: Mutex<Option<http::Uri>>,
}

impl MockUpstream {
    /// A new mock server state.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many LLM requests (chat, embeddings, Messages, Responses) it has received.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Headers and body of the last LLM request.
    pub fn last_request(&self) -> Option<(HeaderMap, Bytes)> {
        self.state.last.lock().expect("mock state").clone()
    }

    /// The path and query of the last LLM request.
    pub fn last_uri(&self) -> Option<http::Uri> {
        self.state.last_uri.lock().expect("mock state").clone()
    }

    async fn handle<B>(self, req: Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let path = req.uri().path();
        let Some(endpoint) = Endpoint::from_path(path) else {
            return match (req.method(), path) {
                (&Method::GET, "/v1/models" | "/models") => json_response(&json!({
                    "object": "list",
                    "data": [{ "id": "echo", "object": "model", "created": 0, "owned_by": "llm-tower-mock" }],
                })),
                (&Method::GET, "/health" | "/health/liveliness" | "/health/readiness") => {
                    json_response(&json!({ "status": "ok" }))
                }
                _ => GatewayError::route_not_found(req.method(), path).into_response(),
            };
        };
        let (parts, body) = req.into_parts();
        let body = match Limited::new(body, 64 * 1024 * 1024).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(err) => {
                return GatewayError::bad_request(format!("unreadable body: {err}")).into_response()
            }
        };
        self.state.requests.fetch_add(1, Ordering::SeqCst);
        *self.state.last_uri.lock().expect("mock state") = Some(parts.uri);
        *self.state.last.lock().expect("mock state") = Some((parts.headers, body.clone()));
        if matches!(endpoint, Endpoint::Responses | Endpoint::Messages) {
            return inbound(endpoint, body)
                .await
                .unwrap_or_else(|e| e.into_response_as(endpoint.protocol()));
        }
        let result = async {
            let llm = LlmRequest::parse(endpoint, &body)?;
            let options = MockOptions::parse(llm.model())?;
            if let Some(delay) = options.delay {
                tokio::time::sleep(delay).await;
            }
            answer(
                &llm,
                &body,
                llm.model(),
                &options,
                self.state.ids.next(),
                Cut::Abort,
            )
        };
        result.await.unwrap_or_else(GatewayError::into_response)
    }
}

/// What a server with its own Responses API (as OpenAI's) or Messages API (as
/// Anthropic's) answers: the mock's chat answer as a `response` or a `message`, or as
/// that API's event stream.
async fn inbound(endpoint: Endpoint, body: Bytes) -> Result<Response<Body>, GatewayError> {
    let llm = LlmRequest::parse(endpoint, &body)?;
    let mut req = Request::new(body);
    req.extensions_mut().insert(llm);
    let mock = BoxExecutor::new(super::MockExecutor::new());
    inbound::via_chat(mock, req, &Arc::from("mock")).await
}

impl<B> Service<Request<B>> for MockUpstream
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(req).await) })
    }
}
