//! What the Anthropic and Gemini executors share: the upstream's address, credentials and
//! timeouts, sending, and turning translated output into the client's response.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, Method, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;

use super::{StreamTranslator, TranslatedBody};
use crate::body::Body;
use crate::config::{ConfigError, UpstreamConfig};
use crate::error::GatewayError;
use crate::executor::client::UpstreamClient;
use crate::executor::headers::{clean_response_headers, forward_request_headers};
use crate::executor::openai::{read_error_body, send, sensitive};
use crate::executor::stream::UpstreamBody;

/// One native upstream.
#[derive(Debug)]
pub(crate) struct Upstream {
    pub name: Arc<str>,
    pub base: String,
    client: UpstreamClient,
    headers: HeaderMap,
    first_byte_timeout: Duration,
    idle_timeout: Duration,
}

/// The per-provider settings [`Upstream::new`] reads.
pub(crate) struct Settings<'a> {
    pub api_base: &'a str,
    pub key_header: (&'static str, Option<&'a String>),
    pub headers: &'a BTreeMap<String, String>,
    pub first_byte_timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
}

impl Upstream {
    pub fn new(
        name: &str,
        settings: Settings<'_>,
        upstream: &UpstreamConfig,
        client: UpstreamClient,
    ) -> Result<Self, ConfigError> {
        let invalid = |what: &str| ConfigError::new(format!("providers.{name}.{what}"));
        let mut headers = HeaderMap::new();
        let (key_name, key) = settings.key_header;
        if let Some(key) = key {
            let value = HeaderValue::try_from(key.as_str())
                .map_err(|_| invalid("api_key: not a valid header value"))?;
            headers.insert(HeaderName::from_static(key_name), sensitive(value));
        }
        for (k, v) in settings.headers {
            let header = HeaderName::try_from(k.as_str())
                .map_err(|_| invalid(&format!("headers: `{k}` is not a header name")))?;
            let value = HeaderValue::try_from(v.as_str())
                .map_err(|_| invalid(&format!("headers.{k}: not a valid header value")))?;
            headers.insert(header, sensitive(value));
        }
        let base = settings.api_base.trim_end_matches('/').to_owned();
        base.parse::<Uri>()
            .map_err(|e| invalid(&format!("api_base: {e}")))?;
        Ok(Self {
            name: name.into(),
            base,
            client,
            headers,
            first_byte_timeout: settings
                .first_byte_timeout
                .unwrap_or(upstream.first_byte_timeout),
            idle_timeout: settings.idle_timeout.unwrap_or(upstream.idle_timeout),
        })
    }

    /// `base` + `path` as a URI.
    pub fn uri(&self, path: &str) -> Result<Uri, GatewayError> {
        format!("{}{path}", self.base).parse().map_err(|_| {
            GatewayError::invalid_param("model", "The model name cannot be used in a URL.")
        })
    }

    /// POSTs a JSON body with the client's forwardable headers plus this upstream's own.
    /// A non-2xx answer comes back as `Err((status, headers, body))` for the provider's
    /// error mapping.
    pub async fn post(
        &self,
        uri: Uri,
        client_headers: &HeaderMap,
        extra: &[(HeaderName, HeaderValue)],
        body: Vec<u8>,
    ) -> Result<Result<Response<Incoming>, (http::response::Parts, Bytes)>, GatewayError> {
        let mut req = Request::new(Full::new(Bytes::from(body)));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = uri;
        let headers = req.headers_mut();
        forward_request_headers(client_headers, headers);
        for (name, value) in &self.headers {
            headers.insert(name, value.clone());
        }
        for (name, value) in extra {
            headers.insert(name, value.clone());
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let response = send(&self.client, &self.name, self.first_byte_timeout, req).await?;
        if response.status().is_success() {
            return Ok(Ok(response));
        }
        let (parts, body) = response.into_parts();
        let bytes = read_error_body(body, self.idle_timeout).await;
        Ok(Err((parts, bytes)))
    }

    /// Reads a whole (successful) JSON body within the idle timeout.
    pub async fn read_body(&self, body: Incoming, limit: usize) -> Result<Bytes, GatewayError> {
        use http_body_util::{BodyExt, Limited};
        match tokio::time::timeout(self.idle_timeout, Limited::new(body, limit).collect()).await {
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
            Ok(Err(e)) => Err(GatewayError::upstream_protocol(
                &self.name,
                format_args!("body broken: {e}"),
            )),
            Err(_) => Err(GatewayError::upstream_timeout(
                &self.name,
                "data",
                self.idle_timeout,
            )),
        }
    }

    /// The client's JSON response: the upstream's headers (cleaned) and the translation.
    pub fn json_response(&self, mut parts: http::response::Parts, json: Vec<u8>) -> Response<Body> {
        fix_headers(&mut parts.headers, false);
        parts
            .headers
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Response::from_parts(parts, Body::full(json))
    }

    /// The client's SSE response: the upstream's body translated event by event. Reads
    /// until the first translated output, so an error the upstream reports first becomes
    /// an HTTP error.
    pub async fn stream_response<T>(
        &self,
        response: Response<Incoming>,
        translator: T,
    ) -> Result<Response<Body>, GatewayError>
    where
        T: StreamTranslator + Send + 'static,
    {
        let (mut parts, incoming) = response.into_parts();
        fix_headers(&mut parts.headers, true);
        parts
            .headers
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        let upstream = UpstreamBody::new(incoming, self.idle_timeout, false, self.name.clone());
        let mut body = Box::pin(TranslatedBody::new(upstream, translator, self.name.clone()));
        body.prime().await?;
        Ok(Response::from_parts(parts, Body::new(body)))
    }
}

fn fix_headers(headers: &mut HeaderMap, stream: bool) {
    clean_response_headers(headers, stream);
    headers.remove(CONTENT_LENGTH);
    headers.remove(http::header::CONTENT_ENCODING);
    for id in ["request-id", "x-goog-request-id"] {
        if let Some(value) = headers.remove(id) {
            headers.insert(HeaderName::from_static("x-upstream-request-id"), value);
        }
    }
}
