//! The semantic cache's matcher, for `../shared/semcache/eval.py`.
//!
//! ```text
//! # eval.py's `cmd` backend: JSON strings in (one per line), JSON float arrays out.
//! python3 eval.py --data eval.jsonl --backend cmd --guard \
//!     --cmd "target/release/examples/semcache_eval embed"
//! # The matcher exactly as the gateway runs it (Rust guard + embedder + threshold):
//! target/release/examples/semcache_eval pairs --data eval.jsonl
//! ```
//!
//! `--embedder http --url URL --model NAME` uses an OpenAI-compatible `/v1/embeddings`
//! endpoint instead of the built-in hash embedder, `--embedder minilm --path DIR`
//! all-MiniLM-L6-v2 (built with `--features minilm`); `--threshold T` overrides the default,
//! `--sweep T1,T2,…` adds the figures at other thresholds.

use std::io::{BufRead, Write};

use llm_tower::cache::semantic::{guard, Embedder, HashEmbedder, HttpEmbedder, Verdict};
use llm_tower::cache::{HashEmbedderSettings, HttpEmbedderSettings};
use llm_tower::upstream::ClientSettings;
use serde_json::{json, Value};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    dot / (norm(a) * norm(b))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map_or("embed", String::as_str);
    let (embedder, threshold): (Box<dyn Embedder>, f32) =
        match arg(&args, "--embedder").as_deref().unwrap_or("hash") {
            "http" => {
                let config: HttpEmbedderSettings = serde_json::from_value(json!({
                    "url": arg(&args, "--url").ok_or("--url")?,
                    "model": arg(&args, "--model").unwrap_or_else(|| "default".into()),
                    "timeout": "60s",
                }))?;
                let threshold = config.threshold;
                (
                    Box::new(HttpEmbedder::new(&config, &ClientSettings::default())?),
                    threshold,
                )
            }
            #[cfg(feature = "minilm")]
            "minilm" => {
                let config: llm_tower::cache::MiniLmEmbedderSettings = serde_json::from_value(
                    json!({ "path": arg(&args, "--path").ok_or("--path")? }),
                )?;
                (
                    Box::new(llm_tower::cache::semantic::MiniLmEmbedder::load(
                        &config.path,
                    )?),
                    config.threshold,
                )
            }
            _ => {
                let default = HashEmbedderSettings::default();
                let dims = arg(&args, "--dims").map_or(Ok(default.dims), |d| d.parse())?;
                (Box::new(HashEmbedder::new(dims)), default.threshold)
            }
        };
    let threshold = arg(&args, "--threshold").map_or(Ok(threshold), |t| t.parse())?;

    if mode == "embed" {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        for line in std::io::stdin().lock().lines() {
            let text: String = serde_json::from_str(&line?)?;
            let vector = embedder.embed(&text).await?;
            serde_json::to_writer(&mut out, &vector)?;
            out.write_all(b"\n")?;
            out.flush()?;
        }
        return Ok(());
    }

    let data = arg(&args, "--data").ok_or("--data FILE")?;
    if mode == "cost" {
        // The guard alone on every pair (for instructions per candidate under callgrind:
        // `--toggle-collect='*guard*guard'`, divided by the pairs printed).
        let pairs: Vec<(String, String)> = std::fs::read_to_string(&data)?
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).map(|p| {
                    (
                        p["a"].as_str().unwrap().to_owned(),
                        p["b"].as_str().unwrap().to_owned(),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        let allowed = pairs
            .iter()
            .filter(|(a, b)| std::hint::black_box(guard(a, b)).allows())
            .count();
        println!("{} pairs, {allowed} allowed", pairs.len());
        return Ok(());
    }

    // `pairs`: score every labelled pair as the gateway would.
    let mut scored = Vec::new();
    let mut vetoes = std::collections::BTreeMap::<String, (u32, u32)>::new();
    for line in std::fs::read_to_string(&data)?.lines() {
        let pair: Value = serde_json::from_str(line)?;
        let (a, b) = (pair["a"].as_str().unwrap(), pair["b"].as_str().unwrap());
        let same = pair["label"] == "same";
        let verdict = guard(a, b);
        let score = match verdict {
            Verdict::Exact => 1.0,
            v if !v.allows() => -1.0,
            _ => cosine(&embedder.embed(a).await?, &embedder.embed(b).await?),
        };
        if !verdict.allows() {
            let slot = vetoes.entry(format!("{verdict:?}")).or_default();
            if same {
                slot.0 += 1;
            } else {
                slot.1 += 1;
            }
        }
        scored.push((score, same, pair, verdict));
    }
    let positives = scored.iter().filter(|s| s.1).count() as f64;
    let at = |t: f32| {
        let tp = scored.iter().filter(|s| s.0 >= t && s.1).count() as f64;
        let fp = scored.iter().filter(|s| s.0 >= t && !s.1).count() as f64;
        let precision = if tp + fp > 0.0 { tp / (tp + fp) } else { 1.0 };
        (precision, tp / positives, fp)
    };
    println!(
        "{} + guard on {data}: {} pairs ({positives} same)",
        embedder.name(),
        scored.len()
    );
    let (p, r, fp) = at(threshold);
    println!("  default threshold {threshold:.3}: precision={p:.3} recall={r:.3} false_hits={fp}");
    let (p, r, _) = at(1.0);
    println!("  normalized exact only        : precision={p:.3} recall={r:.3}");
    let mut cuts: Vec<f32> = scored.iter().map(|s| s.0).filter(|&s| s > 0.0).collect();
    cuts.sort_by(|a, b| b.total_cmp(a));
    cuts.dedup();
    let best = cuts
        .iter()
        .map(|&t| (t, at(t)))
        .filter(|(_, (p, _, _))| *p >= 0.99)
        .max_by(|a, b| a.1 .1.total_cmp(&b.1 .1));
    if let Some((t, (p, r, _))) = best {
        println!("  best recall at precision>=0.99: t={t:.3} precision={p:.3} recall={r:.3}");
    }
    println!("  guard vetoes (same / different): {vetoes:?}");
    if let Some(list) = arg(&args, "--sweep") {
        // `--sweep 0.5,0.6,…`: the figures at other thresholds, from the same scores.
        for t in list.split(',') {
            let t: f32 = t.parse()?;
            let (p, r, fp) = at(t);
            println!("  threshold {t:.3}: precision={p:.3} recall={r:.3} false_hits={fp}");
        }
    }
    if args.iter().any(|a| a == "--verbose") {
        for (score, same, pair, verdict) in &scored {
            let hit = *score >= threshold;
            if hit != *same {
                println!(
                    "  {} {score:.3} [{}] {verdict:?} {:?} | {:?}",
                    if hit { "FALSE HIT" } else { "missed  " },
                    pair["kind"],
                    pair["a"],
                    pair["b"]
                );
            }
        }
    } else if args.iter().any(|a| a == "--wrong") {
        // The wrong answers a run would serve.
        for (score, _, pair, verdict) in scored.iter().filter(|s| s.0 >= threshold && !s.1) {
            println!(
                "  WRONG HIT {score:.3} [{}] {verdict:?} {:?} | {:?}",
                pair["kind"], pair["a"], pair["b"]
            );
        }
    }
    Ok(())
}
