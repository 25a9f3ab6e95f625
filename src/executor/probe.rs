//! Testing a connection: an upstream's model list, read with the provider's own
//! credentials (free, unlike a completion, and it proves the address and the key).

use std::future::Future;
use std::pin::Pin;

use http::Response;

use crate::error::GatewayError;
use crate::upstream::{HttpUpstream, UpstreamIncoming};

/// The future of a model listing.
pub type ModelListing = Pin<Box<dyn Future<Output = Result<Vec<String>, GatewayError>> + Send>>;

/// The largest model list read.
const MAX_LIST: usize = 4 * 1024 * 1024;

/// The ids of a listing answer: `field` of each item of the array `list`, `prefix`
/// removed (Gemini's `models/`).
pub(crate) async fn model_ids(
    upstream: &HttpUpstream,
    answer: Response<UpstreamIncoming>,
    list: &str,
    field: &str,
    prefix: &str,
) -> Result<Vec<String>, GatewayError> {
    let body = upstream.read_body(answer.into_body(), MAX_LIST).await?;
    let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        GatewayError::upstream_protocol(
            upstream.name(),
            format_args!("model list is not JSON: {e}"),
        )
    })?;
    let items = value[list].as_array().ok_or_else(|| {
        GatewayError::upstream_protocol(
            upstream.name(),
            format_args!("model list has no `{list}` array"),
        )
    })?;
    Ok(items
        .iter()
        .filter_map(|item| item[field].as_str())
        .map(|id| id.strip_prefix(prefix).unwrap_or(id).to_owned())
        .collect())
}
