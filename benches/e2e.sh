#!/usr/bin/env bash
# End-to-end overhead of the gateway: direct-to-upstream vs through-gateway, in one run.
#
#   bash benches/e2e.sh            # DURATION=5 CONNS="1 32" CALLGRIND_REQUESTS=2000 by default
#
# Starts the project's mock OpenAI server (`mock-upstream`) and the gateway (`llm-tower`,
# provider `kind: openai` pointing at the mock's /v1), both built with `--profile profiling`
# (release with line tables, for callgrind_annotate),
# on free ports; drives them with wrk at each connection count for three workloads:
#   json    a ~1 KB chat completion, JSON answer
#   stream  the same with "stream": true, model `echo?words=50` (53 SSE events, unpaced)
#   paced   the stream with `chunk_delay=1ms`: one event per TCP write, like a real model
# and reports rps, p50, p99 for direct and gateway, the added p50, CPU per request of the
# gateway (and of the upstream) from /proc/PID/stat, the gateway's RSS, and, under
# callgrind, the gateway's instructions per JSON request and per stream (CALLGRIND_REQUESTS
# JSON requests, a quarter as many streams; 0 skips; CALLGRIND_OUT=DIR keeps the profiles
# for callgrind_annotate), per idempotent replay and per exact cache hit (the cache is on for
# one model name only, `up/echo?usage=true`, so the other workloads pass it by), and (default
# stack) for the inbound protocols: an Anthropic Messages request passed through to a
# `kind: anthropic` provider (the mock answers /v1/messages itself), JSON and streamed, the
# same stream translated from the chat upstream, and a Responses stream translated from chat
# and passed through to a `responses: native` provider. Compare ratios within one run:
# absolute numbers move with the machine's noise (wrk, gateway and upstream share the cores).
#
#   STACK=full     the full stack instead of the default one: a master key, an alias to a
#                  priority combo of two providers, idempotency (no key sent), the exact
#                  cache on for every model (each request a miss: `x-gateway-cache-ttl: 0`
#                  looks up and stores nothing), metering
#   STACK=tenancy  the default stack with virtual keys: a master key, a configured key, and a
#                  virtual key (made by /key/generate, with RPM, TPM and parallel limits,
#                  counted in Redis when REDIS_URL is set, else in memory) that every request
#                  sends; callgrind also measures the JSON request with the configured key
#                  (`static`): json − static is what a virtual key adds
#   TRACES=1       (any stack) traces on at 100 % sampling, exported to the mock's
#                  /v1/traces (it answers 404: each span is still built, encoded and sent,
#                  then counted as dropped), to measure what tracing adds per request
#   GATEWAY_BIN=…  another build of the gateway (an older commit's, to compare in one run);
#   MOCK_BIN=…     likewise for the mock; when both are given nothing is built
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
DURATION=${DURATION:-5}
CONNS=${CONNS:-"1 32"}
CALLGRIND_REQUESTS=${CALLGRIND_REQUESTS:-2000}
STREAM_EVENTS=53 # role + 50 words + finish + [DONE]
export NO_COLOR=1 RUST_LOG=${RUST_LOG:-info}

need() { # command, Debian package
    command -v "$1" >/dev/null && return
    echo "installing $2 ..." >&2
    if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq >&2; APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >&2
}
need wrk wrk
need curl curl
need bc bc
[ "${CALLGRIND_REQUESTS}" -gt 0 ] && need valgrind valgrind

STACK=${STACK:-default}
if [ -z "${GATEWAY_BIN:-}" ] || [ -z "${MOCK_BIN:-}" ]; then
    echo "building the binaries (--profile profiling) ..." >&2
    (cd "$ROOT" && cargo build --profile profiling --quiet --features test-util --bins)
fi
MOCK_BIN=${MOCK_BIN:-$TARGET/profiling/mock-upstream}
GATEWAY_BIN=${GATEWAY_BIN:-$TARGET/profiling/llm-tower}
# The full stack's client sends its key, and asks the cache to look up but not store; the
# tenancy stack's sends the virtual key (AUTH, set once it is made).
EXTRA_HEADERS=(-H "x-bench-stack: $STACK")
[ "$STACK" = full ] && EXTRA_HEADERS=(-H "x-gateway-cache-ttl: 0")
AUTH=
[ "$STACK" = full ] && AUTH=sk-bench-master

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start LOG CMD... : runs CMD in the background, waits for the address it logs.
# Sets STARTED_PID and STARTED_ADDR.
start() {
    local log=$1 addr=""
    shift
    "$@" >"$log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    for _ in $(seq 1200); do
        addr=$(grep -o '127\.0\.0\.1:[0-9][0-9]*' "$log" | head -n1 || true)
        [ -n "$addr" ] && break
        if ! kill -0 "$STARTED_PID" 2>/dev/null; then
            echo "failed to start: $*" >&2; cat "$log" >&2; exit 1
        fi
        sleep 0.05
    done
    [ -n "$addr" ] || { echo "no address from: $*" >&2; cat "$log" >&2; exit 1; }
    STARTED_ADDR=$addr
}

cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; } # utime+stime
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))

# --- request bodies -----------------------------------------------------------------------
body() { # model stream
    cat <<EOF
{"model":"$1","messages":[{"role":"system","content":"You are a concise assistant for a software team. Answer in plain English, prefer short paragraphs, and say when you are unsure instead of guessing. Keep code samples minimal and runnable."},{"role":"user","content":"We run an LLM gateway in front of several providers. What should we measure to know what the gateway itself costs per request?"},{"role":"assistant","content":"Measure the added latency (gateway p50 minus direct p50), CPU time per request in the gateway process, memory at idle and under load, and for streams the per-event overhead."},{"role":"user","content":[{"type":"text","text":"And how do we keep those numbers comparable on a noisy two-core machine? Give three concrete tips."}]}],"temperature":0.2,"top_p":0.95,"max_tokens":256,"user":"bench-user-0001","metadata":{"team":"platform","purpose":"bench"},"stream":$2}
EOF
}
# The same conversation as an Anthropic Messages and as a Responses request.
messages_body() { # model stream
    cat <<EOF
{"model":"$1","max_tokens":256,"system":"You are a concise assistant for a software team. Answer in plain English, prefer short paragraphs, and say when you are unsure instead of guessing. Keep code samples minimal and runnable.","messages":[{"role":"user","content":"We run an LLM gateway in front of several providers. What should we measure to know what the gateway itself costs per request?"},{"role":"assistant","content":"Measure the added latency (gateway p50 minus direct p50), CPU time per request in the gateway process, memory at idle and under load, and for streams the per-event overhead."},{"role":"user","content":[{"type":"text","text":"And how do we keep those numbers comparable on a noisy two-core machine? Give three concrete tips."}]}],"temperature":0.2,"top_p":0.95,"metadata":{"user_id":"bench-user-0001"},"stream":$2}
EOF
}
responses_body() { # model stream
    cat <<EOF
{"model":"$1","instructions":"You are a concise assistant for a software team. Answer in plain English, prefer short paragraphs, and say when you are unsure instead of guessing. Keep code samples minimal and runnable.","input":[{"role":"user","content":"We run an LLM gateway in front of several providers. What should we measure to know what the gateway itself costs per request?"},{"role":"assistant","content":"Measure the added latency (gateway p50 minus direct p50), CPU time per request in the gateway process, memory at idle and under load, and for streams the per-event overhead."},{"role":"user","content":[{"type":"input_text","text":"And how do we keep those numbers comparable on a noisy two-core machine? Give three concrete tips."}]}],"temperature":0.2,"top_p":0.95,"max_output_tokens":256,"user":"bench-user-0001","store":false,"stream":$2}
EOF
}
declare -A MODEL=([json]="echo" [stream]="echo?words=50" [paced]="echo?words=50&chunk_delay=1ms")
declare -A STREAM=([json]=false [stream]=true [paced]=true)
for w in json stream paced; do
    body "${MODEL[$w]}" "${STREAM[$w]}" >"$WORK/direct-$w.json"
    if [ "$STACK" = full ]; then
        body "fast-$w" "${STREAM[$w]}" >"$WORK/gateway-$w.json"
    else
        body "up/${MODEL[$w]}" "${STREAM[$w]}" >"$WORK/gateway-$w.json"
    fi
done

cat >"$WORK/post.lua" <<'EOF'
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
if os.getenv("FULL_STACK") == "1" then
  wrk.headers["x-gateway-cache-ttl"] = "0"
end
if (os.getenv("AUTH") or "") ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("AUTH")
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d rps=%.1f p50=%d p99=%d bad=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout + e.status))
end
EOF

# load URL BODY CONNS SECONDS : prints the RESULT line of wrk
load() {
    AUTH=$([ "$1" = "${1#"$UPSTREAM"}" ] && echo "$AUTH") FULL_STACK=$([ "$STACK" = full ] && echo 1 || echo 0) BODY_FILE=$2 wrk -t1 -c"$3" -d"$4"s --timeout 10s -s "$WORK/post.lua" "$1" |
        grep '^RESULT' | sed 's/^RESULT //'
}
# sequential URL BODY N : N requests on one keep-alive connection; fails unless all are 200
sequential() { # URL BODY N [HEADER]
    local ok
    ok=$(for _ in $(seq "$3"); do printf 'url = "%s"\noutput = "/dev/null"\n' "$1"; done |
        curl -s -K - -w '%{http_code}\n' -H 'content-type: application/json' -H "${4:-x-bench: 1}" "${EXTRA_HEADERS[@]}" \
            ${AUTH:+-H "authorization: Bearer $AUTH"} \
            --data-binary "@$2" | grep -c '^200$' || true)
    [ "$ok" = "$3" ] || { echo "sequential: $ok of $3 requests answered 200" >&2; exit 1; }
}
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

# --- servers ------------------------------------------------------------------------------
start "$WORK/mock.log" "$MOCK_BIN" --listen 127.0.0.1:0
MOCK_PID=$STARTED_PID
UPSTREAM=http://$STARTED_ADDR
cat >"$WORK/gateway.yaml" <<EOF
listen: 127.0.0.1:0
providers:
  up: { kind: openai, api_base: "$UPSTREAM/v1", api_key: sk-bench, models: [echo] }
  claude: { kind: anthropic, api_base: "$UPSTREAM/v1", api_key: sk-bench }
  native: { kind: openai, api_base: "$UPSTREAM/v1", api_key: sk-bench, responses: native }
metering: { sqlite_path: "$WORK/usage.db" }   # the default ledger, kept out of the checkout
cache: { enabled: true, models: ["up/echo?usage=true"] }
EOF
if [ "$STACK" = full ]; then
    cat >"$WORK/gateway.yaml" <<EOF
listen: 127.0.0.1:0
master_key: sk-bench-master
providers:
  up: { kind: openai, api_base: "$UPSTREAM/v1", api_key: sk-bench, models: [echo] }
  up2: { kind: openai, api_base: "$UPSTREAM/v1", api_key: sk-bench }
metering: { sqlite_path: "$WORK/usage.db" }
cache: { enabled: true }
aliases: { fast-json: smart-json, fast-stream: smart-stream, fast-paced: smart-paced, fast-hit: smart-hit }
combos:
  smart-json: { targets: [up/echo, up2/echo] }
  smart-stream: { targets: ["up/echo?words=50", "up2/echo?words=50"] }
  smart-paced: { targets: ["up/echo?words=50&chunk_delay=1ms", "up2/echo?words=50&chunk_delay=1ms"] }
  smart-hit: { targets: ["up/echo?usage=true"] }
EOF
fi
if [ "$STACK" = tenancy ]; then
    limits=memory
    [ -n "${REDIS_URL:-}" ] && { limits=redis; echo "redis: { url: \"$REDIS_URL\" }" >>"$WORK/gateway.yaml"; }
    cat >>"$WORK/gateway.yaml" <<EOF
master_key: sk-bench-master
keys: [{ name: static, key: sk-bench-static }]
tenancy: { limits: $limits, key_prefix: "llm-tower-bench-$$:" }
EOF
fi
if [ "${TRACES:-0}" = 1 ]; then
    echo "telemetry: { otlp_endpoint: \"$UPSTREAM\", sample_ratio: 1.0 }" >>"$WORK/gateway.yaml"
fi
start "$WORK/gateway.log" "$GATEWAY_BIN" --config "$WORK/gateway.yaml"
GW_PID=$STARTED_PID
GATEWAY=http://$STARTED_ADDR
sleep 0.5
RSS_IDLE=$(rss_kb "$GW_PID")
if [ "$STACK" = tenancy ]; then # the key lives in the ledger, for the callgrind run too
    AUTH=$(curl -fsS -H "authorization: Bearer sk-bench-master" -H 'content-type: application/json' \
        --data '{"key_alias":"bench","rpm_limit":1000000000,"tpm_limit":1000000000000,"max_parallel_requests":1000}' \
        "$GATEWAY/key/generate" | sed -n 's/.*"key":"\([^"]*\)".*/\1/p')
    [ -n "$AUTH" ] || { echo "no virtual key" >&2; exit 1; }
    echo "tenancy: limits in $limits, virtual key ${AUTH:0:6}…" >&2
fi

for target in direct gateway; do # one request each way, so a broken setup fails loudly
    url=$UPSTREAM
    [ "$target" = gateway ] && url=$GATEWAY
    code=$(curl -s -o "$WORK/check.out" -w '%{http_code}' -H 'content-type: application/json' "${EXTRA_HEADERS[@]}" \
        ${AUTH:+-H "authorization: Bearer $AUTH"} \
        --data-binary "@$WORK/$target-json.json" "$url/v1/chat/completions")
    [ "$code" = 200 ] || { echo "$target check: HTTP $code" >&2; cat "$WORK/check.out" >&2; exit 1; }
done

echo "upstream $UPSTREAM  gateway $GATEWAY  ${DURATION}s per run, wrk -t1; $(nproc) cores" >&2
declare -A R
for w in json stream paced; do
    for c in $CONNS; do
        for target in direct gateway; do
            url=$UPSTREAM
            [ "$target" = gateway ] && url=$GATEWAY
            load "$url/v1/chat/completions" "$WORK/$target-$w.json" "$c" 1 >/dev/null # warm-up
            g0=$(cpu_ticks "$GW_PID") m0=$(cpu_ticks "$MOCK_PID")
            out=$(load "$url/v1/chat/completions" "$WORK/$target-$w.json" "$c" "$DURATION")
            g1=$(cpu_ticks "$GW_PID") m1=$(cpu_ticks "$MOCK_PID")
            n=$(field "$out" requests)
            [ "$(field "$out" bad)" = 0 ] || echo "WARNING: $w c=$c $target: errors: $out" >&2
            R[$w,$c,$target]="$out gw_cpu=$(((g1 - g0) * TICK_US / n)) up_cpu=$(((m1 - m0) * TICK_US / n))"
            echo "  $w c=$c $target: ${R[$w,$c,$target]}" >&2
        done
    done
done
RSS_LOADED=$(rss_kb "$GW_PID")
kill "$GW_PID"
wait "$GW_PID" 2>/dev/null || true

# --- callgrind: instructions per request in the gateway ----------------------------------
# For each workload: N requests on one keep-alive connection (like wrk -c1), dumped, then an
# idle baseline over as long (timers, metrics upkeep), dumped and subtracted.
declare -A IR=([json]=n/a [stream]=n/a [replay]=n/a [hit]=n/a [static]=n/a [messages]=n/a [messages-stream]=n/a
    [messages-translated]=n/a [responses-translated]=n/a [responses-stream]=n/a)
if [ "$CALLGRIND_REQUESTS" -gt 0 ]; then
    CG_OUT=${CALLGRIND_OUT:-$WORK}
    mkdir -p "$CG_OUT"
    start "$WORK/callgrind.log" valgrind --tool=callgrind --callgrind-out-file="$CG_OUT/callgrind.out.%p" \
        "$GATEWAY_BIN" --config "$WORK/gateway.yaml"
    CG_PID=$STARTED_PID
    CG_BASE=http://$STARTED_ADDR/v1
    ir() { grep -h '^summary:\|^totals:' "$1" | head -n1 | awk '{ print $2 }'; }
    dump=0
    # replay: the JSON request with an Idempotency-Key already answered (served from memory);
    # hit: the JSON request for the cached model, answered from the cache after the warm-up.
    if [ "$STACK" = full ]; then
        body "fast-hit" false >"$WORK/gateway-hit.json"
    else
        body "up/echo?usage=true" false >"$WORK/gateway-hit.json"
    fi
    # The inbound protocols (default stack): passed through (claude/, native/) and
    # translated from the chat upstream (up/).
    messages_body "claude/echo" false >"$WORK/gateway-messages.json"
    messages_body "claude/echo?words=50" true >"$WORK/gateway-messages-stream.json"
    messages_body "up/echo?words=50" true >"$WORK/gateway-messages-translated.json"
    responses_body "up/echo?words=50" true >"$WORK/gateway-responses-translated.json"
    responses_body "native/echo?words=50" true >"$WORK/gateway-responses-stream.json"
    workloads="json stream replay hit"
    [ "$STACK" = tenancy ] && workloads="json static stream"
    [ "$STACK" = default ] && workloads="$workloads messages messages-stream messages-translated responses-translated responses-stream"
    for w in $workloads; do
        n=$CALLGRIND_REQUESTS
        case $w in *stream* | *translated*) n=$(((n + 3) / 4)) ;; esac
        body=$WORK/gateway-$w.json header="x-bench: 1" path=chat/completions
        [ "$w" = replay ] && body=$WORK/gateway-json.json header="idempotency-key: bench-replay"
        [ "$w" = static ] && body=$WORK/gateway-json.json
        case $w in messages*) path=messages header="anthropic-version: 2023-06-01" ;; responses*) path=responses ;; esac
        CG_URL=$CG_BASE/$path
        echo "callgrind: $n $w requests (slow) ..." >&2
        key=$AUTH
        [ "$w" = static ] && key=sk-bench-static
        AUTH=$key sequential "$CG_URL" "$body" 100 "$header" # warm-up: pool, lazy init
        callgrind_control -z "$CG_PID" >/dev/null 2>&1
        t0=$(date +%s.%N)
        AUTH=$key sequential "$CG_URL" "$body" "$n" "$header"
        t1=$(date +%s.%N)
        callgrind_control -d "$w" "$CG_PID" >/dev/null 2>&1
        sleep "$(echo "$t1 - $t0" | bc)"
        callgrind_control -d idle "$CG_PID" >/dev/null 2>&1
        load_file=$CG_OUT/callgrind.out.$CG_PID.$((dump + 1))
        idle_file=$CG_OUT/callgrind.out.$CG_PID.$((dump + 2))
        dump=$((dump + 2))
        ir_load=$(ir "$load_file") ir_idle=$(ir "$idle_file")
        IR[$w]=$(((ir_load - ir_idle) / n))
        echo "callgrind $w: $n requests, Ir $ir_load, idle over as long $ir_idle" >&2
        [ -n "${CALLGRIND_OUT:-}" ] &&
            echo "  callgrind_annotate --inclusive=yes $load_file | head -60" >&2
    done
fi

# --- report -------------------------------------------------------------------------------
printf '\n%-7s %5s | %9s %7s %7s | %9s %7s %7s | %8s %6s | %7s %7s\n' \
    workload conns "rps:dir" p50 p99 "rps:gw" p50 p99 "+p50 µs" "p50 ×" "gw µs" "up µs"
for w in json stream paced; do
    for c in $CONNS; do
        d=${R[$w,$c,direct]} g=${R[$w,$c,gateway]}
        dp50=$(field "$d" p50) gp50=$(field "$g" p50)
        printf '%-7s %5s | %9s %7s %7s | %9s %7s %7s | %8s %6s | %7s %7s\n' "$w" "$c" \
            "$(field "$d" rps)" "$dp50" "$(field "$d" p99)" \
            "$(field "$g" rps)" "$gp50" "$(field "$g" p99)" \
            "$((gp50 - dp50))" "$(echo "scale=2; $gp50 / $dp50" | bc)" \
            "$(field "$g" gw_cpu)" "$(field "$g" up_cpu)"
    done
done
echo
echo "p50/p99 in µs per request; +p50 = gateway p50 − direct p50; gw µs / up µs = CPU (user+sys)"
echo "per request of the gateway / of the upstream, in the gateway run. Stream per event: divide"
echo "by $STREAM_EVENTS events."
for w in stream paced; do
    for c in $CONNS; do
        d=${R[$w,$c,direct]} g=${R[$w,$c,gateway]}
        echo "$w c=$c per event: p50 $(echo "scale=2; $(field "$d" p50) / $STREAM_EVENTS" | bc) → $(echo "scale=2; $(field "$g" p50) / $STREAM_EVENTS" | bc) µs, gateway CPU $(echo "scale=2; $(field "$g" gw_cpu) / $STREAM_EVENTS" | bc) µs vs upstream $(echo "scale=2; $(field "$g" up_cpu) / $STREAM_EVENTS" | bc) µs"
    done
done
echo "gateway RSS: idle after start $((RSS_IDLE / 1024)) MB ($RSS_IDLE kB), after load $((RSS_LOADED / 1024)) MB ($RSS_LOADED kB)"
echo "stack: $STACK; gateway: $GATEWAY_BIN"
echo "gateway instructions per request (callgrind, idle subtracted): json ${IR[json]}, stream ${IR[stream]} ($STREAM_EVENTS events), idempotent replay ${IR[replay]}, cache hit ${IR[hit]}"
if [ "$STACK" = tenancy ] && [ "$CALLGRIND_REQUESTS" -gt 0 ]; then
    echo "tenancy: JSON request with the virtual key ${IR[json]}, with the configured key ${IR[static]}: the virtual key adds $((IR[json] - IR[static]))"
fi
if [ "$STACK" = default ] && [ "$CALLGRIND_REQUESTS" -gt 0 ]; then
    echo "inbound protocols: Messages passed through: json ${IR[messages]} (chat json ${IR[json]}), stream ${IR[messages-stream]}; Messages translated from the chat stream ${IR[messages-translated]}; Responses stream passed through ${IR[responses-stream]}, translated ${IR[responses-translated]} (each from the same $STREAM_EVENTS-event chat answer)"
fi
