//! Hot reload: config changes under traffic (the binary, its file watch and SIGHUP), and
//! the state a reload carries over (in process).

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use llm_tower::reload::{ConfigSource, Reloaded, Reloader};
use llm_tower::server::ServerSettings;
use support::*;

/// Config version `v`: provider `p{v}` added (and `p{v-1}` gone), provider `r` re-pointed
/// to the other upstream, the alias `cur` and the combo `both` moved to `p{v}`.
fn version(v: u64, a: &str, b: &str) -> String {
    let (here, there) = if v % 2 == 0 { (a, b) } else { (b, a) };
    format!(
        "metering: {{ sink: none }}\n\
         providers:\n  \
           mock: {{ kind: mock }}\n  \
           r: {{ kind: openai, api_base: '{here}/v1', api_key: sk-r, models: [echo] }}\n  \
           p{v}: {{ kind: openai, api_base: '{there}/v1', api_key: sk-p, models: [echo] }}\n\
         aliases:\n  \
           cur: p{v}/echo\n  \
           slow: 'p{v}/echo?words=12&chunk_delay=25ms'\n\
         combos:\n  \
           both: {{ strategy: priority, targets: [p{v}/echo, r/echo] }}\n"
    )
}

/// One request of the traffic loop: the version it was served by, or what went wrong.
async fn one(
    client: &Client<HttpConnector, Full<Bytes>>,
    url: &str,
    model: &str,
    stream: bool,
) -> Result<u64, String> {
    let req = request(
        &format!("{url}/v1/chat/completions"),
        chat_body(model, "one two three", stream),
        &[],
    );
    let response = client
        .request(req)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let status = response.status();
    let provider = response
        .headers()
        .get("x-gateway-provider")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    let text = String::from_utf8_lossy(&body);
    if status != StatusCode::OK {
        return Err(format!("{model}: {status}: {text}"));
    }
    if stream {
        let data = sse_data(&text);
        let words: usize = data
            .iter()
            .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
            .filter_map(|c| {
                c["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_owned)
            })
            .map(|t| t.split_whitespace().count())
            .sum();
        if data.last().map(String::as_str) != Some("[DONE]") || words != 12 {
            return Err(format!("{model}: stream cut ({words} words): {text}"));
        }
    }
    provider
        .strip_prefix('p')
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("{model}: served by `{provider}`"))
}

/// The version `/v1/models` shows (the `p{v}` provider it lists).
async fn serving(url: &str) -> Option<u64> {
    let models = get(&format!("{url}/v1/models"), &[]).await.json();
    models["data"].as_array()?.iter().find_map(|m| {
        m["id"]
            .as_str()?
            .strip_suffix("/echo")?
            .strip_prefix('p')?
            .parse()
            .ok()
    })
}

async fn until_serving(url: &str, v: u64) {
    for _ in 0..100 {
        if serving(url).await == Some(v) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("version {v} not serving within 5 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_config_changes_under_traffic_fail_no_request() {
    let (up_a, _) = mock_upstream().await;
    let (up_b, _) = mock_upstream().await;
    let (a, b) = (up_a.url(), up_b.url());
    let dir = TempDir::new("llm-tower-reload");
    let file = dir.join("gateway.yaml");
    std::fs::write(&file, version(1, &a, &b)).unwrap();
    let gw = GatewayProcess::from_file(&file, &[]).await;
    let url = gw.url().to_owned();
    until_serving(&url, 1).await;

    // The versions known to serve (a lower bound for a request starting now) and written
    // (an upper bound for one that has ended).
    let confirmed = Arc::new(AtomicU64::new(1));
    let written = Arc::new(AtomicU64::new(1));
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let served = Arc::new(AtomicU64::new(0));
    let mut loops = Vec::new();
    for (model, stream) in [
        ("cur", false),
        ("both", false),
        ("slow", true),
        ("slow", true),
    ] {
        let (url, confirmed, written, stop, failures, served) = (
            url.clone(),
            confirmed.clone(),
            written.clone(),
            stop.clone(),
            failures.clone(),
            served.clone(),
        );
        loops.push(tokio::spawn(async move {
            // One pooled client per loop: keep-alive connections live across reloads.
            let client = Client::builder(TokioExecutor::new()).build_http();
            while !stop.load(Ordering::SeqCst) {
                let low = confirmed.load(Ordering::SeqCst);
                let outcome = one(&client, &url, model, stream).await;
                let high = written.load(Ordering::SeqCst);
                served.fetch_add(1, Ordering::Relaxed);
                match outcome {
                    Ok(v) if (low..=high).contains(&v) => {}
                    Ok(v) => failures.lock().unwrap().push(format!(
                        "{model}: served by version {v}, current was {low}..={high}"
                    )),
                    Err(e) => failures.lock().unwrap().push(e),
                }
            }
        }));
    }

    for v in 2..=21 {
        if v == 11 {
            // An invalid change: refused with the field, while traffic continues.
            std::fs::write(
                &file,
                version(v, &a, &b).replace("cur: p11/echo", "cur: nowhere/echo"),
            )
            .unwrap();
            gw.hangup();
            for _ in 0..100 {
                if gw.output().contains("config reload refused") {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let output = gw.output();
            assert!(
                output.contains("config reload refused") && output.contains("aliases.cur"),
                "{output}"
            );
            assert_eq!(serving(&url).await, Some(10));
        }
        written.store(v, Ordering::SeqCst);
        std::fs::write(&file, version(v, &a, &b)).unwrap();
        if v % 2 == 0 {
            gw.hangup(); // at once; odd versions wait for the file watch
        }
        until_serving(&url, v).await;
        confirmed.store(v, Ordering::SeqCst);
        // Let requests (and the slow streams) straddle this version.
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for task in loops {
        task.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} failed: {failures:#?}",
        failures.len()
    );
    let served = served.load(Ordering::Relaxed);
    assert!(served > 60, "only {served} requests");
    let output = gw.output();
    assert_eq!(output.matches("config reloaded").count(), 20, "{output}");
    let metrics = get(&format!("{url}/metrics"), &[]).await.text();
    for line in [
        r#"llm_tower_config_reloads_total{outcome="applied"} 20"#,
        r#"llm_tower_config_reloads_total{outcome="refused"} 1"#,
    ] {
        assert!(metrics.contains(line), "no {line} in\n{metrics}");
    }
}

/// A reloading gateway in this process over the config file `file`.
async fn reloading(file: &std::path::Path) -> (Reloader, Running) {
    let reloader = Reloader::open(ConfigSource::new(file), None, None).unwrap();
    let server = serve(
        llm_tower::gateway::served(reloader.service()),
        ServerSettings::default(),
    )
    .await;
    (reloader, server)
}

/// Adds `name: target` to `aliases:` of the running config.
async fn add_alias(reloader: &Reloader, name: &str, target: &str) -> Reloaded {
    let (name, target) = (name.to_owned(), target.to_owned());
    reloader
        .apply(move |doc| {
            let aliases = doc
                .as_mapping_mut()
                .unwrap()
                .entry("aliases".into())
                .or_insert_with(|| serde_yaml_ng::Mapping::new().into());
            aliases
                .as_mapping_mut()
                .unwrap()
                .insert(name.into(), target.into());
            Ok(())
        })
        .await
        .unwrap()
}

fn header<'a>(answer: &'a Answer, name: &str) -> &'a str {
    answer.headers.get(name).map_or("", |v| v.to_str().unwrap())
}

#[tokio::test]
async fn a_reload_keeps_the_cache_and_breakers_whose_settings_did_not_change() {
    let dir = TempDir::new("llm-tower-reload");
    let file = dir.join("gateway.yaml");
    let base = "# the owner's comment stays\n\
                providers: { a: { kind: mock }, b: { kind: mock } }\n\
                metering: { sink: none }\n\
                cache: { enabled: true }\n\
                circuit_breaker: { failures: 1, window: 1m, cooldown: 1m }\n\
                combos: { pair: { targets: ['a/echo?status=500', b/echo] } }\n";
    std::fs::write(&file, base).unwrap();
    let (reloader, gw) = reloading(&file).await;
    let chat = format!("{}/v1/chat/completions", gw.url());
    let pair = post(&chat, &chat_body("pair", "hi 1", false), &[]).await;
    assert_eq!(header(&pair, "x-gateway-attempts"), "2", "{}", pair.text());
    let first = post(&chat, &chat_body("b/echo", "cache me", false), &[]).await;
    assert_eq!(header(&first, "x-gateway-cache"), "miss");

    assert_eq!(
        add_alias(&reloader, "fast", "b/echo").await,
        Reloaded::Applied(2)
    );
    let fast = post(&chat, &chat_body("fast", "x", false), &[]).await;
    assert_eq!(header(&fast, "x-gateway-provider"), "b", "{}", fast.text());
    // The breaker of `a/echo?status=500` is still open: one attempt, on `b`.
    let pair = post(&chat, &chat_body("pair", "hi 2", false), &[]).await;
    assert_eq!(header(&pair, "x-gateway-attempts"), "1");
    assert_eq!(header(&pair, "x-gateway-provider"), "b");
    let again = post(&chat, &chat_body("b/echo", "cache me", false), &[]).await;
    assert_eq!(header(&again, "x-gateway-cache"), "hit");
    // The owner's file is as they wrote it; the change is in the overlay beside it.
    assert_eq!(std::fs::read_to_string(&file).unwrap(), base);
    let overlay = std::fs::read_to_string(dir.join("gateway.admin.yaml")).unwrap();
    assert!(overlay.contains("fast: b/echo"), "{overlay}");

    // Provider `a` re-pointed (other settings): its targets start afresh. The cache's
    // settings changed: a new, empty cache.
    reloader
        .apply(|doc| {
            doc["providers"]["a"]["models"] = vec!["echo"].into();
            doc["cache"]["ttl"] = "10m".into();
            Ok(())
        })
        .await
        .unwrap();
    let pair = post(&chat, &chat_body("pair", "hi 3", false), &[]).await;
    assert_eq!(header(&pair, "x-gateway-attempts"), "2");
    let after = post(&chat, &chat_body("b/echo", "cache me", false), &[]).await;
    assert_eq!(header(&after, "x-gateway-cache"), "miss");

    // A restart serves the file with its overlay.
    drop(gw);
    let (_restarted, gw) = reloading(&file).await;
    let chat = format!("{}/v1/chat/completions", gw.url());
    let fast = post(&chat, &chat_body("fast", "x", false), &[]).await;
    assert_eq!(fast.status, StatusCode::OK, "{}", fast.text());
}

#[tokio::test]
async fn a_refused_change_leaves_the_running_config_and_says_why() {
    let dir = TempDir::new("llm-tower-reload");
    let file = dir.join("gateway.yaml");
    std::fs::write(
        &file,
        "providers: { a: { kind: mock } }\nmetering: { sink: none }\n",
    )
    .unwrap();
    let (reloader, gw) = reloading(&file).await;
    let err = reloader
        .apply(|doc| {
            doc["aliases"] = serde_yaml_ng::from_str("{ x: nowhere/echo }").unwrap();
            Ok(())
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("aliases.x"), "{err}");
    assert!(!dir.join("gateway.admin.yaml").exists());
    let status = reloader.status();
    assert_eq!(status.generation, 1);
    assert_eq!(status.last_error.as_deref(), Some(err.as_str()));

    // The same through the file: refused, then a good file applies and clears the error.
    std::fs::write(&file, "providers: { a: { kind: nope } }\n").unwrap();
    let err = reloader.reload().await.unwrap_err().to_string();
    assert!(err.contains("providers.a") && err.contains("nope"), "{err}");
    let ok = post(
        &format!("{}/v1/chat/completions", gw.url()),
        &chat_body("a/echo", "still here", false),
        &[],
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    std::fs::write(
        &file,
        "providers: { a: { kind: mock }, b: { kind: mock } }\nmetering: { sink: none }\n",
    )
    .unwrap();
    assert_eq!(reloader.reload().await.unwrap(), Reloaded::Applied(2));
    assert_eq!(reloader.reload().await.unwrap(), Reloaded::Unchanged);
    assert_eq!(reloader.status().last_error, None);
    // `listen` needs a restart: applied otherwise, and said.
    std::fs::write(
        &file,
        "listen: 127.0.0.1:9\nproviders: { a: { kind: mock }, b: { kind: mock } }\nmetering: { sink: none }\n",
    )
    .unwrap();
    assert_eq!(reloader.reload().await.unwrap(), Reloaded::Applied(3));
    assert_eq!(reloader.status().restart_needed, ["listen"]);
    std::fs::write(
        &file,
        "providers: { a: { kind: mock }, b: { kind: mock } }\nmetering: { sink: none }\nserver: { max_connections: 5 }\n",
    )
    .unwrap();
    assert_eq!(reloader.reload().await.unwrap(), Reloaded::Applied(4));
    assert_eq!(reloader.status().restart_needed, ["server.max_connections"]);
}

#[tokio::test]
async fn virtual_keys_their_counters_and_the_usage_writer_live_through_a_reload() {
    let dir = TempDir::new("llm-tower-reload");
    let file = dir.join("gateway.yaml");
    let ledger = dir.join("ledger.db");
    std::fs::write(
        &file,
        format!(
            "master_key: sk-master\nproviders: {{ a: {{ kind: mock }} }}\nmetering: {{ sqlite_path: '{}' }}\n",
            ledger.display()
        ),
    )
    .unwrap();
    let (reloader, gw) = reloading(&file).await;
    let generated = post(
        &format!("{}/key/generate", gw.url()),
        r#"{"key_alias": "app", "rpm_limit": 2}"#,
        &[("authorization", "Bearer sk-master")],
    )
    .await;
    assert_eq!(generated.status, StatusCode::OK, "{}", generated.text());
    let key = format!("Bearer {}", generated.json()["key"].as_str().unwrap());
    let chat = format!("{}/v1/chat/completions", gw.url());
    let call = |model: &'static str| {
        let (chat, key) = (chat.clone(), key.clone());
        async move {
            post(
                &chat,
                &chat_body(model, "hello", false),
                &[("authorization", &key)],
            )
            .await
        }
    };
    let first = call("a/echo").await;
    assert_eq!(header(&first, "x-ratelimit-remaining-requests"), "1");

    assert_eq!(
        add_alias(&reloader, "fast", "a/echo").await,
        Reloaded::Applied(2)
    );
    let second = call("fast").await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text());
    assert_eq!(header(&second, "x-ratelimit-remaining-requests"), "0");
    call("fast").await.error(StatusCode::TOO_MANY_REQUESTS);
    reloader.current().gateway().flush_usage().await;
    // One writer for both configs: every request once in the ledger.
    let rows = ledger_rows(&ledger, 3).await;
    assert_eq!(rows.len(), 3, "{rows:#?}");
}
