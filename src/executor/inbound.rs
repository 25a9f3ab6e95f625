//! Endpoints an executor does not speak, served through the one it does: an Anthropic
//! Messages or OpenAI Responses request for a chat upstream is sent as a chat completion,
//! and the answer comes back as a `message` or a `response` (or their event streams). Token counts for such upstreams are
//! estimated here (the o200k tokenizer), as no chat server counts them.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Request, Response};
use http_body_util::{BodyExt, Limited};
use serde_json::Value;
use tower::ServiceExt;

use super::registry::BoxExecutor;
use super::translated::TranslatedBody;
use crate::body::Body;
use crate::error::GatewayError;
use crate::request::{Endpoint, LlmRequest};
use crate::responses::ResolvedPrevious;
use crate::sse;
use crate::translate::messages::{self, MessagesStream};
use crate::translate::responses::{self, ResponsesStream};
use crate::translate::BuiltinTools;

/// Largest chat answer read to translate it.
const MAX_ANSWER: usize = 32 * 1024 * 1024;

/// Serves `req` (a parsed request for an endpoint `service` does not speak) through the
/// chat endpoint.
pub(super) async fn via_chat(
    service: BoxExecutor,
    mut req: Request<Bytes>,
    provider: &Arc<str>,
) -> Result<Response<Body>, GatewayError> {
    let llm = req.extensions_mut().remove::<LlmRequest>().ok_or_else(|| {
        GatewayError::internal("request reached the executors without being parsed")
    })?;
    match llm.endpoint() {
        Endpoint::Messages => {}
        Endpoint::CountTokens => return count_tokens(req.body()),
        Endpoint::Responses => return responses_via_chat(service, req, llm, provider).await,
        other => {
            return Err(GatewayError::internal(format!(
                "no translation from {other:?} to chat"
            )))
        }
    }
    let chat = messages::to_chat(req.body())?;
    let (parts, body) = chat_call(service, req, chat).await?;
    if sse::is_event_stream(&parts.headers) {
        let translator = MessagesStream::new(llm.model(), provider.clone());
        let body = TranslatedBody::new(body, translator, provider.clone());
        return Ok(Response::from_parts(parts, Body::new(body)));
    }
    let whole = read_answer(body, provider).await?;
    let message = messages::from_chat(&whole, llm.model(), provider)?;
    Ok(json_answer(parts, message))
}

/// A Responses request through the chat endpoint.
async fn responses_via_chat(
    service: BoxExecutor,
    req: Request<Bytes>,
    llm: LlmRequest,
    provider: &Arc<str>,
) -> Result<Response<Body>, GatewayError> {
    let builtin = req
        .extensions()
        .get::<BuiltinTools>()
        .copied()
        .unwrap_or_default();
    let responses::Translated { chat, mut echo } = responses::to_chat(req.body(), builtin)?;
    if let Some(previous) = req.extensions().get::<ResolvedPrevious>() {
        echo = echo.previous(&previous.0);
    }
    echo = echo.model(llm.model());
    let (parts, body) = chat_call(service, req, chat).await?;
    if sse::is_event_stream(&parts.headers) {
        let translator = ResponsesStream::new(echo, provider.clone());
        let body = TranslatedBody::new(body, translator, provider.clone());
        return Ok(Response::from_parts(parts, Body::new(body)));
    }
    let whole = read_answer(body, provider).await?;
    let response = responses::from_chat(&whole, &echo, provider)?;
    Ok(json_answer(parts, response))
}

/// Sends `chat` (a chat request body) in place of `req`'s body.
async fn chat_call(
    service: BoxExecutor,
    mut req: Request<Bytes>,
    chat: Value,
) -> Result<(http::response::Parts, Body), GatewayError> {
    let chat = Bytes::from(serde_json::to_vec(&chat).expect("a request serialises"));
    let chat_llm = LlmRequest::parse(Endpoint::ChatCompletions, &chat)?;
    *req.body_mut() = chat;
    req.extensions_mut().insert(chat_llm);
    let response = service.oneshot(req).await?;
    let (mut parts, body) = response.into_parts();
    parts.headers.remove(CONTENT_LENGTH);
    Ok((parts, body))
}

/// The whole chat answer, to translate it.
async fn read_answer(body: Body, provider: &str) -> Result<Bytes, GatewayError> {
    Ok(Limited::new(body, MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| GatewayError::upstream_protocol(provider, format_args!("body broken: {e}")))?
        .to_bytes())
}

fn json_answer(mut parts: http::response::Parts, body: Vec<u8>) -> Response<Body> {
    parts
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Response::from_parts(parts, Body::full(body))
}

/// `{"input_tokens": n}` for a Messages request: the text of its system prompt, messages
/// and tool definitions by the o200k tokenizer.
fn count_tokens(body: &[u8]) -> Result<Response<Body>, GatewayError> {
    let request: Value = serde_json::from_slice(body)
        .map_err(|e| GatewayError::bad_request(format!("Invalid request body: {e}.")))?;
    let mut text = String::new();
    collect_text(&request["system"], &mut text);
    if let Some(turns) = request["messages"].as_array() {
        for turn in turns {
            collect_text(&turn["content"], &mut text);
        }
    }
    if let Some(tools) = request.get("tools").filter(|t| t.is_array()) {
        text.push_str(&tools.to_string());
    }
    let tokens = crate::tokens::count(text.trim_end());
    let mut response = Response::new(Body::full(format!("{{\"input_tokens\":{tokens}}}")));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

/// The text of a content value: a string, or blocks' `text`, `thinking`, tool inputs and
/// tool results.
fn collect_text(content: &Value, out: &mut String) {
    match content {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Array(blocks) => {
            for block in blocks {
                for field in ["text", "thinking"] {
                    if let Some(s) = block[field].as_str() {
                        out.push_str(s);
                        out.push('\n');
                    }
                }
                if let Some(input) = block.get("input") {
                    out.push_str(&input.to_string());
                }
                collect_text(&block["content"], out);
            }
        }
        _ => {}
    }
}
