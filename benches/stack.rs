//! Whole-stack overhead, in process, per request, over the built-in mock (`kind: mock`).
//!
//! ```text
//! cargo bench --bench stack
//! ```
//!
//! - `parse/chat_1k`: [`LlmRequest::parse`] alone on a typical ~1 KB chat body.
//! - `mock/{json,stream}`: the mock executor called directly (request pre-parsed), no layers.
//! - `executors/{json,stream}`: the terminal [`Executors`] service (routing, metrics,
//!   response headers) with the request pre-parsed.
//! - `gateway/{json,stream}`: the whole service hyper would serve
//!   ([`Gateway::into_service`]: request id → routes → auth → parse → executors), body
//!   collected to the end.
//!
//! `gateway − mock` is what the layers cost per request; `stream` answers 50 words, i.e.
//! 53 SSE events (role, 50 words, finish, `[DONE]`).
//!
//! - `layers/*`: the feature layers over [`Executors`] with the request pre-parsed, for a
//!   JSON chat request: `none`; `routing` (alias → idempotency → combo, for a plain
//!   `provider/model` without `Idempotency-Key`: they should cost nothing measurable);
//!   `metering` alone; `all`; `all_combo` (the request names a combo: first attempt
//!   succeeds); `all_replay` (an `Idempotency-Key` already stored: replayed from memory).
//!   Metering runs with `sink: none`, so the ledger's writes (off the request path, on
//!   another task) stay out of the per-request number; Prometheus export is still in.
//! - `tenancy/*`: the whole service with a configured key, a virtual key with limits
//!   (counted in memory) and a virtual key without: what a virtual key adds per request.

use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use llm_tower::executor::MockExecutor;
use llm_tower::{Body, Config, Endpoint, Gateway, LlmRequest};
use tower::{Service, ServiceExt};

const CONFIG: &str = "providers:\n  mock: { kind: mock, models: [echo] }\n\
    \x20 defaults: { kind: mock, params: { seed: 7, presence_penalty: 0.1, frequency_penalty: 0.1 } }\n\
    aliases: { gpt: mock/echo }\n\
    combos: { smart: { targets: [mock/echo, mock/other] } }\n\
    metering: { sink: none }\n";

/// A typical chat request of about 1 KB: system prompt, a few turns, sampling options.
fn chat_body(model: &str, stream: bool) -> Bytes {
    let body = serde_json::json!({
        "model": model,
        "messages": [
            { "role": "system", "content": "You are a concise assistant for a software team. Answer in plain English, prefer short paragraphs, and say when you are unsure instead of guessing. Keep code samples minimal and runnable." },
            { "role": "user", "content": "We run an LLM gateway in front of several providers. What should we measure to know what the gateway itself costs per request?" },
            { "role": "assistant", "content": "Measure the added latency (gateway p50 minus direct p50), CPU time per request in the gateway process, memory at idle and under load, and for streams the per-event overhead." },
            { "role": "user", "content": [{ "type": "text", "text": "And how do we keep those numbers comparable on a noisy two-core machine? Give three concrete tips." }] }
        ],
        "temperature": 0.2,
        "top_p": 0.95,
        "max_tokens": 256,
        "user": "bench-user-0001",
        "metadata": { "team": "platform", "purpose": "bench" },
        "stream": stream,
    });
    serde_json::to_vec(&body).expect("json").into()
}

fn chat_request(body: &Bytes) -> Request<Full<Bytes>> {
    Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(Full::new(body.clone()))
        .expect("request")
}

async fn collect<B>(response: Response<B>) -> usize
where
    B: http_body::Body<Data = bytes::Bytes>,
    B::Error: std::fmt::Debug,
{
    assert!(response.status().is_success(), "{}", response.status());
    response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .len()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn parse(c: &mut Criterion) {
    let body = chat_body("mock/echo", false);
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("chat_1k", |b| {
        b.iter(|| {
            LlmRequest::parse(Endpoint::ChatCompletions, std::hint::black_box(&body))
                .expect("parse")
        })
    });
    group.finish();
}

fn stack(c: &mut Criterion) {
    let rt = runtime();
    // As the binary does: a Prometheus recorder installed before the gateway is built.
    let _guard = rt.enter();
    let prometheus = llm_tower::install_prometheus();
    let config = Config::from_yaml(CONFIG).expect("config");
    let service = Gateway::from_config(&config)
        .expect("gateway")
        .with_prometheus(prometheus)
        .into_service();
    let executors = config.executors().expect("executors");
    let mock = MockExecutor::new();

    for (name, model, stream) in [
        ("json", "mock/echo", false),
        ("stream", "mock/echo?words=50", true),
    ] {
        let body = chat_body(model, stream);
        let llm = LlmRequest::parse(Endpoint::ChatCompletions, &body).expect("parse");
        let upstream_model = model.split_once('/').expect("provider/model").1.to_owned();
        // Sanity: the gateway answers what the mock answers, byte count aside (ids differ).
        let size = rt.block_on(async {
            let response = service.clone().oneshot(chat_request(&body)).await.unwrap();
            collect(response).await
        });
        eprintln!("{name}: request {} B, response {size} B", body.len());

        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements(1));

        group.bench_function("mock", |b| {
            b.to_async(&rt).iter_batched(
                || {
                    let req = Request::post("/v1/chat/completions")
                        .body(body.clone())
                        .expect("request");
                    (req, llm.clone())
                },
                |(req, llm)| {
                    let mock = &mock;
                    let model = &upstream_model;
                    async move {
                        let response = mock.execute(req, &llm, model).await.expect("mock");
                        collect(response).await
                    }
                },
                BatchSize::SmallInput,
            )
        });

        group.bench_function("executors", |b| {
            b.to_async(&rt).iter_batched(
                || {
                    let mut req = Request::post("/v1/chat/completions")
                        .body(body.clone())
                        .expect("request");
                    req.extensions_mut().insert(llm.clone());
                    req
                },
                |req| {
                    let mut executors = executors.clone();
                    async move {
                        let response = executors
                            .ready()
                            .await
                            .expect("ready")
                            .call(req)
                            .await
                            .expect("executors");
                        collect(response).await
                    }
                },
                BatchSize::SmallInput,
            )
        });

        group.bench_function("gateway", |b| {
            b.to_async(&rt).iter_batched(
                || chat_request(&body),
                |req| {
                    // hyper clones the service per connection and calls it per request.
                    let service = service.clone();
                    async move {
                        let response = service.oneshot(req).await.expect("infallible");
                        collect(response).await
                    }
                },
                BatchSize::SmallInput,
            )
        });
        group.finish();
    }
}

/// The feature layers, one by one and together, over the executors.
fn layers(c: &mut Criterion) {
    use llm_tower::alias::AliasLayer;
    use llm_tower::combo::ComboLayer;
    use llm_tower::idempotency::IdempotencyLayer;
    use llm_tower::metering::MeteringLayer;
    use tower::util::BoxCloneService;
    use tower::ServiceBuilder;

    type Stack = BoxCloneService<Request<Bytes>, Response<Body>, llm_tower::GatewayError>;

    let rt = runtime();
    let _guard = rt.enter();
    let config = Config::from_yaml(CONFIG).expect("config");
    let executors = config.executors().expect("executors");
    let aliases = config.aliases().expect("aliases");
    let routing = || {
        ServiceBuilder::new()
            .layer(AliasLayer::new(aliases.clone()))
            .layer(IdempotencyLayer::from_settings(&config.idempotency, None).expect("idempotency"))
            .layer(ComboLayer::new(config.combos(&aliases).expect("combos")))
    };
    let metering = MeteringLayer::from_settings(&config.metering).expect("metering");
    let stacks: Vec<(&str, &str, Option<&str>, Stack)> = vec![
        (
            "none",
            "mock/echo",
            None,
            BoxCloneService::new(executors.clone()),
        ),
        // A provider with default parameters (a LiteLLM deployment's `litellm_params`):
        // what filling in the three the request lacks costs.
        (
            "none_params",
            "defaults/echo",
            None,
            BoxCloneService::new(executors.clone()),
        ),
        (
            "routing",
            "mock/echo",
            None,
            BoxCloneService::new(routing().service(executors.clone())),
        ),
        (
            "metering",
            "mock/echo",
            None,
            BoxCloneService::new(
                ServiceBuilder::new()
                    .layer(metering.clone())
                    .service(executors.clone()),
            ),
        ),
        (
            "all",
            "mock/echo",
            None,
            BoxCloneService::new(
                ServiceBuilder::new()
                    .layer(metering.clone())
                    .layer(routing())
                    .service(executors.clone()),
            ),
        ),
        (
            "all_combo",
            "smart",
            None,
            BoxCloneService::new(
                ServiceBuilder::new()
                    .layer(metering.clone())
                    .layer(routing())
                    .service(executors.clone()),
            ),
        ),
        (
            "all_replay",
            "mock/echo",
            Some("bench-key"),
            BoxCloneService::new(
                ServiceBuilder::new()
                    .layer(metering.clone())
                    .layer(routing())
                    .service(executors.clone()),
            ),
        ),
    ];
    let mut group = c.benchmark_group("layers");
    group.throughput(Throughput::Elements(1));
    for (name, model, key, stack) in stacks {
        let body = chat_body(model, false);
        let llm = LlmRequest::parse(Endpoint::ChatCompletions, &body).expect("parse");
        let make = || {
            let mut req = Request::post("/v1/chat/completions")
                .body(body.clone())
                .expect("request");
            if let Some(key) = key {
                req.headers_mut()
                    .insert("idempotency-key", key.parse().expect("header"));
            }
            req.extensions_mut().insert(llm.clone());
            req
        };
        // Warm: stores the idempotent answer the replay case replays.
        rt.block_on(async { collect(stack.clone().oneshot(make()).await.expect("stack")).await });
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_batched(
                make,
                |req| {
                    let stack = stack.clone();
                    async move { collect(stack.oneshot(req).await.expect("stack")).await }
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// What a virtual key costs over a configured one, through the whole gateway service:
/// `static_key` (a key from the config file), `virtual_key` (a key made by
/// `/key/generate`, with RPM, TPM and parallel limits counted in memory) and
/// `virtual_key_unlimited` (no limits: the lookup and the model check only).
fn tenancy(c: &mut Criterion) {
    let rt = runtime();
    let _guard = rt.enter();
    let yaml = format!(
        "{CONFIG}master_key: sk-bench-master\nkeys: [{{ name: static, key: sk-bench-static }}]\n\
         tenancy: {{ limits: memory }}\n"
    )
    .replace(
        "metering: { sink: none }",
        "metering: { sqlite_path: ':memory:' }",
    );
    let config = Config::from_yaml(&yaml).expect("config");
    let service = Gateway::from_config(&config)
        .expect("gateway")
        .into_service();
    let generate = |fields: serde_json::Value| {
        let body = Bytes::from(fields.to_string());
        let req = Request::post("/key/generate")
            .header("authorization", "Bearer sk-bench-master")
            .header("content-type", "application/json")
            .body(Full::new(body))
            .expect("request");
        rt.block_on(async {
            let response = service.clone().oneshot(req).await.expect("infallible");
            assert!(response.status().is_success(), "{}", response.status());
            let body = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            let key: serde_json::Value = serde_json::from_slice(&body).expect("json");
            key["key"].as_str().expect("key").to_owned()
        })
    };
    let limited = generate(serde_json::json!({
        "models": ["mock/*"], "rpm_limit": 1_000_000_000u64, "tpm_limit": 1_000_000_000_000u64,
        "max_parallel_requests": 1000,
    }));
    let unlimited = generate(serde_json::json!({}));
    let body = chat_body("mock/echo", false);
    let mut group = c.benchmark_group("tenancy");
    group.throughput(Throughput::Elements(1));
    for (name, key) in [
        ("static_key", "sk-bench-static".to_owned()),
        ("virtual_key", limited),
        ("virtual_key_unlimited", unlimited),
    ] {
        let auth = format!("Bearer {key}");
        let make = || {
            let mut req = chat_request(&body);
            req.headers_mut()
                .insert("authorization", auth.parse().expect("header"));
            req
        };
        rt.block_on(async { collect(service.clone().oneshot(make()).await.unwrap()).await });
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_batched(
                make,
                |req| {
                    let service = service.clone();
                    async move { collect(service.oneshot(req).await.expect("infallible")).await }
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = parse, stack, layers, tenancy
}
criterion_main!(benches);
