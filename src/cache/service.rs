//! The cache middleware.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt as _;
use http::header::{HeaderName, HeaderValue, AGE, CACHE_CONTROL, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use http_body::Body as _;
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::assemble::{Capture, Capturer};
use super::entry::{now_ms, to_sse, CachedResponse};
use super::inbound::{message_to_sse, response_to_sse};
use super::key::{analyze, raw_key, SemanticLimits};
use super::redis::RedisStore;
use super::semantic::{IndexSync, SemanticCache};
use super::settings::{CacheScope, CacheSettings, CacheStoreKind, Cacheable};
use super::store::{CacheStore, MemoryStore, StoreError};
use crate::auth::KeyId;
use crate::body::Body;
use crate::error::GatewayError;
use crate::executor::Target;
use crate::glob::Glob;
use crate::request::{end_phase, Endpoint, LlmRequest, Phases};
use crate::settings::SettingsError;
use crate::sse;
use crate::store::RedisSettings;
use crate::tap::Tap;
use crate::upstream::ClientSettings;

/// The response header with the cache's verdict: `hit`, `semantic-hit`, `miss`, `bypass`.
pub const CACHE_HEADER: &str = "x-gateway-cache";
/// The response header with the similarity of a semantic hit.
pub const SIMILARITY_HEADER: &str = "x-gateway-cache-similarity";
/// The request header that sets this answer's TTL (seconds, or `30s`, `10m`, `1h`),
/// capped by `cache.max_ttl`.
pub const TTL_HEADER: &str = "x-gateway-cache-ttl";

// The same names made once (a name looked up or inserted as a `&str` is parsed each time).
const CACHE_NAME: HeaderName = HeaderName::from_static(CACHE_HEADER);
const SIMILARITY_NAME: HeaderName = HeaderName::from_static(SIMILARITY_HEADER);
const TTL_NAME: HeaderName = HeaderName::from_static(TTL_HEADER);

/// What the cache did with a request, in the response's extensions (and in
/// `x-gateway-cache`): other layers read this, never the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheVerdict {
    /// Answered from an exact match.
    Hit,
    /// Answered from a semantic match.
    SemanticHit,
    /// Looked up, not found: answered upstream (and stored when whole).
    Miss,
    /// Not looked up (a store that failed, `Cache-Control`, a model not cached).
    Bypass,
}

impl CacheVerdict {
    /// The header value: `hit`, `semantic-hit`, `miss`, `bypass`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::SemanticHit => "semantic-hit",
            Self::Miss => "miss",
            Self::Bypass => "bypass",
        }
    }

    /// Whether the answer came from the cache.
    pub fn is_hit(self) -> bool {
        matches!(self, Self::Hit | Self::SemanticHit)
    }

    fn from_label(label: &str) -> Self {
        match label {
            "hit" => Self::Hit,
            "semantic-hit" => Self::SemanticHit,
            "miss" => Self::Miss,
            _ => Self::Bypass,
        }
    }
}

/// Marks a response served from the cache; in the response's extensions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CacheHit {
    /// The cosine similarity of a semantic hit; `None` for an exact one.
    pub similarity: Option<f32>,
}

/// Layer that applies the [`Cache`] middleware.
#[derive(Clone)]
pub struct CacheLayer {
    shared: Option<Arc<Shared>>,
}

struct Shared {
    config: CacheSettings,
    /// `config.models` as patterns.
    models: Vec<Glob>,
    store: Arc<dyn CacheStore>,
    semantic: Option<Arc<SemanticCache>>,
    /// With a shared store: keeps the semantic index of every instance in step.
    sync: Option<IndexSync>,
    limits: Option<SemanticLimits>,
    /// The request as sent (`raw_key`) → its canonical key, for byte-identical repeats.
    canonical_keys: moka::sync::Cache<[u8; 16], Arc<str>>,
    counters: Counters,
    /// When a store or embedder failure was last logged (ms since the epoch).
    last_warned: AtomicU64,
}

struct Counters {
    hit: metrics::Counter,
    semantic_hit: metrics::Counter,
    miss: metrics::Counter,
    bypass: metrics::Counter,
    stored: metrics::Counter,
    store_errors: metrics::Counter,
    embed_errors: metrics::Counter,
    entries: metrics::Gauge,
}

impl Counters {
    fn new() -> Self {
        let outcome =
            |o: &'static str| metrics::counter!("llm_tower_cache_requests_total", "outcome" => o);
        Self {
            hit: outcome("hit"),
            semantic_hit: outcome("semantic-hit"),
            miss: outcome("miss"),
            bypass: outcome("bypass"),
            stored: metrics::counter!("llm_tower_cache_stored_total"),
            store_errors: metrics::counter!("llm_tower_cache_store_errors_total"),
            embed_errors: metrics::counter!("llm_tower_cache_embed_errors_total"),
            entries: metrics::gauge!("llm_tower_cache_semantic_entries"),
        }
    }
}

impl CacheLayer {
    /// The layer with `store` and, optionally, a semantic cache (whose index `sync` keeps
    /// in step with other instances', when given).
    pub fn new(
        config: CacheSettings,
        store: Arc<dyn CacheStore>,
        semantic: Option<SemanticCache>,
        sync: Option<IndexSync>,
    ) -> Self {
        let semantic = semantic.map(Arc::new);
        let limits = semantic.as_ref().map(|_| SemanticLimits {
            max_messages: config.semantic.max_messages,
            max_text_chars: config.semantic.max_text_chars,
        });
        let shared = config.enabled.then(|| {
            // About one key per 4 KB of answers: ~130 bytes each, 4 MB at the default size.
            let canonical_keys = moka::sync::Cache::builder()
                .max_capacity((config.max_memory_bytes / 4096).max(1024))
                .time_to_live(config.max_ttl)
                .build();
            Arc::new(Shared {
                models: config
                    .models
                    .iter()
                    .filter_map(|m| Glob::new(m).ok())
                    .collect(),
                config,
                store,
                semantic,
                sync,
                limits,
                canonical_keys,
                counters: Counters::new(),
                last_warned: AtomicU64::new(0),
            })
        });
        if let Some(shared) = &shared {
            if let (Some(sync), Some(semantic)) = (&shared.sync, &shared.semantic) {
                let weak = Arc::downgrade(shared);
                sync.follow(Arc::downgrade(semantic), move |err| {
                    if let Some(shared) = weak.upgrade() {
                        shared.store_failed(&StoreError(format!("redis: {err}")));
                    }
                });
            }
        }
        Self { shared }
    }

    /// A layer that caches nothing (and adds nothing to a request).
    pub fn disabled() -> Self {
        Self { shared: None }
    }

    /// The layer `cache` describes (a no-op when `enabled` is false): its store in memory
    /// or in the Redis server of `redis` (which `store: redis` needs); an HTTP embedder's
    /// client set up by `upstream`. Errors name the field (`store`, `semantic.http.url`, …).
    pub fn from_settings(
        cache: &CacheSettings,
        redis: Option<&RedisSettings>,
        upstream: &ClientSettings,
    ) -> Result<Self, SettingsError> {
        cache.validate()?;
        if !cache.enabled {
            return Ok(Self { shared: None });
        }
        let semantic = SemanticCache::from_settings(&cache.semantic, upstream)
            .map_err(|e| e.within("semantic"))?;
        let (store, sync): (Arc<dyn CacheStore>, _) = match cache.store {
            CacheStoreKind::Memory => (Arc::new(MemoryStore::new(cache.max_memory_bytes)), None),
            CacheStoreKind::Redis => {
                let redis = redis.ok_or_else(|| {
                    SettingsError::new("store", "`redis` needs a `redis: { url: ... }` section")
                })?;
                let store = RedisStore::new(redis, &cache.key_prefix)
                    .map_err(|e| SettingsError::new("store", e.to_string()))?;
                let sync = semantic.as_ref().map(|_| {
                    IndexSync::new(
                        store.connection(),
                        &cache.key_prefix,
                        cache.semantic.max_entries,
                    )
                });
                (Arc::new(store), sync)
            }
        };
        Ok(Self::new(cache.clone(), store, semantic, sync))
    }
}

impl<S> Layer<S> for CacheLayer {
    type Service = Cache<S>;
    fn layer(&self, inner: S) -> Cache<S> {
        Cache {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// Answers a chat request from an earlier answer when it is safe to (the same canonical
/// request in the same scope; or, semantically, the same conversation with the last user
/// message reworded), and keeps the answers it lets through. Requests it does not touch go
/// straight to the inner service, with its own future.
#[derive(Clone)]
pub struct Cache<S> {
    inner: S,
    shared: Option<Arc<Shared>>,
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, GatewayError>> + Send>>;

pin_project! {
    /// The future of [`Cache`].
    pub struct CacheFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Direct { #[pin] future: F },
        Bypass { #[pin] future: F },
        Cached { future: BoxFuture },
    }
}

impl<F> Future for CacheFuture<F>
where
    F: Future<Output = Result<Response<Body>, GatewayError>>,
{
    type Output = Result<Response<Body>, GatewayError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Direct { future } => future.poll(cx),
            KindProj::Bypass { future } => future.poll(cx).map_ok(|mut response| {
                response
                    .headers_mut()
                    .insert(CACHE_NAME, HeaderValue::from_static("bypass"));
                response.extensions_mut().insert(CacheVerdict::Bypass);
                response
            }),
            KindProj::Cached { future } => future.as_mut().poll(cx),
        }
    }
}

/// What the cache does for one request.
struct Plan {
    /// The hash of the request as sent.
    raw: [u8; 16],
    key: Arc<str>,
    /// Whether the request was read (`analyze`): not when its bytes were seen before.
    analyzed: bool,
    semantic: Option<(String, String)>,
    lookup: bool,
    store: bool,
    ttl: Duration,
    stream: bool,
    include_usage: bool,
    endpoint: Endpoint,
}

impl Shared {
    /// The plan for `req`; `None` when the cache stays out of it.
    fn plan(&self, req: &Request<Bytes>, llm: &LlmRequest) -> Option<Plan> {
        let config = &self.config;
        let (mut lookup, mut store) = (true, true);
        for directive in req.headers().get_all(CACHE_CONTROL) {
            for d in directive.to_str().unwrap_or_default().split(',') {
                match d.trim().to_ascii_lowercase().as_str() {
                    "no-cache" => lookup = false,
                    "no-store" => store = false,
                    _ => {}
                }
            }
        }
        let ttl = match req.headers().get(TTL_NAME).and_then(|v| v.to_str().ok()) {
            Some(value) => parse_ttl(value)?.min(config.max_ttl),
            None => config.ttl,
        };
        if ttl.is_zero() {
            store = false;
        }
        if !(lookup || store) || !model_matches(&self.models, llm.model()) {
            return None;
        }
        let scope = self.scope(req);
        let raw = raw_key(llm.endpoint(), scope, llm.model(), req.body());
        let (key, analyzed, semantic) = match self.canonical_keys.get(&raw) {
            // Seen before, so cacheable (the same bytes, the same verdict).
            Some(key) => (key, false, None),
            None => {
                let analysis =
                    analyze(req.body(), llm.endpoint(), llm.model(), scope, self.limits)?;
                if config.cacheable == Cacheable::Deterministic && !analysis.deterministic {
                    return None;
                }
                (analysis.key.into(), true, analysis.semantic)
            }
        };
        Some(Plan {
            raw,
            key,
            analyzed,
            semantic,
            lookup,
            store,
            ttl,
            stream: llm.stream(),
            include_usage: llm.include_usage(),
            endpoint: llm.endpoint(),
        })
    }

    /// Whose answers `req` may be given.
    fn scope<'r>(&self, req: &'r Request<Bytes>) -> &'r str {
        match self.config.scope {
            CacheScope::Shared => "shared",
            CacheScope::Key => req
                .extensions()
                .get::<KeyId>()
                .map_or("anonymous", |k| &k.0),
        }
    }

    fn count(&self, verdict: &str) {
        match verdict {
            "hit" => self.counters.hit.increment(1),
            "semantic-hit" => self.counters.semantic_hit.increment(1),
            "miss" => self.counters.miss.increment(1),
            _ => self.counters.bypass.increment(1),
        }
    }

    /// Counts a failure, and logs it at most every 10 s.
    fn failed(&self, what: &str, error: &dyn std::fmt::Display) {
        let now = now_ms();
        let last = self.last_warned.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 10_000
            && self
                .last_warned
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(%error, "cache: {what}; requests go on without the cache");
        }
    }

    fn store_failed(&self, err: &StoreError) {
        self.counters.store_errors.increment(1);
        self.failed("store unavailable", err);
    }
}

/// A TTL in seconds, or with a unit (`500ms`, `30s`, `10m`, `1h`); `None` if malformed.
fn parse_ttl(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    humantime::parse_duration(value).ok()
}

fn model_matches(patterns: &[Glob], model: &str) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| p.matches(model))
}

impl<S> Service<Request<Bytes>> for Cache<S>
where
    S: Service<Request<Bytes>, Response = Response<Body>, Error = GatewayError>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    type Response = Response<Body>;
    type Error = GatewayError;
    type Future = CacheFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), GatewayError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let plan = match (&self.shared, req.extensions().get::<LlmRequest>()) {
            (Some(shared), Some(llm))
                if matches!(
                    llm.endpoint(),
                    Endpoint::ChatCompletions
                        | Endpoint::Embeddings
                        | Endpoint::Messages
                        | Endpoint::Responses
                ) =>
            {
                Some(shared.plan(&req, llm))
            }
            _ => None,
        };
        let kind = match plan {
            None => Kind::Direct {
                future: self.inner.call(req),
            },
            Some(None) => {
                self.shared.as_ref().expect("planned").count("bypass");
                Kind::Bypass {
                    future: self.inner.call(req),
                }
            }
            Some(Some(plan)) => {
                let shared = self.shared.clone().expect("planned");
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                Kind::Cached {
                    future: Box::pin(handle(shared, ready, req, plan)),
                }
            }
        };
        CacheFuture { kind }
    }
}

async fn handle<S>(
    shared: Arc<Shared>,
    mut inner: S,
    req: Request<Bytes>,
    mut plan: Plan,
) -> Result<Response<Body>, GatewayError>
where
    S: Service<Request<Bytes>, Response = Response<Body>, Error = GatewayError> + Send + 'static,
    S::Future: Send,
{
    let mut verdict = if plan.lookup { "miss" } else { "bypass" };
    let mut store = plan.store;
    let mut vector = None;
    let timer = Phases::start(&req, "cache lookup").filter(|_| plan.lookup);
    if plan.lookup {
        match shared.store.get(&plan.key).await {
            Ok(Some(entry)) => {
                if let Some(response) = serve(&shared, &entry, &plan, None) {
                    end_phase(timer, "hit");
                    if plan.analyzed {
                        shared.canonical_keys.insert(plan.raw, plan.key.clone());
                    }
                    return Ok(response);
                }
            }
            Ok(None) if !plan.analyzed && shared.semantic.is_some() => {
                // Known bytes whose answer expired: read the request for the semantic match.
                if let Some(llm) = req.extensions().get::<LlmRequest>() {
                    let scope = shared.scope(&req);
                    plan.semantic = analyze(
                        req.body(),
                        llm.endpoint(),
                        llm.model(),
                        scope,
                        shared.limits,
                    )
                    .and_then(|analysis| analysis.semantic);
                }
            }
            Ok(None) => {}
            Err(err) => {
                shared.store_failed(&err);
                (verdict, store) = ("bypass", false);
            }
        }
    }
    if let (true, Some(semantic), Some((partition, text))) =
        (verdict == "miss", &shared.semantic, &plan.semantic)
    {
        let (candidates, embedded) = semantic.candidates(partition, text).await;
        match embedded {
            Some(Ok(v)) => vector = Some(v),
            Some(Err(err)) => {
                shared.counters.embed_errors.increment(1);
                shared.failed("embedder unavailable", &err);
            }
            None => {}
        }
        for candidate in candidates {
            match shared.store.get(&candidate.key).await {
                Ok(Some(entry)) => {
                    if let Some(response) =
                        serve(&shared, &entry, &plan, Some(candidate.similarity))
                    {
                        end_phase(timer, "semantic hit");
                        return Ok(response);
                    }
                }
                Ok(None) => semantic.index().remove(partition, &candidate.key),
                Err(err) => {
                    shared.store_failed(&err);
                    (verdict, store) = ("bypass", false);
                    break;
                }
            }
        }
    }
    shared.count(verdict);
    end_phase(timer, verdict);
    let response = inner.call(req).await?;
    let (mut parts, body) = response.into_parts();
    parts
        .headers
        .insert(CACHE_NAME, HeaderValue::from_static(verdict));
    parts.extensions.insert(CacheVerdict::from_label(verdict));
    let max = shared.config.max_entry_bytes;
    let storable = store
        && parts.status == StatusCode::OK
        && body.size_hint().exact().is_none_or(|n| n <= max as u64);
    if !storable {
        return Ok(Response::from_parts(parts, body));
    }
    let capture = match (plan.endpoint, sse::is_event_stream(&parts.headers)) {
        (Endpoint::Messages, true) => Capture::MessageStream(Box::default()),
        (Endpoint::Messages, false) => Capture::MessageJson(BytesMut::new()),
        (Endpoint::Responses, true) => Capture::ResponseStream(Box::default()),
        (Endpoint::Responses, false) => Capture::ResponseJson(BytesMut::new()),
        (_, true) => Capture::Stream(Box::default()),
        (Endpoint::Embeddings, false) => Capture::Json(BytesMut::new(), "list"),
        (_, false) => Capture::Json(BytesMut::new(), "chat.completion"),
    };
    let (provider, model) = answered_by(&parts.extensions);
    let Plan {
        raw,
        key,
        semantic,
        ttl,
        ..
    } = plan;
    let capturer = Capturer::new(capture, max, move |completion: Bytes| {
        let entry = CachedResponse::new(completion, provider, model, ttl);
        shared.canonical_keys.insert(raw, key.clone());
        keep(shared, key, entry, semantic, vector);
    });
    Ok(Response::from_parts(
        parts,
        Body::new(Tap::new(body, capturer)),
    ))
}

/// The provider and model that answered: the executors' [`Target`].
fn answered_by(extensions: &http::Extensions) -> (String, String) {
    extensions
        .get::<Target>()
        .map(|t| (t.provider.to_string(), t.model.to_string()))
        .unwrap_or_default()
}

/// Stores a whole answer (and indexes it for semantic matching): at once when the store
/// and embedder answer synchronously (memory, hash), otherwise in the background.
fn keep(
    shared: Arc<Shared>,
    key: Arc<str>,
    entry: CachedResponse,
    semantic: Option<(String, String)>,
    vector: Option<Vec<f32>>,
) {
    let expires_ms = entry.expires_ms;
    let mut work = Box::pin(async move {
        if let Err(err) = shared.store.put(&key, entry).await {
            shared.store_failed(&err);
            return;
        }
        shared.counters.stored.increment(1);
        let (Some(cache), Some((partition, text))) = (&shared.semantic, semantic) else {
            return;
        };
        let vector = match vector {
            Some(v) => v,
            None => match cache.embedder().embed(&text).await {
                Ok(v) => v,
                Err(err) => {
                    shared.counters.embed_errors.increment(1);
                    shared.failed("embedder unavailable", &err);
                    return;
                }
            },
        };
        cache
            .index()
            .insert(&partition, &key, &text, vector.clone(), expires_ms);
        shared.counters.entries.set(cache.index().len() as f64);
        if let Some(sync) = &shared.sync {
            if let Err(err) = sync
                .publish(&partition, &key, &text, &vector, expires_ms)
                .await
            {
                shared.store_failed(&StoreError(format!("redis: {err}")));
            }
        }
    });
    if (&mut work).now_or_never().is_none() {
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(work)),
            Err(_) => tracing::warn!("cache: no runtime to store an answer on"),
        }
    }
}

/// The cached answer as this request wants it: JSON, or an SSE stream.
fn serve(
    shared: &Shared,
    entry: &CachedResponse,
    plan: &Plan,
    similarity: Option<f32>,
) -> Option<Response<Body>> {
    let (body, content_type) = if plan.stream {
        let stream = match plan.endpoint {
            Endpoint::Messages => message_to_sse(&entry.completion)?,
            Endpoint::Responses => response_to_sse(&entry.completion)?,
            _ => to_sse(&entry.completion, plan.include_usage)?,
        };
        (stream, "text/event-stream")
    } else {
        (entry.completion.clone(), "application/json")
    };
    let verdict = if similarity.is_some() {
        "semantic-hit"
    } else {
        "hit"
    };
    shared.count(verdict);
    let mut response = Response::new(Body::full(body));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_NAME, HeaderValue::from_static(verdict));
    headers.insert(AGE, HeaderValue::from(entry.age_secs(now_ms())));
    if let Some(similarity) = similarity {
        if let Ok(v) = HeaderValue::try_from(format!("{similarity:.4}")) {
            headers.insert(SIMILARITY_NAME, v);
        }
    }
    for (name, value) in [
        ("x-gateway-provider", &entry.provider),
        ("x-gateway-model", &entry.model),
    ] {
        if let Ok(v) = HeaderValue::try_from(value.as_str()) {
            headers.insert(name, v);
        }
    }
    if !entry.provider.is_empty() {
        response.extensions_mut().insert(Target {
            provider: entry.provider.as_str().into(),
            model: entry.model.as_str().into(),
        });
    }
    response.extensions_mut().insert(CacheHit { similarity });
    response
        .extensions_mut()
        .insert(CacheVerdict::from_label(verdict));
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_and_model_patterns() {
        assert_eq!(parse_ttl("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_ttl("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_ttl("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_ttl("soon"), None);
        assert!(model_matches(&[], "a/b"));
        let patterns = [Glob::new("mock/*").unwrap(), Glob::new("smart").unwrap()];
        assert!(model_matches(&patterns, "mock/echo"));
        assert!(model_matches(&patterns, "smart"));
        assert!(!model_matches(&patterns, "smarter"));
        assert!(!model_matches(&patterns, "up/echo"));
    }
}
