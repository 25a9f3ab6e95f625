//! The chat side of the inbound translators (Messages, Responses): a `chat.completion.chunk`
//! read with borrowed fields (no JSON tree per event), chat usage, and the chat stream's
//! in-band errors.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{ErrorKind, GatewayError};

/// Chat usage, as read from a completion or the usage chunk.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub(crate) struct ChatUsage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    pub completion_tokens_details: Option<CompletionDetails>,
}

impl ChatUsage {
    /// Prompt tokens read from the provider's cache.
    pub fn cached_tokens(&self) -> u64 {
        self.prompt_tokens_details
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0)
    }

    /// Prompt tokens written to the provider's cache (Anthropic's, through the chat hub).
    pub fn cache_creation_tokens(&self) -> u64 {
        self.prompt_tokens_details
            .and_then(|d| d.cache_creation_tokens)
            .unwrap_or(0)
    }

    /// Completion tokens spent on reasoning.
    pub fn reasoning_tokens(&self) -> u64 {
        self.completion_tokens_details
            .and_then(|d| d.reasoning_tokens)
            .unwrap_or(0)
    }
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub(crate) struct PromptDetails {
    #[serde(default)]
    pub cached_tokens: Option<u64>,
    #[serde(default)]
    pub cache_creation_tokens: Option<u64>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub(crate) struct CompletionDetails {
    #[serde(default)]
    pub reasoning_tokens: Option<u64>,
}

/// One `chat.completion.chunk`.
#[derive(Deserialize)]
pub(crate) struct Chunk<'a> {
    #[serde(borrow, default)]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub choices: Vec<ChunkChoice<'a>>,
    #[serde(default)]
    pub usage: Option<ChatUsage>,
}

#[derive(Deserialize)]
pub(crate) struct ChunkChoice<'a> {
    #[serde(borrow, default)]
    pub delta: ChunkDelta<'a>,
    #[serde(borrow, default)]
    pub finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
pub(crate) struct ChunkDelta<'a> {
    #[serde(borrow, default)]
    pub content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub refusal: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub reasoning_content: Option<Cow<'a, str>>,
    /// OpenRouter's name for `reasoning_content`.
    #[serde(borrow, default)]
    pub reasoning: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub tool_calls: Option<Vec<ChunkToolCall<'a>>>,
}

impl ChunkDelta<'_> {
    /// The reasoning text of the delta, under either name.
    pub fn reasoning(&self) -> Option<&str> {
        self.reasoning_content
            .as_deref()
            .or(self.reasoning.as_deref())
            .filter(|t| !t.is_empty())
    }
}

#[derive(Deserialize)]
pub(crate) struct ChunkToolCall<'a> {
    #[serde(default)]
    pub index: Option<usize>,
    #[serde(borrow, default)]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub function: Option<ChunkFunction<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct ChunkFunction<'a> {
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub arguments: Option<Cow<'a, str>>,
}

/// Whether a chat stream event is an in-band failure (an `error` event, or a chunk that
/// is an error body).
pub(crate) fn is_error(name: Option<&[u8]>, data: &[u8]) -> bool {
    name == Some(b"error") || data.starts_with(b"{\"error\"")
}

/// The chat stream's in-band error as the gateway's error, keeping what clients tell
/// apart (overloaded, timeout, rate limit).
pub(crate) fn stream_error(data: &[u8], provider: &str) -> GatewayError {
    let value: Value = serde_json::from_slice(data).unwrap_or(Value::Null);
    let error = &value["error"];
    let message = error["message"]
        .as_str()
        .map_or_else(|| String::from_utf8_lossy(data).into_owned(), str::to_owned);
    let code = error["code"].as_str();
    let status = match (code, error["type"].as_str()) {
        (Some("overloaded"), _) => 503,
        (Some("upstream_timeout"), _) => 504,
        (Some("rate_limit_exceeded"), _)
        | (_, Some("rate_limit_exceeded" | "rate_limit_error")) => 429,
        _ => 500,
    };
    let status = http::StatusCode::from_u16(status).expect("a valid status");
    let err = GatewayError::new(
        ErrorKind::UpstreamStatus,
        status,
        "upstream_error",
        format!("Upstream `{provider}` failed mid-stream: {message}"),
    );
    match code {
        Some(code) => err.with_code(code),
        None => err,
    }
}
