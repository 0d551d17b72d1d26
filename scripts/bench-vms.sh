#!/usr/bin/env bash
# MicroVM start latency: bare `qemu-system-x86_64` with the same kernel, initramfs and
# base disk (a fresh qcow2 overlay each run) until the guest prints its ready marker on
# the serial console, against `roost instance create --type vm` + the first successful
# `roost exec … -- true` (through the guest agent), interleaved, N runs each; prints
# both medians and the ratio. Then 10 VMs created concurrently (wall time) and the idle
# RSS of one VM's QEMU. Needs root; uses a release build.
#   scripts/bench-vms.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${1:-5}"
bin=${ROOST_BIN:-$PWD/target/release/roost}
[ -x "$bin" ] || { echo "error: build first: cargo build --release -p roost (make bench does)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "error: run as root (taps and bridges need it)" >&2; exit 1; }
command -v qemu-system-x86_64 >/dev/null || { echo "error: install qemu-system-x86 (scripts/install-deps.sh)" >&2; exit 1; }

work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
table=rbenchvm
. scripts/lib-networks.sh
cleanup() {
  "$bin" ps -a 2>/dev/null | awk 'NR > 1 { print $2 }' | xargs -r -n 1 -P 4 "$bin" instance rm -f >/dev/null 2>&1 || true
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  remove_roost_networks "$table"
  rm -rf "$work"
}
trap cleanup EXIT

ROOST_ADMIN_PASSWORD=bench-password-123 ROOST_LOG_LEVEL=warn "$bin" server --listen "127.0.0.1:$port" \
  --data-dir "$work/data" --compute on --firewall-table "$table" --network-cidr 10.197.0.0/16 >"$work/server.out" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && break; sleep 0.1; done
export ROOST_CONFIG_FILE="$work/cli.toml" ROOST_SERVER="http://127.0.0.1:$port"
echo bench-password-123 | "$bin" login -u admin --password-stdin 2>/dev/null

echo "==> node"
"$bin" node show
echo "==> building the Debian image and the VM kit (not timed)"
"$bin" image build debian-12 --from debian:bookworm >/dev/null 2>&1
"$bin" instance create warm --type vm --image debian-12 --memory 256m >/dev/null 2>&1
"$bin" exec warm -- true
"$bin" instance rm -f warm >/dev/null

kit="$work/data/vms/vm"
vmlinux=$(ls "$kit"/kernel/*/vmlinux | head -n 1)
initrd=$(ls "$kit"/kernel/*/initrd.img | head -n 1)
base=$(ls "$kit"/bases/*/base.raw | head -n 1)
tsc=$("$bin" node show -o json | sed -n 's/.*"tsc_khz": *\([0-9]*\).*/\1/p')
accel=$("$bin" node show -o json | sed -n 's/.*"accelerator": *"\([a-z]*\)".*/\1/p')
if [ "$accel" = kvm ]; then
  accel_args=(-accel kvm -cpu host); tsc_args=""
else
  accel_args=(-accel tcg,tb-size=32 -cpu qemu64,+arat); tsc_args="tsc_early_khz=$tsc tsc=reliable"
fi

# The same machine and kernel command line the driver uses, minus the sockets.
bare_boot() {
  rm -f "$work/bare.qcow2" "$work/bare.pid" "$work/bare.out"
  qemu-img create -q -f qcow2 -F raw -b "$base" "$work/bare.qcow2"
  local t0 t1 qpid
  t0=$(date +%s%N)
  # ip=off: no NIC here, so the initramfs does not wait for one.
  qemu-system-x86_64 -nodefaults -no-user-config -display none -no-reboot -M microvm -m 256 -smp 1 \
    "${accel_args[@]}" -kernel "$vmlinux" -initrd "$initrd" \
    -append "console=ttyS0 quiet panic=-1 $tsc_args cryptomgr.notests initcall_blacklist=crypto_kdf108_init,init_kprobe_trace root=/dev/vda rw init=/.roost/bin/init ip=off" \
    -serial "file:$work/bare.out" -device virtio-serial-device -device virtio-rng-device \
    -drive "id=root,if=none,file=$work/bare.qcow2,format=qcow2" -device virtio-blk-device,drive=root \
    </dev/null >/dev/null 2>&1 &
  qpid=$!
  until grep -q "roost: guest ready" "$work/bare.out" 2>/dev/null; do sleep 0.01; done
  t1=$(date +%s%N)
  kill -9 "$qpid" 2>/dev/null || true
  wait "$qpid" 2>/dev/null || true
  echo $(( (t1 - t0) / 1000000 ))
}

now() { date +%s%N; }
raw=()
roost=()
for i in $(seq 1 "$runs"); do
  raw+=("$(bare_boot)")
  t0=$(now)
  "$bin" instance create "v$i" --type vm --image debian-12 --cpus 1 --memory 256m >/dev/null 2>&1
  "$bin" exec "v$i" -- true
  t1=$(now)
  roost+=($(( (t1 - t0) / 1000000 )))
  "$bin" instance rm -f "v$i" >/dev/null 2>&1
done
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
m_raw=$(median "${raw[@]}")
m_roost=$(median "${roost[@]}")

echo "==> boot to ready, median of $runs runs ($accel)"
printf 'bare qemu-system-x86_64 (to the serial marker)       %s ms   (%s)\n' "$m_raw" "${raw[*]}"
printf 'roost (instance create --type vm + exec true)       %s ms   (%s)\n' "$m_roost" "${roost[*]}"
awk -v a="$m_roost" -v b="$m_raw" 'BEGIN { printf "ratio                                               %.2fx (target under TCG: within 1.2x)\n", a / b }'

echo "==> 10 VMs created concurrently (create returns when QEMU runs; then exec true in each)"
# Wait for these jobs only: a bare `wait` would wait for the server too.
t0=$(now)
jobs_=()
for i in $(seq 1 10); do "$bin" instance create "c$i" --type vm --image debian-12 --memory 128m >/dev/null 2>&1 & jobs_+=($!); done
failed=0
for j in "${jobs_[@]}"; do wait "$j" || failed=$((failed + 1)); done
t1=$(now)
jobs_=()
for i in $(seq 1 10); do "$bin" exec "c$i" -- true & jobs_+=($!); done
for j in "${jobs_[@]}"; do wait "$j" || failed=$((failed + 1)); done
t2=$(now)
[ "$failed" -eq 0 ] || echo "warning: $failed of the 20 creates and execs failed" >&2
printf 'all running   %s ms\nall answering exec   %s ms\n' $(( (t1 - t0) / 1000000 )) $(( (t2 - t0) / 1000000 ))
sleep 5
total=0
count=0
for p in "$work"/data/vms/instances/*/qemu.pid; do
  status="/proc/$(cat "$p")/status"
  [ -e "$status" ] || continue
  rss=$(awk '/VmRSS/ { print $2 }' "$status")
  total=$((total + rss))
  count=$((count + 1))
done
printf 'idle RSS per VM (QEMU, 128 MiB guest, mean of %s)   %s MiB\n' "$count" $(( total / (count > 0 ? count : 1) / 1024 ))
