//! The chat side of the inbound translators (Messages, Responses): a `chat.completion.chunk`
//! read with borrowed fields (no JSON tree per event), chat usage, and the chat stream's
//! in-band errors.

use std::borrow::Cow;

use bytes::{BufMut, BytesMut};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{ErrorKind, GatewayError};

/// Chat usage, as read from a completion or the usage chunk.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub(crate) struct ChatUsage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    pub completion_tokens_details: Option<CompletionDetails>,
}

impl ChatUsage {
    /// Prompt tokens read from the provider's cache.
    pub fn cached_tokens(&self) -> u64 {
        self.prompt_tokens_details
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0)
    }

    /// Prompt tokens written to the provider's cache (Anthropic's, through the chat hub).
    pub fn cache_creation_tokens(&self) -> u64 {
        self.prompt_tokens_details
            .and_then(|d| d.cache_creation_tokens)
            .unwrap_or(0)
    }

    /// Completion tokens spent on reasoning.
    pub fn reasoning_tokens(&self) -> u64 {
        self.completion_tokens_details
            .and_then(|d| d.reasoning_tokens)
            .unwrap_or(0)
    }
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub(crate) struct PromptDetails {
    #[serde(default)]
    pub cached_tokens: Option<u64>,
    #[serde(default)]
    pub cache_creation_tokens: Option<u64>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub(crate) struct CompletionDetails {
    #[serde(default)]
    pub reasoning_tokens: Option<u64>,
}

/// One `chat.completion.chunk`.
#[derive(Deserialize)]
pub(crate) struct Chunk<'a> {
    #[serde(borrow, default)]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub choices: Choices<'a>,
    #[serde(default)]
    pub usage: Option<ChatUsage>,
}

/// A chunk's `choices`: the first only (the inbound protocols have one answer per request),
/// read without allocating a list per chunk.
#[derive(Default)]
pub(crate) struct Choices<'a>(Option<ChunkChoice<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for Choices<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct First<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for First<'a> {
            type Value = Choices<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of choices")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Choices<'a>, A::Error> {
                let first = seq.next_element::<ChunkChoice<'a>>()?;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Choices(first))
            }
            fn visit_unit<E>(self) -> Result<Choices<'a>, E> {
                Ok(Choices(None))
            }
        }
        deserializer.deserialize_any(First(std::marker::PhantomData))
    }
}

impl<'a> Choices<'a> {
    /// The first choice.
    pub fn first(&self) -> Option<&ChunkChoice<'a>> {
        self.0.as_ref()
    }
}

#[derive(Deserialize)]
pub(crate) struct ChunkChoice<'a> {
    #[serde(borrow, default)]
    pub delta: ChunkDelta<'a>,
    #[serde(borrow, default)]
    pub finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
pub(crate) struct ChunkDelta<'a> {
    #[serde(borrow, default)]
    pub content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub refusal: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub reasoning_content: Option<Cow<'a, str>>,
    /// OpenRouter's name for `reasoning_content`.
    #[serde(borrow, default)]
    pub reasoning: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub tool_calls: Option<Vec<ChunkToolCall<'a>>>,
    /// Finished Anthropic thinking blocks, signatures included (LiteLLM's field).
    #[serde(default)]
    pub thinking_blocks: Option<Vec<Value>>,
}

impl ChunkDelta<'_> {
    /// The reasoning text of the delta, under either name.
    pub fn reasoning(&self) -> Option<&str> {
        self.reasoning_content
            .as_deref()
            .or(self.reasoning.as_deref())
            .filter(|t| !t.is_empty())
    }
}

#[derive(Deserialize)]
pub(crate) struct ChunkToolCall<'a> {
    #[serde(default)]
    pub index: Option<usize>,
    #[serde(borrow, default)]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub function: Option<ChunkFunction<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct ChunkFunction<'a> {
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub arguments: Option<Cow<'a, str>>,
}

/// Reads one event of a chat stream (`started`: a chunk came before): its chunk, or `None`
/// for `[DONE]`; an in-band failure, an unreadable chunk or `[DONE]` before any chunk is the
/// upstream's error.
pub(crate) fn read<'a>(
    name: Option<&[u8]>,
    data: &'a [u8],
    started: bool,
    provider: &str,
) -> Result<Option<Chunk<'a>>, GatewayError> {
    if is_error(name, data) {
        return Err(stream_error(data, provider));
    }
    if data.trim_ascii() == b"[DONE]" {
        if !started {
            return Err(GatewayError::upstream_protocol(
                provider,
                "the stream ended before any event",
            ));
        }
        return Ok(None);
    }
    parse(data, !started).map(Some).map_err(|err| {
        GatewayError::upstream_protocol(provider, format_args!("unreadable chunk: {err}"))
    })
}

/// Whether a chat stream event is an in-band failure (an `error` event, or a chunk that
/// is an error body).
fn is_error(name: Option<&[u8]>, data: &[u8]) -> bool {
    name == Some(b"error") || data.starts_with(b"{\"error\"")
}

/// The chat stream's in-band error as the gateway's error, keeping what clients tell
/// apart (overloaded, timeout, rate limit).
fn stream_error(data: &[u8], provider: &str) -> GatewayError {
    let value: Value = serde_json::from_slice(data).unwrap_or(Value::Null);
    let error = &value["error"];
    let message = error["message"]
        .as_str()
        .map_or_else(|| String::from_utf8_lossy(data).into_owned(), str::to_owned);
    let code = error["code"].as_str();
    let status = match (code, error["type"].as_str()) {
        (Some("overloaded"), _) => 503,
        (Some("upstream_timeout"), _) => 504,
        (Some("rate_limit_exceeded"), _)
        | (_, Some("rate_limit_exceeded" | "rate_limit_error")) => 429,
        _ => 500,
    };
    let status = http::StatusCode::from_u16(status).expect("a valid status");
    let err = GatewayError::new(
        ErrorKind::UpstreamStatus,
        status,
        "upstream_error",
        format!("Upstream `{provider}` failed mid-stream: {message}"),
    );
    match code {
        Some(code) => err.with_code(code),
        None => err,
    }
}

/// Parses one chunk: the first whole, the later ones by their `choices` and `usage` only,
/// each found by its key and parsed where it stands. Written so because the parse is most
/// of what translating an event costs, and a chunk's other members (`id`, `object`,
/// `created`, `model`…) would cost as much again to step over. A key inside a string value
/// cannot match (its quotes are escaped there); chat chunks have no nested `choices`.
fn parse<'a>(data: &'a [u8], first: bool) -> Result<Chunk<'a>, serde_json::Error> {
    if first {
        return serde_json::from_slice(data);
    }
    let trimmed = data.trim_ascii();
    if !(trimmed.starts_with(b"{") && trimmed.ends_with(b"}")) {
        // Not an object: let serde say what is wrong with it.
        return serde_json::from_slice(data);
    }
    static CHOICES: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"choices\""));
    static USAGE: std::sync::LazyLock<memchr::memmem::FinderRev<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::FinderRev::new(b"\"usage\""));
    let choices = match CHOICES.find(data) {
        Some(at) => member(data, at + 9)?.unwrap_or_default(),
        None => Choices::default(),
    };
    let usage = match USAGE.rfind(data) {
        Some(at) => member(data, at + 7)?.flatten(),
        None => None,
    };
    Ok(Chunk {
        id: None,
        model: None,
        choices,
        usage,
    })
}

/// The value after the key that ends at `after` (`: value`), or `None` if no colon follows.
fn member<'a, T: Deserialize<'a>>(
    data: &'a [u8],
    after: usize,
) -> Result<Option<T>, serde_json::Error> {
    let rest = &data[after..];
    let Some(colon) = rest.iter().position(|b| !b.is_ascii_whitespace()) else {
        return Ok(None);
    };
    if rest[colon] != b':' {
        return Ok(None);
    }
    let mut values = serde_json::Deserializer::from_slice(&rest[colon + 1..]).into_iter::<T>();
    values.next().transpose()
}

/// Writes `text` as a JSON string. Written here because the per-event writers are the hot
/// path of a translated stream: text without a character to escape (nearly every delta) is
/// copied in one go, where serde_json's writer costs several times as much per delta.
pub(crate) fn put_json_str(out: &mut BytesMut, text: &str) {
    let plain = text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\');
    if plain {
        out.reserve(text.len() + 2);
        out.put_u8(b'"');
        out.put_slice(text.as_bytes());
        out.put_u8(b'"');
    } else {
        serde_json::to_writer(out.writer(), text).expect("a string serialises");
    }
}

/// Writes `n` in decimal.
pub(crate) fn put_usize(out: &mut BytesMut, n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&digits[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_written_json_matches_serde() {
        for text in [
            "plain words",
            "",
            "quote \" back \\ slash",
            "line\nbreak\t",
            "ünïcødé ✓",
            "\u{1}",
        ] {
            let mut out = BytesMut::new();
            put_json_str(&mut out, text);
            assert_eq!(&out[..], serde_json::to_vec(text).unwrap(), "{text:?}");
        }
        for n in [0, 7, 10, 12345, usize::MAX] {
            let mut out = BytesMut::new();
            put_usize(&mut out, n);
            assert_eq!(&out[..], n.to_string().as_bytes());
        }
    }

    #[test]
    fn later_chunks_are_read_by_their_choices_and_usage() {
        // Python's spacing, a key's name inside the text, usage last, then only usage.
        let data = br#"{"id": "c1", "choices": [{"index": 0, "delta": {"content": "say \"choices\": [] and \"usage\": {}"}, "finish_reason": null}], "model": "m", "usage": {"prompt_tokens": 3, "completion_tokens": 2}}"#;
        let chunk = parse(data, false).unwrap();
        let choice = chunk.choices.first().unwrap();
        assert_eq!(
            choice.delta.content.as_deref(),
            Some(r#"say "choices": [] and "usage": {}"#)
        );
        assert_eq!(chunk.usage.unwrap().completion_tokens, 2);
        let usage_only = parse(br#"{"choices":[],"usage":{"prompt_tokens":1}}"#, false).unwrap();
        assert!(usage_only.choices.first().is_none());
        assert_eq!(usage_only.usage.unwrap().prompt_tokens, 1);
        let nothing = parse(br#"{"id":"c1","usage":null}"#, false).unwrap();
        assert!(nothing.choices.first().is_none() && nothing.usage.is_none());
        assert!(parse(b"hello", false).is_err(), "not a chunk");
        assert!(parse(br#"{"choices":[{"delta":{"content":}}]}"#, false).is_err());
    }

    #[test]
    fn later_chunks_skip_id_and_model() {
        let data = br#"{"id":"c1","model":"m","choices":[{"index":0,"delta":{"content":"Hi"}}],"usage":{"prompt_tokens":3}}"#;
        let first = parse(data, true).unwrap();
        assert_eq!(first.id.as_deref(), Some("c1"));
        let later = parse(data, false).unwrap();
        assert!(later.id.is_none() && later.model.is_none());
        let choice = later.choices.first().unwrap();
        assert_eq!(choice.delta.content.as_deref(), Some("Hi"));
        assert_eq!(later.usage.unwrap().prompt_tokens, 3);
    }
}
