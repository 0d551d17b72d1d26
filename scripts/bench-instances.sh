#!/usr/bin/env bash
# Instance start latency: raw `runc run -d` + `runc exec true` against
# `roost instance create` (returns when running) + `roost exec … -- true` through the
# API, on the same busybox rootfs, interleaved, N runs each; prints medians and the
# ratio. Then 50 concurrent creates (wall time) and what a running instance costs
# beyond its own processes. Needs root; uses a release build.
#   scripts/bench-instances.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${1:-15}"
bin=$PWD/target/release/roost
[ -x "$bin" ] || { echo "error: build first: cargo build --release -p roost (make bench does)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "error: run as root (containers need it)" >&2; exit 1; }

work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
table=rbench
. scripts/lib-networks.sh
cleanup() {
  # Delete what the benchmark started before stopping the server (containers outlive it).
  "$bin" ps -a 2>/dev/null | awk 'NR > 1 { print $2 }' | xargs -r -n 1 -P 8 "$bin" instance rm -f >/dev/null 2>&1 || true
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for id in $(runc --root "$work/runc" list -q 2>/dev/null); do runc --root "$work/runc" delete -f "$id" >/dev/null 2>&1 || true; done
  remove_roost_networks "$table"
  rm -rf "$work"
}
trap cleanup EXIT

ROOST_ADMIN_PASSWORD=bench-password-123 ROOST_LOG_LEVEL=warn "$bin" server --listen "127.0.0.1:$port" \
  --data-dir "$work/data" --compute on --firewall-table "$table" --network-cidr 10.198.0.0/16 >"$work/server.out" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && break; sleep 0.1; done
export ROOST_CONFIG_FILE="$work/cli.toml" ROOST_SERVER="http://127.0.0.1:$port"
echo bench-password-123 | "$bin" login -u admin --password-stdin 2>/dev/null

# Warm up: the first instance builds the busybox image.
"$bin" instance create warm --image busybox --memory 64m >/dev/null 2>&1
"$bin" instance rm -f warm >/dev/null 2>&1
rootfs=$(ls -d "$work"/data/images/sha256/*/rootfs | head -n 1)

# The raw runc bundle: the same rootfs, a long-running command, no terminal.
bundle="$work/bundle"
mkdir -p "$bundle"
(cd "$bundle" && runc spec)
sed -i 's/"terminal": true/"terminal": false/; s/"sh"/"sleep", "3600"/' "$bundle/config.json"
sed -i "s|\"path\": \"rootfs\"|\"path\": \"$rootfs\"|" "$bundle/config.json"

now() { date +%s%N; }
raw=()
roost=()
for i in $(seq 1 "$runs"); do
  t0=$(now)
  runc --root "$work/runc" run -d --bundle "$bundle" "raw$i" >/dev/null 2>&1 </dev/null
  runc --root "$work/runc" exec "raw$i" true
  t1=$(now)
  raw+=($(( (t1 - t0) / 1000000 )))
  runc --root "$work/runc" delete -f "raw$i" >/dev/null

  t0=$(now)
  "$bin" instance create "b$i" --image busybox --memory 64m >/dev/null 2>&1
  "$bin" exec "b$i" -- true
  t1=$(now)
  roost+=($(( (t1 - t0) / 1000000 )))
  "$bin" instance rm -f --no-wait "b$i" >/dev/null 2>&1
done
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
m_raw=$(median "${raw[@]}")
m_roost=$(median "${roost[@]}")
sleep 2

echo "==> start to first exec, median of $runs runs"
printf 'raw runc (run -d + exec true)                 %s ms\n' "$m_raw"
printf 'roost (instance create + exec true, via API)  %s ms\n' "$m_roost"
awk -v a="$m_roost" -v b="$m_raw" 'BEGIN { printf "ratio                                         %.2fx (target: within 1.5x)\n", a / b }'

echo "==> 50 instances created concurrently"
t0=$(now)
creates=()
for i in $(seq 1 50); do
  "$bin" instance create "c$i" --image busybox --memory 32m >/dev/null 2>&1 &
  creates+=($!)
done
wait "${creates[@]}"
t1=$(now)
running=$("$bin" ps --status running -o json | grep -c '"status": "running"' || true)
printf 'wall time                                     %s ms (%s running)\n' "$(( (t1 - t0) / 1000000 ))" "$running"

echo "==> what a running instance costs beyond its own processes"
procs_before=$(ls /proc | grep -c '^[0-9]')
rss_before=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
for i in $(seq 1 10); do "$bin" instance create "m$i" --image busybox --memory 32m >/dev/null 2>&1; done
sleep 1
procs_after=$(ls /proc | grep -c '^[0-9]')
rss_after=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
own=$(for i in $(seq 1 10); do "$bin" instance stats "m$i" -o json; done | awk -F': ' '/"pids"/ { gsub(/,/, "", $2); s += $2 } END { print s }')
printf 'host processes added per instance             %s (its own: %s)\n' \
  "$(awk -v a="$procs_after" -v b="$procs_before" 'BEGIN { printf "%.1f", (a - b) / 10 }')" \
  "$(awk -v o="$own" 'BEGIN { printf "%.1f", o / 10 }')"
printf 'server RSS added per instance                 %s KiB (no monitor process per instance)\n' "$(( (rss_after - rss_before) / 10 ))"
