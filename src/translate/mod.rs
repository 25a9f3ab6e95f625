//! OpenAI Chat Completions ⇄ native APIs: Anthropic Messages and Gemini `generateContent`.
//!
//! Each provider module has four parts, all pure functions of bytes and values so they can
//! be tested against recorded wire data and fuzzed:
//!
//! - `request`: a parsed OpenAI [`Chat`] request → the native request body;
//! - `response`: a native JSON response → an OpenAI `chat.completion`;
//! - a [`StreamTranslator`]: native SSE events → `chat.completion.chunk` events, one event
//!   at a time, driven by [`TranslatedBody`] as upstream frames arrive;
//! - `error`: a native error body → a [`GatewayError`](crate::GatewayError) in OpenAI's
//!   shape that keeps the upstream status (with the remappings of the fixtures' MAPPING).
//!
//! Reasoning state that OpenAI has no field for travels as follows:
//!
//! - **Gemini thought signatures are encoded into the tool-call id**: a call Gemini made with
//!   a `thoughtSignature` gets the id `<id>_sig_<signature in base64url>`; when the client
//!   sends that id back (assistant `tool_calls`, `tool` results), the signature is decoded
//!   and replayed on the exact `functionCall` part. Stateless: works across gateway
//!   instances and restarts, and the id stays within `[A-Za-z0-9_-]` so Anthropic accepts it
//!   if the conversation moves there.
//! - **Anthropic thinking blocks live in a bounded map** keyed by the tool-use ids of the
//!   turn that produced them (10 000 turns, one hour since last use), because the blocks are
//!   too large for an id. Responses also carry them as the non-standard
//!   `message.thinking_blocks` (LiteLLM's field), and a client that echoes that field back
//!   on the assistant message needs no map at all. When neither has them for the last
//!   assistant turn with tool calls, the request is sent without `thinking` (Anthropic
//!   would reject it otherwise).

pub(crate) mod anthropic;
pub(crate) mod chat;
mod chunk;
pub(crate) mod gemini;
#[cfg(test)]
pub(crate) mod generated;
pub(crate) mod messages;
pub(crate) mod responses;
pub(crate) mod stream;

pub(crate) use self::chat::Chat;
pub use self::responses::BuiltinTools;
pub use self::stream::StreamTranslation;
use crate::error::GatewayError;

/// Which native API a translation is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Native {
    /// Anthropic Messages.
    Anthropic,
    /// Gemini `generateContent`.
    Gemini,
}

/// The native request body for an OpenAI chat request body, as the executors build it
/// (Anthropic: a default `max_tokens` of 4096; the model goes in the body for Anthropic,
/// in the URL for Gemini).
pub fn request(
    native: Native,
    openai: &[u8],
    model: &str,
    stream: bool,
) -> Result<serde_json::Value, GatewayError> {
    let chat = Chat::parse(openai)?;
    match native {
        Native::Anthropic => anthropic::request(
            &chat,
            model,
            stream,
            4096,
            &anthropic::ThinkingStore::default(),
        ),
        Native::Gemini => gemini::request(&chat),
    }
}

/// The OpenAI `chat.completion` for a native JSON response.
pub fn response(native: Native, body: &[u8], model: &str) -> Result<Vec<u8>, GatewayError> {
    match native {
        Native::Anthropic => {
            anthropic::response(body, "anthropic", &anthropic::ThinkingStore::default())
        }
        Native::Gemini => gemini::response(body, "gemini", model),
    }
}

/// The client's error for a native error response.
pub fn error(
    native: Native,
    status: ::http::StatusCode,
    headers: &::http::HeaderMap,
    body: &[u8],
) -> GatewayError {
    match native {
        Native::Anthropic => anthropic::error("anthropic", status, headers, body),
        Native::Gemini => gemini::error("gemini", status, body),
    }
}

/// The inbound translations on one input, for the fuzzer: a Messages and a Responses
/// request → chat, and a chat response → Messages and Responses.
#[cfg(feature = "test-util")]
pub(crate) fn fuzz_inbound(input: &[u8]) {
    let _ = messages::to_chat(input);
    let _ = messages::from_chat(input, "m", "p");
    for builtin in [BuiltinTools::Reject, BuiltinTools::Drop] {
        let _ = responses::to_chat(input, builtin);
    }
    let request = serde_json::json!({"model": "m", "input": ""});
    let echo = responses::Echo::new(request.as_object().expect("an object"), "m");
    let _ = responses::from_chat(input, &echo, "p");
}
