//! A cached answer: one `chat.completion`, whatever form it arrived in, and how it is
//! served again — as JSON, or as a well-formed SSE stream.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde_json::{json, Map, Value};

use crate::sse;

/// An answer kept by a [`CacheStore`](super::CacheStore).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedResponse {
    /// The answer as a `chat.completion` JSON body.
    pub completion: Bytes,
    /// The provider that answered (`x-gateway-provider`).
    pub provider: String,
    /// The upstream model that answered (`x-gateway-model`).
    pub model: String,
    /// When it was stored, in milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// When it expires, in milliseconds since the Unix epoch.
    pub expires_ms: u64,
}

const MAGIC: &[u8; 4] = b"LTC1";

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl CachedResponse {
    /// An answer stored now, kept for `ttl`.
    pub fn new(completion: Bytes, provider: String, model: String, ttl: Duration) -> Self {
        let created_ms = now_ms();
        Self {
            completion,
            provider,
            model,
            created_ms,
            expires_ms: created_ms
                .saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)),
        }
    }

    /// Whether it has expired at `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        now_ms >= self.expires_ms
    }

    /// What is left of its TTL at `now_ms`.
    pub fn remaining(&self, now_ms: u64) -> Duration {
        Duration::from_millis(self.expires_ms.saturating_sub(now_ms))
    }

    /// Whole seconds since it was stored (the `age` header).
    pub fn age_secs(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.created_ms) / 1000
    }

    /// Roughly the memory it takes.
    pub fn size(&self) -> usize {
        self.completion.len() + self.provider.len() + self.model.len() + 64
    }

    /// A compact binary form for shared stores.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.size() + 32);
        out.put_slice(MAGIC);
        out.put_u64(self.created_ms);
        out.put_u64(self.expires_ms);
        for text in [&self.provider, &self.model] {
            let bytes = &text.as_bytes()[..text.len().min(usize::from(u16::MAX))];
            out.put_u16(bytes.len() as u16);
            out.put_slice(bytes);
        }
        out.put_slice(&self.completion);
        out.freeze()
    }

    /// Reads [`encode`](Self::encode)'s form; `None` for anything else.
    pub fn decode(mut data: Bytes) -> Option<Self> {
        if data.remaining() < 20 || &data[..4] != MAGIC {
            return None;
        }
        data.advance(4);
        let created_ms = data.get_u64();
        let expires_ms = data.get_u64();
        let mut text = || -> Option<String> {
            if data.remaining() < 2 {
                return None;
            }
            let len = usize::from(data.get_u16());
            if data.remaining() < len {
                return None;
            }
            String::from_utf8(data.split_to(len).to_vec()).ok()
        };
        let provider = text()?;
        let model = text()?;
        Some(Self {
            completion: data,
            provider,
            model,
            created_ms,
            expires_ms,
        })
    }
}

/// The answer as the SSE stream a streaming request expects: per choice a role chunk,
/// the content, the refusal and tool calls, then the finish chunk; the usage chunk when
/// asked for (and known); `[DONE]`. `None` if the stored body is not a completion.
pub(crate) fn to_sse(completion: &[u8], include_usage: bool) -> Option<Bytes> {
    let value: Value = serde_json::from_slice(completion).ok()?;
    let choices = value.get("choices")?.as_array()?;
    let mut base = Map::new();
    for member in [
        "id",
        "created",
        "model",
        "system_fingerprint",
        "service_tier",
    ] {
        if let Some(v) = value.get(member) {
            base.insert(member.to_owned(), v.clone());
        }
    }
    base.insert("object".to_owned(), json!("chat.completion.chunk"));
    let mut out = BytesMut::with_capacity(completion.len() * 2 + 256);
    let mut chunk = |choices: Value, usage: Option<&Value>| {
        let mut chunk = base.clone();
        chunk.insert("choices".to_owned(), choices);
        if let Some(usage) = usage {
            chunk.insert("usage".to_owned(), usage.clone());
        }
        let json = serde_json::to_vec(&Value::Object(chunk)).expect("json");
        out.extend_from_slice(&sse::data_event(&json));
    };
    for choice in choices {
        let index = choice.get("index").cloned().unwrap_or(json!(0));
        let message = choice.get("message").cloned().unwrap_or(json!({}));
        let delta_choice = |delta: Value, finish: Value| json!([{ "index": index, "delta": delta, "logprobs": null, "finish_reason": finish }]);
        let role = message.get("role").cloned().unwrap_or(json!("assistant"));
        chunk(
            delta_choice(json!({ "role": role, "content": "" }), Value::Null),
            None,
        );
        if let Some(content) = message.get("content").and_then(Value::as_str) {
            if !content.is_empty() {
                let mut delta = json!([{ "index": index, "delta": { "content": content }, "logprobs": null, "finish_reason": null }]);
                if let Some(logprobs) = choice.get("logprobs").filter(|l| !l.is_null()) {
                    delta[0]["logprobs"] = logprobs.clone();
                }
                chunk(delta, None);
            }
        }
        if let Some(refusal) = message.get("refusal").and_then(Value::as_str) {
            chunk(
                delta_choice(json!({ "refusal": refusal }), Value::Null),
                None,
            );
        }
        if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
            for (i, call) in calls.iter().enumerate() {
                let mut call = call.clone();
                if let Some(call) = call.as_object_mut() {
                    call.insert("index".to_owned(), json!(i));
                }
                chunk(
                    delta_choice(json!({ "tool_calls": [call] }), Value::Null),
                    None,
                );
            }
        }
        let finish = choice
            .get("finish_reason")
            .cloned()
            .unwrap_or(json!("stop"));
        chunk(delta_choice(json!({}), finish), None);
    }
    if include_usage {
        if let Some(usage) = value.get("usage").filter(|u| u.is_object()) {
            chunk(json!([]), Some(usage));
        }
    }
    out.extend_from_slice(sse::DONE);
    Some(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_and_rejects_garbage() {
        let entry = CachedResponse::new(
            Bytes::from_static(br#"{"choices":[]}"#),
            "up".into(),
            "echo".into(),
            Duration::from_secs(60),
        );
        assert_eq!(CachedResponse::decode(entry.encode()), Some(entry.clone()));
        assert_eq!(CachedResponse::decode(Bytes::from_static(b"nope")), None);
        let mut cut = entry.encode();
        cut.truncate(22);
        assert_eq!(CachedResponse::decode(cut), None);
        assert!(!entry.is_expired(entry.created_ms + 59_000));
        assert!(entry.is_expired(entry.created_ms + 60_000));
        assert_eq!(entry.age_secs(entry.created_ms + 2_500), 2);
    }

    #[test]
    fn a_completion_replays_as_a_well_formed_stream() {
        let completion = br#"{"id":"c1","object":"chat.completion","created":1,"model":"m",
            "choices":[{"index":0,"message":{"role":"assistant","content":"Hello there","refusal":null,
              "tool_calls":[{"id":"t1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},
              "logprobs":null,"finish_reason":"tool_calls"}],
            "usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#;
        let sse = to_sse(completion, true).unwrap();
        let text = std::str::from_utf8(&sse).unwrap();
        assert!(sse.ends_with(b"\n\n"), "{text}");
        let mut data: Vec<Vec<u8>> = Vec::new();
        sse::each_event(&sse, &mut |e| {
            data.push(e.data.into_owned());
            true
        });
        assert_eq!(data.len(), 6, "{text}");
        assert_eq!(*data.last().unwrap(), b"[DONE]");
        let chunks: Vec<Value> = data[..5]
            .iter()
            .map(|d| serde_json::from_slice(d).unwrap())
            .collect();
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "Hello there");
        assert_eq!(
            chunks[2]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"],
            "f"
        );
        assert_eq!(
            chunks[2]["choices"][0]["delta"]["tool_calls"][0]["index"],
            0
        );
        assert_eq!(chunks[3]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(chunks[4]["usage"]["total_tokens"], 5);
        assert_eq!(chunks[4]["choices"], json!([]));
        assert!(chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk" && c["id"] == "c1"));
        let without = to_sse(completion, false).unwrap();
        assert!(!std::str::from_utf8(&without).unwrap().contains("\"usage\""));
    }
}
