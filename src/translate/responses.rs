//! OpenAI Responses (what the client sent) ⇄ OpenAI Chat Completions (what the upstream
//! speaks), for clients such as the Codex CLI served by a provider without a Responses API.
//!
//! A Responses request becomes a chat request — `instructions` and `system`/`developer`
//! input messages as system messages, `function_call` items as the assistant's tool calls,
//! `function_call_output` items as tool messages, `text.format` as `response_format`,
//! `reasoning.effort` as `reasoning_effort`, `max_output_tokens` as `max_tokens` — and the
//! chat answer comes back as a `response` object or, streamed, as the Responses event
//! sequence: `response.created`, `response.in_progress`, per output item
//! `response.output_item.added`, its parts and deltas (`response.content_part.*` and
//! `response.output_text.*` for a message, `response.function_call_arguments.*` for a
//! call, `response.reasoning_summary_part.*` and `response.reasoning_summary_text.*` for
//! reasoning the upstream streams), `response.output_item.done`, and finally
//! `response.completed`, `response.incomplete` (the token limit or a content filter) or
//! `response.failed`; every event carries its `sequence_number`.
//!
//! State (`previous_response_id`) is resolved before this translation, by the Responses
//! layer; what reaches here is the whole conversation.
//! What only OpenAI runs — built-in tools (web search, file search, computer use, code
//! interpreter…), `background`, stored prompts and conversations, `item_reference` — is a
//! 400 naming the field. Reasoning items in the input are dropped (their encrypted
//! content means nothing to another provider).

use std::fmt::Write as _;

use bytes::{BufMut, BytesMut};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::chat::{mint_id, now};
use super::chunk::{self, ChatUsage, Chunk, ChunkToolCall};
use super::stream::StreamTranslator;
use crate::error::GatewayError;

fn bad(param: &str, message: impl Into<String>) -> GatewayError {
    GatewayError::invalid_param(param, message)
}

/// Request parameters a `response` object repeats.
const ECHOED: &[&str] = &[
    "instructions",
    "max_output_tokens",
    "parallel_tool_calls",
    "previous_response_id",
    "reasoning",
    "service_tier",
    "store",
    "temperature",
    "text",
    "tool_choice",
    "tools",
    "top_p",
    "truncation",
    "user",
    "metadata",
];

/// What a `response` object says for a parameter the request did not set.
fn echo_default(field: &str) -> Value {
    match field {
        "parallel_tool_calls" | "store" => Value::Bool(true),
        "reasoning" => json!({"effort": null, "summary": null}),
        "service_tier" => Value::from("default"),
        "temperature" | "top_p" => Value::from(1.0),
        "text" => json!({"format": {"type": "text"}}),
        "tool_choice" => Value::from("auto"),
        "tools" => json!([]),
        "truncation" => Value::from("disabled"),
        "metadata" => json!({}),
        _ => Value::Null,
    }
}

/// What the answer to a Responses request repeats of it: its id (minted here), model and
/// parameters.
#[derive(Debug, Clone)]
pub(crate) struct Echo {
    id: String,
    created_at: u64,
    model: String,
    params: Map<String, Value>,
    /// The request's namespace tools, whose functions chat knows as `namespace__name`.
    namespaces: Vec<String>,
    /// The request's custom (free-form) tools, functions of one `input` for chat.
    custom: Vec<String>,
}

impl Echo {
    pub(crate) fn new(request: &Map<String, Value>, model: &str) -> Self {
        let mut params = Map::new();
        for field in ECHOED {
            let value = request
                .get(*field)
                .filter(|v| !v.is_null())
                .cloned()
                .unwrap_or_else(|| echo_default(field));
            params.insert((*field).to_owned(), value);
        }
        let named = |kind: &str| -> Vec<String> {
            let tools = request.get("tools").and_then(Value::as_array);
            tools
                .into_iter()
                .flatten()
                .filter(|t| t["type"] == kind)
                .filter_map(|t| t["name"].as_str().map(str::to_owned))
                .collect()
        };
        Self {
            id: mint_id("resp_", 40),
            created_at: now(),
            model: model.to_owned(),
            params,
            namespaces: named("namespace"),
            custom: named("custom"),
        }
    }

    /// The same, continuing the stored response `id` (which the request named).
    pub(crate) fn previous(mut self, id: &str) -> Self {
        self.params
            .insert("previous_response_id".into(), Value::from(id));
        self
    }

    /// The same, answering as `model` (the name the client asked for).
    pub(crate) fn model(mut self, model: &str) -> Self {
        model.clone_into(&mut self.model);
        self
    }

    /// The output item of a chat tool call named `name` (the flat name chat knows): a
    /// function call (with its namespace, if any), or a custom tool call.
    fn call_item(&self, id: String, call_id: String, name: &str, arguments: String) -> Item {
        if self.custom.iter().any(|c| c == name) {
            return Item::CustomToolCall {
                id,
                call_id,
                name: name.to_owned(),
                input: custom_input(&arguments),
                arguments,
            };
        }
        let split = name
            .split_once(NAMESPACED)
            .filter(|(namespace, _)| self.namespaces.iter().any(|n| n == namespace));
        let (namespace, name) = match split {
            Some((namespace, name)) => (Some(namespace.to_owned()), name),
            None => (None, name),
        };
        Item::FunctionCall {
            id,
            call_id,
            namespace,
            name: name.to_owned(),
            arguments,
            status: "completed",
        }
    }

    /// The `response` object in `status`, with its output so far.
    fn response(&self, status: &str, output: &[Item], end: &End) -> Value {
        let mut response = Map::new();
        response.insert("id".into(), Value::from(self.id.as_str()));
        response.insert("object".into(), Value::from("response"));
        response.insert("created_at".into(), Value::from(self.created_at));
        response.insert("status".into(), Value::from(status));
        response.insert("background".into(), Value::Bool(false));
        response.insert(
            "error".into(),
            end.error.as_ref().map_or(
                Value::Null,
                |e| json!({"code": e.code().unwrap_or("server_error"), "message": e.message()}),
            ),
        );
        response.insert(
            "incomplete_details".into(),
            end.incomplete
                .map_or(Value::Null, |reason| json!({ "reason": reason })),
        );
        response.insert("model".into(), Value::from(self.model.as_str()));
        response.insert(
            "output".into(),
            serde_json::to_value(output).expect("items serialise"),
        );
        response.extend(self.params.clone());
        response.insert(
            "usage".into(),
            end.usage.map_or(Value::Null, |u| {
                serde_json::to_value(ResponseUsage::from(u)).expect("usage serialises")
            }),
        );
        Value::Object(response)
    }
}

/// How a response ended.
#[derive(Default)]
struct End {
    usage: Option<ChatUsage>,
    /// `incomplete_details.reason`.
    incomplete: Option<&'static str>,
    error: Option<GatewayError>,
}

/// A chat request and what its answer repeats.
pub(crate) struct Translated {
    pub chat: Value,
    pub echo: Echo,
}

/// What to do with a tool only OpenAI runs (web search, file search…) when the request
/// goes to another provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuiltinTools {
    /// A 400 naming the tool.
    #[default]
    Reject,
    /// Leave it out: the model is offered the other tools (a request that forces the tool
    /// with `tool_choice` is still a 400).
    Drop,
}

/// Marks `encrypted_content` the gateway sealed: Anthropic thinking blocks, as JSON in
/// base64url. Any other encrypted content (OpenAI's) means nothing to a translated
/// upstream and is dropped.
const SEALED: &str = "llm-tower.thinking.1.";

/// Anthropic thinking blocks as a reasoning item's `encrypted_content`.
fn seal(blocks: &[Value]) -> String {
    use base64::Engine as _;
    let json = serde_json::to_vec(blocks).expect("JSON serialises");
    format!(
        "{SEALED}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    )
}

/// The thinking blocks [`seal`] put in `encrypted_content`, if it did.
fn unseal(content: &str) -> Option<Vec<Value>> {
    use base64::Engine as _;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(content.strip_prefix(SEALED)?)
        .ok()?;
    serde_json::from_slice(&json).ok()
}

/// Separates a namespace from a function's name in the flat names chat has.
const NAMESPACED: &str = "__";

/// The OpenAI chat request for a Responses request body (its conversation whole: any
/// `previous_response_id` already resolved).
pub(crate) fn to_chat(body: &[u8], builtin: BuiltinTools) -> Result<Translated, GatewayError> {
    let request: Map<String, Value> = serde_json::from_slice(body).map_err(|err| {
        GatewayError::bad_request(format!(
            "We could not parse the JSON body of your request: {err}."
        ))
    })?;
    for field in ["background", "conversation", "prompt"] {
        if request
            .get(field)
            .is_some_and(|v| !v.is_null() && v != &Value::Bool(false))
        {
            return Err(bad(
                field,
                format!("`{field}` is only available from OpenAI's Responses API; this provider is served through Chat Completions."),
            ));
        }
    }
    if let Some(id) = request.get("previous_response_id").and_then(Value::as_str) {
        return Err(GatewayError::not_found(format!(
            "Previous response with id '{id}' not found."
        ))
        .with_param("previous_response_id")
        .with_code("previous_response_not_found"));
    }
    let model = request.get("model").and_then(Value::as_str).unwrap_or("");
    let echo = Echo::new(&request, model);
    let mut chat = Map::new();
    chat.insert("model".into(), Value::from(model));
    let mut messages = Vec::new();
    if let Some(instructions) = request.get("instructions").filter(|v| !v.is_null()) {
        let text = instructions.as_str().ok_or_else(|| {
            bad(
                "instructions",
                "Invalid type for 'instructions': expected a string.",
            )
        })?;
        messages.push(json!({"role": "system", "content": text}));
    }
    match request.get("input") {
        Some(Value::String(text)) => messages.push(json!({"role": "user", "content": text})),
        Some(Value::Array(items)) => {
            // Anthropic thinking sealed in a reasoning item goes back with the assistant
            // turn after it (the Anthropic translator replays `thinking_blocks`).
            let mut thinking = None;
            for (i, item) in items.iter().enumerate() {
                if item["type"] == "reasoning" {
                    thinking = item["encrypted_content"]
                        .as_str()
                        .and_then(unseal)
                        .or(thinking);
                    continue;
                }
                input_item(item, &format!("input[{i}]"), &mut messages)?;
                if let Some(last) = messages.last_mut().filter(|m| m["role"] == "assistant") {
                    if let Some(blocks) = thinking.take() {
                        last["thinking_blocks"] = Value::Array(blocks);
                    }
                }
            }
        }
        None | Some(Value::Null) => {}
        Some(_) => {
            return Err(bad(
                "input",
                "Invalid type for 'input': expected a string or an array of input items.",
            ))
        }
    }
    if messages.iter().all(|m| m["role"] == "system") {
        return Err(bad("input", "Missing required parameter: 'input'."));
    }
    chat.insert("messages".into(), Value::Array(messages));
    if let Some(max) = request.get("max_output_tokens").filter(|v| !v.is_null()) {
        chat.insert("max_tokens".into(), max.clone());
    }
    for field in ["temperature", "top_p", "user"] {
        if let Some(value) = request.get(field).filter(|v| !v.is_null()) {
            chat.insert(field.into(), value.clone());
        }
    }
    if request.get("stream").and_then(Value::as_bool) == Some(true) {
        chat.insert("stream".into(), Value::Bool(true));
        chat.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(effort) = request
        .get("reasoning")
        .and_then(|r| r.get("effort"))
        .filter(|v| !v.is_null())
    {
        chat.insert("reasoning_effort".into(), effort.clone());
    }
    if let Some(text) = request.get("text").filter(|v| !v.is_null()) {
        text_format(text, &mut chat)?;
    }
    let mut tools = Vec::new();
    match request.get("tools") {
        None | Some(Value::Null) => {}
        Some(Value::Array(given)) => {
            for (i, tool) in given.iter().enumerate() {
                chat_tools(tool, &format!("tools[{i}]"), builtin, &mut tools)?;
            }
        }
        Some(_) => return Err(bad("tools", "Invalid type for 'tools': expected an array.")),
    }
    if !tools.is_empty() {
        chat.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = request.get("tool_choice").filter(|v| !v.is_null()) {
            chat.insert("tool_choice".into(), tool_choice(choice)?);
        }
        if let Some(parallel) = request.get("parallel_tool_calls").filter(|v| !v.is_null()) {
            chat.insert("parallel_tool_calls".into(), parallel.clone());
        }
    }
    Ok(Translated {
        chat: Value::Object(chat),
        echo,
    })
}

/// Appends the chat messages for one input item.
fn input_item(item: &Value, param: &str, messages: &mut Vec<Value>) -> Result<(), GatewayError> {
    let kind = match item.get("type").and_then(Value::as_str) {
        Some(kind) => kind,
        // An "easy" input message: `{role, content}` without a type.
        None if item.get("role").is_some() => "message",
        None => {
            return Err(bad(
                param,
                format!("Missing required parameter: '{param}.type'."),
            ))
        }
    };
    match kind {
        "message" => {
            let role = item.get("role").and_then(Value::as_str).unwrap_or("");
            let content = item.get("content").unwrap_or(&Value::Null);
            match role {
                "user" => messages.push(json!({"role": "user", "content": user_content(content, param)?})),
                "system" | "developer" => {
                    messages.push(json!({"role": "system", "content": plain_text(content, param)?}));
                }
                "assistant" => {
                    let text = plain_text(content, param)?;
                    messages.push(json!({"role": "assistant", "content": text}));
                }
                _ => {
                    return Err(bad(
                        &format!("{param}.role"),
                        format!("Invalid value: '{role}'. Supported values are: 'user', 'assistant', 'system', and 'developer'."),
                    ))
                }
            }
        }
        "function_call" | "custom_tool_call" => {
            let field = |name: &str| {
                item.get(name)
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad(param, format!("Missing required parameter: '{param}.{name}'.")))
            };
            let mut name = field("name")?.to_owned();
            if let Some(namespace) = item.get("namespace").and_then(Value::as_str) {
                name = format!("{namespace}{NAMESPACED}{name}");
            }
            let arguments = if kind == "custom_tool_call" {
                json!({ "input": field("input")? }).to_string()
            } else {
                field("arguments")?.to_owned()
            };
            let call = json!({
                "id": field("call_id")?,
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            });
            // Calls of one turn join the assistant message before them.
            match messages.last_mut() {
                Some(last) if last["role"] == "assistant" => {
                    let calls = last
                        .as_object_mut()
                        .expect("a message is an object")
                        .entry("tool_calls")
                        .or_insert_with(|| json!([]));
                    calls.as_array_mut().expect("tool_calls is a list").push(call);
                }
                _ => messages.push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
            }
        }
        "function_call_output" | "custom_tool_call_output" => {
            let call_id = item.get("call_id").and_then(Value::as_str).ok_or_else(|| {
                bad(param, format!("Missing required parameter: '{param}.call_id'."))
            })?;
            let output = match item.get("output") {
                Some(Value::String(text)) => text.clone(),
                Some(Value::Array(parts)) => parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join("\n"),
                _ => {
                    return Err(bad(
                        param,
                        format!("Missing required parameter: '{param}.output'."),
                    ))
                }
            };
            messages.push(json!({"role": "tool", "tool_call_id": call_id, "content": output}));
        }
        other => {
            return Err(bad(
                &format!("{param}.type"),
                format!("Input items of type '{other}' are only available from OpenAI's Responses API; this provider is served through Chat Completions."),
            ))
        }
    }
    Ok(())
}

/// A user message's content as chat content parts.
fn user_content(content: &Value, param: &str) -> Result<Value, GatewayError> {
    let parts = match content {
        Value::String(_) => return Ok(content.clone()),
        Value::Array(parts) => parts,
        _ => {
            return Err(bad(
                param,
                format!("Missing required parameter: '{param}.content'."),
            ))
        }
    };
    parts
        .iter()
        .enumerate()
        .map(|(j, part)| {
            let param = format!("{param}.content[{j}]");
            match part.get("type").and_then(Value::as_str) {
                Some("input_text" | "output_text") => Ok(json!({"type": "text", "text": part["text"]})),
                Some("input_image") => {
                    let url = part.get("image_url").and_then(Value::as_str).ok_or_else(|| {
                        bad(&param, "Only images given by `image_url` (an https or data URL) can be sent to this provider.")
                    })?;
                    let mut image = json!({"url": url});
                    if let Some(detail) = part.get("detail").filter(|v| !v.is_null()) {
                        image["detail"] = detail.clone();
                    }
                    Ok(json!({"type": "image_url", "image_url": image}))
                }
                Some("input_file") => {
                    let data = part.get("file_data").and_then(Value::as_str).ok_or_else(|| {
                        bad(&param, "Only files given by `file_data` (a data URL) can be sent to this provider.")
                    })?;
                    let mut file = json!({"file_data": data});
                    if let Some(name) = part.get("filename").filter(|v| !v.is_null()) {
                        file["filename"] = name.clone();
                    }
                    Ok(json!({"type": "file", "file": file}))
                }
                other => Err(bad(
                    &param,
                    format!("Invalid content part type: {}.", other.unwrap_or("(none)")),
                )),
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

/// The text of a system, developer or assistant message's content.
fn plain_text(content: &Value, param: &str) -> Result<String, GatewayError> {
    match content {
        Value::String(text) => Ok(text.clone()),
        Value::Array(parts) => {
            let mut text = String::new();
            for (j, part) in parts.iter().enumerate() {
                match (
                    part.get("type").and_then(Value::as_str),
                    part.get("text").and_then(Value::as_str),
                ) {
                    (Some("input_text" | "output_text"), Some(t)) => text.push_str(t),
                    (Some("refusal"), _) => {
                        text.push_str(part.get("refusal").and_then(Value::as_str).unwrap_or(""));
                    }
                    _ => {
                        return Err(bad(
                            &format!("{param}.content[{j}]"),
                            "Only text parts are supported in this message.",
                        ))
                    }
                }
            }
            Ok(text)
        }
        _ => Err(bad(
            param,
            format!("Missing required parameter: '{param}.content'."),
        )),
    }
}

/// `text.format` as the chat `response_format`; `text.verbosity` as is.
fn text_format(text: &Value, chat: &mut Map<String, Value>) -> Result<(), GatewayError> {
    if let Some(verbosity) = text.get("verbosity").filter(|v| !v.is_null()) {
        chat.insert("verbosity".into(), verbosity.clone());
    }
    let Some(format) = text.get("format").filter(|v| !v.is_null()) else {
        return Ok(());
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => {}
        Some("json_object") => {
            chat.insert("response_format".into(), json!({"type": "json_object"}));
        }
        Some("json_schema") => {
            let mut schema = Map::new();
            for field in ["name", "schema", "strict", "description"] {
                if let Some(value) = format.get(field).filter(|v| !v.is_null()) {
                    schema.insert(field.into(), value.clone());
                }
            }
            if !schema.contains_key("name") {
                return Err(bad("text.format.name", "Missing required parameter: 'text.format.name'."));
            }
            chat.insert(
                "response_format".into(),
                json!({"type": "json_schema", "json_schema": schema}),
            );
        }
        _ => {
            return Err(bad(
                "text.format.type",
                "Invalid value for 'text.format.type': expected 'text', 'json_object' or 'json_schema'.",
            ))
        }
    }
    Ok(())
}

/// The chat tools for one Responses tool: a function as is, each function of a namespace
/// under `namespace__name`, a custom (free-form) tool as a function of one string `input`;
/// a tool only OpenAI runs is refused or dropped.
fn chat_tools(
    tool: &Value,
    param: &str,
    builtin: BuiltinTools,
    out: &mut Vec<Value>,
) -> Result<(), GatewayError> {
    let name = || {
        tool.get("name").and_then(Value::as_str).ok_or_else(|| {
            bad(
                &format!("{param}.name"),
                format!("Missing required parameter: '{param}.name'."),
            )
        })
    };
    match tool.get("type").and_then(Value::as_str) {
        Some("function") => {
            let mut function = json!({"name": name()?});
            for field in ["description", "parameters", "strict"] {
                if let Some(value) = tool.get(field).filter(|v| !v.is_null()) {
                    function[field] = value.clone();
                }
            }
            out.push(json!({"type": "function", "function": function}));
        }
        Some("namespace") => {
            let namespace = name()?;
            let inner = tool.get("tools").and_then(Value::as_array).ok_or_else(|| {
                bad(&format!("{param}.tools"), format!("Missing required parameter: '{param}.tools'."))
            })?;
            for (j, function) in inner.iter().enumerate() {
                let mut flat = Vec::new();
                chat_tools(function, &format!("{param}.tools[{j}]"), builtin, &mut flat)?;
                for mut tool in flat {
                    let name = &mut tool["function"]["name"];
                    *name = Value::from(format!("{namespace}{NAMESPACED}{}", name.as_str().unwrap_or("")));
                    out.push(tool);
                }
            }
        }
        Some("custom") => {
            let mut description = tool
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let format = &tool["format"];
            if let Some(definition) = format.get("definition").and_then(Value::as_str) {
                let syntax = format.get("syntax").and_then(Value::as_str).unwrap_or("grammar");
                description.push_str(&format!(
                    "\n\nThe `input` must follow this {syntax} grammar:\n{definition}"
                ));
            }
            out.push(json!({"type": "function", "function": {
                "name": name()?,
                "description": description.trim_start(),
                "parameters": {
                    "type": "object",
                    "properties": {"input": {"type": "string", "description": "The tool's free-form input."}},
                    "required": ["input"],
                    "additionalProperties": false,
                },
            }}));
        }
        _ if builtin == BuiltinTools::Drop => {}
        other => {
            return Err(bad(
                &format!("{param}.type"),
                format!(
                    "Tools of type '{}' are run by OpenAI's Responses API only; this provider is served through Chat Completions and supports function, custom and namespace tools (`responses.builtin_tools: drop` leaves such tools out; in Codex, `web_search = \"disabled\"`).",
                    other.unwrap_or("(none)")
                ),
            ))
        }
    }
    Ok(())
}

/// `tool_choice` in chat's shape.
fn tool_choice(choice: &Value) -> Result<Value, GatewayError> {
    match choice {
        Value::String(mode) if matches!(mode.as_str(), "auto" | "none" | "required") => {
            Ok(choice.clone())
        }
        Value::Object(o)
            if matches!(
                o.get("type").and_then(Value::as_str),
                Some("function" | "custom")
            ) =>
        {
            let name = o.get("name").and_then(Value::as_str).ok_or_else(|| {
                bad(
                    "tool_choice.name",
                    "Missing required parameter: 'tool_choice.name'.",
                )
            })?;
            Ok(json!({"type": "function", "function": {"name": name}}))
        }
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("allowed_tools") => Ok(o
            .get("mode")
            .cloned()
            .unwrap_or_else(|| Value::from("auto"))),
        _ => Err(bad(
            "tool_choice",
            "Invalid value for 'tool_choice': expected 'auto', 'none', 'required' or a function.",
        )),
    }
}

// ---------------------------------------------------------------------------------------
// Output items and usage, shared by the JSON answer and the stream.

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Item {
    Reasoning {
        id: String,
        summary: Vec<SummaryText>,
        /// Anthropic's thinking blocks, sealed, for the client to send back.
        #[serde(skip_serializing_if = "Option::is_none")]
        encrypted_content: Option<String>,
    },
    Message {
        id: String,
        status: &'static str,
        role: &'static str,
        content: Vec<OutputText>,
    },
    FunctionCall {
        id: String,
        call_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
        name: String,
        arguments: String,
        status: &'static str,
    },
    CustomToolCall {
        id: String,
        call_id: String,
        name: String,
        input: String,
        /// The chat arguments (`{"input": …}`) as they stream.
        #[serde(skip)]
        arguments: String,
    },
}

/// A custom tool's input from the chat arguments of its call (`{"input": "…"}`); the
/// arguments themselves when the model did not follow the shape.
fn custom_input(arguments: &str) -> String {
    match serde_json::from_str::<Value>(arguments) {
        Ok(Value::Object(mut o)) => match o.remove("input") {
            Some(Value::String(input)) => input,
            _ => arguments.to_owned(),
        },
        _ => arguments.to_owned(),
    }
}

#[derive(Debug, Clone, Serialize)]
struct OutputText {
    #[serde(rename = "type")]
    kind: &'static str,
    text: String,
    annotations: [(); 0],
    logprobs: [(); 0],
}

impl OutputText {
    fn new(text: String) -> Self {
        Self {
            kind: "output_text",
            text,
            annotations: [],
            logprobs: [],
        }
    }
}

#[derive(Debug, Clone, Serialize)]
struct SummaryText {
    #[serde(rename = "type")]
    kind: &'static str,
    text: String,
}

impl SummaryText {
    fn new(text: String) -> Self {
        Self {
            kind: "summary_text",
            text,
        }
    }
}

#[derive(Serialize)]
struct ResponseUsage {
    input_tokens: u64,
    input_tokens_details: CachedTokens,
    output_tokens: u64,
    output_tokens_details: ReasoningTokens,
    total_tokens: u64,
}

#[derive(Serialize)]
struct CachedTokens {
    cached_tokens: u64,
}

#[derive(Serialize)]
struct ReasoningTokens {
    reasoning_tokens: u64,
}

impl From<ChatUsage> for ResponseUsage {
    fn from(usage: ChatUsage) -> Self {
        Self {
            input_tokens: usage.prompt_tokens,
            input_tokens_details: CachedTokens {
                cached_tokens: usage.cached_tokens(),
            },
            output_tokens: usage.completion_tokens,
            output_tokens_details: ReasoningTokens {
                reasoning_tokens: usage.reasoning_tokens(),
            },
            total_tokens: usage.prompt_tokens + usage.completion_tokens,
        }
    }
}

/// `response.incomplete`'s reason for chat's `finish_reason`, if it is one.
fn incomplete(finish: &str) -> Option<&'static str> {
    match finish {
        "length" => Some("max_output_tokens"),
        "content_filter" => Some("content_filter"),
        _ => None,
    }
}

/// The id of the `n`th output item of a response (`msg_…`, `fc_…`, `rs_…`).
fn item_id(prefix: &str, response_id: &str, n: usize) -> String {
    let base = response_id.strip_prefix("resp_").unwrap_or(response_id);
    format!("{prefix}_{base}{n}")
}

/// An OpenAI `chat.completion` as a `response` object (JSON bytes).
pub(crate) fn from_chat(body: &[u8], echo: &Echo, provider: &str) -> Result<Vec<u8>, GatewayError> {
    let chat: Value = serde_json::from_slice(body).map_err(|err| {
        GatewayError::upstream_protocol(provider, format_args!("not a chat completion: {err}"))
    })?;
    let message = &chat["choices"][0]["message"];
    let mut output = Vec::new();
    let reasoning = message["reasoning_content"]
        .as_str()
        .or(message["reasoning"].as_str())
        .filter(|t| !t.is_empty());
    let sealed = message["thinking_blocks"]
        .as_array()
        .filter(|blocks| !blocks.is_empty())
        .map(|blocks| seal(blocks));
    if reasoning.is_some() || sealed.is_some() {
        output.push(Item::Reasoning {
            id: item_id("rs", &echo.id, output.len()),
            summary: reasoning
                .map(|text| vec![SummaryText::new(text.to_owned())])
                .unwrap_or_default(),
            encrypted_content: sealed,
        });
    }
    let text: String = ["content", "refusal"]
        .iter()
        .filter_map(|field| message[*field].as_str())
        .collect();
    if !text.is_empty() {
        output.push(Item::Message {
            id: item_id("msg", &echo.id, output.len()),
            status: "completed",
            role: "assistant",
            content: vec![OutputText::new(text)],
        });
    }
    for call in message["tool_calls"].as_array().into_iter().flatten() {
        output.push(
            echo.call_item(
                item_id("fc", &echo.id, output.len()),
                call["id"].as_str().unwrap_or_default().to_owned(),
                call["function"]["name"].as_str().unwrap_or_default(),
                call["function"]["arguments"]
                    .as_str()
                    .unwrap_or("{}")
                    .to_owned(),
            ),
        );
    }
    let finish = chat["choices"][0]["finish_reason"]
        .as_str()
        .unwrap_or("stop");
    let end = End {
        usage: serde_json::from_value(chat["usage"].clone()).ok(),
        incomplete: incomplete(finish),
        error: None,
    };
    let status = if end.incomplete.is_some() {
        "incomplete"
    } else {
        "completed"
    };
    let mut response = echo.response(status, &output, &end);
    if let Some(model) = chat["model"].as_str() {
        response["model"] = Value::from(model);
    }
    Ok(serde_json::to_vec(&response).expect("a response serialises"))
}

// ---------------------------------------------------------------------------------------
// Streams

/// The item being streamed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Open {
    None,
    Message,
    Reasoning,
    /// A function call, by its index in the chat stream.
    Call(usize),
}

/// One event's fields after `type` and `sequence_number`, serialised from borrowed data.
#[derive(Serialize)]
#[serde(untagged)]
enum Body<'a> {
    Response {
        response: &'a Value,
    },
    Item {
        output_index: usize,
        item: &'a Item,
    },
    Part {
        item_id: &'a str,
        output_index: usize,
        content_index: usize,
        part: &'a OutputText,
    },
    TextDone {
        item_id: &'a str,
        output_index: usize,
        content_index: usize,
        text: &'a str,
        logprobs: [(); 0],
    },
    ArgumentsDelta {
        item_id: &'a str,
        output_index: usize,
        delta: &'a str,
    },
    ArgumentsDone {
        item_id: &'a str,
        output_index: usize,
        name: &'a str,
        arguments: &'a str,
    },
    SummaryPart {
        item_id: &'a str,
        output_index: usize,
        summary_index: usize,
        part: &'a SummaryText,
    },
    SummaryDone {
        item_id: &'a str,
        output_index: usize,
        summary_index: usize,
        text: &'a str,
    },
    CustomInputDone {
        item_id: &'a str,
        output_index: usize,
        input: &'a str,
    },
    Error(ErrorEvent<'a>),
}

/// The fields of an `error` event, and of the `error` object nested in it.
#[derive(Serialize, Clone, Copy)]
struct ErrorEvent<'a> {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'a str>,
    code: &'a str,
    message: &'a str,
    param: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a ErrorEvent<'a>>,
}

/// OpenAI `chat.completion.chunk` events → the Responses stream.
pub(crate) struct ResponsesStream {
    echo: Echo,
    provider: std::sync::Arc<str>,
    started: bool,
    sequence: u64,
    /// Finished output items, then the open one (when `open` is not `None`).
    items: Vec<Item>,
    open: Open,
    finish: Option<&'static str>,
    incomplete: Option<&'static str>,
    usage: Option<ChatUsage>,
    /// The model the upstream named.
    model: Option<String>,
    /// Anthropic thinking blocks of the open reasoning item.
    thinking: Vec<Value>,
}

/// A delta event (`response.output_text.delta`, `response.function_call_arguments.delta`,
/// `response.reasoning_summary_text.delta`), written by hand: nearly every event of a stream
/// is one, and this is what [`emit`] writes for it, at a fraction of serde's cost.
struct Delta<'a> {
    kind: &'static str,
    item_id: &'a str,
    output_index: usize,
    /// `content_index` or `summary_index` and its value; none when the name is empty.
    at: (&'static str, usize),
    delta: &'a str,
    /// Whether the event has `logprobs` (an empty list).
    logprobs: bool,
}

impl Delta<'_> {
    fn write(&self, sequence: &mut u64, out: &mut BytesMut) {
        out.put_slice(b"event: ");
        out.put_slice(self.kind.as_bytes());
        out.put_slice(b"\ndata: {\"type\":\"");
        out.put_slice(self.kind.as_bytes());
        out.put_slice(b"\",\"sequence_number\":");
        chunk::put_usize(out, *sequence as usize);
        *sequence += 1;
        out.put_slice(b",\"item_id\":");
        chunk::put_json_str(out, self.item_id);
        out.put_slice(b",\"output_index\":");
        chunk::put_usize(out, self.output_index);
        if !self.at.0.is_empty() {
            out.put_slice(b",\"");
            out.put_slice(self.at.0.as_bytes());
            out.put_slice(b"\":");
            chunk::put_usize(out, self.at.1);
        }
        out.put_slice(b",\"delta\":");
        chunk::put_json_str(out, self.delta);
        if self.logprobs {
            out.put_slice(b",\"logprobs\":[]");
        }
        out.put_slice(b"}\n\n");
    }
}

/// Writes one event: `type` and `sequence_number`, then `body`'s fields.
fn emit(sequence: &mut u64, kind: &'static str, body: &Body<'_>, out: &mut BytesMut) {
    out.put_slice(b"event: ");
    out.put_slice(kind.as_bytes());
    out.put_slice(b"\ndata: {\"type\":\"");
    out.put_slice(kind.as_bytes());
    out.put_slice(b"\",\"sequence_number\":");
    let _ = write!(out, "{sequence}");
    *sequence += 1;
    // The body is a non-empty object: its `{` becomes the `,` after the fields above.
    let at = out.len();
    serde_json::to_writer(out.writer(), body).expect("an event serialises");
    debug_assert_eq!(out[at], b'{');
    out[at] = b',';
    out.put_slice(b"\n\n");
}

impl ResponsesStream {
    pub(crate) fn new(echo: Echo, provider: std::sync::Arc<str>) -> Self {
        Self {
            echo,
            provider,
            started: false,
            sequence: 0,
            items: Vec::new(),
            open: Open::None,
            finish: None,
            incomplete: None,
            usage: None,
            model: None,
            thinking: Vec::new(),
        }
    }

    fn snapshot(&mut self, kind: &'static str, status: &str, end: &End, out: &mut BytesMut) {
        let mut response = self.echo.response(status, &self.items, end);
        if let Some(model) = &self.model {
            response["model"] = Value::from(model.as_str());
        }
        emit(
            &mut self.sequence,
            kind,
            &Body::Response {
                response: &response,
            },
            out,
        );
    }

    fn start(&mut self, chunk: &Chunk<'_>, out: &mut BytesMut) {
        self.started = true;
        self.model = chunk.model.as_deref().map(str::to_owned);
        let end = End::default();
        self.snapshot("response.created", "in_progress", &end, out);
        self.snapshot("response.in_progress", "in_progress", &end, out);
    }

    /// Closes the open item: its `*.done` events, then `response.output_item.done`.
    fn close(&mut self, out: &mut BytesMut) {
        if std::mem::replace(&mut self.open, Open::None) == Open::None {
            return;
        }
        let output_index = self.items.len() - 1;
        let item = self.items.last_mut().expect("an open item");
        let seq = &mut self.sequence;
        match item {
            Item::Message {
                id,
                status,
                content,
                ..
            } => {
                let part = &content[0];
                let (item_id, content_index) = (id.as_str(), 0);
                let text = &part.text;
                emit(
                    seq,
                    "response.output_text.done",
                    &Body::TextDone {
                        item_id,
                        output_index,
                        content_index,
                        text,
                        logprobs: [],
                    },
                    out,
                );
                emit(
                    seq,
                    "response.content_part.done",
                    &Body::Part {
                        item_id,
                        output_index,
                        content_index,
                        part,
                    },
                    out,
                );
                *status = "completed";
            }
            Item::Reasoning {
                id,
                summary,
                encrypted_content,
            } => {
                if !self.thinking.is_empty() {
                    *encrypted_content = Some(seal(&self.thinking));
                    self.thinking.clear();
                }
                let Some(part) = summary.first() else {
                    emit(
                        seq,
                        "response.output_item.done",
                        &Body::Item { output_index, item },
                        out,
                    );
                    return;
                };
                let (item_id, summary_index) = (id.as_str(), 0);
                let text = &part.text;
                emit(
                    seq,
                    "response.reasoning_summary_text.done",
                    &Body::SummaryDone {
                        item_id,
                        output_index,
                        summary_index,
                        text,
                    },
                    out,
                );
                emit(
                    seq,
                    "response.reasoning_summary_part.done",
                    &Body::SummaryPart {
                        item_id,
                        output_index,
                        summary_index,
                        part,
                    },
                    out,
                );
            }
            Item::CustomToolCall {
                id,
                input,
                arguments,
                ..
            } => {
                *input = custom_input(arguments);
                let (item_id, delta) = (id.as_str(), input.as_str());
                emit(
                    seq,
                    "response.custom_tool_call_input.delta",
                    &Body::ArgumentsDelta {
                        item_id,
                        output_index,
                        delta,
                    },
                    out,
                );
                emit(
                    seq,
                    "response.custom_tool_call_input.done",
                    &Body::CustomInputDone {
                        item_id,
                        output_index,
                        input: delta,
                    },
                    out,
                );
            }
            Item::FunctionCall {
                id,
                name,
                arguments,
                status,
                ..
            } => {
                emit(
                    seq,
                    "response.function_call_arguments.done",
                    &Body::ArgumentsDone {
                        item_id: id,
                        output_index,
                        name,
                        arguments,
                    },
                    out,
                );
                *status = "completed";
            }
        }
        emit(
            seq,
            "response.output_item.done",
            &Body::Item { output_index, item },
            out,
        );
    }

    /// Opens a new item (closing the open one) and announces it.
    fn open(&mut self, open: Open, item: Item, out: &mut BytesMut) {
        self.close(out);
        let output_index = self.items.len();
        let seq = &mut self.sequence;
        emit(
            seq,
            "response.output_item.added",
            &Body::Item {
                output_index,
                item: &item,
            },
            out,
        );
        match &item {
            Item::Message { id, .. } => {
                let part = &OutputText::new(String::new());
                emit(
                    seq,
                    "response.content_part.added",
                    &Body::Part {
                        item_id: id,
                        output_index,
                        content_index: 0,
                        part,
                    },
                    out,
                );
            }
            Item::Reasoning { id, .. } => {
                let part = &SummaryText::new(String::new());
                emit(
                    seq,
                    "response.reasoning_summary_part.added",
                    &Body::SummaryPart {
                        item_id: id,
                        output_index,
                        summary_index: 0,
                        part,
                    },
                    out,
                );
            }
            Item::FunctionCall { .. } | Item::CustomToolCall { .. } => {}
        }
        self.items.push(item);
        self.open = open;
    }

    fn text(&mut self, delta: &str, out: &mut BytesMut) {
        if delta.is_empty() {
            return;
        }
        if self.open != Open::Message {
            let item = Item::Message {
                id: item_id("msg", &self.echo.id, self.items.len()),
                status: "in_progress",
                role: "assistant",
                content: Vec::new(),
            };
            self.open(Open::Message, item, out);
        }
        let output_index = self.items.len() - 1;
        let Some(Item::Message { id, content, .. }) = self.items.last_mut() else {
            unreachable!("the open item is a message")
        };
        if content.is_empty() {
            content.push(OutputText::new(String::new()));
        }
        content[0].text.push_str(delta);
        let at = ("content_index", 0);
        let logprobs = true;
        let event = Delta {
            kind: "response.output_text.delta",
            item_id: id,
            output_index,
            at,
            delta,
            logprobs,
        };
        event.write(&mut self.sequence, out);
    }

    fn open_reasoning(&mut self, out: &mut BytesMut) {
        if self.open != Open::Reasoning {
            let item = Item::Reasoning {
                id: item_id("rs", &self.echo.id, self.items.len()),
                summary: Vec::new(),
                encrypted_content: None,
            };
            self.open(Open::Reasoning, item, out);
        }
    }

    fn reasoning(&mut self, delta: &str, out: &mut BytesMut) {
        self.open_reasoning(out);
        let output_index = self.items.len() - 1;
        let Some(Item::Reasoning { id, summary, .. }) = self.items.last_mut() else {
            unreachable!("the open item is reasoning")
        };
        if summary.is_empty() {
            summary.push(SummaryText::new(String::new()));
        }
        summary[0].text.push_str(delta);
        let at = ("summary_index", 0);
        let logprobs = false;
        let event = Delta {
            kind: "response.reasoning_summary_text.delta",
            item_id: id,
            output_index,
            at,
            delta,
            logprobs,
        };
        event.write(&mut self.sequence, out);
    }

    fn tool_call(&mut self, call: &ChunkToolCall<'_>, out: &mut BytesMut) {
        let index = call.index.unwrap_or(0);
        let function = call.function.as_ref();
        let call_id = call.id.as_deref();
        // A call starts where its index changes, or where a new id comes at the same index
        // (some servers repeat the id in every delta of a call).
        let open_id = match self.items.last() {
            Some(Item::FunctionCall { call_id, .. } | Item::CustomToolCall { call_id, .. }) => {
                Some(call_id.as_str())
            }
            _ => None,
        };
        let same = matches!(self.open, Open::Call(open) if open == index)
            && open_id.is_some_and(|open| call_id.is_none_or(|c| c == open));
        if !same {
            let name = function.and_then(|f| f.name.as_deref()).unwrap_or_default();
            let mut item = self.echo.call_item(
                item_id("fc", &self.echo.id, self.items.len()),
                call_id.unwrap_or_default().to_owned(),
                name,
                String::new(),
            );
            if let Item::FunctionCall { status, .. } = &mut item {
                *status = "in_progress";
            }
            self.open(Open::Call(index), item, out);
        }
        let Some(delta) = function
            .and_then(|f| f.arguments.as_deref())
            .filter(|a| !a.is_empty())
        else {
            return;
        };
        let output_index = self.items.len() - 1;
        match self.items.last_mut() {
            Some(Item::FunctionCall { id, arguments, .. }) => {
                arguments.push_str(delta);
                let event = Delta {
                    kind: "response.function_call_arguments.delta",
                    item_id: id,
                    output_index,
                    at: ("", 0),
                    delta,
                    logprobs: false,
                };
                event.write(&mut self.sequence, out);
            }
            // The input is told whole when the call ends: the deltas are of its JSON.
            Some(Item::CustomToolCall { arguments, .. }) => arguments.push_str(delta),
            _ => unreachable!("the open item is a call"),
        }
    }

    fn finish(&mut self, out: &mut BytesMut) {
        self.close(out);
        let end = End {
            usage: self.usage,
            incomplete: self.incomplete,
            error: None,
        };
        if end.incomplete.is_some() {
            self.snapshot("response.incomplete", "incomplete", &end, out);
        } else {
            self.snapshot("response.completed", "completed", &end, out);
        }
    }
}

impl StreamTranslator for ResponsesStream {
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
            self.usage = Some(usage);
        }
        if let Some(choice) = chunk.choices.first() {
            let delta = &choice.delta;
            if let Some(reasoning) = delta.reasoning() {
                self.reasoning(reasoning, out);
            }
            if let Some(blocks) = &delta.thinking_blocks {
                // The block the reasoning text streamed is finished: its signature is kept
                // for the reasoning item's `encrypted_content`.
                self.open_reasoning(out);
                self.thinking.extend(blocks.iter().cloned());
            }
            for text in [&delta.content, &delta.refusal].into_iter().flatten() {
                self.text(text, out);
            }
            for call in delta.tool_calls.iter().flatten() {
                self.tool_call(call, out);
            }
            if let Some(finish) = &choice.finish_reason {
                self.finish = Some("stop");
                self.incomplete = incomplete(finish);
            }
        }
        Ok(true)
    }

    fn end(&mut self, out: &mut BytesMut) -> Result<(), GatewayError> {
        // Some servers end without `[DONE]`; a stream that said why it stopped is whole.
        if self.started && self.finish.is_some() {
            self.finish(out);
            return Ok(());
        }
        Err(GatewayError::upstream_protocol(
            &self.provider,
            "the stream ended before the answer was complete",
        ))
    }

    fn fail(&mut self, err: &GatewayError, out: &mut BytesMut) {
        // A response that started ends `failed` (items in progress stay as they are);
        // then the `error` event, in the flat shape of the API reference and with the
        // nested `error` object the SDKs raise on.
        if self.started {
            self.open = Open::None;
            let end = End {
                usage: self.usage,
                incomplete: None,
                error: Some(err.clone()),
            };
            self.snapshot("response.failed", "failed", &end, out);
        }
        let code = err.code().unwrap_or(err.error_type());
        let nested = ErrorEvent {
            kind: Some(err.error_type()),
            code,
            message: err.message(),
            param: err.param(),
            error: None,
        };
        let body = ErrorEvent {
            kind: None,
            error: Some(&nested),
            ..nested
        };
        let mut data = BytesMut::new();
        emit(&mut self.sequence, "error", &Body::Error(body), &mut data);
        out.extend_from_slice(&data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse;
    use crate::translate::stream::{feed, finish, Fed};

    fn chat(body: Value) -> Value {
        to_chat(&serde_json::to_vec(&body).unwrap(), BuiltinTools::Reject)
            .unwrap()
            .chat
    }

    fn refused(body: Value) -> GatewayError {
        match to_chat(&serde_json::to_vec(&body).unwrap(), BuiltinTools::Reject) {
            Ok(_) => panic!("accepted {body}"),
            Err(err) => err,
        }
    }

    #[test]
    fn a_codex_style_request_becomes_a_chat_request() {
        // The shape Codex 0.171 sends: no `instructions`, developer messages first, every
        // item with an id, the whole history each turn, `store: false`.
        let out = chat(json!({
            "model": "gpt-x",
            "stream": true,
            "store": false,
            "instructions": "Be brief.",
            "input": [
                {"type": "message", "id": "msg_1", "role": "developer", "content": [{"type": "input_text", "text": "You are Codex."}]},
                {"type": "message", "id": "msg_2", "role": "user", "content": [{"type": "input_text", "text": "list files"}, {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"}]},
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "opaque"},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Running ls.", "annotations": []}]},
                {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "exec_command", "arguments": "{\"cmd\":\"ls\"}", "status": "completed"},
                {"type": "function_call", "call_id": "call_2", "name": "exec_command", "arguments": "{\"cmd\":\"pwd\"}"},
                {"type": "function_call_output", "id": "fco_1", "call_id": "call_1", "output": "a.txt\n"},
                {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "/tmp"}]},
                {"role": "user", "content": "thanks"},
            ],
            "tools": [{"type": "function", "name": "exec_command", "description": "Run", "strict": false, "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}}}],
            "tool_choice": "auto",
            "parallel_tool_calls": true,
            "reasoning": {"effort": "medium", "summary": "auto"},
            "text": {"verbosity": "low", "format": {"type": "json_schema", "name": "answer", "schema": {"type": "object"}, "strict": true}},
            "max_output_tokens": 1000,
            "temperature": 0.2,
            "include": ["reasoning.encrypted_content"],
            "prompt_cache_key": "session-1",
        }));
        assert_eq!(
            out["messages"],
            json!([
                {"role": "system", "content": "Be brief."},
                {"role": "system", "content": "You are Codex."},
                {"role": "user", "content": [{"type": "text", "text": "list files"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}}]},
                {"role": "assistant", "content": "Running ls.", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "exec_command", "arguments": "{\"cmd\":\"ls\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "exec_command", "arguments": "{\"cmd\":\"pwd\"}"}},
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "a.txt\n"},
                {"role": "tool", "tool_call_id": "call_2", "content": "/tmp"},
                {"role": "user", "content": "thanks"},
            ])
        );
        assert_eq!(out["tools"][0]["function"]["name"], "exec_command");
        assert_eq!(out["tools"][0]["function"]["strict"], false);
        assert_eq!(out["tool_choice"], "auto");
        assert_eq!(out["parallel_tool_calls"], true);
        assert_eq!(out["reasoning_effort"], "medium");
        assert_eq!(out["verbosity"], "low");
        assert_eq!(
            out["response_format"],
            json!({"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": true}})
        );
        assert_eq!(out["max_tokens"], 1000);
        assert_eq!(out["temperature"], 0.2);
        assert_eq!(out["stream_options"]["include_usage"], true);
        assert!(out.get("prompt_cache_key").is_none() && out.get("include").is_none());
    }

    #[test]
    fn what_only_openai_runs_is_refused_by_name() {
        let err = refused(
            json!({"model": "m", "input": "hi", "tools": [{"type": "function", "name": "f"}, {"type": "web_search"}]}),
        );
        assert_eq!(
            (err.status().as_u16(), err.param()),
            (400, Some("tools[1].type"))
        );
        assert!(err.message().contains("web_search"), "{}", err.message());
        let err = refused(json!({"model": "m", "input": "hi", "background": true}));
        assert_eq!(err.param(), Some("background"));
        let err =
            refused(json!({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]}));
        assert_eq!(err.param(), Some("input[0].type"));
        let err = refused(json!({"model": "m", "input": "hi", "previous_response_id": "resp_x"}));
        assert_eq!(err.status().as_u16(), 404);
        assert_eq!(err.code(), Some("previous_response_not_found"));
        let err = refused(json!({"model": "m"}));
        assert_eq!(err.param(), Some("input"));
        let err = refused(
            json!({"model": "m", "input": [{"type": "message", "role": "tool", "content": "x"}]}),
        );
        assert_eq!(err.param(), Some("input[0].role"));
    }

    fn echo(request: Value) -> Echo {
        Echo::new(request.as_object().unwrap(), "m")
    }

    #[test]
    fn a_completion_becomes_a_response() {
        let completion = json!({"id": "c1", "model": "gpt-4o", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Let me look.", "reasoning_content": "The user wants files.", "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "exec_command", "arguments": "{\"cmd\":\"ls\"}"}}]}}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 4}, "completion_tokens_details": {"reasoning_tokens": 3}}});
        let echo = echo(
            json!({"model": "m", "input": "hi", "instructions": "Be brief.", "max_output_tokens": 100}),
        );
        let out: Value = serde_json::from_slice(
            &from_chat(&serde_json::to_vec(&completion).unwrap(), &echo, "p").unwrap(),
        )
        .unwrap();
        assert_eq!(out["object"], "response");
        assert!(out["id"].as_str().unwrap().starts_with("resp_"));
        assert_eq!(out["status"], "completed");
        assert_eq!(out["model"], "gpt-4o");
        assert_eq!(out["instructions"], "Be brief.");
        assert_eq!(out["max_output_tokens"], 100);
        let output = out["output"].as_array().unwrap();
        let kinds: Vec<_> = output.iter().map(|i| i["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["reasoning", "message", "function_call"]);
        assert_eq!(output[0]["summary"][0]["text"], "The user wants files.");
        assert_eq!(
            output[1]["content"][0],
            json!({"type": "output_text", "text": "Let me look.", "annotations": [], "logprobs": []})
        );
        assert_eq!(output[2]["call_id"], "call_a");
        assert_eq!(output[2]["arguments"], "{\"cmd\":\"ls\"}");
        assert_eq!(
            out["usage"],
            json!({"input_tokens": 12, "input_tokens_details": {"cached_tokens": 4}, "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 3}, "total_tokens": 19})
        );

        let truncated =
            json!({"choices": [{"finish_reason": "length", "message": {"content": "Once upon"}}]});
        let out: Value = serde_json::from_slice(
            &from_chat(&serde_json::to_vec(&truncated).unwrap(), &echo, "p").unwrap(),
        )
        .unwrap();
        assert_eq!(out["status"], "incomplete");
        assert_eq!(out["incomplete_details"]["reason"], "max_output_tokens");
    }

    const STREAM: &str = concat!(
        "data: {\"id\":\"c1\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
        "data: {\"id\":\"c1\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"Thinking\"}}]}\n\n",
        "data: {\"id\":\"c1\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi \\\"there\\\"\"}}]}\n\n",
        "data: {\"id\":\"c1\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"!\"}}]}\n\n",
        "data: {\"id\":\"c1\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"exec_command\",\"arguments\":\"\"}}]}}]}\n\n",
        "data: {\"id\":\"c1\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"cmd\\\":\"}}]}}]}\n\n",
        "data: {\"id\":\"c1\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"ls\\\"}\"}}]}}]}\n\n",
        "data: {\"id\":\"c1\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_b\",\"type\":\"function\",\"function\":{\"name\":\"view_image\",\"arguments\":\"{}\"}}]}}]}\n\n",
        "data: {\"id\":\"c1\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
        "data: {\"id\":\"c1\",\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":7}}\n\n",
        "data: [DONE]\n\n",
    );

    fn translate(echo: &Echo, frames: &[&[u8]]) -> Vec<u8> {
        let mut translator = ResponsesStream::new(echo.clone(), "p".into());
        let mut decoder = sse::Decoder::default();
        let mut out = BytesMut::new();
        let mut done = false;
        for frame in frames {
            if !done {
                match feed(&mut decoder, &mut translator, frame, &mut out) {
                    Fed::More => {}
                    Fed::Ended => done = true,
                    Fed::Failed(err) => {
                        translator.fail(&err, &mut out);
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
            assert_eq!(
                data["sequence_number"],
                out.len(),
                "numbered in order from 0"
            );
            out.push((name, data));
            true
        });
        out
    }

    fn plain_echo() -> Echo {
        echo(json!({"model": "m", "input": "hi", "stream": true}))
    }

    #[test]
    fn a_chat_stream_becomes_the_responses_event_sequence() {
        let events = events(&translate(&plain_echo(), &[STREAM.as_bytes()]));
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.reasoning_summary_part.added",
                "response.reasoning_summary_text.delta",
                "response.reasoning_summary_text.done",
                "response.reasoning_summary_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        let (_, created) = &events[0];
        assert_eq!(created["response"]["status"], "in_progress");
        assert_eq!(created["response"]["output"], json!([]));
        // What the SDKs' accumulators need: an added message with no content and a part
        // with empty text; an added call with empty arguments; indexes in order.
        assert_eq!(events[8].1["item"]["content"], json!([]));
        assert_eq!(events[9].1["part"]["text"], "");
        assert_eq!(events[15].1["item"]["arguments"], "");
        assert_eq!(events[15].1["output_index"], 2);
        assert_eq!(events[12].1["text"], "Hi \"there\"!");
        assert_eq!(events[18].1["arguments"], "{\"cmd\":\"ls\"}");
        assert_eq!(events[18].1["name"], "exec_command");
        let completed = &events[24].1["response"];
        assert_eq!(completed["id"], created["response"]["id"]);
        assert_eq!(completed["status"], "completed");
        assert_eq!(completed["usage"]["total_tokens"], 19);
        assert_eq!(completed["output"].as_array().unwrap().len(), 4);
    }

    #[test]
    fn any_split_of_the_chat_stream_gives_the_same_events() {
        let echo = plain_echo();
        let whole = translate(&echo, &[STREAM.as_bytes()]);
        let bytes = STREAM.as_bytes();
        for split in 1..bytes.len() {
            let (a, b) = bytes.split_at(split);
            assert_eq!(translate(&echo, &[a, b]), whole, "split at {split}");
        }
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(translate(&echo, &singles), whole);
    }

    /// The output items a client assembles from the events (each item as added, its parts
    /// and deltas appended, as done says), and the final response the last event carries.
    fn assemble(events: &[(String, Value)]) -> (Vec<Value>, Value) {
        let mut assembled: Vec<Value> = Vec::new();
        for (name, data) in events {
            match name.as_str() {
                "response.output_item.added" => assembled.push(data["item"].clone()),
                "response.content_part.added" => {
                    let item = assembled.last_mut().unwrap();
                    item["content"]
                        .as_array_mut()
                        .unwrap()
                        .push(data["part"].clone());
                }
                "response.output_text.delta" => {
                    let part = &mut assembled.last_mut().unwrap()["content"][0];
                    part["text"] = json!(
                        part["text"].as_str().unwrap().to_owned() + data["delta"].as_str().unwrap()
                    );
                }
                "response.reasoning_summary_part.added" => {
                    let item = assembled.last_mut().unwrap();
                    item["summary"]
                        .as_array_mut()
                        .unwrap()
                        .push(data["part"].clone());
                }
                "response.reasoning_summary_text.delta" => {
                    let part = &mut assembled.last_mut().unwrap()["summary"][0];
                    part["text"] = json!(
                        part["text"].as_str().unwrap().to_owned() + data["delta"].as_str().unwrap()
                    );
                }
                "response.function_call_arguments.delta" => {
                    let item = assembled.last_mut().unwrap();
                    item["arguments"] = json!(
                        item["arguments"].as_str().unwrap().to_owned()
                            + data["delta"].as_str().unwrap()
                    );
                }
                "response.output_item.done" => {
                    let item = assembled.last_mut().unwrap();
                    if item.get("status").is_some() {
                        item["status"] = json!("completed");
                    }
                    assert_eq!(*item, data["item"], "done repeats the assembled item");
                }
                _ => {}
            }
        }
        let completed = events.last().unwrap().1["response"].clone();
        (assembled, completed)
    }

    #[test]
    fn the_streamed_response_equals_the_json_translation() {
        // The final `response.completed` and the items assembled from the deltas both
        // equal `from_chat` of the same answer given as one completion.
        let echo = plain_echo();
        let events = events(&translate(&echo, &[STREAM.as_bytes()]));
        let (assembled, completed) = assemble(&events);
        assert_eq!(completed["output"], Value::Array(assembled));
        let completion = json!({"id": "c1", "model": "gpt-4o", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Hi \"there\"!", "reasoning_content": "Thinking", "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "exec_command", "arguments": "{\"cmd\":\"ls\"}"}},
                {"id": "call_b", "type": "function", "function": {"name": "view_image", "arguments": "{}"}}]}}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 7}});
        let json: Value = serde_json::from_slice(
            &from_chat(&serde_json::to_vec(&completion).unwrap(), &echo, "p").unwrap(),
        )
        .unwrap();
        assert_eq!(json, completed);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

        /// Any chat answer (reasoning, text, refusal, tool calls, any finish, usage), in any
        /// framing: the streamed response's items, as assembled and as completed, are its
        /// translated JSON's.
        #[test]
        fn a_generated_answer_streams_as_it_translates_whole(
            answer in crate::translate::generated::arb_answer(),
            piece in 1usize..9,
            frame in 1usize..300,
        ) {
            let echo = plain_echo();
            let sse = answer.stream(piece);
            let frames: Vec<&[u8]> = sse.as_bytes().chunks(frame).collect();
            let (assembled, completed) = assemble(&events(&translate(&echo, &frames)));
            proptest::prop_assert_eq!(&completed["output"], &Value::Array(assembled));
            let json: Value = serde_json::from_slice(
                &from_chat(&serde_json::to_vec(&answer.completion()).unwrap(), &echo, "p").unwrap(),
            )
            .unwrap();
            proptest::prop_assert_eq!(json, completed);
        }
    }

    #[test]
    fn hand_written_deltas_are_what_serde_writes() {
        let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
        let (mut seq_a, mut seq_b) = (7, 7);
        let delta = "say \"hi\"\n";
        Delta {
            kind: "response.function_call_arguments.delta",
            item_id: "fc_1",
            output_index: 3,
            at: ("", 0),
            delta,
            logprobs: false,
        }
        .write(&mut seq_a, &mut a);
        let body = Body::ArgumentsDelta {
            item_id: "fc_1",
            output_index: 3,
            delta,
        };
        emit(
            &mut seq_b,
            "response.function_call_arguments.delta",
            &body,
            &mut b,
        );
        assert_eq!(a, b);
        assert_eq!((seq_a, seq_b), (8, 8));
    }

    #[test]
    fn a_truncated_answer_is_incomplete() {
        let stream = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Once\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n",
            "data: [DONE]\n\n",
        );
        let events = events(&translate(&plain_echo(), &[stream.as_bytes()]));
        let (name, last) = events.last().unwrap();
        assert_eq!(name, "response.incomplete");
        assert_eq!(last["response"]["status"], "incomplete");
        assert_eq!(
            last["response"]["incomplete_details"]["reason"],
            "max_output_tokens"
        );
    }

    #[test]
    fn failures_end_the_response_and_raise_in_the_sdks() {
        let stream = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n",
            "event: error\ndata: {\"error\":{\"message\":\"Overloaded\",\"type\":\"upstream_error\",\"code\":\"overloaded\"}}\n\n",
        );
        let failed_events = events(&translate(&plain_echo(), &[stream.as_bytes()]));
        let names: Vec<&str> = failed_events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(&names[names.len() - 2..], ["response.failed", "error"]);
        let failed = &failed_events[failed_events.len() - 2].1["response"];
        assert_eq!(failed["status"], "failed");
        assert_eq!(failed["error"]["code"], "overloaded");
        let error = &failed_events.last().unwrap().1;
        assert_eq!(error["code"], "overloaded");
        assert!(error["message"].as_str().unwrap().contains("Overloaded"));
        // The nested object is what the openai SDK raises `APIError` from.
        assert_eq!(error["error"]["code"], "overloaded");

        // Cut before the answer finished; before any event, only the error.
        let cut = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n";
        let cut_events = events(&translate(&plain_echo(), &[cut.as_bytes()]));
        assert_eq!(cut_events.last().unwrap().0, "error");
        let events_before = events(&translate(&plain_echo(), &[b"data: [DONE]\n\n"]));
        let names: Vec<&str> = events_before.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["error"]);
    }
    #[test]
    fn namespace_and_custom_tools_round_trip_through_chat_functions() {
        // Codex's default tools: a namespace of functions, a free-form apply_patch, and
        // web search (dropped when the gateway is told to).
        let request = json!({
            "model": "m",
            "input": [
                {"type": "function_call", "call_id": "c1", "namespace": "agents", "name": "spawn", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "ok"},
                {"type": "custom_tool_call", "call_id": "c2", "name": "apply_patch", "input": "*** Begin Patch"},
                {"type": "custom_tool_call_output", "call_id": "c2", "output": "Done"},
            ],
            "tools": [
                {"type": "namespace", "name": "agents", "description": "Sub-agents.", "tools": [
                    {"type": "function", "name": "spawn", "parameters": {"type": "object"}}]},
                {"type": "custom", "name": "apply_patch", "description": "Edit files.", "format": {"type": "grammar", "syntax": "lark", "definition": "start: patch"}},
                {"type": "web_search", "external_web_access": false},
            ],
            "tool_choice": {"type": "custom", "name": "apply_patch"},
        });
        let body = serde_json::to_vec(&request).unwrap();
        let err = to_chat(&body, BuiltinTools::Reject).err().unwrap();
        assert_eq!(err.param(), Some("tools[2].type"));
        let Translated { chat, echo } = to_chat(&body, BuiltinTools::Drop).unwrap();
        let names: Vec<&str> = chat["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["function"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["agents__spawn", "apply_patch"]);
        let custom = &chat["tools"][1]["function"];
        assert!(custom["description"]
            .as_str()
            .unwrap()
            .contains("start: patch"));
        assert_eq!(custom["parameters"]["required"], json!(["input"]));
        assert_eq!(
            chat["tool_choice"],
            json!({"type": "function", "function": {"name": "apply_patch"}})
        );
        let calls = &chat["messages"];
        assert_eq!(
            calls[0]["tool_calls"][0]["function"]["name"],
            "agents__spawn"
        );
        assert_eq!(
            calls[2]["tool_calls"][0]["function"]["arguments"],
            "{\"input\":\"*** Begin Patch\"}"
        );
        assert_eq!(
            calls[3],
            json!({"role": "tool", "tool_call_id": "c2", "content": "Done"})
        );

        // The model's calls come back as the client's own kinds of item.
        let completion = json!({"choices": [{"finish_reason": "tool_calls", "message": {"tool_calls": [
            {"id": "c3", "type": "function", "function": {"name": "agents__spawn", "arguments": "{}"}},
            {"id": "c4", "type": "function", "function": {"name": "apply_patch", "arguments": "{\"input\":\"*** End Patch\"}"}}]}}]});
        let out: Value = serde_json::from_slice(
            &from_chat(&serde_json::to_vec(&completion).unwrap(), &echo, "p").unwrap(),
        )
        .unwrap();
        assert_eq!(out["output"][0]["namespace"], "agents");
        assert_eq!(out["output"][0]["name"], "spawn");
        assert_eq!(out["output"][1]["type"], "custom_tool_call");
        assert_eq!(out["output"][1]["input"], "*** End Patch");
        assert!(out["output"][1].get("arguments").is_none());

        let stream = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c4\",\"function\":{\"name\":\"apply_patch\",\"arguments\":\"{\\\"input\\\":\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"*** End Patch\\\"}\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
            "data: [DONE]\n\n",
        );
        let events = events(&translate(&echo, &[stream.as_bytes()]));
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names[2..],
            [
                "response.output_item.added",
                "response.custom_tool_call_input.delta",
                "response.custom_tool_call_input.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        assert_eq!(events[2].1["item"]["input"], "");
        assert_eq!(events[4].1["input"], "*** End Patch");
        assert_eq!(events[5].1["item"]["input"], "*** End Patch");
    }
    #[test]
    fn anthropic_thinking_is_sealed_in_reasoning_items_and_goes_back() {
        let blocks =
            json!([{"type": "thinking", "thinking": "Check the weather.", "signature": "sig-123"}]);
        let completion = json!({"choices": [{"finish_reason": "tool_calls", "message": {
            "reasoning_content": "Check the weather.", "thinking_blocks": blocks,
            "tool_calls": [{"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]}}]});
        let echo = plain_echo();
        let out: Value = serde_json::from_slice(
            &from_chat(&serde_json::to_vec(&completion).unwrap(), &echo, "p").unwrap(),
        )
        .unwrap();
        let reasoning = &out["output"][0];
        assert_eq!(reasoning["type"], "reasoning");
        let sealed = reasoning["encrypted_content"].as_str().unwrap();
        assert!(sealed.starts_with(SEALED));
        // The next turn, as Codex sends it: the reasoning item before the call it led to.
        let next = json!({"model": "m", "input": [
            {"role": "user", "content": "weather?"},
            reasoning, out["output"][1],
            {"type": "function_call_output", "call_id": "toolu_1", "output": "Sunny"},
        ]});
        let chat = to_chat(&serde_json::to_vec(&next).unwrap(), BuiltinTools::Reject)
            .unwrap()
            .chat;
        assert_eq!(chat["messages"][1]["thinking_blocks"], blocks);
        assert_eq!(chat["messages"][1]["tool_calls"][0]["id"], "toolu_1");
        // Someone else's encrypted content is dropped, not sent on.
        let foreign = json!({"model": "m", "input": [
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAA-openai"},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        ]});
        let chat = to_chat(&serde_json::to_vec(&foreign).unwrap(), BuiltinTools::Reject)
            .unwrap()
            .chat;
        assert!(chat["messages"][0].get("thinking_blocks").is_none());

        // Streamed: the blocks arrive once each is finished, and seal the reasoning item.
        let stream = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"Check the weather.\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"thinking_blocks\":[{\"type\":\"thinking\",\"thinking\":\"Check the weather.\",\"signature\":\"sig-123\"}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"thinking_blocks\":[{\"type\":\"redacted_thinking\",\"data\":\"xyz\"}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Let me check.\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n",
        );
        let events = events(&translate(&echo, &[stream.as_bytes()]));
        let done = events
            .iter()
            .find(|(n, d)| n == "response.output_item.done" && d["item"]["type"] == "reasoning")
            .unwrap();
        let sealed = done.1["item"]["encrypted_content"].as_str().unwrap();
        assert_eq!(
            Value::Array(unseal(sealed).unwrap()),
            json!([{"type": "thinking", "thinking": "Check the weather.", "signature": "sig-123"},
                   {"type": "redacted_thinking", "data": "xyz"}])
        );
        let completed = &events.last().unwrap().1["response"];
        assert_eq!(completed["output"][0]["encrypted_content"], sealed);
        assert_eq!(
            completed["output"][1]["content"][0]["text"],
            "Let me check."
        );
    }
}
