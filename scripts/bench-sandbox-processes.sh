#!/usr/bin/env bash
# Background processes of a sandbox through Roost's own CLI and API, against the raw tool,
# interleaved, N runs each, in one sandbox of the builtin `base` template:
#   raw       `runc exec <container> true` on the sandbox's own container (runc's root
#             under /run/roost), what every Roost exec pays underneath
#   fg        `roost sandbox exec ID -- true` (the instance exec WebSocket)
#   bg        `roost sandbox exec -d ID -- true` (POST /v1/sandboxes/{id}/processes;
#             returns the pid once the process started)
#   attach    `roost sandbox attach ID PID` on a process that printed 64 KiB and ended
#             (the replay of its output and its exit code)
# Prints medians (ms) and ratios against raw runc. CLI runs include the CLI's own start.
# Needs root and a release build (ROOST_BIN overrides, e.g. a debug one).
#   scripts/bench-sandbox-processes.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${1:-20}"
bin=${ROOST_BIN:-$PWD/target/release/roost}
[ -x "$bin" ] || { echo "error: build first: cargo build --release -p roost (make bench does)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "error: run as root (containers need it)" >&2; exit 1; }
command -v runc >/dev/null || { echo "error: runc is missing (Debian package 'runc')" >&2; exit 1; }

work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
# BENCH_TABLE / BENCH_CIDR: another firewall table and address pool.
table=${BENCH_TABLE:-rbenchprc}
cidr=${BENCH_CIDR:-10.197.0.0/16}
. scripts/lib-networks.sh
cleanup() {
  # The sandbox's instance, removed before the server stops (its rootfs is a mount).
  [ -n "${instance:-}" ] && "$bin" instance rm -f "$instance" >/dev/null 2>&1 || true
  for _ in $(seq 100); do
    [ -z "$("$bin" ps -a 2>/dev/null | awk 'NR > 1')" ] && break
    sleep 0.2
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  remove_roost_networks "$table"
  rm -rf "$work"
}
trap cleanup EXIT

ROOST_ADMIN_PASSWORD=bench-password-123 ROOST_LOG_LEVEL=warn "$bin" server --listen "127.0.0.1:$port" \
  --e2b-listen off --s3-listen off \
  --data-dir "$work/data" --compute on --firewall-table "$table" --network-cidr "$cidr" >"$work/server.out" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && break; sleep 0.1; done
export ROOST_CONFIG_FILE="$work/cli.toml" ROOST_SERVER="http://127.0.0.1:$port"
echo bench-password-123 | "$bin" login -u admin --password-stdin >/dev/null 2>&1
echo "creating a sandbox (the first one builds the base template)…" >&2
id=$("$bin" sandbox create --template base --ttl 30m)
instance=$("$bin" sandbox show "$id" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["instance_id"])')
root=$(dirname "$(ls -d /run/roost/*/runc/"$instance" | head -1)")
[ -d "$root/$instance" ] || { echo "error: no runc state for $instance under /run/roost" >&2; exit 1; }

# Microseconds, from bash itself (no process start inside the measured interval).
us() { local t=${EPOCHREALTIME/./}; echo $((10#$t)); }
declare -A samples
for _ in $(seq "$runs"); do
  # A process that prints 64 KiB (the replay's size per stream) and ends, untimed; it
  # has ended by the time the attach below runs (which would otherwise wait for it).
  printer=$("$bin" sandbox exec -d "$id" -- sh -c 'head -c 49152 /dev/zero | base64 -w 0 | head -c 65536')
  for kind in raw fg bg attach; do
    t0=$(us)
    case $kind in
      raw) runc --root "$root" exec "$instance" true ;;
      fg) "$bin" sandbox exec "$id" -- true ;;
      bg) "$bin" sandbox exec -d "$id" -- true >/dev/null ;;
      attach) "$bin" sandbox attach "$id" "$printer" >/dev/null ;;
    esac
    t1=$(us)
    samples[$kind]+="$(( (t1 - t0) ))
"
  done
done

median() { sort -n | awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.1f", m / 1000 }'; }
raw=$(printf '%s' "${samples[raw]}" | median)
echo "sandbox processes, $runs runs each (median ms; ratio to raw runc exec):"
for kind in raw fg bg attach; do
  m=$(printf '%s' "${samples[$kind]}" | median)
  printf '  %-7s %8s ms  %5.2fx\n' "$kind" "$m" "$(python3 -c "print($m / $raw)")"
done
