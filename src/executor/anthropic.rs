//! Executor for the Anthropic Messages API (`kind: anthropic`).
//!
//! Clients of Anthropic's own API (`/v1/messages`, `/v1/messages/count_tokens`) pass
//! through: their bytes go upstream with only the model rewritten, and the answer comes back
//! frame by frame. Chat Completions clients are translated: each request to
//! `POST {api_base}/messages` (see [`translate`](crate::translate) for the rules), the
//! answer back to a `chat.completion`, a stream event by event to `chat.completion.chunk`s,
//! and errors to OpenAI's shape with their status (529 → 503).
//!
//! ```
//! use llm_tower::executor::{AnthropicExecutor, AnthropicSettings, Executors};
//! use llm_tower::upstream::{ClientSettings, UpstreamClient};
//!
//! # fn demo() -> Result<(), llm_tower::SettingsError> {
//! let defaults = ClientSettings::default();
//! let settings = AnthropicSettings::default().api_key(Some("sk-ant-x".into())).max_tokens(2048u32);
//! let claude = AnthropicExecutor::new("claude", &settings, &defaults, UpstreamClient::new(&defaults)?)?;
//! let executors = Executors::builder().service("claude", claude).build()?;
//! # let _ = executors; Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Method, Request, Response};
use serde::Deserialize;

use super::translated::{json_response, stream_response};
use super::DefaultParams;
use crate::body::Body;
use crate::error::GatewayError;
use crate::protocol::Protocol;
use crate::request::{Endpoint as Route, LlmRequest};
use crate::settings::{setters, SettingsError};
use crate::translate::anthropic::{self, AnthropicStream, ThinkingStore};
use crate::translate::Chat;
use crate::upstream::{
    clean_response_headers, Address, ClientSettings, HttpUpstream, UpstreamClient,
};

/// The Anthropic Messages API (`kind: anthropic`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct AnthropicSettings {
    /// Base URL below which `/messages` lives. Default `https://api.anthropic.com/v1`.
    pub api_base: String,
    /// Sent as `x-api-key`.
    pub api_key: Option<String>,
    /// Extra headers sent with every request (e.g. `anthropic-beta`).
    pub headers: BTreeMap<String, String>,
    /// What `GET /v1/models` lists for this provider.
    pub models: Vec<String>,
    /// `max_tokens` sent when the client gives neither `max_tokens` nor
    /// `max_completion_tokens` (Anthropic requires one). Default 4096.
    pub max_tokens: u32,
    /// The `anthropic-version` header. Default `2023-06-01`.
    pub version: String,
    /// Overrides the client's `first_byte_timeout` for this provider.
    #[serde(with = "humantime_serde")]
    pub first_byte_timeout: Option<Duration>,
    /// Overrides the client's `idle_timeout` for this provider.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Option<Duration>,
    /// Request parameters sent when the client's chat or embeddings request does not set
    /// them (`temperature`, `max_tokens`, …).
    pub params: DefaultParams,
}

impl Default for AnthropicSettings {
    fn default() -> Self {
        Self {
            api_base: "https://api.anthropic.com/v1".to_owned(),
            api_key: None,
            headers: BTreeMap::new(),
            models: Vec::new(),
            max_tokens: 4096,
            version: "2023-06-01".to_owned(),
            first_byte_timeout: None,
            idle_timeout: None,
            params: DefaultParams::new(),
        }
    }
}

setters!(AnthropicSettings {
    /// Base URL below which `/messages` lives.
    api_base: String,
    /// Sent as `x-api-key`.
    api_key: Option<String>,
    /// Extra headers sent with every request.
    headers: BTreeMap<String, String>,
    /// What `GET /v1/models` lists.
    models: Vec<String>,
    /// The default `max_tokens`.
    max_tokens: u32,
    /// The `anthropic-version` header.
    version: String,
    /// Overrides the client's `first_byte_timeout`.
    first_byte_timeout: Option<Duration>,
    /// Overrides the client's `idle_timeout`.
    idle_timeout: Option<Duration>,
    /// Request parameters sent when the client does not set them.
    params: DefaultParams,
});

impl AnthropicSettings {
    /// Checks every field, naming the one at fault.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.max_tokens == 0 {
            return Err(SettingsError::new("max_tokens", "must be at least 1"));
        }
        HeaderValue::try_from(self.version.as_str())
            .map_err(|_| SettingsError::new("version", "not a valid header value"))?;
        self.params.validate().map_err(|e| e.within("params"))?;
        self.address().validate()
    }

    fn address(&self) -> Address<'_> {
        Address {
            api_base: &self.api_base,
            credential: self.api_key.as_deref().map(|key| ("x-api-key", key)),
            headers: &self.headers,
            first_byte_timeout: self.first_byte_timeout,
            idle_timeout: self.idle_timeout,
        }
    }
}

/// Largest Anthropic JSON response read.
const MAX_RESPONSE: usize = 32 * 1024 * 1024;

/// Sends OpenAI-style chat requests to the Anthropic Messages API, translated both ways.
#[derive(Debug, Clone)]
pub struct AnthropicExecutor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    upstream: HttpUpstream,
    version: HeaderValue,
    max_tokens: u32,
    thinking: ThinkingStore,
}

impl AnthropicExecutor {
    /// The executor of provider `name`, on the shared `client` (whose `defaults` give the
    /// timeouts the settings do not override).
    pub fn new(
        name: &str,
        settings: &AnthropicSettings,
        defaults: &ClientSettings,
        client: UpstreamClient,
    ) -> Result<Self, SettingsError> {
        settings.validate()?;
        let upstream = HttpUpstream::new(name, settings.address(), defaults, client)?;
        let version = HeaderValue::try_from(settings.version.as_str())
            .map_err(|_| SettingsError::new("version", "not a valid header value"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                upstream,
                version,
                max_tokens: settings.max_tokens,
                thinking: ThinkingStore::default(),
            }),
        })
    }

    /// The upstream's model ids (`GET /v1/models`), to test the connection.
    pub async fn list_models(&self) -> Result<Vec<String>, GatewayError> {
        let upstream = &self.inner.upstream;
        let extra = [(
            HeaderName::from_static("anthropic-version"),
            self.inner.version.clone(),
        )];
        let answer = upstream
            .request(
                Method::GET,
                upstream.uri("/models")?,
                &http::HeaderMap::new(),
                &extra,
                None,
            )
            .await?
            .map_err(|(parts, body)| {
                anthropic::error(upstream.name(), parts.status, &parts.headers, &body)
            })?;
        super::probe::model_ids(upstream, answer, "data", "id", "").await
    }

    /// Answers `req` with `model` as the Anthropic model.
    pub async fn execute(
        &self,
        req: Request<Bytes>,
        llm: &LlmRequest,
        model: &str,
    ) -> Result<Response<Body>, GatewayError> {
        let inner = &*self.inner;
        let upstream = &inner.upstream;
        match llm.endpoint() {
            Route::ChatCompletions => {}
            Route::Messages | Route::CountTokens => {
                return self.pass_through(req, llm, model).await
            }
            other => {
                return Err(super::openai_compatible::unsupported(
                    upstream.name(),
                    other,
                ))
            }
        }
        let (parts, body) = req.into_parts();
        let chat = Chat::parse(&body)?;
        let native = anthropic::request(
            &chat,
            model,
            llm.stream(),
            inner.max_tokens,
            &inner.thinking,
        )?;
        let native = Bytes::from(serde_json::to_vec(&native).expect("a request serialises"));
        let uri = upstream.uri("/messages")?;
        let extra = [(
            HeaderName::from_static("anthropic-version"),
            inner.version.clone(),
        )];
        let response = upstream
            .request(Method::POST, uri, &parts.headers, &extra, Some(native))
            .await?
            .map_err(|(parts, body)| {
                anthropic::error(upstream.name(), parts.status, &parts.headers, &body)
            })?;
        if llm.stream() {
            let translator = AnthropicStream::new(
                upstream.name().clone(),
                llm.include_usage(),
                Some(inner.thinking.clone()),
            );
            return stream_response(upstream, response, translator).await;
        }
        let (parts, incoming) = response.into_parts();
        let bytes = upstream.read_body(incoming, MAX_RESPONSE).await?;
        let json = anthropic::response(&bytes, upstream.name(), &inner.thinking)?;
        Ok(json_response(parts, json))
    }

    /// A request in Anthropic's own API: the bytes as the client sent them (the model
    /// rewritten) and the answer as Anthropic sent it, frame by frame. The client's
    /// `anthropic-version` and `anthropic-beta` go upstream; without a version, the
    /// configured one.
    async fn pass_through(
        &self,
        req: Request<Bytes>,
        llm: &LlmRequest,
        model: &str,
    ) -> Result<Response<Body>, GatewayError> {
        let inner = &*self.inner;
        let upstream = &inner.upstream;
        let (parts, body) = req.into_parts();
        let body = llm.body_with_model(&body, model);
        let uri = upstream.uri(llm.endpoint().path())?;
        let version = HeaderName::from_static("anthropic-version");
        let extra = match parts.headers.contains_key(&version) {
            true => Vec::new(),
            false => vec![(version, inner.version.clone())],
        };
        let response = upstream
            .request(Method::POST, uri, &parts.headers, &extra, Some(body))
            .await?
            .map_err(|(parts, body)| {
                anthropic::error(upstream.name(), parts.status, &parts.headers, &body)
            })?;
        let (mut parts, incoming) = response.into_parts();
        let sse = crate::sse::is_event_stream(&parts.headers);
        clean_response_headers(&mut parts.headers, sse);
        let body = upstream.body(incoming, sse).speaking(Protocol::Anthropic);
        Ok(Response::from_parts(parts, Body::new(body)))
    }
}

super::executor_service!(AnthropicExecutor);
