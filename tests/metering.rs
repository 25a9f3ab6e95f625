//! Usage metering end to end: requests over real HTTP through the gateway to the project's
//! mock upstream (whose usage counts words), records read back from the real ledgers.
//! The PostgreSQL test is `#[ignore]`d in a plain `cargo test`; with `--include-ignored` (as
//! `.ci/run` runs it) it needs `DATABASE_URL` and fails if PostgreSQL is down.

mod support;

use std::time::Duration;

use http::StatusCode;
use http_body_util::BodyExt;
use serde_json::Value;
use support::*;

const MASTER: &str = "sk-metering-master";

fn ledger_path() -> TempPath {
    TempPath::new("llm-tower-usage", "db")
}

/// The SQLite ledger's rows for `key`, once `count` of them have been written.
async fn rows(path: &std::path::Path, key: &str, count: usize) -> Vec<Value> {
    for _ in 0..100 {
        let found = {
            let conn = rusqlite::Connection::open(path).unwrap();
            let mut select = conn
                .prepare(
                    "SELECT request_id, requested_model, route, provider, upstream_model, status, outcome, stream, \
                     prompt_tokens, completion_tokens, cost_usd, ttft_ms, attempts, replay, error_type, usage_source, latency_ms, cache \
                     FROM llm_usage WHERE key_name = ?1 ORDER BY id",
                )
                .unwrap();
            select
                .query_map([key], |r| {
                    Ok(serde_json::json!({
                        "request_id": r.get::<_, String>(0)?,
                        "requested_model": r.get::<_, String>(1)?,
                        "route": r.get::<_, Option<String>>(2)?,
                        "provider": r.get::<_, Option<String>>(3)?,
                        "upstream_model": r.get::<_, Option<String>>(4)?,
                        "status": r.get::<_, i64>(5)?,
                        "outcome": r.get::<_, String>(6)?,
                        "stream": r.get::<_, bool>(7)?,
                        "prompt_tokens": r.get::<_, i64>(8)?,
                        "completion_tokens": r.get::<_, i64>(9)?,
                        "cost_usd": r.get::<_, Option<f64>>(10)?,
                        "ttft_ms": r.get::<_, Option<f64>>(11)?,
                        "attempts": r.get::<_, i64>(12)?,
                        "replay": r.get::<_, bool>(13)?,
                        "error_type": r.get::<_, Option<String>>(14)?,
                        "usage_source": r.get::<_, String>(15)?,
                        "latency_ms": r.get::<_, f64>(16)?,
                        "cache": r.get::<_, Option<String>>(17)?,
                    }))
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .unwrap_or_default()
        };
        if found.len() >= count {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "fewer than {count} usage records for {key} in {}",
        path.display()
    );
}

struct Setup {
    gw: Running,
    upstream: Running,
    ledger: TempPath,
    key: String,
    secret: String,
}

impl Setup {
    async fn new(extra: &str) -> Self {
        let (upstream, _mock) = mock_upstream().await;
        let ledger = ledger_path();
        let key = unique("team");
        let secret = unique("sk");
        let yaml = config_for(
            &upstream,
            &format!(
                "master_key: {MASTER}\nkeys: [{{ name: {key}, key: {secret} }}]\nmetering: {{ sqlite_path: '{}' }}\n{extra}",
                ledger.display()
            ),
        );
        Self {
            gw: gateway(&yaml).await,
            upstream,
            ledger,
            key,
            secret,
        }
    }

    async fn chat(&self, body: &str) -> Answer {
        post(
            &format!("{}/v1/chat/completions", self.gw.url()),
            body,
            &[("authorization", &format!("Bearer {}", self.secret))],
        )
        .await
    }

    async fn rows(&self, count: usize) -> Vec<Value> {
        rows(&self.ledger, &self.key, count).await
    }
}

/// The mock's answers differ only in their id and timestamp from call to call.
fn normalized(body: &str) -> String {
    let mut out = String::new();
    for part in body.split("\"id\":\"chatcmpl-mock-") {
        if out.is_empty() && !body.starts_with("\"id\"") {
            out.push_str(part);
            continue;
        }
        out.push_str("\"id\":\"X");
        out.push_str(part.trim_start_matches(|c: char| c.is_ascii_digit()));
    }
    let mut result = String::new();
    for (i, part) in out.split("\"created\":").enumerate() {
        if i > 0 {
            result.push_str("\"created\":0");
            result.push_str(part.trim_start_matches(|c: char| c.is_ascii_digit()));
        } else {
            result.push_str(part);
        }
    }
    result
}

#[tokio::test]
async fn json_and_streamed_usage_is_recorded_exactly() {
    let s = Setup::new("").await;
    let answer = s.chat(&chat_body("up/echo", "one two three", false)).await;
    assert_eq!(answer.status, StatusCode::OK);
    let stream_with_usage = serde_json::json!({
        "model": "up/echo", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "four five"}],
    })
    .to_string();
    let answer = s.chat(&stream_with_usage).await;
    let text = answer.text();
    assert!(
        text.contains("\"choices\":[]") && text.contains("\"usage\":{"),
        "the client asked for it: {text}"
    );

    let rows = s.rows(2).await;
    let json = &rows[0];
    assert_eq!(json["requested_model"], "up/echo");
    assert_eq!(
        (json["provider"].as_str(), json["upstream_model"].as_str()),
        (Some("up"), Some("echo"))
    );
    // The mock counts words: 3 prompt, "You said: one two three" = 5 completion.
    assert_eq!(
        (
            json["prompt_tokens"].as_i64(),
            json["completion_tokens"].as_i64()
        ),
        (Some(3), Some(5))
    );
    assert_eq!(json["usage_source"], "upstream");
    assert_eq!(
        (json["status"].as_i64(), json["outcome"].as_str()),
        (Some(200), Some("ok"))
    );
    assert!(json["request_id"].as_str().unwrap().starts_with("req_"));
    let stream = &rows[1];
    assert_eq!(stream["stream"], true);
    assert_eq!(
        (
            stream["prompt_tokens"].as_i64(),
            stream["completion_tokens"].as_i64()
        ),
        (Some(2), Some(4))
    );
    assert!(stream["ttft_ms"].as_f64().unwrap() <= stream["latency_ms"].as_f64().unwrap());
}

#[tokio::test]
async fn a_stream_without_include_usage_is_metered_and_the_client_sees_exactly_what_it_asked_for() {
    let s = Setup::new("").await;
    let through = s.chat(&chat_body("up/echo?words=6", "hello", true)).await;
    let direct = post(
        &format!("{}/v1/chat/completions", s.upstream.url()),
        &chat_body("echo?words=6", "hello", true),
        &[],
    )
    .await;
    assert!(!through.text().contains("\"usage\""), "{}", through.text());
    assert!(
        through.text().ends_with("data: [DONE]\n\n")
            && through.text().matches("data: ").count() == 9
    );
    assert_eq!(normalized(&through.text()), normalized(&direct.text()));
    let rows = s.rows(1).await;
    assert_eq!(
        rows[0]["usage_source"], "upstream",
        "the gateway asked for the usage chunk"
    );
    assert_eq!(
        (
            rows[0]["prompt_tokens"].as_i64(),
            rows[0]["completion_tokens"].as_i64()
        ),
        (Some(1), Some(6))
    );
}

#[tokio::test]
async fn a_cancelled_stream_records_what_was_streamed_estimated() {
    let s = Setup::new("").await;
    let req = request(
        &format!("{}/v1/chat/completions", s.gw.url()),
        chat_body("up/echo?words=50&chunk_delay=50ms", "hi", true),
        &[("authorization", &format!("Bearer {}", s.secret))],
    );
    let mut body = client().request(req).await.unwrap().into_body();
    let mut events = 0;
    while events < 4 {
        let frame = body.frame().await.unwrap().unwrap();
        events += frame
            .into_data()
            .unwrap()
            .windows(6)
            .filter(|w| w == b"data: ")
            .count();
    }
    drop(body);
    let rows = s.rows(1).await;
    let row = &rows[0];
    assert_eq!(row["outcome"], "cancelled");
    assert_eq!(row["usage_source"], "estimated");
    let completion = row["completion_tokens"].as_i64().unwrap();
    // Words "w0".."w49" are 2 tokens each for o200k; 3 to 8 of them arrived.
    assert!((4..=20).contains(&completion), "{completion}");
}

#[tokio::test]
async fn usage_is_estimated_with_the_tokenizer_when_the_upstream_reports_none() {
    let s = Setup::new("").await;
    let prompt = "Tokenizers split unusual words like antidisestablishmentarianism.";
    s.chat(&chat_body("up/echo?usage=false", prompt, false))
        .await;
    s.chat(&chat_body("up/echo?usage=false", prompt, true))
        .await;
    let encoder = tiktoken_rs::o200k_base_singleton();
    let expected_prompt = encoder.encode_ordinary(&format!("{prompt}\n")).len() as i64;
    let expected_completion = encoder
        .encode_ordinary(&format!("You said: {prompt}"))
        .len() as i64;
    for row in s.rows(2).await {
        assert_eq!(row["usage_source"], "estimated");
        // Within one token of the tokenizer's count of the text (message framing aside).
        assert!(
            (row["prompt_tokens"].as_i64().unwrap() - expected_prompt).abs() <= 1,
            "{row}"
        );
        assert!(
            (row["completion_tokens"].as_i64().unwrap() - expected_completion).abs() <= 1,
            "{row}"
        );
    }
}

#[tokio::test]
async fn cache_hits_are_metered_with_their_tokens_at_no_cost() {
    let s = Setup::new(
        "aliases: { gpt-4o-mini: up/gpt-4o-mini }\ncache: { enabled: true, semantic: { enabled: true } }",
    )
    .await;
    let text = unique("cache me");
    let first = s.chat(&chat_body("gpt-4o-mini", &text, false)).await;
    assert_eq!(first.headers["x-gateway-cache"], "miss");
    let hit = s.chat(&chat_body("gpt-4o-mini", &text, false)).await;
    assert_eq!(hit.headers["x-gateway-cache"], "hit");
    let streamed = s.chat(&chat_body("gpt-4o-mini", &text, true)).await;
    assert_eq!(streamed.headers["x-gateway-cache"], "hit");
    assert!(
        !streamed.text().contains("\"usage\""),
        "no usage chunk the client did not ask for: {}",
        streamed.text()
    );
    let reworded = s
        .chat(&chat_body("gpt-4o-mini", &text.to_uppercase(), false))
        .await;
    assert_eq!(reworded.headers["x-gateway-cache"], "semantic-hit");
    let rows = s.rows(4).await;
    let tokens = |r: &Value| (r["prompt_tokens"].as_i64(), r["completion_tokens"].as_i64());
    assert!(rows[0]["cost_usd"].as_f64().unwrap() > 0.0, "{}", rows[0]);
    assert_eq!(rows[0]["cache"], "miss");
    for (row, verdict) in rows[1..].iter().zip(["hit", "hit", "semantic-hit"]) {
        assert_eq!(row["cache"], verdict, "{row}");
        assert_eq!(
            tokens(row),
            tokens(&rows[0]),
            "the cached answer's usage: {row}"
        );
        assert_eq!(
            (row["cost_usd"].as_f64(), row["attempts"].as_i64()),
            (Some(0.0), Some(0)),
            "{row}"
        );
        assert_eq!(row["usage_source"], "upstream");
        assert_eq!(row["provider"], "up");
    }
    assert_eq!(rows[2]["stream"], true);
}

#[tokio::test]
async fn errors_replays_and_prices_are_recorded_and_reported() {
    let s = Setup::new("aliases: { gpt-4o-mini: up/gpt-4o-mini }").await;
    s.chat(&chat_body("up/echo?status=429", "x", false)).await;
    let body = chat_body("gpt-4o-mini", "price me", false);
    let key = unique("idem");
    for _ in 0..2 {
        post(
            &format!("{}/v1/chat/completions", s.gw.url()),
            &body,
            &[
                ("authorization", &format!("Bearer {}", s.secret)),
                ("idempotency-key", &key),
            ],
        )
        .await;
    }
    let rows = s.rows(3).await;
    assert_eq!(
        (rows[0]["status"].as_i64(), rows[0]["outcome"].as_str()),
        (Some(429), Some("error"))
    );
    assert_eq!(rows[0]["error_type"], "rate_limit_error");
    let priced = &rows[1];
    assert_eq!(priced["route"], "up/gpt-4o-mini", "the alias target");
    assert_eq!(priced["requested_model"], "gpt-4o-mini");
    // 2 prompt words, "You said: price me" = 4 completion; gpt-4o-mini at $0.15 / $0.60 per M.
    let expected = (2.0 * 0.15 + 4.0 * 0.60) / 1e6;
    assert!(
        (priced["cost_usd"].as_f64().unwrap() - expected).abs() < 1e-12,
        "{priced}"
    );
    let replay = &rows[2];
    assert_eq!(
        (
            replay["replay"].as_bool(),
            replay["cost_usd"].as_f64(),
            replay["attempts"].as_i64()
        ),
        (Some(true), Some(0.0), Some(0))
    );

    // The report, for the master key only.
    let url = format!("{}/v1/usage?group_by=model&from=0", s.gw.url());
    get(&url, &[("authorization", &format!("Bearer {}", s.secret))])
        .await
        .error(StatusCode::FORBIDDEN);
    let report = get(&url, &[("authorization", &format!("Bearer {MASTER}"))]).await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.text());
    let report = report.json();
    let group = |name: &str| {
        report["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["group"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} in {report}"))
    };
    let mini = group("gpt-4o-mini");
    assert_eq!(
        (mini["requests"].as_i64(), mini["cache_hit_rate"].as_f64()),
        (Some(2), Some(0.5))
    );
    assert_eq!(mini["prompt_tokens"], 4);
    assert_eq!(group("up/echo?status=429")["error_rate"], 1.0);
    get(
        &format!("{}/v1/usage?group_by=colour", s.gw.url()),
        &[("authorization", &format!("Bearer {MASTER}"))],
    )
    .await
    .error(StatusCode::BAD_REQUEST);

    // Metrics name keys and models: the master key's (keys are configured).
    let scrape = format!("{}/metrics", s.gw.url());
    assert_eq!(get(&scrape, &[]).await.status, StatusCode::UNAUTHORIZED);
    let other = get(
        &scrape,
        &[("authorization", &format!("Bearer {}", s.secret))],
    )
    .await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    let metrics = get(&scrape, &[("authorization", &format!("Bearer {MASTER}"))])
        .await
        .text();
    assert!(
        metrics.contains("llm_tower_usage_tokens_total{"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("key=\"{}\"", s.key)),
        "per key name"
    );
}

#[tokio::test]
async fn the_sqlite_ledger_survives_a_restart() {
    let ledger = ledger_path();
    let (upstream, _mock) = mock_upstream().await;
    let yaml = config_for(
        &upstream,
        &format!(
            "master_key: {MASTER}\nmetering: {{ sqlite_path: '{}' }}",
            ledger.display()
        ),
    );
    {
        let gw = gateway(&yaml).await;
        post(
            &format!("{}/v1/chat/completions", gw.url()),
            &chat_body("up/echo", "before restart", false),
            &[("authorization", &format!("Bearer {MASTER}"))],
        )
        .await;
        rows(&ledger, "master", 1).await;
    }
    let gw = gateway(&yaml).await;
    let report = get(
        &format!("{}/v1/usage?from=0&group_by=key", gw.url()),
        &[("authorization", &format!("Bearer {MASTER}"))],
    )
    .await
    .json();
    assert_eq!(report["data"][0]["group"], "master");
    assert_eq!(report["data"][0]["requests"], 1);
    assert_eq!(report["data"][0]["prompt_tokens"], 2);
}

#[tokio::test]
async fn a_ledger_that_is_down_never_fails_or_slows_requests_and_drops_are_counted() {
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let (upstream, _mock) = mock_upstream().await;
    let gw = gateway(&config_for(
        &upstream,
        &format!("metering: {{ sink: postgres, postgres_url: 'postgres://nobody@{dead}/none' }}"),
    ))
    .await;
    let started = std::time::Instant::now();
    for _ in 0..5 {
        let answer = post(
            &format!("{}/v1/chat/completions", gw.url()),
            &chat_body("up/echo", "hi", false),
            &[],
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    for _ in 0..100 {
        let metrics = get(&format!("{}/metrics", gw.url()), &[]).await.text();
        let dropped = metrics
            .lines()
            .find(|l| l.starts_with("llm_tower_usage_records_dropped_total"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0);
        if dropped >= 5.0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the drop counter never said what was lost");
}

#[tokio::test]
#[ignore = "needs PostgreSQL at DATABASE_URL: .ci/run starts it"]
async fn the_postgres_ledger_records_and_reports() {
    let url = needs("DATABASE_URL");
    let (upstream, _mock) = mock_upstream().await;
    let key = unique("pg-team");
    let yaml = config_for(
        &upstream,
        &format!("master_key: {MASTER}\nkeys: [{{ name: {key}, key: sk-{key} }}]\nmetering: {{ sink: postgres, postgres_url: '{url}' }}"),
    );
    let gw = gateway(&yaml).await;
    for text in ["one", "one two"] {
        let answer = post(
            &format!("{}/v1/chat/completions", gw.url()),
            &chat_body("up/echo", text, false),
            &[("authorization", &format!("Bearer sk-{key}"))],
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL at DATABASE_URL");
    tokio::spawn(connection);
    let mut count = 0;
    for _ in 0..100 {
        count = client
            .query_one(
                "SELECT count(*) FROM llm_usage WHERE key_name = $1",
                &[&key],
            )
            .await
            .map(|r| r.get::<_, i64>(0))
            .unwrap_or(0);
        if count == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(count, 2);
    let sum: i64 = client
        .query_one(
            "SELECT sum(prompt_tokens)::bigint FROM llm_usage WHERE key_name = $1",
            &[&key],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(sum, 3);
    // A second gateway instance on the same ledger reports what the first wrote.
    let other = gateway(&yaml).await;
    let report = get(
        &format!("{}/v1/usage?from=0&group_by=key", other.url()),
        &[("authorization", &format!("Bearer {MASTER}"))],
    )
    .await
    .json();
    let mine = report["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == key.as_str())
        .expect("our key")
        .clone();
    assert_eq!(
        (mine["requests"].as_i64(), mine["prompt_tokens"].as_i64()),
        (Some(2), Some(3))
    );
}

#[tokio::test]
async fn a_stream_that_breaks_midway_is_recorded_as_an_error() {
    let s = Setup::new("").await;
    // The upstream drops the connection after 2 events; the client gets an SSE error event.
    let answer = post(
        &format!("{}/v1/chat/completions", s.gw.url()),
        &chat_body("up/echo?cut=2&chunk_delay=10ms", "a b c d", true),
        &[("authorization", &format!("Bearer {}", s.secret))],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.text().contains("event: error"), "{}", answer.text());
    let rows = s.rows(1).await;
    assert_eq!(rows[0]["status"].as_i64(), Some(200));
    assert_eq!(
        (rows[0]["outcome"].as_str(), rows[0]["error_type"].as_str()),
        (Some("upstream_error"), Some("upstream_error")),
        "{:?}",
        rows[0]
    );
}

#[tokio::test]
async fn the_usage_report_includes_the_request_just_served() {
    let s = Setup::new("").await;
    let answer = post(
        &format!("{}/v1/chat/completions", s.gw.url()),
        &chat_body("up/echo", "just now", false),
        &[("authorization", &format!("Bearer {}", s.secret))],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    // At once: the report flushes the writer's batch before it reads.
    let report = get(
        &format!("{}/v1/usage?from=0&group_by=model", s.gw.url()),
        &[("authorization", &format!("Bearer {MASTER}"))],
    )
    .await
    .json();
    assert_eq!(report["data"][0]["requests"], 1, "{report}");
}

#[tokio::test]
async fn usage_comes_by_target_and_minute_and_as_the_newest_records_filtered() {
    let s = Setup::new("").await;
    let master = format!("Bearer {MASTER}");
    for model in ["up/echo", "mock/echo", "up/echo", "up/echo?status=500"] {
        s.chat(&chat_body(model, "three small words", model == "mock/echo"))
            .await;
    }
    let report = get(
        &format!("{}/v1/usage?from=0&group_by=target", s.gw.url()),
        &[("authorization", &master)],
    )
    .await
    .json();
    let groups: Vec<(&str, i64)> = report["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["group"].as_str().unwrap(),
                g["requests"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        [("mock/echo", 1), ("up/echo", 2), ("up/echo?status=500", 1)]
    );
    let mock = &report["data"][0];
    assert!(
        mock["ttft_ms_p50"].as_f64().is_some(),
        "a stream has a TTFT: {mock}"
    );
    let minutes = get(
        &format!("{}/v1/usage?from=0&group_by=minute", s.gw.url()),
        &[("authorization", &master)],
    )
    .await
    .json();
    let minute = minutes["data"][0]["group"].as_str().unwrap();
    assert!(minute.ends_with(":00Z") && minute.len() == 20, "{minute}");
    let all = get(
        &format!("{}/v1/usage?from=0&group_by=all", s.gw.url()),
        &[("authorization", &master)],
    )
    .await
    .json();
    assert_eq!(all["data"][0]["group"], "all");
    assert_eq!(all["data"][0]["requests"], 4);

    let url = format!("{}/v1/usage/records?provider=up&limit=2", s.gw.url());
    let records = get(&url, &[("authorization", &master)]).await.json();
    let data = records["data"].as_array().unwrap();
    assert_eq!(data.len(), 2, "{records}");
    assert_eq!(
        data[0]["requested_model"], "up/echo?status=500",
        "newest first"
    );
    assert_eq!(data[0]["status"], 500);
    assert_eq!(data[1]["requested_model"], "up/echo");
    assert_eq!(data[0]["key"], s.key);
    let errors = get(
        &format!("{}/v1/usage/records?status=500", s.gw.url()),
        &[("authorization", &master)],
    )
    .await
    .json();
    assert_eq!(errors["data"].as_array().unwrap().len(), 1);
    get(
        &format!("{}/v1/usage/records?limit=0", s.gw.url()),
        &[("authorization", &master)],
    )
    .await
    .error(StatusCode::BAD_REQUEST);
    get(&url, &[("authorization", &format!("Bearer {}", s.secret))])
        .await
        .error(StatusCode::FORBIDDEN);
}
