//! Virtual keys (issue 15), over real HTTP with a real SQLite ledger: LiteLLM's key and team
//! API, model access, rate limits, budgets, revocation across two instances, keys at rest.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;

/// A gateway with a master key, the mock upstream (`up/echo`, priced at $1 a token), an
/// alias and a combo, and its keys in a SQLite file.
struct Tenants {
    gw: Running,
    ledger: TempPath,
    _prices: TempPath,
    _upstream: Running,
}

const MASTER: &str = "sk-master";

fn yaml(upstream: &Running, ledger: &TempPath, prices: &TempPath, extra: &str) -> String {
    tenancy_yaml(upstream, ledger, prices, extra, "")
}

/// The same, with more `tenancy:` settings (`, name: value`).
fn tenancy_yaml(
    upstream: &Running,
    ledger: &TempPath,
    prices: &TempPath,
    extra: &str,
    tenancy: &str,
) -> String {
    config_for(
        upstream,
        &format!(
            "master_key: {MASTER}\naliases: {{ fast: up/echo }}\ncombos: {{ both: {{ targets: [up/echo, mock/echo] }} }}\nmetering: {{ sqlite_path: '{}', prices: '{}' }}\ntenancy: {{ refresh: 100ms, window: 2s{tenancy} }}\n{extra}",
            ledger.display(),
            prices.display()
        ),
    )
}

impl Tenants {
    async fn new(extra: &str) -> Self {
        Self::with(extra, "").await
    }

    async fn with(extra: &str, tenancy: &str) -> Self {
        let (upstream, _) = mock_upstream().await;
        let ledger = TempPath::new("llm-tower-tenancy", "db");
        let prices = TempPath::new("llm-tower-prices", "yaml");
        std::fs::write(&prices, "echo: { input: 1000000, output: 1000000 }\n").unwrap();
        let gw = gateway(&tenancy_yaml(&upstream, &ledger, &prices, extra, tenancy)).await;
        Self {
            gw,
            ledger,
            _prices: prices,
            _upstream: upstream,
        }
    }

    async fn admin(&self, path: &str, body: Value) -> Answer {
        admin(&self.gw.url(), path, body).await
    }

    async fn key(&self, body: Value) -> String {
        generate(&self.gw.url(), body).await
    }

    async fn chat(&self, key: &str, model: &str) -> Answer {
        chat(&self.gw.url(), key, model, false).await
    }
}

async fn admin(base: &str, path: &str, body: Value) -> Answer {
    let auth = format!("Bearer {MASTER}");
    if let Some(query) = path.strip_prefix("GET ") {
        return get(&format!("{base}{query}"), &[("authorization", &auth)]).await;
    }
    post(
        &format!("{base}{path}"),
        &body.to_string(),
        &[("authorization", &auth)],
    )
    .await
}

/// A new key's secret, made on `base` with `body`.
async fn generate(base: &str, body: Value) -> String {
    let answer = admin(base, "/key/generate", body).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["key"].as_str().unwrap().to_owned()
}

async fn chat(base: &str, key: &str, model: &str, stream: bool) -> Answer {
    let auth = format!("Bearer {key}");
    post(
        &format!("{base}/v1/chat/completions"),
        &chat_body(model, "hello there", stream),
        &[("authorization", &auth)],
    )
    .await
}

#[tokio::test]
async fn generate_answers_with_litellm_s_fields_and_the_key_works_once_shown() {
    let t = Tenants::new("").await;
    let request = json!({
        "key_alias": "my-app", "models": ["up/*", "fast"], "max_budget": 10.0,
        "budget_duration": "30d", "rpm_limit": 60, "tpm_limit": 100000,
        "max_parallel_requests": 2, "duration": "1h", "metadata": {"app": "x"},
        "team_id": "team-1", "user_id": "u-1",
    });
    let answer = t.admin("/key/generate", request.clone()).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let key = answer.json();
    let secret = key["key"].as_str().unwrap();
    assert!(secret.starts_with("sk-") && secret.len() > 20, "{key}");
    for field in [
        "key_alias",
        "models",
        "max_budget",
        "budget_duration",
        "rpm_limit",
        "tpm_limit",
        "max_parallel_requests",
        "metadata",
        "team_id",
        "user_id",
    ] {
        assert_eq!(key[field], request[field], "{field}: {key}");
    }
    let token = llm_tower::tenancy::hash_key(secret);
    assert_eq!(key["token"], token);
    assert_eq!(key["token_id"], token);
    assert_eq!(
        key["key_name"],
        format!("sk-...{}", &secret[secret.len() - 4..])
    );
    assert_eq!(key["spend"], 0.0);
    assert_eq!(key["blocked"], false);
    assert!(key["expires"].as_str().unwrap().ends_with('Z'), "{key}");
    assert!(key["created_at"].is_string());

    let answer = t.chat(secret, "up/echo").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.headers["x-ratelimit-limit-requests"], "60");
    assert_eq!(answer.headers["x-ratelimit-remaining-requests"], "59");
    assert!(answer.headers.contains_key("x-ratelimit-reset-requests"));
    assert_eq!(answer.headers["x-ratelimit-limit-tokens"], "100000");

    // The ledger names the key by its alias and records its team; the spend reaches the
    // key (6 tokens at $1).
    let rows = ledger_keys(&t.ledger, 1).await;
    assert_eq!(rows[0], ("my-app".to_owned(), Some("team-1".to_owned())));
    let info = wait_for(|| async {
        let info = t
            .admin(&format!("GET /key/info?key={secret}"), json!({}))
            .await
            .json();
        (info["info"]["spend"] == 6.0).then_some(info)
    })
    .await;
    assert_eq!(info["key"], secret);
    assert_eq!(info["info"]["status"], "active");
    assert!(info["info"].get("token").is_none(), "{info}");
    assert!(info["info"]["budget_reset_at"].is_string(), "{info}");

    // A wrong key is still a 401.
    let wrong = t.chat("sk-not-a-key-0000000000", "up/echo").await;
    assert_eq!(
        wrong.error(http::StatusCode::UNAUTHORIZED)["code"],
        "invalid_api_key"
    );
}

#[tokio::test]
async fn the_key_api_is_the_master_key_s_and_names_bad_fields() {
    let t = Tenants::new("").await;
    let key = t.key(json!({"key_alias": "taken"})).await;
    let as_key = post(
        &format!("{}/key/generate", t.gw.url()),
        "{}",
        &[("authorization", &format!("Bearer {key}"))],
    )
    .await;
    assert_eq!(as_key.status, 403, "{}", as_key.text());
    for (body, field) in [
        (json!({"rpm_limit": -1}), "rpm_limit"),
        (json!({"unknown_field": 1}), "unknown_field"),
        (json!({"budget_duration": "30x"}), "budget_duration"),
        (json!({"duration": "soon"}), "duration"),
        (json!({"max_budget": -5}), "max_budget"),
        (json!({"models": ["a*b*"]}), "models"),
        (json!({"key": "short"}), "key"),
        (json!({"key_alias": "taken"}), "key_alias"),
    ] {
        let answer = t.admin("/key/generate", body.clone()).await;
        let error = answer.error(http::StatusCode::BAD_REQUEST);
        assert!(
            error["param"] == field || error["message"].as_str().unwrap().contains(field),
            "{body}: {error}"
        );
    }
    let missing = t
        .admin(
            "/key/update",
            json!({"key": "sk-missing-0000000000", "rpm_limit": 1}),
        )
        .await;
    missing.error(http::StatusCode::NOT_FOUND);
    let malformed = post(
        &format!("{}/key/generate", t.gw.url()),
        "{not json",
        &[("authorization", &format!("Bearer {MASTER}"))],
    )
    .await;
    malformed.error(http::StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn models_restrict_direct_models_aliases_combos_wildcards_and_the_model_list() {
    let t = Tenants::new("").await;
    let key = t.key(json!({"models": ["up/*", "fast"]})).await;
    for model in ["up/echo", "fast"] {
        let answer = t.chat(&key, model).await;
        assert_eq!(answer.status, 200, "{model}: {}", answer.text());
    }
    for model in ["mock/echo", "both"] {
        let error = t
            .chat(&key, model)
            .await
            .error(http::StatusCode::UNAUTHORIZED);
        assert_eq!(error["type"], "key_model_access_denied", "{model}");
        assert!(
            error["message"].as_str().unwrap().contains(model),
            "{error}"
        );
    }
    let listed = get(
        &format!("{}/v1/models", t.gw.url()),
        &[("authorization", &format!("Bearer {key}"))],
    )
    .await
    .json();
    let ids: Vec<_> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["up/echo", "fast"]);
    // A team's list applies on top of the key's.
    assert_eq!(
        t.admin("/team/new", json!({"team_id": "t1", "models": ["fast"]}))
            .await
            .status,
        200
    );
    let team_key = t.key(json!({"team_id": "t1"})).await;
    assert_eq!(t.chat(&team_key, "fast").await.status, 200);
    let error = t
        .chat(&team_key, "up/echo")
        .await
        .error(http::StatusCode::UNAUTHORIZED);
    assert_eq!(error["type"], "team_model_access_denied");
}

#[tokio::test]
async fn rpm_limit_refuses_the_fourth_request_until_the_window_ends() {
    let t = Tenants::new("").await;
    let key = t.key(json!({"rpm_limit": 3})).await;
    // Four requests fit in one 2 s window.
    start_of_window(2000).await;
    for n in 1..=3 {
        let answer = t.chat(&key, "up/echo").await;
        assert_eq!(answer.status, 200, "request {n}: {}", answer.text());
        assert_eq!(
            answer.headers["x-ratelimit-remaining-requests"],
            (3 - n).to_string()
        );
    }
    let refused = t.chat(&key, "up/echo").await;
    let error = refused.error(http::StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error["type"], "throttling_error");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("Limit type: requests"),
        "{error}"
    );
    let retry: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    tokio::time::sleep(Duration::from_secs(retry)).await;
    assert_eq!(t.chat(&key, "up/echo").await.status, 200, "a new window");
    // The refusal is in the ledger.
    let rows = ledger_statuses(&t.ledger, 5).await;
    assert_eq!(rows.iter().filter(|s| **s == 429).count(), 1, "{rows:?}");
}

#[tokio::test]
async fn tpm_limit_counts_the_metered_tokens() {
    let t = Tenants::new("").await;
    // Each request: 2 prompt + 4 completion tokens (the mock counts words).
    let key = t.key(json!({"tpm_limit": 10})).await;
    start_of_window(2000).await;
    assert_eq!(t.chat(&key, "up/echo").await.status, 200);
    // The estimate reserved up front is replaced by the 6 metered tokens.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = t.chat(&key, "up/echo").await;
    assert_eq!(second.status, 200, "6 of 10 used: {}", second.text());
    assert_eq!(second.headers["x-ratelimit-limit-tokens"], "10");
    tokio::time::sleep(Duration::from_millis(400)).await;
    // 12 used: the next is refused.
    let refused = t.chat(&key, "up/echo").await;
    let error = refused.error(http::StatusCode::TOO_MANY_REQUESTS);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("Limit type: tokens"),
        "{error}"
    );
}

#[tokio::test]
async fn max_parallel_requests_holds_a_slot_for_as_long_as_a_stream_runs() {
    let t = Tenants::new("").await;
    let key = t.key(json!({"max_parallel_requests": 1})).await;
    let slow = tokio::spawn({
        let (base, key) = (t.gw.url(), key.clone());
        async move {
            let auth = format!("Bearer {key}");
            post(
                &format!("{base}/v1/chat/completions"),
                &chat_body("up/echo?chunk_delay=150ms", "one two three four five", true),
                &[("authorization", &auth)],
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = t.chat(&key, "up/echo").await;
    let error = refused.error(http::StatusCode::TOO_MANY_REQUESTS);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("max_parallel_requests"),
        "{error}"
    );
    assert!(refused.headers.contains_key("retry-after"));
    let stream = slow.await.unwrap();
    assert!(stream.text().contains("[DONE]"));
    assert_eq!(
        t.chat(&key, "up/echo").await.status,
        200,
        "the slot is back"
    );
}

#[tokio::test]
async fn a_budget_used_up_refuses_with_budget_exceeded_and_a_period_starts_again() {
    let t = Tenants::new("").await;
    // $6 a request: the first two pass (0, then 6 < 10), the third is over.
    let key = t
        .key(json!({"max_budget": 10.0, "key_alias": "budgeted"}))
        .await;
    assert_eq!(t.chat(&key, "up/echo").await.status, 200);
    wait_for(|| async {
        let info = t
            .admin(&format!("GET /key/info?key={key}"), json!({}))
            .await
            .json();
        (info["info"]["spend"] == 6.0).then_some(())
    })
    .await;
    assert_eq!(t.chat(&key, "up/echo").await.status, 200);
    wait_for(|| async {
        let info = t
            .admin(&format!("GET /key/info?key={key}"), json!({}))
            .await
            .json();
        (info["info"]["spend"] == 12.0).then_some(())
    })
    .await;
    let error = t
        .chat(&key, "up/echo")
        .await
        .error(http::StatusCode::BAD_REQUEST);
    assert_eq!(error["type"], "budget_exceeded");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("Key=budgeted")
            && message.contains("Current cost: 12")
            && message.contains("Max budget: 10"),
        "{message}"
    );
    // Refused requests cost nothing.
    let info = t
        .admin(&format!("GET /key/info?key={key}"), json!({}))
        .await
        .json();
    assert_eq!(info["info"]["spend"], 12.0);

    // A key with a 2 s budget period gets its budget back.
    let periodic = t
        .key(json!({"max_budget": 5.0, "budget_duration": "2s"}))
        .await;
    assert_eq!(t.chat(&periodic, "up/echo").await.status, 200);
    wait_for(|| async {
        let info = t
            .admin(&format!("GET /key/info?key={periodic}"), json!({}))
            .await
            .json();
        (info["info"]["spend"] == 6.0).then_some(())
    })
    .await;
    let refused = t.chat(&periodic, "up/echo").await;
    if refused.status == 200 {
        // The period ended between the two requests: the next one is the refusal.
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(t.chat(&periodic, "up/echo").await.status, 400);
    } else {
        refused.error(http::StatusCode::BAD_REQUEST);
    }
    let started = Instant::now();
    wait_for(|| async { (t.chat(&periodic, "up/echo").await.status == 200).then_some(()) }).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "reset on schedule"
    );
    let info = t
        .admin(&format!("GET /key/info?key={periodic}"), json!({}))
        .await
        .json();
    assert!(info["info"]["budget_reset_at"].is_string(), "{info}");
}

#[tokio::test]
async fn a_team_budget_and_rate_limit_apply_to_all_its_keys() {
    let t = Tenants::new("").await;
    let team = t
        .admin(
            "/team/new",
            json!({"team_alias": "ops", "rpm_limit": 2, "max_budget": 100.0}),
        )
        .await;
    assert_eq!(team.status, 200, "{}", team.text());
    let id = team.json()["team_id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "a uuid: {id}");
    let (a, b) = (
        t.key(json!({"team_id": id})).await,
        t.key(json!({"team_id": id})).await,
    );
    start_of_window(2000).await;
    assert_eq!(t.chat(&a, "up/echo").await.status, 200);
    assert_eq!(t.chat(&b, "up/echo").await.status, 200);
    let error = t
        .chat(&a, "up/echo")
        .await
        .error(http::StatusCode::TOO_MANY_REQUESTS);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains(&format!("team: {id}")),
        "{error}"
    );
    let info = wait_for(|| async {
        let info = t
            .admin(&format!("GET /team/info?team_id={id}"), json!({}))
            .await
            .json();
        (info["team_info"]["spend"] == 12.0).then_some(info)
    })
    .await;
    assert_eq!(info["keys"].as_array().unwrap().len(), 2);
    let updated = t
        .admin("/team/update", json!({"team_id": id, "max_budget": 12.0}))
        .await;
    assert_eq!(updated.json()["data"]["max_budget"], 12.0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let error = t
        .chat(&b, "up/echo")
        .await
        .error(http::StatusCode::BAD_REQUEST);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains(&format!("Team={id}")),
        "{error}"
    );
    // Deleting the team deletes its keys.
    let deleted = t.admin("/team/delete", json!({"team_ids": [id]})).await;
    assert_eq!(deleted.json()["deleted_teams"], json!([id]));
    t.chat(&a, "up/echo")
        .await
        .error(http::StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn blocked_and_deleted_keys_are_refused_on_another_instance_within_a_second() {
    // Two gateways sharing one SQLite file: what each knows comes from the store.
    let (upstream, _) = mock_upstream().await;
    let ledger = TempPath::new("llm-tower-tenancy", "db");
    let prices = TempPath::new("llm-tower-prices", "yaml");
    std::fs::write(&prices, "echo: { input: 1, output: 1 }\n").unwrap();
    let a = gateway(&yaml(&upstream, &ledger, &prices, "")).await;
    let b = gateway(&yaml(&upstream, &ledger, &prices, "")).await;
    let answer = admin(&a.url(), "/key/generate", json!({"key_alias": "shared"})).await;
    let key = answer.json()["key"].as_str().unwrap().to_owned();
    assert_eq!(
        chat(&b.url(), &key, "up/echo", false).await.status,
        200,
        "b finds a's key"
    );
    for (path, body, refused) in [
        ("/key/block", json!({"key": key}), true),
        ("/key/unblock", json!({"key": key}), false),
        ("/key/delete", json!({"key_aliases": ["shared"]}), true),
    ] {
        let answer = admin(&a.url(), path, body).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.text());
        let changed = Instant::now();
        loop {
            let status = chat(&b.url(), &key, "up/echo", false).await.status;
            if (status == 401) == refused {
                break;
            }
            assert!(
                changed.elapsed() < Duration::from_secs(1),
                "{path}: b still says {status}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let deleted = admin(&a.url(), "/key/delete", json!({"keys": [key]})).await;
    deleted.error(http::StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn expired_keys_are_refused_and_keys_are_listed_and_updated() {
    let t = Tenants::new("").await;
    let short = t.key(json!({"duration": "1s", "key_alias": "short"})).await;
    assert_eq!(t.chat(&short, "up/echo").await.status, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let error = t
        .chat(&short, "up/echo")
        .await
        .error(http::StatusCode::UNAUTHORIZED);
    assert_eq!(error["type"], "expired_key");
    let updated = t
        .admin(
            "/key/update",
            json!({"key_alias": "short", "duration": null, "rpm_limit": 7}),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text());
    assert_eq!(updated.json()["rpm_limit"], 7);
    assert_eq!(
        t.chat(&short, "up/echo").await.status,
        200,
        "no longer expires"
    );
    for n in 0..3 {
        t.key(json!({"key_alias": format!("k{n}"), "team_id": "listed"}))
            .await;
    }
    let page = t
        .admin("GET /key/list?team_id=listed&size=2&page=2", json!({}))
        .await
        .json();
    assert_eq!(
        (
            page["total_count"].as_u64(),
            page["current_page"].as_u64(),
            page["total_pages"].as_u64()
        ),
        (Some(3), Some(2), Some(2))
    );
    assert_eq!(page["keys"].as_array().unwrap().len(), 1);
    assert!(
        page["keys"][0].as_str().unwrap().len() == 64,
        "tokens: {page}"
    );
    let full = t
        .admin(
            "GET /key/list?key_alias=k1&return_full_object=true",
            json!({}),
        )
        .await
        .json();
    assert_eq!(full["keys"][0]["key_alias"], "k1");
}

#[tokio::test]
async fn the_database_holds_no_secret() {
    let t = Tenants::new("").await;
    let chosen = "sk-chosen-secret-1234567890";
    assert_eq!(
        t.key(json!({"key": chosen, "key_alias": "chosen"})).await,
        chosen
    );
    let generated = t.key(json!({})).await;
    assert_eq!(t.chat(chosen, "up/echo").await.status, 200);
    ledger_keys(&t.ledger, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut bytes = std::fs::read(&*t.ledger).unwrap();
    for suffix in ["-wal", "-shm"] {
        bytes.extend(std::fs::read(format!("{}{suffix}", t.ledger.display())).unwrap_or_default());
    }
    let text = String::from_utf8_lossy(&bytes);
    for secret in [chosen, generated.as_str()] {
        assert!(!text.contains(secret), "the secret is in the database");
        assert!(
            text.contains(&llm_tower::tenancy::hash_key(secret)),
            "its hash is"
        );
    }
}

/// A counter without labels from the gateway's `/metrics`.
async fn counter(base: &str, name: &str) -> f64 {
    let metrics = get(
        &format!("{base}/metrics"),
        &[("authorization", &format!("Bearer {MASTER}"))],
    )
    .await
    .text();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name}:\n{metrics}"))
        .parse()
        .unwrap()
}

/// Retries `f` for up to 3 s until it gives something.
async fn wait_for<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = f().await {
            return value;
        }
        assert!(started.elapsed() < Duration::from_secs(3), "not within 3 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// (key_name, team_id) of the ledger's rows, once there are `count`.
async fn ledger_keys(path: &std::path::Path, count: usize) -> Vec<(String, Option<String>)> {
    wait_for(|| async {
        let rows: Vec<(String, Option<String>)> = rusqlite::Connection::open(path)
            .and_then(|conn| {
                let mut select =
                    conn.prepare("SELECT key_name, team_id FROM llm_usage ORDER BY id")?;
                let rows = select.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect()
            })
            .unwrap_or_default();
        (rows.len() >= count).then_some(rows)
    })
    .await
}

async fn ledger_statuses(path: &std::path::Path, count: usize) -> Vec<i64> {
    wait_for(|| async {
        let rows: Vec<i64> = rusqlite::Connection::open(path)
            .and_then(|conn| {
                let mut select = conn.prepare("SELECT status FROM llm_usage ORDER BY id")?;
                let rows = select.query_map([], |r| r.get(0))?;
                rows.collect()
            })
            .unwrap_or_default();
        (rows.len() >= count).then_some(rows)
    })
    .await
}

/// An address where nothing listens.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn while_redis_is_down_limits_hold_per_instance_or_refuse_as_configured() {
    let redis = format!(
        "redis: {{ url: 'redis://127.0.0.1:{}', timeout: 300ms }}",
        closed_port()
    );
    // `local` (the default): counted in this instance meanwhile, and the failure counted.
    let t = Tenants::with(&redis, "").await;
    let key = t.key(json!({"rpm_limit": 3})).await;
    let unlimited = t.key(json!({})).await;
    start_of_window(2000).await;
    for n in 1..=3 {
        let answer = t.chat(&key, "up/echo").await;
        assert_eq!(answer.status, 200, "request {n}: {}", answer.text());
        assert_eq!(
            answer.headers["x-ratelimit-remaining-requests"],
            (3 - n).to_string()
        );
    }
    t.chat(&key, "up/echo")
        .await
        .error(http::StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(t.chat(&unlimited, "up/echo").await.status, 200);
    let failures = counter(&t.gw.url(), "llm_tower_rate_limit_redis_errors_total").await;
    assert!(failures >= 4.0, "{failures}");

    // `reject`: requests with limits are refused with a 503 meanwhile; others pass.
    let t = Tenants::with(&redis, ", redis_down: reject").await;
    let key = t.key(json!({"rpm_limit": 3})).await;
    let unlimited = t.key(json!({})).await;
    let error = t
        .chat(&key, "up/echo")
        .await
        .error(http::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error["code"], "rate_limiter_unavailable");
    assert_eq!(t.chat(&unlimited, "up/echo").await.status, 200);
}

// ---- Many instances: keys and spend in PostgreSQL, limits in Redis ----

/// Sleeps until just after a `window_ms` window begins, so that a few requests fit in it.
async fn start_of_window(window_ms: u128) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    tokio::time::sleep(Duration::from_millis(
        (window_ms - now % window_ms) as u64 + 20,
    ))
    .await;
}

/// Sends until `base` answers `want` with `key`, for at most 1 s.
async fn within_a_second(base: &str, key: &str, want: u16, what: &str) -> Answer {
    let started = Instant::now();
    loop {
        let answer = chat(base, key, "up/echo", false).await;
        if answer.status == want {
            return answer;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{what}: still {} after 1 s: {}",
            answer.status,
            answer.text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL at DATABASE_URL and Redis at REDIS_URL: .ci/run starts them"]
async fn two_gateway_processes_share_keys_spend_and_limits_through_postgres_and_redis() {
    let (pg, redis_url) = (needs("DATABASE_URL"), needs("REDIS_URL"));
    let (upstream, _) = mock_upstream().await;
    let prices = TempPath::new("llm-tower-prices", "yaml");
    std::fs::write(&prices, "echo: { input: 1000000, output: 1000000 }\n").unwrap();
    let prefix = unique("llm-tower-limits-test") + ":";
    let yaml = config_for(
        &upstream,
        &format!(
            "master_key: {MASTER}\nredis: {{ url: '{redis_url}' }}\nmetering: {{ sink: postgres, postgres_url: '{pg}', prices: '{}' }}\ntenancy: {{ refresh: 100ms, window: 2s, key_prefix: '{prefix}' }}",
            prices.display()
        ),
    );
    let a = GatewayProcess::spawn(&yaml).await;
    let b = GatewayProcess::spawn(&yaml).await;
    let alias = unique("shared-key");
    let key = generate(a.url(), json!({"key_alias": alias, "rpm_limit": 3})).await;

    // Requests per window: 3 in total across both instances, not 3 on each.
    start_of_window(2000).await;
    for (n, gw) in [&a, &b, &a].into_iter().enumerate() {
        let answer = chat(gw.url(), &key, "up/echo", false).await;
        assert_eq!(answer.status, 200, "request {}: {}", n + 1, answer.text());
        assert_eq!(
            answer.headers["x-ratelimit-remaining-requests"],
            (2 - n).to_string(),
            "one count for both"
        );
    }
    for gw in [&b, &a] {
        let refused = chat(gw.url(), &key, "up/echo", false).await;
        let error = refused.error(http::StatusCode::TOO_MANY_REQUESTS);
        assert!(refused.headers.contains_key("retry-after"), "{error}");
    }
    start_of_window(2000).await;
    assert_eq!(chat(b.url(), &key, "up/echo", false).await.status, 200);

    // Spend metered on both instances adds up in PostgreSQL: 4 requests at $6.
    let info = wait_for(|| async {
        let info = admin(b.url(), &format!("GET /key/info?key={key}"), json!({}))
            .await
            .json();
        (info["info"]["spend"] == 24.0).then_some(info)
    })
    .await;
    assert_eq!(info["info"]["key_alias"], alias.as_str());
    // A budget set on B is enforced on A.
    let updated = admin(
        b.url(),
        "/key/update",
        json!({"key": key, "max_budget": 24.0, "rpm_limit": null}),
    )
    .await;
    assert_eq!(updated.status, 200, "{}", updated.text());
    let error = within_a_second(a.url(), &key, 400, "the budget set on b")
        .await
        .error(http::StatusCode::BAD_REQUEST);
    assert_eq!(error["type"], "budget_exceeded");

    // Tokens per window, counted once for both, and corrected to the metered 6 a request
    // (the estimate reserved up front is larger).
    let metered = generate(
        a.url(),
        json!({"key_alias": unique("tpm"), "tpm_limit": 10}),
    )
    .await;
    start_of_window(2000).await;
    for gw in [&a, &b] {
        let answer = chat(gw.url(), &metered, "up/echo", false).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let error = chat(a.url(), &metered, "up/echo", false)
        .await
        .error(http::StatusCode::TOO_MANY_REQUESTS);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("Limit type: tokens. Current limit: 10, Remaining: 0"),
        "{error}"
    );

    // One parallel slot for both instances: a stream on A holds it against B.
    let single = generate(
        a.url(),
        json!({"key_alias": unique("single"), "max_parallel_requests": 1}),
    )
    .await;
    let slow = tokio::spawn({
        let (base, key) = (a.url().to_owned(), single.clone());
        async move {
            post(
                &format!("{base}/v1/chat/completions"),
                &chat_body("up/echo?chunk_delay=150ms", "one two three four five", true),
                &[("authorization", &format!("Bearer {key}"))],
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let error = chat(b.url(), &single, "up/echo", false)
        .await
        .error(http::StatusCode::TOO_MANY_REQUESTS);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("max_parallel_requests"),
        "{error}"
    );
    assert!(slow.await.unwrap().text().contains("[DONE]"));
    within_a_second(b.url(), &single, 200, "the slot given back on a").await;

    // Blocked on B: refused on A within a second; deleted on A: refused on B.
    let blocked = admin(b.url(), "/key/block", json!({"key": single})).await;
    assert_eq!(blocked.status, 200, "{}", blocked.text());
    within_a_second(a.url(), &single, 401, "blocked on b").await;
    let deleted = admin(a.url(), "/key/delete", json!({"keys": [single]})).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    within_a_second(b.url(), &single, 401, "deleted on a").await;

    // At rest: PostgreSQL and Redis hold hashes, never a secret.
    let (client, connection) = tokio_postgres::connect(&pg, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL at DATABASE_URL");
    tokio::spawn(connection);
    let stored: Vec<String> = client
        .query(
            "SELECT concat_ws(' ', token, key_alias, team_id, doc) FROM llm_keys WHERE key_alias = $1 OR token = $2",
            &[&alias, &llm_tower::tenancy::hash_key(&single)],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(stored.len(), 2, "both keys (one a tombstone): {stored:?}");
    let ledger: Vec<String> = client
        .query(
            "SELECT key_name FROM llm_usage WHERE key_name = $1",
            &[&alias],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(ledger.len() >= 4, "the ledger names the alias: {ledger:?}");
    let redis = redis::Client::open(redis_url.as_str()).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let counters: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!counters.is_empty(), "the limits are counted in redis");
    let mut at_rest = stored.join("\n") + &counters.join("\n");
    for counter in &counters {
        let value: Option<String> = redis::cmd("GET")
            .arg(counter)
            .query_async(&mut conn)
            .await
            .unwrap();
        at_rest.extend(value);
    }
    for secret in [&key, &single] {
        assert!(!at_rest.contains(secret.as_str()), "a secret is stored");
        assert!(at_rest.contains(&llm_tower::tenancy::hash_key(secret)));
    }
    admin(a.url(), "/key/delete", json!({"key_aliases": [alias]})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LiteLLM's Python client at LLM_TOWER_PYTHON: .ci/run installs it"]
async fn litellm_s_key_management_client_and_cli_work_against_the_gateway() {
    let t = Tenants::new("").await;
    pytest(
        &["tests/sdk/test_litellm_keys.py"],
        &[
            ("KEYS_GATEWAY_URL", t.gw.url()),
            ("KEYS_GATEWAY_MASTER_KEY", MASTER.to_owned()),
            // LiteLLM fetches its price table from GitHub on import unless told not to.
            ("LITELLM_LOCAL_MODEL_COST_MAP", "True".to_owned()),
        ],
    )
    .await;
}

/// The request bodies of LiteLLM's documented `/key/generate` examples
/// (docs.litellm.ai/docs/proxy/virtual_keys, …/users, …/rate_limit_tiers), and the fields
/// its documentation shows in the answers.
#[tokio::test]
async fn litellm_s_documented_generate_examples_are_answered_as_documented() {
    let t = Tenants::new("").await;
    let examples = [
        json!({"models": ["up/echo", "fast"], "metadata": {"user": "ishaan@berri.ai"}, "team_id": "core-infra"}),
        json!({"models": ["up/echo"], "duration": "20m", "metadata": {"user": "ishaan@berri.ai", "team": "core-infra"}}),
        json!({"max_budget": 10}),
        json!({"max_budget": 0.0001, "budget_duration": "1mo"}),
        json!({"tpm_limit": 1000, "rpm_limit": 10, "max_parallel_requests": 2}),
        json!({"key_alias": "docs-alias", "user_id": "krrish@berri.ai", "tags": ["prod", "eu"]}),
        json!({}),
    ];
    for request in examples {
        let answer = t.admin("/key/generate", request.clone()).await;
        assert_eq!(answer.status, 200, "{request}: {}", answer.text());
        let key = answer.json();
        let secret = key["key"].as_str().unwrap();
        // `key`: the secret, once; `key_name`: its abbreviation; `expires`: null or a time.
        assert!(secret.starts_with("sk-"), "{key}");
        assert_eq!(
            key["key_name"],
            format!("sk-...{}", &secret[secret.len() - 4..])
        );
        match request.get("duration") {
            Some(_) => {
                let expires = key["expires"].as_str().unwrap();
                let at = humantime::parse_rfc3339_weak(expires.trim_end_matches('Z'))
                    .unwrap_or_else(|e| panic!("{expires}: {e}"));
                let minutes = at
                    .duration_since(std::time::SystemTime::now())
                    .unwrap()
                    .as_secs()
                    / 60;
                assert!((18..=20).contains(&minutes), "{expires}");
            }
            None => assert!(key["expires"].is_null(), "{key}"),
        }
        for (field, value) in request.as_object().unwrap() {
            match field.as_str() {
                "duration" => {}
                "tags" => assert_eq!(key["metadata"]["tags"], *value, "{key}"),
                "max_budget" => assert_eq!(key[field].as_f64(), value.as_f64(), "{key}"),
                _ => assert_eq!(key[field], *value, "{field}: {key}"),
            }
        }
        if request.get("budget_duration").is_some() {
            // `1mo` ends on the 1st of next month at midnight UTC, as LiteLLM resets it.
            let reset = key["budget_reset_at"].as_str().unwrap();
            assert!(reset.contains("-01T00:00:00"), "{reset}");
        }
        assert_eq!(t.chat(secret, "up/echo").await.status, 200, "{request}");
    }
}

/// A TCP forwarder to `target` that can be cut (every connection dropped, new ones
/// refused) and restored: a database that goes down and comes back.
struct Cuttable {
    addr: std::net::SocketAddr,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Cuttable {
    async fn to(target: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let this = Self {
            addr: listener.local_addr().unwrap(),
            down: Default::default(),
            open: Default::default(),
        };
        let (down, open) = (this.down.clone(), this.open.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if down.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                open.lock().unwrap().push(task.abort_handle());
            }
        });
        this
    }

    fn cut(&self) {
        self.down.store(true, std::sync::atomic::Ordering::SeqCst);
        for task in self.open.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn restore(&self) {
        self.down.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL at DATABASE_URL: .ci/run starts it"]
async fn while_the_database_is_down_known_keys_work_and_unknown_ones_wait() {
    let pg = needs("DATABASE_URL");
    // postgres://user@host:port/db → the same through the forwarder.
    let (scheme_user, rest) = pg.split_once('@').expect("user@host in DATABASE_URL");
    let (host, db) = rest.split_once('/').expect("a database in DATABASE_URL");
    let proxy = Cuttable::to(host.to_owned()).await;
    let url = format!("{scheme_user}@{}/{db}", proxy.addr);
    let (upstream, _) = mock_upstream().await;
    let gateway_with = |store_down: &str| {
        config_for(
            &upstream,
            &format!("master_key: {MASTER}\nmetering: {{ sink: postgres, postgres_url: '{url}' }}\ntenancy: {{ refresh: 100ms, store_down: {store_down} }}"),
        )
    };
    let gw = gateway(&gateway_with("unavailable")).await;
    let strict = gateway(&gateway_with("unauthorized")).await;
    let key = generate(&gw.url(), json!({"key_alias": unique("pg-down")})).await;
    for base in [gw.url(), strict.url()] {
        assert_eq!(chat(&base, &key, "up/echo", false).await.status, 200);
    }

    proxy.cut();
    let unknown = "sk-never-made-0123456789abcdef";
    for _ in 0..3 {
        // The known key is served from memory; an unknown one cannot be checked.
        let known = chat(&gw.url(), &key, "up/echo", false).await;
        assert_eq!(known.status, 200, "{}", known.text());
        let error = chat(&gw.url(), unknown, "up/echo", false)
            .await
            .error(http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(error["code"], "key_store_unavailable");
        chat(&strict.url(), unknown, "up/echo", false)
            .await
            .error(http::StatusCode::UNAUTHORIZED);
        assert_eq!(
            chat(&strict.url(), &key, "up/echo", false).await.status,
            200
        );
    }
    let refused = admin(&gw.url(), "/key/generate", json!({})).await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    let errors = counter(&gw.url(), "llm_tower_key_store_errors_total").await;
    assert!(errors >= 3.0, "{errors}");

    // Back: an unknown key is a plain 401 again (no longer remembered as unreadable).
    proxy.restore();
    wait_for(|| async {
        (chat(&gw.url(), unknown, "up/echo", false).await.status == 401).then_some(())
    })
    .await;
    let made = admin(&gw.url(), "/key/generate", json!({})).await;
    assert_eq!(made.status, 200, "{}", made.text());
}

#[tokio::test]
async fn every_llm_route_enforces_the_key_and_usage_reports_its_team() {
    let t = Tenants::new("").await;
    let key = t
        .key(json!({"models": ["up/*"], "rpm_limit": 100, "team_id": "route-team"}))
        .await;
    let auth = format!("Bearer {key}");
    let routes = [
        ("/v1/embeddings", r#"{"model":"MODEL","input":["a b"]}"#),
        (
            "/v1/messages",
            r#"{"model":"MODEL","max_tokens":16,"messages":[{"role":"user","content":"hello there"}]}"#,
        ),
        (
            "/v1/responses",
            r#"{"model":"MODEL","input":"hello there","store":false}"#,
        ),
    ];
    for (path, body) in routes {
        let url = format!("{}{path}", t.gw.url());
        let headers = [
            ("authorization", auth.as_str()),
            ("anthropic-version", "2023-06-01"),
        ];
        let allowed = post(&url, &body.replace("MODEL", "up/echo"), &headers).await;
        assert_eq!(allowed.status, 200, "{path}: {}", allowed.text());
        assert_eq!(
            allowed.headers["x-ratelimit-limit-requests"], "100",
            "{path}"
        );
        let denied = post(&url, &body.replace("MODEL", "mock/echo"), &headers).await;
        assert_eq!(denied.status, 401, "{path}: {}", denied.text());
        // LiteLLM's message; the type is the route's own (Anthropic's
        // `authentication_error` on the Messages route).
        assert!(
            denied.text().contains("key not allowed to access model"),
            "{path}: {}",
            denied.text()
        );
    }
    // The three answered requests are the team's in the usage report.
    let report = wait_for(|| async {
        let report = get(
            &format!("{}/v1/usage?from=0&group_by=team", t.gw.url()),
            &[("authorization", &format!("Bearer {MASTER}"))],
        )
        .await
        .json();
        let team = report["data"]
            .as_array()?
            .iter()
            .find(|g| g["group"] == "route-team")?
            .clone();
        (team["requests"].as_i64() >= Some(3)).then_some(team)
    })
    .await;
    assert!(report["prompt_tokens"].as_i64().unwrap() > 0, "{report}");
}
