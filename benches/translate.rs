//! Translation cost: per streamed event and per JSON response, Anthropic and Gemini, on
//! the recorded fixtures (`tests/fixtures`, or small built-in samples without them).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use llm_tower::translate::{self, Native, StreamTranslation};

fn fixture(path: &str, fallback: &str) -> Vec<u8> {
    std::fs::read(format!("tests/fixtures/{path}")).unwrap_or_else(|_| fallback.into())
}

const ANTHROPIC_STREAM: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude\",\"usage\":{\"input_tokens\":11,\"output_tokens\":1}}}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\nevent: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":6}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
const GEMINI_STREAM: &str = "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"The\"}],\"role\": \"model\"}}],\"modelVersion\": \"g\",\"responseId\": \"r\"}\r\n\r\ndata: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \" end\"}],\"role\": \"model\"},\"finishReason\": \"STOP\"}],\"usageMetadata\": {\"promptTokenCount\": 13,\"candidatesTokenCount\": 8,\"totalTokenCount\": 21},\"modelVersion\": \"g\",\"responseId\": \"r\"}\r\n\r\n";

/// Counts events (blank-line separated) so throughput is per event.
fn events(stream: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(stream).replace("\r\n", "\n");
    text.split("\n\n").filter(|e| e.contains("data:")).count() as u64
}

fn streams(c: &mut Criterion) {
    let mut group = c.benchmark_group("translate/stream");
    for (name, native, stream) in [
        (
            "anthropic/stream-thinking",
            Native::Anthropic,
            fixture("anthropic/stream-thinking.sse", ANTHROPIC_STREAM),
        ),
        (
            "anthropic/stream-text-then-tool-use",
            Native::Anthropic,
            fixture("anthropic/stream-text-then-tool-use.sse", ANTHROPIC_STREAM),
        ),
        (
            "gemini/stream-text",
            Native::Gemini,
            fixture("gemini/stream-text.sse", GEMINI_STREAM),
        ),
        (
            "gemini/stream-thinking-include-thoughts",
            Native::Gemini,
            fixture(
                "gemini/stream-thinking-include-thoughts.turn2.sse",
                GEMINI_STREAM,
            ),
        ),
    ] {
        // Per event: frames as the upstream sends them, one event each.
        group.throughput(Throughput::Elements(events(&stream)));
        let frames: Vec<&[u8]> = split_events(&stream);
        group.bench_function(name, |b| {
            b.iter_batched(
                || StreamTranslation::new(native, "model", true),
                |mut t| {
                    let mut n = 0;
                    for frame in &frames {
                        n += t.feed(frame).len();
                    }
                    n + t.finish().len()
                },
                BatchSize::SmallInput,
            )
        });
    }
    // The other way: a chat upstream's stream as Anthropic Messages events (for Messages
    // clients such as Claude Code served by an OpenAI-compatible upstream) and as Responses
    // events (for Codex and the Responses API's SDKs).
    type Translation = fn() -> StreamTranslation;
    let inbound: [(&str, Translation); 2] = [
        ("messages", || StreamTranslation::chat_to_messages("model")),
        ("responses", || {
            StreamTranslation::chat_to_responses("model")
        }),
    ];
    for ((protocol, translation), name) in inbound.iter().flat_map(|p| {
        [
            "openai/stream-text-include-usage",
            "openai/stream-parallel-tool-calls",
        ]
        .map(|name| (p, name))
    }) {
        let stream = fixture(&format!("{name}.sse"), "");
        if stream.is_empty() {
            continue;
        }
        group.throughput(Throughput::Elements(events(&stream)));
        let frames: Vec<&[u8]> = split_events(&stream);
        group.bench_function(format!("{protocol}-from-chat/{name}"), |b| {
            b.iter_batched(
                translation,
                |mut t| {
                    let mut n = 0;
                    for frame in &frames {
                        n += t.feed(frame).len();
                    }
                    n + t.finish().len()
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// The stream cut after each blank line: one event per frame.
fn split_events(stream: &[u8]) -> Vec<&[u8]> {
    let mut frames = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < stream.len() {
        let rest = &stream[i..];
        let len = if rest.starts_with(b"\r\n\r\n") {
            4
        } else if rest.starts_with(b"\n\n") {
            2
        } else {
            0
        };
        if len > 0 {
            frames.push(&stream[start..i + len]);
            i += len;
            start = i;
        } else {
            i += 1;
        }
    }
    if start < stream.len() {
        frames.push(&stream[start..]);
    }
    frames
}

fn responses(c: &mut Criterion) {
    let mut group = c.benchmark_group("translate/response");
    for (name, native, body) in [
        (
            "anthropic/message-text-and-tool-use",
            Native::Anthropic,
            fixture(
                "anthropic/message-text-and-tool-use.response.json",
                r#"{"id":"msg_1","model":"claude","content":[{"type":"text","text":"Hi"}],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":2}}"#,
            ),
        ),
        (
            "gemini/generate-thinking-include-thoughts",
            Native::Gemini,
            fixture(
                "gemini/generate-thinking-include-thoughts.turn1.response.json",
                r#"{"candidates":[{"content":{"parts":[{"text":"Hi"}],"role":"model"},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":1,"candidatesTokenCount":1,"totalTokenCount":2}}"#,
            ),
        ),
    ] {
        group.throughput(Throughput::Elements(1));
        group.bench_function(name, |b| {
            b.iter(|| translate::response(native, &body, "model").unwrap().len())
        });
    }
    group.finish();

    let mut group = c.benchmark_group("translate/request");
    let body = br#"{"model":"x","messages":[{"role":"system","content":"You are a helpful assistant"},{"role":"user","content":"What's the weather in Florence, Italy?"},{"role":"assistant","content":null,"tool_calls":[{"id":"toolu_1","type":"function","function":{"name":"weather","arguments":"{\"location\":\"Florence, Italy\"}"}}]},{"role":"tool","tool_call_id":"toolu_1","content":"40 C"}],"tools":[{"type":"function","function":{"name":"weather","description":"Get weather","parameters":{"type":"object","properties":{"location":{"type":"string"}},"required":["location"],"additionalProperties":false}}}],"max_tokens":1024}"#;
    for (name, native) in [("anthropic", Native::Anthropic), ("gemini", Native::Gemini)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                serde_json::to_vec(&translate::request(native, body, "model", false).unwrap())
                    .unwrap()
                    .len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, streams, responses);
criterion_main!(benches);
