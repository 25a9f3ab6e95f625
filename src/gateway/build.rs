//! Building a [`Gateway`] from a config, and the service that serves it.

use std::sync::Arc;

use bytes::Bytes;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanic;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::request_id::{PropagateRequestId, SetRequestId};
use tower_http::trace::{DefaultOnFailure, Trace, TraceLayer};

use super::admin::PanicResponse;
use super::request_id::{MakeRequestIds, RequestSpan};
use crate::alias::{Alias, AliasLayer, Aliases};
use crate::auth::{Auth, AuthLayer, Keys};
use crate::cache::{Cache, CacheLayer};
use crate::combo::{Combo, ComboLayer, Combos};
use crate::config::{Config, ConfigError};
use crate::executor::Executors;
use crate::idempotency::{Idempotency, IdempotencyLayer};
use crate::metering::{Meter, Metering, MeteringLayer};
use crate::parse::{Parse, ParseLayer};

/// The LLM routes' stack: auth → parse → metering → alias → idempotency → cache → combo →
/// executors.
pub(super) type LlmStack = Auth<Parse<Metering<Alias<Idempotency<Cache<Combo<Executors>>>>>>>;

/// The gateway: `POST /v1/chat/completions`, `POST /v1/embeddings`, `GET /v1/models`,
/// `GET /v1/usage`, `GET /health`, `GET /health/readiness`, `GET /metrics`.
///
/// Serve [`Gateway::into_service`] (request ids, tracing, panics as 500s) with
/// [`server::serve`](crate::server::serve), or mount it in an axum router.
#[derive(Clone)]
pub struct Gateway {
    pub(super) shared: Arc<Shared>,
    pub(super) llm: LlmStack,
}

pub(super) struct Shared {
    pub(super) keys: Keys,
    pub(super) meter: Option<Meter>,
    /// Whether a master key is configured (`/v1/usage` needs it).
    pub(super) master_key: bool,
    pub(super) models: Bytes,
    pub(super) executors: Executors,
    pub(super) prometheus: Option<PrometheusHandle>,
}

/// The gateway ready to serve: an incoming `x-request-id` is kept, otherwise one is made
/// (either way it is sent upstream and returned to the client); a span per request; a panic
/// while handling a request answers 500 instead of dropping the connection.
pub type GatewayService = SetRequestId<
    Trace<
        PropagateRequestId<CatchPanic<Gateway, PanicResponse>>,
        SharedClassifier<ServerErrorsAsFailures>,
        RequestSpan,
        (),
        (),
        (),
        (),
        DefaultOnFailure,
    >,
    MakeRequestIds,
>;

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
                prometheus: None,
                meter: metering.meter().cloned(),
                master_key: config.master_key.is_some(),
            }),
            llm,
        })
    }

    /// Serves `GET /metrics` from this Prometheus exporter (see [`install_prometheus`]);
    /// without one, `/metrics` answers 404. Install the recorder before building the
    /// gateway: its series are registered with the recorder present as it is built.
    ///
    /// [`install_prometheus`]: super::install_prometheus
    pub fn with_prometheus(mut self, handle: Option<PrometheusHandle>) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.prometheus = handle;
        } else {
            let shared = &self.shared;
            self.shared = Arc::new(Shared {
                keys: shared.keys.clone(),
                meter: shared.meter.clone(),
                master_key: shared.master_key,
                models: shared.models.clone(),
                executors: shared.executors.clone(),
                prometheus: handle,
            });
        }
        self
    }

    /// The gateway with `x-request-id` handling, a tracing span per request and panics
    /// caught, ready to serve.
    pub fn into_service(self) -> GatewayService {
        ServiceBuilder::new()
            .layer(tower_http::request_id::SetRequestIdLayer::x_request_id(
                MakeRequestIds::default(),
            ))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(RequestSpan)
                    .on_request(())
                    .on_response(())
                    .on_body_chunk(())
                    .on_eos(())
                    .on_failure(DefaultOnFailure::new().level(tracing::Level::WARN)),
            )
            .layer(tower_http::request_id::PropagateRequestIdLayer::x_request_id())
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(
                PanicResponse,
            ))
            .service(self)
    }

    /// Waits until every usage record of the requests served so far is written (for a
    /// graceful shutdown).
    pub async fn flush_usage(&self) {
        if let Some(meter) = &self.shared.meter {
            meter.flush().await;
        }
    }
}
