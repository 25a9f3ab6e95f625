//! Builds a `chat.completion` from the chunks of a stream as they pass, and the body that
//! feeds it (or keeps a JSON answer) without holding any frame back from the client.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
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
        let Ok(Value::Object(chunk)) = serde_json::from_slice::<Value>(payload) else {
            self.failed = true;
            return;
        };
        if chunk.contains_key("error") {
            self.failed = true;
            return;
        }
        self.chunk(chunk);
    }

    fn chunk(&mut self, mut chunk: Map<String, Value>) {
        for member in [
            "id",
            "created",
            "model",
            "system_fingerprint",
            "service_tier",
        ] {
            if let Some(v) = chunk.remove(member).filter(|v| !v.is_null()) {
                self.head.entry(member).or_insert(v);
            }
        }
        if let Some(usage) = chunk.remove("usage").filter(Value::is_object) {
            self.usage = Some(usage);
        }
        let Some(Value::Array(choices)) = chunk.remove("choices") else {
            return;
        };
        for choice in choices {
            let Value::Object(mut choice) = choice else {
                continue;
            };
            let index = choice.get("index").and_then(Value::as_u64).unwrap_or(0);
            let parts = self.choices.entry(index).or_default();
            if let Some(Value::Object(mut delta)) = choice.remove("delta") {
                if let Some(role) = delta.remove("role").filter(|r| !r.is_null()) {
                    parts.role.get_or_insert(role);
                }
                if let Some(Value::String(text)) = delta.remove("content") {
                    parts
                        .content
                        .get_or_insert_with(String::new)
                        .push_str(&text);
                }
                if let Some(Value::String(text)) = delta.remove("refusal") {
                    parts
                        .refusal
                        .get_or_insert_with(String::new)
                        .push_str(&text);
                }
                if let Some(Value::Array(calls)) = delta.remove("tool_calls") {
                    for call in calls {
                        let i = call.get("index").and_then(Value::as_u64).unwrap_or(0);
                        let slot = parts.tool_calls.entry(i).or_default();
                        if let Some(id) = call.get("id").filter(|v| !v.is_null()) {
                            slot.id.get_or_insert(id.clone());
                        }
                        if let Some(kind) = call.get("type").filter(|v| !v.is_null()) {
                            slot.kind.get_or_insert(kind.clone());
                        }
                        if let Some(f) = call.get("function") {
                            if let Some(name) = f.get("name").and_then(Value::as_str) {
                                slot.name.push_str(name);
                            }
                            if let Some(args) = f.get("arguments").and_then(Value::as_str) {
                                slot.arguments.push_str(args);
                            }
                        }
                    }
                }
            }
            if let Some(content) = choice
                .get("logprobs")
                .and_then(|l| l.get("content"))
                .and_then(Value::as_array)
            {
                parts
                    .logprobs
                    .get_or_insert_with(Vec::new)
                    .extend(content.iter().cloned());
            }
            if let Some(finish) = choice.remove("finish_reason").filter(|f| !f.is_null()) {
                parts.finish_reason = Some(finish);
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
