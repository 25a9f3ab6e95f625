//! Usage as the OpenAI API reports it, read from a JSON body or a stream's usage chunk,
//! and estimated with a tokenizer when the upstream reports none.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::sse;

/// Token counts, as every API reports them: OpenAI's `prompt_tokens`/`completion_tokens`,
/// and the `input_tokens`/`output_tokens` of Anthropic (whose input excludes the tokens
/// read from or written to its cache) and of OpenAI's Responses API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(from = "Reported")]
pub struct Usage {
    /// Prompt tokens, cached included.
    pub prompt_tokens: u64,
    /// Completion tokens, reasoning included.
    pub completion_tokens: u64,
    cached_tokens: u64,
    reasoning_tokens: u64,
}

/// A usage object as reported, every field optional: streams report usage in pieces
/// (Anthropic's `message_start` the input, `message_delta` the output), merged field by
/// field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub(crate) struct Reported {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    prompt_tokens_details: Option<Details>,
    completion_tokens_details: Option<Details>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    input_tokens_details: Option<Details>,
    output_tokens_details: Option<Details>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
struct Details {
    cached_tokens: Option<u64>,
    reasoning_tokens: Option<u64>,
}

impl Reported {
    /// Later values win, field by field.
    pub(crate) fn merge(&mut self, later: Reported) {
        fn pick<T: Copy>(a: &mut Option<T>, b: Option<T>) {
            if b.is_some() {
                *a = b;
            }
        }
        pick(&mut self.prompt_tokens, later.prompt_tokens);
        pick(&mut self.completion_tokens, later.completion_tokens);
        pick(&mut self.prompt_tokens_details, later.prompt_tokens_details);
        pick(
            &mut self.completion_tokens_details,
            later.completion_tokens_details,
        );
        pick(&mut self.input_tokens, later.input_tokens);
        pick(&mut self.output_tokens, later.output_tokens);
        pick(
            &mut self.cache_read_input_tokens,
            later.cache_read_input_tokens,
        );
        pick(
            &mut self.cache_creation_input_tokens,
            later.cache_creation_input_tokens,
        );
        pick(&mut self.input_tokens_details, later.input_tokens_details);
        pick(&mut self.output_tokens_details, later.output_tokens_details);
    }
}

impl From<Reported> for Usage {
    fn from(r: Reported) -> Self {
        let detail = |d: Option<Details>, f: fn(Details) -> Option<u64>| d.and_then(f).unwrap_or(0);
        match r.prompt_tokens {
            Some(prompt) => Self {
                prompt_tokens: prompt,
                completion_tokens: r.completion_tokens.unwrap_or(0),
                cached_tokens: detail(r.prompt_tokens_details, |d| d.cached_tokens),
                reasoning_tokens: detail(r.completion_tokens_details, |d| d.reasoning_tokens),
            },
            None => {
                // Anthropic's cache counts come beside its input; the Responses API's
                // cached tokens are part of its input.
                let read = r.cache_read_input_tokens.unwrap_or(0);
                let creation = r.cache_creation_input_tokens.unwrap_or(0);
                Self {
                    prompt_tokens: r.input_tokens.unwrap_or(0) + read + creation,
                    completion_tokens: r.output_tokens.unwrap_or(0),
                    cached_tokens: read + detail(r.input_tokens_details, |d| d.cached_tokens),
                    reasoning_tokens: detail(r.output_tokens_details, |d| d.reasoning_tokens),
                }
            }
        }
    }
}

impl Usage {
    /// Prompt tokens served from the provider's cache.
    pub fn cached_tokens(&self) -> u64 {
        self.cached_tokens
    }
    /// Reasoning tokens.
    pub fn reasoning_tokens(&self) -> u64 {
        self.reasoning_tokens
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
    reported(body).map(Usage::from)
}

/// The `usage` object of a JSON body or of one stream event, as reported.
pub(crate) fn reported(body: &[u8]) -> Option<Reported> {
    // Read only the `usage` value: find its key (the last one: it follows the choices),
    // then parse the object after it, skipping the rest of the body.
    let at = memchr::memmem::rfind(body, b"\"usage\"")?;
    let rest = &body[at + 7..];
    let colon = rest.iter().position(|&b| b == b':')?;
    if !rest[..colon].iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let mut value =
        serde_json::Deserializer::from_slice(&rest[colon + 1..]).into_iter::<Option<Reported>>();
    value.next()?.ok()?
}

/// The `error.code` and `error.type` of an error body (OpenAI's shape, or Anthropic's
/// `{"type":"error","error":{…}}`).
pub(crate) fn error_fields(body: &[u8]) -> Option<(Option<String>, Option<String>)> {
    #[derive(Deserialize)]
    struct Error {
        #[serde(rename = "type")]
        kind: Option<String>,
        code: Option<serde_json::Value>,
    }
    let error = serde_json::from_slice::<WithError>(body).ok()?.error?;
    let error = serde_json::from_str::<Error>(error.get()).ok()?;
    let code = error.code.and_then(|code| match code {
        serde_json::Value::String(code) => Some(code),
        serde_json::Value::Number(code) => Some(code.to_string()),
        _ => None,
    });
    Some((code, error.kind))
}

/// The data of the last `event: error` of a stream's (tail of) body.
pub(crate) fn last_error_event(body: &[u8]) -> Option<&[u8]> {
    let at = memchr::memmem::rfind(body, b"event: error\n")?;
    let data = body[at..].strip_prefix(b"event: error\ndata: ".as_slice())?;
    let end = memchr::memchr(b'\n', data).unwrap_or(data.len());
    Some(&data[..end])
}

/// Whether a stream event is the usage-only chunk (`"choices":[]` with a usage object).
pub(crate) fn is_usage_chunk(data: &[u8]) -> bool {
    // Built once: `memmem::find` builds a searcher per call.
    static USAGE: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"usage\":{"));
    static NO_CHOICES: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"choices\":[]"));
    USAGE.find(data).is_some() && NO_CHOICES.find(data).is_some()
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
    // Anthropic's system prompt: a string or text blocks.
    match &value["system"] {
        serde_json::Value::String(s) => push(s),
        serde_json::Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .for_each(&mut push),
        _ => {}
    }
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
    // Anthropic's shapes: content blocks, or the stream's block deltas.
    let anthropic = |value: &serde_json::Value, text: &mut String| {
        let blocks = value["content"].as_array().into_iter().flatten();
        for block in blocks.chain(std::iter::once(&value["delta"])) {
            for field in ["text", "thinking", "partial_json", "name"] {
                text.push_str(block[field].as_str().unwrap_or_default());
            }
            if let Some(input) = block
                .get("input")
                .filter(|i| !i.as_object().is_some_and(|o| o.is_empty()))
            {
                text.push_str(&input.to_string());
            }
        }
    };
    let mut blocks = String::new();
    if sse_body {
        sse::each_event(body, &mut |event| {
            if let Ok(value) = serde_json::from_slice(&event.data) {
                take(&value, "delta");
                anthropic(&value, &mut blocks);
            }
            true
        });
    } else if let Ok(value) = serde_json::from_slice(body) {
        take(&value, "message");
        anthropic(&value, &mut blocks);
    }
    text.push_str(&blocks);
    text
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
            error_fields(br#"{"error":{"message":"m","type":"rate_limit_error","code":429}}"#),
            Some((Some("429".to_owned()), Some("rate_limit_error".to_owned())))
        );
        assert_eq!(
            last_error_event(b"data: {}\n\nevent: error\ndata: {\"error\":{}}\n\n"),
            Some(br#"{"error":{}}"#.as_slice())
        );
        assert!(is_usage_chunk(
            br#"{"id":"a","choices":[],"usage":{"prompt_tokens":1}}"#
        ));
        assert!(!is_usage_chunk(
            br#"{"id":"a","choices":[{"delta":{}}],"usage":null}"#
        ));
    }

    #[test]
    fn anthropic_usage_counts_its_cache_as_prompt() {
        let message = br#"{"id":"msg_1","type":"message","content":[{"type":"text","text":"hi"}],"usage":{"input_tokens":10,"cache_creation_input_tokens":200,"cache_read_input_tokens":1000,"output_tokens":30}}"#;
        let usage = from_json(message).unwrap();
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.cached_tokens()
            ),
            (1210, 30, 1000)
        );
        // A stream's pieces, merged: message_start's input, message_delta's output.
        let mut merged = reported(br#"{"type":"message_start","message":{"usage":{"input_tokens":25,"cache_read_input_tokens":5,"output_tokens":1}}}"#).unwrap();
        merged
            .merge(reported(br#"{"type":"message_delta","usage":{"output_tokens":15}}"#).unwrap());
        let usage = Usage::from(merged);
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.cached_tokens()
            ),
            (30, 15, 5)
        );
    }

    #[test]
    fn texts_for_estimates() {
        let request = br#"{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"Hello there"}]}]}"#;
        assert_eq!(prompt_text(request), "Be brief.\nHello there\n");
        let stream = b"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\" you\"}}]}\n\ndata: [DONE]\n\n";
        assert_eq!(answer_text(stream, true), "Hi you");
        let anthropic = br#"{"system":[{"type":"text","text":"Be brief."}],"messages":[{"role":"user","content":"Hello"}]}"#;
        assert_eq!(prompt_text(anthropic), "Be brief.\nHello\n");
        let events = b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n";
        assert_eq!(answer_text(events, true), "Hi");
        assert_eq!(crate::tokens::count("Hello there, how are you?"), 7);
    }
}
