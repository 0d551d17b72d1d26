// A PTY session through the official E2B JS SDK (pinned in package.json) against a real
// Roost server. Run by crates/roost/tests/sandbox_envd.rs with E2B_API_URL,
// E2B_SANDBOX_URL and E2B_API_KEY set; TEMPLATE names the template. Each check prints
// `ok <name>`; a failure exits non-zero.
import { Sandbox, CommandExitError } from "e2b";

const template = process.env.TEMPLATE;
const ok = (name) => console.log(`ok ${name}`);
const check = (cond, what) => {
  if (!cond) throw new Error(what);
};

const sbx = await Sandbox.create(template, { timeoutMs: 300_000 });
const decoder = new TextDecoder();
let out = "";
const term = await sbx.pty.create({ cols: 80, rows: 24, timeoutMs: 120_000, onData: (d) => (out += decoder.decode(d)) });
check(term.pid > 0, `pid ${term.pid}`);
const send = (text) => sbx.pty.sendInput(term.pid, new TextEncoder().encode(text));
const shows = async (text, what) => {
  const deadline = Date.now() + 30_000;
  while (!out.includes(text)) {
    check(Date.now() < deadline, `${what}: no ${JSON.stringify(text)} in ${JSON.stringify(out)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

// The typed line is echoed as typed; only the shell's output has the sum.
await send("echo js-$((40+2))\n");
await shows("js-42", "echo");
await send("stty size\n");
await shows("24 80", "the size at the start");
ok("pty output and size");
await sbx.pty.resize(term.pid, { cols: 132, rows: 43 });
await send("stty size\n");
await shows("43 132", "the size after resize");
ok("pty resize");
await send("exit 4\n");
try {
  await term.wait();
  throw new Error("exit 4 did not throw");
} catch (e) {
  check(e instanceof CommandExitError && e.exitCode === 4, `exit: ${e}`);
}
ok("pty exit code");

const other = await sbx.pty.create({ cols: 20, rows: 10, timeoutMs: 120_000, onData: () => {} });
check(await sbx.pty.kill(other.pid), "kill");
try {
  await other.wait();
  throw new Error("a killed pty ended cleanly");
} catch (e) {
  check(e instanceof CommandExitError && e.exitCode !== 0, `killed: ${e}`);
}
check(!(await sbx.commands.list()).some((p) => p.pid === other.pid), "a killed pty is listed");
ok("pty kill");

await sbx.kill();
console.log("all ok");
