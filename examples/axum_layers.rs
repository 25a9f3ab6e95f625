//! A subset of the gateway's layers around your own executor, in your own axum app:
//! parse (body limit, one parse), metering (usage and latency to Prometheus) and a combo
//! that falls back from your service to the built-in mock. No YAML: each layer is built
//! from its settings.
//!
//! ```text
//! cargo run --example axum_layers
//! curl -s localhost:8080/v1/chat/completions -H 'content-type: application/json' \
//!   -d '{"model":"ours","messages":[{"role":"user","content":"hi"}]}'
//! ```

use std::collections::BTreeMap;

use axum::Router;
use bytes::Bytes;
use http::{Request, Response};
use llm_tower::alias::Aliases;
use llm_tower::combo::{CircuitBreakerSettings, ComboLayer, ComboSettings, Combos};
use llm_tower::executor::{take_request, Executors, MockExecutor};
use llm_tower::metering::{MeteringLayer, MeteringSettings, SinkKind};
use llm_tower::parse::ParseLayer;
use llm_tower::{Body, GatewayError};
use tower::ServiceBuilder;

/// Your executor: here one that is down half the time, so the combo has work to do.
async fn my_model(mut req: Request<Bytes>) -> Result<Response<Body>, GatewayError> {
    let (llm, model) = take_request(&mut req)?;
    if fastrand::bool() {
        return Err(GatewayError::upstream_unreachable(
            "mine",
            "my model is resting",
        ));
    }
    let answer = serde_json::json!({
        "id": "mine-1", "object": "chat.completion", "created": 0, "model": &*model,
        "choices": [{ "index": 0, "finish_reason": "stop",
                      "message": { "role": "assistant", "content": format!("{} says hi", llm.model()) } }],
    });
    let mut response = Response::new(Body::from(answer.to_string()));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let executors = Executors::builder()
        .service("mine", tower::service_fn(my_model))
        .service("mock", MockExecutor::new())
        .build()?;
    let combos = Combos::new(
        &BTreeMap::from([(
            "ours".to_owned(),
            ComboSettings::new(["mine/v1", "mock/echo"]),
        )]),
        &Aliases::default(),
        &|provider| executors.contains(provider),
        &CircuitBreakerSettings::default(),
    )?;
    let metering = MeteringLayer::from_settings(&MeteringSettings::default().sink(SinkKind::None))?;
    let llm = ServiceBuilder::new()
        .layer(ParseLayer::new(1 << 20))
        .layer(metering)
        .layer(ComboLayer::new(combos))
        .service(executors);

    let app = Router::new()
        .route(
            "/",
            axum::routing::get(|| async { "my app; POST /v1/chat/completions" }),
        )
        .route_service("/v1/chat/completions", llm);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
