//! The OpenAI side of every translation: the chat request as the translators read it, and
//! the `chat.completion` / `chat.completion.chunk` shapes they write.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, BytesMut};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::GatewayError;

/// A chat request, normalised: system messages hoisted, content split into parts, every
/// field the native APIs need checked for its type.
#[derive(Debug, Default)]
pub(crate) struct Chat {
    /// System and developer messages, in order.
    pub system: Vec<Content>,
    /// User, assistant and tool messages, in order.
    pub messages: Vec<Message>,
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    pub parallel_tool_calls: Option<bool>,
    pub response_format: Option<ResponseFormat>,
    /// `max_completion_tokens`, else `max_tokens`.
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub stop: Vec<String>,
    pub seed: Option<i64>,
    pub n: Option<u64>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub logprobs: bool,
    pub top_logprobs: Option<u64>,
    pub reasoning_effort: Option<String>,
    pub user: Option<String>,
    /// The non-standard `thinking: {type, budget_tokens}` (LiteLLM's and Anthropic's shape).
    pub thinking: Option<Value>,
    /// The whole body, for provider-specific pass-through fields.
    pub raw: Map<String, Value>,
}

/// A message's content: a plain string, or parts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Content {
    Text(String),
    Parts(Vec<Part>),
}

impl Content {
    /// The text parts joined (images left out).
    pub fn text(&self) -> String {
        match self {
            Self::Text(t) => t.clone(),
            Self::Parts(parts) => {
                let mut out = String::new();
                for part in parts {
                    if let Part::Text(t) = part {
                        out.push_str(t);
                    }
                }
                out
            }
        }
    }
}

/// One part of a message's content.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Part {
    Text(String),
    /// `image_url.url`: a `data:` URL or an http(s) URL.
    Image(String),
}

#[derive(Debug)]
pub(crate) enum Message {
    User(Content),
    Assistant {
        content: Option<Content>,
        tool_calls: Vec<ToolCall>,
        /// Non-standard `thinking_blocks` (Anthropic blocks echoed back by the client).
        thinking_blocks: Option<Vec<Value>>,
    },
    Tool {
        tool_call_id: String,
        content: Content,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as the client sent them (a JSON string).
    pub arguments: String,
}

impl ToolCall {
    /// The arguments as a JSON object; `{}` when empty or not an object.
    pub fn arguments_object(&self) -> Value {
        match serde_json::from_str::<Value>(&self.arguments) {
            Ok(v @ Value::Object(_)) => v,
            _ => Value::Object(Map::new()),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Tool {
    pub name: String,
    pub description: Option<String>,
    pub parameters: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ToolChoice {
    Auto,
    None,
    Required,
    Function(String),
}

#[derive(Debug)]
pub(crate) enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema { schema: Value },
}

fn bad(param: &str, message: impl Into<String>) -> GatewayError {
    GatewayError::invalid_param(param, message)
}

fn as_f64(body: &Map<String, Value>, key: &str) -> Result<Option<f64>, GatewayError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| bad(key, format!("Invalid type for '{key}': expected a number."))),
    }
}

fn as_u64(body: &Map<String, Value>, key: &str) -> Result<Option<u64>, GatewayError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            bad(
                key,
                format!("Invalid type for '{key}': expected a non-negative integer."),
            )
        }),
    }
}

fn as_str<'a>(body: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, GatewayError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad(
            key,
            format!("Invalid type for '{key}': expected a string."),
        )),
    }
}

impl Chat {
    /// Reads a chat request body. Errors are 400s naming the field.
    pub fn parse(body: &[u8]) -> Result<Self, GatewayError> {
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            GatewayError::bad_request(format!(
                "We could not parse the JSON body of your request: {e}."
            ))
            .with_code("invalid_json")
        })?;
        let Value::Object(raw) = value else {
            return Err(GatewayError::bad_request(
                "Invalid request body: expected a JSON object.",
            ));
        };
        let mut chat = Chat::default();
        let messages = match raw.get("messages") {
            Some(Value::Array(m)) => m,
            _ => {
                return Err(bad(
                    "messages",
                    "Invalid type for 'messages': expected an array.",
                ))
            }
        };
        for (i, m) in messages.iter().enumerate() {
            let param = format!("messages[{i}]");
            let Value::Object(m) = m else {
                return Err(bad(
                    &param,
                    format!("Invalid '{param}': expected an object."),
                ));
            };
            let role = m.get("role").and_then(Value::as_str).ok_or_else(|| {
                bad(
                    &format!("{param}.role"),
                    format!("Missing required parameter: '{param}.role'."),
                )
            })?;
            let content = |required: bool| -> Result<Option<Content>, GatewayError> {
                parse_content(m.get("content"), &format!("{param}.content"), required)
            };
            match role {
                "system" | "developer" => {
                    if let Some(c) = content(true)? {
                        chat.system.push(c);
                    }
                }
                "user" => chat.messages.push(Message::User(
                    content(true)?.unwrap_or(Content::Text(String::new())),
                )),
                "assistant" => {
                    let mut tool_calls = Vec::new();
                    match m.get("tool_calls") {
                        None | Some(Value::Null) => {}
                        Some(Value::Array(calls)) => {
                            for (j, call) in calls.iter().enumerate() {
                                tool_calls.push(parse_tool_call(
                                    call,
                                    &format!("{param}.tool_calls[{j}]"),
                                )?);
                            }
                        }
                        Some(_) => {
                            return Err(bad(
                                &format!("{param}.tool_calls"),
                                "Invalid type for 'tool_calls': expected an array.",
                            ))
                        }
                    }
                    let thinking_blocks = match m.get("thinking_blocks") {
                        Some(Value::Array(blocks)) => Some(blocks.clone()),
                        _ => None,
                    };
                    chat.messages.push(Message::Assistant {
                        content: content(false)?,
                        tool_calls,
                        thinking_blocks,
                    });
                }
                "tool" | "function" => {
                    let id = m
                        .get("tool_call_id")
                        .and_then(Value::as_str)
                        .or_else(|| m.get("name").and_then(Value::as_str))
                        .ok_or_else(|| {
                            bad(
                                &format!("{param}.tool_call_id"),
                                format!("Missing required parameter: '{param}.tool_call_id'."),
                            )
                        })?;
                    chat.messages.push(Message::Tool {
                        tool_call_id: id.to_owned(),
                        content: content(false)?.unwrap_or(Content::Text(String::new())),
                    });
                }
                other => {
                    return Err(bad(
                        &format!("{param}.role"),
                        format!(
                            "Invalid value for '{param}.role': `{other}` is not a supported role."
                        ),
                    ))
                }
            }
        }
        match raw.get("tools") {
            None | Some(Value::Null) => {}
            Some(Value::Array(tools)) => {
                for (i, tool) in tools.iter().enumerate() {
                    let param = format!("tools[{i}]");
                    let function = tool.get("function").ok_or_else(|| {
                        bad(
                            &param,
                            format!("Missing required parameter: '{param}.function'."),
                        )
                    })?;
                    let name = function
                        .get("name")
                        .and_then(Value::as_str)
                        .ok_or_else(|| {
                            bad(
                                &format!("{param}.function.name"),
                                format!("Missing required parameter: '{param}.function.name'."),
                            )
                        })?;
                    chat.tools.push(Tool {
                        name: name.to_owned(),
                        description: function
                            .get("description")
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                        parameters: function
                            .get("parameters")
                            .filter(|p| p.is_object())
                            .cloned(),
                    });
                }
            }
            Some(_) => return Err(bad("tools", "Invalid type for 'tools': expected an array.")),
        }
        chat.tool_choice = match raw.get("tool_choice") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(match s.as_str() {
                "auto" => ToolChoice::Auto,
                "none" => ToolChoice::None,
                "required" => ToolChoice::Required,
                other => {
                    return Err(bad(
                        "tool_choice",
                        format!("Invalid value for 'tool_choice': `{other}`."),
                    ))
                }
            }),
            Some(Value::Object(o)) => {
                let name = o
                    .get("function")
                    .and_then(|f| f.get("name"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        bad(
                            "tool_choice",
                            "Missing required parameter: 'tool_choice.function.name'.",
                        )
                    })?;
                Some(ToolChoice::Function(name.to_owned()))
            }
            Some(_) => {
                return Err(bad(
                    "tool_choice",
                    "Invalid type for 'tool_choice': expected a string or an object.",
                ))
            }
        };
        chat.parallel_tool_calls = raw.get("parallel_tool_calls").and_then(Value::as_bool);
        chat.response_format = match raw.get("response_format") {
            None | Some(Value::Null) => None,
            Some(Value::Object(o)) => match o.get("type").and_then(Value::as_str) {
                Some("text") => Some(ResponseFormat::Text),
                Some("json_object") => Some(ResponseFormat::JsonObject),
                Some("json_schema") => {
                    let js = o.get("json_schema");
                    let schema = js
                        .and_then(|j| j.get("schema"))
                        .filter(|s| s.is_object())
                        .cloned()
                        .ok_or_else(|| {
                            bad(
                                "response_format",
                                "Missing required parameter: 'response_format.json_schema.schema'.",
                            )
                        })?;
                    Some(ResponseFormat::JsonSchema { schema })
                }
                _ => {
                    return Err(bad(
                        "response_format",
                        "Invalid value for 'response_format.type': use text, json_object or json_schema.",
                    ))
                }
            },
            Some(_) => {
                return Err(bad(
                    "response_format",
                    "Invalid type for 'response_format': expected an object.",
                ))
            }
        };
        chat.max_tokens = match as_u64(&raw, "max_completion_tokens")? {
            Some(n) => Some(n),
            None => as_u64(&raw, "max_tokens")?,
        };
        chat.temperature = as_f64(&raw, "temperature")?;
        chat.top_p = as_f64(&raw, "top_p")?;
        chat.presence_penalty = as_f64(&raw, "presence_penalty")?;
        chat.frequency_penalty = as_f64(&raw, "frequency_penalty")?;
        chat.stop = match raw.get("stop") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .map(|s| {
                    s.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| bad("stop", "Invalid type for 'stop': expected strings."))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(bad(
                    "stop",
                    "Invalid type for 'stop': expected a string or an array of strings.",
                ))
            }
        };
        chat.seed = match raw.get("seed") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_i64()
                    .ok_or_else(|| bad("seed", "Invalid type for 'seed': expected an integer."))?,
            ),
        };
        chat.n = as_u64(&raw, "n")?;
        chat.logprobs = raw
            .get("logprobs")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        chat.top_logprobs = as_u64(&raw, "top_logprobs")?;
        chat.reasoning_effort = as_str(&raw, "reasoning_effort")?.map(str::to_owned);
        chat.user = as_str(&raw, "user")?.map(str::to_owned);
        chat.thinking = raw.get("thinking").filter(|t| t.is_object()).cloned();
        chat.raw = raw;
        Ok(chat)
    }

    /// The tool call of an earlier assistant message with this id.
    pub fn find_tool_call(&self, id: &str) -> Option<&ToolCall> {
        self.messages.iter().rev().find_map(|m| match m {
            Message::Assistant { tool_calls, .. } => tool_calls.iter().find(|c| c.id == id),
            _ => None,
        })
    }
}

fn parse_content(
    value: Option<&Value>,
    param: &str,
    required: bool,
) -> Result<Option<Content>, GatewayError> {
    match value {
        None | Some(Value::Null) if !required => Ok(None),
        None | Some(Value::Null) => Err(bad(
            param,
            format!("Missing required parameter: '{param}'."),
        )),
        Some(Value::String(s)) => Ok(Some(Content::Text(s.clone()))),
        Some(Value::Array(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for (i, part) in parts.iter().enumerate() {
                let p = format!("{param}[{i}]");
                match part.get("type").and_then(Value::as_str) {
                    Some("text") | Some("input_text") => {
                        let text = part.get("text").and_then(Value::as_str).ok_or_else(|| {
                            bad(&p, format!("Missing required parameter: '{p}.text'."))
                        })?;
                        out.push(Part::Text(text.to_owned()));
                    }
                    Some("refusal") => {
                        if let Some(text) = part.get("refusal").and_then(Value::as_str) {
                            out.push(Part::Text(text.to_owned()));
                        }
                    }
                    Some("image_url") => {
                        let url = match part.get("image_url") {
                            Some(Value::String(u)) => Some(u.as_str()),
                            Some(o) => o.get("url").and_then(Value::as_str),
                            None => None,
                        }
                        .ok_or_else(|| {
                            bad(
                                &p,
                                format!("Missing required parameter: '{p}.image_url.url'."),
                            )
                        })?;
                        out.push(Part::Image(url.to_owned()));
                    }
                    Some(other) => {
                        return Err(bad(
                            &p,
                            format!(
                            "Content parts of type `{other}` are not supported by this provider."
                        ),
                        ))
                    }
                    None => {
                        return Err(bad(&p, format!("Missing required parameter: '{p}.type'.")))
                    }
                }
            }
            Ok(Some(Content::Parts(out)))
        }
        Some(_) => Err(bad(
            param,
            format!("Invalid type for '{param}': expected a string or an array of parts."),
        )),
    }
}

fn parse_tool_call(call: &Value, param: &str) -> Result<ToolCall, GatewayError> {
    let id = call
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(param, format!("Missing required parameter: '{param}.id'.")))?;
    let function = call.get("function").ok_or_else(|| {
        bad(
            param,
            format!("Missing required parameter: '{param}.function'."),
        )
    })?;
    let name = function
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            bad(
                param,
                format!("Missing required parameter: '{param}.function.name'."),
            )
        })?;
    let arguments = match function.get("arguments") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    Ok(ToolCall {
        id: id.to_owned(),
        name: name.to_owned(),
        arguments,
    })
}

/// A `data:` URL split into its media type and base64 payload.
pub(crate) fn data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let mime = meta.strip_suffix(";base64")?;
    Some((
        if mime.is_empty() {
            "application/octet-stream"
        } else {
            mime
        },
        data,
    ))
}

/// Seconds since the Unix epoch.
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `prefix` followed by `n` random base62 characters.
pub(crate) fn mint_id(prefix: &str, n: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut id = String::with_capacity(prefix.len() + n);
    id.push_str(prefix);
    for _ in 0..n {
        id.push(ALPHABET[fastrand::usize(..ALPHABET.len())] as char);
    }
    id
}

/// Token usage in OpenAI's shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub cached_tokens: u64,
    /// Anthropic's cache writes (non-standard `prompt_tokens_details.cache_creation_tokens`).
    pub cache_creation_tokens: Option<u64>,
    pub reasoning_tokens: u64,
}

impl Serialize for Usage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Prompt {
            cached_tokens: u64,
            #[serde(skip_serializing_if = "Option::is_none")]
            cache_creation_tokens: Option<u64>,
        }
        #[derive(Serialize)]
        struct Completion {
            reasoning_tokens: u64,
        }
        #[derive(Serialize)]
        struct Out {
            prompt_tokens: u64,
            completion_tokens: u64,
            total_tokens: u64,
            prompt_tokens_details: Prompt,
            completion_tokens_details: Completion,
        }
        Out {
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            total_tokens: self.total_tokens,
            prompt_tokens_details: Prompt {
                cached_tokens: self.cached_tokens,
                cache_creation_tokens: self.cache_creation_tokens,
            },
            completion_tokens_details: Completion {
                reasoning_tokens: self.reasoning_tokens,
            },
        }
        .serialize(s)
    }
}

/// OpenAI's `finish_reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Finish {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
}

/// One tool call of a `chat.completion` message.
#[derive(Debug, Serialize)]
pub(crate) struct OutToolCall {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: OutFunction,
}

#[derive(Debug, Serialize)]
pub(crate) struct OutFunction {
    pub name: String,
    pub arguments: String,
}

/// The message of a `chat.completion` choice.
#[derive(Debug, Serialize)]
pub(crate) struct OutMessage {
    pub role: &'static str,
    pub content: Option<String>,
    pub refusal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking_blocks: Option<Vec<Value>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<OutToolCall>,
}

#[derive(Debug, Serialize)]
pub(crate) struct OutChoice {
    pub index: usize,
    pub message: OutMessage,
    pub logprobs: Option<()>,
    pub finish_reason: Finish,
}

/// A whole `chat.completion`.
#[derive(Debug, Serialize)]
pub(crate) struct Completion<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub choices: Vec<OutChoice>,
    pub usage: Usage,
    pub system_fingerprint: Option<()>,
}

/// The `delta` of a chunk.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<[DeltaToolCall<'a>; 1]>,
    /// A finished Anthropic thinking block with its signature (LiteLLM's field), so that
    /// a client translating further can hand it back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking_blocks: Option<&'a [Value]>,
}

/// One tool-call fragment: `id`, `type` and `name` only in the first for its `index`.
#[derive(Debug, Serialize)]
pub(crate) struct DeltaToolCall<'a> {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    pub function: DeltaFunction<'a>,
}

#[derive(Debug, Serialize)]
pub(crate) struct DeltaFunction<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    pub arguments: &'a str,
}

/// Writes `chat.completion.chunk` events that share one id, timestamp and model.
#[derive(Debug, Default)]
pub(crate) struct ChunkWriter {
    /// `data: {"id":…,"object":"chat.completion.chunk","created":…,"model":…,`
    head: Vec<u8>,
}

impl ChunkWriter {
    pub fn new(id: &str, model: &str, created: u64) -> Self {
        let mut head = Vec::with_capacity(96 + id.len() + model.len());
        head.extend_from_slice(b"data: {\"id\":");
        serde_json::to_writer(&mut head, id).expect("a str serialises");
        head.extend_from_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
        head.extend_from_slice(created.to_string().as_bytes());
        head.extend_from_slice(b",\"model\":");
        serde_json::to_writer(&mut head, model).expect("a str serialises");
        head.push(b',');
        Self { head }
    }

    pub fn is_started(&self) -> bool {
        !self.head.is_empty()
    }

    /// A chunk with one choice (`index`) carrying `delta`.
    pub fn delta(&self, out: &mut BytesMut, index: usize, delta: &Delta<'_>) {
        self.choice(out, index, delta, None);
    }

    /// The finish chunk: an empty delta and the reason.
    pub fn finish(&self, out: &mut BytesMut, index: usize, finish: Finish) {
        self.choice(out, index, &Delta::default(), Some(finish));
    }

    fn choice(&self, out: &mut BytesMut, index: usize, delta: &Delta<'_>, finish: Option<Finish>) {
        out.put_slice(&self.head);
        out.put_slice(b"\"choices\":[{\"index\":");
        out.put_slice(index.to_string().as_bytes());
        out.put_slice(b",\"delta\":");
        serde_json::to_writer(out.writer(), delta).expect("a delta serialises");
        out.put_slice(b",\"logprobs\":null,\"finish_reason\":");
        match finish {
            None => out.put_slice(b"null"),
            Some(f) => serde_json::to_writer(out.writer(), &f).expect("serialises"),
        }
        out.put_slice(b"}]}\n\n");
    }

    /// The usage chunk (`choices: []`).
    pub fn usage(&self, out: &mut BytesMut, usage: &Usage) {
        out.put_slice(&self.head);
        out.put_slice(b"\"choices\":[],\"usage\":");
        serde_json::to_writer(out.writer(), usage).expect("usage serialises");
        out.put_slice(b"}\n\n");
    }

    /// `data: [DONE]`.
    pub fn done(out: &mut BytesMut) {
        out.put_slice(crate::sse::DONE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_have_the_openai_shape() {
        let w = ChunkWriter::new("msg_1", "claude\"x", 7);
        let mut out = BytesMut::new();
        w.delta(
            &mut out,
            0,
            &Delta {
                role: Some("assistant"),
                content: Some(""),
                ..Delta::default()
            },
        );
        w.finish(&mut out, 0, Finish::ToolCalls);
        let text = std::str::from_utf8(&out).unwrap();
        let events: Vec<Value> = text
            .split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
            .collect();
        assert_eq!(events[0]["model"], "claude\"x");
        assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(events[1]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(events[1]["choices"][0]["delta"], serde_json::json!({}));
    }

    #[test]
    fn data_urls_split() {
        assert_eq!(
            data_url("data:image/png;base64,AAA="),
            Some(("image/png", "AAA="))
        );
        assert_eq!(data_url("https://x/y.png"), None);
    }

    #[test]
    fn requests_parse_and_bad_fields_are_400s() {
        let chat = Chat::parse(br#"{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AA"}}]},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":""}}]},{"role":"tool","tool_call_id":"c1","content":"r"}],"max_tokens":5,"max_completion_tokens":9,"stop":"x"}"#).unwrap();
        assert_eq!(chat.system, [Content::Text("s".into())]);
        assert_eq!(chat.messages.len(), 3);
        assert_eq!(chat.max_tokens, Some(9));
        assert_eq!(chat.stop, ["x"]);
        assert_eq!(
            chat.find_tool_call("c1").unwrap().arguments_object(),
            serde_json::json!({})
        );
        for body in [
            r#"{"messages":{}}"#,
            r#"{"messages":[{"role":"wizard","content":"x"}]}"#,
            r#"{"messages":[{"role":"user","content":3}]}"#,
            r#"{"messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#,
            r#"{"messages":[{"role":"user","content":"x"}],"tool_choice":"sometimes"}"#,
        ] {
            let err = Chat::parse(body.as_bytes()).unwrap_err();
            assert_eq!(err.status(), http::StatusCode::BAD_REQUEST, "{body}");
        }
    }
}
