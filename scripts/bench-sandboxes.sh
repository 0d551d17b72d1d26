#!/usr/bin/env bash
# Sandbox start latency: raw `runc run -d` + `runc exec true` on the `base` template's
# rootfs against the official E2B Python SDK's `Sandbox.create()` + `commands.run("true")`
# through Roost's E2B listener, interleaved, N runs each; prints medians and the ratio.
# Then 100 sandboxes created concurrently (wall time) and the memory an idle sandbox
# costs (its cgroup). Needs root, a release build and the SDK venv (install-deps --test).
#   scripts/bench-sandboxes.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${1:-15}"
bin=${ROOST_BIN:-$PWD/target/release/roost}  # ROOST_BIN: another build, e.g. a debug one
py=$PWD/target/e2benv/bin/python
[ -x "$bin" ] || { echo "error: build first: cargo build --release -p roost (make bench does)" >&2; exit 1; }
[ -x "$py" ] || { echo "error: the E2B SDK venv is missing: scripts/install-deps.sh --test" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "error: run as root (containers need it)" >&2; exit 1; }

work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
e2b_port=$((port + 1))
table=rbenchsbx
. scripts/lib-networks.sh
cleanup() {
  "$bin" ps -a 2>/dev/null | awk 'NR > 1 { print $2 }' | xargs -r -n 1 -P 8 "$bin" instance rm -f >/dev/null 2>&1 || true
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for id in $(runc --root "$work/runc" list -q 2>/dev/null); do runc --root "$work/runc" delete -f "$id" >/dev/null 2>&1 || true; done
  remove_roost_networks "$table"
  rm -rf "$work"
}
trap cleanup EXIT

ROOST_ADMIN_PASSWORD=bench-password-123 ROOST_LOG_LEVEL=warn "$bin" server --listen "127.0.0.1:$port" \
  --e2b-listen "127.0.0.1:$e2b_port" --s3-listen off \
  --data-dir "$work/data" --compute on --firewall-table "$table" --network-cidr 10.195.0.0/16 >"$work/server.out" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && break; sleep 0.1; done
export ROOST_CONFIG_FILE="$work/cli.toml" ROOST_SERVER="http://127.0.0.1:$port"
echo bench-password-123 | "$bin" login -u admin --password-stdin 2>/dev/null
"$bin" image build base --from debian:bookworm --packages bash,procps,findutils >/dev/null 2>&1
key=$("$bin" sandbox key create bench --max-sandboxes 200 --creates-per-minute 10000 2>/dev/null)
digest=$("$bin" image show base -o json | awk -F'"' '/"digest"/ { print $4 }')
rootfs=$(ls -d "$work"/data/images/sha256/*/rootfs | while read -r d; do [ -e "$d/bin/bash" ] && echo "$d"; done | head -n 1)
[ -n "$rootfs" ] || { echo "error: no rootfs for base ($digest)" >&2; exit 1; }

bundle="$work/bundle"
mkdir -p "$bundle"
(cd "$bundle" && runc spec)
sed -i 's/"terminal": true/"terminal": false/; s/"sh"/"sleep", "3600"/' "$bundle/config.json"
sed -i "s|\"path\": \"rootfs\"|\"path\": \"$rootfs\"|" "$bundle/config.json"

export E2B_API_URL="http://127.0.0.1:$e2b_port" E2B_SANDBOX_URL="http://127.0.0.1:$e2b_port" E2B_API_KEY="$key"
RUNS="$runs" WORK="$work" BUNDLE="$bundle" "$py" - <<'PY'
import os, statistics, subprocess, threading, time
from e2b import Sandbox

runs = int(os.environ["RUNS"])
work, bundle = os.environ["WORK"], os.environ["BUNDLE"]
runc = ["runc", "--root", f"{work}/runc"]
raw, sdk = [], []
Sandbox.create(template="base").kill()  # warm up
for i in range(runs):
    t0 = time.perf_counter()
    subprocess.run(runc + ["run", "-d", "--bundle", bundle, f"raw{i}"], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(runc + ["exec", f"raw{i}", "true"], check=True)
    raw.append((time.perf_counter() - t0) * 1000)
    subprocess.run(runc + ["delete", "-f", f"raw{i}"], check=True)

    t0 = time.perf_counter()
    s = Sandbox.create(template="base")
    s.commands.run("true")
    sdk.append((time.perf_counter() - t0) * 1000)
    s.kill()
m_raw, m_sdk = statistics.median(raw), statistics.median(sdk)
print(f"==> create to first command output, median of {runs} runs")
print(f"raw runc (run -d + exec true)                    {m_raw:7.1f} ms")
print(f"E2B SDK (Sandbox.create + commands.run('true'))  {m_sdk:7.1f} ms")
print(f"ratio                                            {m_sdk / m_raw:7.2f}x (target: within 1.3x)")
print("warm pool: not implemented yet (no frozen pre-created sandboxes)")

print("==> 100 sandboxes created concurrently")
made, errors = [], []
def one():
    try:
        made.append(Sandbox.create(template="base"))
    except Exception as e:  # reported, not hidden
        errors.append(repr(e))
t0 = time.perf_counter()
threads = [threading.Thread(target=one) for _ in range(100)]
for t in threads: t.start()
for t in threads: t.join()
print(f"wall time                                        {(time.perf_counter() - t0) * 1000:7.0f} ms ({len(made)} created, {len(errors)} failed)")
if errors:
    print("first error:", errors[0])
time.sleep(2)
mem = [s.get_metrics()[0].mem_used for s in made[:20]]
if mem:
    print(f"memory per idle sandbox (cgroup, median of {len(mem)})  {statistics.median(mem) / 1024:7.0f} KiB")
def kill(s):
    try: s.kill()
    except Exception: pass
ks = [threading.Thread(target=kill, args=(s,)) for s in made]
for t in ks: t.start()
for t in ks: t.join()
PY
