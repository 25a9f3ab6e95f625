//! Executor for the Gemini API (`kind: gemini`).
//!
//! Clients keep speaking OpenAI: chat requests become `POST
//! {api_base}/models/{model}:generateContent` (streams: `:streamGenerateContent?alt=sse`),
//! embeddings `:batchEmbedContents`; answers, streams and errors come back in OpenAI's
//! shapes (see [`translate`](crate::translate)).
//!
//! ```
//! use llm_tower::executor::{Executors, GeminiExecutor, GeminiSettings};
//! use llm_tower::upstream::{ClientSettings, UpstreamClient};
//!
//! # fn demo() -> Result<(), llm_tower::SettingsError> {
//! let defaults = ClientSettings::default();
//! let settings = GeminiSettings::default().api_key(Some("AIza-test".into()));
//! let gemini = GeminiExecutor::new("gemini", &settings, &defaults, UpstreamClient::new(&defaults)?)?;
//! let executors = Executors::builder().service("gemini", gemini).build()?;
//! # let _ = executors; Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response};
use serde::Deserialize;

use super::translated::{json_response, stream_response};
use super::DefaultParams;
use crate::body::Body;
use crate::error::GatewayError;
use crate::request::{Endpoint as Route, LlmRequest};
use crate::settings::{setters, SettingsError};
use crate::translate::gemini::{self, GeminiStream};
use crate::translate::Chat;
use crate::upstream::{Address, ClientSettings, HttpUpstream, UpstreamClient};

/// The Gemini API (`kind: gemini`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct GeminiSettings {
    /// Base URL below which `/models/{model}:generateContent` lives. Default
    /// `https://generativelanguage.googleapis.com/v1beta`.
    pub api_base: String,
    /// Sent as `x-goog-api-key`.
    pub api_key: Option<String>,
    /// Extra headers sent with every request.
    pub headers: BTreeMap<String, String>,
    /// What `GET /v1/models` lists for this provider.
    pub models: Vec<String>,
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

impl Default for GeminiSettings {
    fn default() -> Self {
        Self {
            api_base: "https://generativelanguage.googleapis.com/v1beta".to_owned(),
            api_key: None,
            headers: BTreeMap::new(),
            models: Vec::new(),
            first_byte_timeout: None,
            idle_timeout: None,
            params: DefaultParams::new(),
        }
    }
}

setters!(GeminiSettings {
    /// Base URL.
    api_base: String,
    /// Sent as `x-goog-api-key`.
    api_key: Option<String>,
    /// Extra headers sent with every request.
    headers: BTreeMap<String, String>,
    /// What `GET /v1/models` lists.
    models: Vec<String>,
    /// Overrides the client's `first_byte_timeout`.
    first_byte_timeout: Option<Duration>,
    /// Overrides the client's `idle_timeout`.
    idle_timeout: Option<Duration>,
    /// Request parameters sent when the client does not set them.
    params: DefaultParams,
});

impl GeminiSettings {
    /// Checks the URL, key and headers, naming the field at fault.
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.params.validate().map_err(|e| e.within("params"))?;
        self.address().validate()
    }

    fn address(&self) -> Address<'_> {
        Address {
            api_base: &self.api_base,
            credential: self.api_key.as_deref().map(|key| ("x-goog-api-key", key)),
            headers: &self.headers,
            first_byte_timeout: self.first_byte_timeout,
            idle_timeout: self.idle_timeout,
        }
    }
}

/// Largest Gemini JSON response read.
const MAX_RESPONSE: usize = 32 * 1024 * 1024;

/// Sends OpenAI-style requests to the Gemini API, translated both ways.
#[derive(Debug, Clone)]
pub struct GeminiExecutor {
    inner: Arc<HttpUpstream>,
}

impl GeminiExecutor {
    /// The executor of provider `name`, on the shared `client` (whose `defaults` give the
    /// timeouts the settings do not override).
    pub fn new(
        name: &str,
        settings: &GeminiSettings,
        defaults: &ClientSettings,
        client: UpstreamClient,
    ) -> Result<Self, SettingsError> {
        let upstream = HttpUpstream::new(name, settings.address(), defaults, client)?;
        Ok(Self {
            inner: Arc::new(upstream),
        })
    }

    /// The upstream's model names (`GET /v1beta/models`), to test the connection.
    pub async fn list_models(&self) -> Result<Vec<String>, GatewayError> {
        let upstream = &*self.inner;
        let answer = upstream
            .request(
                Method::GET,
                upstream.uri("/models")?,
                &http::HeaderMap::new(),
                &[],
                None,
            )
            .await?
            .map_err(|(parts, body)| gemini::error(upstream.name(), parts.status, &body))?;
        super::probe::model_ids(upstream, answer, "models", "name", "models/").await
    }

    /// Answers `req` with `model` as the Gemini model.
    pub async fn execute(
        &self,
        req: Request<Bytes>,
        llm: &LlmRequest,
        model: &str,
    ) -> Result<Response<Body>, GatewayError> {
        let upstream = &*self.inner;
        let (parts, body) = req.into_parts();
        if model.is_empty() || model.contains(['/', '?', '#', ' ']) {
            return Err(GatewayError::model_not_found(llm.model()));
        }
        if llm.endpoint() == Route::Embeddings {
            let native = gemini::embeddings_request(&body, model)?;
            let base64 = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("encoding_format").cloned())
                .is_some_and(|f| f == "base64");
            let uri = upstream.uri(&format!("/models/{model}:batchEmbedContents"))?;
            let native = Bytes::from(serde_json::to_vec(&native).expect("a request serialises"));
            let response = upstream
                .request(Method::POST, uri, &parts.headers, &[], Some(native))
                .await?
                .map_err(|(parts, body)| gemini::error(upstream.name(), parts.status, &body))?;
            let (parts, incoming) = response.into_parts();
            let bytes = upstream.read_body(incoming, MAX_RESPONSE).await?;
            let json = gemini::embeddings_response(&bytes, upstream.name(), model, base64)?;
            return Ok(json_response(parts, json));
        }
        let chat = Chat::parse(&body)?;
        let native = gemini::request(&chat)?;
        let native = Bytes::from(serde_json::to_vec(&native).expect("a request serialises"));
        let path = if llm.stream() {
            format!("/models/{model}:streamGenerateContent?alt=sse")
        } else {
            format!("/models/{model}:generateContent")
        };
        let uri = upstream.uri(&path)?;
        let response = upstream
            .request(Method::POST, uri, &parts.headers, &[], Some(native))
            .await?
            .map_err(|(parts, body)| gemini::error(upstream.name(), parts.status, &body))?;
        if llm.stream() {
            let translator = GeminiStream::new(upstream.name().clone(), model, llm.include_usage());
            return stream_response(upstream, response, translator).await;
        }
        let (parts, incoming) = response.into_parts();
        let bytes = upstream.read_body(incoming, MAX_RESPONSE).await?;
        let json = gemini::response(&bytes, upstream.name(), model)?;
        Ok(json_response(parts, json))
    }
}

super::executor_service!(GeminiExecutor);
