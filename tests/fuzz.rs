//! A short run of every fuzz target (`llm_tower::fuzz`), in CI; `fuzz/run.sh` runs each for
//! 10 million executions.

use std::path::Path;

use llm_tower::fuzz::{run, Mutator, Target};

#[test]
fn every_fuzz_target_survives_a_short_run() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // A new seed each run (printed), so CI explores beyond one fixed set of inputs.
    let seed = fastrand::u64(..);
    let mut mutator = Mutator::new(
        seed,
        &root.join("tests/fixtures"),
        &[root.join("examples/gateway.yaml")],
    );
    let (json, streams, yaml) = mutator.corpus_sizes();
    assert!(
        json > 20 && streams > 5 && yaml == 1,
        "{json} {streams} {yaml}"
    );
    for target in Target::ALL {
        let report = run(target, &mut mutator, 1500);
        if let Some((input, message)) = report.failure {
            panic!(
                "{} failed (seed {seed}): {message}\ninput: {:?}",
                target.name(),
                String::from_utf8_lossy(&input)
            );
        }
        assert_eq!(report.executions, 1500);
    }
}
