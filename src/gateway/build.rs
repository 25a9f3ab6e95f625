//! Building a [`Gateway`] from a config, and the service that serves it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanic;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::request_id::{PropagateRequestId, SetRequestId};
use tower_http::trace::{DefaultOnFailure, Trace, TraceLayer};

use super::admin::PanicResponse;
use super::metrics::MetricsAuth;
use super::request_id::{MakeRequestIds, RequestSpan};
use crate::alias::{Alias, AliasLayer, Aliases};
use crate::auth::{Auth, AuthLayer, Keys};
use crate::cache::{Cache, CacheLayer};
use crate::combo::{Combo, ComboLayer, Combos};
use crate::executor::Executors;
use crate::idempotency::{Idempotency, IdempotencyLayer, IdempotencySettings};
use crate::metering::{Meter, Metering, MeteringLayer};
use crate::parse::{Parse, ParseLayer};
use crate::responses::{ResponseStore, Responses, ResponsesLayer, ResponsesSettings};
use crate::tenancy::{Limits, LimitsLayer, Tenancy};

/// What `GET /v1/models` lists, serialised once in OpenAI's and Anthropic's shapes.
pub(super) struct Models {
    /// `(id, owned_by)` in listing order.
    pub(super) ids: Vec<(String, String)>,
    pub(super) openai: Bytes,
    pub(super) anthropic: Bytes,
}

impl Models {
    pub(super) fn new(ids: Vec<(String, String)>) -> Self {
        let openai: Vec<_> = ids
            .iter()
            .map(|(id, owner)| openai_model(id, owner))
            .collect();
        let anthropic: Vec<_> = ids.iter().map(|(id, _)| anthropic_model(id)).collect();
        let openai = json!({ "object": "list", "data": openai });
        let anthropic = json!({
            "data": anthropic,
            "has_more": false,
            "first_id": ids.first().map(|(id, _)| id),
            "last_id": ids.last().map(|(id, _)| id),
        });
        Self {
            openai: serde_json::to_vec(&openai).expect("json").into(),
            anthropic: serde_json::to_vec(&anthropic).expect("json").into(),
            ids,
        }
    }
}

/// One model as OpenAI lists it.
pub(super) fn openai_model(id: &str, owner: &str) -> serde_json::Value {
    json!({ "id": id, "object": "model", "created": 0, "owned_by": owner })
}

/// One model as Anthropic lists it.
pub(super) fn anthropic_model(id: &str) -> serde_json::Value {
    json!({ "type": "model", "id": id, "display_name": id, "created_at": "1970-01-01T00:00:00Z" })
}

/// The LLM routes' stack: auth → parse → responses → metering → limits → alias →
/// idempotency → cache → combo → executors.
pub(super) type LlmStack =
    Auth<Parse<Responses<Metering<Limits<Alias<Idempotency<Cache<Combo<Executors>>>>>>>>>;

/// The gateway: `POST /v1/chat/completions`, `POST /v1/embeddings`, `POST /v1/messages`,
/// `POST /v1/messages/count_tokens`, `POST /v1/responses`, `GET`/`DELETE /v1/responses/{id}`,
/// `GET /v1/responses/{id}/input_items`, `GET /v1/models`, `GET /v1/models/{id}`, `GET /v1/usage`, `GET /health`, `GET /health/readiness`, `GET /metrics`.
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
    /// Whether `/metrics` needs the master key.
    pub(super) metrics_need_master: bool,
    pub(super) models: Arc<Models>,
    pub(super) executors: Executors,
    pub(super) prometheus: Option<PrometheusHandle>,
    /// Stored responses, for `GET`/`DELETE /v1/responses/{id}`.
    pub(super) responses: Arc<dyn ResponseStore>,
    /// Virtual keys, for `/key/*` and `/team/*`.
    pub(super) tenancy: Option<Tenancy>,
}

/// The gateway ready to serve: an incoming `x-request-id` is kept, otherwise one is made
/// (either way it is sent upstream and returned to the client); a span per request; a panic
/// while handling a request answers 500 instead of dropping the connection.
pub type GatewayService = Served<Gateway>;

/// A service with the gateway's request ids, tracing span and panic handling (see
/// [`served`]).
pub type Served<S> = SetRequestId<
    Trace<
        PropagateRequestId<CatchPanic<S, PanicResponse>>,
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

/// `service` with `x-request-id` handling, a tracing span per request and panics caught,
/// as [`Gateway::into_service`] does it.
pub fn served<S>(service: S) -> Served<S> {
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
        .service(service)
}

/// Builds a [`Gateway`] from layers built in code, each from its feature's settings; what
/// is not set stays off (no keys, no aliases or combos, no cache, no metering) except
/// idempotency, which answers `Idempotency-Key` from memory as it does by default in YAML.
///
/// ```
/// use llm_tower::executor::{Executors, MockExecutor};
/// use llm_tower::Gateway;
///
/// let executors = Executors::builder().service("mock", MockExecutor::new()).build().unwrap();
/// let gateway = Gateway::builder(executors)
///     .models([("mock", "echo")])
///     .max_body_bytes(1 << 20)
///     .build();
/// # let _ = gateway;
/// ```
pub struct GatewayBuilder {
    executors: Executors,
    keys: Keys,
    max_body_bytes: usize,
    body_read_timeout: Duration,
    responses: ResponsesLayer,
    metering: MeteringLayer,
    aliases: Aliases,
    idempotency: IdempotencyLayer,
    cache: CacheLayer,
    combos: Combos,
    models: Vec<(String, String)>,
    metrics_auth: Option<MetricsAuth>,
    tenancy: Option<Tenancy>,
}

impl GatewayBuilder {
    /// Client keys (none: every client may call).
    pub fn keys(mut self, keys: Keys) -> Self {
        self.keys = keys;
        self
    }

    /// Largest request body (413 beyond). Default 4 MiB.
    pub fn max_body_bytes(mut self, max: usize) -> Self {
        self.max_body_bytes = max;
        self
    }

    /// How long a client has to send its request body (408 beyond). Default 30 s.
    pub fn body_read_timeout(mut self, timeout: Duration) -> Self {
        self.body_read_timeout = timeout;
        self
    }

    /// Stored responses for the Responses API (`previous_response_id`, `GET
    /// /v1/responses/{id}`). Default: in memory.
    pub fn responses(mut self, layer: ResponsesLayer) -> Self {
        self.responses = layer;
        self
    }

    /// Usage metering.
    pub fn metering(mut self, layer: MeteringLayer) -> Self {
        self.metering = layer;
        self
    }

    /// Model aliases.
    pub fn aliases(mut self, aliases: Aliases) -> Self {
        self.aliases = aliases;
        self
    }

    /// `Idempotency-Key` handling.
    pub fn idempotency(mut self, layer: IdempotencyLayer) -> Self {
        self.idempotency = layer;
        self
    }

    /// The response cache.
    pub fn cache(mut self, layer: CacheLayer) -> Self {
        self.cache = layer;
        self
    }

    /// Combos.
    pub fn combos(mut self, combos: Combos) -> Self {
        self.combos = combos;
        self
    }

    /// Virtual keys: looked up after the configured [`keys`](Self::keys), enforced inside
    /// metering, managed through `/key/*` and `/team/*` (with the master key).
    pub fn tenancy(mut self, tenancy: Tenancy) -> Self {
        self.tenancy = Some(tenancy);
        self
    }

    /// Who may read `GET /metrics`. Default: the master key when keys are configured,
    /// anyone otherwise.
    pub fn metrics_auth(mut self, auth: MetricsAuth) -> Self {
        self.metrics_auth = Some(auth);
        self
    }

    /// What `GET /v1/models` lists beside the aliases and combos: `(provider, model)`.
    pub fn models<P: Into<String>, M: Into<String>>(
        mut self,
        models: impl IntoIterator<Item = (P, M)>,
    ) -> Self {
        self.models = models
            .into_iter()
            .map(|(p, m)| (p.into(), m.into()))
            .collect();
        self
    }

    /// The gateway.
    pub fn build(self) -> Gateway {
        let mut models: Vec<(String, String)> = self
            .models
            .iter()
            .map(|(provider, m)| (format!("{provider}/{m}"), provider.clone()))
            .collect();
        let mut named: Vec<_> = self
            .aliases
            .names()
            .map(|name| (name, "alias"))
            .chain(self.combos.names().map(|name| (name, "combo")))
            .collect();
        named.sort_unstable();
        models.extend(
            named
                .into_iter()
                .map(|(id, kind)| (id.to_owned(), format!("llm-tower-{kind}"))),
        );
        let models = Models::new(models);
        let meter = self.metering.meter().cloned();
        // Traced requests get a log of their layers' work, begun by auth.
        let traced = meter.as_ref().is_some_and(|m| m.tracer().is_some());
        let responses = self.responses.store();
        let keys = match &self.tenancy {
            Some(tenancy) => self.keys.with_lookup(tenancy.lookup()),
            None => self.keys,
        };
        let limits = self
            .tenancy
            .as_ref()
            .map_or_else(LimitsLayer::disabled, Tenancy::layer);
        let llm = ServiceBuilder::new()
            .layer(AuthLayer::new(keys.clone()).traced(traced))
            .layer(ParseLayer::new(self.max_body_bytes).body_read_timeout(self.body_read_timeout))
            .layer(self.responses)
            .layer(self.metering)
            .layer(limits)
            .layer(AliasLayer::new(self.aliases))
            .layer(self.idempotency)
            .layer(self.cache)
            .layer(ComboLayer::new(self.combos))
            .service(self.executors.clone());
        Gateway {
            shared: Arc::new(Shared {
                master_key: keys.has_master(),
                metrics_need_master: match self.metrics_auth {
                    Some(auth) => auth == MetricsAuth::Master,
                    None => keys.is_enabled(),
                },
                keys,
                models: Arc::new(models),
                executors: self.executors,
                prometheus: None,
                meter,
                responses,
                tenancy: self.tenancy,
            }),
            llm,
        }
    }
}

impl Gateway {
    /// A builder over `executors` (see [`GatewayBuilder`]); [`Gateway::from_config`] builds
    /// one from the YAML config.
    pub fn builder(executors: Executors) -> GatewayBuilder {
        GatewayBuilder {
            executors,
            keys: Keys::new(None, Vec::new()),
            max_body_bytes: 4 * 1024 * 1024,
            body_read_timeout: Duration::from_secs(30),
            responses: ResponsesLayer::from_settings(&ResponsesSettings::default(), None)
                .expect("the default responses settings are valid"),
            metering: MeteringLayer::disabled(),
            aliases: Aliases::default(),
            idempotency: IdempotencyLayer::from_settings(&IdempotencySettings::default(), None)
                .expect("the default idempotency settings are valid"),
            cache: CacheLayer::disabled(),
            combos: Combos::default(),
            models: Vec::new(),
            metrics_auth: None,
            tenancy: None,
        }
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
                metrics_need_master: shared.metrics_need_master,
                models: shared.models.clone(),
                executors: shared.executors.clone(),
                prometheus: handle,
                responses: shared.responses.clone(),
                tenancy: shared.tenancy.clone(),
            });
        }
        self
    }

    /// Checks that a request presents the master key (`what` names the request in the
    /// error): 401 without a valid key, 403 for another key or without a master key.
    pub async fn authorize_master(
        &self,
        headers: &http::HeaderMap,
        what: &str,
    ) -> Result<(), crate::GatewayError> {
        let key = self.shared.keys.authorize(headers).await.map(|a| a.id);
        super::admin::is_master(&self.shared, key, what)
    }

    /// The providers' executors.
    pub fn executors(&self) -> &Executors {
        &self.shared.executors
    }

    /// The Prometheus exporter `GET /metrics` renders, if any.
    pub fn prometheus(&self) -> Option<&PrometheusHandle> {
        self.shared.prometheus.as_ref()
    }

    /// The gateway with `x-request-id` handling, a tracing span per request and panics
    /// caught, ready to serve.
    pub fn into_service(self) -> GatewayService {
        served(self)
    }

    /// Waits until every usage record of the requests served so far is written (for a
    /// graceful shutdown).
    pub async fn flush_usage(&self) {
        if let Some(meter) = &self.shared.meter {
            meter.flush().await;
        }
        if let Some(tenancy) = &self.shared.tenancy {
            tenancy.directory().flush().await;
        }
    }
}
