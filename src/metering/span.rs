//! A finished record as its request's span (see [`telemetry`](crate::telemetry)).

use std::time::{Duration, UNIX_EPOCH};

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::KeyValue;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use super::record::UsageRecord;
use crate::telemetry::{TraceContext, Tracer};

/// The request parameters a span reports, read from the request body.
#[derive(Debug, Default, serde::Deserialize)]
struct RequestParams {
    temperature: Option<f64>,
    top_p: Option<f64>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    max_output_tokens: Option<u64>,
}

/// What a span reports from the request and response bodies, read before the record is
/// finished (which consumes them).
pub(crate) struct Bodies {
    request: bytes::Bytes,
    finish_reason: Option<String>,
    /// The prompt's messages and the answer's text, with `capture_content`.
    content: Option<(String, String)>,
}

impl Bodies {
    pub(crate) fn read(tracer: &Tracer, request: &bytes::Bytes, body: &[u8], sse: bool) -> Self {
        let content = tracer.captures_content().then(|| {
            let messages = serde_json::from_slice::<serde_json::Value>(request)
                .ok()
                .and_then(|v| v.get("messages").or_else(|| v.get("input")).cloned())
                .map(|m| m.to_string())
                .unwrap_or_default();
            let answer = serde_json::json!([{
                "role": "assistant",
                "parts": [{ "type": "text", "content": super::usage::answer_text(body, sse) }],
            }]);
            (messages, answer.to_string())
        });
        Self {
            request: request.clone(),
            finish_reason: finish_reason(body),
            content,
        }
    }
}

/// The last finish reason a response body names (OpenAI's `finish_reason`, Anthropic's
/// `stop_reason`), found by scanning rather than parsing: a stream's is in its last chunks.
fn finish_reason(body: &[u8]) -> Option<String> {
    ["\"finish_reason\":\"", "\"stop_reason\":\""]
        .iter()
        .filter_map(|needle| {
            let at = memchr::memmem::rfind(body, needle.as_bytes())? + needle.len();
            let end = memchr::memchr(b'"', &body[at..])?;
            Some((
                at,
                std::str::from_utf8(&body[at..at + end]).ok()?.to_owned(),
            ))
        })
        .max_by_key(|(at, _)| *at)
        .map(|(_, reason)| reason)
}

/// Exports the span of a finished record when its trace is sampled.
pub(crate) fn export(tracer: &Tracer, record: &UsageRecord, bodies: &Bodies) {
    if let Some(ctx) = record.trace.filter(|c| c.sampled) {
        tracer.send(span(tracer, record, &ctx, bodies));
    }
}

fn span(tracer: &Tracer, r: &UsageRecord, ctx: &TraceContext, bodies: &Bodies) -> SpanData {
    let request = &bodies.request[..];
    let operation = match r.endpoint.as_str() {
        "embeddings" => "embeddings",
        "count_tokens" => "count_tokens",
        _ => "chat",
    };
    let mut attributes = vec![
        KeyValue::new("gen_ai.operation.name", operation),
        KeyValue::new("gen_ai.request.model", r.requested_model.clone()),
        KeyValue::new("gen_ai.usage.input_tokens", r.prompt_tokens as i64),
        KeyValue::new("gen_ai.usage.output_tokens", r.completion_tokens as i64),
        KeyValue::new("http.response.status_code", i64::from(r.status)),
        KeyValue::new("llm_tower.request_id", r.request_id.clone()),
        KeyValue::new("llm_tower.key_alias", r.key.clone()),
        KeyValue::new("llm_tower.endpoint", r.endpoint.clone()),
        KeyValue::new("llm_tower.outcome", r.outcome),
        KeyValue::new("llm_tower.attempts", i64::from(r.attempts)),
        KeyValue::new("llm_tower.stream", r.stream),
        KeyValue::new("llm_tower.usage_source", r.usage_source),
    ];
    if let Some(provider) = &r.provider {
        let kind = tracer.provider_kind(provider);
        attributes.push(KeyValue::new("gen_ai.provider.name", kind));
        attributes.push(KeyValue::new("llm_tower.provider", provider.clone()));
    }
    if let Some(model) = &r.upstream_model {
        attributes.push(KeyValue::new("gen_ai.response.model", model.clone()));
    }
    for (name, value) in [
        ("llm_tower.team", &r.team),
        ("llm_tower.route", &r.route),
        ("llm_tower.cache", &r.cache),
        ("error.type", &r.error_type),
    ] {
        if let Some(value) = value {
            attributes.push(KeyValue::new(name, value.clone()));
        }
    }
    if let Some(cost) = r.cost_usd {
        attributes.push(KeyValue::new("llm_tower.cost_usd", cost));
    }
    if let Some(reason) = &bodies.finish_reason {
        let reasons = vec![opentelemetry::StringValue::from(reason.clone())];
        attributes.push(KeyValue::new(
            "gen_ai.response.finish_reasons",
            opentelemetry::Value::Array(reasons.into()),
        ));
    }
    if let Some((input, output)) = &bodies.content {
        attributes.push(KeyValue::new("gen_ai.input.messages", input.clone()));
        attributes.push(KeyValue::new("gen_ai.output.messages", output.clone()));
    }
    if let Some(ttft) = r.ttft_ms {
        attributes.push(KeyValue::new("llm_tower.ttft_ms", ttft));
    }
    let params: RequestParams = serde_json::from_slice(request).unwrap_or_default();
    if let Some(t) = params.temperature {
        attributes.push(KeyValue::new("gen_ai.request.temperature", t));
    }
    if let Some(p) = params.top_p {
        attributes.push(KeyValue::new("gen_ai.request.top_p", p));
    }
    if let Some(max) = params
        .max_completion_tokens
        .or(params.max_tokens)
        .or(params.max_output_tokens)
    {
        attributes.push(KeyValue::new("gen_ai.request.max_tokens", max as i64));
    }
    let start = UNIX_EPOCH + Duration::from_millis(r.started_at_ms.max(0) as u64);
    let end = start + Duration::from_secs_f64(r.latency_ms.max(0.0) / 1e3);
    let failed = !matches!(r.outcome, "ok" | "cancelled");
    SpanData {
        span_context: SpanContext::new(
            TraceId::from_bytes(ctx.trace_id),
            SpanId::from_bytes(ctx.span_id),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: ctx.parent_id.map_or(SpanId::INVALID, SpanId::from_bytes),
        parent_span_is_remote: ctx.parent_id.is_some(),
        span_kind: SpanKind::Server,
        name: format!("{operation} {}", r.requested_model).into(),
        start_time: start,
        end_time: end.max(start),
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: if failed {
            Status::error(r.error_type.clone().unwrap_or_else(|| r.outcome.to_owned()))
        } else {
            Status::Unset
        },
        instrumentation_scope: tracer.scope().clone(),
    }
}
