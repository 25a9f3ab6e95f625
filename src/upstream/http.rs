//! One HTTP upstream: its base URL, credentials and timeouts, sending to it, and reading
//! what it answers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, Method, Request, Response, Uri};
use http_body_util::{BodyExt, Full, Limited};

use super::body::UpstreamBody;
use super::client::{ClientSettings, UpstreamClient};
use super::decode::UpstreamIncoming;
use super::headers::forward_request_headers;
use super::send::{read_error_body, send, sensitive};
use crate::body::Body;
use crate::error::GatewayError;
use crate::settings::SettingsError;

/// The largest successful JSON answer [`HttpUpstream::json_answer`] reads whole to check.
pub const MAX_CHECKED_ANSWER: usize = 16 * 1024 * 1024;

/// Where an HTTP upstream is and how the gateway authenticates to it: what
/// [`HttpUpstream::new`] reads from a provider's settings.
#[derive(Debug, Clone, Copy)]
pub struct Address<'a> {
    /// Base URL (`http://` or `https://`), below which the API's paths live.
    pub api_base: &'a str,
    /// The credential header and its whole value (`authorization: Bearer …`), if any.
    pub credential: Option<(&'static str, &'a str)>,
    /// Extra headers sent with every request.
    pub headers: &'a BTreeMap<String, String>,
    /// Overrides the client's first-byte timeout.
    pub first_byte_timeout: Option<Duration>,
    /// Overrides the client's idle timeout.
    pub idle_timeout: Option<Duration>,
}

impl Address<'_> {
    /// Checks the base URL, the credential and the headers, naming the field at fault
    /// (`api_base`, `api_key`, `headers.NAME`).
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.base()?;
        self.header_map()?;
        Ok(())
    }

    fn base(&self) -> Result<String, SettingsError> {
        let base = self.api_base.trim_end_matches('/');
        let uri: Uri = base.parse().map_err(|e| {
            SettingsError::new("api_base", format!("`{}` is not a URL: {e}", self.api_base))
        })?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(SettingsError::new(
                "api_base",
                format!("`{}` must be an http:// or https:// URL", self.api_base),
            ));
        }
        Ok(base.to_owned())
    }

    fn header_map(&self) -> Result<HeaderMap, SettingsError> {
        let mut headers = HeaderMap::new();
        if let Some((name, value)) = self.credential {
            let value = HeaderValue::try_from(value)
                .map_err(|_| SettingsError::new("api_key", "not a valid header value"))?;
            headers.insert(HeaderName::from_static(name), sensitive(value));
        }
        for (name, value) in self.headers {
            let header = HeaderName::try_from(name.as_str()).map_err(|_| {
                SettingsError::new("headers", format!("`{name}` is not a header name"))
            })?;
            let value = HeaderValue::try_from(value.as_str()).map_err(|_| {
                SettingsError::new(format!("headers.{name}"), "not a valid header value")
            })?;
            headers.insert(header, sensitive(value));
        }
        Ok(headers)
    }
}

/// One HTTP upstream, on the shared client.
#[derive(Debug)]
pub struct HttpUpstream {
    name: Arc<str>,
    base: String,
    client: UpstreamClient,
    headers: HeaderMap,
    first_byte_timeout: Duration,
    idle_timeout: Duration,
}

impl HttpUpstream {
    /// The upstream of provider `name` at `address`, with the client's timeouts unless the
    /// address overrides them.
    pub fn new(
        name: &str,
        address: Address<'_>,
        defaults: &ClientSettings,
        client: UpstreamClient,
    ) -> Result<Self, SettingsError> {
        Ok(Self {
            name: name.into(),
            base: address.base()?,
            headers: address.header_map()?,
            client,
            first_byte_timeout: address
                .first_byte_timeout
                .unwrap_or(defaults.first_byte_timeout),
            idle_timeout: address.idle_timeout.unwrap_or(defaults.idle_timeout),
        })
    }

    /// The provider's name, as errors and logs say it.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The base URL, without a trailing `/`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `base` + `path` as a URI.
    pub fn uri(&self, path: &str) -> Result<Uri, GatewayError> {
        format!("{}{path}", self.base).parse().map_err(|_| {
            GatewayError::invalid_param("model", "The model name cannot be used in a URL.")
        })
    }

    /// Sends `method uri` with the client's forwardable headers, this upstream's own and
    /// `extra`; a body is sent as JSON. A non-2xx answer comes back as
    /// `Err((parts, body))` (the body read within the idle timeout, at most 64 KiB) for the
    /// provider's error mapping.
    pub async fn request(
        &self,
        method: Method,
        uri: Uri,
        client_headers: &HeaderMap,
        extra: &[(HeaderName, HeaderValue)],
        body: Option<Bytes>,
    ) -> Result<Result<Response<UpstreamIncoming>, (http::response::Parts, Bytes)>, GatewayError>
    {
        let json = body.is_some();
        let mut req = Request::new(Full::new(body.unwrap_or_default()));
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        let headers = req.headers_mut();
        // Room for all of them (and the `Host` the client adds) at once: the map grew
        // as they went in (twice for an SDK's ~15 headers).
        headers.reserve(client_headers.len() + self.headers.len() + extra.len() + 2);
        forward_request_headers(client_headers, headers);
        for (name, value) in &self.headers {
            headers.insert(name, value.clone());
        }
        for (name, value) in extra {
            headers.insert(name, value.clone());
        }
        if json {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let response = send(&self.client, &self.name, self.first_byte_timeout, req).await?;
        let (mut parts, body) = response.into_parts();
        let body = UpstreamIncoming::new(body, &mut parts.headers, &self.name)?;
        if parts.status.is_success() {
            return Ok(Ok(Response::from_parts(parts, body)));
        }
        let bytes = read_error_body(body, self.idle_timeout).await;
        Ok(Err((parts, bytes)))
    }

    /// Reads a whole (successful) body within the idle timeout, at most `limit` bytes.
    pub async fn read_body(
        &self,
        body: UpstreamIncoming,
        limit: usize,
    ) -> Result<Bytes, GatewayError> {
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

    /// A successful JSON answer, read whole and checked to be JSON: an upstream that
    /// answers 200 with a truncated body or an HTML page gets a 502
    /// `upstream_protocol_error` (which a combo falls back from), not a 200 the client
    /// cannot read. Answers larger than [`MAX_CHECKED_ANSWER`] are passed through unchecked.
    pub async fn json_answer(&self, mut incoming: UpstreamIncoming) -> Result<Body, GatewayError> {
        use http_body::Body as _;
        if incoming.size_hint().lower() > MAX_CHECKED_ANSWER as u64 {
            return Ok(Body::new(self.body(incoming, false)));
        }
        let mut first: Option<Bytes> = None;
        let mut more: Vec<u8> = Vec::new();
        loop {
            let frame = match tokio::time::timeout(self.idle_timeout, incoming.frame()).await {
                Err(_) => {
                    return Err(GatewayError::upstream_timeout(
                        &self.name,
                        "data",
                        self.idle_timeout,
                    ))
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(GatewayError::upstream_protocol(
                        &self.name,
                        format_args!("body broken: {e}"),
                    ))
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            // One frame (the usual answer) is kept as is; more are joined.
            match &first {
                None if more.is_empty() => first = Some(data),
                _ => {
                    if let Some(first) = first.take() {
                        more.extend_from_slice(&first);
                    }
                    more.extend_from_slice(&data);
                }
            }
            if more.len() > MAX_CHECKED_ANSWER {
                return Ok(Body::new(self.body(incoming, false).after(more.into())));
            }
        }
        let answer = first.unwrap_or_else(|| more.into());
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&answer) {
            return Err(GatewayError::upstream_protocol(
                &self.name,
                format_args!("the answer is not JSON ({e})"),
            ));
        }
        Ok(Body::from(answer))
    }

    /// The upstream's body passed through with this upstream's idle timeout (`sse`: a
    /// failure mid-body ends it with an SSE `error` event).
    pub fn body(&self, incoming: UpstreamIncoming, sse: bool) -> UpstreamBody {
        UpstreamBody::new(incoming, self.idle_timeout, sse, self.name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint<'a>(api_base: &'a str, headers: &'a BTreeMap<String, String>) -> Address<'a> {
        Address {
            api_base,
            credential: None,
            headers,
            first_byte_timeout: None,
            idle_timeout: None,
        }
    }

    #[test]
    fn addresses_are_checked_field_by_field() {
        let none = BTreeMap::new();
        assert!(endpoint("https://api.example.com/v1/", &none)
            .validate()
            .is_ok());
        let err = endpoint("ftp://x", &none).validate().unwrap_err();
        assert_eq!(err.field(), "api_base");
        let bad = BTreeMap::from([("x-ok".to_owned(), "a\nb".to_owned())]);
        assert_eq!(
            endpoint("http://x", &bad).validate().unwrap_err().field(),
            "headers.x-ok"
        );
        let mut key = endpoint("http://x", &none);
        key.credential = Some(("authorization", "Bearer a\nb"));
        assert_eq!(key.validate().unwrap_err().field(), "api_key");
    }
}
