#!/usr/bin/env bash
# Sandbox template builds, N runs each, interleaved:
#   raw    the same work by hand with the raw tools: an overlay over the base template's
#          rootfs, `runc run` of `sh -c 'echo N > /opt/x'`, `cp -a` of the result
#   miss   `roost sandbox template build tN --run 'echo N > /opt/x'` (a new command each
#          run: a cache miss; a real container on the project's network, the copy into
#          the image store, the container deleted)
#   hit    the same build again (a cache hit: nothing runs)
# Prints medians and ratios against raw (the CLI's process start and the operation wait
# are in roost's times). Needs root and a build of roost.
#   scripts/bench-templates.sh [RUNS]      (ROOST_BIN: another build, e.g. a debug one)
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${1:-5}"
bin=${ROOST_BIN:-$PWD/target/release/roost}
[ -x "$bin" ] || { echo "error: build first: cargo build --release -p roost (make bench does)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "error: run as root (containers need it)" >&2; exit 1; }
command -v runc >/dev/null || { echo "error: runc is missing (Debian package runc)" >&2; exit 1; }

work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
table=rbenchtpl
. scripts/lib-networks.sh
cleanup() {
  "$bin" ps -a 2>/dev/null | awk 'NR > 1 { print $2 }' | xargs -r -n 1 "$bin" instance rm -f >/dev/null 2>&1 || true
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for id in $(runc --root "$work/runc" list -q 2>/dev/null); do runc --root "$work/runc" delete -f "$id" >/dev/null 2>&1 || true; done
  umount "$work/raw/merged" 2>/dev/null || true
  remove_roost_networks "$table"
  rm -rf "$work"
}
trap cleanup EXIT

ROOST_ADMIN_PASSWORD=bench-password-123 ROOST_LOG_LEVEL=warn "$bin" server --listen "127.0.0.1:$port" \
  --e2b-listen off --s3-listen off --data-dir "$work/data" --compute on --firewall-table "$table" \
  --network-cidr 10.171.0.0/16 >"$work/server.out" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && break; sleep 0.1; done
export ROOST_CONFIG_FILE="$work/cli.toml" ROOST_SERVER="http://127.0.0.1:$port"
echo bench-password-123 | "$bin" login -u admin --password-stdin 2>/dev/null
# Warm-up (not timed): builds the builtin base from Debian packages on first use.
"$bin" sandbox template build warmup --run true >/dev/null 2>&1
digest=$("$bin" sandbox template show base -o json | awk -F'"' '/"digest"/ { print $4 }')
rootfs="$work/data/images/sha256/$digest/rootfs"
[ -n "$digest" ] && [ -d "$rootfs" ] || { echo "error: no rootfs for base ($digest)" >&2; exit 1; }
echo "base rootfs: $(du -sh "$rootfs" | cut -f1)"

# The build by hand (cleanup of the previous run's copy is not timed: see raw_clean).
raw_clean() { rm -rf "$work/raw"; }
raw_build() {
  local n=$1 r="$work/raw"
  mkdir -p "$r/upper" "$r/work" "$r/merged" "$r/bundle"
  mount -t overlay overlay -o "lowerdir=$rootfs,upperdir=$r/upper,workdir=$r/work" "$r/merged"
  (cd "$r/bundle" && runc spec)
  sed -i "s/\"terminal\": true/\"terminal\": false/; s|\"sh\"|\"sh\", \"-c\", \"mkdir -p /opt \&\& echo $n > /opt/x\"|; s|\"path\": \"rootfs\"|\"path\": \"$r/merged\"|; s/\"readonly\": true/\"readonly\": false/" "$r/bundle/config.json"
  runc --root "$work/runc" run --bundle "$r/bundle" "raw$n" >/dev/null
  runc --root "$work/runc" delete -f "raw$n" >/dev/null 2>&1 || true
  mkdir -p "$r/out"
  cp -a --one-file-system "$r/merged/." "$r/out"
  umount "$r/merged"
}

ms() { local t0 t1; t0=$(date +%s%N); "$@" >/dev/null 2>&1; t1=$(date +%s%N); echo $(((t1 - t0) / 1000000)); }
raw=() miss=() hit=()
for i in $(seq "$runs"); do
  raw_clean
  sync
  raw+=("$(ms raw_build "$i")")
  sync
  miss+=("$(ms "$bin" sandbox template build "t$i" --run "mkdir -p /opt && echo $i > /opt/x")")
  hit+=("$(ms "$bin" sandbox template build "t$i" --run "mkdir -p /opt && echo $i > /opt/x")")
done
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
m_raw=$(median "${raw[@]}")
m_miss=$(median "${miss[@]}")
m_hit=$(median "${hit[@]}")
echo "==> one-command template build, median of $runs runs"
printf 'raw (overlay + runc run + cp -a)            %7s ms\n' "$m_raw"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%5.2f", a / b }'; }
printf 'roost template build, cache miss            %7s ms  %sx raw\n' "$m_miss" "$(ratio "$m_miss" "$m_raw")"
printf 'roost template build, cache hit             %7s ms  %sx raw\n' "$m_hit" "$(ratio "$m_hit" "$m_raw")"
"$bin" sandbox template ls | head -n 4
