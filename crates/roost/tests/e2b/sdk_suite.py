"""The official E2B Python SDK (pinned in requirements.txt) against a real Roost server.

Run by crates/roost/tests/sandboxes.rs with E2B_API_URL, E2B_SANDBOX_URL and
E2B_API_KEY pointing at the server's E2B listener; TEMPLATE names the template. Each
check prints `ok <name>`; the first failure raises and the script exits non-zero.
"""

import asyncio
import os
import sys
import time

from e2b import Sandbox
from e2b.exceptions import AuthenticationException, NotFoundException, SandboxException
from e2b.sandbox.commands.command_handle import CommandExitException

TEMPLATE = os.environ["TEMPLATE"]


def ok(name):
    print(f"ok {name}", flush=True)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


# A bad key is rejected.
try:
    Sandbox.create(template=TEMPLATE, api_key="e2b_" + "0" * 40)
    raise AssertionError("a bad key created a sandbox")
except AuthenticationException:
    ok("bad key rejected")

sbx = Sandbox.create(template=TEMPLATE, timeout=300, metadata={"suite": "sdk"}, envs={"FOO": "bar"})
ok(f"create {sbx.sandbox_id}")

r = sbx.commands.run("echo hello; echo oops >&2")
check(r.exit_code == 0 and r.stdout == "hello\n" and r.stderr == "oops\n", f"run: {r}")
r = sbx.commands.run("echo $FOO")
check(r.stdout == "bar\n", f"env at create: {r.stdout!r}")
r = sbx.commands.run("echo $X; pwd", envs={"X": "y"}, cwd="/tmp")
check(r.stdout == "y\n/tmp\n", f"env and cwd: {r.stdout!r}")
ok("commands.run")

try:
    sbx.commands.run("exit 3")
    raise AssertionError("exit 3 did not raise")
except CommandExitException as e:
    check(e.exit_code == 3, f"exit code {e.exit_code}")
ok("exit code")

# Output streams while the command runs: each line arrives before the next is printed.
seen = []
started = time.monotonic()
sbx.commands.run("for i in 1 2 3; do echo line$i; sleep 1; done",
                 on_stdout=lambda line: seen.append((line, time.monotonic() - started)))
check([l.strip() for l, _ in seen] == ["line1", "line2", "line3"], f"streamed {seen}")
check(seen[0][1] < seen[2][1] - 1.5, f"not streamed as it ran: {seen}")
ok("streaming output")

# stdin.
h = sbx.commands.run("head -n1", background=True, stdin=True)
sbx.commands.send_stdin(h.pid, "from stdin\n")
r = h.wait()
check(r.stdout == "from stdin\n", f"stdin: {r.stdout!r}")
ok("stdin")

# Background processes: listed, re-attached, killed.
h = sbx.commands.run("echo started; sleep 600", background=True)
pids = [p.pid for p in sbx.commands.list()]
check(h.pid in pids, f"{h.pid} not in {pids}")
again = sbx.commands.connect(h.pid)
check(sbx.commands.kill(h.pid), "kill returned False")
try:
    again.wait()
    raise AssertionError("a killed process exited 0")
except CommandExitException:
    pass
time.sleep(0.5)
check(h.pid not in [p.pid for p in sbx.commands.list()], "killed process still listed")
ok("background list/connect/kill")

# Files.
info = sbx.files.write("/tmp/dir/a.txt", "hi there")
check(info.path == "/tmp/dir/a.txt", f"write info {info}")
check(sbx.files.read("/tmp/dir/a.txt") == "hi there", "read back")
names = [e.name for e in sbx.files.list("/tmp/dir")]
check(names == ["a.txt"], f"list {names}")
check(sbx.files.make_dir("/tmp/dir/sub") is True, "make_dir")
check(sbx.files.make_dir("/tmp/dir/sub") is False, "make_dir twice")
sbx.files.rename("/tmp/dir/a.txt", "/tmp/dir/sub/b.txt")
check(sbx.files.exists("/tmp/dir/sub/b.txt") and not sbx.files.exists("/tmp/dir/a.txt"), "rename")
check(sbx.files.get_info("/tmp/dir/sub/b.txt").size == 8, "get_info size")
sbx.files.remove("/tmp/dir")
check(not sbx.files.exists("/tmp/dir"), "remove")
try:
    sbx.files.read("/tmp/nope")
    raise AssertionError("reading a missing file worked")
except NotFoundException:
    pass
r = sbx.commands.run("cat /tmp/written-by-sdk 2>/dev/null || true")
sbx.files.write("/tmp/written-by-sdk", "visible to commands")
check(sbx.commands.run("cat /tmp/written-by-sdk").stdout == "visible to commands", "file seen by a command")
ok("files")

# watch_dir: CreateWatcher + GetWatcherEvents (sync SDK), inotify in the sandbox.
sbx.files.make_dir("/tmp/watched")
handle = sbx.files.watch_dir("/tmp/watched")
sbx.files.write("/tmp/watched/new.txt", "x")
sbx.commands.run("mkdir /tmp/watched/sub && mv /tmp/watched/new.txt /tmp/watched/moved.txt && rm /tmp/watched/moved.txt")
seen = []
deadline = time.time() + 20
while time.time() < deadline and not any(e.name == "moved.txt" and e.type.name == "REMOVE" for e in seen):
    seen += handle.get_new_events()
    time.sleep(0.2)
pairs = [(e.type.name, e.name) for e in seen]
for want in [("CREATE", "new.txt"), ("WRITE", "new.txt"), ("CREATE", "sub"), ("RENAME", "new.txt"),
             ("CREATE", "moved.txt"), ("REMOVE", "moved.txt")]:
    check(want in pairs, f"watch_dir event {want} in {pairs}")
handle.stop()
check(all("inotifywait" not in (p.cmd or "") for p in sbx.commands.list()), "the watcher is not a listed command")
recursive = sbx.files.watch_dir("/tmp/watched", recursive=True)
sbx.files.write("/tmp/watched/sub/deep.txt", "y")
deadline = time.time() + 20
deep = []
while time.time() < deadline and not deep:
    deep = [e for e in recursive.get_new_events() if e.name == "sub/deep.txt"]
    time.sleep(0.2)
check(deep, "recursive watch_dir sees sub/deep.txt")
recursive.stop()
ok("watch_dir (sync: CreateWatcher, GetWatcherEvents, RemoveWatcher)")


async def watch_async():
    from e2b import AsyncSandbox

    asbx = await AsyncSandbox.connect(sbx.sandbox_id)
    got = []
    handle = await asbx.files.watch_dir("/tmp/watched", on_event=lambda e: got.append((e.type.name, e.name)))
    await asbx.files.write("/tmp/watched/async.txt", "z")
    for _ in range(100):
        if ("CREATE", "async.txt") in got:
            break
        await asyncio.sleep(0.2)
    await handle.stop()
    check(("CREATE", "async.txt") in got, f"async watch_dir events: {got}")


asyncio.run(watch_async())
ok("watch_dir (async: WatchDir stream)")

big = os.urandom(50 << 20)
sbx.files.write("/tmp/big.bin", big)
check(sbx.files.read("/tmp/big.bin", format="bytes") == big, "50 MiB round trip")
check(sbx.commands.run("stat -c %s /tmp/big.bin").stdout.strip() == str(50 << 20), "50 MiB size inside")
ok("50 MiB round trip")

# Two sandboxes are isolated from each other.
other = Sandbox.create(template=TEMPLATE, timeout=120, metadata={"suite": "other"})
sbx.files.write("/tmp/secret", "only in the first")
check(not other.files.exists("/tmp/secret"), "the second sandbox sees the first's file")
check(other.commands.run("hostname").stdout != sbx.commands.run("hostname").stdout, "same hostname")
ok("isolation")

ids = [s.sandbox_id for s in Sandbox.list().next_items()]
check(sbx.sandbox_id in ids and other.sandbox_id in ids, f"list {ids}")
from e2b.sandbox.sandbox_api import SandboxQuery  # noqa: E402
mine = Sandbox.list(query=SandboxQuery(metadata={"suite": "sdk"})).next_items()
check([s.sandbox_id for s in mine] == [sbx.sandbox_id], f"metadata filter {mine}")
pager = Sandbox.list(limit=1)
first = pager.next_items()
check(len(first) == 1 and pager.has_next, "pagination first page")
second = pager.next_items()
check(len(second) == 1 and second[0].sandbox_id != first[0].sandbox_id, "pagination second page")
ok("list with pagination and metadata")

info = sbx.get_info()
check(info.sandbox_id == sbx.sandbox_id and info.metadata == {"suite": "sdk"} and info.template_id == TEMPLATE, f"{info}")
before = info.end_at
sbx.set_timeout(600)
check(sbx.get_info().end_at > before, "set_timeout moved end_at")
metrics = sbx.get_metrics()
check(len(metrics) >= 1 and metrics[0].mem_used > 0, f"metrics {metrics}")
check(sbx.is_running(), "is_running")
ok("get_info, set_timeout, get_metrics")

# Pause keeps process state: a counter process survives and goes on after resume.
counter = sbx.commands.run("i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.2; done", background=True)
time.sleep(1)
check(sbx.pause() is True, "pause")
state = Sandbox.get_info(sbx.sandbox_id).state
check(getattr(state, "value", state) == "paused", f"state {state}")
resumed = Sandbox.connect(sbx.sandbox_id)
c1 = int(resumed.commands.run("cat /tmp/count").stdout)
check(counter.pid in [p.pid for p in resumed.commands.list()], "the process did not survive the pause")
time.sleep(1)
c2 = int(resumed.commands.run("cat /tmp/count").stdout)
check(c2 > c1, f"counter stuck after resume: {c1} {c2}")
resumed.commands.kill(counter.pid)
ok("pause/resume keeps processes")

# TTL expiry: killed and cleaned up when its time runs out.
short = Sandbox.create(template=TEMPLATE, timeout=2)
time.sleep(6)
check(short.sandbox_id not in [s.sandbox_id for s in Sandbox.list().next_items()], "expired sandbox still listed")
try:
    Sandbox.get_info(short.sandbox_id)
    raise AssertionError("an expired sandbox still has info")
except (NotFoundException, SandboxException):
    pass
ok("TTL expiry")

other.kill()
sbx.kill()
check(not sbx.is_running(), "killed sandbox still running")
ids = [s.sandbox_id for s in Sandbox.list().next_items()]
check(sbx.sandbox_id not in ids and other.sandbox_id not in ids, f"killed still listed {ids}")
ok("kill")
print("all ok")
sys.exit(0)
