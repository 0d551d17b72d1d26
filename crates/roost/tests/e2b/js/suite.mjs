// The official E2B JS SDK (pinned in package.json) against a real Roost server. Run by
// crates/roost/tests/sandboxes.rs with E2B_API_URL, E2B_SANDBOX_URL and E2B_API_KEY set;
// TEMPLATE names the template. Each check prints `ok <name>`; a failure exits non-zero.
import { Sandbox, CommandExitError } from "e2b";

const template = process.env.TEMPLATE;
const ok = (name) => console.log(`ok ${name}`);
const check = (cond, what) => {
  if (!cond) throw new Error(what);
};

try {
  await Sandbox.create(template, { apiKey: "e2b_" + "0".repeat(40) });
  throw new Error("a bad key created a sandbox");
} catch (e) {
  check(/401|[Ii]nvalid API key|[Aa]uthentication/.test(String(e)), `bad key: ${e}`);
}
ok("bad key rejected");

const sbx = await Sandbox.create(template, { timeoutMs: 300_000, metadata: { suite: "js" }, envs: { FOO: "bar" } });
ok(`create ${sbx.sandboxId}`);

let r = await sbx.commands.run("echo hello; echo $FOO >&2");
check(r.exitCode === 0 && r.stdout === "hello\n" && r.stderr === "bar\n", `run: ${JSON.stringify(r)}`);
const lines = [];
await sbx.commands.run("for i in 1 2 3; do echo l$i; sleep 0.5; done", { onStdout: (d) => lines.push(d) });
check(lines.join("").split("\n").filter(Boolean).length === 3, `streamed ${lines}`);
try {
  await sbx.commands.run("exit 4");
  throw new Error("exit 4 did not throw");
} catch (e) {
  check(e instanceof CommandExitError && e.exitCode === 4, `exit: ${e}`);
}
ok("commands.run");

const h = await sbx.commands.run("sleep 600", { background: true });
check((await sbx.commands.list()).some((p) => p.pid === h.pid), "background not listed");
check(await sbx.commands.kill(h.pid), "kill");
ok("background and kill");

await sbx.files.write("/tmp/js/a.txt", "from js");
check((await sbx.files.read("/tmp/js/a.txt")) === "from js", "read back");
check((await sbx.files.list("/tmp/js")).map((e) => e.name).join() === "a.txt", "list");
check((await sbx.files.makeDir("/tmp/js/d")) === true, "makeDir");
await sbx.files.rename("/tmp/js/a.txt", "/tmp/js/d/b.txt");
check(await sbx.files.exists("/tmp/js/d/b.txt"), "rename");
await sbx.files.remove("/tmp/js");
check(!(await sbx.files.exists("/tmp/js")), "remove");
ok("files");

const info = await sbx.getInfo();
check(info.sandboxId === sbx.sandboxId && info.metadata.suite === "js", `info ${JSON.stringify(info)}`);
await sbx.setTimeout(600_000);
const listed = await Sandbox.list().nextItems();
check(listed.some((s) => s.sandboxId === sbx.sandboxId), "list");
ok("getInfo, setTimeout, list");

await sbx.pause();
const again = await Sandbox.connect(sbx.sandboxId);
check((await again.commands.run("echo back")).stdout === "back\n", "after resume");
ok("pause and connect");

await sbx.kill();
check(!(await sbx.isRunning()), "still running after kill");
ok("kill");
console.log("all ok");
