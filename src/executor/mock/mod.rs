//! The built-in mock upstream: offline, deterministic, with faults chosen by model name.
//!
//! The mock answers chat completions by echoing the last user message (`You said: …`),
//! one word per stream chunk, with `usage` that counts words as tokens: prompt tokens are
//! the words of every message, completion tokens the words of the answer (cut to
//! `max_tokens` / `max_completion_tokens`, then `finish_reason: length`). Embeddings are
//! unit vectors derived from a hash of each input (`dimensions`, default 16; `float` or
//! `base64`).
//!
//! Options ride on the model name, query-string style — `mock/echo?status=429`:
//!
//! | option | effect |
//! |---|---|
//! | `status=N` | answer HTTP `N` with an OpenAI-style error body (`retry-after: 1` on 429) |
//! | `delay=200ms` | wait before the response headers |
//! | `chunk_delay=20ms` | wait before each stream event after the first |
//! | `cut=N` | the stream breaks after `N` events (over HTTP: the connection is dropped) |
//! | `words=N` | answer `N` words instead of the echo |
//! | `usage=false` | report no usage at all (like some OpenAI-compatible servers) |
//! | `context=N` | a context window of `N` prompt tokens: longer prompts get OpenAI's 400 `context_length_exceeded` |
//! | `tool=NAME` | when the request offers tool `NAME`, call it (arguments: the first text part of the last user message that is a JSON object, else `{}`); once the last message is its result, answer `Tool said: …` |
//!
//! The same logic runs in process ([`MockExecutor`], `kind: mock`) and as an HTTP server
//! (`MockUpstream`, with the `test-util` feature; `cargo run --features test-util --bin
//! mock-upstream`) for tests, benches and LiteLLM.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use http_body::{Frame, SizeHint};
use serde_json::{json, Value};
use tokio::time::Sleep;

use crate::body::{Body, BoxError};
use crate::error::{ErrorKind, GatewayError};
use crate::request::{Endpoint, LlmRequest};
use crate::sse;

#[cfg(feature = "test-util")]
mod upstream;
#[cfg(feature = "test-util")]
pub use self::upstream::MockUpstream;

/// What the model name asks of the mock.
#[derive(Debug, Clone, Default, PartialEq)]
struct MockOptions {
    status: Option<StatusCode>,
    delay: Option<Duration>,
    chunk_delay: Option<Duration>,
    cut: Option<usize>,
    words: Option<usize>,
    context: Option<usize>,
    usage: bool,
    tool: Option<String>,
}

impl MockOptions {
    fn parse(model: &str) -> Result<Self, GatewayError> {
        let mut options = Self {
            usage: true,
            ..Self::default()
        };
        let Some((_, query)) = model.split_once('?') else {
            return Ok(options);
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let bad = || {
                GatewayError::invalid_param(
                    "model",
                    format!(
                        "Mock option `{pair}` is not understood: use status=N, delay=DURATION, \
                         chunk_delay=DURATION, cut=N, words=N, context=N, tool=NAME or usage=false."
                    ),
                )
            };
            let duration = || humantime_duration(value).ok_or_else(bad);
            let number = || value.parse::<usize>().map_err(|_| bad());
            match key {
                "status" => {
                    let code = value
                        .parse::<u16>()
                        .ok()
                        .and_then(|c| StatusCode::from_u16(c).ok());
                    options.status = Some(code.filter(|c| c.as_u16() >= 400).ok_or_else(bad)?);
                }
                "delay" => options.delay = Some(duration()?),
                "chunk_delay" => options.chunk_delay = Some(duration()?),
                "cut" => options.cut = Some(number()?),
                "words" => options.words = Some(number()?.min(100_000)),
                "context" => options.context = Some(number()?),
                "usage" => options.usage = value.parse::<bool>().map_err(|_| bad())?,
                "tool" if !value.is_empty() => options.tool = Some(value.to_owned()),
                _ => return Err(bad()),
            }
        }
        Ok(options)
    }
}

fn humantime_duration(value: &str) -> Option<Duration> {
    let (number, unit) = value.split_at(value.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = number.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        _ => None,
    }
}

/// How a cut stream ends.
#[derive(Debug, Clone, Copy)]
enum Cut {
    /// In process: like any upstream failure seen by the gateway, an SSE error event.
    ErrorEvent,
    /// Over HTTP: the body fails, so the server drops the connection.
    #[cfg_attr(not(feature = "test-util"), allow(dead_code))]
    Abort,
}

pin_project_lite::pin_project! {
    /// A mock stream: prepared events, released with an optional delay between them.
    pub struct MockBody {
        events: VecDeque<Bytes>,
        cut_after: Option<usize>,
        cut: Cut,
        chunk_delay: Option<Duration>,
        sleep: Option<Pin<Box<Sleep>>>,
        sent: usize,
        done: bool,
    }
}

impl http_body::Body for MockBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        if *this.sent > 0 {
            if let Some(delay) = *this.chunk_delay {
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(delay)));
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                *this.sleep = None;
            }
        }
        if *this.cut_after == Some(*this.sent) {
            *this.done = true;
            return Poll::Ready(Some(match this.cut {
                Cut::ErrorEvent => Ok(Frame::data(sse::error_event(
                    &GatewayError::upstream_protocol("mock", "stream cut by the `cut` option"),
                ))),
                Cut::Abort => Err("mock stream cut by the `cut` option".into()),
            }));
        }
        match this.events.pop_front() {
            Some(event) => {
                *this.sent += 1;
                Poll::Ready(Some(Ok(Frame::data(event))))
            }
            None => {
                *this.done = true;
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// Ids and counters shared by every clone of a mock.
#[derive(Debug, Default)]
struct Counter(AtomicU64);

impl Counter {
    fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// The built-in mock's settings (`kind: mock`).
#[derive(Debug, Clone, Default, serde::Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct MockSettings {
    /// What `GET /v1/models` lists for this provider.
    pub models: Vec<String>,
    /// Request parameters sent when the client's chat or embeddings request does not set
    /// them (`temperature`, `max_tokens`, …).
    pub params: super::DefaultParams,
}

crate::settings::setters!(MockSettings {
    /// What `GET /v1/models` lists.
    models: Vec<String>,
    /// Request parameters sent when the client does not set them.
    params: super::DefaultParams,
});

/// The mock as an executor inside the gateway (`kind: mock`).
#[derive(Debug, Clone, Default)]
pub struct MockExecutor {
    ids: Arc<Counter>,
}

impl MockExecutor {
    /// A new mock.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers `req` as model `model`.
    pub async fn execute(
        &self,
        req: Request<Bytes>,
        llm: &LlmRequest,
        model: &str,
    ) -> Result<Response<Body>, GatewayError> {
        let options = MockOptions::parse(model)?;
        if let Some(delay) = options.delay {
            tokio::time::sleep(delay).await;
        }
        answer(
            llm,
            req.body(),
            model,
            &options,
            self.ids.next(),
            Cut::ErrorEvent,
        )
    }
}

super::executor_service!(MockExecutor);

fn answer(
    llm: &LlmRequest,
    body: &[u8],
    model: &str,
    options: &MockOptions,
    seq: u64,
    cut: Cut,
) -> Result<Response<Body>, GatewayError> {
    if let Some(status) = options.status {
        let mut err = GatewayError::new(
            ErrorKind::UpstreamStatus,
            status,
            default_error_type(status),
            format!(
                "Mock upstream: status {} requested by the model name.",
                status.as_u16()
            ),
        )
        .with_code("mock_error");
        if status == StatusCode::TOO_MANY_REQUESTS {
            err = err.with_retry_after(HeaderValue::from_static("1"));
        }
        return Err(err);
    }
    let request: Value =
        serde_json::from_slice(body).map_err(|e| GatewayError::bad_request(e.to_string()))?;
    if let Some(window) = options.context {
        let prompt = prompt_tokens(&request);
        if prompt > window {
            return Err(GatewayError::new(
                ErrorKind::UpstreamStatus,
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                format!("This model's maximum context length is {window} tokens. However, your messages resulted in {prompt} tokens. Please reduce the length of the messages."),
            )
            .with_param("messages")
            .with_code("context_length_exceeded")
            .with_context_window_exceeded());
        }
    }
    match llm.endpoint() {
        Endpoint::ChatCompletions => Ok(chat(llm, &request, model, options, seq, cut)),
        Endpoint::Embeddings => embeddings(&request, model, options),
        other => Err(GatewayError::bad_request(format!(
            "The mock has no {} endpoint.",
            other.path()
        ))),
    }
}

fn default_error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    }
}

/// The text of a message's `content`: a string, or the `text` of its parts.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// Words of every message, at least 1.
fn prompt_tokens(request: &Value) -> usize {
    request["messages"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|m| words(&content_text(&m["content"])))
        .sum::<usize>()
        .max(1)
}

fn words(text: &str) -> usize {
    text.split_whitespace().count()
}

fn chat(
    llm: &LlmRequest,
    request: &Value,
    model: &str,
    options: &MockOptions,
    seq: u64,
    cut: Cut,
) -> Response<Body> {
    let messages = request["messages"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let last = messages.last();
    if last.is_some_and(|m| m["role"] == "tool") {
        let result = content_text(&last.expect("checked")["content"]);
        return completion(
            llm,
            request,
            model,
            options,
            seq,
            cut,
            &format!("Tool said: {result}"),
            None,
        );
    }
    if let Some(name) = options
        .tool
        .as_deref()
        .filter(|name| offers_tool(request, name))
    {
        let arguments = messages
            .iter()
            .rev()
            .find(|m| m["role"] == "user")
            .and_then(|m| json_argument(&m["content"]))
            .unwrap_or_else(|| "{}".to_owned());
        return completion(
            llm,
            request,
            model,
            options,
            seq,
            cut,
            "",
            Some((name, &arguments)),
        );
    }
    let text = match options.words {
        Some(n) => (0..n)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" "),
        None => {
            let last_user = messages
                .iter()
                .rev()
                .find(|m| m["role"] == "user")
                .map(|m| content_text(&m["content"]));
            format!("You said: {}", last_user.unwrap_or_default())
        }
    };
    completion(llm, request, model, options, seq, cut, &text, None)
}

/// Whether the request offers a function tool of this name.
fn offers_tool(request: &Value, name: &str) -> bool {
    request["tools"]
        .as_array()
        .is_some_and(|tools| tools.iter().any(|t| t["function"]["name"] == name))
}

/// The first text of a content value that is a JSON object, as the mock's tool arguments.
fn json_argument(content: &Value) -> Option<String> {
    let texts: Vec<&str> = match content {
        Value::String(s) => vec![s.as_str()],
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
        _ => Vec::new(),
    };
    texts
        .into_iter()
        .find_map(|text| match serde_json::from_str::<Value>(text.trim()) {
            Ok(v @ Value::Object(_)) => Some(v.to_string()),
            _ => None,
        })
}

/// The mock's answer: `text` (cut to the request's token limit), or one tool call.
#[allow(clippy::too_many_arguments)]
fn completion(
    llm: &LlmRequest,
    request: &Value,
    model: &str,
    options: &MockOptions,
    seq: u64,
    cut: Cut,
    text: &str,
    tool_call: Option<(&str, &str)>,
) -> Response<Body> {
    let prompt_tokens = prompt_tokens(request);
    let limit = request["max_completion_tokens"]
        .as_u64()
        .or_else(|| request["max_tokens"].as_u64());
    let mut answer: Vec<&str> = text.split_whitespace().collect();
    let finish_reason = match limit {
        _ if tool_call.is_some() => "tool_calls",
        Some(limit) if (limit as usize) < answer.len() => {
            answer.truncate(limit as usize);
            "length"
        }
        _ => "stop",
    };
    let call_id = format!("call_mock_{seq}");
    let completion_tokens = answer.len() + tool_call.map_or(0, |(_, args)| words(args).max(1));
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    });
    let id = format!("chatcmpl-mock-{seq}");
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());

    if !llm.stream() {
        let mut completion = json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": answer.join(" "), "refusal": null },
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
        });
        if let Some((name, arguments)) = tool_call {
            completion["choices"][0]["message"]["content"] = Value::Null;
            completion["choices"][0]["message"]["tool_calls"] = json!([{
                "id": call_id, "type": "function",
                "function": { "name": name, "arguments": arguments },
            }]);
        }
        if options.usage {
            completion["usage"] = usage;
        }
        return json_response(&completion);
    }

    let chunk = |delta: Value, finish: Value| {
        let chunk = json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }],
        });
        sse::data_event(&serde_json::to_vec(&chunk).expect("json"))
    };
    let mut events = VecDeque::with_capacity(answer.len() + 4);
    events.push_back(chunk(
        json!({ "role": "assistant", "content": "" }),
        Value::Null,
    ));
    for (i, word) in answer.iter().enumerate() {
        let piece = if i == 0 {
            (*word).to_owned()
        } else {
            format!(" {word}")
        };
        events.push_back(chunk(json!({ "content": piece }), Value::Null));
    }
    if let Some((name, arguments)) = tool_call {
        events.push_back(chunk(
            json!({ "tool_calls": [{ "index": 0, "id": call_id, "type": "function",
                "function": { "name": name, "arguments": "" } }] }),
            Value::Null,
        ));
        events.push_back(chunk(
            json!({ "tool_calls": [{ "index": 0, "function": { "arguments": arguments } }] }),
            Value::Null,
        ));
    }
    events.push_back(chunk(json!({}), json!(finish_reason)));
    if llm.include_usage() && options.usage {
        let usage_chunk = json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [], "usage": usage,
        });
        events.push_back(sse::data_event(
            &serde_json::to_vec(&usage_chunk).expect("json"),
        ));
    }
    events.push_back(Bytes::from_static(sse::DONE));
    let body = MockBody {
        events,
        cut_after: options.cut,
        cut,
        chunk_delay: options.chunk_delay,
        sleep: None,
        sent: 0,
        done: false,
    };
    let mut response = Response::new(Body::new(body));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    response
}

fn embeddings(
    request: &Value,
    model: &str,
    options: &MockOptions,
) -> Result<Response<Body>, GatewayError> {
    let inputs: Vec<String> = match &request["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) if items.iter().all(Value::is_string) => items
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect(),
        Value::Array(items) if items.iter().all(Value::is_number) => {
            vec![Value::Array(items.clone()).to_string()]
        }
        Value::Array(items) if items.iter().all(Value::is_array) => {
            items.iter().map(Value::to_string).collect()
        }
        _ => {
            return Err(GatewayError::invalid_param(
                "input",
                "Invalid 'input': expected a string, an array of strings, or token arrays.",
            ))
        }
    };
    if inputs.is_empty() {
        return Err(GatewayError::invalid_param(
            "input",
            "Invalid 'input': empty array.",
        ));
    }
    let dimensions = request["dimensions"].as_u64().unwrap_or(16).clamp(1, 4096) as usize;
    let base64 = request["encoding_format"] == "base64";
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| {
            let vector = embed(text, dimensions);
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(vector)
            };
            json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    let tokens: usize = inputs.iter().map(|t| words(t).max(1)).sum();
    let mut response = json!({ "object": "list", "data": data, "model": model });
    if options.usage {
        response["usage"] = json!({ "prompt_tokens": tokens, "total_tokens": tokens });
    }
    Ok(json_response(&response))
}

/// A deterministic unit vector for `text`: FNV-1a of the text seeds a xorshift generator.
fn embed(text: &str, dimensions: usize) -> Vec<f32> {
    let mut state = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let mut vector: Vec<f32> = (0..dimensions)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect();
    let norm = vector
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::EPSILON);
    vector.iter_mut().for_each(|x| *x /= norm);
    vector
}

fn json_response(value: &Value) -> Response<Body> {
    let mut response = Response::new(Body::full(serde_json::to_vec(value).expect("json")));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    fn llm(body: &str) -> LlmRequest {
        LlmRequest::parse(Endpoint::ChatCompletions, body.as_bytes()).unwrap()
    }

    async fn text(response: Response<Body>) -> String {
        String::from_utf8(
            response
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap()
    }

    #[test]
    fn options_come_from_the_model_name() {
        let o = MockOptions::parse(
            "echo?status=429&delay=20ms&chunk_delay=1s&cut=2&words=5&usage=false",
        )
        .unwrap();
        assert_eq!(o.status, Some(StatusCode::TOO_MANY_REQUESTS));
        assert_eq!(o.delay, Some(Duration::from_millis(20)));
        assert_eq!(o.chunk_delay, Some(Duration::from_secs(1)));
        assert_eq!((o.cut, o.words, o.usage), (Some(2), Some(5), false));
        assert!(MockOptions::parse("echo").unwrap().usage);
        for bad in [
            "echo?status=200",
            "echo?delay=5",
            "echo?nope=1",
            "echo?cut=x",
        ] {
            assert_eq!(
                MockOptions::parse(bad).unwrap_err().status(),
                StatusCode::BAD_REQUEST,
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn echoes_with_word_usage_and_respects_max_tokens() {
        let body = r#"{"model":"echo","max_tokens":3,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"one two three four"}]}]}"#;
        let response = answer(
            &llm(body),
            body.as_bytes(),
            "echo",
            &MockOptions::parse("echo").unwrap(),
            7,
            Cut::Abort,
        )
        .unwrap();
        let value: Value = serde_json::from_str(&text(response).await).unwrap();
        assert_eq!(value["id"], "chatcmpl-mock-7");
        assert_eq!(value["choices"][0]["message"]["content"], "You said: one");
        assert_eq!(value["choices"][0]["finish_reason"], "length");
        assert_eq!(
            value["usage"],
            json!({"prompt_tokens": 6, "completion_tokens": 3, "total_tokens": 9})
        );
    }

    #[tokio::test]
    async fn streams_one_word_per_chunk_with_usage_when_asked() {
        let body = r#"{"model":"echo","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi there"}]}"#;
        let response = answer(
            &llm(body),
            body.as_bytes(),
            "echo",
            &MockOptions::parse("echo").unwrap(),
            1,
            Cut::Abort,
        )
        .unwrap();
        assert_eq!(response.headers()[CONTENT_TYPE], "text/event-stream");
        let text = text(response).await;
        let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
        // role, "You", " said:", " hi", " there", finish, usage, [DONE]
        assert_eq!(events.len(), 8, "{text}");
        let content: String = events[1..5]
            .iter()
            .map(|e| {
                serde_json::from_str::<Value>(&e[6..]).unwrap()["choices"][0]["delta"]["content"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(content, "You said: hi there");
        let usage: Value = serde_json::from_str(&events[6][6..]).unwrap();
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["usage"]["completion_tokens"], 4);
        assert_eq!(events[7], "data: [DONE]");
    }

    #[tokio::test]
    async fn a_cut_stream_ends_with_an_error_event_in_process() {
        let body =
            r#"{"model":"echo","stream":true,"messages":[{"role":"user","content":"a b c"}]}"#;
        let options = MockOptions::parse("echo?cut=2").unwrap();
        let response = answer(
            &llm(body),
            body.as_bytes(),
            "echo",
            &options,
            1,
            Cut::ErrorEvent,
        )
        .unwrap();
        let text = text(response).await;
        assert_eq!(text.matches("data: ").count(), 3, "{text}");
        assert!(text.contains("event: error\ndata: {\"error\""), "{text}");
        assert!(!text.contains("[DONE]"));
    }

    #[test]
    fn embeddings_are_deterministic_unit_vectors() {
        let a = embed("hello", 16);
        assert_eq!(a, embed("hello", 16));
        assert_ne!(a, embed("hello!", 16));
        let norm: f32 = a.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-5);
    }
}
