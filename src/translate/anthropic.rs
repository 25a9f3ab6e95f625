//! OpenAI Chat Completions ⇄ Anthropic Messages.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use http::header::RETRY_AFTER;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::chat::{
    data_url, now, Chat, ChunkWriter, Completion, Content, Delta, DeltaFunction, DeltaToolCall,
    Finish, Message, OutChoice, OutFunction, OutMessage, OutToolCall, Part, ResponseFormat,
    ToolChoice, Usage,
};
use super::stream::StreamTranslator;
use crate::error::{ErrorKind, GatewayError};

/// Thinking budgets for `reasoning_effort` low / medium / high.
const BUDGETS: [(&str, u64); 3] = [("low", 1024), ("medium", 4096), ("high", 16384)];

/// Anthropic's thinking blocks by the tool-use ids of the turn that produced them, so a
/// client that drops them can still continue a tool-use conversation with thinking on.
#[derive(Clone)]
pub(crate) struct ThinkingStore(moka::sync::Cache<String, Arc<[Value]>>);

impl std::fmt::Debug for ThinkingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ThinkingStore")
            .field(&self.0.entry_count())
            .finish()
    }
}

impl Default for ThinkingStore {
    fn default() -> Self {
        Self(
            moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
        )
    }
}

impl ThinkingStore {
    fn put(&self, tool_ids: &[String], blocks: Vec<Value>) {
        if tool_ids.is_empty() || blocks.is_empty() {
            return;
        }
        let blocks: Arc<[Value]> = blocks.into();
        for id in tool_ids {
            self.0.insert(id.clone(), blocks.clone());
        }
    }

    fn get(&self, tool_id: &str) -> Option<Arc<[Value]>> {
        self.0.get(tool_id)
    }
}

/// An id Anthropic accepts (`^[a-zA-Z0-9_-]+$`): other characters become `_`.
fn sanitize_id(id: &str) -> Cow<'_, str> {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if !id.is_empty() && id.chars().all(ok) {
        Cow::Borrowed(id)
    } else if id.is_empty() {
        Cow::Borrowed("_")
    } else {
        Cow::Owned(id.chars().map(|c| if ok(c) { c } else { '_' }).collect())
    }
}

fn text_block(text: &str) -> Value {
    json!({"type": "text", "text": text})
}

fn image_block(url: &str, param: &str) -> Result<Value, GatewayError> {
    if let Some((mime, data)) = data_url(url) {
        Ok(json!({"type": "image", "source": {"type": "base64", "media_type": mime, "data": data}}))
    } else if url.starts_with("https://") || url.starts_with("http://") {
        Ok(json!({"type": "image", "source": {"type": "url", "url": url}}))
    } else {
        Err(GatewayError::invalid_param(
            param,
            "Invalid image URL: use a base64 `data:` URL or an http(s) URL.",
        ))
    }
}

/// Content blocks of a message's content; empty text parts are dropped (Anthropic rejects
/// them).
fn blocks(content: &Content, param: &str) -> Result<Vec<Value>, GatewayError> {
    match content {
        Content::Text(t) if t.is_empty() => Ok(Vec::new()),
        Content::Text(t) => Ok(vec![text_block(t)]),
        Content::Parts(parts) => {
            let mut out = Vec::with_capacity(parts.len());
            for part in parts {
                match part {
                    Part::Text(t) if t.is_empty() => {}
                    Part::Text(t) => out.push(text_block(t)),
                    Part::Image(url) => out.push(image_block(url, param)?),
                }
            }
            Ok(out)
        }
    }
}

/// A message being built: a plain string while it is one, blocks once merged.
enum Body {
    Text(String),
    Blocks(Vec<Value>),
}

impl Body {
    fn into_blocks(self) -> Vec<Value> {
        match self {
            Self::Text(t) => vec![text_block(&t)],
            Self::Blocks(b) => b,
        }
    }
}

/// The Anthropic Messages request for an OpenAI chat request.
pub(crate) fn request(
    chat: &Chat,
    model: &str,
    stream: bool,
    default_max_tokens: u32,
    store: &ThinkingStore,
) -> Result<Value, GatewayError> {
    if chat.n.is_some_and(|n| n > 1) {
        return Err(GatewayError::invalid_param(
            "n",
            "This model's provider (Anthropic) can only return one choice: `n` must be 1.",
        ));
    }
    let mut body = Map::new();
    body.insert("model".into(), model.into());

    // System: one string when the client sent one plain string, else text blocks.
    let mut system: Vec<Value> = Vec::new();
    let mut plain_system = None;
    if let [Content::Text(t)] = chat.system.as_slice() {
        plain_system = Some(t.clone());
    } else {
        for (i, c) in chat.system.iter().enumerate() {
            system.extend(blocks(c, &format!("system[{i}]"))?);
        }
    }
    if let Some(ResponseFormat::JsonObject) = chat.response_format {
        let text = "Respond with a single valid JSON object and nothing else.";
        if let Some(t) = plain_system.take() {
            system.push(text_block(&t));
        }
        system.push(text_block(text));
    }
    match plain_system {
        Some(t) if !t.is_empty() => {
            body.insert("system".into(), t.into());
        }
        _ if !system.is_empty() => {
            body.insert("system".into(), system.into());
        }
        _ => {}
    }

    // Messages: consecutive same-role messages merged, tool results in one user turn.
    let mut messages: Vec<(&'static str, Body)> = Vec::new();
    let mut last_tool_turn_has_thinking = true;
    for (i, m) in chat.messages.iter().enumerate() {
        let param = format!("messages[{i}].content");
        let (role, content) = match m {
            Message::User(c) => match c {
                Content::Text(t) if !t.is_empty() => ("user", Body::Text(t.clone())),
                c => ("user", Body::Blocks(blocks(c, &param)?)),
            },
            Message::Assistant {
                content,
                tool_calls,
                thinking_blocks,
            } => {
                let mut out = Vec::new();
                if !tool_calls.is_empty() {
                    let replay = match thinking_blocks {
                        Some(b) if !b.is_empty() => Some(b.clone()),
                        _ => store.get(&tool_calls[0].id).map(|b| b.to_vec()),
                    };
                    last_tool_turn_has_thinking = replay.is_some();
                    out.extend(replay.unwrap_or_default());
                }
                match content {
                    Some(Content::Text(t)) if tool_calls.is_empty() && !t.is_empty() => {
                        messages_push(&mut messages, "assistant", Body::Text(t.clone()));
                        continue;
                    }
                    Some(c) => out.extend(blocks(c, &param)?),
                    None => {}
                }
                for call in tool_calls {
                    out.push(json!({
                        "type": "tool_use",
                        "id": sanitize_id(&call.id),
                        "name": call.name,
                        "input": call.arguments_object(),
                    }));
                }
                ("assistant", Body::Blocks(out))
            }
            Message::Tool {
                tool_call_id,
                content,
            } => {
                let mut result = Map::new();
                result.insert("type".into(), "tool_result".into());
                result.insert("tool_use_id".into(), sanitize_id(tool_call_id).into());
                match content {
                    Content::Text(t) if t.is_empty() => {}
                    Content::Text(t) => {
                        result.insert("content".into(), t.as_str().into());
                    }
                    c => {
                        let b = blocks(c, &param)?;
                        if !b.is_empty() {
                            result.insert("content".into(), b.into());
                        }
                    }
                }
                ("user", Body::Blocks(vec![Value::Object(result)]))
            }
        };
        messages_push(&mut messages, role, content);
    }
    let messages: Vec<Value> = messages
        .into_iter()
        .filter_map(|(role, content)| {
            let content = match content {
                Body::Text(t) => Value::String(t),
                Body::Blocks(b) if b.is_empty() => return None,
                Body::Blocks(mut b) => {
                    // tool_result blocks first: they must answer the previous turn.
                    b.sort_by_key(|v| v.get("type").and_then(Value::as_str) != Some("tool_result"));
                    Value::Array(b)
                }
            };
            Some(json!({"role": role, "content": content}))
        })
        .collect();
    body.insert("messages".into(), messages.into());

    // Budgets.
    let mut max_tokens = chat.max_tokens.unwrap_or(u64::from(default_max_tokens));
    let mut thinking = chat.thinking.clone();
    if thinking.is_none() {
        if let Some(effort) = chat.reasoning_effort.as_deref() {
            match BUDGETS.iter().find(|(name, _)| *name == effort) {
                Some(&(_, budget)) => {
                    let budget = if chat.max_tokens.is_none() {
                        max_tokens = max_tokens.max(budget + u64::from(default_max_tokens));
                        budget
                    } else if max_tokens > budget {
                        budget
                    } else if max_tokens > 1024 {
                        max_tokens - 1
                    } else {
                        return Err(GatewayError::invalid_param(
                            "max_completion_tokens",
                            "Reasoning on Anthropic needs `max_completion_tokens` above 1024 (the smallest thinking budget).",
                        ));
                    };
                    thinking = Some(json!({"type": "enabled", "budget_tokens": budget}));
                }
                None if matches!(effort, "none" | "minimal") => {}
                None => {
                    return Err(GatewayError::invalid_param(
                        "reasoning_effort",
                        format!("Invalid value for 'reasoning_effort': `{effort}` (use low, medium or high)."),
                    ))
                }
            }
        }
    }
    body.insert("max_tokens".into(), max_tokens.into());
    if let Some(thinking) = thinking {
        if last_tool_turn_has_thinking {
            body.insert("thinking".into(), thinking);
        } else {
            tracing::debug!(
                "thinking blocks of the last tool turn are unknown: sending without thinking"
            );
        }
    }

    if let Some(t) = chat.temperature {
        body.insert("temperature".into(), t.clamp(0.0, 1.0).into());
    } else if let Some(p) = chat.top_p {
        body.insert("top_p".into(), p.into());
    }
    let stops: Vec<&String> = chat.stop.iter().filter(|s| !s.trim().is_empty()).collect();
    if !stops.is_empty() {
        body.insert("stop_sequences".into(), json!(stops));
    }
    if let Some(user) = &chat.user {
        body.insert("metadata".into(), json!({"user_id": user}));
    }

    // Tools.
    if !chat.tools.is_empty() {
        let tools: Vec<Value> = chat
            .tools
            .iter()
            .map(|t| {
                let mut tool = Map::new();
                tool.insert("name".into(), t.name.as_str().into());
                if let Some(d) = &t.description {
                    tool.insert("description".into(), d.as_str().into());
                }
                tool.insert(
                    "input_schema".into(),
                    t.parameters
                        .clone()
                        .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                );
                Value::Object(tool)
            })
            .collect();
        body.insert("tools".into(), tools.into());
        let mut choice = match &chat.tool_choice {
            None if chat.parallel_tool_calls.is_none() => None,
            None | Some(ToolChoice::Auto) => Some(json!({"type": "auto"})),
            Some(ToolChoice::None) => Some(json!({"type": "none"})),
            Some(ToolChoice::Required) => Some(json!({"type": "any"})),
            Some(ToolChoice::Function(name)) => Some(json!({"type": "tool", "name": name})),
        };
        if let (Some(Value::Object(c)), Some(parallel)) = (&mut choice, chat.parallel_tool_calls) {
            if c.get("type").and_then(Value::as_str) != Some("none") {
                c.insert("disable_parallel_tool_use".into(), (!parallel).into());
            }
        }
        if let Some(choice) = choice {
            body.insert("tool_choice".into(), choice);
        }
    }
    if let Some(ResponseFormat::JsonSchema { schema, .. }) = &chat.response_format {
        body.insert(
            "output_config".into(),
            json!({"format": {"type": "json_schema", "schema": schema}}),
        );
    }
    // Anthropic-only fields a client may send through the OpenAI SDK's `extra_body`.
    for key in [
        "top_k",
        "cache_control",
        "service_tier",
        "container",
        "mcp_servers",
    ] {
        if let Some(v) = chat.raw.get(key) {
            body.insert(key.into(), v.clone());
        }
    }
    if stream {
        body.insert("stream".into(), true.into());
    }
    Ok(Value::Object(body))
}

fn messages_push(messages: &mut Vec<(&'static str, Body)>, role: &'static str, content: Body) {
    match messages.last_mut() {
        Some((last, prev)) if *last == role => {
            let mut merged = std::mem::replace(prev, Body::Blocks(Vec::new())).into_blocks();
            merged.extend(content.into_blocks());
            *prev = Body::Blocks(merged);
        }
        _ => messages.push((role, content)),
    }
}

/// Anthropic's usage object; every field optional (streams report it in pieces).
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub(crate) struct NativeUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens_details: Option<OutputDetails>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
struct OutputDetails {
    thinking_tokens: Option<u64>,
}

impl NativeUsage {
    /// Later values win, field by field (stream usage is cumulative).
    fn merge(&mut self, later: &NativeUsage) {
        let pick = |a: &mut Option<u64>, b: Option<u64>| {
            if b.is_some() {
                *a = b;
            }
        };
        pick(&mut self.input_tokens, later.input_tokens);
        pick(&mut self.output_tokens, later.output_tokens);
        pick(
            &mut self.cache_creation_input_tokens,
            later.cache_creation_input_tokens,
        );
        pick(
            &mut self.cache_read_input_tokens,
            later.cache_read_input_tokens,
        );
        if later.output_tokens_details.is_some() {
            self.output_tokens_details = later.output_tokens_details;
        }
    }

    fn openai(&self) -> Usage {
        let creation = self.cache_creation_input_tokens.unwrap_or(0);
        let read = self.cache_read_input_tokens.unwrap_or(0);
        let prompt = self.input_tokens.unwrap_or(0) + creation + read;
        let completion = self.output_tokens.unwrap_or(0);
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            cached_tokens: read,
            cache_creation_tokens: self.cache_creation_input_tokens,
            reasoning_tokens: self
                .output_tokens_details
                .and_then(|d| d.thinking_tokens)
                .unwrap_or(0),
        }
    }
}

fn finish_reason(stop: Option<&str>) -> Finish {
    match stop {
        Some("tool_use") => Finish::ToolCalls,
        Some("max_tokens" | "model_context_window_exceeded") => Finish::Length,
        Some("refusal") => Finish::ContentFilter,
        _ => Finish::Stop,
    }
}

#[derive(Deserialize)]
struct NativeMessage<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow, default)]
    model: Cow<'a, str>,
    #[serde(default)]
    content: Vec<Value>,
    #[serde(borrow, default)]
    stop_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    stop_details: Option<Value>,
    #[serde(default)]
    usage: NativeUsage,
}

/// An Anthropic Message as an OpenAI `chat.completion` (JSON bytes).
pub(crate) fn response(
    body: &[u8],
    provider: &str,
    store: &ThinkingStore,
) -> Result<Vec<u8>, GatewayError> {
    let message: NativeMessage<'_> = serde_json::from_slice(body).map_err(|e| {
        GatewayError::upstream_protocol(provider, format_args!("not an Anthropic message: {e}"))
    })?;
    let mut text: Option<String> = None;
    let mut reasoning: Option<String> = None;
    let mut thinking_blocks = Vec::new();
    let mut tool_calls = Vec::new();
    for block in &message.content {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text
                .get_or_insert_with(String::new)
                .push_str(block.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("thinking") => {
                reasoning
                    .get_or_insert_with(String::new)
                    .push_str(block.get("thinking").and_then(Value::as_str).unwrap_or(""));
                thinking_blocks.push(block.clone());
            }
            Some("redacted_thinking") => thinking_blocks.push(block.clone()),
            Some("tool_use") => {
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                tool_calls.push(OutToolCall {
                    id: block
                        .get("id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    kind: "function",
                    function: OutFunction {
                        name: block
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                        arguments: input.to_string(),
                    },
                });
            }
            _ => {}
        }
    }
    let finish = finish_reason(message.stop_reason.as_deref());
    let refusal = (finish == Finish::ContentFilter)
        .then(|| {
            message
                .stop_details
                .as_ref()
                .and_then(|d| d.get("explanation"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .flatten();
    let ids: Vec<String> = tool_calls.iter().map(|c| c.id.clone()).collect();
    store.put(&ids, thinking_blocks.clone());
    let completion = Completion {
        id: &message.id,
        object: "chat.completion",
        created: now(),
        model: &message.model,
        choices: vec![OutChoice {
            index: 0,
            message: OutMessage {
                role: "assistant",
                content: text,
                refusal,
                reasoning_content: reasoning,
                thinking_blocks: (!thinking_blocks.is_empty()).then_some(thinking_blocks),
                tool_calls,
            },
            logprobs: None,
            finish_reason: finish,
        }],
        usage: message.usage.openai(),
        system_fingerprint: None,
    };
    Ok(serde_json::to_vec(&completion).expect("a completion serialises"))
}

#[derive(Deserialize)]
struct ErrorEnvelope<'a> {
    #[serde(borrow, default)]
    error: Option<ErrorBody<'a>>,
    #[serde(borrow, default)]
    request_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ErrorBody<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
}

/// An Anthropic error (`type`, HTTP status) in OpenAI's shape, statuses remapped where
/// OpenAI clients would misread them (529 → 503, 402 → 429).
fn mapped_error(kind: Option<&str>, status: StatusCode, message: String) -> GatewayError {
    let by_type = match kind {
        Some("invalid_request_error") => Some(400),
        Some("authentication_error") => Some(401),
        Some("billing_error") => Some(402),
        Some("permission_error") => Some(403),
        Some("not_found_error") => Some(404),
        Some("request_too_large") => Some(413),
        Some("rate_limit_error") => Some(429),
        Some("api_error") => Some(500),
        Some("timeout_error") => Some(504),
        Some("overloaded_error") => Some(529),
        _ => None,
    };
    let native = if status.is_success() {
        by_type.unwrap_or(500)
    } else {
        status.as_u16()
    };
    let (out, error_type, code): (u16, &str, Option<&str>) = match native {
        400 if message.contains("prompt is too long") => (
            400,
            "invalid_request_error",
            Some("context_length_exceeded"),
        ),
        400 => (400, "invalid_request_error", None),
        401 => (401, "invalid_request_error", Some("invalid_api_key")),
        402 => (429, "insufficient_quota", Some("insufficient_quota")),
        403 => (403, "permission_error", None),
        404 => (404, "invalid_request_error", Some("model_not_found")),
        413 => (413, "invalid_request_error", None),
        429 => (429, "rate_limit_exceeded", Some("rate_limit_exceeded")),
        529 => (503, "server_error", Some("overloaded")),
        s if s >= 500 => (s, "server_error", None),
        s => (s, "invalid_request_error", None),
    };
    let status = StatusCode::from_u16(out).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut err = GatewayError::new(ErrorKind::UpstreamStatus, status, error_type, message);
    if let Some(code) = code {
        err = err.with_code(code);
        if code == "context_length_exceeded" {
            err = err.with_context_window_exceeded();
        }
    }
    err
}

/// An Anthropic error response as the client's error, keeping the message, the request
/// id (in the message) and `retry-after`.
pub(crate) fn error(
    provider: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> GatewayError {
    let parsed: Option<ErrorEnvelope<'_>> = serde_json::from_slice(body).ok();
    let (kind, message, request_id) = match &parsed {
        Some(e) => (
            e.error.as_ref().and_then(|b| b.kind.as_deref()),
            e.error.as_ref().and_then(|b| b.message.as_deref()),
            e.request_id.as_deref(),
        ),
        None => (None, None, None),
    };
    let request_id = request_id.or_else(|| headers.get("request-id").and_then(|v| v.to_str().ok()));
    let mut message = match message {
        Some(m) => m.to_owned(),
        None => {
            let text = String::from_utf8_lossy(body);
            let snippet: String = text.trim().chars().take(500).collect();
            format!("Upstream `{provider}` answered {status}: {snippet}")
        }
    };
    if let Some(id) = request_id {
        message.push_str(&format!(" (upstream request id: {id})"));
    }
    let mut err = mapped_error(kind, status, message);
    if let Some(value) = headers.get(RETRY_AFTER) {
        err = err.with_retry_after(value.clone());
    }
    err
}

// ---------------------------------------------------------------------------------------
// Streams

#[derive(Deserialize)]
struct TypeOnly<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
}

#[derive(Deserialize)]
struct MessageStart<'a> {
    #[serde(borrow)]
    message: StartMessage<'a>,
}

#[derive(Deserialize)]
struct StartMessage<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow, default)]
    model: Cow<'a, str>,
    #[serde(default)]
    usage: NativeUsage,
}

#[derive(Deserialize)]
struct BlockStart<'a> {
    index: usize,
    #[serde(borrow)]
    content_block: StartBlock<'a>,
}

#[derive(Deserialize)]
struct StartBlock<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    thinking: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    data: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct BlockDelta<'a> {
    index: usize,
    #[serde(borrow)]
    delta: DeltaBody<'a>,
}

#[derive(Deserialize)]
struct DeltaBody<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    partial_json: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    thinking: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    signature: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct BlockStop {
    index: usize,
}

#[derive(Deserialize)]
struct MessageDelta<'a> {
    #[serde(borrow)]
    delta: MessageDeltaBody<'a>,
    #[serde(default)]
    usage: Option<NativeUsage>,
}

#[derive(Deserialize)]
struct MessageDeltaBody<'a> {
    #[serde(borrow, default)]
    stop_reason: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    stop_details: Option<StopDetails<'a>>,
}

/// Why the model stopped, in words (a refusal's `explanation`).
#[derive(Deserialize)]
struct StopDetails<'a> {
    #[serde(borrow, default)]
    explanation: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct StreamError<'a> {
    #[serde(borrow)]
    error: ErrorBody<'a>,
}

/// What a content block of the stream is.
enum Block {
    Text,
    Tool { index: usize, sent_arguments: bool },
    Thinking { text: String, signature: String },
    Other,
}

/// Anthropic SSE → OpenAI chunks.
pub(crate) struct AnthropicStream {
    provider: Arc<str>,
    include_usage: bool,
    writer: ChunkWriter,
    usage: NativeUsage,
    blocks: Vec<(usize, Block)>,
    tools: usize,
    tool_ids: Vec<String>,
    thinking: Vec<Value>,
    finished: bool,
    store: Option<ThinkingStore>,
}

impl AnthropicStream {
    pub(crate) fn new(
        provider: Arc<str>,
        include_usage: bool,
        store: Option<ThinkingStore>,
    ) -> Self {
        Self {
            provider,
            include_usage,
            writer: ChunkWriter::default(),
            usage: NativeUsage::default(),
            blocks: Vec::new(),
            tools: 0,
            tool_ids: Vec::new(),
            thinking: Vec::new(),
            finished: false,
            store,
        }
    }

    fn parse<'a, T: Deserialize<'a>>(&self, data: &'a [u8]) -> Result<T, GatewayError> {
        serde_json::from_slice(data).map_err(|e| {
            GatewayError::upstream_protocol(&self.provider, format_args!("bad stream event: {e}"))
        })
    }

    fn block(&mut self, index: usize) -> Option<&mut Block> {
        self.blocks
            .iter_mut()
            .rev()
            .find(|(i, _)| *i == index)
            .map(|(_, b)| b)
    }

    fn started(&self) -> Result<(), GatewayError> {
        if self.writer.is_started() {
            Ok(())
        } else {
            Err(GatewayError::upstream_protocol(
                &self.provider,
                "stream event before message_start",
            ))
        }
    }
}

impl StreamTranslator for AnthropicStream {
    fn event(
        &mut self,
        name: Option<&[u8]>,
        data: &[u8],
        out: &mut BytesMut,
    ) -> Result<bool, GatewayError> {
        let owned;
        let kind: &str = match name.and_then(|n| std::str::from_utf8(n).ok()) {
            Some(n) if !n.is_empty() => n,
            _ => {
                owned = self.parse::<TypeOnly<'_>>(data)?.kind.into_owned();
                &owned
            }
        };
        match kind {
            "message_start" => {
                let start: MessageStart<'_> = self.parse(data)?;
                self.writer = ChunkWriter::new(&start.message.id, &start.message.model, now());
                self.usage.merge(&start.message.usage);
                self.writer.delta(
                    out,
                    0,
                    &Delta {
                        role: Some("assistant"),
                        content: Some(""),
                        ..Delta::default()
                    },
                );
            }
            "content_block_start" => {
                self.started()?;
                let start: BlockStart<'_> = self.parse(data)?;
                let b = start.content_block;
                let block = match &*b.kind {
                    "text" => {
                        if let Some(t) = b.text.as_deref().filter(|t| !t.is_empty()) {
                            self.writer.delta(
                                out,
                                0,
                                &Delta {
                                    content: Some(t),
                                    ..Delta::default()
                                },
                            );
                        }
                        Block::Text
                    }
                    "tool_use" => {
                        let index = self.tools;
                        self.tools += 1;
                        let id = b.id.as_deref().unwrap_or_default();
                        self.tool_ids.push(id.to_owned());
                        self.writer.delta(
                            out,
                            0,
                            &Delta {
                                tool_calls: Some([DeltaToolCall {
                                    index,
                                    id: Some(id),
                                    kind: Some("function"),
                                    function: DeltaFunction {
                                        name: Some(b.name.as_deref().unwrap_or_default()),
                                        arguments: "",
                                    },
                                }]),
                                ..Delta::default()
                            },
                        );
                        Block::Tool {
                            index,
                            sent_arguments: false,
                        }
                    }
                    "thinking" => {
                        let text = b.thinking.as_deref().unwrap_or_default();
                        if !text.is_empty() {
                            self.writer.delta(
                                out,
                                0,
                                &Delta {
                                    reasoning_content: Some(text),
                                    ..Delta::default()
                                },
                            );
                        }
                        Block::Thinking {
                            text: text.to_owned(),
                            signature: String::new(),
                        }
                    }
                    "redacted_thinking" => {
                        let block = json!({
                            "type": "redacted_thinking",
                            "data": b.data.as_deref().unwrap_or_default(),
                        });
                        let delta = Delta {
                            thinking_blocks: Some(std::slice::from_ref(&block)),
                            ..Delta::default()
                        };
                        self.writer.delta(out, 0, &delta);
                        self.thinking.push(block);
                        Block::Other
                    }
                    _ => Block::Other,
                };
                self.blocks.push((start.index, block));
            }
            "content_block_delta" => {
                self.started()?;
                let delta: BlockDelta<'_> = self.parse(data)?;
                let d = delta.delta;
                let writer = std::mem::take(&mut self.writer);
                let block = self.block(delta.index);
                match (&*d.kind, block) {
                    ("text_delta", _) => {
                        if let Some(t) = d.text.as_deref().filter(|t| !t.is_empty()) {
                            writer.delta(
                                out,
                                0,
                                &Delta {
                                    content: Some(t),
                                    ..Delta::default()
                                },
                            );
                        }
                    }
                    (
                        "input_json_delta",
                        Some(Block::Tool {
                            index,
                            sent_arguments,
                        }),
                    ) => {
                        if let Some(json) = d.partial_json.as_deref().filter(|j| !j.is_empty()) {
                            *sent_arguments = true;
                            writer.delta(
                                out,
                                0,
                                &Delta {
                                    tool_calls: Some([DeltaToolCall {
                                        index: *index,
                                        id: None,
                                        kind: None,
                                        function: DeltaFunction {
                                            name: None,
                                            arguments: json,
                                        },
                                    }]),
                                    ..Delta::default()
                                },
                            );
                        }
                    }
                    ("thinking_delta", block) => {
                        if let Some(t) = d.thinking.as_deref().filter(|t| !t.is_empty()) {
                            if let Some(Block::Thinking { text, .. }) = block {
                                text.push_str(t);
                            }
                            writer.delta(
                                out,
                                0,
                                &Delta {
                                    reasoning_content: Some(t),
                                    ..Delta::default()
                                },
                            );
                        }
                    }
                    ("signature_delta", Some(Block::Thinking { signature, .. })) => {
                        signature.push_str(d.signature.as_deref().unwrap_or_default());
                    }
                    _ => {}
                }
                self.writer = writer;
            }
            "content_block_stop" => {
                self.started()?;
                let stop: BlockStop = self.parse(data)?;
                let writer = std::mem::take(&mut self.writer);
                match self.block(stop.index) {
                    Some(Block::Tool {
                        index,
                        sent_arguments: false,
                    }) => {
                        // A no-argument tool streams only `""`: OpenAI clients expect "{}".
                        writer.delta(
                            out,
                            0,
                            &Delta {
                                tool_calls: Some([DeltaToolCall {
                                    index: *index,
                                    id: None,
                                    kind: None,
                                    function: DeltaFunction {
                                        name: None,
                                        arguments: "{}",
                                    },
                                }]),
                                ..Delta::default()
                            },
                        );
                    }
                    Some(Block::Thinking { text, signature }) => {
                        let block = json!({
                            "type": "thinking",
                            "thinking": std::mem::take(text),
                            "signature": std::mem::take(signature),
                        });
                        let delta = Delta {
                            thinking_blocks: Some(std::slice::from_ref(&block)),
                            ..Delta::default()
                        };
                        writer.delta(out, 0, &delta);
                        self.thinking.push(block);
                    }
                    _ => {}
                }
                self.writer = writer;
            }
            "message_delta" => {
                self.started()?;
                let delta: MessageDelta<'_> = self.parse(data)?;
                if let Some(usage) = &delta.usage {
                    self.usage.merge(usage);
                }
                if let Some(stop) = delta.delta.stop_reason.as_deref() {
                    if !self.finished {
                        self.finished = true;
                        let finish = finish_reason(Some(stop));
                        // A refusal's explanation is the message's `refusal`, as in the
                        // JSON translation.
                        let explanation = delta
                            .delta
                            .stop_details
                            .as_ref()
                            .and_then(|d| d.explanation.as_deref())
                            .filter(|_| finish == Finish::ContentFilter);
                        if let Some(refusal) = explanation {
                            let delta = Delta {
                                refusal: Some(refusal),
                                ..Delta::default()
                            };
                            self.writer.delta(out, 0, &delta);
                        }
                        self.writer.finish(out, 0, finish);
                    }
                }
            }
            "message_stop" => {
                self.started()?;
                if !self.finished {
                    self.finished = true;
                    self.writer.finish(out, 0, Finish::Stop);
                }
                self.end(out)?;
                return Ok(false);
            }
            "error" => {
                let e: StreamError<'_> = self.parse(data)?;
                let message = e
                    .error
                    .message
                    .as_deref()
                    .unwrap_or("upstream stream error")
                    .to_owned();
                return Err(mapped_error(
                    e.error.kind.as_deref(),
                    StatusCode::OK,
                    message,
                ));
            }
            _ => {} // ping, and event types added later
        }
        Ok(true)
    }

    fn end(&mut self, out: &mut BytesMut) -> Result<(), GatewayError> {
        if !self.writer.is_started() || !self.finished {
            return Err(GatewayError::upstream_protocol(
                &self.provider,
                "the stream ended before the message was complete",
            ));
        }
        if self.include_usage {
            self.writer.usage(out, &self.usage.openai());
        }
        ChunkWriter::done(out);
        if let Some(store) = &self.store {
            store.put(&self.tool_ids, std::mem::take(&mut self.thinking));
        }
        Ok(())
    }
}
