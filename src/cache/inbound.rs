//! The answers of the other inbound protocols, kept in their own shape (an Anthropic
//! `message`, a Responses `response`): assembled from a stream as it passes, checked when
//! JSON, and served again as JSON or as that protocol's event stream.

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{json, Map, Value};

use crate::sse::{self, response_event, ResponseEvent};

/// Writes one named SSE event.
fn event(out: &mut BytesMut, name: &str, data: &Value) {
    out.put_slice(b"event: ");
    out.put_slice(name.as_bytes());
    out.put_slice(b"\ndata: ");
    serde_json::to_writer(out.writer(), data).expect("JSON serialises");
    out.put_slice(b"\n\n");
}

/// Whether a JSON body is a whole answer of `protocol`'s kind.
pub(crate) fn is_whole_message(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Message<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        #[serde(default)]
        stop_reason: Option<&'a str>,
    }
    serde_json::from_slice::<Message<'_>>(body)
        .is_ok_and(|m| m.kind == "message" && m.stop_reason.is_some())
}

/// Whether a JSON body is a finished `response`.
pub(crate) fn is_whole_response(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Response<'a> {
        object: &'a str,
        status: Option<&'a str>,
    }
    serde_json::from_slice::<Response<'_>>(body).is_ok_and(|r| {
        r.object == "response" && matches!(r.status, Some("completed" | "incomplete"))
    })
}

// ---------------------------------------------------------------------------------------
// Anthropic Messages

/// An Anthropic Messages stream, assembled event by event into the `message` it carries.
#[derive(Default)]
pub(crate) struct MessageAssembler {
    decoder: sse::Decoder,
    message: Option<Map<String, Value>>,
    blocks: Vec<Value>,
    /// The `input_json_delta`s of the open tool-use block.
    partial_json: String,
    done: bool,
    failed: bool,
}

impl MessageAssembler {
    pub(crate) fn push(&mut self, data: &[u8]) {
        if self.failed || self.done {
            return;
        }
        let mut decoder = std::mem::take(&mut self.decoder);
        decoder.feed(data, &mut |e| {
            self.event(&e.data);
            !self.failed && !self.done
        });
        self.decoder = decoder;
    }

    fn event(&mut self, data: &[u8]) {
        let Ok(Value::Object(mut event)) = serde_json::from_slice::<Value>(data) else {
            self.failed = true;
            return;
        };
        let kind = event.get("type").and_then(Value::as_str).unwrap_or("");
        match kind {
            "message_start" => match event.remove("message") {
                Some(Value::Object(message)) => self.message = Some(message),
                _ => self.failed = true,
            },
            "content_block_start" => match event.remove("content_block") {
                Some(block) => {
                    self.partial_json.clear();
                    self.blocks.push(block);
                }
                None => self.failed = true,
            },
            "content_block_delta" => {
                let (Some(block), Some(delta)) = (self.blocks.last_mut(), event.get("delta"))
                else {
                    self.failed = true;
                    return;
                };
                let append = |block: &mut Value, field: &str, text: &Value| {
                    let so_far = block[field].as_str().unwrap_or("").to_owned();
                    block[field] = Value::from(so_far + text.as_str().unwrap_or(""));
                };
                match delta["type"].as_str() {
                    Some("text_delta") => append(block, "text", &delta["text"]),
                    Some("thinking_delta") => append(block, "thinking", &delta["thinking"]),
                    Some("signature_delta") => append(block, "signature", &delta["signature"]),
                    Some("input_json_delta") => self
                        .partial_json
                        .push_str(delta["partial_json"].as_str().unwrap_or("")),
                    _ => {}
                }
            }
            "content_block_stop" => {
                if let Some(block) = self.blocks.last_mut() {
                    if block["type"] == "tool_use" && !self.partial_json.is_empty() {
                        match serde_json::from_str::<Value>(&self.partial_json) {
                            Ok(input) => block["input"] = input,
                            Err(_) => self.failed = true,
                        }
                    }
                }
                self.partial_json.clear();
            }
            "message_delta" => {
                let Some(message) = self.message.as_mut() else {
                    self.failed = true;
                    return;
                };
                if let Some(Value::Object(delta)) = event.remove("delta") {
                    message.extend(delta);
                }
                if let Some(Value::Object(usage)) = event.remove("usage") {
                    let merged = message
                        .entry("usage")
                        .or_insert_with(|| json!({}))
                        .as_object_mut()
                        .map(|u| u.extend(usage.into_iter().filter(|(_, v)| !v.is_null())));
                    if merged.is_none() {
                        self.failed = true;
                    }
                }
            }
            "message_stop" => self.done = true,
            "ping" => {}
            // `error`, or anything unknown: not an answer to keep.
            _ => self.failed = true,
        }
    }

    /// The `message`, if the stream was whole (`message_stop` seen, no error).
    pub(crate) fn finish(mut self) -> Option<Bytes> {
        // The last event counts without its blank line (an upstream may end the body there).
        let mut decoder = std::mem::take(&mut self.decoder);
        if !self.failed && !self.done {
            decoder.finish(&mut |e| {
                self.event(&e.data);
                !self.failed
            });
        }
        if !self.done || self.failed {
            return None;
        }
        let mut message = self.message.take()?;
        message.get("stop_reason").filter(|s| !s.is_null())?;
        message.insert("content".to_owned(), Value::Array(self.blocks));
        serde_json::to_vec(&Value::Object(message))
            .ok()
            .map(Bytes::from)
    }
}

/// A `message` as Anthropic's event stream: `message_start`, each block started, its whole
/// content as one delta, stopped; `message_delta` with the stop reason and output tokens;
/// `message_stop`. `None` if it is not a message.
pub(crate) fn message_to_sse(message: &[u8]) -> Option<Bytes> {
    let Value::Object(mut message) = serde_json::from_slice::<Value>(message).ok()? else {
        return None;
    };
    let Some(Value::Array(blocks)) = message.insert("content".to_owned(), json!([])) else {
        return None;
    };
    let stop_reason = message.insert("stop_reason".to_owned(), Value::Null);
    let stop_sequence = message.insert("stop_sequence".to_owned(), Value::Null);
    let output_tokens = message
        .get("usage")
        .and_then(|u| u.get("output_tokens"))
        .cloned()
        .unwrap_or(json!(0));
    let mut out = BytesMut::new();
    event(
        &mut out,
        "message_start",
        &json!({"type": "message_start", "message": message}),
    );
    for (index, block) in blocks.into_iter().enumerate() {
        let (start, delta) = match block["type"].as_str() {
            Some("text") => (
                json!({"type": "text", "text": ""}),
                vec![json!({"type": "text_delta", "text": block["text"]})],
            ),
            Some("thinking") => (
                json!({"type": "thinking", "thinking": "", "signature": ""}),
                vec![
                    json!({"type": "thinking_delta", "thinking": block["thinking"]}),
                    json!({"type": "signature_delta", "signature": block["signature"]}),
                ],
            ),
            Some("tool_use") => {
                let mut start = block.clone();
                start["input"] = json!({});
                let input = serde_json::to_string(&block["input"]).expect("JSON serialises");
                (
                    start,
                    vec![json!({"type": "input_json_delta", "partial_json": input})],
                )
            }
            // Blocks without deltas (redacted thinking…) start whole.
            _ => (block, Vec::new()),
        };
        event(
            &mut out,
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": start}),
        );
        for delta in delta {
            event(
                &mut out,
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index, "delta": delta}),
            );
        }
        event(
            &mut out,
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        );
    }
    event(
        &mut out,
        "message_delta",
        &json!({"type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                "usage": {"output_tokens": output_tokens}}),
    );
    event(&mut out, "message_stop", &json!({"type": "message_stop"}));
    Some(out.freeze())
}

// ---------------------------------------------------------------------------------------
// OpenAI Responses

/// A Responses stream: its final event carries the whole `response`.
#[derive(Default)]
pub(crate) struct ResponseAssembler {
    decoder: sse::Decoder,
    response: Option<Bytes>,
    failed: bool,
}

impl ResponseAssembler {
    pub(crate) fn push(&mut self, data: &[u8]) {
        if self.failed || self.response.is_some() {
            return;
        }
        let mut decoder = std::mem::take(&mut self.decoder);
        decoder.feed(data, &mut |e| self.event(e.name, &e.data));
        self.decoder = decoder;
    }

    /// Takes one event; whether more may follow.
    fn event(&mut self, name: Option<&[u8]>, data: &[u8]) -> bool {
        match response_event(name, data) {
            Some(ResponseEvent::Final) => {
                self.response = serde_json::from_slice::<Value>(data)
                    .ok()
                    .and_then(|mut v| serde_json::to_vec(&v["response"].take()).ok())
                    .map(Bytes::from);
                self.failed |= self.response.is_none();
            }
            Some(ResponseEvent::Failed) => self.failed = true,
            None => {}
        }
        !self.failed && self.response.is_none()
    }

    /// The `response`, if the stream finished it.
    pub(crate) fn finish(mut self) -> Option<Bytes> {
        let mut decoder = std::mem::take(&mut self.decoder);
        if !self.failed && self.response.is_none() {
            decoder.finish(&mut |e| self.event(e.name, &e.data));
        }
        self.response
            .filter(|r| !self.failed && is_whole_response(r))
    }
}

/// A `response` as the Responses event stream: `response.created` and
/// `response.in_progress` (no output yet), each output item added, its content whole in one
/// delta, done; `response.completed` (or `response.incomplete`). `None` if it is not one.
pub(crate) fn response_to_sse(response: &[u8]) -> Option<Bytes> {
    let mut response: Value = serde_json::from_slice(response).ok()?;
    let output = response.get_mut("output")?.take();
    let Value::Array(items) = output else {
        return None;
    };
    let status = response["status"]
        .as_str()
        .unwrap_or("completed")
        .to_owned();
    let mut sequence = 0u64;
    let mut out = BytesMut::new();
    // `type` and `sequence_number` first, as OpenAI sends them (clients may look at the
    // start of the data only).
    let mut emit = |name: &str, data: Value| {
        let mut ordered = BytesMut::new();
        ordered.put_slice(b"{\"type\":");
        serde_json::to_writer((&mut ordered).writer(), name).expect("JSON serialises");
        ordered.put_slice(format!(",\"sequence_number\":{sequence}").as_bytes());
        sequence += 1;
        let fields = serde_json::to_vec(&data).expect("JSON serialises");
        if fields.len() > 2 {
            ordered.put_u8(b',');
            ordered.put_slice(&fields[1..]);
        } else {
            ordered.put_u8(b'}');
        }
        out.put_slice(b"event: ");
        out.put_slice(name.as_bytes());
        out.put_slice(b"\ndata: ");
        out.put_slice(&ordered);
        out.put_slice(b"\n\n");
    };
    let mut start = response.clone();
    start["status"] = json!("in_progress");
    start["output"] = json!([]);
    start["usage"] = Value::Null;
    emit("response.created", json!({"response": start}));
    emit("response.in_progress", json!({"response": start}));
    for (output_index, item) in items.iter().enumerate() {
        let id = item["id"].clone();
        let mut added = item.clone();
        match item["type"].as_str() {
            Some("message") => added["content"] = json!([]),
            Some("function_call") => added["arguments"] = json!(""),
            Some("custom_tool_call") => added["input"] = json!(""),
            Some("reasoning") => added["summary"] = json!([]),
            _ => {}
        }
        if added.get("status").is_some() {
            added["status"] = json!("in_progress");
        }
        emit(
            "response.output_item.added",
            json!({"output_index": output_index, "item": added}),
        );
        match item["type"].as_str() {
            Some("message") => {
                for (content_index, part) in
                    item["content"].as_array().into_iter().flatten().enumerate()
                {
                    let at = json!({"item_id": id, "output_index": output_index, "content_index": content_index});
                    let with = |mut v: Value, extra: Value| {
                        v.as_object_mut()
                            .expect("an object")
                            .extend(extra.as_object().cloned().unwrap_or_default());
                        v
                    };
                    let mut empty = part.clone();
                    if part["type"] == "output_text" {
                        empty["text"] = json!("");
                    }
                    emit(
                        "response.content_part.added",
                        with(at.clone(), json!({"part": empty})),
                    );
                    if part["type"] == "output_text" {
                        emit(
                            "response.output_text.delta",
                            with(at.clone(), json!({"delta": part["text"], "logprobs": []})),
                        );
                        emit(
                            "response.output_text.done",
                            with(at.clone(), json!({"text": part["text"], "logprobs": []})),
                        );
                    }
                    emit(
                        "response.content_part.done",
                        with(at, json!({"part": part})),
                    );
                }
            }
            Some("function_call") => {
                let at = json!({"item_id": id, "output_index": output_index});
                let mut delta = at.clone();
                delta["delta"] = item["arguments"].clone();
                emit("response.function_call_arguments.delta", delta);
                let mut done = at;
                done["arguments"] = item["arguments"].clone();
                done["name"] = item["name"].clone();
                emit("response.function_call_arguments.done", done);
            }
            Some("custom_tool_call") => {
                let at = json!({"item_id": id, "output_index": output_index});
                let mut delta = at.clone();
                delta["delta"] = item["input"].clone();
                emit("response.custom_tool_call_input.delta", delta);
                let mut done = at;
                done["input"] = item["input"].clone();
                emit("response.custom_tool_call_input.done", done);
            }
            Some("reasoning") => {
                for (summary_index, part) in
                    item["summary"].as_array().into_iter().flatten().enumerate()
                {
                    let at = json!({"item_id": id, "output_index": output_index, "summary_index": summary_index});
                    let mut empty = part.clone();
                    empty["text"] = json!("");
                    let mut added = at.clone();
                    added["part"] = empty;
                    emit("response.reasoning_summary_part.added", added);
                    let mut delta = at.clone();
                    delta["delta"] = part["text"].clone();
                    emit("response.reasoning_summary_text.delta", delta);
                    let mut done = at.clone();
                    done["text"] = part["text"].clone();
                    emit("response.reasoning_summary_text.done", done);
                    let mut part_done = at;
                    part_done["part"] = part.clone();
                    emit("response.reasoning_summary_part.done", part_done);
                }
            }
            _ => {}
        }
        emit(
            "response.output_item.done",
            json!({"output_index": output_index, "item": item}),
        );
    }
    response["output"] = Value::Array(items);
    let last = if status == "incomplete" {
        "response.incomplete"
    } else {
        "response.completed"
    };
    emit(last, json!({"response": response}));
    Some(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::StreamTranslation;

    fn assemble_message(stream: &[u8]) -> Option<Value> {
        let mut assembler = MessageAssembler::default();
        for frame in stream.chunks(7) {
            assembler.push(frame);
        }
        assembler
            .finish()
            .map(|m| serde_json::from_slice(&m).unwrap())
    }

    #[test]
    fn a_message_stream_is_assembled_and_served_again_as_the_same_stream() {
        let stream =
            std::fs::read("tests/fixtures/anthropic/stream-text-then-tool-use.sse").unwrap();
        let message = assemble_message(&stream).expect("whole");
        assert_eq!(message["type"], "message");
        assert_eq!(message["stop_reason"], "tool_use");
        assert_eq!(message["content"][1]["type"], "tool_use");
        assert!(message["content"][1]["input"].is_object());
        assert!(message["usage"]["output_tokens"].as_u64().unwrap() > 1);
        assert!(is_whole_message(&serde_json::to_vec(&message).unwrap()));
        // Served again and assembled again: the same message.
        let replay = message_to_sse(&serde_json::to_vec(&message).unwrap()).unwrap();
        assert_eq!(assemble_message(&replay).unwrap(), message);
        // Cut short, or failed: nothing to keep.
        assert!(assemble_message(&stream[..stream.len() / 2]).is_none());
        let failed = std::fs::read("tests/fixtures/anthropic/stream-error-overloaded.sse").unwrap();
        assert!(assemble_message(&failed).is_none());
    }

    #[test]
    fn a_response_stream_keeps_its_final_response_and_serves_it_again() {
        let chat = concat!(
            "data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi there\"}}]}\n\n",
            "data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_a\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}}]}\n\n",
            "data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
            "data: [DONE]\n\n",
        );
        let mut translation = StreamTranslation::chat_to_responses("m");
        let mut stream = translation.feed(chat.as_bytes()).to_vec();
        stream.extend_from_slice(&translation.finish());
        let mut assembler = ResponseAssembler::default();
        for frame in stream.chunks(5) {
            assembler.push(frame);
        }
        let response = assembler.finish().expect("whole");
        let replay = response_to_sse(&response).unwrap();
        let mut again = ResponseAssembler::default();
        again.push(&replay);
        assert_eq!(again.finish().unwrap(), response);
        // The replayed events, as a client reads them: the same sequence as the original.
        let names = |bytes: &[u8]| {
            let mut names = Vec::new();
            sse::each_event(bytes, &mut |e| {
                names.push(String::from_utf8(e.name.unwrap().to_vec()).unwrap());
                true
            });
            names
        };
        assert_eq!(names(&replay), names(&stream));
        let mut cut = ResponseAssembler::default();
        cut.push(&stream[..stream.len() - 40]);
        assert!(cut.finish().is_none());
    }
}
