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
mod body;
mod decode;
pub(crate) mod gemini;
pub(crate) mod http;
pub(crate) mod openai;

use bytes::BytesMut;

pub(crate) use self::body::TranslatedBody;
pub(crate) use self::openai::Chat;
use crate::error::GatewayError;

/// Turns a native event stream into OpenAI chunks, one event at a time.
pub(crate) trait StreamTranslator {
    /// Translates one event (its `event:` name, if any, and its `data:`), appending what
    /// the client gets to `out`. `Ok(false)`: the stream is complete, ignore the rest.
    /// `Err`: the upstream reported a failure; the stream ends with it as an error event.
    fn event(
        &mut self,
        name: Option<&[u8]>,
        data: &[u8],
        out: &mut BytesMut,
    ) -> Result<bool, GatewayError>;

    /// The upstream ended without a final event: finish the stream, or fail it.
    fn end(&mut self, out: &mut BytesMut) -> Result<(), GatewayError>;
}

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

/// A native SSE stream translated frame by frame, outside any HTTP body: what
/// [`TranslatedBody`] does, for tests, benches and embedding.
pub struct StreamTranslation {
    translator: Box<dyn StreamTranslator + Send>,
    decoder: decode::Decoder,
    done: bool,
}

impl std::fmt::Debug for StreamTranslation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamTranslation")
            .field("done", &self.done)
            .finish()
    }
}

impl StreamTranslator for Box<dyn StreamTranslator + Send> {
    fn event(
        &mut self,
        name: Option<&[u8]>,
        data: &[u8],
        out: &mut BytesMut,
    ) -> Result<bool, GatewayError> {
        (**self).event(name, data, out)
    }
    fn end(&mut self, out: &mut BytesMut) -> Result<(), GatewayError> {
        (**self).end(out)
    }
}

impl StreamTranslation {
    /// A translation for a stream of `native` answering `model`; the usage chunk is
    /// emitted when `include_usage`.
    pub fn new(native: Native, model: &str, include_usage: bool) -> Self {
        let translator: Box<dyn StreamTranslator + Send> = match native {
            Native::Anthropic => Box::new(anthropic::AnthropicStream::new(
                "anthropic".into(),
                include_usage,
                None,
            )),
            Native::Gemini => Box::new(gemini::GeminiStream::new(
                "gemini".into(),
                model,
                include_usage,
            )),
        };
        Self {
            translator,
            decoder: decode::Decoder::default(),
            done: false,
        }
    }

    /// What the client gets for one more upstream frame.
    pub fn feed(&mut self, frame: &[u8]) -> bytes::Bytes {
        let mut out = BytesMut::new();
        if !self.done {
            match body::feed(&mut self.decoder, &mut self.translator, frame, &mut out) {
                body::Fed::More => {}
                body::Fed::Ended => self.done = true,
                body::Fed::Failed(err) => {
                    out.extend_from_slice(&crate::sse::error_event(&err));
                    self.done = true;
                }
            }
        }
        out.freeze()
    }

    /// What the client gets when the upstream body ends.
    pub fn finish(&mut self) -> bytes::Bytes {
        let mut out = BytesMut::new();
        if !self.done {
            self.done = true;
            body::finish(&mut self.decoder, &mut self.translator, &mut out);
        }
        out.freeze()
    }
}
