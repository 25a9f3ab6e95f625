//! The response cache's costs, in process, per request, through the whole gateway service
//! over the built-in mock (`kind: mock`, metering `sink: none`).
//!
//! ```text
//! cargo bench --bench cache
//! ```
//!
//! - `gateway/proxied_{json,stream}`: the cache off; the answer comes from the mock.
//! - `gateway/miss_json`: the cache on, a new request each time (canonical key + BLAKE3,
//!   a memory lookup, the answer captured and stored).
//! - `gateway/hit_{json,stream}`: the same request again, answered from memory (as JSON,
//!   or replayed as a 53-event SSE stream).
//! - `semantic/embed_hash`: the built-in embedder on a one-line question.
//! - `semantic/lookup_{1k,10k}`: one search of a partition of 1,000 / 10,000 entries
//!   (512 dimensions, exact dot products, then the guard on candidates).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use llm_tower::cache::semantic::{HashEmbedder, Index};
use llm_tower::{Config, Gateway};
use tower::{Service, ServiceExt};

fn chat_body(question: &str, stream: bool) -> Bytes {
    let body = serde_json::json!({
        "model": "mock/echo?words=50",
        "messages": [
            { "role": "system", "content": "You are a concise assistant for a software team. Answer in plain English." },
            { "role": "user", "content": question }
        ],
        "temperature": 0,
        "max_tokens": 256,
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

fn gateway(cache: &str) -> llm_tower::GatewayService {
    let yaml = format!("providers:\n  mock: {{ kind: mock }}\nmetering: {{ sink: none }}\n{cache}");
    Gateway::from_config(&Config::from_yaml(&yaml).expect("config"))
        .expect("gateway")
        .into_service()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn requests(c: &mut Criterion) {
    let rt = runtime();
    let _guard = rt.enter();
    let off = gateway("");
    let on = gateway("cache: { enabled: true }");
    let mut group = c.benchmark_group("gateway");
    for (name, stream) in [("json", false), ("stream", true)] {
        let body = chat_body(
            "What should we measure to know what the gateway costs?",
            stream,
        );
        group.bench_function(format!("proxied_{name}"), |b| {
            b.to_async(&rt).iter(|| {
                let mut svc = off.clone();
                let req = chat_request(&body);
                async move {
                    collect(
                        ServiceExt::<Request<Full<Bytes>>>::ready(&mut svc)
                            .await
                            .unwrap()
                            .call(req)
                            .await
                            .unwrap(),
                    )
                    .await
                }
            })
        });
        // Warm the entry, then measure hits.
        rt.block_on(async {
            let mut svc = on.clone();
            collect(
                ServiceExt::<Request<Full<Bytes>>>::ready(&mut svc)
                    .await
                    .unwrap()
                    .call(chat_request(&body))
                    .await
                    .unwrap(),
            )
            .await
        });
        group.bench_function(format!("hit_{name}"), |b| {
            b.to_async(&rt).iter(|| {
                let mut svc = on.clone();
                let req = chat_request(&body);
                async move {
                    let response = ServiceExt::<Request<Full<Bytes>>>::ready(&mut svc)
                        .await
                        .unwrap()
                        .call(req)
                        .await
                        .unwrap();
                    assert_eq!(response.headers()["x-gateway-cache"], "hit");
                    collect(response).await
                }
            })
        });
    }
    let n = AtomicU64::new(0);
    group.bench_function("miss_json", |b| {
        b.to_async(&rt).iter_batched(
            || {
                let i = n.fetch_add(1, Ordering::Relaxed);
                chat_request(&chat_body(&format!("Question number {i}?"), false))
            },
            |req| {
                let mut svc = on.clone();
                async move {
                    collect(
                        ServiceExt::<Request<Full<Bytes>>>::ready(&mut svc)
                            .await
                            .unwrap()
                            .call(req)
                            .await
                            .unwrap(),
                    )
                    .await
                }
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

const TOPICS: [&str; 8] = [
    "reverse a list",
    "parse a date",
    "read a CSV file",
    "sort a dictionary by value",
    "open a socket",
    "hash a password",
    "retry a request",
    "format a number",
];
const LANGS: [&str; 6] = ["Python", "Rust", "Go", "Java", "JavaScript", "C++"];

fn semantic(c: &mut Criterion) {
    let embedder = HashEmbedder::new(512);
    let mut group = c.benchmark_group("semantic");
    let question = "How can I read a CSV file in Python quickly?";
    group.bench_function("embed_hash", |b| b.iter(|| embedder.embed_now(question)));
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 3_600_000;
    for size in [1_000usize, 10_000] {
        let index = Index::new(size, size);
        for i in 0..size {
            let text = format!(
                "How do I {} in {} (variant {i})?",
                TOPICS[i % TOPICS.len()],
                LANGS[(i / TOPICS.len()) % LANGS.len()]
            );
            index.insert(
                "p",
                &format!("k{i}"),
                &text,
                embedder.embed_now(&text),
                expires,
            );
        }
        let vector = embedder.embed_now(question);
        group.bench_function(format!("lookup_{}k", size / 1000), |b| {
            b.iter(|| index.search("p", question, &vector, 0.8))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = requests, semantic
}
criterion_main!(benches);
