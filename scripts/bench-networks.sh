#!/usr/bin/env bash
# What security groups cost an allowed packet: ping RTT between two instances on one
# network when the target's group holds just the ICMP rule, then when 200 rules that
# do not match come before it (the worst case: every one is evaluated). Rounds are
# interleaved; prints median RTTs and the ratio. Also how long a rule change takes to
# apply (API call to nftables). Needs root; uses a release build.
#   scripts/bench-networks.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib-networks.sh

rounds="${1:-5}"
bin=${ROOST_BIN:-$PWD/target/release/roost}
[ -x "$bin" ] || { echo "error: build first: cargo build --release -p roost (make bench does)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "error: run as root (containers and nftables need it)" >&2; exit 1; }

work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
table=rbenchnet
cleanup() {
  "$bin" ps -a 2>/dev/null | awk 'NR > 1 { print $2 }' | xargs -r -n 1 -P 8 "$bin" instance rm -f >/dev/null 2>&1 || true
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  remove_roost_networks "$table"
  rm -rf "$work"
}
trap cleanup EXIT

ROOST_ADMIN_PASSWORD=bench-password-123 ROOST_LOG_LEVEL=warn "$bin" server --listen "127.0.0.1:$port" \
  --data-dir "$work/data" --compute on --firewall-table "$table" --network-cidr 10.241.0.0/16 >"$work/server.out" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && break; sleep 0.1; done
export ROOST_CONFIG_FILE="$work/cli.toml" ROOST_SERVER="http://127.0.0.1:$port"
echo bench-password-123 | "$bin" login -u admin --password-stdin 2>/dev/null

"$bin" network create bench --cidr 10.242.0.0/24 >/dev/null 2>&1
"$bin" sg create target >/dev/null 2>&1
"$bin" instance create a --image busybox --memory 64m --network bench >/dev/null 2>&1
"$bin" instance create b --image busybox --memory 64m --network bench --sg target >/dev/null 2>&1
b_ip=$("$bin" instance show b -o json | sed -n 's/.*"ip": *"\([0-9.]*\)".*/\1/p' | head -n 1)

icmp_rule() { "$bin" sg rule add target --ingress --proto icmp -o json | sed -n 's/.*"id": *"\(sgr-[a-z0-9]*\)".*/\1/p' | tail -n 1; }
rtt() { "$bin" exec a -- ping -q -c 200 -i 0.01 "$b_ip" | sed -n 's|.*= [0-9.]*/\([0-9.]*\)/.*|\1|p'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

rule=$(icmp_rule)
rtt >/dev/null # warm up ARP and conntrack
few=() many=() apply=()
for _ in $(seq "$rounds"); do
  few+=("$(rtt)")
  # 200 rules that do not match ICMP, then the ICMP rule after them.
  "$bin" sg rule rm target "$rule" >/dev/null 2>&1
  for n in $(seq 200); do "$bin" sg rule add target --ingress --proto tcp --port $((10000 + n)) --from "10.$((n % 250)).0.0/16" >/dev/null 2>&1; done
  start=$(date +%s%N)
  rule=$(icmp_rule)
  apply+=("$(( ($(date +%s%N) - start) / 1000000 ))")
  many+=("$(rtt)")
  # Back to the ICMP rule alone.
  for id in $("$bin" sg show target -o json | grep -o '"sgr-[a-z0-9]*"' | tr -d '"'); do
    [ "$id" = "$rule" ] || "$bin" sg rule rm target "$id" >/dev/null 2>&1
  done
done

few_ms=$(printf '%s\n' "${few[@]}" | median)
many_ms=$(printf '%s\n' "${many[@]}" | median)
apply_ms=$(printf '%s\n' "${apply[@]}" | median)
echo "ping RTT, allowed packet, 1 rule      : median ${few_ms} ms over $rounds rounds of 200 pings"
echo "ping RTT, allowed packet, 200 rules   : median ${many_ms} ms"
awk -v a="$few_ms" -v b="$many_ms" 'BEGIN { printf "200 rules / 1 rule                     : %.2fx (%+.3f ms)\n", b / a, b - a }'
echo "rule change to applied (CLI round trip): median ${apply_ms} ms"
