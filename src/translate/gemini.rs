//! OpenAI Chat Completions ⇄ Gemini `generateContent` / `streamGenerateContent?alt=sse`.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::BytesMut;
use http::header::HeaderValue;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::chat::{
    data_url, mint_id, now, Chat, ChunkWriter, Completion, Content, Delta, DeltaFunction,
    DeltaToolCall, Finish, Message, OutChoice, OutFunction, OutMessage, OutToolCall, Part,
    ResponseFormat, ToolChoice, Usage,
};
use super::stream::StreamTranslator;
use crate::error::{ErrorKind, GatewayError};

/// Thinking budgets for `reasoning_effort` low / medium / high.
const BUDGETS: [(&str, u64); 3] = [("low", 1024), ("medium", 4096), ("high", 16384)];

/// Marks the thought signature inside a tool-call id: `<id>_sig_<base64url>`.
const SIG: &str = "_sig_";

/// The tool-call id the client sees for a Gemini function call: its own id (or a minted
/// one) with the thought signature, if any, appended in base64url.
pub(crate) fn encode_call_id(id: Option<&str>, signature: Option<&str>) -> String {
    let mut out = match id {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => mint_id("call_", 24),
    };
    if let Some(sig) = signature.filter(|s| !s.is_empty()) {
        out.push_str(SIG);
        out.extend(sig.chars().filter(|&c| c != '=').map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        }));
    }
    out
}

/// The id and thought signature a tool-call id carries (see [`encode_call_id`]).
pub(crate) fn decode_call_id(id: &str) -> (&str, Option<String>) {
    let Some((base, sig)) = id.split_once(SIG) else {
        return (id, None);
    };
    let mut out: String = sig
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while out.len() % 4 != 0 {
        out.push('=');
    }
    (base, Some(out))
}

fn parts(content: &Content, param: &str) -> Result<Vec<Value>, GatewayError> {
    match content {
        Content::Text(t) if t.is_empty() => Ok(Vec::new()),
        Content::Text(t) => Ok(vec![json!({"text": t})]),
        Content::Parts(ps) => {
            let mut out = Vec::with_capacity(ps.len());
            for p in ps {
                match p {
                    Part::Text(t) if t.is_empty() => {}
                    Part::Text(t) => out.push(json!({"text": t})),
                    Part::Image(url) => out.push(image_part(url, param)?),
                }
            }
            Ok(out)
        }
    }
}

fn image_part(url: &str, param: &str) -> Result<Value, GatewayError> {
    if let Some((mime, data)) = data_url(url) {
        return Ok(json!({"inlineData": {"mimeType": mime, "data": data}}));
    }
    if url.starts_with("gs://") || url.starts_with("https://generativelanguage.googleapis.com/") {
        let ext = url.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
        let mime = match ext.as_str() {
            "png" => "image/png",
            "gif" => "image/gif",
            "webp" => "image/webp",
            "pdf" => "application/pdf",
            _ => "image/jpeg",
        };
        return Ok(json!({"fileData": {"mimeType": mime, "fileUri": url}}));
    }
    Err(GatewayError::invalid_param(
        param,
        "Gemini needs images inline: send a base64 `data:` URL (or a Gemini Files API / gs:// URI).",
    ))
}

/// Keywords Gemini's `Schema` accepts; everything else is dropped.
const SCHEMA_KEYS: [&str; 21] = [
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
];

/// A JSON Schema as Gemini's OpenAPI subset: `$ref`s inlined, `const` as `enum`,
/// `type: [x, "null"]` as `nullable`, types upper-cased, unknown keywords dropped.
pub(crate) fn schema(value: &Value) -> Value {
    let defs = value
        .get("$defs")
        .or_else(|| value.get("definitions"))
        .and_then(Value::as_object);
    convert(value, defs, 0)
}

fn convert(value: &Value, defs: Option<&Map<String, Value>>, depth: usize) -> Value {
    let Value::Object(o) = value else {
        return value.clone();
    };
    if depth > 16 {
        return json!({"type": "OBJECT"});
    }
    if let Some(target) = o.get("$ref").and_then(Value::as_str) {
        let name = target.rsplit('/').next().unwrap_or_default();
        if let Some(def) = defs.and_then(|d| d.get(name)) {
            let mut resolved = convert(def, defs, depth + 1);
            if let (Value::Object(r), Some(desc)) = (&mut resolved, o.get("description")) {
                r.insert("description".into(), desc.clone());
            }
            return resolved;
        }
        return json!({"type": "OBJECT"});
    }
    let mut out = Map::new();
    for (k, v) in o {
        match k.as_str() {
            "type" => match v {
                Value::String(t) => {
                    out.insert("type".into(), t.to_ascii_uppercase().into());
                }
                Value::Array(types) => {
                    let mut rest = types
                        .iter()
                        .filter_map(Value::as_str)
                        .filter(|t| *t != "null");
                    if let Some(t) = rest.next() {
                        out.insert("type".into(), t.to_ascii_uppercase().into());
                    }
                    if types.iter().any(|t| t == "null") {
                        out.insert("nullable".into(), true.into());
                    }
                }
                _ => {}
            },
            "properties" => {
                if let Value::Object(props) = v {
                    let props: Map<String, Value> = props
                        .iter()
                        .map(|(name, p)| (name.clone(), convert(p, defs, depth + 1)))
                        .collect();
                    out.insert(k.clone(), props.into());
                }
            }
            "items" => {
                out.insert(k.clone(), convert(v, defs, depth + 1));
            }
            "anyOf" | "oneOf" => {
                if let Value::Array(options) = v {
                    let options: Vec<Value> = options
                        .iter()
                        .filter(|o| o.get("type").and_then(Value::as_str) != Some("null"))
                        .map(|o| convert(o, defs, depth + 1))
                        .collect();
                    if options.len() < v.as_array().map_or(0, Vec::len) {
                        out.insert("nullable".into(), true.into());
                    }
                    if options.len() == 1 {
                        if let Value::Object(only) = &options[0] {
                            for (k, v) in only {
                                out.entry(k.clone()).or_insert_with(|| v.clone());
                            }
                        }
                    } else {
                        out.insert("anyOf".into(), options.into());
                    }
                }
            }
            "const" => {
                out.insert("enum".into(), json!([v]));
            }
            "exclusiveMinimum" if v.is_number() => {
                out.entry("minimum").or_insert_with(|| v.clone());
            }
            "exclusiveMaximum" if v.is_number() => {
                out.entry("maximum").or_insert_with(|| v.clone());
            }
            "maximum" => {
                out.insert(k.clone(), v.clone());
            }
            key if SCHEMA_KEYS.contains(&key) => {
                out.insert(k.clone(), v.clone());
            }
            _ => {}
        }
    }
    Value::Object(out)
}

/// The Gemini `generateContent` request for an OpenAI chat request (the model goes in the
/// URL).
pub(crate) fn request(chat: &Chat) -> Result<Value, GatewayError> {
    let mut body = Map::new();
    let mut system = Vec::new();
    for (i, c) in chat.system.iter().enumerate() {
        system.extend(parts(c, &format!("system[{i}]"))?);
    }
    if !system.is_empty() {
        body.insert(
            "systemInstruction".into(),
            json!({"parts": system, "role": "user"}),
        );
    }

    let mut contents: Vec<(&'static str, bool, Vec<Value>)> = Vec::new();
    for (i, m) in chat.messages.iter().enumerate() {
        let param = format!("messages[{i}].content");
        let (role, is_tool, ps) = match m {
            Message::User(c) => ("user", false, parts(c, &param)?),
            Message::Assistant {
                content,
                tool_calls,
                ..
            } => {
                let mut ps = match content {
                    Some(c) => parts(c, &param)?,
                    None => Vec::new(),
                };
                for call in tool_calls {
                    let (id, signature) = decode_call_id(&call.id);
                    let mut part = Map::new();
                    part.insert(
                        "functionCall".into(),
                        json!({"name": call.name, "args": call.arguments_object(), "id": id}),
                    );
                    if let Some(sig) = signature {
                        part.insert("thoughtSignature".into(), sig.into());
                    }
                    ps.push(Value::Object(part));
                }
                ("model", false, ps)
            }
            Message::Tool {
                tool_call_id,
                content,
            } => {
                let name = chat
                    .find_tool_call(tool_call_id)
                    .map(|c| c.name.clone())
                    .ok_or_else(|| {
                        GatewayError::invalid_param(
                            &format!("messages[{i}].tool_call_id"),
                            format!("Tool message `{tool_call_id}` answers no tool call of an earlier assistant message (Gemini needs the function's name)."),
                        )
                    })?;
                let text = content.text();
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(v @ Value::Object(_)) => v,
                    _ => json!({"result": text}),
                };
                let (id, _) = decode_call_id(tool_call_id);
                (
                    "user",
                    true,
                    vec![
                        json!({"functionResponse": {"name": name, "response": response, "id": id}}),
                    ],
                )
            }
        };
        if ps.is_empty() {
            continue;
        }
        match contents.last_mut() {
            Some((r, t, prev)) if *r == role && *t == is_tool => prev.extend(ps),
            _ => contents.push((role, is_tool, ps)),
        }
    }
    let contents: Vec<Value> = contents
        .into_iter()
        .map(|(role, _, parts)| json!({"role": role, "parts": parts}))
        .collect();
    body.insert("contents".into(), contents.into());

    let mut config = Map::new();
    if let Some(n) = chat.max_tokens {
        config.insert("maxOutputTokens".into(), n.into());
    }
    if let Some(t) = chat.temperature {
        config.insert("temperature".into(), t.into());
    }
    if let Some(p) = chat.top_p {
        config.insert("topP".into(), p.into());
    }
    if let Some(s) = chat.seed {
        config.insert("seed".into(), s.into());
    }
    if !chat.stop.is_empty() {
        if chat.stop.len() > 5 {
            return Err(GatewayError::invalid_param(
                "stop",
                "Gemini accepts at most 5 stop sequences.",
            ));
        }
        config.insert("stopSequences".into(), json!(chat.stop));
    }
    if let Some(n) = chat.n.filter(|&n| n != 1) {
        config.insert("candidateCount".into(), n.into());
    }
    if let Some(p) = chat.presence_penalty {
        config.insert("presencePenalty".into(), p.into());
    }
    if let Some(p) = chat.frequency_penalty {
        config.insert("frequencyPenalty".into(), p.into());
    }
    if chat.logprobs {
        config.insert("responseLogprobs".into(), true.into());
        if let Some(n) = chat.top_logprobs {
            config.insert("logprobs".into(), n.into());
        }
    }
    match &chat.response_format {
        Some(ResponseFormat::JsonObject) => {
            config.insert("responseMimeType".into(), "application/json".into());
        }
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            config.insert("responseMimeType".into(), "application/json".into());
            config.insert("responseJsonSchema".into(), schema.clone());
        }
        Some(ResponseFormat::Text) | None => {}
    }
    let thinking = if let Some(t) = &chat.thinking {
        match t.get("type").and_then(Value::as_str) {
            Some("disabled") => Some(json!({"thinkingBudget": 0})),
            _ => Some(json!({
                "includeThoughts": true,
                "thinkingBudget": t.get("budget_tokens").and_then(Value::as_i64).unwrap_or(-1),
            })),
        }
    } else if let Some(effort) = chat.reasoning_effort.as_deref() {
        match BUDGETS.iter().find(|(name, _)| *name == effort) {
            Some(&(_, budget)) => Some(json!({"includeThoughts": true, "thinkingBudget": budget})),
            None if matches!(effort, "none" | "minimal") => Some(json!({"thinkingBudget": 0})),
            None => {
                return Err(GatewayError::invalid_param(
                    "reasoning_effort",
                    format!(
                    "Invalid value for 'reasoning_effort': `{effort}` (use low, medium or high)."
                ),
                ))
            }
        }
    } else {
        None
    };
    if let Some(thinking) = thinking {
        config.insert("thinkingConfig".into(), thinking);
    }
    if !config.is_empty() {
        body.insert("generationConfig".into(), config.into());
    }

    if !chat.tools.is_empty() {
        let declarations: Vec<Value> = chat
            .tools
            .iter()
            .map(|t| {
                let mut d = Map::new();
                d.insert("name".into(), t.name.as_str().into());
                if let Some(desc) = &t.description {
                    d.insert("description".into(), desc.as_str().into());
                }
                if let Some(p) = &t.parameters {
                    d.insert("parameters".into(), schema(p));
                }
                Value::Object(d)
            })
            .collect();
        body.insert(
            "tools".into(),
            json!([{ "functionDeclarations": declarations }]),
        );
        let config = match &chat.tool_choice {
            None => None,
            Some(ToolChoice::Auto) => Some(json!({"mode": "AUTO"})),
            Some(ToolChoice::None) => Some(json!({"mode": "NONE"})),
            Some(ToolChoice::Required) => Some(json!({"mode": "ANY"})),
            Some(ToolChoice::Function(name)) => {
                Some(json!({"mode": "ANY", "allowedFunctionNames": [name]}))
            }
        };
        if let Some(config) = config {
            body.insert(
                "toolConfig".into(),
                json!({ "functionCallingConfig": config }),
            );
        }
    }
    for (openai, gemini) in [
        ("safety_settings", "safetySettings"),
        ("safetySettings", "safetySettings"),
        ("cached_content", "cachedContent"),
        ("cachedContent", "cachedContent"),
    ] {
        if let Some(v) = chat.raw.get(openai) {
            body.insert(gemini.into(), v.clone());
        }
    }
    Ok(Value::Object(body))
}

// ---------------------------------------------------------------------------------------
// Responses

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NativeUsage {
    prompt_token_count: Option<u64>,
    candidates_token_count: Option<u64>,
    total_token_count: Option<u64>,
    thoughts_token_count: Option<u64>,
    cached_content_token_count: Option<u64>,
    tool_use_prompt_token_count: Option<u64>,
}

impl NativeUsage {
    fn openai(&self) -> Usage {
        let prompt =
            self.prompt_token_count.unwrap_or(0) + self.tool_use_prompt_token_count.unwrap_or(0);
        let thoughts = self.thoughts_token_count.unwrap_or(0);
        let completion = self.candidates_token_count.unwrap_or(0) + thoughts;
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: self.total_token_count.unwrap_or(prompt + completion),
            cached_tokens: self.cached_content_token_count.unwrap_or(0),
            cache_creation_tokens: None,
            reasoning_tokens: thoughts,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NativeResponse<'a> {
    #[serde(default)]
    candidates: Vec<Candidate<'a>>,
    #[serde(default)]
    usage_metadata: Option<NativeUsage>,
    #[serde(borrow, default)]
    model_version: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    response_id: Option<Cow<'a, str>>,
    #[serde(default)]
    prompt_feedback: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate<'a> {
    #[serde(default)]
    content: Option<CandidateContent<'a>>,
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    index: Option<usize>,
}

#[derive(Deserialize)]
struct CandidateContent<'a> {
    #[serde(borrow, default)]
    parts: Vec<NativePart<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NativePart<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(default)]
    thought: Option<bool>,
    #[serde(borrow, default)]
    thought_signature: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    function_call: Option<FunctionCall<'a>>,
}

#[derive(Deserialize)]
struct FunctionCall<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(default)]
    args: Option<Value>,
}

fn finish_reason(reason: Option<&str>, called: bool) -> Finish {
    match reason {
        Some("MAX_TOKENS") => Finish::Length,
        // Gemini's filters, on text and on images (`FinishReason` in the API reference).
        Some(
            "SAFETY"
            | "RECITATION"
            | "BLOCKLIST"
            | "PROHIBITED_CONTENT"
            | "SPII"
            | "IMAGE_SAFETY"
            | "IMAGE_PROHIBITED_CONTENT"
            | "IMAGE_RECITATION",
        ) => Finish::ContentFilter,
        // The rest (OTHER, LANGUAGE, MALFORMED_FUNCTION_CALL, UNEXPECTED_TOOL_CALL,
        // TOO_MANY_TOOL_CALLS, NO_IMAGE, …) ended the answer without a filter: `stop`, or
        // `tool_calls` when it called one.
        _ if called => Finish::ToolCalls,
        _ => Finish::Stop,
    }
}

fn block_message(feedback: Option<&Value>) -> Option<String> {
    let f = feedback?;
    let reason = f.get("blockReason").and_then(Value::as_str)?;
    Some(
        f.get("blockReasonMessage")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("The prompt was blocked ({reason}).")),
    )
}

fn arguments(args: Option<&Value>) -> String {
    match args {
        Some(v @ Value::Object(_)) => v.to_string(),
        _ => "{}".to_owned(),
    }
}

/// A Gemini response as an OpenAI `chat.completion` (JSON bytes).
pub(crate) fn response(body: &[u8], provider: &str, model: &str) -> Result<Vec<u8>, GatewayError> {
    let r: NativeResponse<'_> = serde_json::from_slice(body).map_err(|e| {
        GatewayError::upstream_protocol(provider, format_args!("not a Gemini response: {e}"))
    })?;
    if let Some(err) = &r.error {
        return Err(error_value(provider, StatusCode::OK, err, None));
    }
    let mut choices = Vec::with_capacity(r.candidates.len().max(1));
    for (position, c) in r.candidates.iter().enumerate() {
        let mut text: Option<String> = None;
        let mut reasoning: Option<String> = None;
        let mut tool_calls = Vec::new();
        for p in c.content.iter().flat_map(|c| &c.parts) {
            if let Some(call) = &p.function_call {
                tool_calls.push(OutToolCall {
                    id: encode_call_id(call.id.as_deref(), p.thought_signature.as_deref()),
                    kind: "function",
                    function: OutFunction {
                        name: call.name.to_string(),
                        arguments: arguments(call.args.as_ref()),
                    },
                });
            } else if let Some(t) = &p.text {
                let target = if p.thought == Some(true) {
                    &mut reasoning
                } else {
                    &mut text
                };
                target.get_or_insert_with(String::new).push_str(t);
            }
        }
        let finish = finish_reason(c.finish_reason.as_deref(), !tool_calls.is_empty());
        choices.push(OutChoice {
            index: c.index.unwrap_or(position),
            message: OutMessage {
                role: "assistant",
                content: text,
                refusal: None,
                reasoning_content: reasoning,
                thinking_blocks: None,
                tool_calls,
            },
            logprobs: None,
            finish_reason: finish,
        });
    }
    if choices.is_empty() {
        choices.push(OutChoice {
            index: 0,
            message: OutMessage {
                role: "assistant",
                content: None,
                refusal: block_message(r.prompt_feedback.as_ref()),
                reasoning_content: None,
                thinking_blocks: None,
                tool_calls: Vec::new(),
            },
            logprobs: None,
            finish_reason: Finish::ContentFilter,
        });
    }
    let id = r
        .response_id
        .map(Cow::into_owned)
        .unwrap_or_else(|| mint_id("chatcmpl-", 24));
    let completion = Completion {
        id: &id,
        object: "chat.completion",
        created: now(),
        model: r.model_version.as_deref().unwrap_or(model),
        choices,
        usage: r.usage_metadata.unwrap_or_default().openai(),
        system_fingerprint: None,
    };
    Ok(serde_json::to_vec(&completion).expect("a completion serialises"))
}

// ---------------------------------------------------------------------------------------
// Errors

/// A Gemini error body (`{"error":{code,message,status,details}}`, or a one-element array
/// of it) as the client's error: status kept, except `API_KEY_INVALID` → 401;
/// `RetryInfo.retryDelay` → `Retry-After`; the first field violation as `param`.
pub(crate) fn error(provider: &str, status: StatusCode, body: &[u8]) -> GatewayError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let parsed = match parsed {
        Some(Value::Array(mut a)) if !a.is_empty() => Some(a.swap_remove(0)),
        other => other,
    };
    match parsed.as_ref().and_then(|v| v.get("error")) {
        Some(e) if e.is_object() => error_value(provider, status, e, None),
        _ => {
            let text = String::from_utf8_lossy(body);
            let snippet: String = text.trim().chars().take(500).collect();
            error_value(
                provider,
                status,
                &Value::Null,
                Some(format!(
                    "Upstream `{provider}` answered {status}: {snippet}"
                )),
            )
        }
    }
}

fn error_value(
    _provider: &str,
    status: StatusCode,
    e: &Value,
    fallback: Option<String>,
) -> GatewayError {
    let code = e
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok());
    let native = if status.is_success() {
        code.unwrap_or(500)
    } else {
        status.as_u16()
    };
    let message = e
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or(fallback)
        .unwrap_or_else(|| "Gemini reported an error.".to_owned());
    let details: &[Value] = e
        .get("details")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let key_invalid = details
        .iter()
        .any(|d| d.get("reason").and_then(Value::as_str) == Some("API_KEY_INVALID"));
    let (out, error_type, code): (u16, &str, Option<&str>) = if key_invalid {
        (401, "invalid_request_error", Some("invalid_api_key"))
    } else {
        match native {
            400 if message.contains("exceeds the maximum number of tokens") => (
                400,
                "invalid_request_error",
                Some("context_length_exceeded"),
            ),
            401 => (401, "invalid_request_error", Some("invalid_api_key")),
            403 => (403, "permission_error", None),
            404 => (404, "invalid_request_error", Some("model_not_found")),
            429 => (429, "rate_limit_exceeded", Some("rate_limit_exceeded")),
            s if s >= 500 => (s, "server_error", None),
            s => (s, "invalid_request_error", None),
        }
    };
    let status = StatusCode::from_u16(out).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut err = GatewayError::new(ErrorKind::UpstreamStatus, status, error_type, message);
    if let Some(code) = code {
        err = err.with_code(code);
        if code == "context_length_exceeded" {
            err = err.with_context_window_exceeded();
        }
    }
    let field = details
        .iter()
        .filter_map(|d| d.get("fieldViolations").and_then(Value::as_array))
        .flatten()
        .find_map(|v| v.get("field").and_then(Value::as_str));
    if let Some(field) = field {
        err = err.with_param(field);
    }
    let delay = details
        .iter()
        .find_map(|d| d.get("retryDelay").and_then(Value::as_str));
    if let Some(seconds) = delay
        .and_then(|d| d.strip_suffix('s'))
        .and_then(|d| d.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
    {
        let value = HeaderValue::from(seconds.ceil().min(86_400.0) as u64);
        err = err.with_retry_after(value);
    }
    err
}

// ---------------------------------------------------------------------------------------
// Streams

/// Per candidate: how many tool calls it streamed, whether it finished.
#[derive(Default, Clone, Copy)]
struct CandidateState {
    tools: usize,
    finished: bool,
}

/// Gemini SSE → OpenAI chunks.
pub(crate) struct GeminiStream {
    provider: Arc<str>,
    model: String,
    include_usage: bool,
    writer: ChunkWriter,
    usage: NativeUsage,
    candidates: Vec<CandidateState>,
}

impl GeminiStream {
    pub(crate) fn new(provider: Arc<str>, model: &str, include_usage: bool) -> Self {
        Self {
            provider,
            model: model.to_owned(),
            include_usage,
            writer: ChunkWriter::default(),
            usage: NativeUsage::default(),
            candidates: Vec::new(),
        }
    }

    fn candidate(&mut self, index: usize, out: &mut BytesMut) -> &mut CandidateState {
        while self.candidates.len() <= index {
            let i = self.candidates.len();
            self.writer.delta(
                out,
                i,
                &Delta {
                    role: Some("assistant"),
                    content: Some(""),
                    ..Delta::default()
                },
            );
            self.candidates.push(CandidateState::default());
        }
        &mut self.candidates[index]
    }
}

impl StreamTranslator for GeminiStream {
    fn event(
        &mut self,
        _name: Option<&[u8]>,
        data: &[u8],
        out: &mut BytesMut,
    ) -> Result<bool, GatewayError> {
        let r: NativeResponse<'_> = serde_json::from_slice(data).map_err(|e| {
            GatewayError::upstream_protocol(&self.provider, format_args!("bad stream chunk: {e}"))
        })?;
        if let Some(err) = &r.error {
            return Err(error_value(&self.provider, StatusCode::OK, err, None));
        }
        if !self.writer.is_started() {
            let id = r
                .response_id
                .as_deref()
                .map(str::to_owned)
                .unwrap_or_else(|| mint_id("chatcmpl-", 24));
            let model = r.model_version.as_deref().unwrap_or(&self.model).to_owned();
            self.writer = ChunkWriter::new(&id, &model, now());
        }
        if let Some(usage) = r.usage_metadata {
            // Not monotonic: only the last chunk's counts hold.
            self.usage = usage;
        }
        for (position, c) in r.candidates.iter().enumerate() {
            let index = c.index.unwrap_or(position);
            self.candidate(index, out);
            for p in c.content.iter().flat_map(|c| &c.parts) {
                if let Some(call) = &p.function_call {
                    let id = encode_call_id(call.id.as_deref(), p.thought_signature.as_deref());
                    let args = arguments(call.args.as_ref());
                    let k = self.candidates[index].tools;
                    self.candidates[index].tools += 1;
                    self.writer.delta(
                        out,
                        index,
                        &Delta {
                            tool_calls: Some([DeltaToolCall {
                                index: k,
                                id: Some(&id),
                                kind: Some("function"),
                                function: DeltaFunction {
                                    name: Some(&call.name),
                                    arguments: &args,
                                },
                            }]),
                            ..Delta::default()
                        },
                    );
                } else if let Some(t) = p.text.as_deref().filter(|t| !t.is_empty()) {
                    let delta = if p.thought == Some(true) {
                        Delta {
                            reasoning_content: Some(t),
                            ..Delta::default()
                        }
                    } else {
                        Delta {
                            content: Some(t),
                            ..Delta::default()
                        }
                    };
                    self.writer.delta(out, index, &delta);
                }
            }
            if let Some(reason) = c.finish_reason.as_deref() {
                let state = &mut self.candidates[index];
                if !state.finished {
                    state.finished = true;
                    let finish = finish_reason(Some(reason), state.tools > 0);
                    self.writer.finish(out, index, finish);
                }
            }
        }
        if r.candidates.is_empty() {
            if let Some(message) = block_message(r.prompt_feedback.as_ref()) {
                self.candidate(0, out);
                self.writer.delta(
                    out,
                    0,
                    &Delta {
                        refusal: Some(&message),
                        ..Delta::default()
                    },
                );
                self.candidates[0].finished = true;
                self.writer.finish(out, 0, Finish::ContentFilter);
            }
        }
        Ok(true)
    }

    fn end(&mut self, out: &mut BytesMut) -> Result<(), GatewayError> {
        if self.candidates.is_empty() || self.candidates.iter().any(|c| !c.finished) {
            return Err(GatewayError::upstream_protocol(
                &self.provider,
                "the stream ended before a finish reason",
            ));
        }
        if self.include_usage {
            self.writer.usage(out, &self.usage.openai());
        }
        ChunkWriter::done(out);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Embeddings

/// The `batchEmbedContents` request for an OpenAI embeddings request.
pub(crate) fn embeddings_request(body: &[u8], model: &str) -> Result<Value, GatewayError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| GatewayError::bad_request(format!("Invalid request body: {e}.")))?;
    let inputs: Vec<String> = match value.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) if a.iter().all(Value::is_string) && !a.is_empty() => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => {
            return Err(GatewayError::invalid_param(
                "input",
                "Gemini embeddings take `input` as a string or an array of strings.",
            ))
        }
    };
    let dims = value.get("dimensions").and_then(Value::as_u64);
    let requests: Vec<Value> = inputs
        .iter()
        .map(|text| {
            let mut r =
                json!({"model": format!("models/{model}"), "content": {"parts": [{"text": text}]}});
            if let Some(d) = dims {
                r["outputDimensionality"] = d.into();
            }
            r
        })
        .collect();
    Ok(json!({ "requests": requests }))
}

/// A `batchEmbedContents` response as an OpenAI embeddings list (base64 when asked).
pub(crate) fn embeddings_response(
    body: &[u8],
    provider: &str,
    model: &str,
    base64: bool,
) -> Result<Vec<u8>, GatewayError> {
    use base64::Engine as _;
    #[derive(Deserialize)]
    struct Batch {
        #[serde(default)]
        embeddings: Vec<Embedding>,
    }
    #[derive(Deserialize)]
    struct Embedding {
        #[serde(default)]
        values: Vec<f32>,
    }
    let batch: Batch = serde_json::from_slice(body).map_err(|e| {
        GatewayError::upstream_protocol(
            provider,
            format_args!("not a Gemini embeddings response: {e}"),
        )
    })?;
    let data: Vec<Value> = batch
        .embeddings
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = e.values.iter().flat_map(|f| f.to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(e.values)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let out = json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": 0, "total_tokens": 0},
    });
    Ok(serde_json::to_vec(&out).expect("serialises"))
}
