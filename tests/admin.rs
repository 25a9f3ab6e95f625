//! The admin API over real HTTP: providers with health, connection tests, aliases and
//! combos, the whole config; validation errors, masked secrets, persistence.

mod support;

use http::StatusCode;
use llm_tower::reload::{ConfigSource, Reloader};
use llm_tower::server::ServerSettings;
use serde_json::{json, Value};
use support::*;

const MASTER: &str = "sk-master-0123456789abcdef";
const SECRET: &str = "sk-upstream-secret-0123456789";

struct Admin {
    gw: Running,
    dir: TempDir,
    _upstream: Running,
    upstream: String,
    mock: llm_tower::executor::MockUpstream,
}

impl Admin {
    async fn new() -> Self {
        let (upstream_server, mock) = mock_upstream().await;
        let upstream = upstream_server.url();
        let dir = TempDir::new("llm-tower-admin");
        std::fs::write(
            dir.join("gateway.yaml"),
            format!(
                "# kept as written\nmaster_key: {MASTER}\nmetering: {{ sink: none }}\n\
                 providers:\n  \
                   up: {{ kind: openai, api_base: '{upstream}/v1', api_key: {SECRET}, models: [echo] }}\n  \
                   mock: {{ kind: mock }}\n\
                 aliases: {{ fast: up/echo }}\n"
            ),
        )
        .unwrap();
        let reloader =
            Reloader::open(ConfigSource::new(dir.join("gateway.yaml")), None, None).unwrap();
        let gw = serve(
            llm_tower::admin::service(reloader),
            ServerSettings::default(),
        )
        .await;
        Self {
            gw,
            dir,
            _upstream: upstream_server,
            upstream,
            mock,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        let auth = format!("Bearer {MASTER}");
        let req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.gw.url()))
            .header("authorization", auth)
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .unwrap();
        send(req).await
    }

    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let answer = self.call(method, path, body).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{method} {path}: {}",
            answer.text()
        );
        assert!(!answer.text().contains(SECRET), "{}", answer.text());
        answer.json()
    }

    async fn chat(&self, model: &str) -> Answer {
        post(
            &format!("{}/v1/chat/completions", self.gw.url()),
            &chat_body(model, "hello", false),
            &[("authorization", &format!("Bearer {MASTER}"))],
        )
        .await
    }

    fn overlay(&self) -> String {
        std::fs::read_to_string(self.dir.join("gateway.admin.yaml")).unwrap_or_default()
    }
}

#[tokio::test]
async fn every_admin_route_needs_the_master_key() {
    let admin = Admin::new().await;
    let url = format!("{}/admin/providers", admin.gw.url());
    let none = get(&url, &[]).await;
    none.error(StatusCode::UNAUTHORIZED);
    let wrong = get(&url, &[("authorization", "Bearer sk-wrong")]).await;
    wrong.error(StatusCode::UNAUTHORIZED);
    admin.ok("GET", "/admin/providers", None).await;
    let unknown = admin.call("GET", "/admin/nothing", None).await;
    unknown.error(StatusCode::NOT_FOUND);

    // Without a master key there is no admin API.
    let dir = TempDir::new("llm-tower-admin");
    std::fs::write(
        dir.join("g.yaml"),
        "providers: { mock: { kind: mock } }\nmetering: { sink: none }\n",
    )
    .unwrap();
    let reloader = Reloader::open(ConfigSource::new(dir.join("g.yaml")), None, None).unwrap();
    let open = serve(
        llm_tower::admin::service(reloader),
        ServerSettings::default(),
    )
    .await;
    let answer = get(&format!("{}/admin/config", open.url()), &[]).await;
    let error = answer.error(StatusCode::FORBIDDEN);
    assert!(
        error["message"].as_str().unwrap().contains("master_key"),
        "{error}"
    );
}

#[tokio::test]
async fn providers_are_listed_with_health_and_added_tested_changed_and_removed() {
    let admin = Admin::new().await;
    assert_eq!(admin.chat("up/echo").await.status, StatusCode::OK);
    assert_eq!(admin.chat("fast").await.status, StatusCode::OK);
    assert_eq!(
        admin.chat("up/echo?status=500").await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );

    let list = admin.ok("GET", "/admin/providers", None).await;
    let up = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "up")
        .unwrap()
        .clone();
    assert_eq!(up["kind"], "openai");
    assert_eq!(up["api_base"], format!("{}/v1", admin.upstream));
    assert_eq!(up["models"], json!(["echo"]));
    assert_eq!(up["source"], "file");
    assert_eq!(up["settings"]["api_key"], "sk-…6789");
    assert_eq!(up["health"]["requests"], 3, "{up}");
    assert_eq!(up["health"]["errors"], 1);
    assert!(up["health"]["p50_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(up["health"]["last_error"]["status"], 500);

    // A connection tested before it is saved: the upstream's models, or why not.
    let tested = admin
        .ok("POST", "/admin/providers/test", Some(json!({ "kind": "openai", "api_base": format!("{}/v1", admin.upstream), "api_key": "sk-any" })))
        .await;
    assert_eq!(tested["ok"], true, "{tested}");
    assert!(
        tested["models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "echo"),
        "{tested}"
    );
    assert!(tested["latency_ms"].as_f64().unwrap() > 0.0);
    let refused = admin
        .ok(
            "POST",
            "/admin/providers/test",
            Some(json!({ "kind": "openai", "api_base": "http://127.0.0.1:9/v1" })),
        )
        .await;
    assert_eq!(refused["ok"], false);
    assert_eq!(refused["error"]["status"], 502, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{refused}"
    );
    let invalid = admin
        .call(
            "POST",
            "/admin/providers/test",
            Some(json!({ "kind": "openai", "api_base": "ftp://x" })),
        )
        .await;
    let error = invalid.error(StatusCode::BAD_REQUEST);
    assert!(
        error["message"].as_str().unwrap().contains("api_base"),
        "{error}"
    );
    let saved = admin.ok("POST", "/admin/providers/up/test", None).await;
    assert_eq!(saved["ok"], true);
    assert_eq!(
        admin.mock.last_request().unwrap().0["authorization"],
        format!("Bearer {SECRET}")
    );

    // Added, used, refused twice.
    let created = admin
        .ok("POST", "/admin/providers", Some(json!({ "name": "second", "kind": "openai", "api_base": format!("{}/v1", admin.upstream), "models": ["echo"] })))
        .await;
    assert_eq!(created["applied"], true);
    let second = admin.chat("second/echo").await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text());
    assert_eq!(second.headers["x-gateway-provider"], "second");
    let again = admin
        .call(
            "POST",
            "/admin/providers",
            Some(json!({ "name": "second", "kind": "mock" })),
        )
        .await;
    again.error(StatusCode::CONFLICT);
    let listed = admin.ok("GET", "/admin/providers/second", None).await;
    assert_eq!(listed["source"], "admin API");

    // Changed with the settings as the API showed them: the masked key keeps its secret.
    let mut settings = up["settings"].clone();
    settings["models"] = json!(["echo", "other"]);
    admin.ok("PUT", "/admin/providers/up", Some(settings)).await;
    let up = admin.ok("GET", "/admin/providers/up", None).await;
    assert_eq!(up["models"], json!(["echo", "other"]));
    assert_eq!(up["source"], "file, changed through the admin API");
    // Only what changed is in the overlay; never a mask.
    let overlay = admin.overlay();
    assert!(
        overlay.contains("other") && !overlay.contains('…') && !overlay.contains("api_key"),
        "{overlay}"
    );
    assert_eq!(admin.chat("up/echo").await.status, StatusCode::OK);
    assert_eq!(
        admin.mock.last_request().unwrap().0["authorization"],
        format!("Bearer {SECRET}")
    );

    // Removing a provider an alias needs is refused with the field; then it goes.
    let refused = admin.call("DELETE", "/admin/providers/up", None).await;
    let error = refused.error(StatusCode::BAD_REQUEST);
    assert_eq!(error["param"], "aliases.fast", "{error}");
    admin.ok("DELETE", "/admin/providers/second", None).await;
    admin.chat("second/echo").await.error(StatusCode::NOT_FOUND);
    admin
        .call("GET", "/admin/providers/second", None)
        .await
        .error(StatusCode::NOT_FOUND);
    admin
        .call("DELETE", "/admin/providers/second", None)
        .await
        .error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn aliases_and_combos_are_edited_and_validated() {
    let admin = Admin::new().await;
    admin
        .ok(
            "POST",
            "/admin/aliases",
            Some(json!({ "name": "smart", "target": "mock/echo" })),
        )
        .await;
    assert_eq!(
        admin.chat("smart").await.headers["x-gateway-provider"],
        "mock"
    );
    admin
        .ok(
            "PUT",
            "/admin/aliases/smart",
            Some(json!({ "target": "up/echo" })),
        )
        .await;
    assert_eq!(
        admin.chat("smart").await.headers["x-gateway-provider"],
        "up"
    );
    let aliases = admin.ok("GET", "/admin/aliases", None).await;
    let names: Vec<&str> = aliases["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fast", "smart"]);
    let bad = admin
        .call(
            "POST",
            "/admin/aliases",
            Some(json!({ "name": "x", "target": "nowhere/echo" })),
        )
        .await;
    assert_eq!(bad.error(StatusCode::BAD_REQUEST)["param"], "aliases.x");
    let shape = admin
        .call("POST", "/admin/aliases", Some(json!({ "name": "y" })))
        .await;
    assert_eq!(shape.error(StatusCode::BAD_REQUEST)["param"], "target");
    admin.ok("DELETE", "/admin/aliases/smart", None).await;
    admin.chat("smart").await.error(StatusCode::NOT_FOUND);

    admin
        .ok(
            "POST",
            "/admin/combos",
            Some(json!({ "name": "pair", "targets": ["up/echo?status=500", "mock/echo"] })),
        )
        .await;
    let pair = admin.chat("pair").await;
    assert_eq!(pair.status, StatusCode::OK);
    assert_eq!(pair.headers["x-gateway-provider"], "mock");
    let combo = admin.ok("GET", "/admin/combos/pair", None).await;
    assert_eq!(combo["settings"]["targets"][1], "mock/echo");
    let bad = admin
        .call(
            "PUT",
            "/admin/combos/pair",
            Some(json!({ "targets": ["nowhere/x"] })),
        )
        .await;
    assert_eq!(
        bad.error(StatusCode::BAD_REQUEST)["param"],
        "combos.pair.targets.0"
    );
    let typo = admin
        .call(
            "PUT",
            "/admin/combos/pair",
            Some(json!({ "targets": ["mock/echo"], "stratgy": "x" })),
        )
        .await;
    let error = typo.error(StatusCode::BAD_REQUEST);
    assert!(
        error["message"].as_str().unwrap().contains("stratgy"),
        "{error}"
    );
    admin.ok("DELETE", "/admin/combos/pair", None).await;
    assert!(admin.ok("GET", "/admin/combos", None).await["data"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn the_whole_config_comes_back_masked_validates_and_applies() {
    let admin = Admin::new().await;
    let got = admin.ok("GET", "/admin/config", None).await;
    let mut config = got["config"].clone();
    assert_eq!(config["master_key"], "sk-…cdef");
    assert_eq!(config["providers"]["up"]["api_key"], "sk-…6789");
    assert_eq!(got["status"]["generation"], 1);

    config["aliases"]["fast"] = json!("nowhere/echo");
    let bad = admin
        .call(
            "POST",
            "/admin/config/validate",
            Some(json!({ "config": config })),
        )
        .await;
    assert_eq!(bad.error(StatusCode::BAD_REQUEST)["param"], "aliases.fast");
    config["aliases"]["fast"] = json!("mock/echo");
    let valid = admin
        .ok(
            "POST",
            "/admin/config/validate",
            Some(json!({ "config": config })),
        )
        .await;
    assert_eq!(valid["valid"], true);
    assert_eq!(admin.chat("fast").await.headers["x-gateway-provider"], "up");

    let applied = admin
        .ok("PUT", "/admin/config", Some(json!({ "config": config })))
        .await;
    assert_eq!(applied["generation"], 2);
    // The masked master key was restored: it still signs in.
    assert_eq!(
        admin.chat("fast").await.headers["x-gateway-provider"],
        "mock"
    );
    assert!(
        admin.overlay().contains("fast: mock/echo"),
        "{}",
        admin.overlay()
    );
    assert!(!admin.overlay().contains('…'), "{}", admin.overlay());
    let file = std::fs::read_to_string(admin.dir.join("gateway.yaml")).unwrap();
    assert!(file.starts_with("# kept as written\n"), "{file}");
    assert!(file.contains("fast: up/echo"), "{file}");
    let malformed = admin
        .call("PUT", "/admin/config", Some(json!({ "nope": 1 })))
        .await;
    assert_eq!(malformed.error(StatusCode::BAD_REQUEST)["param"], "config");
}

#[tokio::test]
async fn admin_changes_survive_a_restart_of_the_binary() {
    let dir = TempDir::new("llm-tower-admin");
    let file = dir.join("gateway.yaml");
    std::fs::write(
        &file,
        format!("master_key: {MASTER}\nmetering: {{ sink: none }}\nproviders: {{ mock: {{ kind: mock }} }}\n"),
    )
    .unwrap();
    let auth = format!("Bearer {MASTER}");
    let mut first = GatewayProcess::from_file(&file, &[]).await;
    let created = post(
        &format!("{}/admin/aliases", first.url()),
        &json!({ "name": "kept", "target": "mock/echo" }).to_string(),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text());
    first.kill().await;
    let second = GatewayProcess::from_file(&file, &[]).await;
    let answer = post(
        &format!("{}/v1/chat/completions", second.url()),
        &chat_body("kept", "hello", false),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let check = std::process::Command::new(gateway_binary())
        .arg("--check")
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(stdout.contains("kept"), "{stdout}");
}

#[tokio::test]
async fn the_ui_is_served_from_the_binary_with_a_strict_policy() {
    let admin = Admin::new().await;
    let page = get(&format!("{}/ui/", admin.gw.url()), &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(page.text().contains("/ui/app.js"), "{}", page.text());
    let policy = page.headers["content-security-policy"].to_str().unwrap();
    assert!(
        policy.contains("script-src 'self'") && !policy.contains("unsafe"),
        "{policy}"
    );
    let script = get(&format!("{}/ui/app.js", admin.gw.url()), &[]).await;
    assert!(script.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(script.text().contains("sessionStorage"));
    get(&format!("{}/ui/nothing.js", admin.gw.url()), &[])
        .await
        .error(StatusCode::NOT_FOUND);
    post(&format!("{}/ui/", admin.gw.url()), "", &[])
        .await
        .error(StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
#[ignore = "needs Chromium, Playwright (LLM_TOWER_PYTHON) and the LiteLLM proxy: .ci/run installs and starts them"]
async fn the_dashboard_works_in_a_real_chromium() {
    let litellm = needs("LLM_TOWER_LITELLM_URL");
    let litellm_key = needs("LLM_TOWER_LITELLM_KEY");
    let chromium = needs("LLM_TOWER_CHROMIUM");
    let shots = std::env::var("LLM_TOWER_SCREENSHOTS").unwrap_or_else(|_| {
        std::env::temp_dir()
            .join("llm-tower-screenshots")
            .display()
            .to_string()
    });
    let dir = TempDir::new("llm-tower-ui");
    let file = dir.join("gateway.yaml");
    std::fs::write(
        &file,
        format!(
            "master_key: {MASTER}\nmetering: {{ sqlite_path: '{}' }}\n\
             providers:\n  \
               mock: {{ kind: mock }}\n  \
               litellm: {{ kind: litellm, api_base: '{litellm}', api_key: os.environ/LITELLM_KEY, models: [mock-gpt] }}\n",
            dir.join("usage.db").display()
        ),
    )
    .unwrap();
    let gw = GatewayProcess::from_file(&file, &[("LITELLM_KEY", litellm_key.clone())]).await;
    let auth = format!("Bearer {MASTER}");
    let mut sent = 0;
    for model in [
        "mock/echo",
        "mock/echo",
        "litellm/mock-gpt",
        "litellm/mock-gpt",
        "mock/echo?status=500",
    ] {
        let answer = post(
            &format!("{}/v1/chat/completions", gw.url()),
            &chat_body(model, "hello", model == "mock/echo"),
            &[("authorization", &auth)],
        )
        .await;
        assert_eq!(
            answer.status.is_success(),
            !model.contains("status"),
            "{model}: {}",
            answer.text()
        );
        sent += 1;
    }
    pytest(
        &["tests/ui/test_dashboard.py"],
        &[
            ("GATEWAY_URL", gw.url().to_owned()),
            ("MASTER_KEY", MASTER.to_owned()),
            ("LITELLM_URL", litellm),
            ("LITELLM_KEY", litellm_key),
            ("CHROMIUM", chromium),
            ("SCREENSHOTS", shots.clone()),
            ("GATEWAY_REQUESTS", sent.to_string()),
        ],
    )
    .await;
    for page in [
        "overview",
        "providers",
        "routing",
        "keys",
        "requests",
        "phone-overview",
    ] {
        let shot = std::path::Path::new(&shots).join(format!("{page}.png"));
        assert!(
            std::fs::metadata(&shot).is_ok_and(|m| m.len() > 1000),
            "{}",
            shot.display()
        );
    }
}

#[tokio::test]
async fn a_reload_through_the_api_applies_the_file_or_says_why_not() {
    let admin = Admin::new().await;
    let file = admin.dir.join("gateway.yaml");
    let status = admin.ok("GET", "/admin/status", None).await;
    assert_eq!(
        (
            status["generation"].as_u64(),
            status["last_error"].is_null()
        ),
        (Some(1), true)
    );
    let unchanged = admin.ok("POST", "/admin/reload", None).await;
    assert_eq!(unchanged["applied"], false);

    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("fast: up/echo", "fast: mock/echo")).unwrap();
    let applied = admin.ok("POST", "/admin/reload", None).await;
    assert_eq!(
        (applied["applied"].as_bool(), applied["generation"].as_u64()),
        (Some(true), Some(2))
    );
    assert_eq!(
        admin.chat("fast").await.headers["x-gateway-provider"],
        "mock"
    );

    std::fs::write(
        &file,
        text.replace("kind: mock", "kind: mock, colour: blue"),
    )
    .unwrap();
    let refused = admin.call("POST", "/admin/reload", None).await;
    let error = refused.error(StatusCode::BAD_REQUEST);
    assert!(
        error["message"].as_str().unwrap().contains("colour"),
        "{error}"
    );
    let status = admin.ok("GET", "/admin/status", None).await;
    assert_eq!(status["generation"], 2);
    assert!(
        status["last_error"].as_str().unwrap().contains("colour"),
        "{status}"
    );
    assert_eq!(
        admin.chat("fast").await.headers["x-gateway-provider"],
        "mock"
    );
}

#[tokio::test]
async fn a_litellm_config_file_is_read_only_and_the_admin_api_adds_beside_it() {
    let (upstream, _mock) = mock_upstream().await;
    let dir = TempDir::new("llm-tower-admin");
    let file = dir.join("config.yaml");
    std::fs::write(
        &file,
        format!(
            "model_list:\n  - model_name: gpt-4o\n    litellm_params: {{ model: openai/echo, api_base: '{}/v1', api_key: sk-x }}\n\
             general_settings: {{ master_key: {MASTER} }}\nlitellm_settings: {{ success_callback: [] }}\n",
            upstream.url()
        ),
    )
    .unwrap();
    let reloader = Reloader::open(ConfigSource::new(&file), None, None).unwrap();
    let gw = serve(
        llm_tower::admin::service(reloader),
        ServerSettings::default(),
    )
    .await;
    let auth = format!("Bearer {MASTER}");
    let call = |method: &'static str, path: &'static str, body: Value| {
        let (url, auth) = (gw.url(), auth.clone());
        async move {
            send(
                http::Request::builder()
                    .method(method)
                    .uri(format!("{url}{path}"))
                    .header("authorization", auth)
                    .body(http_body_util::Full::new(bytes::Bytes::from(
                        body.to_string(),
                    )))
                    .unwrap(),
            )
            .await
        }
    };
    let providers = call("GET", "/admin/providers", Value::Null).await.json();
    assert_eq!(
        providers["data"][0]["source"], "litellm_config",
        "{providers}"
    );
    let aliases = call("GET", "/admin/aliases", Value::Null).await.json();
    assert_eq!(aliases["data"][0]["name"], "gpt-4o", "{aliases}");
    let refused = call("DELETE", "/admin/aliases/gpt-4o", Value::Null).await;
    let error = refused.error(StatusCode::CONFLICT);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("LiteLLM config file"),
        "{error}"
    );

    let added = call(
        "POST",
        "/admin/aliases",
        json!({ "name": "mine", "target": "gpt-4o" }),
    )
    .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.text());
    let answer = post(
        &format!("{}/v1/chat/completions", gw.url()),
        &chat_body("mine", "hello", false),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let overlay = std::fs::read_to_string(dir.join("config.admin.yaml")).unwrap();
    assert!(
        overlay.contains("mine: gpt-4o") && !overlay.contains("model_list"),
        "{overlay}"
    );
    assert!(std::fs::read_to_string(&file)
        .unwrap()
        .starts_with("model_list:"));
}
