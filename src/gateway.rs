//! The whole gateway as one service: routes, auth, parsing, executors.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use pin_project_lite::pin_project;
use serde_json::json;
use tokio::time::Instant;
use tower::{Service, ServiceBuilder};
use tower_http::request_id::{MakeRequestId, PropagateRequestId, RequestId, SetRequestId};

use crate::alias::{Alias, AliasLayer, Aliases};
use crate::auth::{Auth, AuthLayer, Keys};
use crate::body::{Body, BoxError};
use crate::cache::{Cache, CacheLayer};
use crate::combo::{Combo, ComboLayer, Combos};
use crate::config::{Config, ConfigError};
use crate::error::GatewayError;
use crate::executor::Executors;
use crate::idempotency::{Idempotency, IdempotencyLayer};
use crate::metering::report::{aggregate, ReportQuery};
use crate::metering::{Meter, Metering, MeteringLayer};
use crate::parse::{Parse, ParseLayer};

/// The LLM routes' stack: auth → parse → metering → alias → idempotency → cache → combo →
/// executors.
type LlmStack = Auth<Parse<Metering<Alias<Idempotency<Cache<Combo<Executors>>>>>>>;

/// The gateway: `POST /v1/chat/completions`, `POST /v1/embeddings`, `GET /v1/models`,
/// `GET /health`, `GET /health/readiness`, `GET /metrics`.
///
/// Serve [`Gateway::into_service`] (which adds `x-request-id`) with
/// [`server::serve`](crate::server::serve), or mount it in an axum router.
#[derive(Clone)]
pub struct Gateway {
    shared: Arc<Shared>,
    llm: LlmStack,
}

struct Shared {
    keys: Keys,
    meter: Option<Meter>,
    /// Whether a master key is configured (`/v1/usage` needs it).
    master_key: bool,
    models: Bytes,
    executors: Executors,
    prometheus: Option<PrometheusHandle>,
}

/// The gateway with request ids: an incoming `x-request-id` is kept, otherwise one is made;
/// either way it is sent upstream and returned to the client.
pub type GatewayService = SetRequestId<PropagateRequestId<Gateway>, MakeRequestIds>;

impl Gateway {
    /// Builds the gateway from a validated config.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let keys = Keys::new(
            config.master_key.clone(),
            config
                .keys
                .iter()
                .map(|k| (k.name.clone(), k.key.clone()))
                .collect(),
        );
        let prometheus = prometheus();
        let executors = Executors::from_config(config)?;
        let aliases = Aliases::compile(config)?;
        let combos = Combos::compile(config, &aliases)?;
        let mut models: Vec<_> = config
            .providers
            .iter()
            .flat_map(|(provider, p)| {
                p.models().iter().map(move |m| {
                    json!({ "id": format!("{provider}/{m}"), "object": "model", "created": 0, "owned_by": provider })
                })
            })
            .collect();
        let mut named: Vec<_> = aliases
            .names()
            .map(|name| (name, "alias"))
            .chain(combos.names().map(|name| (name, "combo")))
            .collect();
        named.sort_unstable();
        models.extend(named.into_iter().map(|(id, kind)| {
            json!({ "id": id, "object": "model", "created": 0, "owned_by": format!("llm-tower-{kind}") })
        }));
        let metering = MeteringLayer::from_config(config)?;
        let llm = ServiceBuilder::new()
            .layer(AuthLayer::new(keys.clone()))
            .layer(ParseLayer::new(config.server.max_body_bytes))
            .layer(metering.clone())
            .layer(AliasLayer::new(aliases))
            .layer(IdempotencyLayer::from_config(config)?)
            .layer(CacheLayer::from_config(config)?)
            .layer(ComboLayer::new(combos))
            .service(executors.clone());
        let models = serde_json::to_vec(&json!({ "object": "list", "data": models }))
            .expect("json")
            .into();
        Ok(Self {
            shared: Arc::new(Shared {
                keys,
                models,
                executors,
                prometheus,
                meter: metering.meter().cloned(),
                master_key: config.master_key.is_some(),
            }),
            llm,
        })
    }

    /// The gateway with `x-request-id` handling, ready to serve.
    pub fn into_service(self) -> GatewayService {
        SetRequestId::x_request_id(
            PropagateRequestId::x_request_id(self),
            MakeRequestIds::default(),
        )
    }

    /// Waits until every usage record of the requests served so far is written (for a
    /// graceful shutdown).
    pub async fn flush_usage(&self) {
        if let Some(meter) = &self.shared.meter {
            meter.flush().await;
        }
    }

    /// `GET /v1/usage`: the master key only.
    async fn usage(
        shared: Arc<Shared>,
        headers: http::HeaderMap,
        query: Option<String>,
    ) -> Response<Body> {
        let result = async {
            if !shared.master_key {
                return Err(GatewayError::new(
                    crate::ErrorKind::Unauthorized,
                    StatusCode::FORBIDDEN,
                    "permission_error",
                    "GET /v1/usage needs a master_key in the gateway's config.",
                ));
            }
            let key = shared.keys.check(&headers)?;
            if &*key.0 != "master" {
                return Err(GatewayError::new(
                    crate::ErrorKind::Unauthorized,
                    StatusCode::FORBIDDEN,
                    "permission_error",
                    "GET /v1/usage is for the master key only.",
                ));
            }
            let query = ReportQuery::parse(query.as_deref())?;
            let sink = shared.meter.as_ref().and_then(Meter::sink).ok_or_else(|| {
                GatewayError::new(
                    crate::ErrorKind::InvalidRequest,
                    StatusCode::NOT_FOUND,
                    "invalid_request_error",
                    "Usage metering has no ledger here (metering.sink: none, or metering disabled).",
                )
            })?;
            let records = sink
                .query(query.from_ms, query.to_ms, query.limit())
                .await
                .map_err(|e| GatewayError::internal(format!("The usage ledger could not be read: {e}")))?;
            Ok(aggregate(&query, &records))
        }
        .await;
        match result {
            Ok(report) => json_response(
                StatusCode::OK,
                serde_json::to_vec(&report).expect("json").into(),
            ),
            Err(err) => err.into_response(),
        }
    }

    fn models(&self, req: &Request<impl Sized>) -> Response<Body> {
        match self.shared.keys.check(req.headers()) {
            Ok(_) => json_response(StatusCode::OK, self.shared.models.clone()),
            Err(err) => err.into_response(),
        }
    }

    fn metrics(&self) -> Response<Body> {
        match &self.shared.prometheus {
            Some(handle) => {
                let mut response = Response::new(Body::from(handle.render()));
                response
                    .headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
                response
            }
            None => GatewayError::internal(
                "Metrics go to the application's own `metrics` recorder; this process has no Prometheus exporter.",
            )
            .into_response(),
        }
    }

    async fn readiness(shared: Arc<Shared>) -> Response<Body> {
        let checks = shared.executors.iter().map(|(name, executor)| async move {
            let result = tokio::time::timeout(Duration::from_secs(5), executor.ready()).await;
            let status = match result {
                Ok(Ok(())) => Ok(()),
                Ok(Err(err)) => Err(err.message().to_owned()),
                Err(_) => Err("no answer within 5s".to_owned()),
            };
            (name.to_owned(), status)
        });
        let results = futures_util::future::join_all(checks).await;
        let ready = results.iter().all(|(_, r)| r.is_ok());
        let providers: serde_json::Map<_, _> = results
            .into_iter()
            .map(|(name, r)| {
                (
                    name,
                    r.map_or_else(
                        |e| json!({ "status": "unavailable", "error": e }),
                        |()| json!({ "status": "ok" }),
                    ),
                )
            })
            .collect();
        let status = if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        let body = json!({ "status": if ready { "ready" } else { "unavailable" }, "providers": providers });
        json_response(status, serde_json::to_vec(&body).expect("json").into())
    }
}

fn json_response(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Body::full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Which route a request took, for metrics.
#[derive(Clone, Copy)]
enum Route {
    Chat,
    Embeddings,
    Models,
    Usage,
    Health,
    Metrics,
    Other,
}

impl Route {
    fn label(self) -> &'static str {
        match self {
            Self::Chat => "/v1/chat/completions",
            Self::Embeddings => "/v1/embeddings",
            Self::Models => "/v1/models",
            Self::Usage => "/v1/usage",
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
        let inner = this.inner;
        // A panic below becomes a 500 for this request instead of a dropped connection.
        let polled =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match inner.project() {
                InnerProj::Ready { response } => {
                    Poll::Ready(response.take().expect("polled after completion"))
                }
                InnerProj::Llm { future } => future.poll(cx).map(|Ok(response)| response),
                InnerProj::Boxed { future } => future.as_mut().poll(cx),
            }));
        let response = match polled {
            Ok(Poll::Ready(response)) => response,
            Ok(Poll::Pending) => return Poll::Pending,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(panic = %what, route = this.route.label(), "request handler panicked");
                GatewayError::internal("The gateway failed while handling this request.")
                    .into_response()
            }
        };
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

/// A `'static` label for the statuses the gateway answers with.
fn status_label(status: StatusCode) -> &'static str {
    const KNOWN: [(u16, &str); 16] = [
        (200, "200"),
        (400, "400"),
        (401, "401"),
        (403, "403"),
        (404, "404"),
        (405, "405"),
        (408, "408"),
        (413, "413"),
        (422, "422"),
        (429, "429"),
        (500, "500"),
        (502, "502"),
        (503, "503"),
        (504, "504"),
        (529, "529"),
        (409, "409"),
    ];
    KNOWN
        .iter()
        .find(|(code, _)| *code == status.as_u16())
        .map_or_else(
            || match status.as_u16() {
                200..=299 => "2xx",
                400..=499 => "4xx",
                _ => "5xx",
            },
            |(_, label)| label,
        )
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
        let path = req.uri().path();
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
            (&Method::GET, "/v1/models" | "/models") => (
                Route::Models,
                Inner::Ready {
                    response: Some(self.models(&req)),
                },
            ),
            (&Method::GET, "/health") => (
                Route::Health,
                Inner::Ready {
                    response: Some(json_response(
                        StatusCode::OK,
                        Bytes::from_static(b"{\"status\":\"ok\"}"),
                    )),
                },
            ),
            (&Method::GET, "/v1/usage" | "/usage") => (
                Route::Usage,
                Inner::Boxed {
                    future: Box::pin(Self::usage(
                        self.shared.clone(),
                        req.headers().clone(),
                        req.uri().query().map(str::to_owned),
                    )),
                },
            ),
            (&Method::GET, "/health/readiness") => (
                Route::Health,
                Inner::Boxed {
                    future: Box::pin(Self::readiness(self.shared.clone())),
                },
            ),
            (&Method::GET, "/metrics") => (
                Route::Metrics,
                Inner::Ready {
                    response: Some(self.metrics()),
                },
            ),
            (
                method,
                "/v1/models" | "/models" | "/v1/usage" | "/health" | "/health/readiness"
                | "/metrics",
            ) => (
                Route::Other,
                Inner::Ready {
                    response: Some(GatewayError::method_not_allowed(method, path).into_response()),
                },
            ),
            (method, _) => (
                Route::Other,
                Inner::Ready {
                    response: Some(GatewayError::route_not_found(method, path).into_response()),
                },
            ),
        };
        GatewayFuture {
            inner,
            route,
            started,
        }
    }
}

/// The process-wide Prometheus exporter, installed as the `metrics` recorder on first use.
/// `None` when the application installed a recorder of its own.
pub fn prometheus() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            const BUCKETS: [f64; 18] = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0, 60.0, 120.0, 300.0,
            ];
            let recorder = PrometheusBuilder::new()
                .set_buckets(&BUCKETS)
                .expect("buckets")
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            // Histograms are summarised on upkeep; run it so memory stays flat between scrapes.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let upkeep = handle.clone();
                runtime.spawn(async move {
                    let mut tick = tokio::time::interval(Duration::from_secs(5));
                    loop {
                        tick.tick().await;
                        upkeep.run_upkeep();
                    }
                });
            }
            Some(handle)
        })
        .clone()
}

/// Makes `x-request-id` values: a per-process random prefix and a counter.
#[derive(Clone)]
pub struct MakeRequestIds {
    prefix: u32,
    next: Arc<AtomicU64>,
}

impl Default for MakeRequestIds {
    fn default() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let prefix = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish() as u32;
        Self {
            prefix,
            next: Arc::new(AtomicU64::new(1)),
        }
    }
}

impl MakeRequestId for MakeRequestIds {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        // `req_` + 8 hex digits of the prefix + 12 of the counter, written without `format!`
        // (per request, it showed in the profile).
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut id = *b"req_00000000000000000000";
        let digits = (u128::from(self.prefix) << 48) | u128::from(n & 0xffff_ffff_ffff);
        for (i, byte) in id[4..].iter_mut().enumerate() {
            *byte = HEX[((digits >> (4 * (19 - i))) & 0xf) as usize];
        }
        HeaderValue::from_bytes(&id).ok().map(RequestId::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_the_prefix_and_a_counter_in_hex() {
        let mut ids = MakeRequestIds {
            prefix: 0xdeadbeef,
            next: Arc::new(AtomicU64::new(0x2a)),
        };
        let req = Request::new(());
        let id = ids.make_request_id(&req).unwrap();
        assert_eq!(id.header_value(), "req_deadbeef00000000002a");
        let id = ids.make_request_id(&req).unwrap();
        assert_eq!(id.header_value(), "req_deadbeef00000000002b");
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500() {
        let future: GatewayFuture<std::future::Ready<Result<Response<Body>, Infallible>>> =
            GatewayFuture {
                inner: Inner::Boxed {
                    future: Box::pin(async { panic!("boom") }),
                },
                route: Route::Other,
                started: Instant::now(),
            };
        let response = future.await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert!(std::str::from_utf8(&body)
            .unwrap()
            .contains("internal_error"));
    }
}
