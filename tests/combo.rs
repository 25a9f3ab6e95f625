//! Aliases and combos end to end over real HTTP: two fault-injecting mock upstreams (`a`
//! and `b`, each counting the requests it gets) behind the gateway.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use llm_tower::executor::MockUpstream;
use serde_json::Value;
use support::*;

struct Setup {
    gw: Running,
    a: MockUpstream,
    b: MockUpstream,
    _servers: (Running, Running),
}

impl Setup {
    /// Providers `a` and `b` (mock upstreams over HTTP), `dead` (nothing listens), plus
    /// `extra` YAML.
    async fn new(extra: &str) -> Self {
        let (a_server, a) = mock_upstream().await;
        let (b_server, b) = mock_upstream().await;
        let dead = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        };
        let yaml = format!(
            "providers:\n  a: {{ kind: openai, api_base: '{}/v1' }}\n  b: {{ kind: openai, api_base: '{}/v1' }}\n  dead: {{ kind: openai, api_base: 'http://{dead}/v1' }}\n{extra}",
            a_server.url(),
            b_server.url()
        );
        Self {
            gw: gateway(&yaml).await,
            a,
            b,
            _servers: (a_server, b_server),
        }
    }

    async fn chat(&self, model: &str, stream: bool) -> Answer {
        self.chat_text(model, "hello there", stream).await
    }

    async fn chat_text(&self, model: &str, text: &str, stream: bool) -> Answer {
        post(
            &format!("{}/v1/chat/completions", self.gw.url()),
            &chat_body(model, text, stream),
            &[],
        )
        .await
    }

    fn calls(&self) -> (u64, u64) {
        (self.a.requests(), self.b.requests())
    }
}

fn sent_model(mock: &MockUpstream) -> String {
    let (_, body) = mock.last_request().expect("a request");
    serde_json::from_slice::<Value>(&body).unwrap()["model"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn an_alias_rewrites_only_the_model_and_models_lists_aliases_and_combos() {
    let s = Setup::new(
        "aliases: { gpt-4: fast, fast: a/echo, 'claude-*': 'b/claude-*' }\ncombos: { smart: { targets: [a/echo, b/echo] } }",
    )
    .await;
    let body =
        r#"{"model":"gpt-4","messages":[{"role":"user","content":"hi"}],"vendor":{"x":[1,2.50]}}"#;
    let answer = post(&format!("{}/v1/chat/completions", s.gw.url()), body, &[]).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.headers["x-gateway-provider"], "a");
    let (_, sent) = s.a.last_request().unwrap();
    assert_eq!(
        sent,
        Bytes::from(body.replace("\"gpt-4\"", "\"echo\"")),
        "every other byte as the client sent it"
    );

    let answer = s.chat("claude-sonnet-4-5", false).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(sent_model(&s.b), "claude-sonnet-4-5");
    assert_eq!(answer.headers["x-gateway-model"], "claude-sonnet-4-5");

    let models = get(&format!("{}/v1/models", s.gw.url()), &[]).await.json();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    for id in ["gpt-4", "fast", "smart"] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
}

#[tokio::test]
async fn priority_falls_back_on_429_5xx_and_connection_errors_but_not_on_a_client_error() {
    let s = Setup::new(
        "combos:\n  r429: { targets: ['a/echo?status=429', b/echo] }\n  r500: { targets: ['a/echo?status=500', b/echo] }\n  r503: { targets: ['a/echo?status=503', b/echo] }\n  r408: { targets: ['a/echo?status=408', b/echo] }\n  dead: { targets: [dead/echo, b/echo] }\n  r400: { targets: ['a/echo?status=400', b/echo] }",
    )
    .await;
    let mut expected = (0, 0);
    for combo in ["r429", "r500", "r503", "r408"] {
        let answer = s.chat(combo, false).await;
        assert_eq!(answer.status, StatusCode::OK, "{combo}: {}", answer.text());
        assert_eq!(answer.headers["x-gateway-provider"], "b", "{combo}");
        assert_eq!(answer.headers["x-gateway-attempts"], "2", "{combo}");
        assert_eq!(
            answer.json()["choices"][0]["message"]["content"],
            "You said: hello there"
        );
        expected = (expected.0 + 1, expected.1 + 1);
        assert_eq!(s.calls(), expected, "{combo}: one call at each upstream");
    }

    let answer = s.chat("dead", false).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.headers["x-gateway-attempts"], "2");
    expected.1 += 1;
    assert_eq!(s.calls(), expected);

    // A 400 is the client's: the same request would fail anywhere.
    let error = s.chat("r400", false).await.error(StatusCode::BAD_REQUEST);
    assert!(
        error["message"].as_str().unwrap().contains("status 400"),
        "{error}"
    );
    expected.0 += 1;
    assert_eq!(s.calls(), expected, "b is not tried after a 400");
}

#[tokio::test]
async fn all_targets_failing_gives_the_last_status_and_a_summary_of_attempts() {
    let s = Setup::new("combos: { bad: { targets: ['a/echo?status=500', 'b/echo?status=503'] } }")
        .await;
    let error = s
        .chat("bad", false)
        .await
        .error(StatusCode::SERVICE_UNAVAILABLE);
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("All 2 attempts of combo `bad` failed"),
        "{message}"
    );
    assert!(message.contains("a/echo?status=500: 500"), "{message}");
    assert!(message.contains("b/echo?status=503: 503"), "{message}");
    assert_eq!(s.calls(), (1, 1));
}

#[tokio::test]
async fn a_slow_target_times_out_per_attempt_and_the_deadline_bounds_the_whole_request() {
    let s = Setup::new(
        "combos:\n  slow: { attempt_timeout: 300ms, targets: ['a/echo?delay=5s', b/echo] }\n  both: { deadline: 400ms, targets: ['a/echo?delay=5s', 'b/echo?delay=5s'] }",
    )
    .await;
    let started = Instant::now();
    let answer = s.chat("slow", true).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.headers["x-gateway-provider"], "b");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    let started = Instant::now();
    let error = s
        .chat("both", false)
        .await
        .error(StatusCode::GATEWAY_TIMEOUT);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        error["message"].as_str().unwrap().contains("timed out"),
        "{error}"
    );
}

#[tokio::test]
async fn a_stream_that_dies_before_its_first_event_falls_back_and_one_that_dies_after_does_not() {
    let s = Setup::new(
        "combos:\n  early: { targets: ['a/echo?cut=0', b/echo] }\n  late: { targets: ['a/echo?cut=2&chunk_delay=50ms', b/echo] }",
    )
    .await;
    let answer = s.chat("early", true).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["x-gateway-provider"], "b");
    let events = sse_data(&answer.text());
    assert_eq!(events.last().unwrap(), "[DONE]", "{events:?}");
    let text: String = events[..events.len() - 1]
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, "You said: hello there");
    assert_eq!(s.calls(), (1, 1));

    // After the first event the stream is the client's: it ends with an error event.
    let answer = s.chat("late", true).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["x-gateway-provider"], "a");
    let body = answer.text();
    assert!(body.contains("event: error"), "{body}");
    assert!(!body.contains("[DONE]"), "{body}");
    assert_eq!(s.calls(), (2, 1), "no fallback once the client has bytes");
}

#[tokio::test]
async fn context_window_errors_move_to_the_context_fallbacks() {
    let s = Setup::new(
        "combos: { small: { targets: ['a/echo?context=5'], context_window_fallbacks: [b/echo] } }",
    )
    .await;
    let answer = s.chat_text("small", "short prompt", false).await;
    assert_eq!(
        answer.headers["x-gateway-provider"],
        "a",
        "{}",
        answer.text()
    );
    let answer = s
        .chat_text(
            "small",
            "a prompt that is much too long for the small model",
            false,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.headers["x-gateway-provider"], "b");
    assert_eq!(s.calls(), (2, 1));

    // Without fallbacks the client gets the upstream's own error.
    let s = Setup::new("combos: { small: { targets: ['a/echo?context=5', b/echo] } }").await;
    let error = s
        .chat_text(
            "small",
            "a prompt that is much too long for the small model",
            false,
        )
        .await
        .error(StatusCode::BAD_REQUEST);
    assert_eq!(error["code"], "context_length_exceeded");
    assert_eq!(s.calls(), (1, 0));
}

#[tokio::test]
async fn a_failing_target_cools_down_and_is_skipped_but_tried_when_nothing_else_is_left() {
    let s = Setup::new(
        "circuit_breaker: { failures: 2, window: 1m, cooldown: 1m }\ncombos:\n  ab: { targets: ['a/echo?status=500', b/echo] }\n  only: { targets: ['a/echo?status=500'] }",
    )
    .await;
    for _ in 0..2 {
        assert_eq!(s.chat("ab", false).await.status, StatusCode::OK);
    }
    assert_eq!(s.calls(), (2, 2));
    // Open: `a` is skipped.
    let answer = s.chat("ab", false).await;
    assert_eq!(answer.headers["x-gateway-attempts"], "1");
    assert_eq!(s.calls(), (2, 3));
    // A combo whose every target is cooling still tries the best one.
    s.chat("only", false)
        .await
        .error(StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(s.calls(), (3, 3));
    let metrics = get(&format!("{}/metrics", s.gw.url()), &[]).await.text();
    assert!(
        metrics.contains("llm_tower_combo_cooldowns_total{target=\"a/echo?status=500\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn round_robin_spreads_requests_and_least_busy_avoids_a_busy_target() {
    let s = Setup::new(
        "combos:\n  rr: { strategy: round-robin, targets: [a/echo, b/echo] }\n  lb: { strategy: least-busy, targets: ['a/echo?chunk_delay=300ms', 'b/echo?chunk_delay=300ms'] }",
    )
    .await;
    for _ in 0..6 {
        assert_eq!(s.chat("rr", false).await.status, StatusCode::OK);
    }
    assert_eq!(s.calls(), (3, 3));

    // Hold a stream open on whichever target `lb` picks first; the next request must go to
    // the other one while the first is still in flight.
    let url = format!("{}/v1/chat/completions", s.gw.url());
    let slow = client()
        .request(request(
            &url,
            chat_body("lb", "one two three four", true),
            &[],
        ))
        .await
        .unwrap();
    let first = slow.headers()["x-gateway-provider"]
        .to_str()
        .unwrap()
        .to_owned();
    let answer = s.chat("lb", false).await;
    let second = answer.headers["x-gateway-provider"].to_str().unwrap();
    assert_ne!(first, second, "least-busy picked the busy target");
    drop(slow);
}

/// Waits for the next minute when fewer than `secs` seconds of this one are left (the
/// per-minute target limits count in calendar minutes).
async fn room_in_this_minute(secs: u64) {
    let into = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        % 60_000;
    if into > (60 - secs) * 1000 {
        tokio::time::sleep(Duration::from_millis(60_000 - into + 50)).await;
    }
}

#[tokio::test]
async fn a_target_at_its_rpm_is_skipped_for_the_rest_of_the_minute() {
    let s = Setup::new(
        "combos:\n  capped: { targets: [{ target: a/echo, rpm: 2 }, b/echo] }\n  only-capped: { targets: [{ target: a/other, rpm: 1 }] }\n",
    )
    .await;
    room_in_this_minute(10).await;
    for _ in 0..2 {
        let answer = s.chat("capped", false).await;
        assert_eq!(
            answer.headers["x-gateway-provider"],
            "a",
            "{}",
            answer.text()
        );
    }
    let before = s.calls();
    let answer = s.chat("capped", false).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.headers["x-gateway-provider"], "b");
    assert_eq!(answer.headers["x-gateway-attempts"], "1", "a was not tried");
    assert_eq!(s.calls(), (before.0, before.1 + 1));

    // With every target at its limit: a 429 that says when to come back, no upstream call.
    assert_eq!(s.chat("only-capped", false).await.status, StatusCode::OK);
    let before = s.calls();
    let limited = s.chat("only-capped", false).await;
    let error = limited.error(StatusCode::TOO_MANY_REQUESTS);
    assert!(
        error["message"].as_str().unwrap().contains("rpm/tpm"),
        "{error}"
    );
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(s.calls(), before);
}

#[tokio::test]
async fn least_usage_sends_to_the_target_with_the_fewest_tokens_and_holds_tpm() {
    let s = Setup::new(
        "combos:\n  usage: { strategy: least-usage, targets: [{ target: a/echo, tpm: 5 }, b/echo] }\n",
    )
    .await;
    room_in_this_minute(15).await;
    // The mock reports 2 prompt + 4 completion tokens for this prompt: one answer passes
    // a's tpm.
    let first = s.chat("usage", false).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    let first_provider = first.headers["x-gateway-provider"]
        .to_str()
        .unwrap()
        .to_owned();
    // The metering writer tells the combo the tokens off the request path: soon after,
    // the other target has fewer, and gets the next request.
    let mut next = String::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let answer = s.chat("usage", false).await;
        next = answer.headers["x-gateway-provider"]
            .to_str()
            .unwrap()
            .to_owned();
        if next != first_provider {
            break;
        }
    }
    assert_ne!(
        next, first_provider,
        "the next request goes to the less used target"
    );
    // Once a has used its tpm, it is skipped however little b has used.
    for _ in 0..10 {
        let answer = s.chat("usage", false).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = s.calls();
    for _ in 0..5 {
        assert_eq!(
            s.chat("usage", false).await.headers["x-gateway-provider"],
            "b"
        );
    }
    assert_eq!(s.calls(), (before.0, before.1 + 5));
}
