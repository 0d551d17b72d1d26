#!/usr/bin/env bash
# API throughput: GET /v1/tokens with a valid token at 64 concurrent connections on
# loopback (wrk), against a release build on a temporary SQLite data dir. Prints req/s,
# latency percentiles, idle RSS, and the ratio to LXD's list endpoint measured on this
# class of machine (~1,300 req/s).
#   scripts/bench-api.sh [DURATION_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${1:-15}"
bin=target/release/roost
[ -x "$bin" ] || { echo "error: build first: cargo build --release -p roost (make bench does)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "error: wrk is missing: apt-get install wrk (scripts/install-deps.sh --bench)" >&2; exit 1; }

work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
password=bench-password-123
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT

ROOST_ADMIN_PASSWORD=$password ROOST_LOG_LEVEL=warn "$bin" server ${ROOST_BENCH_SERVER_ARGS:-} --listen "127.0.0.1:$port" --data-dir "$work/data" \
  >"$work/server.out" 2>&1 &
pid=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && break
  sleep 0.1
done

export ROOST_CONFIG_FILE="$work/cli.toml" ROOST_SERVER="http://127.0.0.1:$port"
echo "$password" | "$bin" login -u admin --password-stdin 2>/dev/null
token=$("$bin" token create bench --scope read 2>/dev/null)
for i in $(seq 1 9); do "$bin" token create "extra-$i" >/dev/null 2>&1; done

sleep 1
rss_idle_kb=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")

echo "==> wrk: GET /v1/tokens (10 tokens listed), 64 connections, 2 threads, ${duration}s"
wrk -t2 -c64 -d"${duration}s" --latency -H "Authorization: Bearer $token" "http://127.0.0.1:$port/v1/tokens" | tee "$work/wrk.txt"

rps=$(awk '/^Requests\/sec:/ {print $2}' "$work/wrk.txt")
p99=$(awk '$1 == "99%" {print $2}' "$work/wrk.txt")
non2xx=$(awk '/Non-2xx/ {print $5}' "$work/wrk.txt")
rss_loaded_kb=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")

echo
echo "==> results"
printf 'requests/s            %s\n' "$rps"
printf 'p99 latency           %s\n' "$p99"
printf 'non-2xx responses     %s\n' "${non2xx:-0}"
awk -v k="$rss_idle_kb" 'BEGIN { printf "idle RSS              %.1f MiB\n", k / 1024 }'
awk -v k="$rss_loaded_kb" 'BEGIN { printf "RSS after the load    %.1f MiB\n", k / 1024 }'
awk -v r="$rps" 'BEGIN { printf "vs LXD list endpoint  %.1fx (LXD ~1300 req/s on this machine class)\n", r / 1300 }'
