//! Traces over OTLP/HTTP: the spans a collector gets for a JSON request, a stream, a cache
//! hit and a combo fallback, with the GenAI attributes; W3C trace context both ways; an
//! unreachable collector.

mod support;

use http::StatusCode;
use serde_json::{json, Value};
use support::*;

fn yaml(upstream: &Running, collector: &str) -> String {
    config_for(
        upstream,
        &format!(
            "metering: {{ sink: none }}\ncache: {{ enabled: true }}\n\
             combos: {{ pair: {{ targets: ['up/echo?status=500', mock/echo] }} }}\n\
             telemetry: {{ otlp_endpoint: '{collector}', service_name: gateway-under-test }}\n"
        ),
    )
}

type Span = opentelemetry_proto::tonic::trace::v1::Span;

/// The first `count` request (`SERVER`) spans, once they and their children have come,
/// and the `CLIENT` children (upstream calls).
async fn request_spans(receiver: &OtlpReceiver, count: usize) -> (Vec<(String, Span)>, Vec<Span>) {
    for _ in 0..200 {
        let spans = receiver.spans();
        let servers: Vec<_> = spans.iter().filter(|(_, s)| s.kind == 2).cloned().collect();
        if servers.len() >= count {
            let clients = spans.into_iter().filter(|(_, s)| s.kind == 3);
            return (servers, clients.map(|(_, s)| s).collect());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("fewer than {count} request spans: {:?}", receiver.spans());
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn requests_are_spans_with_the_genai_attributes_and_no_content() {
    let (upstream, _mock) = mock_upstream().await;
    let (collector, receiver) = otlp_receiver().await;
    let gw = gateway(&yaml(&upstream, &collector.url())).await;
    let chat = format!("{}/v1/chat/completions", gw.url());
    let json_body =
        json!({"model": "up/echo", "messages": [{"role": "user", "content": "the secret prompt"}],
        "temperature": 0.3, "max_tokens": 50})
        .to_string();
    assert_eq!(post(&chat, &json_body, &[]).await.status, StatusCode::OK);
    let hit = post(&chat, &json_body, &[]).await;
    assert_eq!(hit.headers["x-gateway-cache"], "hit");
    assert_eq!(
        post(&chat, &chat_body("mock/echo", "stream me", true), &[])
            .await
            .status,
        StatusCode::OK
    );
    let pair = post(&chat, &chat_body("pair", "fall back", false), &[]).await;
    assert_eq!(pair.headers["x-gateway-attempts"], "2");

    let (spans, calls) = request_spans(&receiver, 4).await;
    assert_eq!(spans.len(), 4, "{spans:?}");
    let attrs: Vec<Value> = spans.iter().map(|(_, s)| span_attributes(s)).collect();
    for (service, span) in &spans {
        assert_eq!(service, "gateway-under-test");
        assert_eq!(span.kind, 2, "SERVER");
        assert_eq!(span.trace_id.len(), 16);
        assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
        let text = format!("{:?}", span);
        assert!(
            !text.contains("secret prompt") && !text.contains("You said"),
            "content in {text}"
        );
    }
    let first = &attrs[0];
    assert_eq!(spans[0].1.name, "chat up/echo");
    for (key, value) in [
        ("gen_ai.operation.name", json!("chat")),
        ("gen_ai.provider.name", json!("openai")),
        ("llm_tower.provider", json!("up")),
        ("gen_ai.request.model", json!("up/echo")),
        ("gen_ai.response.model", json!("echo")),
        ("gen_ai.usage.input_tokens", json!(3)),
        ("gen_ai.usage.output_tokens", json!(5)),
        ("gen_ai.request.temperature", json!(0.3)),
        ("gen_ai.request.max_tokens", json!(50)),
        ("http.response.status_code", json!(200)),
        ("llm_tower.cache", json!("miss")),
        ("llm_tower.key_alias", json!("anonymous")),
        ("llm_tower.attempts", json!(1)),
        ("gen_ai.response.finish_reasons", json!(["stop"])),
    ] {
        assert_eq!(first[key], value, "{key} in {first}");
    }
    assert_eq!(attrs[1]["llm_tower.cache"], "hit");
    assert_eq!(attrs[1]["llm_tower.attempts"], 0);
    assert!(
        first.get("gen_ai.input.messages").is_none(),
        "content capture is off"
    );
    assert_eq!(attrs[2]["llm_tower.stream"], true);
    assert_eq!(attrs[2]["gen_ai.response.finish_reasons"], json!(["stop"]));
    assert_eq!(attrs[2]["gen_ai.provider.name"], "mock");
    assert_eq!(attrs[3]["llm_tower.route"], "pair");
    assert_eq!(attrs[3]["llm_tower.attempts"], 2);
    assert_eq!(attrs[3]["llm_tower.provider"], "mock");

    // A CLIENT child per upstream call: none for the cache hit, two for the fallback.
    let children = |parent: &Span| -> Vec<Value> {
        calls
            .iter()
            .filter(|c| c.parent_span_id == parent.span_id && c.trace_id == parent.trace_id)
            .map(span_attributes)
            .collect()
    };
    assert_eq!(calls.len(), 4, "{calls:?}");
    assert_eq!(children(&spans[0].1).len(), 1);
    assert_eq!(children(&spans[1].1).len(), 0);
    assert_eq!(children(&spans[2].1)[0]["gen_ai.provider.name"], "mock");
    let fallback = children(&spans[3].1);
    assert_eq!(fallback.len(), 2, "{fallback:?}");
    assert_eq!(fallback[0]["gen_ai.request.model"], "echo?status=500");
    assert_eq!(fallback[0]["http.response.status_code"], 500);
    assert!(fallback[0]["error.type"].is_string(), "{fallback:?}");
    assert_eq!(fallback[1]["llm_tower.provider"], "mock");
    assert_eq!(fallback[1]["http.response.status_code"], 200);
    let answering = calls
        .iter()
        .find(|c| {
            c.parent_span_id == spans[3].1.span_id && c.status.as_ref().is_none_or(|s| s.code != 2)
        })
        .unwrap();
    assert_eq!(
        answering.end_time_unix_nano, spans[3].1.end_time_unix_nano,
        "the answering call lasts as long as the answer"
    );
    assert_eq!(
        calls
            .iter()
            .find(|c| c.parent_span_id == spans[3].1.span_id)
            .unwrap()
            .status
            .as_ref()
            .unwrap()
            .code,
        2,
        "the failed attempt is an error"
    );
}

/// `(name, outcome)` of the `INTERNAL` children of `parent`, in the order they started.
fn phases_of(receiver: &OtlpReceiver, parent: &Span) -> Vec<(String, String)> {
    let mut phases: Vec<Span> = receiver
        .spans()
        .into_iter()
        .map(|(_, s)| s)
        .filter(|s| s.kind == 1 && s.parent_span_id == parent.span_id)
        .collect();
    phases.sort_by_key(|s| s.start_time_unix_nano);
    for phase in &phases {
        assert_eq!(phase.trace_id, parent.trace_id);
        assert!(
            phase.start_time_unix_nano >= parent.start_time_unix_nano,
            "{phase:?}"
        );
        assert!(
            phase.end_time_unix_nano <= parent.end_time_unix_nano,
            "{phase:?}"
        );
    }
    phases
        .iter()
        .map(|s| {
            let outcome = span_attributes(s)["llm_tower.outcome"]
                .as_str()
                .unwrap()
                .to_owned();
            (s.name.clone(), outcome)
        })
        .collect()
}

#[tokio::test]
async fn each_layer_that_did_work_is_a_child_span() {
    let (upstream, _mock) = mock_upstream().await;
    let (collector, receiver) = otlp_receiver().await;
    let ledger = TempPath::new("llm-tower-telemetry", "db");
    let gw = gateway(&config_for(
        &upstream,
        &format!(
            "master_key: sk-master\nmetering: {{ sqlite_path: '{}' }}\n\
             tenancy: {{ refresh: 100ms }}\ncache: {{ enabled: true }}\n\
             telemetry: {{ otlp_endpoint: '{}' }}\n",
            ledger.display(),
            collector.url()
        ),
    ))
    .await;
    let generated = post(
        &format!("{}/key/generate", gw.url()),
        &json!({"key_alias": "traced-app", "rpm_limit": 10}).to_string(),
        &[("authorization", "Bearer sk-master")],
    )
    .await;
    assert_eq!(generated.status, StatusCode::OK, "{}", generated.text());
    let key = format!("Bearer {}", generated.json()["key"].as_str().unwrap());
    let chat = format!("{}/v1/chat/completions", gw.url());
    let body = chat_body("up/echo", "layers at work", false);
    let with_key = [("authorization", key.as_str()), ("idempotency-key", "k-1")];
    assert_eq!(post(&chat, &body, &with_key).await.status, StatusCode::OK);
    let replay = post(&chat, &body, &with_key).await;
    assert_eq!(replay.headers["idempotency-replayed"], "true");
    let hit = post(&chat, &body, &with_key[..1]).await;
    assert_eq!(hit.headers["x-gateway-cache"], "hit");
    // The cache is the key's: the master key's request goes upstream.
    let master = post(&chat, &body, &[("authorization", "Bearer sk-master")]).await;
    assert_eq!(master.headers["x-gateway-cache"], "miss");

    let (spans, calls) = request_spans(&receiver, 4).await;
    let phases: Vec<_> = spans.iter().map(|(_, s)| phases_of(&receiver, s)).collect();
    let named = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    let auth = phases[0][0].clone();
    assert_eq!(auth.0, "auth");
    assert!(
        ["key fetched", "key cached"].contains(&auth.1.as_str()),
        "{auth:?}"
    );
    assert_eq!(
        phases[0][1..],
        named(&[
            ("rate limits", "admitted"),
            ("idempotency", "executed"),
            ("cache lookup", "miss"),
        ]),
        "{phases:?}"
    );
    assert_eq!(
        phases[1],
        named(&[
            ("auth", "key cached"),
            ("rate limits", "admitted"),
            ("idempotency", "replayed"),
        ])
    );
    assert_eq!(
        phases[2],
        named(&[
            ("auth", "key cached"),
            ("rate limits", "admitted"),
            ("cache lookup", "hit"),
        ])
    );
    assert_eq!(
        phases[3],
        named(&[("auth", "configured key"), ("cache lookup", "miss")])
    );
    assert_eq!(
        calls.len(),
        2,
        "the first and the master key's went upstream: {calls:?}"
    );
    assert_eq!(
        span_attributes(&spans[0].1)["llm_tower.key_alias"],
        "traced-app"
    );
}

#[tokio::test]
async fn a_callers_traceparent_continues_and_the_upstream_gets_the_requests_span() {
    let (upstream, mock) = mock_upstream().await;
    let (collector, receiver) = otlp_receiver().await;
    let gw = gateway(&yaml(&upstream, &collector.url())).await;
    let chat = format!("{}/v1/chat/completions", gw.url());
    let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let answer = post(
        &chat,
        &chat_body("up/echo", "traced", false),
        &[("traceparent", incoming)],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let (spans, _) = request_spans(&receiver, 1).await;
    let span = &spans[0].1;
    assert_eq!(hex(&span.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(hex(&span.parent_span_id), "00f067aa0ba902b7");
    let sent = mock.last_request().unwrap().0["traceparent"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        sent,
        format!(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01",
            hex(&span.span_id)
        )
    );

    // A new trace when the caller sends none; an unsampled caller's trace is not exported
    // but still reaches the upstream.
    post(&chat, &chat_body("up/echo", "fresh", false), &[]).await;
    let (spans, _) = request_spans(&receiver, 2).await;
    let fresh = &spans[1].1;
    assert!(fresh.parent_span_id.is_empty(), "{fresh:?}");
    let sent = mock.last_request().unwrap().0["traceparent"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        sent,
        format!("00-{}-{}-01", hex(&fresh.trace_id), hex(&fresh.span_id))
    );
    let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4737-00f067aa0ba902b7-00";
    post(
        &chat,
        &chat_body("up/echo", "quiet", false),
        &[("traceparent", unsampled)],
    )
    .await;
    let sent = mock.last_request().unwrap().0["traceparent"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        sent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4737-") && sent.ends_with("-00"),
        "{sent}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(
        receiver.spans().len(),
        6,
        "the unsampled request sent no span (two requests, their calls and cache lookups did)"
    );
}

#[tokio::test]
async fn spans_go_over_grpc_when_the_protocol_says_so() {
    let (upstream, _mock) = mock_upstream().await;
    let (collector, receiver) = otlp_receiver().await;
    let gw = gateway(&config_for(
        &upstream,
        &format!(
            "metering: {{ sink: none }}\n\
             telemetry: {{ otlp_endpoint: '{}', protocol: grpc, service_name: over-grpc }}\n",
            collector.url()
        ),
    ))
    .await;
    let chat = format!("{}/v1/chat/completions", gw.url());
    let answer = post(&chat, &chat_body("up/echo", "by grpc", false), &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    let (spans, calls) = request_spans(&receiver, 1).await;
    assert_eq!(spans[0].0, "over-grpc");
    assert_eq!(
        span_attributes(&spans[0].1)["gen_ai.request.model"],
        "up/echo"
    );
    assert_eq!(calls.len(), 1);
    assert!(receiver.grpc_calls() >= 1, "the export came over gRPC");
}

#[tokio::test]
async fn an_unreachable_collector_leaves_requests_alone_and_counts_the_drops() {
    let (upstream, _mock) = mock_upstream().await;
    let gw = gateway(&yaml(&upstream, "http://127.0.0.1:9")).await;
    let chat = format!("{}/v1/chat/completions", gw.url());
    for _ in 0..3 {
        assert_eq!(
            post(&chat, &chat_body("up/echo", "hello", false), &[])
                .await
                .status,
            StatusCode::OK
        );
    }
    for _ in 0..100 {
        let metrics = get(&format!("{}/metrics", gw.url()), &[]).await.text();
        let dropped = metrics
            .lines()
            .find(|l| l.starts_with("llm_tower_telemetry_spans_dropped_total"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0);
        if dropped >= 3 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no dropped spans counted");
}

#[tokio::test]
async fn content_is_on_the_spans_only_when_asked_for() {
    let (upstream, _mock) = mock_upstream().await;
    let (collector, receiver) = otlp_receiver().await;
    let yaml = yaml(&upstream, &collector.url()).replace(
        "service_name: gateway-under-test",
        "service_name: gateway-under-test, capture_content: true",
    );
    let gw = gateway(&yaml).await;
    let chat = format!("{}/v1/chat/completions", gw.url());
    post(&chat, &chat_body("up/echo", "the secret prompt", true), &[]).await;
    let (spans, _) = request_spans(&receiver, 1).await;
    let attrs = span_attributes(&spans[0].1);
    let input: Value =
        serde_json::from_str(attrs["gen_ai.input.messages"].as_str().unwrap()).unwrap();
    assert_eq!(
        input,
        json!([{"role": "user", "content": "the secret prompt"}])
    );
    let output: Value =
        serde_json::from_str(attrs["gen_ai.output.messages"].as_str().unwrap()).unwrap();
    assert_eq!(
        output[0]["parts"][0]["content"],
        "You said: the secret prompt"
    );
    assert_eq!(attrs["gen_ai.response.finish_reasons"], json!(["stop"]));
}

#[test]
fn telemetry_settings_are_checked() {
    for (yaml, field) in [
        ("telemetry: { sample_ratio: 1.5 }", "telemetry.sample_ratio"),
        (
            "telemetry: { otlp_endpoint: 'ftp://x' }",
            "telemetry.otlp_endpoint",
        ),
        ("telemetry: { queue: 0 }", "telemetry.queue"),
        ("telemetry: { colour: red }", "unknown field `colour`"),
        (
            "telemetry: { protocol: http/json }",
            "unknown variant `http/json`, expected `http/protobuf` or `grpc`",
        ),
    ] {
        let err =
            llm_tower::Config::from_yaml(&format!("providers: {{ m: {{ kind: mock }} }}\n{yaml}"))
                .unwrap_err()
                .to_string();
        assert!(err.contains(field), "{yaml}: {err}");
    }
}
