//! Runs a fuzz target (see `llm_tower::fuzz`):
//!
//! ```text
//! cargo run --release --features test-util --example fuzz -- TARGET|all ITERATIONS [SEED]
//! ```
//!
//! Prints executions per second; on a failure, writes the input to `fuzz/crashes/` and
//! exits 1.

use std::path::{Path, PathBuf};
use std::time::Instant;

use llm_tower::fuzz::{run, Mutator, Target};

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(which), Some(iterations)) = (args.first(), args.get(1)) else {
        eprintln!("usage: fuzz TARGET|all ITERATIONS [SEED]");
        return std::process::ExitCode::from(2);
    };
    let iterations: u64 = iterations.parse().expect("ITERATIONS is a number");
    let seed: u64 = args
        .get(2)
        .map_or(1, |s| s.parse().expect("SEED is a number"));
    let targets: Vec<Target> = if which == "all" {
        Target::ALL.to_vec()
    } else {
        vec![Target::from_name(which).expect("a target: sse, request, native-request, native-response, native-error, native-stream, inbound-stream, inbound, config")]
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut mutator = Mutator::new(
        seed,
        &root.join("tests/fixtures"),
        &[root.join("examples/gateway.yaml")],
    );
    let mut failed = false;
    for target in targets {
        let started = Instant::now();
        let report = run(target, &mut mutator, iterations);
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{:16} {:>11} executions in {:>7.1} s ({:>8.0}/s): {}",
            target.name(),
            report.executions,
            secs,
            report.executions as f64 / secs,
            if report.failure.is_some() {
                "FAILED"
            } else {
                "ok"
            }
        );
        if let Some((input, message)) = report.failure {
            failed = true;
            let dir = root.join("fuzz/crashes");
            std::fs::create_dir_all(&dir).expect("fuzz/crashes");
            let path: PathBuf = dir.join(format!("{}-{seed}", target.name()));
            std::fs::write(&path, &input).expect("write the input");
            println!("  {message}\n  input: {}", path.display());
        }
    }
    if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}
