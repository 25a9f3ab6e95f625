//! The registry: one executor service per provider name, chosen per request.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Request, Response};
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceExt};

use super::health::ProviderHealth;
use super::inbound;
use super::metrics::UpstreamMetricsLayer;
use super::params::{DefaultParams, WithDefaults};
use super::{Target, UpstreamCall, UpstreamCalls};
use crate::body::Body;
use crate::error::GatewayError;
use crate::request::{Endpoint, LlmRequest};
use crate::settings::SettingsError;

const PROVIDER_HEADER: HeaderName = HeaderName::from_static("x-gateway-provider");
const MODEL_HEADER: HeaderName = HeaderName::from_static("x-gateway-model");

/// An executor as the registry holds it: any cloneable service answering a parsed request.
pub type BoxExecutor = BoxCloneSyncService<Request<Bytes>, Response<Body>, GatewayError>;

/// The future of [`Executors`] and of the built-in executors.
pub type ExecutorFuture =
    Pin<Box<dyn Future<Output = Result<Response<Body>, GatewayError>> + Send>>;

/// A readiness probe (`GET /health/readiness`): `Ok` when the upstream can serve.
pub type ReadinessCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), GatewayError>> + Send>> + Send + Sync>;

#[derive(Clone)]
struct Provider {
    service: BoxExecutor,
    ready: Option<ReadinessCheck>,
    /// Endpoints beyond chat and embeddings the service answers in their own API; others
    /// reach it translated to chat (see [`inbound`](super::inbound)).
    speaks: Vec<Endpoint>,
    health: Arc<ProviderHealth>,
}

/// The terminal service: every registered provider's executor, chosen per request.
///
/// A request goes to the provider its [`Target`] extension names (set by a layer such as
/// an alias or combo), or else to the one its own `provider/model` names; the executor
/// gets the request with the `Target` (provider and upstream model) in its extensions, and
/// the client gets `x-gateway-provider` / `x-gateway-model` and the `Target` on the
/// response. Each executor is wrapped in the upstream metrics layer.
#[derive(Clone)]
pub struct Executors {
    providers: Arc<HashMap<Arc<str>, Provider>>,
}

impl std::fmt::Debug for Executors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<_> = self.names().collect();
        names.sort_unstable();
        f.debug_struct("Executors")
            .field("providers", &names)
            .finish()
    }
}

/// Builds [`Executors`]: register each provider's service under its name.
#[derive(Default)]
pub struct ExecutorsBuilder {
    providers: HashMap<Arc<str>, Provider>,
    error: Option<SettingsError>,
    /// Health carried over from executors built before, by provider name.
    carried: HashMap<String, Arc<ProviderHealth>>,
}

impl ExecutorsBuilder {
    /// Registers `service` as provider `name` (models `name/...`): a built-in executor
    /// ([`OpenAiExecutor`](super::OpenAiExecutor), [`AnthropicExecutor`](super::AnthropicExecutor),
    /// …) or the application's own. A later registration of the same name replaces it.
    pub fn service<S>(mut self, name: &str, service: S) -> Self
    where
        S: Service<Request<Bytes>, Response = Response<Body>, Error = GatewayError>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        if name.is_empty() || name.contains('/') {
            self.error.get_or_insert(SettingsError::new(
                name,
                "a provider name must be non-empty and contain no `/`",
            ));
            return self;
        }
        let health = self.carried.remove(name).unwrap_or_default();
        let service = UpstreamMetricsLayer::with_health(name, health.clone()).layer(service);
        self.providers.insert(
            name.into(),
            Provider {
                service: BoxExecutor::new(service),
                ready: None,
                speaks: Vec::new(),
                health,
            },
        );
        self
    }

    /// Providers registered from now on under one of these names keep recording into
    /// that health (a rebuild after a config change that left them as they were).
    pub fn carry_health(mut self, health: HashMap<String, Arc<ProviderHealth>>) -> Self {
        self.carried = health;
        self
    }

    /// Gives provider `name` (registered before) a readiness probe; without one it counts
    /// as ready.
    pub fn readiness(mut self, name: &str, check: ReadinessCheck) -> Self {
        match self.providers.get_mut(name) {
            Some(provider) => provider.ready = Some(check),
            None => {
                self.error.get_or_insert(SettingsError::new(
                    name,
                    "a readiness probe for a provider that is not registered",
                ));
            }
        }
        self
    }

    /// Gives provider `name` (registered before) default request parameters: each is
    /// added to a chat or embeddings request that does not set it.
    pub fn params(mut self, name: &str, params: &DefaultParams) -> Self {
        if params.is_empty() {
            return self;
        }
        match self.providers.get_mut(name) {
            Some(provider) => {
                provider.service =
                    BoxExecutor::new(WithDefaults::new(provider.service.clone(), params));
            }
            None => {
                self.error.get_or_insert(SettingsError::new(
                    name,
                    "default parameters for a provider that is not registered",
                ));
            }
        }
        self
    }

    /// Says that provider `name` (registered before) answers `endpoint` in that endpoint's
    /// own API, so its requests reach the service as the client sent them (the model
    /// rewritten). A service answers chat completions and embeddings; any other endpoint
    /// it does not speak reaches it as a chat completion, and its answer goes back to the
    /// client translated (Anthropic Messages from a chat upstream, for instance).
    pub fn speaks(mut self, name: &str, endpoint: Endpoint) -> Self {
        match self.providers.get_mut(name) {
            Some(provider) => provider.speaks.push(endpoint),
            None => {
                self.error.get_or_insert(SettingsError::new(
                    name,
                    "an endpoint for a provider that is not registered",
                ));
            }
        }
        self
    }

    /// The registry, or the first registration that could not be used.
    pub fn build(self) -> Result<Executors, SettingsError> {
        if let Some(err) = self.error {
            return Err(err);
        }
        Ok(Executors {
            providers: Arc::new(self.providers),
        })
    }
}

impl Executors {
    /// An empty builder.
    pub fn builder() -> ExecutorsBuilder {
        ExecutorsBuilder::default()
    }

    /// Whether a provider of this name is registered.
    pub fn contains(&self, provider: &str) -> bool {
        self.providers.contains_key(provider)
    }

    /// The registered provider names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.providers.keys().map(|name| &**name)
    }

    /// Provider `name`'s recent health.
    pub fn health(&self, name: &str) -> Option<&Arc<ProviderHealth>> {
        self.providers.get(name).map(|p| &p.health)
    }

    /// Every provider's health by name (to carry into a rebuild).
    pub fn healths(&self) -> HashMap<String, Arc<ProviderHealth>> {
        self.providers
            .iter()
            .map(|(name, p)| (name.to_string(), p.health.clone()))
            .collect()
    }

    /// Every provider's readiness, by name; a probe that takes longer than `timeout` fails.
    pub async fn readiness(
        &self,
        timeout: std::time::Duration,
    ) -> Vec<(String, Result<(), GatewayError>)> {
        let checks = self.providers.iter().map(|(name, provider)| {
            let check = provider.ready.clone();
            async move {
                let result = match check {
                    Some(check) => match tokio::time::timeout(timeout, check()).await {
                        Ok(result) => result,
                        Err(_) => Err(GatewayError::upstream_timeout(name, "readiness", timeout)),
                    },
                    None => Ok(()),
                };
                (name.to_string(), result)
            }
        });
        futures_util::future::join_all(checks).await
    }

    /// Where `req` goes: its `Target`, or the provider named by its own model.
    fn route(&self, req: &Request<Bytes>) -> Result<(Target, &Provider), GatewayError> {
        let llm = req.extensions().get::<LlmRequest>().ok_or_else(|| {
            GatewayError::internal("request reached the executors without being parsed")
        })?;
        match req.extensions().get::<Target>() {
            Some(target) => {
                let provider = self
                    .providers
                    .get(&target.provider)
                    .ok_or_else(|| GatewayError::model_not_found(llm.model()))?;
                Ok((target.clone(), provider))
            }
            None => {
                let (provider, model) = llm
                    .model()
                    .split_once('/')
                    .ok_or_else(|| GatewayError::model_not_found(llm.model()))?;
                let (name, entry) = self
                    .providers
                    .get_key_value(provider)
                    .filter(|_| !model.is_empty())
                    .ok_or_else(|| GatewayError::model_not_found(llm.model()))?;
                let target = Target {
                    provider: name.clone(),
                    model: Arc::from(model),
                };
                Ok((target, entry))
            }
        }
    }
}

impl Service<Request<Bytes>> for Executors {
    type Response = Response<Body>;
    type Error = GatewayError;
    type Future = ExecutorFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), GatewayError>> {
        // Readiness is per provider, known only once the request is routed: each call
        // waits for its executor's (`oneshot`).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Bytes>) -> ExecutorFuture {
        let (target, provider) = match self.route(&req) {
            Ok(routed) => routed,
            Err(err) => return Box::pin(std::future::ready(Err(err))),
        };
        let service = provider.service.clone();
        let endpoint = req
            .extensions()
            .get::<LlmRequest>()
            .map_or(Endpoint::ChatCompletions, LlmRequest::endpoint);
        let translated = !matches!(endpoint, Endpoint::ChatCompletions | Endpoint::Embeddings)
            && !provider.speaks.contains(&endpoint);
        req.extensions_mut().insert(target.clone());
        let calls = req.extensions().get::<UpstreamCalls>().cloned();
        Box::pin(async move {
            // Timed only when traced: an untraced request reads no clock here.
            let log = calls.map(|calls| {
                (
                    calls,
                    std::time::SystemTime::now(),
                    tokio::time::Instant::now(),
                )
            });
            let answer = if translated {
                inbound::via_chat(service, req, &target.provider).await
            } else {
                service.oneshot(req).await
            };
            if let Some((calls, started, at)) = log {
                let (status, error) = match &answer {
                    Ok(response) => (response.status().as_u16(), None),
                    Err(err) => (err.status().as_u16(), Some(err.error_type().to_owned())),
                };
                calls.push(UpstreamCall {
                    target: target.clone(),
                    started,
                    elapsed: at.elapsed(),
                    status,
                    error,
                });
            }
            let mut response =
                answer.map_err(|e| e.with_upstream(&target.provider, &target.model))?;
            let headers = response.headers_mut();
            if let Ok(value) = HeaderValue::try_from(&*target.provider) {
                headers.insert(PROVIDER_HEADER, value);
            }
            if let Ok(value) = HeaderValue::try_from(&*target.model) {
                headers.insert(MODEL_HEADER, value);
            }
            response.extensions_mut().insert(target);
            Ok(response)
        })
    }
}

/// What an executor reads from a request the registry hands it: the parsed request (taken
/// out of the extensions) and the upstream model (the [`Target`]'s; without one, as when
/// an executor is served on its own, the request's model as sent).
pub fn take_request(req: &mut Request<Bytes>) -> Result<(LlmRequest, Arc<str>), GatewayError> {
    let llm = req.extensions_mut().remove::<LlmRequest>().ok_or_else(|| {
        GatewayError::internal("request reached an executor without being parsed")
    })?;
    let model = match req.extensions().get::<Target>() {
        Some(target) => target.model.clone(),
        None => Arc::from(llm.model()),
    };
    Ok((llm, model))
}

/// `impl Service<Request<Bytes>>` for a built-in executor with an
/// `async fn execute(&self, Request<Bytes>, &LlmRequest, &str)`.
macro_rules! executor_service {
    ($ty:ty) => {
        impl tower::Service<http::Request<bytes::Bytes>> for $ty {
            type Response = http::Response<crate::body::Body>;
            type Error = crate::error::GatewayError;
            type Future = crate::executor::ExecutorFuture;

            fn poll_ready(
                &mut self,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Result<(), Self::Error>> {
                // The shared upstream client queues internally: always ready.
                std::task::Poll::Ready(Ok(()))
            }

            fn call(&mut self, mut req: http::Request<bytes::Bytes>) -> Self::Future {
                let this = self.clone();
                Box::pin(async move {
                    let (llm, model) = crate::executor::take_request(&mut req)?;
                    this.execute(req, &llm, &model).await
                })
            }
        }
    };
}
pub(crate) use executor_service;
