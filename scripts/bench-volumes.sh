#!/usr/bin/env bash
# Block volumes: snapshot and clone time of a 10 GiB volume with 1 GiB written, against
# `cp --sparse=always` of the same image (then fsync of the copy); sequential write and read throughput inside an
# instance on a volume against `dd` on the host's disk (same directory's filesystem).
# Needs root; uses a release build.
#   scripts/bench-volumes.sh
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${ROOST_BIN:-$PWD/target/release/roost}
[ -x "$bin" ] || { echo "error: build first: cargo build --release -p roost (make bench does)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "error: run as root (loop mounts and containers need it)" >&2; exit 1; }
for tool in qemu-img mkfs.ext4 fsfreeze; do
  command -v "$tool" >/dev/null || { echo "error: $tool is missing: run scripts/install-deps.sh" >&2; exit 1; }
done

work=$(mktemp -d -p "${BENCH_DIR:-/var/tmp}")
port=$((20000 + RANDOM % 20000))
table=rtest39
. scripts/lib-networks.sh
cleanup() {
  "$bin" ps -a 2>/dev/null | awk 'NR > 1 { print $2 }' | xargs -r -n 1 "$bin" instance rm -f >/dev/null 2>&1 || true
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for m in $(awk -v d="$work" '$5 ~ "^"d { print $5 }' /proc/self/mountinfo | sort -r); do umount -l "$m" 2>/dev/null || true; done
  remove_roost_networks "$table"
  rm -rf "$work"
}
trap cleanup EXIT

ROOST_ADMIN_PASSWORD=bench-password-123 ROOST_LOG_LEVEL=warn "$bin" server --listen "127.0.0.1:$port" \
  --s3-listen off --data-dir "$work/data" --compute on --firewall-table "$table" \
  --network-cidr 10.139.0.0/16 >"$work/server.out" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && break; sleep 0.1; done
export ROOST_CONFIG_FILE="$work/cli.toml" ROOST_SERVER="http://127.0.0.1:$port"
echo bench-password-123 | "$bin" login -u admin --password-stdin 2>/dev/null

now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }
mibs() { awk -v b="$1" -v t="$2" 'BEGIN { printf "%.0f", b / 1048576 / (t / 1e9) }'; }
drop_cache() { for f in "$@"; do dd if="$f" iflag=nocache count=0 status=none 2>/dev/null || true; done; }

"$bin" volume create data --size 10g >/dev/null
vol=$("$bin" volume show data -o json | sed -n 's/.*"id": *"\(vol-[a-z0-9]*\)".*/\1/p' | head -n 1)
image="$work/data/volumes/$vol.raw"
"$bin" instance create web --image busybox --memory 256m --volume data:/data >/dev/null

echo "==> sequential throughput, 1 GiB, bs=1M (fsync at the end of the write)"
t0=$(now); "$bin" exec web -- dd if=/dev/zero of=/data/blob bs=1048576 count=1024 conv=fsync 2>/dev/null; t1=$(now)
in_w=$((t1 - t0))
drop_cache "$work/data/volume-mounts/$vol/blob" "$image"
t0=$(now); "$bin" exec web -- dd if=/data/blob of=/dev/null bs=1048576 2>/dev/null; t1=$(now)
in_r=$((t1 - t0))
t0=$(now); dd if=/dev/zero of="$work/host-blob" bs=1048576 count=1024 conv=fsync status=none; t1=$(now)
host_w=$((t1 - t0))
drop_cache "$work/host-blob"
t0=$(now); dd if="$work/host-blob" of=/dev/null bs=1048576 status=none; t1=$(now)
host_r=$((t1 - t0))
rm -f "$work/host-blob"
printf 'write: instance on a volume %6s MiB/s   host dd %6s MiB/s   ratio %s\n' "$(mibs 1073741824 $in_w)" \
  "$(mibs 1073741824 $host_w)" "$(awk -v a=$host_w -v b=$in_w 'BEGIN { printf "%.2f", a / b }')"
printf 'read:  instance on a volume %6s MiB/s   host dd %6s MiB/s   ratio %s\n' "$(mibs 1073741824 $in_r)" \
  "$(mibs 1073741824 $host_r)" "$(awk -v a=$host_r -v b=$in_r 'BEGIN { printf "%.2f", a / b }')"

# A second 10 GiB volume with 1 GiB of random data (zeros would let `cp --sparse=always`
# skip them as holes, which is not what a real volume holds).
"$bin" volume create snapvol --size 10g >/dev/null
"$bin" volume attach snapvol web --path /snap >/dev/null 2>&1
"$bin" exec web -- dd if=/dev/urandom of=/snap/blob bs=1048576 count=1024 conv=fsync 2>/dev/null
vol=$("$bin" volume show snapvol -o json | sed -n 's/.*"id": *"\(vol-[a-z0-9]*\)".*/\1/p' | head -n 1)
image="$work/data/volumes/$vol.raw"
echo "==> 10 GiB volume with 1 GiB of random data written (image allocates $(du -h "$image" | cut -f1)), median of 3 interleaved rounds"
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
snaps=(); clones=(); raws=()
for r in 1 2 3; do
  t0=$(now); "$bin" snapshot create snapvol --name "s$r" >/dev/null; t1=$(now)
  snaps+=($(( (t1 - t0) / 1000000 )))
  t0=$(now); "$bin" volume create "copy$r" --from-snapshot "s$r" >/dev/null; t1=$(now)
  clones+=($(( (t1 - t0) / 1000000 )))
  t0=$(now); cp --sparse=always "$image" "$work/cp-copy.raw"; sync "$work/cp-copy.raw"; t1=$(now)
  raws+=($(( (t1 - t0) / 1000000 )))
  rm -f "$work/cp-copy.raw"
  "$bin" volume rm "copy$r" >/dev/null
done
t0=$(now); "$bin" instance clone web web2 >/dev/null; t1=$(now)
iclone=$(( (t1 - t0) / 1000000 ))
snap=$(median "${snaps[@]}"); clone=$(median "${clones[@]}"); raw=$(median "${raws[@]}")
printf 'snapshot (attached, running; frozen)   %6s ms   (%s)\n' "$snap" "${snaps[*]}"
printf 'clone volume from the snapshot         %6s ms   (%s)\n' "$clone" "${clones[*]}"
printf 'raw: cp --sparse=always + fsync        %6s ms   (%s)\n' "$raw" "${raws[*]}"
printf 'instance clone (rootfs + the volume)   %6s ms\n' "$iclone"
awk -v a=$snap -v b=$raw 'BEGIN { printf "snapshot / cp ratio                    %6.2fx\n", a / b }'
awk -v a=$clone -v b=$raw 'BEGIN { printf "clone / cp ratio                       %6.2fx\n", a / b }'
echo "(reflinks: $(findmnt -n -o FSTYPE -T "$work") here; on btrfs/xfs a copy is a reflink)"
