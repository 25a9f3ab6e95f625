#!/usr/bin/env bash
# Soak: REQUESTS requests (default 1,000,000) at concurrency CONNS (32) through the full
# stack — master key, an alias to a priority combo of two providers, idempotency (a new key
# per request), the exact cache (every request a distinct prompt: a miss that is stored, so
# the cache fills to its cap) and metering to SQLite — sampling the gateway's RSS every
# SAMPLE requests (100,000). Prints one line per sample, and fails if any request failed.
#
#   bash benches/soak.sh           # REQUESTS=1000000 CONNS=32 SAMPLE=100000 CACHE_MIB=128
#
# The cache and idempotency caps are set low enough (CACHE_MIB, 64 MiB of idempotency) that
# the run passes them: the curve must level off under them.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
REQUESTS=${REQUESTS:-1000000}
CONNS=${CONNS:-32}
SAMPLE=${SAMPLE:-100000}
CACHE_MIB=${CACHE_MIB:-128}
export NO_COLOR=1 RUST_LOG=${RUST_LOG:-warn}
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }

if [ -z "${GATEWAY_BIN:-}" ] || [ -z "${MOCK_BIN:-}" ]; then
    (cd "$ROOT" && cargo build --release --quiet --features test-util --bins)
fi
MOCK_BIN=${MOCK_BIN:-$TARGET/release/mock-upstream}
GATEWAY_BIN=${GATEWAY_BIN:-$TARGET/release/llm-tower}
WORK=$(mktemp -d)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; rm -rf "$WORK"' EXIT

start() { # log, command…: waits for the address it logs
    local log=$1 addr=""
    shift
    "$@" >"$log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    for _ in $(seq 600); do
        addr=$(grep -o '127\.0\.0\.1:[0-9][0-9]*' "$log" | head -n1 || true)
        [ -n "$addr" ] && break
        sleep 0.05
    done
    [ -n "$addr" ] || { echo "no address from: $*" >&2; cat "$log" >&2; exit 1; }
    STARTED_ADDR=$addr
}
rss_mb() { awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

RUST_LOG=info start "$WORK/mock.log" "$MOCK_BIN" --listen 127.0.0.1:0
UPSTREAM=http://$STARTED_ADDR
cat >"$WORK/gateway.yaml" <<EOF
listen: 127.0.0.1:0
master_key: sk-soak-master
providers:
  up: { kind: openai, api_base: "$UPSTREAM/v1", api_key: sk-soak }
  up2: { kind: openai, api_base: "$UPSTREAM/v1", api_key: sk-soak }
aliases: { fast: smart }
combos: { smart: { targets: [up/echo, up2/echo] } }
idempotency: { max_memory_bytes: $((64 << 20)) }
cache: { enabled: true, max_memory_bytes: $((CACHE_MIB << 20)) }
metering: { sqlite_path: "$WORK/usage.db" }
EOF
RUST_LOG=info start "$WORK/gateway.log" "$GATEWAY_BIN" --config "$WORK/gateway.yaml"
GW_PID=$STARTED_PID
GATEWAY=http://$STARTED_ADDR

# A distinct ~1 KB prompt and idempotency key per request (thread id + counter).
cat >"$WORK/soak.lua" <<'EOF'
local counter = 0
local id = 0
local filler = string.rep("Measure what the gateway costs per request, and keep it flat. ", 14)
function setup(thread) id = id + 1; thread:set("id", id) end
function request()
  counter = counter + 1
  local body = '{"model":"fast","messages":[{"role":"user","content":"' .. filler ..
    ' request ' .. id .. '-' .. counter .. '"}]}'
  return wrk.format("POST", "/v1/chat/completions", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer sk-soak-master",
    ["Idempotency-Key"] = "soak-" .. id .. "-" .. counter,
  }, body)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d bad=%d p50=%d p99=%d\n", summary.requests,
    e.connect + e.read + e.write + e.timeout + e.status, latency:percentile(50), latency:percentile(99)))
end
EOF

echo "gateway RSS idle: $(rss_mb "$GW_PID") MB (cache cap $CACHE_MIB MiB, idempotency cap 64 MiB)"
printf '%10s %10s %8s %8s %8s\n' requests rps p50_us p99_us rss_mb
done_requests=0
failed=0
while [ "$done_requests" -lt "$REQUESTS" ]; do
    # wrk runs for a duration: size each run from the last rate to about SAMPLE requests.
    secs=${secs:-10}
    started=$(date +%s.%N)
    out=$(wrk -t2 -c"$CONNS" -d"${secs}s" --timeout 10s -s "$WORK/soak.lua" "$GATEWAY" | grep RESULT)
    took=$(echo "$(date +%s.%N) - $started" | bc)
    n=$(sed 's/.*requests=\([0-9]*\).*/\1/' <<<"$out")
    bad=$(sed 's/.*bad=\([0-9]*\).*/\1/' <<<"$out")
    p50=$(sed 's/.*p50=\([0-9]*\).*/\1/' <<<"$out")
    p99=$(sed 's/.*p99=\([0-9]*\).*/\1/' <<<"$out")
    done_requests=$((done_requests + n))
    failed=$((failed + bad))
    rps=$(echo "$n / $took" | bc)
    printf '%10d %10d %8d %8d %8s\n' "$done_requests" "$rps" "$p50" "$p99" "$(rss_mb "$GW_PID")"
    secs=$(( (SAMPLE / (rps > 0 ? rps : 1)) + 1 ))
done
rows=$(sqlite3 "$WORK/usage.db" 'SELECT count(*) FROM llm_usage' 2>/dev/null || echo "?")
echo "failed requests: $failed; ledger rows: $rows"
[ "$failed" -eq 0 ]
