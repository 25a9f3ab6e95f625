//! `Idempotency-Key` end to end over real HTTP: the gateway in front of the project's mock
//! upstream, counting the calls that reach it. The Redis suite runs when `REDIS_URL` is
//! set (as `.ci/run` does) and then fails if Redis is down.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::BodyExt;
use support::*;

/// Two tenants, `sk-a` and `sk-b`, in front of the mock.
type Setup = TwoTenants;

impl Setup {
    async fn send(&self, body: &str, key: &str, tenant: &str) -> Answer {
        post(
            &self.url(),
            body,
            &[
                ("idempotency-key", key),
                ("authorization", &format!("Bearer {tenant}")),
            ],
        )
        .await
    }
}

fn replayed(answer: &Answer) -> bool {
    answer
        .headers
        .get("idempotency-replayed")
        .is_some_and(|v| v == "true")
}

#[tokio::test]
async fn a_repeated_request_is_replayed_byte_for_byte_json_and_stream() {
    let s = Setup::new("").await;
    for stream in [false, true] {
        let key = unique("seq");
        let body = chat_body("up/echo?words=12", "hello", stream);
        let first = s.send(&body, &key, "sk-a").await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.text());
        assert!(!replayed(&first));
        let calls = s.mock.requests();
        let second = s.send(&body, &key, "sk-a").await;
        assert_eq!(second.status, StatusCode::OK);
        assert!(replayed(&second), "{:?}", second.headers);
        assert_eq!(second.body, first.body, "byte for byte");
        assert_eq!(
            second.headers["content-type"],
            first.headers["content-type"]
        );
        assert_eq!(second.headers["x-gateway-provider"], "up");
        assert_eq!(s.mock.requests(), calls, "the replay made no upstream call");
        if stream {
            assert!(second.text().ends_with("data: [DONE]\n\n"));
        }
    }
}

#[tokio::test]
async fn twenty_concurrent_duplicates_make_one_upstream_call() {
    let s = Setup::new("").await;
    let key = unique("burst");
    let body = chat_body("up/echo?delay=300ms", "same question", false);
    let answers =
        futures_util::future::join_all((0..20).map(|_| s.send(&body, &key, "sk-a"))).await;
    assert_eq!(s.mock.requests(), 1, "exactly one upstream call");
    let first = &answers[0].body;
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        assert_eq!(&answer.body, first, "identical answers");
    }
    assert_eq!(
        answers.iter().filter(|a| !replayed(a)).count(),
        1,
        "one executed, 19 joined"
    );
}

#[tokio::test]
async fn a_streaming_duplicate_joins_the_live_stream() {
    let s = Setup::new("").await;
    let key = unique("join");
    let body = chat_body("up/echo?words=8&chunk_delay=80ms", "q", true);
    let req = request(
        &s.url(),
        body.clone(),
        &[("idempotency-key", &key), ("authorization", "Bearer sk-a")],
    );
    let response = client().request(req).await.unwrap();
    let mut original = response.into_body();
    // Read the first events of the original, then start the duplicate mid-stream.
    let mut received = Vec::new();
    while received.len() < 3 {
        let frame = original.frame().await.unwrap().unwrap();
        received.push(frame.into_data().unwrap());
    }
    let duplicate = tokio::spawn({
        let url = s.url();
        let key = key.clone();
        async move {
            post(
                &url,
                &body,
                &[("idempotency-key", &key), ("authorization", "Bearer sk-a")],
            )
            .await
        }
    });
    while let Some(frame) = original.frame().await {
        received.push(frame.unwrap().into_data().unwrap());
    }
    let original: Bytes = received.concat().into();
    let duplicate = duplicate.await.unwrap();
    assert!(replayed(&duplicate));
    assert_eq!(duplicate.body, original, "the joiner got the whole stream");
    assert!(duplicate.text().ends_with("data: [DONE]\n\n"));
    assert_eq!(s.mock.requests(), 1);
}

#[tokio::test]
async fn the_same_key_with_another_request_is_422_and_a_bad_key_is_400() {
    let s = Setup::new("").await;
    let key = unique("fp");
    let first = s
        .send(&chat_body("up/echo", "one", false), &key, "sk-a")
        .await;
    assert_eq!(first.status, StatusCode::OK);
    let error = s
        .send(&chat_body("up/echo", "two", false), &key, "sk-a")
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error["code"], "idempotency_key_reused");

    // In flight, too.
    let key = unique("fp-live");
    let first_body = chat_body("up/echo?delay=400ms", "one", false);
    let slow = s.send(&first_body, &key, "sk-a");
    let other = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        s.send(
            &chat_body("up/echo?delay=400ms", "two", false),
            &key,
            "sk-a",
        )
        .await
    };
    let (slow, other) = tokio::join!(slow, other);
    assert_eq!(slow.status, StatusCode::OK);
    other.error(StatusCode::UNPROCESSABLE_ENTITY);

    for bad in ["", &"k".repeat(256)] {
        let error = s
            .send(&chat_body("up/echo", "x", false), bad, "sk-a")
            .await
            .error(StatusCode::BAD_REQUEST);
        assert_eq!(error["code"], "invalid_idempotency_key");
    }
}

#[tokio::test]
async fn keys_are_scoped_per_gateway_key() {
    let s = Setup::new("").await;
    let key = unique("tenant");
    let body = chat_body("up/echo", "hi", false);
    assert!(!replayed(&s.send(&body, &key, "sk-a").await));
    assert!(
        !replayed(&s.send(&body, &key, "sk-b").await),
        "team-b never sees team-a's answer"
    );
    assert!(replayed(&s.send(&body, &key, "sk-b").await));
    assert_eq!(s.mock.requests(), 2);
}

#[tokio::test]
async fn failures_are_not_stored_but_client_errors_are() {
    let s = Setup::new("").await;
    for (model, status, stored) in [
        (
            "up/echo?status=500",
            StatusCode::INTERNAL_SERVER_ERROR,
            false,
        ),
        ("up/echo?status=429", StatusCode::TOO_MANY_REQUESTS, false),
        ("up/echo?status=400", StatusCode::BAD_REQUEST, true),
        ("up/echo?cut=2&chunk_delay=20ms", StatusCode::OK, false),
    ] {
        let key = unique("fail");
        let body = chat_body(model, "x", model.contains("cut"));
        let before = s.mock.requests();
        let first = s.send(&body, &key, "sk-a").await;
        assert_eq!(first.status, status, "{model}");
        let second = s.send(&body, &key, "sk-a").await;
        assert_eq!(second.status, status, "{model}");
        assert_eq!(replayed(&second), stored, "{model}");
        let calls = s.mock.requests() - before;
        assert_eq!(calls, if stored { 1 } else { 2 }, "{model}");
        if !stored && status != StatusCode::OK {
            assert_eq!(first.headers["idempotency-stored"], "false", "{model}");
        }
    }
}

#[tokio::test]
async fn stored_responses_expire_and_oversized_ones_are_not_kept() {
    let s = Setup::new("idempotency: { ttl: 400ms, max_response_bytes: 2000 }").await;
    let key = unique("ttl");
    let body = chat_body("up/echo", "hi", false);
    s.send(&body, &key, "sk-a").await;
    assert!(replayed(&s.send(&body, &key, "sk-a").await));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!replayed(&s.send(&body, &key, "sk-a").await), "expired");
    assert_eq!(s.mock.requests(), 2);

    let key = unique("big");
    let body = chat_body("up/echo?words=1000", "hi", false);
    let first = s.send(&body, &key, "sk-a").await;
    assert!(first.body.len() > 2000);
    assert!(
        !replayed(&s.send(&body, &key, "sk-a").await),
        "too large to keep"
    );
}

#[tokio::test]
async fn reject_mode_answers_409_while_the_original_is_in_flight() {
    let s = Setup::new("idempotency: { in_flight: reject }").await;
    let key = unique("409");
    let body = chat_body("up/echo?delay=400ms", "x", false);
    let first = s.send(&body, &key, "sk-a");
    let second = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        s.send(&body, &key, "sk-a").await
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(
        second.error(StatusCode::CONFLICT)["code"],
        "idempotency_request_in_progress"
    );
    assert!(
        replayed(&s.send(&body, &key, "sk-a").await),
        "after completion it replays"
    );
}

#[tokio::test]
async fn an_unreachable_redis_fails_open_or_closed_without_hanging() {
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let redis = format!("redis: {{ url: 'redis://{dead}', timeout: 300ms }}");
    let open = Setup::new(&format!("{redis}\nidempotency: {{ store: redis }}")).await;
    let started = std::time::Instant::now();
    let answer = open
        .send(&chat_body("up/echo", "hi", false), &unique("open"), "sk-a")
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert!(started.elapsed() < Duration::from_secs(5));
    let metrics = open.metrics().await;
    assert!(
        metrics.contains("llm_tower_idempotency_store_errors_total"),
        "{metrics}"
    );

    let closed = Setup::new(&format!(
        "{redis}\nidempotency: {{ store: redis, on_store_error: closed }}"
    ))
    .await;
    let error = closed
        .send(
            &chat_body("up/echo", "hi", false),
            &unique("closed"),
            "sk-a",
        )
        .await
        .error(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error["code"], "idempotency_store_unavailable");
    assert_eq!(closed.mock.requests(), 0);
}

// ---- Redis: many gateway instances ----

fn redis_url() -> String {
    needs("REDIS_URL")
}

fn redis_config(url: &str, prefix: &str, extra: &str) -> String {
    format!(
        "redis: {{ url: '{url}' }}\nidempotency: {{ store: redis, key_prefix: '{prefix}', lock_ttl: 1s{extra} }}"
    )
}

#[tokio::test]
#[ignore = "needs Redis at REDIS_URL: .ci/run starts it"]
async fn redis_replays_coalesces_across_instances_and_expires() {
    let url = redis_url();
    let prefix = unique("llm-tower-test") + ":";
    let (upstream, mock) = mock_upstream().await;
    let yaml = config_for(&upstream, &redis_config(&url, &prefix, ", ttl: 1s"));
    // Two gateway instances sharing one Redis (separate processes: see below).
    let one = gateway(&yaml).await;
    let two = gateway(&yaml).await;
    let chat = |gw: &Running| format!("{}/v1/chat/completions", gw.url());

    // Sequential: the second instance replays what the first stored.
    for stream in [false, true] {
        let key = unique("r-seq");
        let body = chat_body("up/echo?words=5", "hi", stream);
        let before = mock.requests();
        let first = post(&chat(&one), &body, &[("idempotency-key", &key)]).await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.text());
        let second = post(&chat(&two), &body, &[("idempotency-key", &key)]).await;
        assert!(replayed(&second), "{}", second.text());
        assert_eq!(second.body, first.body);
        assert_eq!(mock.requests() - before, 1);
    }

    // Concurrent duplicates on both instances: one upstream call.
    let key = unique("r-burst");
    let body = chat_body("up/echo?delay=300ms", "same", false);
    let before = mock.requests();
    let answers = futures_util::future::join_all((0..10).map(|i| {
        let url = chat(if i % 2 == 0 { &one } else { &two });
        let body = body.clone();
        let key = key.clone();
        async move { post(&url, &body, &[("idempotency-key", &key)]).await }
    }))
    .await;
    assert_eq!(
        mock.requests() - before,
        1,
        "one upstream call across instances"
    );
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        assert_eq!(answer.body, answers[0].body);
    }

    // A different request under the same key on the other instance, while in flight: 422.
    let key = unique("r-fp");
    let (url_one, url_two) = (chat(&one), chat(&two));
    let slow_body = chat_body("up/echo?delay=500ms", "a", false);
    let headers = [("idempotency-key", key.as_str())];
    let slow = post(&url_one, &slow_body, &headers);
    let other = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        post(
            &url_two,
            &chat_body("up/echo", "b", false),
            &[("idempotency-key", &key)],
        )
        .await
    };
    let (slow, other) = tokio::join!(slow, other);
    assert_eq!(slow.status, StatusCode::OK);
    other.error(StatusCode::UNPROCESSABLE_ENTITY);

    // Short TTL: gone after it.
    let key = unique("r-ttl");
    let body = chat_body("up/echo", "ttl", false);
    post(&chat(&one), &body, &[("idempotency-key", &key)]).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(!replayed(
        &post(&chat(&two), &body, &[("idempotency-key", &key)]).await
    ));
}

#[tokio::test]
#[ignore = "needs Redis at REDIS_URL: .ci/run starts it"]
async fn two_gateway_processes_share_redis_and_survive_the_owner_dying() {
    let url = redis_url();
    let prefix = unique("llm-tower-test") + ":";
    let (upstream, mock) = mock_upstream().await;
    let yaml = config_for(&upstream, &redis_config(&url, &prefix, ""));
    let mut a = GatewayProcess::spawn(&yaml).await;
    let b = GatewayProcess::spawn(&yaml).await;
    let chat = |p: &GatewayProcess| format!("{}/v1/chat/completions", p.url());

    // Concurrent duplicates sent to both processes: one upstream call.
    let key = unique("p-burst");
    let body = chat_body("up/echo?delay=300ms", "same", false);
    let (url_a, url_b) = (chat(&a), chat(&b));
    let headers = [("idempotency-key", key.as_str())];
    let (x, y) = tokio::join!(post(&url_a, &body, &headers), post(&url_b, &body, &headers));
    assert_eq!(
        (x.status, y.status),
        (StatusCode::OK, StatusCode::OK),
        "{} {}",
        x.text(),
        y.text()
    );
    assert_eq!(x.body, y.body);
    assert_eq!(mock.requests(), 1);

    // The owner dies mid-request: after its lock expires, a retry on the other succeeds.
    let key = unique("p-kill");
    let body = chat_body("up/echo?delay=3s", "doomed", false);
    let doomed = tokio::spawn({
        let url = chat(&a);
        let key = key.clone();
        let body = body.clone();
        async move {
            client()
                .request(request(&url, body, &[("idempotency-key", &key)]))
                .await
        }
    });
    for _ in 0..100 {
        if mock.requests() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        mock.requests(),
        2,
        "the owner's request reached the upstream"
    );
    a.kill().await;
    assert!(
        doomed.await.unwrap().is_err(),
        "the owner's client saw it die"
    );
    let started = std::time::Instant::now();
    let retry = post(&chat(&b), &body, &[("idempotency-key", &key)]).await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.text());
    assert!(!replayed(&retry), "executed anew");
    assert_eq!(mock.requests(), 3);
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
}
