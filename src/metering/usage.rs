//! Usage as the OpenAI API reports it, read from a JSON body or a stream's usage chunk,
//! and estimated with a tokenizer when the upstream reports none.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::sse;

/// Token counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Usage {
    /// Prompt tokens, cached included.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Completion tokens, reasoning included.
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl Usage {
    /// Prompt tokens served from the provider's cache.
    pub fn cached_tokens(&self) -> u64 {
        self.prompt_tokens_details
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0)
    }
    /// Reasoning tokens.
    pub fn reasoning_tokens(&self) -> u64 {
        self.completion_tokens_details
            .and_then(|d| d.reasoning_tokens)
            .unwrap_or(0)
    }
    pub(crate) fn estimated(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            ..Self::default()
        }
    }
}

#[derive(Deserialize)]
struct WithError<'a> {
    #[serde(default, borrow)]
    error: Option<&'a RawValue>,
}

/// The `usage` of a JSON body or of one stream chunk.
pub(crate) fn from_json(body: &[u8]) -> Option<Usage> {
    // Read only the `usage` value: find its key (the last one: it follows the choices),
    // then parse the object after it, skipping the rest of the body.
    let at = memchr::memmem::rfind(body, b"\"usage\"")?;
    let rest = &body[at + 7..];
    let colon = rest.iter().position(|&b| b == b':')?;
    if !rest[..colon].iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let mut value =
        serde_json::Deserializer::from_slice(&rest[colon + 1..]).into_iter::<Option<Usage>>();
    value.next()?.ok()?
}

/// The `error.type` of an error body.
pub(crate) fn error_type(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Error {
        #[serde(rename = "type")]
        kind: Option<String>,
    }
    let error = serde_json::from_slice::<WithError>(body).ok()?.error?;
    serde_json::from_str::<Error>(error.get()).ok()?.kind
}

/// Whether a stream event is the usage-only chunk (`"choices":[]` with a usage object).
pub(crate) fn is_usage_chunk(data: &[u8]) -> bool {
    memchr::memmem::find(data, b"\"usage\":{").is_some()
        && memchr::memmem::find(data, b"\"choices\":[]").is_some()
}

/// The text of a chat request's messages and of an answer, for estimating tokens.
pub(crate) fn prompt_text(request: &[u8]) -> String {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(request) else {
        return String::new();
    };
    let mut text = String::new();
    let mut push = |s: &str| {
        text.push_str(s);
        text.push('\n');
    };
    if let Some(messages) = value["messages"].as_array() {
        for message in messages {
            match &message["content"] {
                serde_json::Value::String(s) => push(s),
                serde_json::Value::Array(parts) => parts
                    .iter()
                    .filter_map(|p| p["text"].as_str())
                    .for_each(&mut push),
                _ => {}
            }
        }
    }
    match &value["input"] {
        serde_json::Value::String(s) => push(s),
        serde_json::Value::Array(items) => items.iter().filter_map(|i| i.as_str()).for_each(push),
        _ => {}
    }
    text
}

/// The answer's text: a JSON completion's message, or a stream's content deltas.
pub(crate) fn answer_text(body: &[u8], sse_body: bool) -> String {
    let mut text = String::new();
    let mut take = |value: &serde_json::Value, field: &str| {
        if let Some(choices) = value["choices"].as_array() {
            for choice in choices {
                if let Some(s) = choice[field]["content"].as_str() {
                    text.push_str(s);
                }
                if let Some(calls) = choice[field]["tool_calls"].as_array() {
                    for call in calls {
                        text.push_str(call["function"]["name"].as_str().unwrap_or_default());
                        text.push_str(call["function"]["arguments"].as_str().unwrap_or_default());
                    }
                }
            }
        }
    };
    if sse_body {
        sse::each_event(body, &mut |event| {
            if let Ok(value) = serde_json::from_slice(&event.data) {
                take(&value, "delta");
            }
            true
        });
    } else if let Ok(value) = serde_json::from_slice(body) {
        take(&value, "message");
    }
    text
}

/// Tokens in `text` by the o200k tokenizer (GPT-4o and later), compiled in.
pub(crate) fn count_tokens(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    tiktoken_rs::o200k_base_singleton()
        .encode_ordinary(text)
        .len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_details_are_read_from_the_recorded_openai_shapes() {
        let usage = from_json(br#"{"id":"x","usage":{"prompt_tokens":1200,"completion_tokens":300,"total_tokens":1500,"prompt_tokens_details":{"cached_tokens":1024,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":192}}}"#).unwrap();
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (1200, 300));
        assert_eq!(
            (usage.cached_tokens(), usage.reasoning_tokens()),
            (1024, 192)
        );
        assert_eq!(from_json(br#"{"usage":null}"#), None);
        assert_eq!(
            error_type(br#"{"error":{"message":"m","type":"rate_limit_error"}}"#).as_deref(),
            Some("rate_limit_error")
        );
        assert!(is_usage_chunk(
            br#"{"id":"a","choices":[],"usage":{"prompt_tokens":1}}"#
        ));
        assert!(!is_usage_chunk(
            br#"{"id":"a","choices":[{"delta":{}}],"usage":null}"#
        ));
    }

    #[test]
    fn texts_for_estimates() {
        let request = br#"{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"Hello there"}]}]}"#;
        assert_eq!(prompt_text(request), "Be brief.\nHello there\n");
        let stream = b"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\" you\"}}]}\n\ndata: [DONE]\n\n";
        assert_eq!(answer_text(stream, true), "Hi you");
        assert_eq!(count_tokens("Hello there, how are you?"), 7);
    }
}
