//! Which route a request takes, and the HTTP metrics of every request.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::HeaderValue;
use http::{Method, Request, Response};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower::Service;

use super::admin;
use super::build::{Gateway, LlmStack};
use super::metrics::status_label;
use crate::body::{Body, BoxError};
use crate::error::GatewayError;
use crate::request::X_REQUEST_ID;
use crate::responses::routes;

/// Which route a request took, for metrics.
#[derive(Clone, Copy)]
enum Route {
    Chat,
    Embeddings,
    Messages,
    CountTokens,
    Responses,
    StoredResponses,
    Models,
    Usage,
    Management,
    Health,
    Metrics,
    Other,
}

impl Route {
    fn label(self) -> &'static str {
        match self {
            Self::Chat => "/v1/chat/completions",
            Self::Embeddings => "/v1/embeddings",
            Self::Messages => "/v1/messages",
            Self::CountTokens => "/v1/messages/count_tokens",
            Self::Responses => "/v1/responses",
            Self::StoredResponses => "/v1/responses/{id}",
            Self::Models => "/v1/models",
            Self::Usage => "/v1/usage",
            Self::Management => "/key, /team",
            Self::Health => "/health",
            Self::Metrics => "/metrics",
            Self::Other => "other",
        }
    }
}

pin_project! {
    /// The future of [`Gateway`].
    pub struct GatewayFuture<F> {
        #[pin]
        inner: Inner<F>,
        route: Route,
        started: Instant,
        request_id: Option<HeaderValue>,
    }
}

pin_project! {
    #[project = InnerProj]
    enum Inner<F> {
        Ready { response: Option<Response<Body>> },
        Llm { #[pin] future: F },
        Boxed { future: Pin<Box<dyn Future<Output = Response<Body>> + Send>> },
    }
}

impl<F> Future for GatewayFuture<F>
where
    F: Future<Output = Result<Response<Body>, Infallible>>,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = match this.inner.project() {
            InnerProj::Ready { response } => response.take().expect("polled after completion"),
            InnerProj::Llm { future } => match future.poll(cx) {
                Poll::Ready(Ok(response)) => response,
                Poll::Pending => return Poll::Pending,
            },
            InnerProj::Boxed { future } => match future.as_mut().poll(cx) {
                Poll::Ready(response) => response,
                Poll::Pending => return Poll::Pending,
            },
        };
        let mut response = response;
        if let Some(id) = this.request_id.take() {
            response.headers_mut().entry("request-id").or_insert(id);
        }
        let labels = [
            ("route", this.route.label()),
            ("status", status_label(response.status())),
        ];
        metrics::counter!("llm_tower_http_requests_total", &labels).increment(1);
        metrics::histogram!("llm_tower_http_response_seconds", "route" => this.route.label())
            .record(this.started.elapsed().as_secs_f64());
        Poll::Ready(Ok(response))
    }
}

impl<B> Service<Request<B>> for Gateway
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = GatewayFuture<<LlmStack as Service<Request<B>>>::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        <LlmStack as Service<Request<B>>>::poll_ready(&mut self.llm, cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let started = Instant::now();
        let req_id = req.headers().get(X_REQUEST_ID).cloned();
        let path = req.uri().path();
        let ready = |route, response| {
            (
                route,
                Inner::Ready {
                    response: Some(response),
                },
            )
        };
        let (route, inner) = match (req.method(), path) {
            (_, "/v1/chat/completions" | "/chat/completions") => (
                Route::Chat,
                Inner::Llm {
                    future: self.llm.call(req),
                },
            ),
            (_, "/v1/embeddings" | "/embeddings") => (
                Route::Embeddings,
                Inner::Llm {
                    future: self.llm.call(req),
                },
            ),
            (_, "/v1/messages" | "/messages") => (
                Route::Messages,
                Inner::Llm {
                    future: self.llm.call(req),
                },
            ),
            (_, "/v1/messages/count_tokens" | "/messages/count_tokens") => (
                Route::CountTokens,
                Inner::Llm {
                    future: self.llm.call(req),
                },
            ),
            (_, "/v1/responses" | "/responses") => (
                Route::Responses,
                Inner::Llm {
                    future: self.llm.call(req),
                },
            ),
            (&Method::GET | &Method::DELETE, _) if routes::target(path).is_some() => (
                Route::StoredResponses,
                Inner::Boxed {
                    future: Box::pin(stored_response(
                        self.shared.clone(),
                        req.method().clone(),
                        req.uri().clone(),
                        req.headers().clone(),
                    )),
                },
            ),
            (&Method::GET, "/v1/models" | "/models") => (
                Route::Models,
                Inner::Boxed {
                    future: Box::pin(admin::models(self.shared.clone(), req.headers().clone())),
                },
            ),
            (&Method::GET, _) if model_id(path).is_some() => (
                Route::Models,
                Inner::Boxed {
                    future: Box::pin(admin::model(
                        self.shared.clone(),
                        req.headers().clone(),
                        model_id(path).expect("matched").to_owned(),
                    )),
                },
            ),
            (_, _) if crate::tenancy::api::is_management_path(path) => {
                let shared = self.shared.clone();
                let (parts, body) = req.into_parts();
                return GatewayFuture {
                    inner: Inner::Boxed {
                        future: Box::pin(async move {
                            let body = match read_body(body, MANAGEMENT_BODY_LIMIT).await {
                                Ok(body) => body,
                                Err(err) => return err.into_response(),
                            };
                            admin::management(shared, parts.method, parts.uri, parts.headers, body)
                                .await
                        }),
                    },
                    route: Route::Management,
                    started,
                    request_id: None,
                };
            }
            (&Method::GET, "/health") => ready(Route::Health, admin::health()),
            (&Method::GET, "/v1/usage/records" | "/usage/records") => (
                Route::Usage,
                Inner::Boxed {
                    future: Box::pin(admin::usage_records(
                        self.shared.clone(),
                        req.headers().clone(),
                        req.uri().query().map(str::to_owned),
                    )),
                },
            ),
            (&Method::GET, "/v1/usage" | "/usage") => (
                Route::Usage,
                Inner::Boxed {
                    future: Box::pin(admin::usage(
                        self.shared.clone(),
                        req.headers().clone(),
                        req.uri().query().map(str::to_owned),
                    )),
                },
            ),
            (&Method::GET, "/health/readiness") => (
                Route::Health,
                Inner::Boxed {
                    future: Box::pin(admin::readiness(self.shared.clone())),
                },
            ),
            (&Method::GET, "/metrics") => {
                ready(Route::Metrics, admin::metrics(&self.shared, req.headers()))
            }
            (
                method,
                "/v1/models" | "/models" | "/v1/usage" | "/health" | "/health/readiness"
                | "/metrics",
            ) => ready(
                Route::Other,
                GatewayError::method_not_allowed(method, path).into_response(),
            ),
            (method, _) => ready(
                Route::Other,
                GatewayError::route_not_found(method, path).into_response(),
            ),
        };
        // Anthropic's SDKs read the request id from `request-id`.
        let request_id = match route {
            Route::Messages | Route::CountTokens => req_id,
            _ => None,
        };
        GatewayFuture {
            inner,
            route,
            started,
            request_id,
        }
    }
}

/// `GET`/`DELETE /v1/responses/{id}`, `GET /v1/responses/{id}/input_items`: for the key
/// that created the response.
async fn stored_response(
    shared: std::sync::Arc<super::build::Shared>,
    method: Method,
    uri: http::Uri,
    headers: http::HeaderMap,
) -> Response<Body> {
    let owner = match shared.keys.authorize(&headers).await {
        Ok(authorized) => authorized.id,
        Err(err) => return err.into_response(),
    };
    let target = routes::target(uri.path()).expect("matched by the router");
    routes::serve(
        shared.responses.clone(),
        method,
        target,
        uri.query(),
        &owner.0,
    )
    .await
    .unwrap_or_else(GatewayError::into_response)
}

/// The largest body a management request may have.
const MANAGEMENT_BODY_LIMIT: usize = 1 << 20;

/// A whole request body of at most `limit` bytes (413 beyond, 400 when it breaks).
pub(crate) async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, GatewayError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    use http_body_util::BodyExt;
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            Err(GatewayError::payload_too_large(limit))
        }
        Err(err) => Err(GatewayError::bad_request(format!(
            "The request body could not be read: {err}"
        ))),
    }
}

/// The id of `GET /v1/models/{id}` (which may itself hold `/`).
fn model_id(path: &str) -> Option<&str> {
    path.strip_prefix("/v1/models/")
        .or_else(|| path.strip_prefix("/models/"))
        .filter(|id| !id.is_empty())
}

#[cfg(test)]
mod tests {
    use http::StatusCode;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::super::admin::PanicResponse;

    #[tokio::test]
    async fn a_panicking_handler_answers_500() {
        let service = tower::ServiceBuilder::new()
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(
                PanicResponse,
            ))
            .service_fn(|_: http::Request<()>| async {
                if true {
                    panic!("boom");
                }
                Ok::<_, std::convert::Infallible>(http::Response::new(crate::Body::empty()))
            });
        let response = service.oneshot(http::Request::new(())).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(std::str::from_utf8(&body)
            .unwrap()
            .contains("internal_error"));
    }
}
