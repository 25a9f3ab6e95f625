//! The gateway built in code, as a library user builds it: their own executor registered
//! beside the built-in ones, named by aliases and combos, served over real HTTP.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use llm_tower::alias::{Aliases, Names};
use llm_tower::combo::{CircuitBreakerSettings, ComboSettings, Combos};
use llm_tower::executor::{take_request, Executors, MockExecutor};
use llm_tower::server::ServerSettings;
use llm_tower::{Body, Gateway, GatewayError};
use serde_json::{json, Value};
use support::*;

/// A user's executor: answers every chat request with the model it was asked for, and
/// fails for a model named `down`.
fn my_executor(seen: Arc<Mutex<Vec<String>>>) -> Executors {
    let mine = tower::service_fn(move |mut req: Request<Bytes>| {
        let seen = seen.clone();
        async move {
            let (llm, model) = take_request(&mut req)?;
            seen.lock().unwrap().push(model.to_string());
            if &*model == "down" {
                return Err(GatewayError::upstream_unreachable("mine", "switched off"));
            }
            let answer = json!({
                "id": "mine-1", "object": "chat.completion", "created": 0, "model": &*model,
                "choices": [{ "index": 0, "finish_reason": "stop",
                              "message": { "role": "assistant", "content": format!("mine answers {}", llm.model()) } }],
            });
            Ok::<_, GatewayError>(Response::new(Body::from(answer.to_string())))
        }
    });
    Executors::builder()
        .service("mine", mine)
        .service("mock", MockExecutor::new())
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_users_own_executor_serves_aliases_and_combos() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let executors = my_executor(seen.clone());
    let names = Names {
        provider: &|p| executors.contains(p),
        combo: &|c| c == "both",
    };
    let aliases = Aliases::new(
        &BTreeMap::from([("fast".to_owned(), "mine/small".to_owned())]),
        &names,
    )
    .unwrap();
    let combos = Combos::new(
        &BTreeMap::from([(
            "both".to_owned(),
            ComboSettings::new(["mine/down", "mock/echo"]),
        )]),
        &aliases,
        &|p| executors.contains(p),
        &CircuitBreakerSettings::default(),
    )
    .unwrap();
    let gateway = Gateway::builder(executors)
        .aliases(aliases)
        .combos(combos)
        .models([("mine", "small")])
        .build();
    let gw = serve(gateway.into_service(), ServerSettings::default()).await;
    let url = format!("{}/v1/chat/completions", gw.url());

    let direct = post(&url, &chat_body("mine/big", "hi", false), &[]).await;
    assert_eq!(direct.status, StatusCode::OK, "{}", direct.text());
    assert_eq!(
        direct.json()["choices"][0]["message"]["content"],
        "mine answers mine/big"
    );
    assert_eq!(direct.headers["x-gateway-provider"], "mine");
    assert_eq!(direct.headers["x-gateway-model"], "big");

    let aliased = post(&url, &chat_body("fast", "hi", false), &[]).await;
    assert_eq!(aliased.status, StatusCode::OK, "{}", aliased.text());
    assert_eq!(aliased.headers["x-gateway-model"], "small");

    // The combo's first target is the user's executor failing; the mock answers.
    let combo = post(&url, &chat_body("both", "hello", false), &[]).await;
    assert_eq!(combo.status, StatusCode::OK, "{}", combo.text());
    assert_eq!(combo.headers["x-gateway-provider"], "mock");
    assert_eq!(combo.headers["x-gateway-attempts"], "2");
    assert_eq!(*seen.lock().unwrap(), ["big", "small", "down"]);

    let models: Value = get(&format!("{}/v1/models", gw.url()), &[]).await.json();
    let ids: Vec<_> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["mine/small", "both", "fast"]);

    let unknown = post(&url, &chat_body("theirs/x", "hi", false), &[]).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.text());
}

#[test]
fn provider_names_with_a_slash_are_refused_at_build() {
    let err = Executors::builder()
        .service("a/b", MockExecutor::new())
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("contain no `/`"), "{err}");
}

#[tokio::test]
async fn a_gateway_built_without_an_exporter_says_so_at_metrics() {
    let executors = Executors::builder()
        .service("mock", MockExecutor::new())
        .build()
        .unwrap();
    let gw = serve(
        Gateway::builder(executors).build().into_service(),
        ServerSettings::default(),
    )
    .await;
    let metrics = get(&format!("{}/metrics", gw.url()), &[]).await;
    assert_eq!(metrics.status, StatusCode::NOT_FOUND, "{}", metrics.text());
    assert!(
        metrics.text().contains("without a Prometheus exporter"),
        "{}",
        metrics.text()
    );
}
