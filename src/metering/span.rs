//! A finished record as its request's span (see [`telemetry`](crate::telemetry)).

use std::time::Duration;

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::KeyValue;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use super::record::UsageRecord;
use crate::executor::{UpstreamCall, UpstreamCalls};
use crate::request::{Phase, Phases};
use crate::telemetry::{new_span_id, TraceContext, Tracer};

/// What a traced request's layers log for its child spans: their phases (auth began the
/// log) and the registry's upstream calls.
#[derive(Debug)]
pub(crate) struct TraceLog {
    phases: Phases,
    calls: UpstreamCalls,
}

impl TraceLog {
    /// Puts the logs in `req`'s extensions (the phases' where auth has not already).
    pub(crate) fn start<B>(req: &mut http::Request<B>) -> Self {
        let phases = match req.extensions().get::<Phases>() {
            Some(phases) => phases.clone(),
            None => {
                let phases = Phases::default();
                req.extensions_mut().insert(phases.clone());
                phases
            }
        };
        let calls = UpstreamCalls::default();
        req.extensions_mut().insert(calls.clone());
        Self { phases, calls }
    }
}

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
    /// The layers' phases and the upstream calls, for child spans.
    phases: Vec<Phase>,
    calls: Vec<UpstreamCall>,
    finish_reason: Option<String>,
    /// The prompt's messages and the answer's text, with `capture_content`.
    content: Option<(String, String)>,
}

impl Bodies {
    pub(crate) fn read(
        tracer: &Tracer,
        request: &bytes::Bytes,
        body: &[u8],
        sse: bool,
        log: Option<&TraceLog>,
    ) -> Self {
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
            phases: log.map_or_else(Vec::new, |log| log.phases.take()),
            calls: log.map_or_else(Vec::new, |log| log.calls.take()),
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

/// Exports the spans of a finished record when its trace is sampled: the request's, an
/// `INTERNAL` child per layer that did work (auth, rate limits, idempotency, cache lookup),
/// and a `CLIENT` child per upstream call (each combo attempt), the answering one lasting
/// until the answer ended.
pub(crate) fn export(tracer: &Tracer, record: &UsageRecord, bodies: &Bodies) {
    let Some(ctx) = record.trace.filter(|c| c.sampled) else {
        return;
    };
    let request = span(tracer, record, &ctx, bodies);
    for phase in &bodies.phases {
        tracer.send(phase_span(tracer, &ctx, phase));
    }
    let answered = bodies.calls.iter().rposition(|c| c.status < 400);
    for (i, call) in bodies.calls.iter().enumerate() {
        let end = if Some(i) == answered {
            request.end_time
        } else {
            call.started + call.elapsed
        };
        tracer.send(call_span(tracer, &ctx, record, call, end));
    }
    tracer.send(request);
}

/// A child span's context in the request's trace, with an id of its own.
fn child_context(ctx: &TraceContext) -> SpanContext {
    SpanContext::new(
        TraceId::from_bytes(ctx.trace_id),
        SpanId::from_bytes(new_span_id()),
        TraceFlags::SAMPLED,
        false,
        TraceState::default(),
    )
}

/// One layer's work as a child of the request's span.
fn phase_span(tracer: &Tracer, ctx: &TraceContext, phase: &Phase) -> SpanData {
    SpanData {
        span_context: child_context(ctx),
        parent_span_id: SpanId::from_bytes(ctx.span_id),
        parent_span_is_remote: false,
        span_kind: SpanKind::Internal,
        name: phase.name.into(),
        start_time: phase.started,
        end_time: phase.started + phase.elapsed,
        attributes: vec![KeyValue::new("llm_tower.outcome", phase.outcome)],
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: tracer.scope().clone(),
    }
}

/// One upstream call as a child of the request's span.
fn call_span(
    tracer: &Tracer,
    ctx: &TraceContext,
    r: &UsageRecord,
    call: &UpstreamCall,
    end: std::time::SystemTime,
) -> SpanData {
    let operation = operation(&r.endpoint);
    let provider = &call.target.provider;
    let mut attributes = vec![
        KeyValue::new("gen_ai.operation.name", operation),
        KeyValue::new("gen_ai.provider.name", tracer.provider_kind(provider)),
        KeyValue::new("gen_ai.request.model", call.target.model.to_string()),
        KeyValue::new("llm_tower.provider", provider.to_string()),
        KeyValue::new("http.response.status_code", i64::from(call.status)),
    ];
    if let Some(error) = &call.error {
        attributes.push(KeyValue::new("error.type", error.clone()));
    }
    SpanData {
        span_context: child_context(ctx),
        parent_span_id: SpanId::from_bytes(ctx.span_id),
        parent_span_is_remote: false,
        span_kind: SpanKind::Client,
        name: format!("{operation} {}", call.target.model).into(),
        start_time: call.started,
        end_time: end.max(call.started),
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: match &call.error {
            Some(error) => Status::error(error.clone()),
            None => Status::Unset,
        },
        instrumentation_scope: tracer.scope().clone(),
    }
}

fn operation(endpoint: &str) -> &'static str {
    match endpoint {
        "embeddings" => "embeddings",
        "count_tokens" => "count_tokens",
        _ => "chat",
    }
}

fn span(tracer: &Tracer, r: &UsageRecord, ctx: &TraceContext, bodies: &Bodies) -> SpanData {
    let request = &bodies.request[..];
    let operation = operation(&r.endpoint);
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
    // The context's start, not the record's (whole milliseconds); the latency counts from
    // there, but the request began with auth.
    let end = ctx.started + Duration::from_secs_f64(r.latency_ms.max(0.0) / 1e3);
    let start = bodies
        .phases
        .iter()
        .map(|p| p.started)
        .fold(ctx.started, std::cmp::min);
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
