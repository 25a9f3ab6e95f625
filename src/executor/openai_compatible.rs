//! Executor for any OpenAI-compatible server (and, with its own flavour, LiteLLM).
//!
//! Requests are forwarded with every field the client sent (only `model` rewritten, by one
//! splice of the raw body); answers and streams come back as the upstream's own frames.
//!
//! ```
//! use llm_tower::executor::{Executors, Flavor, OpenAiExecutor, OpenAiSettings};
//! use llm_tower::upstream::{ClientSettings, UpstreamClient};
//!
//! # fn demo() -> Result<(), llm_tower::SettingsError> {
//! let client = UpstreamClient::new(&ClientSettings::default())?;
//! let settings = OpenAiSettings::new("http://127.0.0.1:11434/v1").api_key(Some("sk-local".into()));
//! let local = OpenAiExecutor::new("local", Flavor::OpenAi, &settings, &ClientSettings::default(), client)?;
//! let executors = Executors::builder().service("local", local).build()?;
//! # let _ = executors; Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{Method, Request, Response, Uri};
use serde::Deserialize;

use super::litellm;
use super::DefaultParams;
use crate::body::Body;
use crate::error::GatewayError;
use crate::request::{Endpoint as Route, LlmRequest};
use crate::settings::{setters, SettingsError};
use crate::upstream::{
    clean_response_headers, upstream_error, Address, ClientSettings, HttpUpstream, UpstreamClient,
};

/// An OpenAI-compatible upstream (`kind: openai`, `kind: litellm`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct OpenAiSettings {
    /// Base URL, e.g. `https://api.openai.com/v1` (LiteLLM: `http://127.0.0.1:4000`).
    pub api_base: String,
    /// Sent as `Authorization: Bearer …`.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Extra headers sent with every request to this upstream.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// What `GET /v1/models` lists for this provider.
    #[serde(default)]
    pub models: Vec<String>,
    /// Overrides the client's `first_byte_timeout` for this provider.
    #[serde(default, with = "humantime_serde")]
    pub first_byte_timeout: Option<Duration>,
    /// Overrides the client's `idle_timeout` for this provider.
    #[serde(default, with = "humantime_serde")]
    pub idle_timeout: Option<Duration>,
    /// How Responses API requests reach this upstream: `chat` (translated to Chat
    /// Completions; the default) or `native` (its own `/responses`, passed through:
    /// OpenAI, LiteLLM, vLLM…).
    #[serde(default)]
    pub responses: ApiMode,
    /// How Anthropic Messages requests reach this upstream: `chat` (the default) or
    /// `native` (its own `/messages` and `/messages/count_tokens`, passed through: LiteLLM,
    /// servers with an Anthropic-compatible API).
    #[serde(default)]
    pub messages: ApiMode,
    /// Request parameters sent when the client's chat or embeddings request does not set
    /// them (`temperature`, `max_tokens`, …).
    #[serde(default)]
    pub params: DefaultParams,
    /// A query string added to every request's URL (Azure OpenAI's `api-version=…`).
    #[serde(default)]
    pub query: Option<String>,
}

/// How an OpenAI-compatible upstream answers an API beside Chat Completions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiMode {
    /// Through Chat Completions, translated both ways (what every such server has).
    #[default]
    Chat,
    /// The server's own endpoint for it: bytes passed through, the model rewritten.
    Native,
}

setters!(OpenAiSettings {
    /// Sent as `Authorization: Bearer …`.
    api_key: Option<String>,
    /// Extra headers sent with every request.
    headers: BTreeMap<String, String>,
    /// What `GET /v1/models` lists.
    models: Vec<String>,
    /// Overrides the client's `first_byte_timeout`.
    first_byte_timeout: Option<Duration>,
    /// Overrides the client's `idle_timeout`.
    idle_timeout: Option<Duration>,
    /// How Responses API requests reach the upstream.
    responses: ApiMode,
    /// How Anthropic Messages requests reach the upstream.
    messages: ApiMode,
    /// Request parameters sent when the client does not set them.
    params: DefaultParams,
    /// A query string added to every request's URL.
    query: Option<String>,
});

impl OpenAiSettings {
    /// An upstream at `api_base`, without a key.
    pub fn new(api_base: impl Into<String>) -> Self {
        Self {
            api_base: api_base.into(),
            api_key: None,
            headers: BTreeMap::new(),
            models: Vec::new(),
            first_byte_timeout: None,
            idle_timeout: None,
            responses: ApiMode::Chat,
            messages: ApiMode::Chat,
            params: DefaultParams::new(),
            query: None,
        }
    }

    /// Checks the URL, key and headers, naming the field at fault.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let bearer = self.api_key.as_ref().map(|key| format!("Bearer {key}"));
        self.address(bearer.as_deref()).validate()?;
        self.params.validate().map_err(|e| e.within("params"))
    }

    fn address<'a>(&'a self, bearer: Option<&'a str>) -> Address<'a> {
        Address {
            api_base: &self.api_base,
            credential: bearer.map(|b| ("authorization", b)),
            headers: &self.headers,
            first_byte_timeout: self.first_byte_timeout,
            idle_timeout: self.idle_timeout,
        }
    }
}

/// Which dialect of the OpenAI API the upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Any OpenAI-compatible server: `api_base` ends in the API's version (`/v1`).
    OpenAi,
    /// A LiteLLM proxy: `api_base` is the proxy's root; readiness from
    /// `/health/liveliness`, its cost header and error bodies understood.
    LiteLlm,
}

/// Sends requests to an OpenAI-compatible upstream and passes its answers through.
#[derive(Debug, Clone)]
pub struct OpenAiExecutor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    upstream: HttpUpstream,
    flavor: Flavor,
    chat_uri: Uri,
    embeddings_uri: Uri,
    responses_uri: Uri,
    messages_uri: Uri,
    count_tokens_uri: Uri,
    models_uri: Uri,
    health_uri: Option<Uri>,
}

impl OpenAiExecutor {
    /// The executor of provider `name`, on the shared `client` (whose `defaults` give the
    /// timeouts the settings do not override).
    pub fn new(
        name: &str,
        flavor: Flavor,
        settings: &OpenAiSettings,
        defaults: &ClientSettings,
        client: UpstreamClient,
    ) -> Result<Self, SettingsError> {
        let bearer = settings.api_key.as_ref().map(|key| format!("Bearer {key}"));
        let upstream =
            HttpUpstream::new(name, settings.address(bearer.as_deref()), defaults, client)?;
        let base = upstream.base();
        // LiteLLM's `api_base` is the proxy's root; its OpenAI routes live under /v1.
        let (root, v1) = match flavor {
            Flavor::OpenAi => (base.to_owned(), base.to_owned()),
            Flavor::LiteLlm => match base.strip_suffix("/v1") {
                Some(root) => (root.to_owned(), base.to_owned()),
                None => (base.to_owned(), format!("{base}/v1")),
            },
        };
        let uri = |path: String| {
            path.parse::<Uri>()
                .map_err(|e| SettingsError::new("api_base", e.to_string()))
        };
        let query = settings
            .query
            .as_deref()
            .map_or_else(String::new, |q| format!("?{q}"));
        Ok(Self {
            inner: Arc::new(Inner {
                chat_uri: uri(format!("{v1}{}{query}", Route::ChatCompletions.path()))?,
                embeddings_uri: uri(format!("{v1}{}{query}", Route::Embeddings.path()))?,
                responses_uri: uri(format!("{v1}{}{query}", Route::Responses.path()))?,
                messages_uri: uri(format!("{v1}{}{query}", Route::Messages.path()))?,
                count_tokens_uri: uri(format!("{v1}{}{query}", Route::CountTokens.path()))?,
                models_uri: uri(format!("{v1}/models{query}"))?,
                health_uri: match flavor {
                    Flavor::OpenAi => None,
                    Flavor::LiteLlm => Some(uri(format!("{root}{}", litellm::LIVELINESS_PATH))?),
                },
                upstream,
                flavor,
            }),
        })
    }

    /// Forwards `req` with `model` as the upstream model name.
    pub async fn execute(
        &self,
        req: Request<Bytes>,
        llm: &LlmRequest,
        model: &str,
    ) -> Result<Response<Body>, GatewayError> {
        let inner = &*self.inner;
        let (parts, body) = req.into_parts();
        let uri = match llm.endpoint() {
            Route::ChatCompletions => inner.chat_uri.clone(),
            Route::Embeddings => inner.embeddings_uri.clone(),
            // Only with `responses: native` / `messages: native` (the registry translates
            // them to chat otherwise).
            Route::Responses => inner.responses_uri.clone(),
            Route::Messages => inner.messages_uri.clone(),
            Route::CountTokens => inner.count_tokens_uri.clone(),
        };
        let body = llm.body_with_model(&body, model);
        let response = inner
            .upstream
            .request(Method::POST, uri, &parts.headers, &[], Some(body))
            .await?
            .map_err(|(parts, body)| self.error(&parts, &body))?;
        let (mut parts, incoming) = response.into_parts();
        let sse = parts
            .headers
            .get(CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        clean_response_headers(&mut parts.headers, sse);
        if inner.flavor == Flavor::LiteLlm {
            if let Some(cost) = litellm::response_cost(&parts.headers) {
                parts.extensions.insert(cost);
            }
        }
        let body = if sse {
            let body = inner.upstream.body(incoming, true);
            Body::new(
                body.speaking(llm.endpoint().protocol())
                    .expecting_last_event(),
            )
        } else {
            inner.upstream.json_answer(incoming).await?
        };
        Ok(Response::from_parts(parts, body))
    }

    /// Whether the upstream is up: LiteLLM's `/health/liveliness`; other servers have no
    /// standard probe and count as ready.
    pub async fn ready(&self) -> Result<(), GatewayError> {
        let Some(uri) = self.inner.health_uri.clone() else {
            return Ok(());
        };
        self.inner
            .upstream
            .request(Method::GET, uri, &http::HeaderMap::new(), &[], None)
            .await?
            .map(drop)
            .map_err(|(parts, body)| self.error(&parts, &body))
    }

    /// The upstream's model ids (`GET /v1/models`), to test the connection.
    pub async fn list_models(&self) -> Result<Vec<String>, GatewayError> {
        let upstream = &self.inner.upstream;
        let answer = upstream
            .request(
                Method::GET,
                self.inner.models_uri.clone(),
                &http::HeaderMap::new(),
                &[],
                None,
            )
            .await?
            .map_err(|(parts, body)| self.error(&parts, &body))?;
        super::probe::model_ids(upstream, answer, "data", "id", "").await
    }

    /// The upstream's error answer as a [`GatewayError`] with its status and message.
    fn error(&self, parts: &http::response::Parts, body: &[u8]) -> GatewayError {
        let inner = &*self.inner;
        let mut err = upstream_error(inner.upstream.name(), parts.status, body);
        if let Some(value) = parts.headers.get(RETRY_AFTER) {
            err = err.with_retry_after(value.clone());
        }
        match inner.flavor {
            Flavor::OpenAi => err,
            Flavor::LiteLlm => litellm::tidy_error(err, &parts.headers),
        }
    }
}

super::executor_service!(OpenAiExecutor);

/// 400 for an endpoint this executor does not serve.
pub(crate) fn unsupported(provider: &str, endpoint: Route) -> GatewayError {
    GatewayError::bad_request(format!(
        "Provider `{provider}` has no {} endpoint.",
        endpoint.path()
    ))
    .with_code("unsupported_endpoint")
}
