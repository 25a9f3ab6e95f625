//! Anthropic Messages (what the client sent) ⇄ OpenAI Chat Completions (what the upstream
//! speaks), for clients such as Claude Code served by a provider that is not Anthropic.
//!
//! The chat side is the gateway's hub: a Messages request becomes a chat request, which
//! each executor then sends in its own API (as is to OpenAI-compatible servers, translated
//! to Gemini); the chat answer comes back as an Anthropic `message` or, streamed, as
//! exactly Anthropic's event sequence (`message_start`, `ping`, `content_block_start` /
//! `content_block_delta` / `content_block_stop` per block, `message_delta` with the stop
//! reason and usage, `message_stop`; `error` when the upstream fails). A request for an
//! Anthropic upstream never comes here: its bytes pass through.
//!
//! What has no chat counterpart: `top_k` and `cache_control` are dropped (cache hints mean
//! nothing to other providers); Anthropic's server tools (web search, code execution,
//! computer use…) are a 400; a thinking budget becomes `reasoning_effort`, and reasoning
//! the upstream streams (`reasoning_content`, or `reasoning` as OpenRouter names it) comes
//! back as `thinking` blocks without a signature; a tool result marked `is_error` reaches
//! the model prefixed with `Error: `.

use bytes::{BufMut, BytesMut};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::chunk::{self, ChatUsage, Chunk, ChunkToolCall};
use super::stream::StreamTranslator;
use crate::error::GatewayError;
use crate::protocol::Protocol;

fn bad(param: &str, message: impl Into<String>) -> GatewayError {
    GatewayError::invalid_param(param, message)
}

/// `reasoning_effort` for a thinking budget (the inverse of the Anthropic translator's
/// budgets: up to 1024 tokens low, up to 4096 medium, more high).
fn effort(budget: u64) -> &'static str {
    match budget {
        0..=1024 => "low",
        1025..=4096 => "medium",
        _ => "high",
    }
}

/// The OpenAI chat request for an Anthropic Messages request body.
pub(crate) fn to_chat(body: &[u8]) -> Result<Value, GatewayError> {
    let request: Map<String, Value> = serde_json::from_slice(body).map_err(|err| {
        GatewayError::bad_request(format!(
            "We could not parse the JSON body of your request: {err}."
        ))
    })?;
    let mut chat = Map::new();
    chat.insert(
        "model".into(),
        request.get("model").cloned().unwrap_or(Value::Null),
    );
    let mut messages = Vec::new();
    match request.get("system") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => messages.push(json!({"role": "system", "content": text})),
        Some(Value::Array(blocks)) => {
            let text = joined_text(blocks, "system")?;
            if !text.is_empty() {
                messages.push(json!({"role": "system", "content": text}));
            }
        }
        Some(_) => {
            return Err(bad(
                "system",
                "system: Input should be a valid string or a list of text blocks",
            ))
        }
    }
    let Some(Value::Array(turns)) = request.get("messages") else {
        return Err(bad("messages", "messages: Input should be a valid list"));
    };
    for (i, turn) in turns.iter().enumerate() {
        let param = format!("messages.{i}");
        match turn.get("role").and_then(Value::as_str) {
            Some("user") => user_turn(turn.get("content"), &param, &mut messages)?,
            Some("assistant") => messages.push(assistant_turn(turn.get("content"), &param)?),
            // Instructions mid-conversation (Claude Code sends them as of 2.1).
            Some("system") => {
                let text = match turn.get("content") {
                    Some(Value::String(text)) => text.clone(),
                    Some(Value::Array(blocks)) => joined_text(blocks, &param)?,
                    _ => return Err(bad(&param, format!("{param}.content: Field required"))),
                };
                messages.push(json!({"role": "system", "content": text}));
            }
            _ => {
                return Err(bad(
                    &param,
                    format!("{param}.role: Input should be 'user' or 'assistant'"),
                ))
            }
        }
    }
    chat.insert("messages".into(), Value::Array(messages));
    if let Some(max) = request.get("max_tokens") {
        chat.insert("max_tokens".into(), max.clone());
    }
    for field in ["temperature", "top_p"] {
        if let Some(value) = request.get(field).filter(|v| !v.is_null()) {
            chat.insert(field.into(), value.clone());
        }
    }
    if let Some(stops) = request.get("stop_sequences").filter(|v| !v.is_null()) {
        chat.insert("stop".into(), stops.clone());
    }
    if let Some(user) = request
        .get("metadata")
        .and_then(|m| m.get("user_id"))
        .and_then(Value::as_str)
    {
        chat.insert("user".into(), Value::from(user));
    }
    if request.get("stream").and_then(Value::as_bool) == Some(true) {
        chat.insert("stream".into(), Value::Bool(true));
        chat.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(thinking) = request.get("thinking").filter(|v| !v.is_null()) {
        if thinking.get("type").and_then(Value::as_str) == Some("enabled") {
            let budget = thinking
                .get("budget_tokens")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            chat.insert("reasoning_effort".into(), Value::from(effort(budget)));
        }
    }
    let tools = match request.get("tools") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(tools)) => tools
            .iter()
            .enumerate()
            .map(|(i, tool)| function_tool(tool, i))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad("tools", "tools: Input should be a valid list")),
    };
    if !tools.is_empty() {
        chat.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = request.get("tool_choice").filter(|v| !v.is_null()) {
            let (choice, parallel) = tool_choice(choice)?;
            chat.insert("tool_choice".into(), choice);
            if parallel == Some(false) {
                chat.insert("parallel_tool_calls".into(), Value::Bool(false));
            }
        }
    }
    Ok(Value::Object(chat))
}

/// The text of a list of text blocks (a system prompt, a tool result), joined.
fn joined_text(blocks: &[Value], param: &str) -> Result<String, GatewayError> {
    let mut text = String::new();
    for (i, block) in blocks.iter().enumerate() {
        match (
            block.get("type").and_then(Value::as_str),
            block.get("text").and_then(Value::as_str),
        ) {
            (Some("text"), Some(t)) => {
                if !text.is_empty() {
                    text.push_str("\n\n");
                }
                text.push_str(t);
            }
            _ => {
                return Err(bad(
                    param,
                    format!("{param}.{i}: only text blocks are supported here"),
                ))
            }
        }
    }
    Ok(text)
}

/// A user turn: its `tool_result` blocks become `tool` messages (first, as they answer the
/// previous assistant turn), the rest one user message.
fn user_turn(
    content: Option<&Value>,
    param: &str,
    out: &mut Vec<Value>,
) -> Result<(), GatewayError> {
    let blocks = match content {
        Some(Value::String(text)) => {
            out.push(json!({"role": "user", "content": text}));
            return Ok(());
        }
        Some(Value::Array(blocks)) => blocks,
        _ => return Err(bad(param, format!("{param}.content: Field required"))),
    };
    let mut parts = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        let p = format!("{param}.content.{i}");
        match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                let text = block
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                parts.push(json!({"type": "text", "text": text}));
            }
            Some("image") => parts
                .push(json!({"type": "image_url", "image_url": {"url": source_url(block, &p)?}})),
            Some("document") => parts.push(document_part(block, &p)?),
            Some("tool_result") => {
                let id = block
                    .get("tool_use_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad(&p, format!("{p}.tool_use_id: Field required")))?;
                let mut text = match block.get("content") {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(items)) => tool_result_text(items),
                    Some(_) => {
                        return Err(bad(
                            &p,
                            format!("{p}.content: Input should be a string or a list of blocks"),
                        ))
                    }
                };
                if block.get("is_error").and_then(Value::as_bool) == Some(true) {
                    text.insert_str(0, "Error: ");
                }
                out.push(json!({"role": "tool", "tool_call_id": id, "content": text}));
            }
            // Reasoning echoed back in a user turn means nothing to another provider.
            Some("thinking" | "redacted_thinking") => {}
            Some(other) => {
                return Err(bad(
                    &p,
                    format!(
                        "{p}: content blocks of type `{other}` cannot be sent to this provider"
                    ),
                ))
            }
            None => return Err(bad(&p, format!("{p}.type: Field required"))),
        }
    }
    if !parts.is_empty() {
        // A lone text block is sent as a string: every OpenAI-compatible server reads that.
        let content = match parts.as_slice() {
            [only] if only["type"] == "text" => only["text"].clone(),
            _ => Value::Array(parts),
        };
        out.push(json!({"role": "user", "content": content}));
    }
    Ok(())
}

/// A tool result's blocks as text (images in tool results have no chat counterpart).
fn tool_result_text(items: &[Value]) -> String {
    let mut text = String::new();
    for item in items {
        match item.get("type").and_then(Value::as_str) {
            Some("text") => {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(item.get("text").and_then(Value::as_str).unwrap_or_default());
            }
            Some(other) => {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(&format!("[{other} omitted]"));
            }
            None => {}
        }
    }
    text
}

/// An image's `source` as the URL chat requests carry (a `data:` URL for base64).
fn source_url(block: &Value, param: &str) -> Result<String, GatewayError> {
    let source = block
        .get("source")
        .ok_or_else(|| bad(param, format!("{param}.source: Field required")))?;
    match source.get("type").and_then(Value::as_str) {
        Some("base64") => {
            let media = source
                .get("media_type")
                .and_then(Value::as_str)
                .unwrap_or("application/octet-stream");
            let data = source
                .get("data")
                .and_then(Value::as_str)
                .unwrap_or_default();
            Ok(format!("data:{media};base64,{data}"))
        }
        Some("url") => Ok(source
            .get("url")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()),
        _ => Err(bad(
            param,
            format!("{param}.source: only base64 and url sources can be sent to this provider"),
        )),
    }
}

/// A document block: plain text inline, a PDF as chat's `file` part.
fn document_part(block: &Value, param: &str) -> Result<Value, GatewayError> {
    let source = block
        .get("source")
        .ok_or_else(|| bad(param, format!("{param}.source: Field required")))?;
    match source.get("type").and_then(Value::as_str) {
        Some("text") => Ok(
            json!({"type": "text", "text": source.get("data").and_then(Value::as_str).unwrap_or_default()}),
        ),
        Some("base64" | "url") => {
            let name = block
                .get("title")
                .and_then(Value::as_str)
                .unwrap_or("document.pdf");
            Ok(
                json!({"type": "file", "file": {"file_data": source_url(block, param)?, "filename": name}}),
            )
        }
        _ => Err(bad(
            param,
            format!("{param}.source: this document source cannot be sent to this provider"),
        )),
    }
}

/// An assistant turn: text, `tool_use` as tool calls, thinking as `reasoning_content` plus
/// the blocks themselves (`thinking_blocks`, LiteLLM's field, which the Anthropic
/// translator replays).
fn assistant_turn(content: Option<&Value>, param: &str) -> Result<Value, GatewayError> {
    let blocks = match content {
        Some(Value::String(text)) => return Ok(json!({"role": "assistant", "content": text})),
        Some(Value::Array(blocks)) => blocks,
        _ => return Err(bad(param, format!("{param}.content: Field required"))),
    };
    let (mut text, mut reasoning) = (String::new(), String::new());
    let (mut calls, mut thinking) = (Vec::new(), Vec::new());
    for (i, block) in blocks.iter().enumerate() {
        let p = format!("{param}.content.{i}");
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(
                block
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            ),
            Some("tool_use") => {
                let id = block.get("id").and_then(Value::as_str).unwrap_or_default();
                let name = block
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                let arguments = serde_json::to_string(&input).expect("a value serialises");
                calls.push(json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}));
            }
            Some("thinking") => {
                reasoning.push_str(
                    block
                        .get("thinking")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                );
                thinking.push(block.clone());
            }
            Some("redacted_thinking") => thinking.push(block.clone()),
            Some(other) => {
                return Err(bad(
                    &p,
                    format!(
                        "{p}: content blocks of type `{other}` cannot be sent to this provider"
                    ),
                ))
            }
            None => return Err(bad(&p, format!("{p}.type: Field required"))),
        }
    }
    let mut message = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::from(text) }});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    if !reasoning.is_empty() {
        message["reasoning_content"] = Value::from(reasoning);
    }
    if !thinking.is_empty() {
        message["thinking_blocks"] = Value::Array(thinking);
    }
    Ok(message)
}

/// A custom tool as a chat function tool; Anthropic's own tools are refused by name.
fn function_tool(tool: &Value, i: usize) -> Result<Value, GatewayError> {
    let param = format!("tools.{i}");
    if let Some(kind) = tool
        .get("type")
        .and_then(Value::as_str)
        .filter(|k| *k != "custom")
    {
        let name = tool.get("name").and_then(Value::as_str).unwrap_or(kind);
        return Err(bad(&param, format!("{param}: the tool `{name}` (type `{kind}`) is run by Anthropic's API and cannot be used with a model served by another provider")));
    }
    let name = tool
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(&param, format!("{param}.name: Field required")))?;
    let mut function = json!({"name": name, "parameters": tool.get("input_schema").cloned().unwrap_or_else(|| json!({"type": "object"}))});
    if let Some(description) = tool.get("description").filter(|d| d.is_string()) {
        function["description"] = description.clone();
    }
    Ok(json!({"type": "function", "function": function}))
}

/// Chat's `tool_choice` (and whether parallel calls stay allowed) for Anthropic's.
fn tool_choice(choice: &Value) -> Result<(Value, Option<bool>), GatewayError> {
    let parallel = choice
        .get("disable_parallel_tool_use")
        .and_then(Value::as_bool)
        .map(|disabled| !disabled);
    let chat = match choice.get("type").and_then(Value::as_str) {
        Some("auto") => json!("auto"),
        Some("any") => json!("required"),
        Some("none") => json!("none"),
        Some("tool") => {
            let name = choice
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("tool_choice", "tool_choice.name: Field required"))?;
            json!({"type": "function", "function": {"name": name}})
        }
        _ => {
            return Err(bad(
                "tool_choice",
                "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'",
            ))
        }
    };
    Ok((chat, parallel))
}

/// Anthropic's `stop_reason` for chat's `finish_reason`.
fn stop_reason(finish: &str) -> &'static str {
    match finish {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// Anthropic's usage: `input_tokens` excludes what was read from or written to the cache.
#[derive(Debug, Default, Clone, Copy, Serialize)]
struct MessageUsage {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    output_tokens: u64,
}

impl From<ChatUsage> for MessageUsage {
    fn from(usage: ChatUsage) -> Self {
        let read = usage.cached_tokens();
        let creation = usage.cache_creation_tokens();
        Self {
            input_tokens: usage.prompt_tokens.saturating_sub(read + creation),
            cache_creation_input_tokens: creation,
            cache_read_input_tokens: read,
            output_tokens: usage.completion_tokens,
        }
    }
}

/// A message id Anthropic's clients recognise (`msg_…`) for a chat completion's id.
fn message_id(chat_id: &str) -> String {
    if chat_id.starts_with("msg_") {
        chat_id.to_owned()
    } else {
        let id: String = chat_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("msg_{id}")
    }
}

/// An OpenAI `chat.completion` as an Anthropic `message` (JSON bytes).
pub(crate) fn from_chat(body: &[u8], model: &str, provider: &str) -> Result<Vec<u8>, GatewayError> {
    let chat: Value = serde_json::from_slice(body).map_err(|err| {
        GatewayError::upstream_protocol(provider, format_args!("not a chat completion: {err}"))
    })?;
    let message = &chat["choices"][0]["message"];
    let mut content = Vec::new();
    match message.get("thinking_blocks") {
        Some(Value::Array(blocks)) if !blocks.is_empty() => content.extend(blocks.iter().cloned()),
        _ => {
            let reasoning = message["reasoning_content"]
                .as_str()
                .or(message["reasoning"].as_str());
            if let Some(thinking) = reasoning.filter(|t| !t.is_empty()) {
                content.push(json!({"type": "thinking", "thinking": thinking, "signature": ""}));
            }
        }
    }
    for field in ["content", "refusal"] {
        if let Some(text) = message[field].as_str().filter(|t| !t.is_empty()) {
            content.push(json!({"type": "text", "text": text}));
        }
    }
    if let Some(calls) = message["tool_calls"].as_array() {
        for call in calls {
            let arguments = call["function"]["arguments"].as_str().unwrap_or_default();
            let input = match serde_json::from_str::<Value>(arguments) {
                Ok(v @ Value::Object(_)) => v,
                _ => json!({}),
            };
            content.push(json!({
                "type": "tool_use",
                "id": call["id"].as_str().unwrap_or_default(),
                "name": call["function"]["name"].as_str().unwrap_or_default(),
                "input": input,
            }));
        }
    }
    let finish = chat["choices"][0]["finish_reason"]
        .as_str()
        .unwrap_or("stop");
    let usage: ChatUsage = serde_json::from_value(chat["usage"].clone()).unwrap_or_default();
    let out = json!({
        "id": message_id(chat["id"].as_str().unwrap_or("gateway")),
        "type": "message",
        "role": "assistant",
        "model": chat["model"].as_str().unwrap_or(model),
        "content": content,
        "stop_reason": stop_reason(finish),
        "stop_sequence": null,
        "usage": MessageUsage::from(usage),
    });
    Ok(serde_json::to_vec(&out).expect("a message serialises"))
}

// ---------------------------------------------------------------------------------------
// Streams

/// One event of Anthropic's stream, serialised straight from borrowed fields.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event<'a> {
    MessageStart {
        message: StartMessage<'a>,
    },
    Ping,
    ContentBlockStart {
        index: usize,
        content_block: Block<'a>,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        delta: StopDelta,
        usage: MessageUsage,
    },
    MessageStop,
}

impl Event<'_> {
    fn name(&self) -> &'static str {
        match self {
            Self::MessageStart { .. } => "message_start",
            Self::Ping => "ping",
            Self::ContentBlockStart { .. } => "content_block_start",
            Self::ContentBlockStop { .. } => "content_block_stop",
            Self::MessageDelta { .. } => "message_delta",
            Self::MessageStop => "message_stop",
        }
    }

    fn write(&self, out: &mut BytesMut) {
        out.put_slice(b"event: ");
        out.put_slice(self.name().as_bytes());
        out.put_slice(b"\ndata: ");
        serde_json::to_writer(out.writer(), self).expect("an event serialises");
        out.put_slice(b"\n\n");
    }
}

#[derive(Serialize)]
struct StartMessage<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: [(); 0],
    stop_reason: Option<()>,
    stop_sequence: Option<()>,
    usage: MessageUsage,
}

#[derive(Serialize)]
struct EmptyObject {}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Text {
        text: &'static str,
    },
    Thinking {
        thinking: &'static str,
        signature: &'static str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: EmptyObject,
    },
}

#[derive(Serialize)]
struct StopDelta {
    stop_reason: &'static str,
    stop_sequence: Option<()>,
}

/// Writes a `content_block_delta` event of one text field (`text_delta`,
/// `thinking_delta`, `input_json_delta`) by hand: nearly every event of a stream is one.
fn block_delta(out: &mut BytesMut, index: usize, kind: &str, field: &str, text: &str) {
    out.put_slice(
        b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":",
    );
    chunk::put_usize(out, index);
    out.put_slice(b",\"delta\":{\"type\":\"");
    out.put_slice(kind.as_bytes());
    out.put_slice(b"\",\"");
    out.put_slice(field.as_bytes());
    out.put_slice(b"\":");
    chunk::put_json_str(out, text);
    out.put_slice(b"}}\n\n");
}

/// The content block being streamed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Open {
    None,
    Text,
    /// A refusal: a text block of its own, as `from_chat` makes it.
    Refusal,
    Thinking,
    /// A tool call, by its index in the chat stream.
    Tool(usize),
}

/// OpenAI `chat.completion.chunk` events → Anthropic's stream events.
pub(crate) struct MessagesStream {
    model: String,
    provider: std::sync::Arc<str>,
    started: bool,
    open: Open,
    /// Index of the open block (the next block's, when none is open).
    index: usize,
    stop: Option<&'static str>,
    usage: ChatUsage,
    /// The id of the tool call being streamed.
    tool_id: String,
}

impl MessagesStream {
    pub(crate) fn new(model: &str, provider: std::sync::Arc<str>) -> Self {
        Self {
            model: model.to_owned(),
            provider,
            started: false,
            open: Open::None,
            index: 0,
            stop: None,
            usage: ChatUsage::default(),
            tool_id: String::new(),
        }
    }

    fn start(&mut self, chunk: &Chunk<'_>, out: &mut BytesMut) {
        self.started = true;
        let id = message_id(chunk.id.as_deref().unwrap_or("gateway"));
        let model = chunk.model.as_deref().unwrap_or(&self.model);
        Event::MessageStart {
            message: StartMessage {
                id: &id,
                kind: "message",
                role: "assistant",
                model,
                content: [],
                stop_reason: None,
                stop_sequence: None,
                usage: MessageUsage::default(),
            },
        }
        .write(out);
        Event::Ping.write(out);
    }

    fn close(&mut self, out: &mut BytesMut) {
        if self.open != Open::None {
            Event::ContentBlockStop { index: self.index }.write(out);
            self.index += 1;
            self.open = Open::None;
        }
    }

    /// Makes `want` the open block (closing another), starting it with `start`.
    fn open(&mut self, want: Open, start: Block<'_>, out: &mut BytesMut) {
        if self.open != want {
            self.close(out);
            Event::ContentBlockStart {
                index: self.index,
                content_block: start,
            }
            .write(out);
            self.open = want;
        }
    }

    /// Text of an `Open::Text` block, or of an `Open::Refusal` one.
    fn text(&mut self, kind: Open, text: &str, out: &mut BytesMut) {
        if text.is_empty() {
            return;
        }
        self.open(kind, Block::Text { text: "" }, out);
        block_delta(out, self.index, "text_delta", "text", text);
    }

    fn tool_call(&mut self, call: &ChunkToolCall<'_>, out: &mut BytesMut) {
        let index = call.index.unwrap_or(0);
        let function = call.function.as_ref();
        // A call starts where its index changes, or where a new id comes at the same index
        // (some servers repeat the id in every delta of a call).
        let new_id = call.id.as_deref().is_some_and(|id| id != self.tool_id);
        if self.open != Open::Tool(index) || new_id {
            let id = call.id.as_deref().unwrap_or_default();
            let name = function.and_then(|f| f.name.as_deref()).unwrap_or_default();
            self.tool_id.clear();
            self.tool_id.push_str(id);
            self.close(out);
            Event::ContentBlockStart {
                index: self.index,
                content_block: Block::ToolUse {
                    id,
                    name,
                    input: EmptyObject {},
                },
            }
            .write(out);
            self.open = Open::Tool(index);
        }
        if let Some(arguments) = function
            .and_then(|f| f.arguments.as_deref())
            .filter(|a| !a.is_empty())
        {
            block_delta(
                out,
                self.index,
                "input_json_delta",
                "partial_json",
                arguments,
            );
        }
    }

    fn finish(&mut self, out: &mut BytesMut) {
        self.close(out);
        Event::MessageDelta {
            delta: StopDelta {
                stop_reason: self.stop.unwrap_or("end_turn"),
                stop_sequence: None,
            },
            usage: MessageUsage::from(self.usage),
        }
        .write(out);
        Event::MessageStop.write(out);
    }
}

impl StreamTranslator for MessagesStream {
    fn event(
        &mut self,
        name: Option<&[u8]>,
        data: &[u8],
        out: &mut BytesMut,
    ) -> Result<bool, GatewayError> {
        let Some(chunk) = chunk::read(name, data, self.started, &self.provider)? else {
            // `[DONE]`.
            self.finish(out);
            return Ok(false);
        };
        if !self.started {
            self.start(&chunk, out);
        }
        if let Some(usage) = chunk.usage {
            self.usage = usage;
        }
        if let Some(choice) = chunk.choices.first() {
            let delta = &choice.delta;
            if let Some(thinking) = delta.reasoning() {
                self.open(
                    Open::Thinking,
                    Block::Thinking {
                        thinking: "",
                        signature: "",
                    },
                    out,
                );
                block_delta(out, self.index, "thinking_delta", "thinking", thinking);
            }
            if let Some(text) = &delta.content {
                self.text(Open::Text, text, out);
            }
            if let Some(text) = &delta.refusal {
                self.text(Open::Refusal, text, out);
            }
            for call in delta.tool_calls.iter().flatten() {
                self.tool_call(call, out);
            }
            if let Some(finish) = &choice.finish_reason {
                self.stop = Some(stop_reason(finish));
            }
        }
        Ok(true)
    }

    fn end(&mut self, out: &mut BytesMut) -> Result<(), GatewayError> {
        // Some servers end without `[DONE]`; a stream that said why it stopped is whole.
        if self.started && self.stop.is_some() {
            self.finish(out);
            return Ok(());
        }
        Err(GatewayError::upstream_protocol(
            &self.provider,
            "the stream ended before the answer was complete",
        ))
    }

    fn protocol(&self) -> Protocol {
        Protocol::Anthropic
    }

    fn keepalive(&self) -> Option<&'static [u8]> {
        // Anthropic's own keep-alive, as its API sends while the model is busy.
        self.started
            .then_some(b"event: ping\ndata: {\"type\": \"ping\"}\n\n".as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse;
    use crate::translate::stream::{feed, finish, Fed};

    fn chat(body: Value) -> Value {
        to_chat(&serde_json::to_vec(&body).unwrap()).unwrap()
    }

    #[test]
    fn a_claude_code_style_request_becomes_a_chat_request() {
        let out = chat(json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 32000,
            "stream": true,
            "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
            "metadata": {"user_id": "user_abc"},
            "thinking": {"type": "enabled", "budget_tokens": 8000},
            "tools": [{"name": "Bash", "description": "Run a command", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}],
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
            "stop_sequences": ["STOP"],
            "top_k": 5,
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "list files", "cache_control": {"type": "ephemeral"}}]},
                {"role": "system", "content": [{"type": "text", "text": "Be terse."}]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "I should run ls", "signature": "sig"},
                    {"type": "text", "text": "Running ls."},
                    {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "a.txt"}]},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": "denied", "is_error": true},
                    {"type": "text", "text": "thanks"}
                ]}
            ]
        }));
        assert_eq!(
            out,
            json!({
                "model": "claude-sonnet-4-5",
                "max_tokens": 32000,
                "stream": true,
                "stream_options": {"include_usage": true},
                "user": "user_abc",
                "reasoning_effort": "high",
                "stop": ["STOP"],
                "tools": [{"type": "function", "function": {"name": "Bash", "description": "Run a command", "parameters": {"type": "object", "properties": {"command": {"type": "string"}}}}}],
                "tool_choice": "auto",
                "parallel_tool_calls": false,
                "messages": [
                    {"role": "system", "content": "You are Claude Code."},
                    {"role": "user", "content": "list files"},
                    {"role": "system", "content": "Be terse."},
                    {"role": "assistant", "content": "Running ls.", "reasoning_content": "I should run ls",
                     "thinking_blocks": [{"type": "thinking", "thinking": "I should run ls", "signature": "sig"}],
                     "tool_calls": [{"id": "toolu_1", "type": "function", "function": {"name": "Bash", "arguments": "{\"command\":\"ls\"}"}}]},
                    {"role": "tool", "tool_call_id": "toolu_1", "content": "a.txt"},
                    {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: denied"},
                    {"role": "user", "content": "thanks"}
                ]
            })
        );
    }

    #[test]
    fn images_documents_and_tool_choices() {
        let out = chat(json!({
            "model": "m", "max_tokens": 10,
            "tools": [{"name": "f", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "tool", "name": "f"},
            "messages": [{"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
                {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}},
                {"type": "text", "text": "describe"}
            ]}]
        }));
        assert_eq!(
            out["tool_choice"],
            json!({"type": "function", "function": {"name": "f"}})
        );
        assert_eq!(
            out["messages"][0]["content"],
            json!([
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "document.pdf"}},
                {"type": "text", "text": "describe"}
            ])
        );
        for (choice, expected) in [("any", "required"), ("none", "none")] {
            let out = chat(
                json!({"model": "m", "max_tokens": 1, "tools": [{"name": "f", "input_schema": {}}], "tool_choice": {"type": choice}, "messages": [{"role": "user", "content": "x"}]}),
            );
            assert_eq!(out["tool_choice"], expected);
        }
    }

    #[test]
    fn server_tools_are_refused_by_name() {
        let body = json!({"model": "m", "max_tokens": 1, "tools": [{"type": "web_search_20250305", "name": "web_search"}], "messages": [{"role": "user", "content": "x"}]});
        let err = to_chat(&serde_json::to_vec(&body).unwrap()).unwrap_err();
        assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
        assert!(err.message().contains("web_search"), "{}", err.message());
    }

    #[test]
    fn a_completion_becomes_a_message() {
        let completion = json!({
            "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "Let me look.", "reasoning_content": "hmm",
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "Bash", "arguments": "{\"command\":\"ls\"}"}}]
            }}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "prompt_tokens_details": {"cached_tokens": 60}}
        });
        let out: Value = serde_json::from_slice(
            &from_chat(&serde_json::to_vec(&completion).unwrap(), "m", "p").unwrap(),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({
                "id": "msg_chatcmpl-1", "type": "message", "role": "assistant", "model": "gpt-4o",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": ""},
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "call_1", "name": "Bash", "input": {"command": "ls"}}
                ],
                "stop_reason": "tool_use", "stop_sequence": null,
                "usage": {"input_tokens": 40, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 60, "output_tokens": 20}
            })
        );
    }

    const STREAM: &str = concat!(
        "data: {\"id\":\"c1\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
        "data: {\"id\":\"c1\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi \\\"there\\\"\"}}]}\n\n",
        "data: {\"id\":\"c1\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"Bash\",\"arguments\":\"\"}}]}}]}\n\n",
        "data: {\"id\":\"c1\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"command\\\":\"}}]}}]}\n\n",
        "data: {\"id\":\"c1\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"ls\\\"}\"}}]}}]}\n\n",
        "data: {\"id\":\"c1\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_b\",\"type\":\"function\",\"function\":{\"name\":\"Read\",\"arguments\":\"{}\"}}]}}]}\n\n",
        "data: {\"id\":\"c1\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
        "data: {\"id\":\"c1\",\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":7}}\n\n",
        "data: [DONE]\n\n",
    );

    fn translate(frames: &[&[u8]]) -> Vec<u8> {
        let mut translator = MessagesStream::new("m", "p".into());
        let mut decoder = sse::Decoder::default();
        let mut out = BytesMut::new();
        let mut done = false;
        for frame in frames {
            if !done {
                match feed(&mut decoder, &mut translator, frame, &mut out) {
                    Fed::More => {}
                    Fed::Ended => done = true,
                    Fed::Failed(err) => {
                        out.extend_from_slice(&sse::error_event_as(Protocol::Anthropic, &err));
                        done = true;
                    }
                }
            }
        }
        if !done {
            finish(&mut decoder, &mut translator, &mut out);
        }
        out.to_vec()
    }

    fn events(bytes: &[u8]) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        sse::each_event(bytes, &mut |event| {
            let name = String::from_utf8(event.name.unwrap().to_vec()).unwrap();
            let data: Value = serde_json::from_slice(&event.data).unwrap();
            assert_eq!(
                data["type"],
                name.as_str(),
                "the event name is the data's type"
            );
            out.push((name, data));
            true
        });
        out
    }

    #[test]
    fn a_chat_stream_becomes_anthropics_event_sequence() {
        let out = events(&translate(&[STREAM.as_bytes()]));
        let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
            ]
        );
        assert_eq!(out[0].1["message"]["id"], "msg_c1");
        assert_eq!(out[0].1["message"]["model"], "gpt-4o");
        assert_eq!(
            out[2].1["content_block"],
            json!({"type": "text", "text": ""})
        );
        assert_eq!(
            out[3].1["delta"],
            json!({"type": "text_delta", "text": "Hi \"there\""})
        );
        assert_eq!(
            out[5].1,
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "call_a", "name": "Bash", "input": {}}})
        );
        assert_eq!(
            out[6].1["delta"],
            json!({"type": "input_json_delta", "partial_json": "{\"command\":"})
        );
        assert_eq!(out[9].1["content_block"]["id"], "call_b");
        assert_eq!(out[9].1["index"], 2);
        assert_eq!(
            out[12].1,
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
            "usage": {"input_tokens": 12, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 7}})
        );
    }

    #[test]
    fn any_split_of_the_chat_stream_gives_the_same_events() {
        let whole = translate(&[STREAM.as_bytes()]);
        let bytes = STREAM.as_bytes();
        for size in [1, 2, 3, 7, 13, 64, 200] {
            let frames: Vec<&[u8]> = bytes.chunks(size).collect();
            assert_eq!(translate(&frames), whole, "frames of {size} bytes");
        }
        // Without the last blank line, and without `[DONE]` after a finish reason.
        assert_eq!(translate(&[bytes.strip_suffix(b"\n\n").unwrap()]), whole);
        let no_done = STREAM.strip_suffix("data: [DONE]\n\n").unwrap();
        assert_eq!(translate(&[no_done.as_bytes()]), whole);
    }

    /// The Message a client assembles from the events, as the SDKs do: `content`,
    /// `stop_reason`, `usage`.
    fn assemble(events: &[(String, Value)]) -> Value {
        let mut content: Vec<Value> = Vec::new();
        let mut usage = Value::Null;
        let mut stop = Value::Null;
        let append = |block: &mut Value, field: &str, more: &Value| {
            let so_far = block
                .get(field)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            block[field] = json!(so_far + more.as_str().unwrap());
        };
        for (name, data) in events {
            match name.as_str() {
                "content_block_start" => content.push(data["content_block"].clone()),
                "content_block_delta" => {
                    let block = content.last_mut().unwrap();
                    let delta = &data["delta"];
                    match delta["type"].as_str().unwrap() {
                        "text_delta" => append(block, "text", &delta["text"]),
                        "thinking_delta" => append(block, "thinking", &delta["thinking"]),
                        "signature_delta" => append(block, "signature", &delta["signature"]),
                        "input_json_delta" => append(block, "partial", &delta["partial_json"]),
                        other => panic!("{other}"),
                    }
                }
                "content_block_stop" => {
                    let block = content.last_mut().unwrap();
                    if let Some(partial) = block.as_object_mut().unwrap().remove("partial") {
                        let partial = partial.as_str().unwrap();
                        block["input"] = if partial.is_empty() {
                            json!({})
                        } else {
                            serde_json::from_str(partial).unwrap()
                        };
                    }
                }
                "message_delta" => {
                    usage = data["usage"].clone();
                    stop = data["delta"]["stop_reason"].clone();
                }
                _ => {}
            }
        }
        json!({ "content": content, "stop_reason": stop, "usage": usage })
    }

    #[test]
    fn the_streamed_message_equals_the_json_translation() {
        // Assemble the Anthropic events as the SDK does, and compare with `from_chat` of the
        // same answer given as one completion.
        let streamed = assemble(&events(&translate(&[STREAM.as_bytes()])));
        let completion = json!({"id": "c1", "model": "gpt-4o", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Hi \"there\"", "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "Bash", "arguments": "{\"command\":\"ls\"}"}},
                {"id": "call_b", "type": "function", "function": {"name": "Read", "arguments": "{}"}}]}}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 7}});
        let json: Value = serde_json::from_slice(
            &from_chat(&serde_json::to_vec(&completion).unwrap(), "m", "p").unwrap(),
        )
        .unwrap();
        assert_eq!(json["content"], streamed["content"]);
        assert_eq!(json["usage"], streamed["usage"]);
        assert_eq!(json["stop_reason"], streamed["stop_reason"]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

        /// Any chat answer (reasoning, text, refusal, tool calls, any finish, usage), in any
        /// framing: the Message assembled from its translated stream is its translated JSON.
        #[test]
        fn a_generated_answer_streams_as_it_translates_whole(
            answer in crate::translate::generated::arb_answer(),
            piece in 1usize..9,
            frame in 1usize..300,
        ) {
            let sse = answer.stream(piece);
            let frames: Vec<&[u8]> = sse.as_bytes().chunks(frame).collect();
            let streamed = assemble(&events(&translate(&frames)));
            let json: Value = serde_json::from_slice(
                &from_chat(&serde_json::to_vec(&answer.completion()).unwrap(), "m", "p").unwrap(),
            )
            .unwrap();
            proptest::prop_assert_eq!(&json["content"], &streamed["content"]);
            proptest::prop_assert_eq!(&json["stop_reason"], &streamed["stop_reason"]);
            proptest::prop_assert_eq!(&json["usage"], &streamed["usage"]);
        }
    }

    #[test]
    fn reasoning_streams_as_a_thinking_block() {
        let stream = "data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"reasoning_content\":\"think\"}}]}\n\ndata: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"ok\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
        let out = events(&translate(&[stream.as_bytes()]));
        assert_eq!(
            out[2].1["content_block"],
            json!({"type": "thinking", "thinking": "", "signature": ""})
        );
        assert_eq!(
            out[3].1["delta"],
            json!({"type": "thinking_delta", "thinking": "think"})
        );
        assert_eq!(out[4].0, "content_block_stop");
        assert_eq!(out[5].1["content_block"]["type"], "text");
        assert_eq!(out[out.len() - 2].1["delta"]["stop_reason"], "end_turn");
    }

    #[test]
    fn failures_become_anthropic_error_events() {
        let stream = "data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"par\"}}]}\n\nevent: error\ndata: {\"error\":{\"message\":\"Overloaded\",\"type\":\"server_error\",\"code\":\"overloaded\"}}\n\n";
        let out = events(&translate(&[stream.as_bytes()]));
        let (name, data) = out.last().unwrap();
        assert_eq!(name, "error");
        assert_eq!(data["error"]["type"], "overloaded_error");
        assert!(data["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Overloaded"));
        // A stream cut before its end.
        let cut = "data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"par\"}}]}\n\n";
        let out = events(&translate(&[cut.as_bytes()]));
        assert_eq!(out.last().unwrap().1["error"]["type"], "api_error");
    }
}
