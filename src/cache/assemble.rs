//! Builds a `chat.completion` from the chunks of a stream as they pass, and the body that
//! feeds it (or keeps a JSON answer) without holding any frame back from the client.

use std::borrow::Cow;
use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use super::inbound::{is_whole_message, is_whole_response, MessageAssembler, ResponseAssembler};
use crate::sse;
use crate::tap::{End, Observer};

/// A streamed answer, assembled chunk by chunk.
#[derive(Default)]
pub(crate) struct Assembler {
    /// The stream's events, cut out of each frame (an unfinished one kept for the next).
    decoder: sse::Decoder,
    head: Map<String, Value>,
    choices: BTreeMap<u64, ChoiceParts>,
    usage: Option<Value>,
    done: bool,
    failed: bool,
}

#[derive(Default)]
struct ChoiceParts {
    role: Option<Value>,
    content: Option<String>,
    refusal: Option<String>,
    tool_calls: BTreeMap<u64, ToolCallParts>,
    logprobs: Option<Vec<Value>>,
    finish_reason: Option<Value>,
}

#[derive(Default)]
struct ToolCallParts {
    id: Option<Value>,
    kind: Option<Value>,
    name: String,
    arguments: String,
}

impl Assembler {
    /// Feeds the next bytes of the stream.
    pub(crate) fn push(&mut self, data: &[u8]) {
        if self.failed || self.done {
            // Anything after `[DONE]` is not part of an answer.
            self.failed |= self.done && !data.trim_ascii().is_empty();
            return;
        }
        let mut decoder = std::mem::take(&mut self.decoder);
        decoder.feed(data, &mut |event| {
            self.event(event.name, &event.data);
            !self.failed
        });
        self.decoder = decoder;
    }

    fn event(&mut self, name: Option<&[u8]>, payload: &[u8]) {
        if name.is_some_and(|n| n == b"error") || self.done {
            self.failed = true;
            return;
        }
        if payload.trim_ascii() == b"[DONE]" {
            self.done = true;
            return;
        }
        // Read into borrowed fields, skipping what is not kept: no tree per chunk. A chunk
        // not of the documented shape leaves the answer uncached.
        match serde_json::from_slice::<Chunk<'_>>(payload) {
            Ok(chunk) if chunk.error.is_none() => self.chunk(chunk),
            _ => self.failed = true,
        }
    }

    fn chunk(&mut self, chunk: Chunk<'_>) {
        let head = [
            ("id", chunk.id),
            ("created", chunk.created),
            ("model", chunk.model),
            ("system_fingerprint", chunk.system_fingerprint),
            ("service_tier", chunk.service_tier),
        ];
        for (member, value) in head {
            if let (Some(value), false) = (value, self.head.contains_key(member)) {
                self.head.insert(member.to_owned(), value.into_value());
            }
        }
        if let Some(usage) = chunk.usage.map(Raw::into_value).filter(Value::is_object) {
            self.usage = Some(usage);
        }
        for choice in chunk.choices {
            let parts = self.choices.entry(choice.index).or_default();
            if let Some(delta) = choice.delta {
                if let (Some(role), None) = (delta.role, &parts.role) {
                    parts.role = Some(role.into_value());
                }
                if let Some(text) = delta.content {
                    parts
                        .content
                        .get_or_insert_with(String::new)
                        .push_str(&text);
                }
                if let Some(text) = delta.refusal {
                    parts
                        .refusal
                        .get_or_insert_with(String::new)
                        .push_str(&text);
                }
                for call in delta.tool_calls {
                    let slot = parts.tool_calls.entry(call.index).or_default();
                    if let (Some(id), None) = (call.id, &slot.id) {
                        slot.id = Some(id.into_value());
                    }
                    if let (Some(kind), None) = (call.kind, &slot.kind) {
                        slot.kind = Some(kind.into_value());
                    }
                    if let Some(function) = call.function {
                        if let Some(name) = function.name {
                            slot.name.push_str(&name);
                        }
                        if let Some(arguments) = function.arguments {
                            slot.arguments.push_str(&arguments);
                        }
                    }
                }
            }
            if let Some(content) = choice.logprobs.and_then(|l| l.content) {
                parts.logprobs.get_or_insert_with(Vec::new).extend(content);
            }
            if let Some(finish) = choice.finish_reason {
                parts.finish_reason = Some(finish.into_value());
            }
        }
    }

    /// The `chat.completion`, if the stream was whole: `[DONE]` seen, no error, and every
    /// choice finished.
    pub(crate) fn finish(mut self) -> Option<Bytes> {
        // The last event counts without its blank line (an upstream may end the body there).
        let mut decoder = std::mem::take(&mut self.decoder);
        if !self.failed {
            decoder.finish(&mut |event| {
                self.event(event.name, &event.data);
                !self.failed
            });
        }
        if !self.done
            || self.failed
            || self.choices.is_empty()
            || self.choices.values().any(|c| c.finish_reason.is_none())
        {
            return None;
        }
        let mut completion = self.head;
        completion.insert("object".to_owned(), json!("chat.completion"));
        let choices: Vec<Value> = self
            .choices
            .into_iter()
            .map(|(index, parts)| {
                let mut message = Map::new();
                message.insert(
                    "role".to_owned(),
                    parts.role.unwrap_or_else(|| json!("assistant")),
                );
                message.insert("content".to_owned(), json!(parts.content));
                message.insert("refusal".to_owned(), json!(parts.refusal));
                if !parts.tool_calls.is_empty() {
                    let calls: Vec<Value> = parts
                        .tool_calls
                        .into_values()
                        .map(|c| {
                            json!({
                                "id": c.id,
                                "type": c.kind.unwrap_or_else(|| json!("function")),
                                "function": { "name": c.name, "arguments": c.arguments },
                            })
                        })
                        .collect();
                    message.insert("tool_calls".to_owned(), Value::Array(calls));
                }
                json!({
                    "index": index,
                    "message": message,
                    "logprobs": parts.logprobs.map(|c| json!({ "content": c })),
                    "finish_reason": parts.finish_reason,
                })
            })
            .collect();
        completion.insert("choices".to_owned(), Value::Array(choices));
        if let Some(usage) = self.usage {
            completion.insert("usage".to_owned(), usage);
        }
        serde_json::to_vec(&Value::Object(completion))
            .ok()
            .map(Bytes::from)
    }
}

/// One `chat.completion.chunk`, as far as the assembler reads it. Strings borrow from the
/// event unless escaped; members kept as they are (`Raw`) are parsed only when kept.
#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow)]
    id: Option<Raw<'a>>,
    #[serde(borrow)]
    created: Option<Raw<'a>>,
    #[serde(borrow)]
    model: Option<Raw<'a>>,
    #[serde(borrow)]
    system_fingerprint: Option<Raw<'a>>,
    #[serde(borrow)]
    service_tier: Option<Raw<'a>>,
    #[serde(borrow)]
    usage: Option<Raw<'a>>,
    #[serde(default, borrow)]
    choices: Vec<ChoiceChunk<'a>>,
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct ChoiceChunk<'a> {
    #[serde(default)]
    index: u64,
    #[serde(borrow)]
    delta: Option<Delta<'a>>,
    logprobs: Option<Logprobs>,
    #[serde(borrow)]
    finish_reason: Option<Raw<'a>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow)]
    role: Option<Raw<'a>>,
    #[serde(borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow)]
    refusal: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "null_as_empty")]
    tool_calls: Vec<ToolCallChunk<'a>>,
}

#[derive(Deserialize)]
struct ToolCallChunk<'a> {
    #[serde(default)]
    index: u64,
    #[serde(borrow)]
    id: Option<Raw<'a>>,
    #[serde(borrow, rename = "type")]
    kind: Option<Raw<'a>>,
    #[serde(borrow)]
    function: Option<FunctionChunk<'a>>,
}

#[derive(Deserialize)]
struct FunctionChunk<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    arguments: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Logprobs {
    content: Option<Vec<Value>>,
}

/// A member's JSON as sent, turned into a `Value` only when it is kept.
#[derive(Deserialize)]
#[serde(transparent)]
struct Raw<'a>(#[serde(borrow)] &'a RawValue);

impl Raw<'_> {
    fn into_value(self) -> Value {
        serde_json::from_str(self.0.get()).unwrap_or(Value::Null)
    }
}

/// `null` where a list is expected reads as an empty one.
fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// What a tapped answer is being turned into.
pub(crate) enum Capture {
    /// A JSON body whose `object` must be the one given (`chat.completion`, or `list` for
    /// embeddings), kept as it passes.
    Json(BytesMut, &'static str),
    /// A chat stream, assembled as it passes.
    Stream(Box<Assembler>),
    /// An Anthropic `message` or a Responses `response`, JSON.
    MessageJson(BytesMut),
    ResponseJson(BytesMut),
    /// Their streams, assembled as they pass.
    MessageStream(Box<MessageAssembler>),
    ResponseStream(Box<ResponseAssembler>),
}

impl Capture {
    /// The `chat.completion` once the body has ended whole.
    fn finish(self) -> Option<Bytes> {
        match self {
            Self::Json(body, object) => {
                // Checked without building a `Value` of it: no allocation but the list.
                #[derive(serde::Deserialize)]
                struct Completion<'a> {
                    object: &'a str,
                    // Read to check that it is a list: `choices`, or `data` of embeddings.
                    #[serde(alias = "choices", alias = "data")]
                    _items: Vec<serde::de::IgnoredAny>,
                }
                let body = body.freeze();
                let completion: Completion<'_> = serde_json::from_slice(&body).ok()?;
                (completion.object == object).then_some(body)
            }
            Self::Stream(assembler) => assembler.finish(),
            Self::MessageJson(body) => Some(body.freeze()).filter(|b| is_whole_message(b)),
            Self::ResponseJson(body) => Some(body.freeze()).filter(|b| is_whole_response(b)),
            Self::MessageStream(assembler) => assembler.finish(),
            Self::ResponseStream(assembler) => assembler.finish(),
        }
    }
}

/// Taps the answer on its way to the client (see [`Tap`](crate::tap::Tap)): every frame is
/// copied into a [`Capture`]. `on_complete` runs once with the `chat.completion` when the
/// body ends whole and within `max_bytes`; never for a failed, truncated or dropped body.
pub(crate) struct Capturer<F: FnOnce(Bytes)> {
    capture: Option<Capture>,
    seen: usize,
    max_bytes: usize,
    on_complete: F,
}

impl<F: FnOnce(Bytes)> Capturer<F> {
    pub(crate) fn new(capture: Capture, max_bytes: usize, on_complete: F) -> Self {
        Self {
            capture: Some(capture),
            seen: 0,
            max_bytes,
            on_complete,
        }
    }
}

impl<F: FnOnce(Bytes)> Observer for Capturer<F> {
    fn frame(&mut self, data: &Bytes) {
        let Some(capture) = self.capture.as_mut() else {
            return;
        };
        self.seen += data.len();
        if self.seen > self.max_bytes.saturating_mul(4) {
            // Far past anything storable (a stream is ~3x its completion).
            self.capture = None;
            return;
        }
        match capture {
            Capture::Json(body, _) | Capture::MessageJson(body) | Capture::ResponseJson(body) => {
                body.extend_from_slice(data);
            }
            Capture::Stream(assembler) => assembler.push(data),
            Capture::MessageStream(assembler) => assembler.push(data),
            Capture::ResponseStream(assembler) => assembler.push(data),
        }
    }

    fn end(self, end: End) {
        if end != End::Complete {
            return;
        }
        if let Some(completion) = self.capture.and_then(Capture::finish) {
            if completion.len() <= self.max_bytes {
                (self.on_complete)(completion);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(events: &[&str]) -> Vec<u8> {
        events
            .iter()
            .flat_map(|e| format!("data: {e}\n\n").into_bytes())
            .collect()
    }

    const CHUNKS: [&str; 7] = [
        r#"{"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
        r#"{"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}"#,
        r#"{"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null}]}"#,
        r#"{"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"t1","type":"function","function":{"name":"get","arguments":"{\"a\""}}]},"finish_reason":null}]}"#,
        r#"{"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]},"finish_reason":null}]}"#,
        r#"{"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
        r#"{"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#,
    ];

    #[test]
    fn a_stream_split_anywhere_assembles_into_one_completion() {
        let mut events: Vec<&str> = CHUNKS.to_vec();
        events.push("[DONE]");
        let bytes = stream(&events);
        for split in [1, 7, 64, bytes.len()] {
            let mut assembler = Assembler::default();
            for piece in bytes.chunks(split) {
                assembler.push(piece);
            }
            let completion: Value =
                serde_json::from_slice(&assembler.finish().expect("whole")).unwrap();
            assert_eq!(completion["object"], "chat.completion");
            assert_eq!(completion["id"], "c1");
            let message = &completion["choices"][0]["message"];
            assert_eq!(message["content"], "Hello");
            assert_eq!(
                message["tool_calls"][0]["function"]["arguments"],
                "{\"a\":1}"
            );
            assert_eq!(message["tool_calls"][0]["id"], "t1");
            assert_eq!(completion["choices"][0]["finish_reason"], "tool_calls");
            assert_eq!(completion["usage"]["total_tokens"], 3);
        }
    }

    #[test]
    fn truncated_or_failed_streams_give_nothing() {
        let whole = |events: &[&str]| {
            let mut assembler = Assembler::default();
            assembler.push(&stream(events));
            assembler.finish()
        };
        assert!(whole(&CHUNKS[..3]).is_none(), "no finish, no [DONE]");
        assert!(whole(&[CHUNKS[0], CHUNKS[5]]).is_none(), "no [DONE]");
        assert!(
            whole(&[CHUNKS[0], CHUNKS[1], "[DONE]"]).is_none(),
            "never finished"
        );
        assert!(whole(&[
            CHUNKS[0],
            r#"{"error":{"message":"x"}}"#,
            CHUNKS[5],
            "[DONE]"
        ])
        .is_none());
        assert!(whole(&[CHUNKS[0], CHUNKS[5], "[DONE]"]).is_some());
        let mut assembler = Assembler::default();
        assembler.push(&stream(&[CHUNKS[0], CHUNKS[5]]));
        assembler.push(b"event: error\ndata: {\"error\":{}}\n\ndata: [DONE]\n\n");
        assert!(assembler.finish().is_none());
    }
}
