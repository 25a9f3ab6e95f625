#!/usr/bin/env bash
# The performance regression check CI runs: the default stack's instructions per request
# (callgrind over a fixed count of requests on one connection, through benches/e2e.sh, the
# release build) must not grow more than TOLERANCE % (10) over benches/baseline.txt.
# Instruction counts are deterministic enough on one machine (±2 % between runs); the
# floor's figure is printed beside them, so a dependency's change can be told from ours.
#
#   bash benches/regression.sh            # check (builds the release binaries)
#   UPDATE=1 bash benches/regression.sh   # make this build's figures the baseline, on purpose
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BASELINE=$ROOT/benches/baseline.txt
TOLERANCE=${TOLERANCE:-10}
# A paced stream (one event per read) rather than an unpaced one: how many events the gateway
# finds per read of an unpaced stream depends on timing, and moves its count by several %.
WORKLOADS="json paced hit"

if [ -z "${GATEWAY_BIN:-}" ]; then
    (cd "$ROOT" && cargo build --release --quiet --features test-util --bins --example floor)
fi
out=$(STACKS=default WRK=0 OPEN_STREAMS=0 CALLGRIND_REQUESTS=${REQUESTS:-400} WORKLOADS="$WORKLOADS" \
    GATEWAY_BIN=${GATEWAY_BIN:-$TARGET/release/llm-tower} MOCK_BIN=${MOCK_BIN:-$TARGET/release/mock-upstream} \
    FLOOR_BIN=${FLOOR_BIN:-$TARGET/release/examples/floor} bash "$ROOT/benches/e2e.sh")
echo "$out" | sed -n '/^instructions per request/,$p'
floor_of() { [ "$1" = hit ] && echo json || echo "$1"; }
measured() { echo "$out" | grep "^IR $1 " | tr ' ' '\n' | sed -n "s/^$2=//p"; }

if [ "${UPDATE:-0}" = 1 ]; then
    {
        echo "# Instructions per request of the default stack: benches/regression.sh checks that none"
        echo "# grows more than $TOLERANCE % over these. Made by: UPDATE=1 bash benches/regression.sh"
        echo "# (floor: the bare proxy's figure in the same run, for reference)"
        for w in $WORKLOADS; do echo "$w $(measured default "$w") floor $(measured floor "$(floor_of "$w")")"; done
    } >"$BASELINE"
    echo "baseline written: $BASELINE"
    exit 0
fi

failed=0
for w in $WORKLOADS; do
    now=$(measured default "$w")
    read -r _ base _ floor_then < <(grep "^$w " "$BASELINE") || { echo "no baseline for $w in $BASELINE" >&2; exit 1; }
    growth=$(echo "scale=1; ($now - $base) * 100 / $base" | bc)
    verdict=ok
    if [ "$(echo "$now * 100 > $base * (100 + $TOLERANCE)" | bc)" = 1 ]; then verdict=REGRESSION failed=1; fi
    echo "$w: $now instructions per request, baseline $base (${growth} %; floor now $(measured floor "$(floor_of "$w")"), then $floor_then): $verdict"
done
if [ "$failed" = 1 ]; then
    echo "instructions per request grew more than $TOLERANCE % over benches/baseline.txt." >&2
    echo "If that is on purpose, make this the baseline: UPDATE=1 bash benches/regression.sh" >&2
    exit 1
fi
