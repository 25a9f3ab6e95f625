//! End to end over real HTTP on 127.0.0.1: client → gateway → project mock upstream.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn chat_json_is_forwarded_with_the_model_rewritten_and_every_other_byte_kept() {
    let (upstream, mock) = mock_upstream().await;
    let gw = gateway(&config_for(&upstream, "")).await;
    let body = r#"{"model":"up/echo","messages":[{"role":"user","content":"hello there"}],"x_vendor_field":{"keep":[1,2.50,"x"]},"temperature":0.2}"#;
    let answer = post(
        &format!("{}/v1/chat/completions", gw.url()),
        body,
        &[("x-custom", "kept"), ("openai-organization", "org-1")],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let value = answer.json();
    assert_eq!(
        value["choices"][0]["message"]["content"],
        "You said: hello there"
    );
    assert_eq!(value["usage"]["total_tokens"], 6);
    assert_eq!(answer.headers["x-gateway-provider"], "up");
    assert_eq!(answer.headers["x-gateway-model"], "echo");
    assert!(answer.headers["x-request-id"]
        .to_str()
        .unwrap()
        .starts_with("req_"));

    let (headers, sent) = mock.last_request().unwrap();
    assert_eq!(
        sent,
        Bytes::from(body.replace(r#""model":"up/echo""#, r#""model":"echo""#)),
        "only the model value may change"
    );
    assert_eq!(headers["authorization"], "Bearer sk-upstream");
    assert_eq!(headers["x-custom"], "kept");
    assert_eq!(headers["openai-organization"], "org-1");
    assert_eq!(
        headers["x-request-id"], answer.headers["x-request-id"],
        "request id reaches the upstream"
    );
}

#[tokio::test]
async fn the_client_key_and_host_never_reach_the_upstream() {
    let (upstream, mock) = mock_upstream().await;
    let gw = gateway(&config_for(&upstream, "master_key: sk-gateway-master")).await;
    let answer = post(
        &format!("{}/v1/chat/completions", gw.url()),
        &chat_body("up/echo", "hi", false),
        &[
            ("authorization", "Bearer sk-gateway-master"),
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "1"),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let (headers, _) = mock.last_request().unwrap();
    assert_eq!(headers["authorization"], "Bearer sk-upstream");
    assert_eq!(headers["host"], upstream.addr.to_string());
    assert!(headers.get("x-hop").is_none());
    assert!(!format!("{headers:?}").contains("sk-gateway-master"));
}

#[tokio::test]
async fn a_client_request_id_is_kept() {
    let gw = gateway("providers: { mock: { kind: mock } }").await;
    let answer = post(
        &format!("{}/v1/chat/completions", gw.url()),
        &chat_body("mock/echo", "hi", false),
        &[("x-request-id", "trace-123")],
    )
    .await;
    assert_eq!(answer.headers["x-request-id"], "trace-123");
}

#[tokio::test]
async fn streams_pass_through_byte_for_byte() {
    let (upstream, _mock) = mock_upstream().await;
    let gw = gateway(&config_for(&upstream, "")).await;
    let body = json!({
        "model": "up/echo", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "one two three"}],
    });
    let via_gateway = post(
        &format!("{}/v1/chat/completions", gw.url()),
        &body.to_string(),
        &[],
    )
    .await;
    assert_eq!(via_gateway.status, StatusCode::OK);
    assert_eq!(via_gateway.headers["content-type"], "text/event-stream");
    let direct_body = body.to_string().replace("up/echo", "echo");
    let direct = post(
        &format!("{}/v1/chat/completions", upstream.url()),
        &direct_body,
        &[],
    )
    .await;
    // The two answers differ only in the mock's per-request id and clock (the second may
    // tick between the two requests).
    let normalise = |text: String| {
        sse_data(&text)
            .into_iter()
            .map(|d| d.split(",\"created\"").next().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let events = normalise(via_gateway.text());
    assert_eq!(events, normalise(direct.text()));
    assert_eq!(events.len(), 9, "{}", via_gateway.text());
    assert_eq!(events.last().unwrap(), "[DONE]");
    let usage: Value = serde_json::from_str(&sse_data(&via_gateway.text())[7]).unwrap();
    assert_eq!(usage["usage"]["completion_tokens"], 5);
}

#[tokio::test]
async fn the_first_chunk_reaches_the_client_before_the_upstream_sends_the_last() {
    let (upstream, script) = scripted_upstream().await;
    let gw = gateway(&config_for(&upstream, "")).await;
    let url = format!("{}/v1/chat/completions", gw.url());
    let response = tokio::spawn(async move {
        client()
            .request(request(&url, chat_body("up/x", "hi", true), &[]))
            .await
    });
    let tx = script.next_stream().await;
    tx.send(Bytes::from_static(b"data: {\"first\":true}\n\n"))
        .await
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(5), response)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let mut body = response.into_body();
    let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("the first chunk arrives while the upstream is still streaming")
        .unwrap()
        .unwrap();
    assert_eq!(
        frame.into_data().unwrap(),
        Bytes::from_static(b"data: {\"first\":true}\n\n")
    );
    tx.send(Bytes::from_static(b"data: [DONE]\n\n"))
        .await
        .unwrap();
    drop(tx);
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, Bytes::from_static(b"data: [DONE]\n\n"));
}

#[tokio::test]
async fn a_client_that_disconnects_cancels_the_upstream_request() {
    let (upstream, script) = scripted_upstream().await;
    let gw = gateway(&config_for(&upstream, "")).await;
    let mut socket = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let body = chat_body("up/x", "hi", true);
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let tx = script.next_stream().await;
    tx.send(Bytes::from_static(b"data: {\"n\":1}\n\n"))
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = socket.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("200 OK"));
    drop(socket);
    tokio::time::timeout(Duration::from_secs(5), tx.closed())
        .await
        .expect("the upstream sees its connection closed once the client is gone");
}

#[tokio::test]
async fn an_upstream_that_breaks_mid_stream_ends_the_client_stream_with_an_error_event() {
    let (upstream, _mock) = mock_upstream().await;
    let gw = gateway(&config_for(&upstream, "")).await;
    let answer = post(
        &format!("{}/v1/chat/completions", gw.url()),
        &chat_body("up/echo?cut=2&chunk_delay=10ms", "a b c d", true),
        &[],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let text = answer.text();
    let events = sse_data(&text);
    assert_eq!(events.len(), 3, "{text}");
    assert!(text.contains("event: error\ndata: "), "{text}");
    let error: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(error["error"]["type"], "upstream_error");
    assert!(!text.contains("[DONE]"));
}

#[tokio::test]
async fn an_upstream_silent_mid_stream_hits_the_idle_timeout() {
    let (upstream, _mock) = mock_upstream().await;
    let gw = gateway(&config_for(&upstream, "upstream: { idle_timeout: 300ms }")).await;
    let answer = post(
        &format!("{}/v1/chat/completions", gw.url()),
        &chat_body("up/echo?chunk_delay=3s", "a b", true),
        &[],
    )
    .await;
    let error: Value = serde_json::from_str(sse_data(&answer.text()).last().unwrap()).unwrap();
    assert_eq!(
        error["error"]["code"],
        "upstream_timeout",
        "{}",
        answer.text()
    );
}

#[tokio::test]
async fn embeddings_and_models() {
    let (upstream, mock) = mock_upstream().await;
    let gw = gateway(&config_for(&upstream, "")).await;
    let answer = post(
        &format!("{}/v1/embeddings", gw.url()),
        r#"{"model":"up/embed","input":["a b","c"],"dimensions":4}"#,
        &[],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let value = answer.json();
    assert_eq!(value["data"].as_array().unwrap().len(), 2);
    assert_eq!(value["data"][1]["embedding"].as_array().unwrap().len(), 4);
    assert_eq!(value["usage"]["prompt_tokens"], 3);
    assert_eq!(
        mock.last_request().unwrap().1,
        Bytes::from_static(br#"{"model":"embed","input":["a b","c"],"dimensions":4}"#)
    );

    let models = get(&format!("{}/v1/models", gw.url()), &[]).await.json();
    assert_eq!(models["object"], "list");
    assert_eq!(
        models["data"],
        json!([{ "id": "up/echo", "object": "model", "created": 0, "owned_by": "up" }])
    );
}

#[tokio::test]
async fn the_in_process_mock_serves_chat_streams_and_embeddings() {
    let gw = gateway("providers: { mock: { kind: mock, models: [echo] } }").await;
    let url = format!("{}/v1/chat/completions", gw.url());
    let json = post(&url, &chat_body("mock/echo", "ping", false), &[])
        .await
        .json();
    assert_eq!(json["choices"][0]["message"]["content"], "You said: ping");
    let stream = post(&url, &chat_body("mock/echo?cut=1", "ping pong", true), &[])
        .await
        .text();
    assert_eq!(sse_data(&stream).len(), 2, "{stream}");
    assert!(stream.contains("event: error"));
    let embeddings = post(
        &format!("{}/v1/embeddings", gw.url()),
        r#"{"model":"mock/e","input":"x"}"#,
        &[],
    )
    .await;
    assert_eq!(
        embeddings.json()["data"][0]["embedding"]
            .as_array()
            .unwrap()
            .len(),
        16
    );
    let error = post(&url, &chat_body("mock/echo?status=503", "x", false), &[]).await;
    error.error(StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn bad_requests_get_openai_errors() {
    let gw = gateway("providers: { mock: { kind: mock } }\nserver: { max_body_bytes: 1024 }").await;
    let url = format!("{}/v1/chat/completions", gw.url());
    let cases: [(&str, StatusCode, &str); 7] = [
        ("{oops", StatusCode::BAD_REQUEST, "invalid_json"),
        (
            r#"{"messages":[{"role":"user","content":"x"}]}"#,
            StatusCode::BAD_REQUEST,
            "model",
        ),
        (
            r#"{"model":"mock/echo"}"#,
            StatusCode::BAD_REQUEST,
            "messages",
        ),
        (
            r#"{"model":"mock/echo","messages":"hi"}"#,
            StatusCode::BAD_REQUEST,
            "messages",
        ),
        (
            r#"{"model":"nope/echo","messages":[{"role":"user","content":"x"}]}"#,
            StatusCode::NOT_FOUND,
            "model_not_found",
        ),
        (
            r#"{"model":"echo","messages":[{"role":"user","content":"x"}]}"#,
            StatusCode::NOT_FOUND,
            "model_not_found",
        ),
        (
            r#"{"model":"mock/","messages":[{"role":"user","content":"x"}]}"#,
            StatusCode::NOT_FOUND,
            "model_not_found",
        ),
    ];
    for (body, status, needle) in cases {
        let answer = post(&url, body, &[]).await;
        let error = answer.error(status);
        assert!(error.to_string().contains(needle), "{body}: {error}");
    }
    let big = format!(
        r#"{{"model":"mock/echo","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(2000)
    );
    post(&url, &big, &[])
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE);
    get(&format!("{}/v1/chat/completions", gw.url()), &[])
        .await
        .error(StatusCode::METHOD_NOT_ALLOWED);
    get(&format!("{}/v2/whatever", gw.url()), &[])
        .await
        .error(StatusCode::NOT_FOUND);
    post(&format!("{}/v1/models", gw.url()), "{}", &[])
        .await
        .error(StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn an_oversized_chunked_body_is_refused_without_reading_it_all() {
    let gw = gateway("providers: { mock: { kind: mock } }\nserver: { max_body_bytes: 1024 }").await;
    let mut socket = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    socket
        .write_all(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n",
        )
        .await
        .unwrap();
    // 2 KiB in chunks, then nothing more: the gateway must answer without the end of the body.
    for _ in 0..4 {
        socket.write_all(b"200\r\n").await.unwrap();
        socket.write_all(&[b' '; 512]).await.unwrap();
        socket.write_all(b"\r\n").await.unwrap();
    }
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("request_too_large"), "{text}");
}

#[tokio::test]
async fn keys_are_required_when_configured() {
    let gw = gateway(
        "master_key: sk-master-123\nkeys: [{ name: team-a, key: sk-team-a }]\nproviders: { mock: { kind: mock, models: [echo] } }",
    )
    .await;
    let url = format!("{}/v1/chat/completions", gw.url());
    let body = chat_body("mock/echo", "x", false);
    let missing = post(&url, &body, &[]).await.error(StatusCode::UNAUTHORIZED);
    assert_eq!(missing["code"], "invalid_api_key");
    let wrong = post(&url, &body, &[("authorization", "Bearer sk-master-12")])
        .await
        .error(StatusCode::UNAUTHORIZED);
    assert!(
        !wrong.to_string().contains("sk-master-12"),
        "the presented key is not echoed"
    );
    assert_eq!(
        post(&url, &body, &[("authorization", "Bearer sk-master-123")])
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        post(&url, &body, &[("x-api-key", "sk-team-a")])
            .await
            .status,
        StatusCode::OK
    );
    get(&format!("{}/v1/models", gw.url()), &[])
        .await
        .error(StatusCode::UNAUTHORIZED);
    assert_eq!(
        get(
            &format!("{}/v1/models", gw.url()),
            &[("x-api-key", "sk-team-a")]
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        get(&format!("{}/health", gw.url()), &[]).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn upstream_failures_keep_their_status_and_message() {
    let (upstream, _mock) = mock_upstream().await;
    let gw = gateway(&config_for(
        &upstream,
        "upstream: { first_byte_timeout: 300ms }",
    ))
    .await;
    let url = format!("{}/v1/chat/completions", gw.url());

    let limited = post(&url, &chat_body("up/echo?status=429", "x", false), &[]).await;
    let error = limited.error(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error["type"], "rate_limit_error");
    assert_eq!(error["code"], "mock_error");
    assert!(error["message"].as_str().unwrap().contains("status 429"));
    assert_eq!(limited.headers["retry-after"], "1");

    post(&url, &chat_body("up/echo?status=500", "x", true), &[])
        .await
        .error(StatusCode::INTERNAL_SERVER_ERROR);
    post(&url, &chat_body("up/echo?status=400", "x", false), &[])
        .await
        .error(StatusCode::BAD_REQUEST);

    let timeout = post(&url, &chat_body("up/echo?delay=3s", "x", false), &[])
        .await
        .error(StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(timeout["code"], "upstream_timeout");
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_502() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gw = gateway(&format!(
        "providers: {{ down: {{ kind: openai, api_base: 'http://127.0.0.1:{port}/v1' }} }}"
    ))
    .await;
    let answer = post(
        &format!("{}/v1/chat/completions", gw.url()),
        &chat_body("down/m", "x", false),
        &[],
    )
    .await;
    let error = answer.error(StatusCode::BAD_GATEWAY);
    assert_eq!(error["code"], "upstream_unreachable");
    assert!(
        error["message"].as_str().unwrap().contains("down"),
        "{error}"
    );
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (upstream, _mock) = mock_upstream().await;
    let gw = gateway(&format!(
        "providers:\n  lite: {{ kind: litellm, api_base: '{}' }}\n  gone: {{ kind: litellm, api_base: 'http://127.0.0.1:{port}' }}\n  mock: {{ kind: mock }}",
        upstream.url()
    ))
    .await;
    assert_eq!(
        get(&format!("{}/health", gw.url()), &[]).await.json()["status"],
        "ok"
    );
    let ready = get(&format!("{}/health/readiness", gw.url()), &[]).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    let value = ready.json();
    assert_eq!(value["providers"]["lite"]["status"], "ok");
    assert_eq!(value["providers"]["mock"]["status"], "ok");
    assert_eq!(value["providers"]["gone"]["status"], "unavailable");

    post(
        &format!("{}/v1/chat/completions", gw.url()),
        &chat_body("mock/metrics-probe", "x", false),
        &[],
    )
    .await;
    let metrics = get(&format!("{}/metrics", gw.url()), &[]).await;
    assert!(metrics.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = metrics.text();
    assert!(
        text.contains(
            r#"llm_tower_upstream_requests_total{provider="mock",model="metrics-probe"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"llm_tower_upstream_response_seconds_bucket{provider="mock",model="metrics-probe",le="+Inf"} 1"#));
    assert!(text
        .contains(r#"llm_tower_http_requests_total{route="/v1/chat/completions",status="200"}"#));
}

#[tokio::test]
async fn h2c_clients_are_served() {
    let gw = gateway("providers: { mock: { kind: mock } }").await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let response = client
        .request(request(
            &format!("{}/v1/chat/completions", gw.url()),
            chat_body("mock/echo", "h2", false),
            &[],
        ))
        .await
        .unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("You said: h2"));
}

#[tokio::test]
async fn a_client_too_slow_to_send_its_headers_is_disconnected() {
    let gw = gateway("providers: { mock: { kind: mock } }\nserver: { header_read_timeout: 300ms }")
        .await;
    let mut socket = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    socket
        .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue, // a 408 may precede the close
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the connection is closed after the header read timeout"
    );
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_stream_finish_and_refuses_new_connections() {
    let config = "providers: { mock: { kind: mock } }\nserver: { shutdown_grace_period: 10s }";
    let mut gw = gateway(config).await;
    let url = format!("{}/v1/chat/completions", gw.url());
    let response = client()
        .request(request(
            &url,
            chat_body("mock/echo?chunk_delay=100ms", "a b c d", true),
            &[],
        ))
        .await
        .unwrap();
    let stopped = gw.shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        tokio::net::TcpStream::connect(gw.addr).await.is_err(),
        "no new connections after shutdown"
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let events = sse_data(&String::from_utf8_lossy(&body));
    assert_eq!(events.last().unwrap(), "[DONE]", "the stream finished");
    tokio::time::timeout(Duration::from_secs(5), stopped)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn metrics_need_the_master_key_when_keys_exist_unless_opened() {
    let providers = "providers: { mock: { kind: mock } }\n";
    // Named keys only: no one can be the master, and the answer says how to fix it.
    let gw = gateway(&format!("{providers}keys: [{{ name: a, key: sk-a }}]\n")).await;
    let url = format!("{}/metrics", gw.url());
    let answer = get(&url, &[("authorization", "Bearer sk-a")]).await;
    let error = answer.error(StatusCode::FORBIDDEN);
    assert!(
        error["message"].as_str().unwrap().contains("master_key"),
        "{error}"
    );
    // Opened on purpose (a scraper on a private network).
    let gw = gateway(&format!(
        "{providers}keys: [{{ name: a, key: sk-a }}]\nmetrics: {{ auth: none }}\n"
    ))
    .await;
    assert_eq!(
        get(&format!("{}/metrics", gw.url()), &[]).await.status,
        StatusCode::OK
    );
    // No keys: the gateway is open, and so are its metrics.
    let gw = gateway(providers).await;
    assert_eq!(
        get(&format!("{}/metrics", gw.url()), &[]).await.status,
        StatusCode::OK
    );
    let bad = llm_tower::Config::from_yaml(&format!("{providers}metrics: {{ auth: anyone }}"))
        .unwrap_err();
    assert!(bad.to_string().contains("metrics"), "{bad}");
}
