//! One request's usage record.

use bytes::Bytes;

use crate::error::ErrorKind;

/// What one request cost. Written to the ledger, one row each.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct UsageRecord {
    /// The request's `x-request-id`.
    pub request_id: String,
    /// When the request arrived, in milliseconds since the Unix epoch.
    pub started_at_ms: i64,
    /// The gateway key's name (`master`, a `keys:` name, a virtual key's alias or
    /// `sk-...abcd`, or `anonymous`); never the key.
    pub key: String,
    /// The virtual key's team, when it has one.
    pub team: Option<String>,
    /// The model as the client named it.
    pub requested_model: String,
    /// The alias target or combo that served it, when there was one.
    pub route: Option<String>,
    /// The provider that answered.
    pub provider: Option<String>,
    /// The model as that provider knows it.
    pub upstream_model: Option<String>,
    /// HTTP status the client got (499 when it left, or the server shut down, before the
    /// answer's headers).
    pub status: u16,
    /// What the client saw: `ok`; `upstream_error` (the upstream could not be reached,
    /// failed with a 5xx, sent an unreadable answer or broke a stream); `timeout` (the
    /// upstream did not answer, or a stream went silent, in time); `error` (any other
    /// failure: the client's request, the gateway's limits); `cancelled` (the client left).
    pub outcome: &'static str,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// Prompt tokens (cached ones included).
    pub prompt_tokens: u64,
    /// Completion tokens (reasoning ones included).
    pub completion_tokens: u64,
    /// Prompt tokens read from the provider's cache.
    pub cached_tokens: u64,
    /// Reasoning tokens.
    pub reasoning_tokens: u64,
    /// Cost in USD, when the model's price is known (or the upstream reported it).
    pub cost_usd: Option<f64>,
    /// Until the response's last byte (or the error).
    pub latency_ms: f64,
    /// Streams: until the first byte of the body.
    pub ttft_ms: Option<f64>,
    /// Upstream attempts (combos; 1 otherwise, 0 for replays and cache hits).
    pub attempts: u32,
    /// The response cache's verdict (`hit`, `semantic-hit`, `miss`, `bypass`), if it ran.
    pub cache: Option<String>,
    /// Replayed for an `Idempotency-Key` (no upstream cost).
    pub replay: bool,
    /// The error body's `type`, for failures: the JSON answer's or, for a stream, its
    /// `error` event's; `server_shutting_down` for a request the server cut at the end of
    /// its shutdown grace period.
    pub error_type: Option<String>,
    /// `upstream` (reported), `estimated` (tokenizer) or `none`.
    pub usage_source: &'static str,
    /// The API the client called: `chat`, `embeddings`, `messages`, `count_tokens`.
    pub endpoint: String,
    /// The request's trace (with telemetry on), for its span and the log line; not in the
    /// ledger.
    #[serde(skip)]
    pub trace: Option<crate::telemetry::TraceContext>,
}

/// The most of a response body metering keeps (a longer one's usage comes from its
/// end: the JSON usage member or the stream's usage chunk are kept from the tail).
pub(crate) const MAX_CAPTURE: usize = 256 * 1024;

/// What the writer still has to work out for a record, off the request path: the usage
/// from the body when the upstream did not report it, the cost.
#[derive(Debug, Default)]
pub(crate) struct Unfinished {
    pub(crate) record: UsageRecord,
    /// The request body, for estimating prompt tokens.
    pub(crate) request: Bytes,
    /// A copy of the response body (up to [`MAX_CAPTURE`] bytes), for its usage or for
    /// estimating completion tokens. A copy rather than the frames themselves: an upstream
    /// frame is a slice of the connection's read buffer, and keeping it would keep that.
    pub(crate) body: bytes::BytesMut,
    pub(crate) sse: bool,
    /// Usage found in the stream as it passed.
    pub(crate) usage: Option<super::usage::Usage>,
    /// The upstream's own figure (LiteLLM's `x-litellm-response-cost`).
    pub(crate) reported_cost: Option<f64>,
    /// Told the finished record (rate limits, budgets).
    pub(crate) hook: Option<super::UsageHook>,
    /// What the layers logged, for the trace's child spans (with tracing on).
    pub(crate) log: Option<super::span::TraceLog>,
}

/// The [`UsageRecord::outcome`] of a failure of `kind` with `status`.
pub(crate) fn failure_outcome(kind: ErrorKind, status: u16) -> &'static str {
    match kind {
        ErrorKind::UpstreamTimeout => "timeout",
        ErrorKind::UpstreamUnreachable | ErrorKind::UpstreamProtocol => "upstream_error",
        ErrorKind::UpstreamStatus if status >= 500 => "upstream_error",
        _ => "error",
    }
}

/// The outcome of a failure known only by its error body's `code` and `type` (an answer
/// with an error status, a stream's `error` event).
pub(crate) fn outcome_of_error(
    code: Option<&str>,
    kind: Option<&str>,
    status: u16,
) -> &'static str {
    match (code, kind) {
        (Some("upstream_timeout"), _) | (_, Some("timeout_error")) => "timeout",
        (_, Some("upstream_error" | "api_error" | "overloaded_error" | "server_error")) => {
            "upstream_error"
        }
        _ if status == 504 => "timeout",
        _ if status >= 500 => "upstream_error",
        _ => "error",
    }
}
