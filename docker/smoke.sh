#!/usr/bin/env bash
# The release binary run the way docker/Dockerfile runs it, without a Docker engine: as the
# image's unprivileged user (uid 10001), from a working directory it cannot write, with the
# image's config (docker/default.yaml, its data directory moved to a temporary one) and the
# image's ENV. It must start, answer, write its usage ledger into the data directory, and
# stop cleanly on SIGTERM. And the failure the image once had (a relative SQLite path in an
# unwritable working directory) must still be a clear start-up error, not a silent one.
#
#   bash docker/smoke.sh [path/to/llm-tower]     # as root: it switches to uid 10001
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${1:-${CARGO_TARGET_DIR:-$ROOT/target}/release/llm-tower}
[ "$(id -u)" = 0 ] || { echo "smoke.sh switches to the image's uid 10001: run it as root"; exit 1; }
[ -x "$BIN" ] || { echo "no binary at $BIN (cargo build --release)"; exit 1; }

WORK=$(mktemp -d)
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
chmod 755 "$WORK"
# Where the image has them: the binary in a directory the user can read, the config
# read-only, the data directory owned by the user, the rest not writable.
mkdir -p "$WORK/bin" "$WORK/etc" "$WORK/data" "$WORK/readonly"
install -m 755 "$BIN" "$WORK/bin/llm-tower"
sed "s#/var/lib/llm-tower#$WORK/data#g" "$ROOT/docker/default.yaml" >"$WORK/etc/gateway.yaml"
grep -q "sqlite_path: $WORK/data/usage.db" "$WORK/etc/gateway.yaml"
chown 10001:10001 "$WORK/data"
chmod 555 "$WORK/readonly"
# The image's environment: its ENV lines, nothing else (PATH as Debian's default).
mapfile -t IMAGE_ENV < <(sed -n 's/^ENV //p' "$ROOT/docker/Dockerfile")
# Run as uid 10001 with the image's environment (exec'd, so `$!` is the program itself).
IMAGE_USER=(setpriv --reuid=10001 --regid=10001 --clear-groups
  env -i PATH=/usr/local/bin:/usr/bin:/bin "${IMAGE_ENV[@]}")
if (cd "$WORK/readonly" && exec "${IMAGE_USER[@]}" touch probe) 2>/dev/null; then
  echo "the working directory is writable by uid 10001: this check would prove nothing"; exit 1
fi

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$WORK/readonly" && exec "${IMAGE_USER[@]}" "$WORK/bin/llm-tower" \
  --config "$WORK/etc/gateway.yaml" --listen "127.0.0.1:$PORT") >"$WORK/log" 2>&1 &
PID=$!
for _ in $(seq 50); do
  curl -fsS -o /dev/null "http://127.0.0.1:$PORT/health" 2>/dev/null && break
  kill -0 "$PID" 2>/dev/null || { echo "the gateway exited:"; cat "$WORK/log"; exit 1; }
  sleep 0.2
done
answer=$(curl -fsS "http://127.0.0.1:$PORT/v1/chat/completions" -H 'content-type: application/json' \
  -d '{"model":"mock/echo","messages":[{"role":"user","content":"smoke test"}]}')
grep -q 'You said: smoke test' <<<"$answer" || { echo "unexpected answer: $answer"; exit 1; }
kill -TERM "$PID"
status=0
wait "$PID" || status=$?
PID=""
[ "$status" = 0 ] || { echo "exit status $status after SIGTERM:"; cat "$WORK/log"; exit 1; }
if grep -q $'\e\[' "$WORK/log"; then echo "colour codes in a log that is not a terminal"; exit 1; fi
rows=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from llm_usage").fetchone()[0])' "$WORK/data/usage.db")
[ "$rows" = 1 ] || { echo "expected 1 usage record in the ledger, found $rows"; exit 1; }
echo "ok: served as uid 10001 from a read-only directory, 1 usage record in $WORK/data"

# The old failure: a relative ledger path in an unwritable working directory.
printf 'providers: { mock: { kind: mock } }\n' >"$WORK/etc/relative.yaml"
if (cd "$WORK/readonly" && exec "${IMAGE_USER[@]}" "$WORK/bin/llm-tower" \
  --config "$WORK/etc/relative.yaml" --listen 127.0.0.1:0) >"$WORK/log" 2>&1; then
  echo "a ledger the user cannot create did not stop the start"; exit 1
fi
grep -q 'metering.sqlite_path' "$WORK/log" || { echo "unclear start-up error:"; cat "$WORK/log"; exit 1; }
echo "ok: an unwritable ledger path is a start-up error naming metering.sqlite_path"
