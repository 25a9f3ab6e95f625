#!/usr/bin/env bash
# End-to-end overhead of the gateway, measured against the floor, in one run.
#
#   bash benches/e2e.sh            # DURATION=5 CONNS="1 32" CALLGRIND_REQUESTS=2000 STACKS=default
#   STACKS="default full" bash benches/e2e.sh     # issue 18's table: both configs side by side
#
# Starts the project's mock OpenAI server (`mock-upstream`), the floor (`benches/floor.rs`: a
# bare hyper + hyper-util reverse proxy, the least a program of this kind does per request)
# and one gateway per stack (provider `kind: openai` pointing at the mock's /v1), all built
# with `--profile profiling` (release with line tables, for callgrind_annotate), on free
# ports. Three workloads:
#   json    a ~1 KB chat completion, JSON answer
#   stream  the same with "stream": true, model `echo?words=50` (53 SSE events, unpaced)
#   paced   the stream with `chunk_delay=1ms`: one event per TCP write, like a real model
# For each, wrk at each connection count against the mock directly, the floor and each
# gateway: rps, p50, p99, what each adds to the direct p50/p99, CPU µs per request of each
# proxy (/proc/PID/stat). Then, under callgrind, instructions per request (N JSON requests
# on one keep-alive connection, a quarter as many streams; an idle stretch as long is
# subtracted) of the floor and of each gateway, divided by the floor's; more workloads for the
# gateways: `nousage` (the stream when the upstream reports no usage: estimated), `replay`
# (an Idempotency-Key already answered), `hit` (an exact cache hit; the cache is on for the
# model `up/echo?usage=true` only in the default stack, so other workloads pass it by), and
# in the default stack the inbound protocols (an Anthropic Messages request passed through
# to a `kind: anthropic` provider, JSON and streamed, the same stream translated from the
# chat upstream, a Responses stream translated and passed through). Last, RSS of each proxy:
# idle, with OPEN_STREAMS (1000) paced streams open at once, and after they were cancelled.
# Compare ratios within one run: absolute numbers move with the machine's noise (wrk, the
# proxies and the upstream share the cores).
#
# Stacks:
#   default   one provider; metering to SQLite; idempotency on (no key sent)
#   full      a master key, an alias to a priority combo of two providers, idempotency (no
#             key sent), the exact cache on for every model (each request a miss:
#             `x-gateway-cache-ttl: 0` looks up and stores nothing), metering
#   tenancy   the default stack with virtual keys: a master key, a configured key, and a
#             virtual key (made by /key/generate, with RPM, TPM and parallel limits, counted
#             in Redis when REDIS_URL is set, else in memory) that every request sends;
#             callgrind also measures the JSON request with the configured key (`static`):
#             json − static is what a virtual key adds
# Knobs:
#   TRACES=1        traces on at 100 % sampling, exported to the mock's /v1/traces (it answers
#                   404: each span is still built, encoded and sent, then counted as dropped)
#   LEDGER_URL=postgres://…   every stack meters to that PostgreSQL ledger instead of SQLite
#   WRK=0           skip the wrk runs;  OPEN_STREAMS=0 skips the RSS run;  CALLGRIND_REQUESTS=0
#                   skips callgrind;  CALLGRIND_OUT=DIR keeps the profiles for callgrind_annotate
#   WORKLOADS="…"   the callgrind workloads to run (default: all that apply)
#   FLOOR=0         no floor (ratios are then n/a)
#   GATEWAY_BIN=… MOCK_BIN=… FLOOR_BIN=…   other builds (an older commit's, to compare in one
#                   run); when all three are given nothing is built
# The last line, `IR stack workload=N …`, is for scripts (benches/regression.sh).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
DURATION=${DURATION:-5}
CONNS=${CONNS:-"1 32"}
CALLGRIND_REQUESTS=${CALLGRIND_REQUESTS:-2000}
OPEN_STREAMS=${OPEN_STREAMS:-1000}
SETTLE=${SETTLE:-1} # seconds for the usage writer to flush (callgrind runs)
WRK=${WRK:-1}
FLOOR=${FLOOR:-1}
STACKS=${STACKS:-${STACK:-default}}
STREAM_EVENTS=53 # role + 50 words + finish + [DONE]
export NO_COLOR=1 RUST_LOG=${RUST_LOG:-info}

need() { # command, Debian package
    command -v "$1" >/dev/null && return
    echo "installing $2 ..." >&2
    if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq >&2; APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >&2
}
need curl curl
need bc bc
{ [ "$WRK" = 1 ] || [ "$OPEN_STREAMS" -gt 0 ]; } && need wrk wrk
[ "$CALLGRIND_REQUESTS" -gt 0 ] && need valgrind valgrind

if [ -z "${GATEWAY_BIN:-}" ] || [ -z "${MOCK_BIN:-}" ] || [ -z "${FLOOR_BIN:-}" ]; then
    echo "building the binaries (--profile profiling) ..." >&2
    (cd "$ROOT" && cargo build --profile profiling --quiet --features test-util --bins --example floor)
fi
MOCK_BIN=${MOCK_BIN:-$TARGET/profiling/mock-upstream}
GATEWAY_BIN=${GATEWAY_BIN:-$TARGET/profiling/llm-tower}
FLOOR_BIN=${FLOOR_BIN:-$TARGET/profiling/examples/floor}

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start LOG CMD... : runs CMD in the background, waits for the address it says it listens on.
# Sets STARTED_PID and STARTED_ADDR.
start() {
    local log=$1 addr=""
    shift
    "$@" >"$log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    for _ in $(seq 1200); do
        # The line that says where it listens (valgrind's first lines repeat the command's).
        addr=$(grep -o 'listening.*' "$log" | grep -o '127\.0\.0\.1:[0-9][0-9]*' | head -n1 || true)
        [ -n "$addr" ] && break
        if ! kill -0 "$STARTED_PID" 2>/dev/null; then
            echo "failed to start: $*" >&2; cat "$log" >&2; exit 1
        fi
        sleep 0.05
    done
    [ -n "$addr" ] || { echo "no address from: $*" >&2; cat "$log" >&2; exit 1; }
    STARTED_ADDR=$addr
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; } # utime+stime
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
ratio() { # A B : A / B to two places, or n/a
    if [[ "$1" =~ ^[0-9]+$ && "$2" =~ ^[0-9]+$ && "$2" -gt 0 ]]; then echo "scale=2; $1 / $2" | bc; else echo n/a; fi
}
kilo() { [[ "$1" =~ ^[0-9]+$ ]] && echo "$(echo "scale=1; $1 / 1000" | bc)k" || echo "$1"; }

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
# The upstream model of each workload; `open` holds a stream open for 10 s.
declare -A MODEL=([json]="echo" [stream]="echo?words=50" [paced]="echo?words=50&chunk_delay=1ms"
    [nousage]="echo?words=50&usage=false" [hit]="echo?usage=true" [open]="echo?words=50&chunk_delay=200ms")
declare -A STREAM=([json]=false [stream]=true [paced]=true [nousage]=true [hit]=false [open]=true)

# --- servers ------------------------------------------------------------------------------
start "$WORK/mock.log" "$MOCK_BIN" --listen 127.0.0.1:0
MOCK_PID=$STARTED_PID
UPSTREAM=http://$STARTED_ADDR

# Per target (direct, floor, each stack): its command, address, process, how the models it
# is sent are named (`up/MODEL`, `fast-WORKLOAD`, else MODEL), the header and key its
# requests carry.
declare -A CMD URL PID PREFIX HEADER AUTH
TARGETS=(direct)
URL[direct]=$UPSTREAM PID[direct]=$MOCK_PID
[ "$FLOOR" = 1 ] && TARGETS+=(floor) && CMD[floor]="$FLOOR_BIN --listen 127.0.0.1:0 --upstream $UPSTREAM"
PROXIES=()
[ "$FLOOR" = 1 ] && PROXIES+=(floor)
for stack in $STACKS; do
    yaml=$WORK/$stack.yaml
    case $stack in
    default | tenancy)
        cat >"$yaml" <<EOF
listen: 127.0.0.1:0
providers:
  up: { kind: openai, api_base: "$UPSTREAM/v1", api_key: sk-bench, models: [echo] }
  claude: { kind: anthropic, api_base: "$UPSTREAM/v1", api_key: sk-bench }
  native: { kind: openai, api_base: "$UPSTREAM/v1", api_key: sk-bench, responses: native }
metering: { sqlite_path: "$WORK/$stack-usage.db" }   # the default ledger, kept out of the checkout
cache: { enabled: true, models: ["up/echo?usage=true"] }
EOF
        PREFIX[$stack]=up/
        ;;
    full)
        cat >"$yaml" <<EOF
listen: 127.0.0.1:0
master_key: sk-bench-master
providers:
  up: { kind: openai, api_base: "$UPSTREAM/v1", api_key: sk-bench, models: [echo] }
  up2: { kind: openai, api_base: "$UPSTREAM/v1", api_key: sk-bench }
metering: { sqlite_path: "$WORK/$stack-usage.db" }
cache: { enabled: true }
EOF
        echo "aliases:" >>"$yaml"
        for w in "${!MODEL[@]}"; do echo "  fast-$w: smart-$w" >>"$yaml"; done
        echo "combos:" >>"$yaml"
        for w in "${!MODEL[@]}"; do
            echo "  smart-$w: { targets: [\"up/${MODEL[$w]}\", \"up2/${MODEL[$w]}\"] }" >>"$yaml"
        done
        PREFIX[$stack]=fast- HEADER[$stack]="x-gateway-cache-ttl: 0" AUTH[$stack]=sk-bench-master
        ;;
    *) echo "unknown stack $stack (default, full, tenancy)" >&2; exit 1 ;;
    esac
    if [ "$stack" = tenancy ]; then
        limits=memory
        [ -n "${REDIS_URL:-}" ] && { limits=redis; echo "redis: { url: \"$REDIS_URL\" }" >>"$yaml"; }
        cat >>"$yaml" <<EOF
master_key: sk-bench-master
keys: [{ name: static, key: sk-bench-static }]
tenancy: { limits: $limits, key_prefix: "llm-tower-bench-$$:" }
EOF
    fi
    if [ -n "${LEDGER_URL:-}" ]; then # the shared ledger instead of the default SQLite file
        sed -i "s|^metering: .*|metering: { sink: postgres, postgres_url: \"$LEDGER_URL\" }|" "$yaml"
    fi
    if [ "${TRACES:-0}" = 1 ]; then
        echo "telemetry: { otlp_endpoint: \"$UPSTREAM\", sample_ratio: 1.0 }" >>"$yaml"
    fi
    CMD[$stack]="$GATEWAY_BIN --config $yaml"
    TARGETS+=("$stack") PROXIES+=("$stack")
done

declare -A RSS
for t in "${PROXIES[@]}"; do
    # shellcheck disable=SC2086 # CMD holds a command line
    start "$WORK/$t.log" ${CMD[$t]}
    PID[$t]=$STARTED_PID URL[$t]=http://$STARTED_ADDR
    sleep 0.5
    RSS[$t,idle]=$(rss_kb "${PID[$t]}")
done
if [ -n "${PID[tenancy]:-}" ]; then # the key lives in the ledger, for the callgrind run too
    AUTH[tenancy]=$(curl -fsS -H "authorization: Bearer sk-bench-master" -H 'content-type: application/json' \
        --data '{"key_alias":"bench","rpm_limit":1000000000,"tpm_limit":1000000000000,"max_parallel_requests":1000}' \
        "${URL[tenancy]}/key/generate" | sed -n 's/.*"key":"\([^"]*\)".*/\1/p')
    [ -n "${AUTH[tenancy]}" ] || { echo "no virtual key" >&2; exit 1; }
    echo "tenancy: limits in $limits, virtual key ${AUTH[tenancy]:0:6}…" >&2
fi

# bodyfile TARGET WORKLOAD : the request body a target is sent for a workload
bodyfile() {
    local t=$1 w=$2 file=$WORK/body-$1-$2.json model
    if [ ! -f "$file" ]; then
        case $w in
        messages) messages_body "claude/echo" false ;;
        messages-stream) messages_body "claude/echo?words=50" true ;;
        messages-translated) messages_body "up/echo?words=50" true ;;
        responses-translated) responses_body "up/echo?words=50" true ;;
        responses-stream) responses_body "native/echo?words=50" true ;;
        *)
            case $w in replay | static) w=json ;; esac
            model=${MODEL[$w]}
            case ${PREFIX[$t]:-} in up/) model=up/$model ;; fast-) model=fast-$w ;; esac
            body "$model" "${STREAM[$w]}"
            ;;
        esac >"$file"
    fi
    echo "$file"
}

cat >"$WORK/post.lua" <<'EOF'
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
local header = os.getenv("HEADER") or ""
local name, value = header:match("^([^:]+):%s*(.*)$")
if name then wrk.headers[name] = value end
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

# load TARGET WORKLOAD CONNS SECONDS [THREADS] : prints the RESULT line of wrk
load() {
    HEADER=${HEADER[$1]:-} AUTH=${AUTH[$1]:-} BODY_FILE=$(bodyfile "$1" "$2") \
        wrk -t"${5:-1}" -c"$3" -d"$4"s --timeout 30s -s "$WORK/post.lua" "${URL[$1]}/v1/chat/completions" |
        grep '^RESULT' | sed 's/^RESULT //'
}
# sequential URL BODY N HEADER KEY : N requests on one keep-alive connection; fails unless all are 200
sequential() {
    local ok
    ok=$(for _ in $(seq "$3"); do printf 'url = "%s"\noutput = "/dev/null"\n' "$1"; done |
        curl -s -K - -w '%{http_code}\n' -H 'content-type: application/json' -H "${4:-x-bench: 1}" \
            ${5:+-H "authorization: Bearer $5"} --data-binary "@$2" | grep -c '^200$' || true)
    if [ "$ok" != "$3" ]; then
        echo "sequential: $ok of $3 requests answered 200 from $1; one more:" >&2
        curl -sS -m 10 -H 'content-type: application/json' -H "${4:-x-bench: 1}" ${5:+-H "authorization: Bearer $5"} \
            --data-binary "@$2" "$1" 2>&1 | head -c 2000 >&2
        exit 1
    fi
}

for t in "${TARGETS[@]}"; do # one request each, so a broken setup fails loudly
    sequential "${URL[$t]}/v1/chat/completions" "$(bodyfile "$t" json)" 1 "${HEADER[$t]:-x-bench: 1}" "${AUTH[$t]:-}"
done

# --- wrk: latency and CPU per request ----------------------------------------------------
declare -A R
if [ "$WRK" = 1 ]; then
    echo "upstream $UPSTREAM; ${DURATION}s per run, wrk -t1; $(nproc) cores" >&2
    for w in json stream paced; do
        for c in $CONNS; do
            for t in "${TARGETS[@]}"; do
                load "$t" "$w" "$c" 1 >/dev/null # warm-up
                p0=$(cpu_ticks "${PID[$t]}") m0=$(cpu_ticks "$MOCK_PID")
                out=$(load "$t" "$w" "$c" "$DURATION")
                p1=$(cpu_ticks "${PID[$t]}") m1=$(cpu_ticks "$MOCK_PID")
                n=$(field "$out" requests)
                [ "$(field "$out" bad)" = 0 ] || echo "WARNING: $w c=$c $t: errors: $out" >&2
                R[$w,$c,$t]="$out cpu=$(((p1 - p0) * TICK_US / n)) up_cpu=$(((m1 - m0) * TICK_US / n))"
                echo "  $w c=$c $t: ${R[$w,$c,$t]}" >&2
            done
        done
    done
fi

# --- RSS with many streams open ----------------------------------------------------------
if [ "$OPEN_STREAMS" -gt 0 ]; then
    for t in "${PROXIES[@]}"; do
        echo "RSS: $OPEN_STREAMS streams open through $t ..." >&2
        (sleep 4 && rss_kb "${PID[$t]}" >"$WORK/rss-open-$t") &
        sampler=$!
        load "$t" open "$OPEN_STREAMS" 6 2 >/dev/null || true # each stream lasts 10 s: all cut by wrk
        wait "$sampler"
        sleep 2
        RSS[$t,open]=$(cat "$WORK/rss-open-$t") RSS[$t,after]=$(rss_kb "${PID[$t]}")
    done
fi
for t in "${PROXIES[@]}"; do stop "${PID[$t]}"; done

# --- callgrind: instructions per request --------------------------------------------------
# For each workload: N requests on one keep-alive connection (like wrk -c1), dumped, then an
# idle stretch as long (timers, metrics upkeep), dumped and subtracted.
declare -A IR
if [ "$CALLGRIND_REQUESTS" -gt 0 ]; then
    CG_OUT=${CALLGRIND_OUT:-$WORK}
    mkdir -p "$CG_OUT"
    ir() { grep -h '^summary:\|^totals:' "$1" | head -n1 | awk '{ print $2 }'; }
    for t in "${PROXIES[@]}"; do
        workloads=${WORKLOADS:-"json stream paced nousage replay hit static messages messages-stream messages-translated responses-translated responses-stream"}
        todo=""
        for w in $workloads; do
            case $t:$w in
            floor:json | floor:stream | floor:paced) ;;
            floor:*) continue ;;
            tenancy:static) ;;
            *:static) continue ;;
            default:messages* | default:responses*) ;;
            *:messages* | *:responses*) continue ;;
            esac
            todo="$todo $w"
        done
        [ -n "$todo" ] || continue
        # shellcheck disable=SC2086 # CMD holds a command line
        start "$WORK/callgrind-$t.log" valgrind --tool=callgrind --callgrind-out-file="$CG_OUT/callgrind.$t.out.%p" ${CMD[$t]}
        cg_pid=$STARTED_PID cg_url=http://$STARTED_ADDR/v1
        dump=0
        for w in $todo; do
            n=$CALLGRIND_REQUESTS
            case $w in json | replay | hit | static | messages) ;; *) n=$(((n + 3) / 4)) ;; esac
            header=${HEADER[$t]:-x-bench: 1} path=chat/completions key=${AUTH[$t]:-}
            [ "$w" = replay ] && header="idempotency-key: bench-replay"
            [ "$w" = hit ] && header="x-bench: 1"
            [ "$w" = static ] && key=sk-bench-static
            case $w in messages*) path=messages header="anthropic-version: 2023-06-01" ;; responses*) path=responses ;; esac
            body=$(bodyfile "$t" "$w")
            echo "callgrind $t: $n $w requests (slow) ..." >&2
            sequential "$cg_url/$path" "$body" 100 "$header" "$key" # warm-up: pool, lazy init
            # The usage writer flushes a batch ~100 ms after its records: settling before
            # zeroing and before dumping puts every record of the N requests, and none of
            # the warm-up's, in the window (without it the figure moved by ±8 %).
            sleep "$SETTLE"
            callgrind_control -z "$cg_pid" >/dev/null 2>&1
            t0=$(date +%s.%N)
            sequential "$cg_url/$path" "$body" "$n" "$header" "$key"
            sleep "$SETTLE"
            t1=$(date +%s.%N)
            callgrind_control -d "$w" "$cg_pid" >/dev/null 2>&1
            sleep "$(echo "$t1 - $t0" | bc)"
            callgrind_control -d idle "$cg_pid" >/dev/null 2>&1
            load_file=$CG_OUT/callgrind.$t.out.$cg_pid.$((dump + 1))
            idle_file=$CG_OUT/callgrind.$t.out.$cg_pid.$((dump + 2))
            dump=$((dump + 2))
            ir_load=$(ir "$load_file") ir_idle=$(ir "$idle_file")
            IR[$t,$w]=$(((ir_load - ir_idle) / n))
            echo "  $t $w: ${IR[$t,$w]} per request (Ir $ir_load, idle over as long $ir_idle)" >&2
            [ -n "${CALLGRIND_OUT:-}" ] && echo "  callgrind_annotate --inclusive=yes $load_file | head -60" >&2
        done
        stop "$cg_pid"
    done
fi

# --- report -------------------------------------------------------------------------------
echo
echo "stacks: $STACKS; gateway $GATEWAY_BIN; $(nproc) cores"
if [ "$WRK" = 1 ]; then
    echo
    echo "latency in µs (wrk, ${DURATION}s per run): direct p50/p99, then what each proxy adds to them;"
    echo "CPU µs per request of each proxy (user+sys), and the gateways' CPU over the floor's"
    printf '%-7s %5s | %14s' workload conns "direct p50/p99"
    for t in "${PROXIES[@]}"; do printf ' | %-26s' "$t +p50/+p99 cpu"; done
    echo
    for w in json stream paced; do
        for c in $CONNS; do
            d=${R[$w,$c,direct]}
            dp50=$(field "$d" p50) dp99=$(field "$d" p99)
            printf '%-7s %5s | %14s' "$w" "$c" "$dp50/$dp99"
            for t in "${PROXIES[@]}"; do
                g=${R[$w,$c,$t]} x=""
                cpu=$(field "$g" cpu)
                [ "$t" != floor ] && [ "$FLOOR" = 1 ] && x=" ×$(ratio "$cpu" "$(field "${R[$w,$c,floor]}" cpu)")"
                printf ' | %-26s' "+$(($(field "$g" p50) - dp50))/+$(($(field "$g" p99) - dp99)) ${cpu}µs$x"
            done
            echo
        done
    done
    echo "(a stream's figures are per stream of $STREAM_EVENTS events)"
fi
if [ "$OPEN_STREAMS" -gt 0 ]; then
    echo
    echo "RSS: idle / with $OPEN_STREAMS streams open (per stream) / after they were cancelled"
    for t in "${PROXIES[@]}"; do
        echo "  $t: $((RSS[$t,idle] / 1024)) MB / $((RSS[$t,open] / 1024)) MB ($(((RSS[$t,open] - RSS[$t,idle]) / OPEN_STREAMS)) kB) / $((RSS[$t,after] / 1024)) MB"
    done
fi
if [ "$CALLGRIND_REQUESTS" -gt 0 ]; then
    echo
    echo "instructions per request (callgrind, idle subtracted); × = over the floor; a stream is $STREAM_EVENTS events"
    printf '%-21s %9s' workload floor
    for t in "${PROXIES[@]}"; do [ "$t" != floor ] && printf ' | %9s %6s' "$t" "×"; done
    echo
    for w in json stream paced nousage replay hit static messages messages-stream messages-translated responses-translated responses-stream; do
        any=""
        for t in "${PROXIES[@]}"; do [ -n "${IR[$t,$w]:-}" ] && any=1; done
        [ -n "$any" ] || continue
        base=${IR[floor,$w]:-}
        [ "$w" = nousage ] && base=${IR[floor,stream]:-}
        [ "$w" = hit ] || [ "$w" = replay ] && base=${IR[floor,json]:-}
        printf '%-21s %9s' "$w" "$(kilo "${IR[floor,$w]:-}")"
        for t in "${PROXIES[@]}"; do
            [ "$t" = floor ] && continue
            printf ' | %9s %6s' "$(kilo "${IR[$t,$w]:--}")" "$(ratio "${IR[$t,$w]:-}" "$base")"
        done
        echo
    done
    echo "per streamed event (stream ÷ $STREAM_EVENTS):$(for t in "${PROXIES[@]}"; do
        [ -n "${IR[$t,stream]:-}" ] && printf ' %s %s' "$t" "$(kilo $((IR[$t,stream] / STREAM_EVENTS)))"
    done)"
    [ -n "${IR[tenancy,static]:-}" ] && echo "tenancy: the virtual key adds $((IR[tenancy,json] - IR[tenancy,static])) over the configured key"
    for t in "${PROXIES[@]}"; do
        line="IR $t"
        for key in "${!IR[@]}"; do [ "${key%%,*}" = "$t" ] && line="$line ${key#*,}=${IR[$key]}"; done
        echo "$line"
    done
fi
