#!/usr/bin/env bash
# Sandbox start latency, create to first command output, interleaved, N runs each:
#   raw      `runc run -d` + `runc exec true` on the `slim` template's rootfs
#   cold     the official E2B Python SDK's `Sandbox.create()` + `commands.run("true")`
#            through Roost's E2B listener, on a server without a pool
#   warm     the same SDK calls on a second server with `--sandbox-pool 2` (the create
#            takes a frozen sandbox and thaws it; the pool refills between runs)
#   cli      Roost's own CLI: `roost sandbox create` + `roost sandbox exec ID -- true`
#            (two process starts included, as a user pays them)
# Prints medians and ratios against raw runc. Then 100 sandboxes created concurrently
# (wall time, cold server) and the memory an idle sandbox costs (its cgroup).
# Needs root, a release build and the SDK venv (install-deps --test).
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
wport=$((port + 2))
we2b_port=$((port + 3))
table=rbenchsbx
wtable=rbenchsbw
. scripts/lib-networks.sh
cleanup() {
  # Each server with its own login (the warm one's pooled sandboxes are instances too).
  for s in "$port cli" "$wport wcli"; do
    set -- $s
    export ROOST_SERVER="http://127.0.0.1:$1" ROOST_CONFIG_FILE="$work/$2.toml"
    "$bin" ps -a 2>/dev/null | awk 'NR > 1 { print $2 }' | xargs -r -n 1 -P 8 "$bin" instance rm -f >/dev/null 2>&1 || true
  done
  kill "$pid" "${wpid:-}" 2>/dev/null || true
  wait "$pid" "${wpid:-}" 2>/dev/null || true
  for id in $(runc --root "$work/runc" list -q 2>/dev/null); do runc --root "$work/runc" delete -f "$id" >/dev/null 2>&1 || true; done
  remove_roost_networks "$table"
  remove_roost_networks "$wtable"
  rm -rf "$work"
}
trap cleanup EXIT

ROOST_ADMIN_PASSWORD=bench-password-123 ROOST_LOG_LEVEL=warn "$bin" server --listen "127.0.0.1:$port" \
  --e2b-listen "127.0.0.1:$e2b_port" --s3-listen off \
  --data-dir "$work/data" --compute on --firewall-table "$table" --network-cidr 10.195.0.0/16 >"$work/server.out" 2>&1 &
pid=$!
# The warm-pool server: its own data dir, networks and firewall table.
ROOST_ADMIN_PASSWORD=bench-password-123 ROOST_LOG_LEVEL=warn "$bin" server --listen "127.0.0.1:$wport" \
  --e2b-listen "127.0.0.1:$we2b_port" --s3-listen off --sandbox-pool 2 \
  --data-dir "$work/wdata" --compute on --firewall-table "$wtable" --network-cidr 10.196.0.0/16 >"$work/wserver.out" 2>&1 &
wpid=$!
for p in "$port" "$wport"; do
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$p/health/ready" >/dev/null 2>&1 && break; sleep 0.1; done
done
export ROOST_CONFIG_FILE="$work/cli.toml" ROOST_SERVER="http://127.0.0.1:$port"
echo bench-password-123 | "$bin" login -u admin --password-stdin 2>/dev/null
"$bin" image build slim --from debian:bookworm --packages bash,procps,findutils >/dev/null 2>&1
key=$("$bin" sandbox key create bench --max-sandboxes 200 --creates-per-minute 10000 2>/dev/null)
wcli() { ROOST_CONFIG_FILE="$work/wcli.toml" ROOST_SERVER="http://127.0.0.1:$wport" "$bin" "$@"; }
echo bench-password-123 | wcli login -u admin --password-stdin 2>/dev/null
wcli image build slim --from debian:bookworm --packages bash,procps,findutils >/dev/null 2>&1
wkey=$(wcli sandbox key create bench --max-sandboxes 200 --creates-per-minute 10000 2>/dev/null)
digest=$("$bin" image show slim -o json | awk -F'"' '/"digest"/ { print $4 }')
rootfs=$(ls -d "$work"/data/images/sha256/*/rootfs | while read -r d; do [ -e "$d/bin/bash" ] && echo "$d"; done | head -n 1)
[ -n "$rootfs" ] || { echo "error: no rootfs for slim ($digest)" >&2; exit 1; }

bundle="$work/bundle"
mkdir -p "$bundle"
(cd "$bundle" && runc spec)
sed -i 's/"terminal": true/"terminal": false/; s/"sh"/"sleep", "3600"/' "$bundle/config.json"
sed -i "s|\"path\": \"rootfs\"|\"path\": \"$rootfs\"|" "$bundle/config.json"

export E2B_API_URL="http://127.0.0.1:$e2b_port" E2B_SANDBOX_URL="http://127.0.0.1:$e2b_port" E2B_API_KEY="$key"
RUNS="$runs" WORK="$work" BUNDLE="$bundle" BIN="$bin" WPORT="$we2b_port" WKEY="$wkey" "$py" -u - <<'PY'
import json, os, statistics, subprocess, threading, time
from e2b import Sandbox

runs = int(os.environ["RUNS"])
work, bundle, roost = os.environ["WORK"], os.environ["BUNDLE"], os.environ["BIN"]
runc = ["runc", "--root", f"{work}/runc"]
warm_env = {"api_key": os.environ["WKEY"], "api_url": f"http://127.0.0.1:{os.environ['WPORT']}",
            "sandbox_url": f"http://127.0.0.1:{os.environ['WPORT']}"}
raw, sdk, warm, cli = [], [], [], []

def wait_pool(ready=2):
    """Until the warm server's pool is full again (a refill is not what is measured)."""
    env = dict(os.environ, ROOST_CONFIG_FILE=f"{work}/wcli.toml",
               ROOST_SERVER=f"http://127.0.0.1:{int(os.environ['WPORT']) - 1}")
    for _ in range(600):
        out = subprocess.run([roost, "sandbox", "pool", "-o", "json"], env=env, capture_output=True, text=True).stdout
        if any(p["ready"] >= ready for p in json.loads(out or "[]")):
            return
        time.sleep(0.1)
    raise SystemExit("the warm pool never filled")

Sandbox.create(template="slim").kill()  # warm up, and the first warm create fills the pool
Sandbox.create(template="slim", **warm_env).kill()
for i in range(runs):
    t0 = time.perf_counter()
    subprocess.run(runc + ["run", "-d", "--bundle", bundle, f"raw{i}"], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(runc + ["exec", f"raw{i}", "true"], check=True)
    raw.append((time.perf_counter() - t0) * 1000)
    subprocess.run(runc + ["delete", "-f", f"raw{i}"], check=True)

    t0 = time.perf_counter()
    s = Sandbox.create(template="slim")
    s.commands.run("true")
    sdk.append((time.perf_counter() - t0) * 1000)
    s.kill()

    wait_pool()
    t0 = time.perf_counter()
    s = Sandbox.create(template="slim", **warm_env)
    s.commands.run("true")
    warm.append((time.perf_counter() - t0) * 1000)
    s.kill()
    wait_pool()  # the refill is done before anything else is timed

    t0 = time.perf_counter()
    sid = subprocess.run([roost, "sandbox", "create", "--template", "slim"], check=True, capture_output=True, text=True).stdout.strip()
    subprocess.run([roost, "sandbox", "exec", sid, "--", "true"], check=True)
    cli.append((time.perf_counter() - t0) * 1000)
    subprocess.run([roost, "sandbox", "kill", sid], check=True, capture_output=True)
m_raw, m_sdk, m_warm, m_cli = (statistics.median(x) for x in (raw, sdk, warm, cli))
print(f"==> create to first command output, median of {runs} runs")
print(f"raw runc (run -d + exec true)                       {m_raw:7.1f} ms")
print(f"E2B SDK cold (Sandbox.create + commands.run('true')) {m_sdk:7.1f} ms  {m_sdk / m_raw:5.2f}x raw (target: within 1.3x)")
print(f"E2B SDK warm pool (--sandbox-pool 2)                 {m_warm:7.1f} ms  {m_warm / m_raw:5.2f}x raw (target: under 30 ms)")
print(f"roost CLI (sandbox create + sandbox exec -- true)    {m_cli:7.1f} ms  {m_cli / m_raw:5.2f}x raw")

print("==> 100 sandboxes created concurrently")
made, errors = [], []
def one():
    try:
        made.append(Sandbox.create(template="slim"))
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
