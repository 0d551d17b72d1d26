// Starts the real `roost server` the tests run against (on 127.0.0.1, a temporary data
// dir, its own firewall table and address pool), signs the admin in once for the tests'
// browser contexts, and returns the teardown that stops it and removes what it left on
// the host. A missing prerequisite fails the run, naming the Debian package.
import { spawn, execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { gzipSync } from "node:zlib";
import { chromium } from "@playwright/test";
import { ADMIN_PASSWORD, ARTIFACTS, CHROMIUM, FIGURES, LAUNCH_OPTIONS, ROOST_BIN, ROOT, RUN } from "./env.mjs";

function log(...a) {
  console.log("[e2e]", ...a);
}

function prerequisites() {
  const missing = [];
  if (!existsSync(CHROMIUM)) missing.push(`chromium (Debian package 'chromium'; expected at ${CHROMIUM})`);
  if (!existsSync(ROOST_BIN)) missing.push(`the roost binary at ${ROOST_BIN} (run: cargo build -p roost)`);
  try {
    execFileSync("runc", ["--version"], { stdio: "ignore" });
  } catch {
    missing.push("runc (Debian package 'runc')");
  }
  if (process.getuid?.() !== 0) missing.push("root (instances run with runc as root)");
  if (!existsSync(join(ROOT, "web/dist/index.html"))) missing.push("the built console in web/dist (run: make web)");
  return missing;
}

async function startServer() {
  const data = mkdtempSync(join(tmpdir(), "roost-e2e-"));
  // Its own firewall table name and address pool, so it never touches another
  // installation's networks; both are removed at the end.
  const table = `re2e${RUN}`;
  const child = spawn(
    ROOST_BIN,
    [
      "server", "--listen", "127.0.0.1:0", "--data-dir", data, "--compute", "on",
      "--firewall-table", table, "--network-cidr", `10.${200 + RUN}.0.0/16`,
      "--s3-listen", "127.0.0.1:0",
      "--e2b-listen", "127.0.0.1:0",
      "--mutation-rate-per-minute", "100000", "--login-rate-per-minute", "1000",
    ],
    { env: { ...process.env, ROOST_ADMIN_PASSWORD: ADMIN_PASSWORD, ROOST_LOG_LEVEL: "warn" }, stdio: ["ignore", "pipe", "pipe"] },
  );
  const output = [];
  child.stderr.on("data", (d) => output.push(String(d)));
  const url = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`the server did not start:\n${output.join("")}`)), 60_000);
    let found;
    createInterface({ input: child.stdout }).on("line", (line) => {
      output.push(line + "\n");
      const m = line.split("is listening on ")[1];
      if (m) found = m.trim();
      if (line.trim().startsWith("cli ") && found) {
        clearTimeout(timer);
        ok(found);
      }
    });
    child.on("exit", (code) => fail(new Error(`the server exited (${code}):\n${output.join("")}`)));
  });
  return { child, url, data, output, table };
}

/** Gzipped bytes of what index.html loads before anything else (scripts, preloads, CSS). */
function initialLoad() {
  const dist = join(ROOT, "web/dist");
  const html = readFileSync(join(dist, "index.html"));
  const files = [...String(html).matchAll(/(?:src|href)="\/(assets\/[^"]+)"/g)].map((m) => m[1]);
  const sizes = Object.fromEntries(files.map((f) => [f, gzipSync(readFileSync(join(dist, f)), { level: 9 }).length]));
  const total = gzipSync(html, { level: 9 }).length + Object.values(sizes).reduce((a, b) => a + b, 0);
  return { files: sizes, total_gzip_bytes: total };
}

/** What a server with firewall table `table` leaves on the host for its restart: its
 * nftables tables, its bridges (labelled `roost:<table>:` in their alias) and its policy
 * routing rules (priority and mark prefix derived from the table name, as
 * roost-node's RouteOwner::for_table does). */
function removeNetworks(table) {
  const quiet = (cmd, args, input) => {
    try {
      return execFileSync(cmd, args, { input, stdio: [input ? "pipe" : "ignore", "pipe", "ignore"] }).toString();
    } catch {
      return "";
    }
  };
  quiet("nft", ["-f", "-"], `table ip ${table} {}\ndelete table ip ${table}\ntable bridge ${table} {}\ndelete table bridge ${table}\n`);
  for (const dev of readdirSync("/sys/class/net")) {
    let alias = "";
    try {
      alias = readFileSync(`/sys/class/net/${dev}/ifalias`, "utf8").trim();
    } catch {
      continue;
    }
    if (alias.startsWith(`roost:${table}:`)) quiet("ip", ["link", "del", dev]);
  }
  const h = createHash("sha256").update(table).digest();
  const priority = 20000 + (h.readUInt32BE(0) % 10000);
  const prefix = ((0x10 + (h[4] % 0x70)) << 24) >>> 0;
  let rules = [];
  try {
    rules = JSON.parse(quiet("ip", ["-j", "-4", "rule", "show"]) || "[]");
  } catch {
    rules = [];
  }
  for (const r of rules) {
    const mark = r.fwmark === undefined ? undefined : Number(r.fwmark) >>> 0;
    if (r.priority === priority && mark !== undefined && ((mark & 0xff000000) >>> 0) === prefix) {
      quiet("ip", ["-4", "rule", "del", "priority", String(priority), "fwmark", r.fwmark, ...(r.table ? ["table", String(r.table)] : [])]);
    }
  }
}

async function api(url, token, method, path, body) {
  const res = await fetch(url + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

async function stopServer(server, token) {
  // Delete whatever instances remain so no container outlives the run.
  try {
    for (let round = 0; round < 3; round++) {
      let cursor;
      do {
        const page = await api(server.url, token, "GET", `/v1/instances?limit=1000${cursor ? `&cursor=${cursor}` : ""}`);
        const queue = [...page.items];
        await Promise.all(Array.from({ length: 8 }, async () => {
          for (let i = queue.shift(); i; i = queue.shift()) {
            await api(server.url, token, "DELETE", `/v1/instances/${i.id}?force=true`).catch(() => {});
          }
        }));
        cursor = page.next_cursor;
      } while (cursor);
      const left = await api(server.url, token, "GET", "/v1/instances?limit=1");
      if (left.items.length === 0) break;
      await new Promise((ok) => setTimeout(ok, 1000));
    }
  } catch (e) {
    log(`cleanup: ${e}`);
  }
  server.child.kill("SIGTERM");
  await new Promise((ok) => {
    if (server.child.exitCode !== null) return ok();
    const t = setTimeout(() => {
      server.child.kill("SIGKILL");
      ok();
    }, 10_000);
    server.child.on("exit", () => {
      clearTimeout(t);
      ok();
    });
  });
  try {
    removeNetworks(server.table);
  } finally {
    rmSync(server.data, { recursive: true, force: true, maxRetries: 5, retryDelay: 500 });
  }
}

export default async function globalSetup() {
  const missing = prerequisites();
  if (missing.length) {
    for (const m of missing) log(`FAIL missing prerequisite: ${m}`);
    throw new Error(`missing prerequisites: ${missing.join("; ")}`);
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  const figures = { initial_load: initialLoad() };
  writeFileSync(FIGURES, JSON.stringify(figures, null, 2));
  log(`initial load: ${(figures.initial_load.total_gzip_bytes / 1024).toFixed(1)} KiB gzip (${Object.keys(figures.initial_load.files).join(", ")} + index.html)`);

  const server = await startServer();
  let token;
  let warmup = Promise.resolve();
  const state = mkdtempSync(join(tmpdir(), "roost-e2e-state-"));
  try {
    log(`server at ${server.url}`);
    const res = await fetch(`${server.url}/v1/auth/login`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: "admin", password: ADMIN_PASSWORD }),
    });
    if (!res.ok) throw new Error(`admin login: ${res.status} ${await res.text()}`);
    token = (await res.json()).token;

    // The admin's browser session, signed in once through the login page; each test's
    // context starts from it (tests of the login and sign-out make their own).
    const browser = await chromium.launch(LAUNCH_OPTIONS);
    try {
      const context = await browser.newContext();
      const page = await context.newPage();
      await page.goto(`${server.url}/login`);
      await page.getByLabel("Username").fill("admin");
      await page.getByLabel("Password").fill(ADMIN_PASSWORD);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByTestId("whoami").waitFor();
      await context.storageState({ path: join(state, "admin.json") });
    } finally {
      await browser.close();
    }

    // The builtin `base` sandbox template is built on first use (tens of seconds): start
    // that now in a project of its own, so the sandbox test (which makes its own
    // sandbox) finds it built or building. It is only a head start.
    warmup = api(server.url, token, "POST", "/v1/projects", { name: "e2e-warmup", description: "builds the base template early" })
      .then(() => api(server.url, token, "POST", "/v1/sandboxes", { template: "base", ttl_secs: 60, project: "e2e-warmup" }))
      .then((s) => api(server.url, token, "DELETE", `/v1/sandboxes/${s.id}`))
      .catch((e) => log(`template warm-up: ${e}`));
  } catch (e) {
    await stopServer(server, token ?? "");
    throw e;
  }

  process.env.E2E_URL = server.url;
  process.env.E2E_TOKEN = token;
  process.env.E2E_ADMIN_STATE = join(state, "admin.json");
  process.env.E2E_RUN = String(RUN);

  return async () => {
    // A build still going (a short run) writes into the data dir: let it finish first.
    await warmup;
    await stopServer(server, token);
    rmSync(state, { recursive: true, force: true });
  };
}
