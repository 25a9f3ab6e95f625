//! The idempotency middleware.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::Body as _;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tower::{Layer, Service};

use super::key::{fingerprint, idempotency_key, storage_key, Fingerprint};
use super::recording::{is_sse, End, Recorder, Recording};
use super::redis::RedisStore;
use super::settings::{FailMode, IdempotencySettings, IdempotencyStoreKind, InFlightPolicy};
use super::store::{IdempotencyStore, Lock, MemoryStore, StoreError, StoredResponse};
use crate::auth::KeyId;
use crate::body::Body;
use crate::error::{ErrorKind, GatewayError};
use crate::future::LayerFuture;
use crate::protocol::Protocol;
use crate::request::{end_phase, LlmRequest, PhaseTimer, Phases};
use crate::settings::SettingsError;
use crate::sse;
use crate::store::RedisSettings;
use crate::tap::Tap;

/// Marks a response that was not executed for this request but replayed (or joined) from
/// an earlier one with the same `Idempotency-Key`; in the response's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdempotentReplay;

/// The response header that marks a replay.
const REPLAYED: &str = "idempotency-replayed";

/// The response headers kept with a stored response and replayed with it.
const REPLAYED_HEADERS: [&str; 7] = [
    "content-type",
    "x-gateway-provider",
    "x-gateway-model",
    "x-gateway-attempts",
    "x-litellm-response-cost",
    "x-upstream-request-id",
    "retry-after",
];

/// Layer that applies the [`Idempotency`] middleware.
#[derive(Clone)]
pub struct IdempotencyLayer {
    shared: Option<Arc<Shared>>,
}

struct Shared {
    config: IdempotencySettings,
    store: Arc<dyn IdempotencyStore>,
    /// Keys executing in this process, with their responses as recorded so far.
    in_flight: Mutex<HashMap<String, Arc<Recording>>>,
    counters: Counters,
}

struct Counters {
    executed: metrics::Counter,
    replayed: metrics::Counter,
    joined: metrics::Counter,
    rejected: metrics::Counter,
    store_errors: metrics::Counter,
}

impl Counters {
    fn new() -> Self {
        let outcome = |o: &'static str| metrics::counter!("llm_tower_idempotency_requests_total", "outcome" => o);
        Self {
            executed: outcome("executed"),
            replayed: outcome("replayed"),
            joined: outcome("joined"),
            rejected: outcome("rejected"),
            store_errors: metrics::counter!("llm_tower_idempotency_store_errors_total"),
        }
    }
}

impl IdempotencyLayer {
    /// The layer with `store`.
    pub fn new(config: IdempotencySettings, store: Arc<dyn IdempotencyStore>) -> Self {
        Self {
            shared: config.enabled.then(|| {
                Arc::new(Shared {
                    config,
                    store,
                    in_flight: Mutex::new(HashMap::new()),
                    counters: Counters::new(),
                })
            }),
        }
    }

    /// The layer `idem` describes, its store in memory or in the Redis server of `redis`
    /// (which `store: redis` needs).
    pub fn from_settings(
        idem: &IdempotencySettings,
        redis: Option<&RedisSettings>,
    ) -> Result<Self, SettingsError> {
        idem.validate()?;
        let store: Arc<dyn IdempotencyStore> = match idem.store {
            IdempotencyStoreKind::Memory => {
                Arc::new(MemoryStore::new(idem.max_memory_bytes, idem.ttl))
            }
            IdempotencyStoreKind::Redis => {
                let redis = redis.ok_or_else(|| {
                    SettingsError::new("store", "`redis` needs a `redis: { url: ... }` section")
                })?;
                Arc::new(
                    RedisStore::new(redis, &idem.key_prefix)
                        .map_err(|e| SettingsError::new("store", e.to_string()))?,
                )
            }
        };
        Ok(Self::new(idem.clone(), store))
    }
}

impl<S> Layer<S> for IdempotencyLayer {
    type Service = Idempotency<S>;
    fn layer(&self, inner: S) -> Idempotency<S> {
        Idempotency {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// Makes a request with an `Idempotency-Key` safe to retry: it reaches the upstream once;
/// duplicates get the same response (replayed, or joined live while it is produced).
/// Requests without the header go straight to the inner service, with its own future.
#[derive(Clone)]
pub struct Idempotency<S> {
    inner: S,
    shared: Option<Arc<Shared>>,
}

/// The future of [`Idempotency`].
pub type IdempotencyFuture<F> = LayerFuture<F>;

impl<S> Service<Request<Bytes>> for Idempotency<S>
where
    S: Service<Request<Bytes>, Response = Response<Body>, Error = GatewayError>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    type Response = Response<Body>;
    type Error = GatewayError;
    type Future = IdempotencyFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), GatewayError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let key = match &self.shared {
            None => Ok(None),
            Some(_) => idempotency_key(req.headers()),
        };
        match key {
            Ok(None) => LayerFuture::direct(self.inner.call(req)),
            Err(err) => LayerFuture::boxed(std::future::ready(Err(err))),
            Ok(Some(key)) => {
                let scope = req
                    .extensions()
                    .get::<KeyId>()
                    .map_or("anonymous", |k| &k.0);
                let key = storage_key(scope, key);
                let fingerprint = fingerprint(req.method(), req.uri().path(), req.body());
                let protocol = req
                    .extensions()
                    .get::<LlmRequest>()
                    .map_or(Protocol::OpenAi, |llm| llm.endpoint().protocol());
                let shared = self.shared.clone().expect("checked above");
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                LayerFuture::boxed(handle(shared, ready, req, key, (fingerprint, protocol)))
            }
        }
    }
}

async fn handle<S>(
    shared: Arc<Shared>,
    inner: S,
    req: Request<Bytes>,
    key: String,
    (fingerprint, protocol): (Fingerprint, Protocol),
) -> Result<Response<Body>, GatewayError>
where
    S: Service<Request<Bytes>, Response = Response<Body>, Error = GatewayError> + Send + 'static,
    S::Future: Send,
{
    let mut timer = Phases::start(&req, "idempotency");
    loop {
        let (recording, leader) = {
            let mut in_flight = shared.in_flight.lock().expect("not poisoned");
            match in_flight.get(&key) {
                Some(recording) => (recording.clone(), false),
                None => {
                    let recording = Recording::new(fingerprint, protocol);
                    in_flight.insert(key.clone(), recording.clone());
                    (recording, true)
                }
            }
        };
        if leader {
            let guard = Leader {
                shared: shared.clone(),
                key,
                recording,
                token: None,
                armed: true,
                phase: timer.take(),
            };
            return lead(guard, inner, req, fingerprint).await;
        }
        if recording.fingerprint != fingerprint {
            shared.counters.rejected.increment(1);
            end_phase(timer, "rejected");
            return Err(mismatch());
        }
        if shared.config.in_flight == InFlightPolicy::Reject && recording.ended().is_none() {
            shared.counters.rejected.increment(1);
            end_phase(timer, "rejected");
            return Err(in_progress());
        }
        match recording.join().await {
            Some(response) => {
                shared.counters.joined.increment(1);
                end_phase(timer.take(), "joined");
                return Ok(mark_replayed(response));
            }
            // The first request left before its answer started: start over, perhaps as
            // the one that executes.
            None => tokio::task::yield_now().await,
        }
    }
}

/// The request that executes a key (or finds its stored answer) for this process. If it
/// is dropped before it has an answer, duplicates waiting on it start over.
struct Leader {
    shared: Arc<Shared>,
    key: String,
    recording: Arc<Recording>,
    /// The store's lock, once held.
    token: Option<String>,
    armed: bool,
    /// The trace's phase, until the key is answered or executed.
    phase: Option<PhaseTimer>,
}

impl Leader {
    /// Answers with `response` made here (a replay, an error), for duplicates too.
    fn answer(mut self, status: StatusCode, headers: HeaderMap, body: Bytes) {
        self.recording.fill(status, headers, body);
        self.release(None);
    }

    fn fail(mut self, err: GatewayError) -> Result<Response<Body>, GatewayError> {
        end_phase(self.phase.take(), "rejected");
        let protocol = self.recording.protocol;
        let response = err.clone().into_response_as(protocol);
        let headers = response.headers().clone();
        self.answer(response.status(), headers, err.to_json_as(protocol));
        Err(err)
    }

    fn replay(
        mut self,
        stored: StoredResponse,
        fingerprint: &Fingerprint,
    ) -> Result<Response<Body>, GatewayError> {
        if stored.fingerprint != *fingerprint {
            self.shared.counters.rejected.increment(1);
            return self.fail(mismatch());
        }
        self.shared.counters.replayed.increment(1);
        end_phase(self.phase.take(), "replayed");
        let headers: HeaderMap = stored.headers.into_iter().collect();
        let mut response = Response::new(Body::full(stored.body.clone()));
        *response.status_mut() = stored.status;
        *response.headers_mut() = headers.clone();
        self.answer(stored.status, headers, stored.body);
        Ok(mark_replayed(response))
    }

    /// Stores `response` (if any), releases the lock and forgets the key here, in the
    /// background; the key stays joinable until the store has the response.
    fn release(&mut self, response: Option<StoredResponse>) {
        self.armed = false;
        let shared = self.shared.clone();
        let key = std::mem::take(&mut self.key);
        let recording = self.recording.clone();
        let forget = move |shared: &Shared, key: &str| {
            let mut in_flight = shared.in_flight.lock().expect("not poisoned");
            if in_flight
                .get(key)
                .is_some_and(|r| Arc::ptr_eq(r, &recording))
            {
                in_flight.remove(key);
            }
        };
        // No lock held (a replay, an answer made here): nothing to tell the store.
        let Some(token) = self.token.take() else {
            forget(&shared, &key);
            return;
        };
        let finish = async move {
            if let Err(err) = shared
                .store
                .complete(&key, &token, response, shared.config.ttl)
                .await
            {
                shared.counters.store_errors.increment(1);
                tracing::warn!(error = %err, "idempotency store: could not complete a key");
            }
            forget(&shared, &key);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(finish)),
            Err(_) => tracing::warn!("idempotency: no runtime to release a key on"),
        }
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        if self.armed {
            self.recording.end(End::Abandoned);
            self.release(None);
        }
    }
}

async fn lead<S>(
    mut leader: Leader,
    inner: S,
    req: Request<Bytes>,
    fingerprint: Fingerprint,
) -> Result<Response<Body>, GatewayError>
where
    S: Service<Request<Bytes>, Response = Response<Body>, Error = GatewayError> + Send + 'static,
    S::Future: Send,
{
    let shared = leader.shared.clone();
    let config = &shared.config;
    match shared.store.get(&leader.key).await {
        Ok(Some(stored)) => return leader.replay(stored, &fingerprint),
        Ok(None) => {}
        Err(err) => {
            store_failed(&shared, &err)?;
            return execute(leader, inner, req).await;
        }
    }
    let started = Instant::now();
    let mut backoff = Duration::from_millis(20);
    loop {
        match shared
            .store
            .lock(&leader.key, &fingerprint, config.lock_ttl)
            .await
        {
            Ok(Lock::Acquired(token)) => {
                leader.token = Some(token);
                break;
            }
            Ok(Lock::Held(Some(other))) if other != fingerprint => {
                shared.counters.rejected.increment(1);
                return leader.fail(mismatch());
            }
            Ok(Lock::Held(_)) if config.in_flight == InFlightPolicy::Reject => {
                shared.counters.rejected.increment(1);
                return leader.fail(in_progress());
            }
            // Executing on another instance: poll for its answer; if its lock goes away
            // without one (it failed, or the instance died), take over.
            Ok(Lock::Held(_)) => {
                if started.elapsed() >= config.wait_timeout {
                    shared.counters.rejected.increment(1);
                    return leader.fail(in_progress());
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                match shared.store.get(&leader.key).await {
                    Ok(Some(stored)) => return leader.replay(stored, &fingerprint),
                    Ok(None) => {}
                    Err(err) => {
                        store_failed(&shared, &err)?;
                        break;
                    }
                }
            }
            Err(err) => {
                store_failed(&shared, &err)?;
                break;
            }
        }
    }
    // Another instance may have finished between our look and our lock: look again.
    if leader.token.as_deref().is_some_and(|t| !t.is_empty()) {
        match shared.store.get(&leader.key).await {
            Ok(Some(stored)) => return leader.replay(stored, &fingerprint),
            Ok(None) => {}
            Err(err) => store_failed(&shared, &err)?,
        }
    }
    execute(leader, inner, req).await
}

/// Open: count, log and go on without the store. Closed: 503.
fn store_failed(shared: &Shared, err: &StoreError) -> Result<(), GatewayError> {
    shared.counters.store_errors.increment(1);
    tracing::warn!(error = %err, mode = ?shared.config.on_store_error, "idempotency store unavailable");
    match shared.config.on_store_error {
        FailMode::Open => Ok(()),
        FailMode::Closed => Err(GatewayError::new(
            ErrorKind::Internal,
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            "The idempotency store is unavailable; retry later.",
        )
        .with_code("idempotency_store_unavailable")),
    }
}

async fn execute<S>(
    mut leader: Leader,
    mut inner: S,
    req: Request<Bytes>,
) -> Result<Response<Body>, GatewayError>
where
    S: Service<Request<Bytes>, Response = Response<Body>, Error = GatewayError> + Send + 'static,
    S::Future: Send,
{
    let shared = leader.shared.clone();
    shared.counters.executed.increment(1);
    end_phase(leader.phase.take(), "executed");
    // A shared store's lock expires unless renewed while the request runs.
    let renewal = leader
        .token
        .clone()
        .filter(|t| !t.is_empty())
        .map(|token| renew(shared.clone(), leader.key.clone(), token));

    let response = match inner.call(req).await {
        Ok(response) => response,
        Err(err) => err.into_response_as(leader.recording.protocol),
    };
    let (mut parts, body) = response.into_parts();
    let status = parts.status;
    // Failures a retry may not repeat are not kept: 5xx, timeouts, rate limits.
    let mut storable = !(status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS);
    let max = shared.config.max_response_bytes;
    if body.size_hint().exact().is_some_and(|n| n > max as u64) {
        storable = false;
    }
    if !storable {
        parts
            .headers
            .insert("idempotency-stored", HeaderValue::from_static("false"));
    }
    leader
        .recording
        .set_head(status, replayed_headers(&parts.headers));

    let recording = leader.recording.clone();
    let fingerprint = recording.fingerprint;
    let recorder = Recorder::new(recording.clone(), move |end| {
        if let Some(renewal) = renewal {
            renewal.abort();
        }
        let stored = (end == End::Complete && storable)
            .then(|| recording.snapshot())
            .flatten()
            .filter(|(_, headers, body)| {
                body.len() <= max && (!is_sse(headers) || sse::ends_whole(body))
            })
            .map(|(status, headers, body)| StoredResponse {
                fingerprint,
                status,
                headers: headers
                    .iter()
                    .map(|(n, v)| (n.clone(), v.clone()))
                    .collect(),
                body,
            });
        leader.release(stored);
    });
    let body = Body::new(Tap::new(body, recorder));
    Ok(Response::from_parts(parts, body))
}

fn renew(shared: Arc<Shared>, key: String, token: String) -> JoinHandle<()> {
    tokio::spawn(async move {
        let every = shared.config.lock_ttl / 3;
        loop {
            tokio::time::sleep(every).await;
            match shared
                .store
                .refresh(&key, &token, shared.config.lock_ttl)
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!("idempotency: lost the lock of a key still executing");
                    return;
                }
                Err(err) => {
                    shared.counters.store_errors.increment(1);
                    tracing::warn!(error = %err, "idempotency: could not renew a lock");
                }
            }
        }
    })
}

fn replayed_headers(headers: &HeaderMap) -> HeaderMap {
    let mut kept = HeaderMap::new();
    for name in REPLAYED_HEADERS {
        if let Some(value) = headers.get(name) {
            kept.insert(HeaderName::from_static(name), value.clone());
        }
    }
    if !kept.contains_key(CONTENT_TYPE) {
        kept.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    kept
}

fn mark_replayed(mut response: Response<Body>) -> Response<Body> {
    response
        .headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    response.extensions_mut().insert(IdempotentReplay);
    response
}

fn mismatch() -> GatewayError {
    GatewayError::new(
        ErrorKind::InvalidRequest,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request_error",
        "This Idempotency-Key was already used with a different request; use a new key for a new request.",
    )
    .with_param("idempotency-key")
    .with_code("idempotency_key_reused")
}

fn in_progress() -> GatewayError {
    GatewayError::new(
        ErrorKind::InvalidRequest,
        StatusCode::CONFLICT,
        "invalid_request_error",
        "A request with this Idempotency-Key is still in progress; retry once it has finished.",
    )
    .with_param("idempotency-key")
    .with_code("idempotency_request_in_progress")
}
