"""envd's terminal and binary codec through the official E2B Python SDK (pinned).

Run by crates/roost/tests/sandbox_envd.rs with E2B_API_URL, E2B_SANDBOX_URL and
E2B_API_KEY pointing at the server's E2B listener; TEMPLATE names the template. Each
check prints `ok <name>`; the first failure raises and the script exits non-zero.

- A PTY session (`sandbox.pty.create`, `send_stdin`, `resize`, `kill`) through the async
  SDK, whose handle delivers output while the shell runs.
- The binary codec: the SDK's own generated messages and connectrpc client with
  `proto_binary_codec()` (the SDK itself speaks JSON), for unary calls and a server
  stream, plus a raw `application/proto` request to see the content types on the wire.
"""

import asyncio
import os
import time

import httpx
from connectrpc.codec import proto_binary_codec
from protobuf import Oneof

from e2b import AsyncSandbox, Sandbox
from e2b.envd.filesystem import filesystem_connect, filesystem_pb
from e2b.envd.process import process_connect, process_pb
from e2b.sandbox.commands.command_handle import CommandExitException, PtySize

TEMPLATE = os.environ["TEMPLATE"]


def ok(name):
    print(f"ok {name}", flush=True)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


async def pty_session():
    sbx = await AsyncSandbox.create(template=TEMPLATE, timeout=300)
    out = bytearray()
    h = await sbx.pty.create(PtySize(rows=24, cols=80), on_data=out.extend, timeout=120)
    check(h.pid > 0, f"pid {h.pid}")

    async def shows(text, what):
        deadline = time.monotonic() + 30
        while text not in out.decode(errors="replace"):
            check(time.monotonic() < deadline, f"{what}: no {text!r} in {out.decode(errors='replace')!r}")
            await asyncio.sleep(0.1)

    # The typed line is echoed as typed; only the shell's output has the sum.
    await sbx.pty.send_stdin(h.pid, b"echo hi-$((40+2))\n")
    await shows("hi-42", "echo")
    await sbx.pty.send_stdin(h.pid, b"tty; stty size\n")
    await shows("/dev/pts/", "a terminal")
    await shows("24 80", "the size at the start")
    ok("pty output and size")
    await sbx.pty.resize(h.pid, PtySize(rows=40, cols=120))
    await sbx.pty.send_stdin(h.pid, b"stty size\n")
    await shows("40 120", "the size after resize")
    ok("pty resize")
    # Ctrl-C reaches the foreground job through the terminal, not the shell.
    await sbx.pty.send_stdin(h.pid, b"sleep 600\n")
    await asyncio.sleep(0.5)
    await sbx.pty.send_stdin(h.pid, b"\x03echo after-$((1+1))\n")
    await shows("after-2", "after Ctrl-C")
    # Ordered input over one client stream (envd's StreamInput).
    typing = sbx.pty.stream_input(h.pid)
    await typing.send(b"echo stre")
    await typing.send(b"am-$((2+3))\n")
    await typing.close()
    await shows("stream-5", "stream_input")
    ok("pty stream_input")
    await sbx.pty.send_stdin(h.pid, b"exit 3\n")
    try:
        await h.wait()
        raise AssertionError("exit 3 did not raise")
    except CommandExitException as e:
        check(e.exit_code == 3, f"exit code {e.exit_code}")
    ok("pty exit code")

    # A background job that keeps the terminal open does not hold up the end.
    held = await sbx.pty.create(PtySize(rows=10, cols=40), on_data=lambda d: None, timeout=120)
    await sbx.pty.send_stdin(held.pid, b"setsid sleep 300 & exit 0\n")
    result = await asyncio.wait_for(held.wait(), 60)
    check(result.exit_code == 0, f"exit code {result.exit_code}")
    ok("pty ends with its shell")

    killed = await sbx.pty.create(PtySize(rows=10, cols=20), on_data=lambda d: None, timeout=120)
    check(any(p.pid == killed.pid for p in await sbx.commands.list()), "the pty is not listed")
    check(await sbx.pty.kill(killed.pid), "kill")
    try:
        await killed.wait()
        raise AssertionError("a killed pty ended cleanly")
    except CommandExitException as e:
        check(e.exit_code != 0, f"exit code {e.exit_code}")
    check(not any(p.pid == killed.pid for p in await sbx.commands.list()), "a killed pty is listed")
    ok("pty kill")
    await sbx.kill()


def binary_codec():
    sbx = Sandbox.create(template=TEMPLATE, timeout=300)
    sbx.files.write("/tmp/bin/a.txt", "binary codec")
    headers = {
        "E2b-Sandbox-Id": sbx.sandbox_id,
        "E2b-Sandbox-Port": "49983",
        "X-Access-Token": sbx._envd_access_token,
    }
    fs = filesystem_connect.FilesystemClientSync(sbx.envd_api_url, codec=proto_binary_codec(), send_compression=None)
    st = fs.stat(filesystem_pb.StatRequest(path="/tmp/bin/a.txt"), headers=headers)
    check(st.entry.name == "a.txt" and st.entry.size == 12, f"stat {st}")
    check(st.entry.type == filesystem_pb.FileType.FILE, f"type {st.entry.type}")
    check(st.entry.modified_time is not None and st.entry.modified_time.seconds > 1_600_000_000, f"mtime {st}")
    ls = fs.list_dir(filesystem_pb.ListDirRequest(path="/tmp/bin", depth=1), headers=headers)
    check([e.name for e in ls.entries] == ["a.txt"], f"list_dir {ls}")
    made = fs.make_dir(filesystem_pb.MakeDirRequest(path="/tmp/bin/d"), headers=headers)
    check(made.entry.type == filesystem_pb.FileType.DIRECTORY, f"make_dir {made}")
    try:
        fs.stat(filesystem_pb.StatRequest(path="/tmp/bin/missing"), headers=headers)
        raise AssertionError("stat of a missing file succeeded")
    except Exception as e:  # a Connect error, JSON in every codec
        check("not_found" in str(getattr(e, "code", "")).lower() or "not found" in str(e), f"error {e!r}")
    ok("binary unary calls")

    proc = process_connect.ProcessClientSync(sbx.envd_api_url, codec=proto_binary_codec(), send_compression=None)
    events = proc.start(
        process_pb.StartRequest(
            process=process_pb.ProcessConfig(cmd="/bin/bash", args=["-l", "-c", "echo out; echo err >&2; exit 5"]),
        ),
        headers=headers,
    )
    stdout, stderr, pid, end = b"", b"", None, None
    for r in events:
        match r.event.event if r.event is not None else None:
            case Oneof(field="start", value=start):
                pid = start.pid
            case Oneof(field="data", value=data):
                match data.output:
                    case Oneof(field="stdout", value=chunk):
                        stdout += chunk
                    case Oneof(field="stderr", value=chunk):
                        stderr += chunk
            case Oneof(field="end", value=e):
                end = e
    check(pid and pid > 0, f"start pid {pid}")
    check(stdout == b"out\n" and stderr == b"err\n", f"output {stdout!r} {stderr!r}")
    check(end is not None and end.exit_code == 5 and end.exited, f"end {end}")
    ok("binary server stream")

    # A PTY through the binary codec: Start with a size, then Update and SendInput.
    events = proc.start(
        process_pb.StartRequest(
            process=process_pb.ProcessConfig(cmd="/bin/bash", args=["-c", "read line; stty size; echo got-$line"]),
            pty=process_pb.PTY(size=process_pb.PTY.Size(rows=30, cols=90)),
        ),
        headers=headers,
    )
    first = next(events)
    pid = first.event.event.value.pid
    selector = process_pb.ProcessSelector(selector=Oneof("pid", pid))
    proc.update(
        process_pb.UpdateRequest(process=selector, pty=process_pb.PTY(size=process_pb.PTY.Size(rows=33, cols=99))),
        headers=headers,
    )
    proc.send_input(
        process_pb.SendInputRequest(process=selector, input=process_pb.ProcessInput(input=Oneof("pty", b"x\n"))),
        headers=headers,
    )
    shown = b""
    for r in events:
        match r.event.event:
            case Oneof(field="data", value=data):
                check(data.output.field == "pty", f"pty output arrives as {data.output.field}")
                shown += data.output.value
    check(b"33 99" in shown and b"got-x" in shown, f"pty through proto: {shown!r}")
    ok("binary pty")

    # On the wire: application/proto in, application/proto out, the bytes the SDK's
    # generated message decodes.
    body = filesystem_pb.StatRequest(path="/tmp/bin/a.txt").to_binary()
    r = httpx.post(
        sbx.envd_api_url.rstrip("/") + "/filesystem.Filesystem/Stat",
        content=body,
        headers={**headers, "Content-Type": "application/proto", "Connect-Protocol-Version": "1"},
    )
    check(r.status_code == 200 and r.headers["content-type"] == "application/proto", f"{r.status_code} {r.headers}")
    check(filesystem_pb.StatResponse.from_binary(r.content).entry.size == 12, f"raw {r.content!r}")
    ok("application/proto on the wire")
    # The access token is checked: one character off is refused.
    token = sbx._envd_access_token
    bad = token[:-1] + ("0" if token[-1] != "0" else "1")
    r = httpx.post(
        sbx.envd_api_url.rstrip("/") + "/filesystem.Filesystem/Stat",
        content=body,
        headers={**headers, "X-Access-Token": bad, "Content-Type": "application/proto"},
    )
    check(r.status_code == 401, f"a wrong token: {r.status_code}")
    check(len(token) == 64, f"token shape {token!r}")
    ok("access token checked")
    sbx.kill()


asyncio.run(pty_session())
binary_codec()
print("all ok", flush=True)
