// End-to-end tests of the console in a real browser: @playwright/test driving Debian's
// chromium against a real `roost server` (started by global-setup.mjs on 127.0.0.1 with a
// temporary data dir) running real runc instances. Run by scripts/test.sh after the
// Rust build:
//   node web/e2e/run.mjs [playwright test options, e.g. -g "metrics"]
//   (ROOST_BIN, CHROMIUM, E2E_ARTIFACTS override paths; E2E_TRACE=1 keeps traces of failures)
// Prints one "e2e: N passed, M failed" line and exits non-zero when anything failed. A
// missing prerequisite fails (naming the Debian package), never skips.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { HERE, WEB } from "./env.mjs";

const SUMMARY = /^e2e: \d+ passed, \d+ failed/;
const cli = join(WEB, "node_modules/@playwright/test/cli.js");
if (!existsSync(cli)) {
  console.log("[e2e] FAIL missing prerequisite: the console's packages in web/node_modules (run: cd web && npm ci)");
  console.log("e2e: 0 passed, 1 failed");
  process.exit(1);
}

const started = Date.now();
const child = spawn(process.execPath, [cli, "test", "-c", join(HERE, "playwright.config.mjs"), ...process.argv.slice(2)], {
  cwd: WEB,
  stdio: ["ignore", "pipe", "inherit"],
  env: { ...process.env, FORCE_COLOR: "0" },
});
let summary = null;
createInterface({ input: child.stdout }).on("line", (line) => {
  if (SUMMARY.test(line)) summary = line;
  else console.log(line);
});
const code = await new Promise((ok) => child.on("close", (c, signal) => ok(c ?? (signal ? 1 : 0))));
console.log(`[e2e] wall time ${((Date.now() - started) / 1000).toFixed(0)} s`);
// The summary last, so the suite's closing line is this run's.
console.log(summary ?? "e2e: 0 passed, 1 failed (the run did not finish)");
process.exit(summary && code === 0 ? 0 : code || 1);
