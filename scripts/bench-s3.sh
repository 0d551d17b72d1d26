#!/usr/bin/env bash
# Object storage throughput, in one run on one disk: PUT and GET of one 1 GiB object
# through the S3 endpoint vs dd writing (conv=fsync) and reading the same size (three
# interleaved rounds, medians; also as multipart uploads of 64 MiB parts, 4 at a time,
# and of 8 MiB parts, 10 at a time — the AWS CLI's defaults above 8 MiB), and
# 10,000 objects of 4 KiB with 16 concurrent clients (ops/s, p50 and p99 latency) vs dd
# writing 10,000 4 KiB blocks each synced (oflag=dsync). Release build, SQLite store,
# page cache dropped before each read. Prints throughput and the ratios.
#   scripts/bench-s3.sh [LARGE_MIB] [SMALL_COUNT]
# The data dir (and dd's files) live under $ROOST_BENCH_DIR (default /var/tmp).
set -euo pipefail
cd "$(dirname "$0")/.."

large_mib="${1:-1024}"
small_count="${2:-10000}"
bin=target/release/roost
bench=target/release/examples/s3bench
[ -x "$bin" ] || { echo "error: build first: cargo build --release -p roost (make bench does)" >&2; exit 1; }
[ -x "$bench" ] || cargo build --release -q -p roost-s3 --example s3bench

work=$(mktemp -d -p "${ROOST_BENCH_DIR:-/var/tmp}" roost-bench-s3.XXXXXX)
src=$(mktemp -p /dev/shm roost-bench-src.XXXXXX)
pid=
cleanup() {
  [ -n "$pid" ] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  rm -rf "$work" "$src"
}
trap cleanup EXIT

drop_caches() {
  sync
  if [ -w /proc/sys/vm/drop_caches ]; then echo 3 >/proc/sys/vm/drop_caches; else echo "   (not root: page cache not dropped)"; fi
}

# Seconds taken by a command, to the millisecond.
timed() {
  local t0 t1
  t0=$(date +%s.%N)
  "$@"
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}

echo "==> source: ${large_mib} MiB of random bytes in RAM (/dev/shm), so the client reads no disk"
head -c "$((large_mib * 1048576))" /dev/urandom >"$src"

port=$((20000 + RANDOM % 20000))
s3port=$((port + 1))
password=bench-password-123
ROOST_ADMIN_PASSWORD=$password ROOST_LOG_LEVEL=warn "$bin" server --listen "127.0.0.1:$port" \
  --s3-listen "127.0.0.1:$s3port" --data-dir "$work/data" --compute off >"$work/server.out" 2>&1 &
pid=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
export ROOST_CONFIG_FILE="$work/cli.toml" ROOST_SERVER="http://127.0.0.1:$port"
echo "$password" | "$bin" login -u admin --password-stdin >/dev/null 2>&1
"$bin" bucket create bench >/dev/null 2>&1
"$bin" s3-key create -o json >"$work/key.json"
access=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$work/key.json")
secret=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["secret"])' "$work/key.json")
endpoint="http://127.0.0.1:$s3port"

# The disk of a VM is noisy (host caches, other guests): dd and S3 alternate, three
# rounds each, and the medians are compared.
median() { tr ' ' '\n' | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
dd_ws="" dd_rs="" puts="" gets="" mps="" mps8=""
for round in 1 2 3; do
  echo "==> round $round: dd write (conv=fsync), S3 PUT, S3 multipart PUT (64 MiB parts, 4 at a time; 8 MiB parts, 10 at a time), dd read, S3 GET (${large_mib} MiB, page cache dropped before reads)"
  t=$(timed dd if="$src" of="$work/dd.bin" bs=1M conv=fsync status=none)
  dd_ws="$dd_ws $(awk -v m="$large_mib" -v s="$t" 'BEGIN { printf "%.1f", m / s }')"
  put=$("$bench" put-large "$endpoint" bench "large-$round.bin" "$src" "$access" "$secret")
  puts="$puts $(echo "$put" | tr ' ' '\n' | awk -F= '$1 == "mib_per_s" {print $2}')"
  mp=$("$bench" put-multipart "$endpoint" bench "multipart-$round.bin" "$src" 64 4 "$access" "$secret")
  mps="$mps $(echo "$mp" | tr ' ' '\n' | awk -F= '$1 == "mib_per_s" {print $2}')"
  mp=$("$bench" put-multipart "$endpoint" bench "multipart8-$round.bin" "$src" 8 10 "$access" "$secret")
  mps8="$mps8 $(echo "$mp" | tr ' ' '\n' | awk -F= '$1 == "mib_per_s" {print $2}')"
  drop_caches
  t=$(timed dd if="$work/dd.bin" of=/dev/null bs=1M status=none)
  dd_rs="$dd_rs $(awk -v m="$large_mib" -v s="$t" 'BEGIN { printf "%.1f", m / s }')"
  drop_caches
  get=$("$bench" get-large "$endpoint" bench "large-$round.bin" "$access" "$secret")
  gets="$gets $(echo "$get" | tr ' ' '\n' | awk -F= '$1 == "mib_per_s" {print $2}')"
  rm -f "$work/dd.bin"
done
# A PUT must hash its body (the ETag is its MD5, and Content-MD5 is checked): one core's
# MD5 throughput is the ceiling of a single-stream PUT, whatever the disk.
md5_t=$(timed sh -c 'md5sum "$1" >/dev/null' md5 "$src")
md5_mib=$(awk -v m="$large_mib" -v s="$md5_t" 'BEGIN { printf "%.1f", m / s }')
echo "   dd write MiB/s:$dd_ws   S3 PUT MiB/s:$puts   multipart 64 MiB x4:$mps   8 MiB x10:$mps8   md5sum: $md5_mib MiB/s"
echo "   dd read  MiB/s:$dd_rs   S3 GET MiB/s:$gets"

echo "==> dd: ${small_count} blocks of 4 KiB, each synced (oflag=dsync)"
dd_small=$(timed dd if=/dev/zero of="$work/small.bin" bs=4k count="$small_count" oflag=dsync status=none)
rm -f "$work/small.bin"

echo "==> S3: ${small_count} objects of 4 KiB, 16 concurrent clients (PUT, then GET)"
small=$("$bench" small "$endpoint" bench "$small_count" 4096 16 "$access" "$secret")
echo "$small" | sed 's/^/   /'

field() { echo "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k {print $2}'; }
put_mib=$(echo $puts | median)
mp_mib=$(echo $mps | median)
mp8_mib=$(echo $mps8 | median)
get_mib=$(echo $gets | median)
dd_w_mib=$(echo $dd_ws | median)
dd_r_mib=$(echo $dd_rs | median)
dd_small_ops=$(awk -v n="$small_count" -v s="$dd_small" 'BEGIN { printf "%.0f", n / s }')
small_put=$(echo "$small" | grep '^put')
small_get=$(echo "$small" | grep '^get')

echo
echo "==> results ($(nproc) cores, data dir on $(df --output=source "$work" | tail -1))"
printf '%-34s %10s %12s %8s\n' "(medians of 3 rounds for 1 GiB)" "S3" "dd" "ratio"
printf '%-34s %8s MiB/s %8s MiB/s %7.0f%%\n' "PUT ${large_mib} MiB (fsynced)" "$put_mib" "$dd_w_mib" "$(awk -v a="$put_mib" -v b="$dd_w_mib" 'BEGIN { print 100 * a / b }')"
printf '%-34s %8s MiB/s %8s MiB/s %7.0f%%\n' "multipart PUT, 64 MiB parts x4" "$mp_mib" "$dd_w_mib" "$(awk -v a="$mp_mib" -v b="$dd_w_mib" 'BEGIN { print 100 * a / b }')"
printf '%-34s %8s MiB/s %8s MiB/s %7.0f%%\n' "multipart PUT, 8 MiB parts x10" "$mp8_mib" "$dd_w_mib" "$(awk -v a="$mp8_mib" -v b="$dd_w_mib" 'BEGIN { print 100 * a / b }')"
printf '%-34s %8s MiB/s %8s MiB/s %7.0f%%\n' "PUT ${large_mib} MiB vs md5sum alone" "$put_mib" "$md5_mib" "$(awk -v a="$put_mib" -v b="$md5_mib" 'BEGIN { print 100 * a / b }')"
printf '%-34s %8s MiB/s %8s MiB/s %7.0f%%\n' "GET ${large_mib} MiB (cold cache)" "$get_mib" "$dd_r_mib" "$(awk -v a="$get_mib" -v b="$dd_r_mib" 'BEGIN { print 100 * a / b }')"
printf '%-34s %8s ops/s %8s ops/s %7.0f%%   p50 %s ms, p99 %s ms\n' "PUT ${small_count} x 4 KiB, 16 clients" \
  "$(field "$small_put" ops_per_s)" "$dd_small_ops" "$(awk -v a="$(field "$small_put" ops_per_s)" -v b="$dd_small_ops" 'BEGIN { print 100 * a / b }')" \
  "$(field "$small_put" p50_ms)" "$(field "$small_put" p99_ms)"
printf '%-34s %8s ops/s %14s   p50 %s ms, p99 %s ms\n' "GET ${small_count} x 4 KiB, 16 clients" \
  "$(field "$small_get" ops_per_s)" "" "$(field "$small_get" p50_ms)" "$(field "$small_get" p99_ms)"
echo "target: large objects >= 80% of raw disk throughput"
