//! LiteLLM proxy configs as they are (`tests/litellm_configs/`, in LiteLLM's documented
//! shapes), loaded by the `llm-tower` binary with every `api_base` pointed at the mock
//! upstream: `--check` says how each entry is served, and requests to every `model_name`
//! reach the right upstream with the right model and default parameters. With the real
//! LiteLLM proxy: one file drives both, and fallbacks cross between them.

mod support;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use llm_tower::executor::MockUpstream;
use serde_json::{json, Value};
use support::*;

fn corpus(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/litellm_configs")
        .join(name)
}

/// The mock upstream, and the variables the corpus reads its address and keys from.
async fn mock() -> (Running, MockUpstream, Vec<(&'static str, String)>) {
    let (server, mock) = mock_upstream().await;
    let root = server.url();
    let env = vec![
        ("MOCK_URL", format!("{root}/v1")),
        ("MOCK_ROOT", root),
        ("OPENAI_API_KEY", "sk-openai-test".to_owned()),
        ("AZURE_API_KEY", "azure-test-key".to_owned()),
        ("ANTHROPIC_API_KEY", "sk-ant-test".to_owned()),
        ("GROQ_API_KEY", "gsk-test".to_owned()),
    ];
    (server, mock, env)
}

/// `llm-tower --check FILE`'s output (it must succeed).
fn check(path: &std::path::Path, env: &[(&str, String)]) -> String {
    let output = std::process::Command::new(gateway_binary())
        .arg("--check")
        .arg(path)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    text
}

async fn chat(gw: &GatewayProcess, model: &str, extra: Value, auth: Option<&str>) -> Answer {
    let mut body =
        json!({"model": model, "messages": [{"role": "user", "content": "hello there"}]});
    for (k, v) in extra.as_object().into_iter().flatten() {
        body[k] = v.clone();
    }
    let bearer = auth.map(|k| format!("Bearer {k}"));
    let headers: Vec<(&str, &str)> = bearer
        .iter()
        .map(|b| ("authorization", b.as_str()))
        .collect();
    post(
        &format!("{}/v1/chat/completions", gw.url()),
        &body.to_string(),
        &headers,
    )
    .await
}

/// What the mock got last: path (with query), headers, body.
fn last(mock: &MockUpstream) -> (String, http::HeaderMap, Value) {
    let (headers, body) = mock.last_request().expect("a request reached the mock");
    let uri = mock.last_uri().unwrap();
    let path = uri.path_and_query().unwrap().to_string();
    (path, headers, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn a_quick_start_config_serves_each_model_natively_with_its_defaults() {
    let (_server, mock, env) = mock().await;
    let file = corpus("simple.yaml");
    let text = check(&file, &env);
    let root = &env[1].1;
    for line in [
        "model_list   8 entries: 7 native, 0 via LiteLLM, 1 unsupported".to_owned(),
        format!("  gpt-3.5-turbo    native       OpenAI-compatible {root}/v1 model gpt-3.5-turbo (provider gpt-3.5-turbo)"),
        format!("  azure-gpt        native       Azure OpenAI {root}/openai/deployments/my-gpt-deployment model my-gpt-deployment (provider azure-gpt)"),
        format!("  claude-3-5-sonnet native       Anthropic Messages {root}/v1 model claude-3-5-sonnet-20240620 (provider claude-3-5-sonnet)"),
        format!("  local-llama      native       Ollama's OpenAI-compatible API {root}/v1 model llama3.1 (provider local-llama)"),
        format!("  text-embedding-3-small (embedding) native       OpenAI-compatible {root}/v1 model text-embedding-3-small (provider text-embedding-3-small)"),
        "  bedrock-claude   unsupported  `bedrock` is served by LiteLLM, and no LiteLLM proxy is configured (`litellm_proxy: { api_base, api_key }`)".to_owned(),
    ] {
        assert!(text.contains(&format!("{line}\n")), "missing `{line}` in\n{text}");
    }
    assert!(
        !text.contains("sk-openai-test") && !text.contains("azure-test-key"),
        "{text}"
    );
    assert!(
        !text.contains("ignored"),
        "nothing of this file is unused:\n{text}"
    );

    let gw = GatewayProcess::from_file(&file, &env).await;
    // OpenAI: the deployment's defaults where the client set nothing, the client's value
    // where it did.
    let answer = chat(&gw, "gpt-3.5-turbo", json!({"temperature": 0.9}), None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.headers["x-gateway-provider"], "gpt-3.5-turbo");
    let (path, headers, body) = last(&mock);
    assert_eq!(path, "/v1/chat/completions");
    assert_eq!(headers["authorization"], "Bearer sk-openai-test");
    assert_eq!(
        (&body["model"], &body["temperature"], &body["max_tokens"]),
        (&json!("gpt-3.5-turbo"), &json!(0.9), &json!(50))
    );

    // Azure's deployment URL, version and key header.
    let answer = chat(&gw, "azure-gpt", json!({}), None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let (path, headers, _) = last(&mock);
    assert_eq!(
        path,
        "/openai/deployments/my-gpt-deployment/chat/completions?api-version=2024-06-01"
    );
    assert_eq!(headers["api-key"], "azure-test-key");
    assert!(headers.get("authorization").is_none());

    // Anthropic: the Messages API, translated back to a chat completion.
    let answer = chat(&gw, "claude-3-5-sonnet", json!({}), None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.json()["object"], "chat.completion");
    let (path, headers, body) = last(&mock);
    assert_eq!(path, "/v1/messages");
    assert_eq!(headers["x-api-key"], "sk-ant-test");
    assert_eq!(body["model"], "claude-3-5-sonnet-20240620");

    for (model, upstream, auth) in [
        ("llama3", "llama3-8b-8192", Some("Bearer gsk-test")),
        ("local-llama", "llama3.1", None),
        // hosted_vllm without a key: LiteLLM's placeholder key, as it sends it.
        ("vllm-opt", "facebook/opt-125m", Some("Bearer fake-api-key")),
    ] {
        let answer = chat(&gw, model, json!({}), None).await;
        assert_eq!(answer.status, StatusCode::OK, "{model}: {}", answer.text());
        let (path, headers, body) = last(&mock);
        assert_eq!(
            (path.as_str(), body["model"].as_str()),
            ("/v1/chat/completions", Some(upstream)),
            "{model}"
        );
        assert_eq!(
            headers.get("authorization").map(|v| v.to_str().unwrap()),
            auth,
            "{model}"
        );
    }

    let embeddings = post(
        &format!("{}/v1/embeddings", gw.url()),
        &json!({"model": "text-embedding-3-small", "input": "hi"}).to_string(),
        &[],
    )
    .await;
    assert_eq!(embeddings.status, StatusCode::OK, "{}", embeddings.text());
    assert_eq!(last(&mock).0, "/v1/embeddings");

    // Not served: a clear 404 naming the model, not a hang or a 500.
    let requests = mock.requests();
    let answer = chat(&gw, "bedrock-claude", json!({}), None).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.text());
    assert!(
        answer.text().contains("bedrock-claude"),
        "{}",
        answer.text()
    );
    assert_eq!(mock.requests(), requests);

    // `/v1/models` lists the client-facing names.
    let models = get(&format!("{}/v1/models", gw.url()), &[]).await.json();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    for id in [
        "gpt-3.5-turbo",
        "azure-gpt",
        "claude-3-5-sonnet",
        "text-embedding-3-small",
    ] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
}

#[tokio::test]
async fn deployments_of_one_model_name_share_its_traffic_by_rpm() {
    let (_server, _mock, env) = mock().await;
    let file = corpus("load_balancing.yaml");
    let text = check(&file, &env);
    assert!(
        text.contains("  gpt-3.5-turbo (Weighted): east/echo, west/echo\n"),
        "{text}"
    );
    assert!(
        text.contains("  note: num_retries: each deployment of a group is tried once"),
        "{text}"
    );
    let gw = GatewayProcess::from_file(&file, &env).await;
    let (mut east, mut west) = (0, 0);
    for _ in 0..200 {
        let answer = chat(&gw, "gpt-3.5-turbo", json!({}), Some("sk-1234")).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        match answer.headers["x-gateway-provider"].to_str().unwrap() {
            "east" => east += 1,
            "west" => west += 1,
            other => panic!("served by {other}"),
        }
    }
    // 900:100 → about 180:20 (both bounds are many standard deviations out).
    assert!(west >= 1 && east > 3 * west, "east {east}, west {west}");

    // Each deployment's price is its requests' cost: west's is ten times east's.
    let url = format!("{}/v1/usage?group_by=provider&from=0", gw.url());
    let mut report = Value::Null;
    for _ in 0..100 {
        report = get(&url, &[("authorization", "Bearer sk-1234")])
            .await
            .json();
        let requests: i64 = report["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g["requests"].as_i64())
            .sum();
        if requests == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let per_request = |name: &str| {
        let g = report["data"]
            .as_array()
            .unwrap_or_else(|| panic!("{report}"))
            .iter()
            .find(|g| g["group"] == name)
            .unwrap_or_else(|| panic!("{name} in {report}"));
        g["cost_usd"].as_f64().unwrap_or_else(|| panic!("{report}"))
            / g["requests"].as_f64().unwrap()
    };
    let ratio = per_request("west") / per_request("east");
    assert!(
        (ratio - 10.0).abs() < 1e-6,
        "west/east cost per request {ratio}: {report}"
    );
}

#[tokio::test]
async fn usage_based_routing_holds_each_deployment_to_its_rpm() {
    let (_server, _mock, env) = mock().await;
    let file = corpus("usage_based.yaml");
    assert!(check(&file, &env).contains("  gpt-4o (LeastUsage): small/echo, large/echo\n"));
    let gw = GatewayProcess::from_file(&file, &env).await;
    // Within one calendar minute: `small` (rpm 1) serves at most one request.
    let into = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        % 60_000;
    if into > 50_000 {
        tokio::time::sleep(Duration::from_millis(60_050 - into)).await;
    }
    let mut small = 0;
    for _ in 0..6 {
        let answer = chat(&gw, "gpt-4o", json!({}), None).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        small += usize::from(answer.headers["x-gateway-provider"] == "small");
    }
    assert!(small <= 1, "small served {small} requests this minute");
}

#[tokio::test]
async fn a_failing_group_falls_back_and_a_long_prompt_goes_to_the_bigger_context() {
    let (_server, mock, env) = mock().await;
    let file = corpus("fallbacks.yaml");
    let text = check(&file, &env);
    assert!(
        text.contains("  gpt-3.5-turbo (Priority): gpt-3.5-turbo/echo?status=500, gpt-4/echo\n"),
        "{text}"
    );
    let gw = GatewayProcess::from_file(&file, &env).await;

    let requests = mock.requests();
    let answer = chat(&gw, "gpt-3.5-turbo", json!({}), None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.headers["x-gateway-provider"], "gpt-4");
    assert_eq!(answer.headers["x-gateway-attempts"], "2");
    assert_eq!(mock.requests(), requests + 2);
    // allowed_fails: 1 → the second failure cools the deployment down (cooldown_time 30 s):
    // the third request goes straight to the fallback.
    assert_eq!(
        chat(&gw, "gpt-3.5-turbo", json!({}), None).await.headers["x-gateway-attempts"],
        "2"
    );
    let requests = mock.requests();
    let answer = chat(&gw, "gpt-3.5-turbo", json!({}), None).await;
    assert_eq!(answer.headers["x-gateway-provider"], "gpt-4");
    assert_eq!(answer.headers["x-gateway-attempts"], "1");
    assert_eq!(mock.requests(), requests + 1);

    // A prompt within the small context stays there; a longer one moves on.
    let answer = chat(
        &gw,
        "small-context",
        json!({"messages": [{"role": "user", "content": "hi"}]}),
        None,
    )
    .await;
    assert_eq!(
        answer.headers["x-gateway-provider"],
        "small-context",
        "{}",
        answer.text()
    );
    let long = "a long prompt that cannot fit into eight tokens of context window at all";
    let answer = chat(
        &gw,
        "small-context",
        json!({"messages": [{"role": "user", "content": long}]}),
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.headers["x-gateway-provider"], "big-context");
    assert_eq!(last(&mock).2["model"], "echo-big");
}

#[tokio::test]
async fn model_group_aliases_and_wildcards_resolve_as_in_litellm() {
    let (_server, mock, env) = mock().await;
    let file = corpus("aliases.yaml");
    let text = check(&file, &env);
    assert!(
        text.contains("  gpt-4 -> gpt-4o\n") && text.contains("  mock/* -> mock-any/*\n"),
        "{text}"
    );
    // LiteLLM hides the alias from its model list; llm-tower lists aliases, and says so.
    assert!(
        text.contains("router_settings.model_group_alias.claude-3.hidden"),
        "{text}"
    );
    let gw = GatewayProcess::from_file(&file, &env).await;
    for (model, provider, upstream) in [
        ("gpt-4", "gpt-4o", "echo"),
        ("claude-3", "gpt-4o", "echo"),
        ("mock/echo-wild", "mock-any", "echo-wild"),
    ] {
        let answer = chat(&gw, model, json!({}), None).await;
        assert_eq!(answer.status, StatusCode::OK, "{model}: {}", answer.text());
        assert_eq!(answer.headers["x-gateway-provider"], provider, "{model}");
        assert_eq!(last(&mock).2["model"], upstream, "{model}");
    }
}

#[tokio::test]
async fn environment_variables_are_read_first_and_unused_keys_are_reported() {
    let (_server, mock, env) = mock().await;
    let file = corpus("environment.yaml");
    let text = check(&file, &env);
    assert!(
        text.contains("ignored      litellm_settings.set_verbose, litellm_settings.drop_params, general_settings.alerting\n"),
        "{text}"
    );
    assert!(!text.contains("sk-from-environment-variables"), "{text}");
    let gw = GatewayProcess::from_file(&file, &env).await;
    let answer = chat(&gw, "gpt-4o", json!({}), None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(
        last(&mock).1["authorization"],
        "Bearer sk-from-environment-variables"
    );
    // Said once at start, as a warning.
    let log = gw.output();
    let warnings: Vec<_> = log.lines().filter(|l| l.contains("does not use")).collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains("WARN") && warnings[0].contains("litellm_settings.set_verbose, litellm_settings.drop_params, general_settings.alerting"), "{log}");
}

#[tokio::test]
async fn a_value_that_cannot_be_honoured_stops_the_start_naming_the_litellm_field() {
    let dir = TempDir::new("litellm-bad");
    let bad = dir.join("config.yaml");
    std::fs::write(
        &bad,
        "model_list: [{ model_name: a, litellm_params: { model: openai/x } }]\nrouter_settings: { routing_strategy: fastest-first }\n",
    )
    .unwrap();
    let output = std::process::Command::new(gateway_binary())
        .arg("--check")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("router_settings.routing_strategy: `fastest-first` is not a routing strategy"),
        "{err}"
    );
}

#[tokio::test]
async fn our_config_can_include_a_litellm_config_and_its_own_sections_win() {
    let (_server, mock, env) = mock().await;
    let dir = TempDir::new("litellm-include");
    let ours = dir.join("gateway.yaml");
    std::fs::write(
        &ours,
        format!(
            "litellm_config: {}\nproviders:\n  mine: {{ kind: openai, api_base: '{}/v1' }}\naliases: {{ gpt-3.5-turbo: mine/echo-own }}\ncombos: {{ gpt-4: {{ targets: [mine/echo-combo] }} }}\ncircuit_breaker: {{ failures: 5 }}\n",
            corpus("fallbacks.yaml").display(),
            env[1].1
        ),
    )
    .unwrap();
    let text = check(&ours, &env);
    assert!(text.contains("  mine         openai"), "{text}");
    assert!(text.contains("  big-context      native"), "{text}");
    assert!(text.contains("ignored      router_settings.allowed_fails/cooldown_time/disable_cooldowns (our circuit_breaker: is set)"), "{text}");
    let gw = GatewayProcess::from_file(&ours, &env).await;
    // Our alias wins over the LiteLLM file's combo of the same name, our combo over its alias.
    let answer = chat(&gw, "gpt-3.5-turbo", json!({}), None).await;
    assert_eq!(
        answer.headers["x-gateway-provider"],
        "mine",
        "{}",
        answer.text()
    );
    assert_eq!(last(&mock).2["model"], "echo-own");
    let answer = chat(&gw, "gpt-4", json!({}), None).await;
    assert_eq!(
        answer.headers["x-gateway-provider"],
        "mine",
        "{}",
        answer.text()
    );
    assert_eq!(last(&mock).2["model"], "echo-combo");
    let answer = chat(&gw, "big-context", json!({}), None).await;
    assert_eq!(
        answer.headers["x-gateway-provider"],
        "big-context",
        "{}",
        answer.text()
    );
}

#[tokio::test]
#[ignore = "needs Redis at REDIS_URL: .ci/run starts it"]
async fn a_redis_cache_config_shares_answers_between_instances() {
    let url = needs("REDIS_URL");
    let (host, port) = url
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .split_once(':')
        .map(|(h, p)| (h.to_owned(), p.split('/').next().unwrap().to_owned()))
        .expect("REDIS_URL as redis://host:port");
    let (_server, mock, mut env) = mock().await;
    env.push(("REDIS_HOST", host));
    env.push(("REDIS_PORT", port));
    let file = corpus("redis_cache.yaml");
    assert!(check(&file, &env).contains("cache        exact, redis\n"));
    let (a, b) = (
        GatewayProcess::from_file(&file, &env).await,
        GatewayProcess::from_file(&file, &env).await,
    );
    let prompt = json!({"messages": [{"role": "user", "content": unique("cache me")}]});
    let requests = mock.requests();
    let first = chat(&a, "gpt-4o", prompt.clone(), None).await;
    assert_eq!(first.headers["x-gateway-cache"], "miss", "{}", first.text());
    let second = chat(&b, "gpt-4o", prompt, None).await;
    assert_eq!(
        second.headers["x-gateway-cache"],
        "hit",
        "{}",
        second.text()
    );
    assert_eq!(second.json()["choices"], first.json()["choices"]);
    assert_eq!(mock.requests(), requests + 1);
}

#[tokio::test]
#[ignore = "needs PostgreSQL at DATABASE_URL: .ci/run starts it"]
async fn a_master_key_and_database_url_config_manages_keys_like_litellm() {
    let (_server, mock, mut env) = mock().await;
    env.push(("DATABASE_URL", needs("DATABASE_URL")));
    let file = corpus("keys_and_database.yaml");
    let text = check(&file, &env);
    assert!(
        text.contains("auth         master key\n") && text.contains("metering     postgres\n"),
        "{text}"
    );
    assert!(
        text.contains("tenancy      virtual keys in the ledger"),
        "{text}"
    );
    let gw = GatewayProcess::from_file(&file, &env).await;
    assert_eq!(
        chat(&gw, "gpt-4o", json!({}), None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let created = post(
        &format!("{}/key/generate", gw.url()),
        &json!({"models": ["gpt-4o"], "key_alias": unique("litellm-config")}).to_string(),
        &[("authorization", "Bearer sk-1234")],
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text());
    let key = created.json()["key"].as_str().unwrap().to_owned();
    let answer = chat(&gw, "gpt-4o", json!({}), Some(&key)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(last(&mock).2["model"], "echo");
    let denied = chat(&gw, "gpt-4o-mini", json!({}), Some(&key)).await;
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED, "{}", denied.text());
}

/// The repository's `litellm-config.yaml`, which CI's LiteLLM proxy runs, is a gateway
/// config too: what only LiteLLM can serve goes to that proxy, the rest is native.
#[tokio::test]
#[ignore = "needs the LiteLLM proxy at LLM_TOWER_LITELLM_URL: .ci/run starts it"]
async fn the_repository_litellm_config_drives_the_gateway_and_the_proxy() {
    let url = needs("LLM_TOWER_LITELLM_URL");
    let key = needs("LLM_TOWER_LITELLM_KEY");
    let mock_url = needs("LLM_TOWER_MOCK_URL");
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("litellm-config.yaml");
    let env = vec![
        ("LLM_TOWER_LITELLM_URL", url.clone()),
        ("LITELLM_MASTER_KEY", key.clone()),
        ("LLM_TOWER_MOCK_URL", mock_url.clone()),
    ];
    let text = check(&file, &env);
    assert!(text.contains(&format!("  mock-gpt         via LiteLLM  {url} (provider litellm: mock_response is LiteLLM's)\n")), "{text}");
    assert!(text.contains(&format!("  echo             native       OpenAI-compatible {mock_url} model echo (provider echo-deployment)\n")), "{text}");
    let gw = GatewayProcess::from_file(&file, &env).await;
    let canned = chat(&gw, "mock-gpt", json!({}), Some(&key)).await;
    assert_eq!(canned.status, StatusCode::OK, "{}", canned.text());
    assert_eq!(
        canned.json()["choices"][0]["message"]["content"],
        "Hello from LiteLLM mock"
    );
    assert_eq!(canned.headers["x-gateway-provider"], "litellm");
    let echo = chat(&gw, "echo", json!({}), Some(&key)).await;
    assert_eq!(echo.status, StatusCode::OK, "{}", echo.text());
    assert_eq!(echo.headers["x-gateway-provider"], "echo-deployment");
    assert!(
        echo.headers.get("x-litellm-model-id").is_none(),
        "not through LiteLLM"
    );
}

fn user_agent(headers: &http::HeaderMap) -> &str {
    headers
        .get("user-agent")
        .map_or("", |v| v.to_str().unwrap())
}

/// A TCP forwarder in front of the LiteLLM proxy that counts the HTTP requests through it.
struct Counting {
    addr: std::net::SocketAddr,
    posts: Arc<AtomicU64>,
}

impl Counting {
    async fn to(target: String) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let this = Self {
            addr: listener.local_addr().unwrap(),
            posts: Arc::default(),
        };
        let posts = this.posts.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                    continue;
                };
                let posts = posts.clone();
                tokio::spawn(async move {
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                    });
                    let (mut buf, mut tail) = (vec![0; 16 * 1024], Vec::new());
                    while let Ok(n) = client_read.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        // Request lines (`POST /…`), also when split across reads.
                        tail.extend_from_slice(&buf[..n]);
                        let found = tail.windows(6).filter(|w| w == b"POST /").count();
                        posts.fetch_add(found as u64, Ordering::SeqCst);
                        tail.drain(..tail.len().saturating_sub(5));
                        if server_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        this
    }

    fn posts(&self) -> u64 {
        self.posts.load(Ordering::SeqCst)
    }
}

/// The LiteLLM proxy started on `file` in front of `mock_url`, alive.
///
/// The port is free when chosen, but LiteLLM takes seconds to bind it, and another test's
/// server may take it meanwhile (a mock answers `/health/liveliness` too). So the proxy
/// counts as up only while its own process runs and answers as LiteLLM does; when it exits
/// (the port was taken), it is started again on another port.
async fn litellm_proxy(
    file: &std::path::Path,
    key: &str,
    mock_url: &str,
) -> (tokio::process::Child, String) {
    let python = PathBuf::from(needs("LLM_TOWER_PYTHON"));
    let litellm = python.parent().unwrap().join("litellm");
    for _ in 0..3 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = tokio::process::Command::new(&litellm)
            .args([
                "--config",
                file.to_str().unwrap(),
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            .env("LITELLM_MASTER_KEY", key)
            .env("LLM_TOWER_MOCK_URL", mock_url)
            .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            .env("LITELLM_TELEMETRY_DISABLED", "true")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", litellm.display()));
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..480 {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                let liveliness = get(&format!("{url}/health/liveliness"), &[]).await;
                if liveliness.status == StatusCode::OK
                    && liveliness.text().contains("alive")
                    && child.try_wait().unwrap().is_none()
                {
                    return (child, url);
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    panic!("LiteLLM did not come up on {file:?}");
}

#[tokio::test]
#[ignore = "needs the LiteLLM proxy from the venv at LLM_TOWER_PYTHON: .ci/run installs it"]
async fn one_file_drives_litellm_and_the_gateway_and_fallbacks_cross_between_them() {
    const KEY: &str = "sk-hybrid-0123456789abcdef";
    let (server, mock) = mock_upstream().await;
    let mock_url = format!("{}/v1", server.url());
    let file = corpus("hybrid.yaml");
    let (_litellm, litellm_url) = litellm_proxy(&file, KEY, &mock_url).await;
    let counting = Counting::to(litellm_url.trim_start_matches("http://").to_owned()).await;
    let env = vec![
        ("LLM_TOWER_LITELLM_URL", format!("http://{}", counting.addr)),
        ("LITELLM_MASTER_KEY", KEY.to_owned()),
        ("LLM_TOWER_MOCK_URL", mock_url.clone()),
    ];
    let text = check(&file, &env);
    assert!(
        text.contains("model_list   5 entries: 2 native, 3 via LiteLLM, 0 unsupported\n"),
        "{text}"
    );
    let gw = GatewayProcess::from_file(&file, &env).await;
    let key = Some(KEY);

    // Native: the mock is reached directly, the proxy not at all.
    let (posts, requests) = (counting.posts(), mock.requests());
    let answer = chat(&gw, "echo", json!({}), key).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!((counting.posts(), mock.requests()), (posts, requests + 1));
    let (_, headers, body) = last(&mock);
    assert_eq!(body["temperature"], 0.3);
    assert!(
        !user_agent(&headers).contains("OpenAI/Python"),
        "{headers:?}"
    );

    // LiteLLM's canned answer: through the proxy, the mock untouched.
    let answer = chat(&gw, "canned", json!({}), key).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(
        answer.json()["choices"][0]["message"]["content"],
        "Hello from LiteLLM"
    );
    assert_eq!(
        (counting.posts(), mock.requests()),
        (posts + 1, requests + 1)
    );

    // A provider only LiteLLM knows: through the proxy to the mock.
    let answer = chat(&gw, "llamafile-echo", json!({}), key).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.headers["x-gateway-provider"], "litellm");
    assert_eq!(
        (counting.posts(), mock.requests()),
        (posts + 2, requests + 2)
    );
    let (_, headers, body) = last(&mock);
    assert_eq!(body["model"], "echo");
    assert!(
        body.get("disable_fallbacks").is_none(),
        "LiteLLM keeps its own parameter: {body}"
    );
    assert!(
        user_agent(&headers).contains("OpenAI/Python"),
        "{headers:?}"
    );

    // LiteLLM-routed and failing → the native fallback; after allowed_fails (1) the proxy
    // is not asked for cooldown_time (2 s), then asked again.
    for attempt in 1..=2 {
        let posts = counting.posts();
        let answer = chat(&gw, "flaky-litellm", json!({}), key).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{attempt}: {}",
            answer.text()
        );
        assert_eq!(answer.headers["x-gateway-provider"], "echo", "{attempt}");
        assert_eq!(answer.headers["x-gateway-attempts"], "2", "{attempt}");
        assert_eq!(
            counting.posts(),
            posts + 1,
            "{attempt}: the proxy was asked once"
        );
    }
    let posts = counting.posts();
    let answer = chat(&gw, "flaky-litellm", json!({}), key).await;
    assert_eq!(
        (answer.status, &answer.headers["x-gateway-attempts"]),
        (StatusCode::OK, &http::HeaderValue::from_static("1"))
    );
    assert_eq!(
        counting.posts(),
        posts,
        "cooling down: the proxy is not asked"
    );
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let answer = chat(&gw, "flaky-litellm", json!({}), key).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(
        counting.posts(),
        posts + 1,
        "after the cooldown the proxy is probed"
    );

    // Native and failing → the LiteLLM-routed fallback, and back to the mock through it.
    let (posts, requests) = (counting.posts(), mock.requests());
    let answer = chat(&gw, "flaky-native", json!({}), key).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.headers["x-gateway-provider"], "litellm");
    assert_eq!(
        (counting.posts(), mock.requests()),
        (posts + 1, requests + 2)
    );
}
