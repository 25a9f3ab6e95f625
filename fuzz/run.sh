#!/usr/bin/env bash
# Runs every fuzz target of `llm_tower::fuzz` for ITERATIONS executions (default 10 million),
# on the stable toolchain (no cargo-fuzz, which needs nightly). A failing input is written to
# fuzz/crashes/. Not part of CI's default run (tests/fuzz.rs runs a few thousand per target).
#
#   fuzz/run.sh [ITERATIONS] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release --quiet --features test-util --example fuzz -- all "${1:-10000000}" "${2:-1}"
