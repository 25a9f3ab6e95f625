//! The parsed request view shared by every layer.
//!
//! The body of a chat or embeddings request is read once and parsed once into an
//! [`LlmRequest`], which travels in the request's extensions beside the raw `Bytes`. The
//! view holds only what the gateway routes on; everything else stays in the raw body and
//! reaches the upstream byte for byte.

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::{BufMut, Bytes, BytesMut};
use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::GatewayError;
use crate::protocol::Protocol;

/// The request id's header, the client's (`x-request-id`), made once: a name looked up as
/// a `&str` is parsed on each lookup.
pub(crate) const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// Which LLM endpoint a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// OpenAI `POST /v1/chat/completions`
    ChatCompletions,
    /// OpenAI `POST /v1/embeddings`
    Embeddings,
    /// Anthropic `POST /v1/messages`
    Messages,
    /// Anthropic `POST /v1/messages/count_tokens`
    CountTokens,
    /// OpenAI `POST /v1/responses`
    Responses,
}

impl Endpoint {
    /// The endpoint a request path names, matched on its suffix so the gateway also works
    /// nested under a prefix.
    pub fn from_path(path: &str) -> Option<Self> {
        let path = path.strip_suffix('/').unwrap_or(path);
        if path.ends_with("/chat/completions") {
            Some(Self::ChatCompletions)
        } else if path.ends_with("/embeddings") {
            Some(Self::Embeddings)
        } else if path.ends_with("/messages/count_tokens") {
            Some(Self::CountTokens)
        } else if path.ends_with("/messages") {
            Some(Self::Messages)
        } else if path.ends_with("/responses") {
            Some(Self::Responses)
        } else {
            None
        }
    }

    /// The path below the provider's `api_base` (`…/v1`).
    pub fn path(self) -> &'static str {
        match self {
            Self::ChatCompletions => "/chat/completions",
            Self::Embeddings => "/embeddings",
            Self::Messages => "/messages",
            Self::CountTokens => "/messages/count_tokens",
            Self::Responses => "/responses",
        }
    }

    /// The API the endpoint belongs to: the shape of the errors its clients expect.
    pub fn protocol(self) -> Protocol {
        match self {
            Self::ChatCompletions | Self::Embeddings | Self::Responses => Protocol::OpenAi,
            Self::Messages | Self::CountTokens => Protocol::Anthropic,
        }
    }

    /// The name recorded in the usage ledger and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChatCompletions => "chat",
            Self::Embeddings => "embeddings",
            Self::Messages => "messages",
            Self::CountTokens => "count_tokens",
            Self::Responses => "responses",
        }
    }
}

/// What the gateway knows about a request after its one parse.
#[derive(Debug, Clone)]
pub struct LlmRequest {
    endpoint: Endpoint,
    model: Box<str>,
    /// Byte span of the `model` value (quotes included) in the raw body.
    model_span: Range<usize>,
    stream: bool,
    include_usage: bool,
    /// Whether the body has a `stream_options` member at all.
    has_stream_options: bool,
}

impl LlmRequest {
    /// Parses a request body, checking what the endpoint requires.
    pub fn parse(endpoint: Endpoint, body: &[u8]) -> Result<Self, GatewayError> {
        let fields = match endpoint {
            Endpoint::ChatCompletions => serde_json::from_slice::<ChatFields>(body).map(|f| {
                (
                    f.model,
                    f.messages.map(|m| m.0),
                    f.stream,
                    f.stream_options,
                    true,
                )
            }),
            Endpoint::Embeddings => serde_json::from_slice::<EmbeddingsFields>(body)
                .map(|f| (f.model, None, None, None, f.input.is_some())),
            Endpoint::Messages | Endpoint::CountTokens => {
                serde_json::from_slice::<MessagesFields>(body).map(|f| {
                    let has_max_tokens =
                        endpoint == Endpoint::CountTokens || f.max_tokens.is_some();
                    (
                        f.model,
                        f.messages.map(|m| m.0),
                        f.stream,
                        None,
                        has_max_tokens,
                    )
                })
            }
            Endpoint::Responses => serde_json::from_slice::<ResponsesFields>(body)
                .map(|f| (f.model, None, f.stream, None, true)),
        };
        let (model, messages, stream, stream_options, has_input) =
            fields.map_err(|err| json_error(&err))?;
        let has_stream_options = stream_options.is_some();

        let raw = model.ok_or_else(|| {
            GatewayError::invalid_param("model", "Missing required parameter: 'model'.")
        })?;
        let name: String = serde_json::from_str(raw.get()).map_err(|_| {
            GatewayError::invalid_param("model", "Invalid type for 'model': expected a string.")
        })?;
        if name.is_empty() {
            return Err(GatewayError::invalid_param(
                "model",
                "Invalid 'model': empty string.",
            ));
        }
        let start = raw.get().as_ptr() as usize - body.as_ptr() as usize;
        let model_span = start..start + raw.get().len();

        match endpoint {
            Endpoint::ChatCompletions => match messages {
                None => {
                    return Err(GatewayError::invalid_param(
                        "messages",
                        "Missing required parameter: 'messages'.",
                    ))
                }
                Some(0) => return Err(GatewayError::invalid_param(
                    "messages",
                    "Invalid 'messages': empty array. Expected an array with at least one message.",
                )),
                Some(_) => {}
            },
            Endpoint::Embeddings if !has_input => {
                return Err(GatewayError::invalid_param(
                    "input",
                    "Missing required parameter: 'input'.",
                ))
            }
            Endpoint::Embeddings => {}
            // Anthropic's own wording for these.
            Endpoint::Messages | Endpoint::CountTokens => match messages {
                None => {
                    return Err(GatewayError::invalid_param(
                        "messages",
                        "messages: Field required",
                    ))
                }
                Some(0) => {
                    return Err(GatewayError::invalid_param(
                        "messages",
                        "messages: at least one message is required",
                    ))
                }
                Some(_) if !has_input => {
                    return Err(GatewayError::invalid_param(
                        "max_tokens",
                        "max_tokens: Field required",
                    ))
                }
                Some(_) => {}
            },
            // `input` may be absent (a `previous_response_id` turn): the translation or
            // the upstream says what is missing.
            Endpoint::Responses => {}
        }

        Ok(Self {
            endpoint,
            model: name.into_boxed_str(),
            model_span,
            stream: stream.unwrap_or(false),
            include_usage: stream_options
                .and_then(|o| o.include_usage)
                .unwrap_or(false),
            has_stream_options,
        })
    }

    /// The endpoint.
    pub fn endpoint(&self) -> Endpoint {
        self.endpoint
    }
    /// The model as the client named it.
    pub fn model(&self) -> &str {
        &self.model
    }
    /// Whether the client asked for an SSE stream.
    pub fn stream(&self) -> bool {
        self.stream
    }
    /// Whether the client asked for the final usage chunk (`stream_options.include_usage`).
    pub fn include_usage(&self) -> bool {
        self.include_usage
    }

    /// The body with the `model` value replaced by `model`: one splice of the value's
    /// byte span, every other byte as the client sent it.
    pub fn body_with_model(&self, body: &Bytes, model: &str) -> Bytes {
        let mut out = BytesMut::with_capacity(body.len() + model.len());
        out.put_slice(&body[..self.model_span.start]);
        serde_json::to_writer((&mut out).writer(), model).expect("a str serialises");
        out.put_slice(&body[self.model_span.end..]);
        out.freeze()
    }

    /// Asks the upstream for the final usage chunk of a stream the client did not ask it
    /// for: inserts `"stream_options":{"include_usage":true},` after the body's opening
    /// brace (no other byte changes). Returns `false`, changing nothing, when the request is
    /// not a stream, already asks for usage, or has a `stream_options` of its own.
    pub fn request_usage(&mut self, body: &mut Bytes) -> bool {
        const MEMBER: &[u8] = br#""stream_options":{"include_usage":true},"#;
        if self.endpoint != Endpoint::ChatCompletions
            || !self.stream
            || self.include_usage
            || self.has_stream_options
        {
            return false;
        }
        if !self.insert_members(body, MEMBER) {
            return false;
        }
        self.include_usage = true;
        self.has_stream_options = true;
        true
    }

    /// Inserts `members` (`"name":value,` each, comma-terminated) after the body's opening
    /// brace, no other byte changing, and keeps this view's spans on the new body. Returns
    /// `false`, changing nothing, when the body has no opening brace.
    pub(crate) fn insert_members(&mut self, body: &mut Bytes, members: &[u8]) -> bool {
        let Some(brace) = body.iter().position(|&b| b == b'{') else {
            return false;
        };
        let mut out = BytesMut::with_capacity(body.len() + members.len());
        out.put_slice(&body[..=brace]);
        out.put_slice(members);
        out.put_slice(&body[brace + 1..]);
        *body = out.freeze();
        self.model_span =
            self.model_span.start + members.len()..self.model_span.end + members.len();
        true
    }

    /// Rewrites the request to name `model`: the body gets one splice (see
    /// [`body_with_model`](Self::body_with_model)) and this view follows it.
    pub fn rewrite_model(&mut self, body: &mut Bytes, model: &str) {
        let tail = body.len() - self.model_span.end;
        *body = self.body_with_model(body, model);
        self.model_span.end = body.len() - tail;
        self.model = model.into();
    }
}

/// A serde error as a 400 that says where the body went wrong.
fn json_error(err: &serde_json::Error) -> GatewayError {
    use serde_json::error::Category;
    match err.classify() {
        Category::Syntax | Category::Eof | Category::Io => GatewayError::bad_request(format!(
            "We could not parse the JSON body of your request: {err}."
        ))
        .with_code("invalid_json"),
        Category::Data => GatewayError::bad_request(format!("Invalid request body: {err}.")),
    }
}

#[derive(Deserialize)]
struct ChatFields<'a> {
    #[serde(borrow)]
    model: Option<&'a RawValue>,
    messages: Option<ArrayLen>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
}

#[derive(Deserialize)]
struct EmbeddingsFields<'a> {
    #[serde(borrow)]
    model: Option<&'a RawValue>,
    input: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct MessagesFields<'a> {
    #[serde(borrow)]
    model: Option<&'a RawValue>,
    messages: Option<ArrayLen>,
    stream: Option<bool>,
    max_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct ResponsesFields<'a> {
    #[serde(borrow)]
    model: Option<&'a RawValue>,
    stream: Option<bool>,
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

/// The length of a JSON array, validated without keeping its elements.
struct ArrayLen(usize);

impl<'de> Deserialize<'de> for ArrayLen {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Counter;
        impl<'de> Visitor<'de> for Counter {
            type Value = ArrayLen;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of messages")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ArrayLen, A::Error> {
                let mut n = 0;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(ArrayLen(n))
            }
        }
        deserializer.deserialize_seq(Counter)
    }
}

/// The work layers did for a traced request, for its trace's child spans: one entry per
/// layer that did some (auth, rate limits, idempotency, cache lookup). A layer logs only
/// when a log is in the request's extensions (auth puts one there when traces are on), so
/// an untraced request pays one extension lookup per layer.
#[derive(Debug, Clone, Default)]
pub struct Phases(Arc<Mutex<Vec<Phase>>>);

/// One layer's work for a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    /// The span's name: `auth`, `rate limits`, `idempotency`, `cache lookup`.
    pub name: &'static str,
    /// When it started.
    pub started: SystemTime,
    /// How long it took.
    pub elapsed: Duration,
    /// What it found (`hit`, `replayed`, …).
    pub outcome: &'static str,
}

impl Phases {
    /// A timer for the phase `name` starting now, when `req` is traced.
    pub fn start<B>(req: &http::Request<B>, name: &'static str) -> Option<PhaseTimer> {
        req.extensions()
            .get::<Self>()
            .map(|phases| phases.timer(name))
    }

    /// A timer for the phase `name` starting now.
    pub fn timer(&self, name: &'static str) -> PhaseTimer {
        PhaseTimer {
            phases: self.clone(),
            name,
            started: (SystemTime::now(), Instant::now()),
        }
    }

    /// The phases logged so far, in the order they ended.
    pub fn take(&self) -> Vec<Phase> {
        std::mem::take(&mut *self.0.lock().expect("not poisoned"))
    }
}

/// A phase under way; logged when ended, forgotten when dropped.
#[derive(Debug)]
pub struct PhaseTimer {
    phases: Phases,
    name: &'static str,
    started: (SystemTime, Instant),
}

impl PhaseTimer {
    /// Logs the phase as ended now with `outcome`.
    pub fn end(self, outcome: &'static str) {
        let phase = Phase {
            name: self.name,
            started: self.started.0,
            elapsed: self.started.1.elapsed(),
            outcome,
        };
        self.phases.0.lock().expect("not poisoned").push(phase);
    }
}

/// Ends `timer`, if the request is traced.
pub fn end_phase(timer: Option<PhaseTimer>, outcome: &'static str) {
    if let Some(timer) = timer {
        timer.end(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    fn chat(body: &str) -> Result<LlmRequest, GatewayError> {
        LlmRequest::parse(Endpoint::ChatCompletions, body.as_bytes())
    }

    #[test]
    fn usage_is_requested_by_one_insertion() {
        let raw = r#" {"model":"a/b","stream":true,"messages":[{"role":"user","content":"x"}]}"#;
        let mut body = Bytes::from_static(raw.as_bytes());
        let mut llm = chat(raw).unwrap();
        assert!(llm.request_usage(&mut body));
        assert_eq!(
            &body[..],
            br#" {"stream_options":{"include_usage":true},"model":"a/b","stream":true,"messages":[{"role":"user","content":"x"}]}"#
        );
        let reparsed = chat(std::str::from_utf8(&body).unwrap()).unwrap();
        assert!(reparsed.include_usage() && llm.include_usage());
        llm.rewrite_model(&mut body, "b");
        assert!(std::str::from_utf8(&body)
            .unwrap()
            .contains(r#""model":"b""#));
        // Not for JSON requests, nor when the client set stream_options itself.
        for raw in [
            r#"{"model":"a/b","messages":[{"role":"user","content":"x"}]}"#,
            r#"{"model":"a/b","stream":true,"stream_options":{"include_usage":false},"messages":[{"role":"user","content":"x"}]}"#,
        ] {
            let mut body = Bytes::from_static(raw.as_bytes());
            assert!(!chat(raw).unwrap().request_usage(&mut body));
            assert_eq!(&body[..], raw.as_bytes());
        }
    }

    #[test]
    fn rewriting_twice_keeps_every_other_byte() {
        let raw = r#"{ "model" : "gpt-4", "messages":[{"role":"user","content":"x"}], "zeta":1 }"#;
        let mut body = Bytes::from_static(raw.as_bytes());
        let mut llm = chat(raw).unwrap();
        llm.rewrite_model(&mut body, "smart-combo-with-a-long-name");
        llm.rewrite_model(&mut body, "a/\"b");
        assert_eq!(
            &body[..],
            br#"{ "model" : "a/\"b", "messages":[{"role":"user","content":"x"}], "zeta":1 }"#
        );
        assert_eq!(llm.model(), "a/\"b");
        assert_eq!(
            chat(std::str::from_utf8(&body).unwrap()).unwrap().model(),
            "a/\"b"
        );
    }

    #[test]
    fn reads_model_stream_and_usage_flags() {
        let req = chat(r#"{"model":"mock/echo","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}"#).unwrap();
        assert_eq!(req.model(), "mock/echo");
        assert!(req.stream());
        assert!(req.include_usage());
    }

    #[test]
    fn splices_the_model_and_keeps_every_other_byte() {
        let body = Bytes::from_static(br#"{ "temperature" : 0.5, "model" :  "openai/gpt-4o" ,"messages":[{"role":"user","content":"x"}], "x_unknown": [1, 2] }"#);
        let req = LlmRequest::parse(Endpoint::ChatCompletions, &body).unwrap();
        let out = req.body_with_model(&body, "gpt-4o");
        assert_eq!(
            &out[..],
            br#"{ "temperature" : 0.5, "model" :  "gpt-4o" ,"messages":[{"role":"user","content":"x"}], "x_unknown": [1, 2] }"#
        );
    }

    #[test]
    fn escaped_model_names_are_decoded_and_re_escaped() {
        let body = Bytes::from_static(br#"{"model":"mock/a\"b\u0041","messages":[{}]}"#);
        let req = LlmRequest::parse(Endpoint::ChatCompletions, &body).unwrap();
        assert_eq!(req.model(), "mock/a\"bA");
        assert_eq!(
            &req.body_with_model(&body, "a\"b")[..],
            br#"{"model":"a\"b","messages":[{}]}"#
        );
    }

    #[test]
    fn bad_bodies_are_400s_naming_the_problem() {
        for (body, needle) in [
            ("{not json", "parse the JSON"),
            ("[]", "Invalid request body"),
            (r#"{"messages":[{}]}"#, "'model'"),
            (r#"{"model":3,"messages":[{}]}"#, "'model'"),
            (r#"{"model":"","messages":[{}]}"#, "empty"),
            (r#"{"model":"m"}"#, "'messages'"),
            (r#"{"model":"m","messages":[]}"#, "at least one"),
            (r#"{"model":"m","messages":{}}"#, "an array"),
            (r#"{"model":"m","messages":[{}],"stream":"yes"}"#, "boolean"),
            (
                r#"{"model":"m","messages":[{}]} trailing"#,
                "parse the JSON",
            ),
        ] {
            let err = chat(body).unwrap_err();
            assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{body}");
            assert!(err.message().contains(needle), "{body}: {}", err.message());
        }
    }

    #[test]
    fn embeddings_need_input() {
        let err = LlmRequest::parse(Endpoint::Embeddings, br#"{"model":"m"}"#).unwrap_err();
        assert_eq!(err.param(), Some("input"));
        let ok =
            LlmRequest::parse(Endpoint::Embeddings, br#"{"model":"m","input":["a","b"]}"#).unwrap();
        assert_eq!(ok.endpoint(), Endpoint::Embeddings);
    }

    #[test]
    fn endpoint_from_path() {
        assert_eq!(
            Endpoint::from_path("/v1/chat/completions"),
            Some(Endpoint::ChatCompletions)
        );
        assert_eq!(
            Endpoint::from_path("/llm/v1/embeddings/"),
            Some(Endpoint::Embeddings)
        );
        assert_eq!(Endpoint::from_path("/v1/models"), None);
        assert_eq!(
            Endpoint::from_path("/v1/messages"),
            Some(Endpoint::Messages)
        );
        assert_eq!(
            Endpoint::from_path("/v1/messages/count_tokens"),
            Some(Endpoint::CountTokens)
        );
    }

    #[test]
    fn messages_need_what_anthropic_requires() {
        let parse = |body: &str| LlmRequest::parse(Endpoint::Messages, body.as_bytes());
        let ok = parse(r#"{"model":"m","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#).unwrap();
        assert!(ok.stream() && !ok.include_usage());
        let mut body = Bytes::from_static(b"{}");
        assert!(
            !ok.clone().request_usage(&mut body),
            "usage is not asked of Messages"
        );
        for (body, needle) in [
            (
                r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
                "max_tokens: Field required",
            ),
            (
                r#"{"model":"m","max_tokens":5}"#,
                "messages: Field required",
            ),
            (
                r#"{"model":"m","max_tokens":5,"messages":[]}"#,
                "at least one message",
            ),
            (r#"{"max_tokens":5,"messages":[{}]}"#, "'model'"),
        ] {
            let err = parse(body).unwrap_err();
            assert!(err.message().contains(needle), "{body}: {}", err.message());
        }
        // Counting tokens needs no max_tokens.
        LlmRequest::parse(
            Endpoint::CountTokens,
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
        )
        .unwrap();
    }
}
