//! The layer: resolves `previous_response_id` before the request goes on, and stores the
//! response as it goes back.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::Either;
use http::{Method, Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, Limited};
use pin_project_lite::pin_project;
use serde_json::{Map, Value};
use tower::{Layer, Service, ServiceExt};

use super::conversation::Conversation;
use super::redis::RedisStore;
use super::settings::{ResponsesSettings, ResponsesStoreKind};
use super::store::{MemoryStore, ResponseStore};
use crate::auth::KeyId;
use crate::body::{Body, BoxError};
use crate::error::{ErrorKind, GatewayError};
use crate::request::{Endpoint, LlmRequest};
use crate::settings::SettingsError;
use crate::sse::{self, Decoder};
use crate::store::RedisSettings;
use crate::translate::BuiltinTools;

/// The stored response a request continued (`previous_response_id`), for the answer to
/// repeat: the request itself no longer names it once its conversation is spliced in.
#[derive(Debug, Clone)]
pub struct ResolvedPrevious(pub Arc<str>);

pub(crate) struct State {
    pub(crate) store: Arc<dyn ResponseStore>,
    max_conversation_bytes: usize,
    builtin_tools: BuiltinTools,
}

/// Layer that applies the [`Responses`] middleware.
#[derive(Clone)]
pub struct ResponsesLayer {
    state: Arc<State>,
}

impl std::fmt::Debug for ResponsesLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponsesLayer").finish_non_exhaustive()
    }
}

impl ResponsesLayer {
    /// The layer the settings describe (`redis` is the shared server, for `store: redis`).
    pub fn from_settings(
        settings: &ResponsesSettings,
        redis: Option<&RedisSettings>,
    ) -> Result<Self, SettingsError> {
        settings.validate()?;
        let store: Arc<dyn ResponseStore> = match settings.store {
            ResponsesStoreKind::Memory => {
                Arc::new(MemoryStore::new(settings.max_memory_bytes, settings.ttl))
            }
            ResponsesStoreKind::Redis => {
                let redis = redis.ok_or_else(|| {
                    SettingsError::new("store", "`redis` needs the top-level `redis` section")
                })?;
                Arc::new(
                    RedisStore::new(redis, &settings.key_prefix, settings.ttl)
                        .map_err(|e| SettingsError::new("store", e.to_string()))?,
                )
            }
        };
        Ok(Self::with_store(store, settings.max_conversation_bytes)
            .builtin_tools(settings.builtin_tools))
    }

    /// The layer over any store.
    pub fn with_store(store: Arc<dyn ResponseStore>, max_conversation_bytes: usize) -> Self {
        Self {
            state: Arc::new(State {
                store,
                max_conversation_bytes,
                builtin_tools: BuiltinTools::Reject,
            }),
        }
    }

    /// What a tool only OpenAI runs gets when the request is translated for another
    /// provider.
    #[must_use]
    pub fn builtin_tools(mut self, builtin_tools: BuiltinTools) -> Self {
        if let Some(state) = Arc::get_mut(&mut self.state) {
            state.builtin_tools = builtin_tools;
        } else {
            self.state = Arc::new(State {
                store: self.state.store.clone(),
                max_conversation_bytes: self.state.max_conversation_bytes,
                builtin_tools,
            });
        }
        self
    }

    /// The store, for the routes that read it (`GET`/`DELETE /v1/responses/{id}`).
    pub fn store(&self) -> Arc<dyn ResponseStore> {
        self.state.store.clone()
    }
}

impl<S> Layer<S> for ResponsesLayer {
    type Service = Responses<S>;

    fn layer(&self, inner: S) -> Responses<S> {
        Responses {
            inner,
            state: self.state.clone(),
        }
    }
}

/// The Responses API's state: a request with `previous_response_id` gets the stored
/// conversation spliced in before its own `input` (so every upstream, translated or not,
/// sees the whole conversation); an answer the client did not ask to keep out of the store
/// (`store: false`) is stored under its id, with the input that led to it. Other requests
/// pass untouched.
#[derive(Clone)]
pub struct Responses<S> {
    inner: S,
    state: Arc<State>,
}

/// Largest JSON answer read to store it (the translators read as much).
const MAX_JSON_ANSWER: usize = 64 * 1024 * 1024;

type BoxFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, GatewayError>> + Send>>;

impl<S> Service<Request<Bytes>> for Responses<S>
where
    S: Service<Request<Bytes>, Response = Response<Body>, Error = GatewayError>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = GatewayError;
    type Future = Either<S::Future, BoxFuture>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), GatewayError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let responses = req.method() == Method::POST
            && req
                .extensions()
                .get::<LlmRequest>()
                .is_some_and(|llm| llm.endpoint() == Endpoint::Responses);
        if !responses {
            return Either::Left(self.inner.call(req));
        }
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        Either::Right(Box::pin(respond(ready, self.state.clone(), req)))
    }
}

async fn respond<S>(
    inner: S,
    state: Arc<State>,
    mut req: Request<Bytes>,
) -> Result<Response<Body>, GatewayError>
where
    S: Service<Request<Bytes>, Response = Response<Body>, Error = GatewayError>,
{
    let owner = owner(&req);
    req.extensions_mut().insert(state.builtin_tools);
    // A stateless request (`store: false`, no `previous_response_id`: Codex's) is only
    // scanned, not parsed into a tree.
    let Ok(state_fields) = serde_json::from_slice::<StateFields>(req.body()) else {
        return inner.oneshot(req).await;
    };
    let keep = state_fields.store != Some(false);
    if !keep && state_fields.previous_response_id.is_none() {
        return inner.oneshot(req).await;
    }
    let Ok(mut request) = serde_json::from_slice::<Map<String, Value>>(req.body()) else {
        return inner.oneshot(req).await;
    };
    let mut input = super::conversation::input_items(request.get("input"));
    if let Some(id) = request
        .get("previous_response_id")
        .and_then(Value::as_str)
        .map(Arc::<str>::from)
    {
        let stored = state.store.get(&id).await.map_err(|e| {
            tracing::warn!(error = %e, "response store unreachable");
            GatewayError::new(
                ErrorKind::Internal,
                http::StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                "The response store is unavailable: the conversation cannot be continued now; retry later.",
            )
            .with_code("response_store_unavailable")
        })?;
        // Another key's response is as good as absent; an unknown id goes on as sent (an
        // upstream with its own store may know it; a translated one answers 404).
        if let Some(conversation) = stored
            .as_deref()
            .and_then(Conversation::decode)
            .filter(|c| *c.owner == *owner)
        {
            let mut whole = conversation.history();
            whole.append(&mut input);
            input = whole;
            request.remove("previous_response_id");
            request.insert("input".into(), Value::Array(input.clone()));
            let body = Bytes::from(serde_json::to_vec(&request).expect("a request serialises"));
            let llm = LlmRequest::parse(Endpoint::Responses, &body)?;
            *req.body_mut() = body;
            req.extensions_mut().insert(llm);
            req.extensions_mut().insert(ResolvedPrevious(id));
        }
    }
    let response = inner.oneshot(req).await?;
    if !keep || !response.status().is_success() {
        return Ok(response);
    }
    let recorder = Recorder {
        state,
        owner,
        input,
    };
    let (parts, body) = response.into_parts();
    if sse::is_event_stream(&parts.headers) {
        let body = RecordingBody {
            inner: body,
            decoder: Decoder::default(),
            recorder: Some(recorder),
            held: None,
            put: None,
        };
        return Ok(Response::from_parts(parts, Body::new(body)));
    }
    // A JSON answer is stored before the client has it: its next turn finds it.
    let provider = parts
        .headers
        .get("x-gateway-provider")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("upstream")
        .to_owned();
    let whole = Limited::new(body, MAX_JSON_ANSWER)
        .collect()
        .await
        .map_err(|e| {
            GatewayError::upstream_protocol(&provider, format_args!("answer unreadable: {e}"))
        })?
        .to_bytes();
    if let Some(put) = recorder.finish(&whole) {
        put.await;
    }
    Ok(Response::from_parts(parts, Body::full(whole)))
}

/// The fields of a Responses request that say whether it has state.
#[derive(serde::Deserialize)]
struct StateFields<'a> {
    store: Option<bool>,
    #[serde(borrow)]
    previous_response_id: Option<std::borrow::Cow<'a, str>>,
}

fn owner(req: &Request<Bytes>) -> Arc<str> {
    req.extensions()
        .get::<KeyId>()
        .map_or_else(|| Arc::from("anonymous"), |k| k.0.clone())
}

/// What a response is stored with.
struct Recorder {
    state: Arc<State>,
    owner: Arc<str>,
    input: Vec<Value>,
}

impl Recorder {
    /// The write of the conversation `response` (a `response` object, or an event holding
    /// one) ends; `None` if it is not a finished response or is too large to keep.
    fn finish(self, response: &[u8]) -> Option<Pin<Box<dyn Future<Output = ()> + Send>>> {
        let (id, value) = Conversation::encode(&self.owner, self.input, response)?;
        if value.len() > self.state.max_conversation_bytes {
            tracing::info!(id, bytes = value.len(), "response too large to store");
            return None;
        }
        let store = self.state.store.clone();
        Some(Box::pin(async move {
            if let Err(e) = store.put(&id, value).await {
                tracing::warn!(id, error = %e, "response not stored");
            }
        }))
    }
}

pin_project! {
    /// A Responses stream on its way to the client; the frame that completes the response
    /// is held until the response is stored, so the client's next turn finds it.
    struct RecordingBody<B> {
        #[pin]
        inner: B,
        decoder: Decoder,
        recorder: Option<Recorder>,
        held: Option<Frame<Bytes>>,
        put: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    }
}

impl<B> http_body::Body for RecordingBody<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        if let Some(put) = this.put.as_mut() {
            std::task::ready!(put.as_mut().poll(cx));
            *this.put = None;
            if let Some(held) = this.held.take() {
                return Poll::Ready(Some(Ok(held)));
            }
        }
        let frame = match std::task::ready!(this.inner.as_mut().poll_frame(cx)) {
            Some(Ok(frame)) => frame,
            other => return Poll::Ready(other),
        };
        let (Some(data), Some(_)) = (frame.data_ref(), this.recorder.as_ref()) else {
            return Poll::Ready(Some(Ok(frame)));
        };
        let mut last = None;
        this.decoder.feed(data, &mut |event| {
            if sse::response_event(event.name, &event.data) == Some(sse::ResponseEvent::Final) {
                last = Some(event.data.into_owned());
                return false;
            }
            true
        });
        let put = last.and_then(|event| this.recorder.take().and_then(|r| r.finish(&event)));
        let Some(mut put) = put else {
            return Poll::Ready(Some(Ok(frame)));
        };
        match put.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Ok(frame))),
            Poll::Pending => {
                *this.put = Some(put);
                *this.held = Some(frame);
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.held.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
