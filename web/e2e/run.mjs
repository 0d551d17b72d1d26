// End-to-end tests of the console in a real browser: playwright-core driving Debian's
// chromium against a real `roost server` (started here on 127.0.0.1 with a temporary
// data dir) running real runc instances. Run by scripts/test.sh after the Rust build:
//   node web/e2e/run.mjs            (ROOST_BIN, CHROMIUM, E2E_ARTIFACTS override paths)
// Prints one "N passed, M failed" line and exits non-zero when anything failed. A missing
// prerequisite fails (naming the Debian package), never skips.
import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const ROOST_BIN = process.env.ROOST_BIN ?? join(root, "target/debug/roost");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const ARTIFACTS = process.env.E2E_ARTIFACTS ?? join(root, "target/e2e-artifacts");
const ADMIN_PASSWORD = "e2e-admin-password";
const INSTANCE = "e2e-web";
const BULK = Number(process.env.E2E_BULK ?? 500);

const results = [];
const figures = {};
let server;
let browser;
let token;

function log(...a) {
  console.log("[e2e]", ...a);
}

async function test(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.push({ name, ok: true });
    log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    results.push({ name, ok: false, error: e });
    log(`FAIL ${name}: ${e?.stack ?? e}`);
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
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
  if (!existsSync(join(root, "web/dist/index.html"))) missing.push("the built console in web/dist (run: make web)");
  return missing;
}

async function startServer() {
  const data = mkdtempSync(join(tmpdir(), "roost-e2e-"));
  // Its own firewall table name and address pool, so it never touches another
  // installation's networks; both are removed at the end.
  const n = process.pid % 50;
  const table = `re2e${n}`;
  const child = spawn(
    ROOST_BIN,
    [
      "server", "--listen", "127.0.0.1:0", "--data-dir", data, "--compute", "on",
      "--firewall-table", table, "--network-cidr", `10.${200 + n}.0.0/16`,
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

/** A call to the REST API as the admin (bearer token), for setup and checks. */
async function apiCall(method, path, body) {
  const res = await fetch(server.url + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let data;
  try {
    data = text ? JSON.parse(text) : undefined;
  } catch {
    data = text;
  }
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return data;
}

async function pool(items, n, fn) {
  const queue = [...items];
  await Promise.all(Array.from({ length: n }, async () => {
    while (queue.length) await fn(queue.shift());
  }));
}

function watchConsole(page, errors) {
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    // Chromium reports every 4xx/5xx response as "Failed to load resource"; the console
    // expects some (401 before login, 403 tests): only the app's own errors count.
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) errors.push(`console: ${m.text()}`);
  });
}

async function shot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: false });
}

async function login(page, user, password, next = "/") {
  await page.goto(server.url + next);
  await page.waitForURL(/\/login/);
  await page.getByLabel("Username").fill(user);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
}

/** Loads /instances in `p` and returns its timings, measured in the page. */
async function measureInstancesPage(p) {
  await p.addInitScript(() => {
      window.__longtasks = [];
      new PerformanceObserver((l) => l.getEntries().forEach((e) => window.__longtasks.push({ start: e.startTime, duration: e.duration }))).observe({ type: "longtask", buffered: true });
      // The moment the first instance row is in the DOM, measured in the page itself.
      new MutationObserver((_, obs) => {
        if (document.querySelector("tr[data-instance]")) {
          window.__rowsAt = performance.now();
          obs.disconnect();
        }
      }).observe(document, { childList: true, subtree: true });
    });
    await p.goto(`${server.url}/instances`);
    await p.locator("tr[data-instance]").first().waitFor();
    const t = await p.evaluate(async () => {
      // Interactive: the rows are rendered and the main thread is idle.
      // Let the page settle, then: interactive = the rows are rendered and no long task
      // (over 50 ms of main-thread work) runs after that.
      await new Promise((ok) => setTimeout(ok, 1000));
      const rowsAt = window.__rowsAt;
      const lastLong = Math.max(0, ...window.__longtasks.map((l) => l.start + l.duration));
      const idleAt = Math.max(rowsAt, lastLong);
      const nav = performance.getEntriesByType("navigation")[0];
      const fcp = performance.getEntriesByName("first-contentful-paint")[0];
      return { rowsAt, idleAt, domInteractive: nav.domInteractive, fcp: fcp?.startTime, rows: document.querySelectorAll("tr[data-instance]").length, longtasks: window.__longtasks };
    });
    t.requests = await p.evaluate(() =>
      performance.getEntriesByType("resource").map((r) => `${r.name.replace(location.origin, "")} ${r.startTime.toFixed(0)}+${r.duration.toFixed(0)} ms`),
    );
    return t;
}

/** Gzipped bytes of what index.html loads before anything else (scripts, preloads, CSS). */
function initialLoad() {
  const dist = join(root, "web/dist");
  const html = readFileSync(join(dist, "index.html"));
  const files = [...String(html).matchAll(/(?:src|href)="\/(assets\/[^"]+)"/g)].map((m) => m[1]);
  const sizes = Object.fromEntries(files.map((f) => [f, gzipSync(readFileSync(join(dist, f)), { level: 9 }).length]));
  const total = gzipSync(html, { level: 9 }).length + Object.values(sizes).reduce((a, b) => a + b, 0);
  return { files: sizes, total_gzip_bytes: total };
}

async function main() {
  const missing = prerequisites();
  if (missing.length) {
    for (const m of missing) results.push({ name: `prerequisite: ${m}`, ok: false, error: new Error(`missing ${m}`) });
    for (const m of missing) log(`FAIL missing prerequisite: ${m}`);
    return;
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  figures.initial_load = initialLoad();
  log(`initial load: ${(figures.initial_load.total_gzip_bytes / 1024).toFixed(1)} KiB gzip (${Object.keys(figures.initial_load.files).join(", ")} + index.html)`);
  const { chromium } = await import("playwright-core");
  server = await startServer();
  log(`server at ${server.url}`);
  const session = await (await fetch(`${server.url}/v1/auth/login`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: "admin", password: ADMIN_PASSWORD }),
  })).json();
  token = session.token;

  // Chromium occasionally dies while starting on a loaded machine: try up to 3 times.
  for (let attempt = 1; !browser; attempt++) {
    try {
      browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
    } catch (e) {
      if (attempt >= 3) throw e;
      log(`chromium failed to start (attempt ${attempt}): ${String(e).split("\n")[0]}`);
    }
  }
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: "light" });
  await ctx.grantPermissions(["clipboard-read", "clipboard-write"], { origin: server.url });
  const page = await ctx.newPage();
  const errors = [];
  watchConsole(page, errors);
  let reloads = 0;
  page.on("framenavigated", (f) => {
    if (f === page.mainFrame()) reloads++;
  });

  await test("unauthenticated page redirects to login, then back", async () => {
    await login(page, "admin", ADMIN_PASSWORD, "/instances");
    await page.waitForURL(`${server.url}/instances`);
    await page.getByRole("heading", { name: "Instances", level: 1 }).waitFor();
    const who = await page.getByTestId("whoami").textContent();
    assert(who.includes("admin"), `whoami shows ${who}`);
    await page.getByText("No instances yet").waitFor();
    await shot(page, "instances-empty");
  });

  await test("dashboard shows counts, quota, health and activity", async () => {
    await page.getByRole("link", { name: "Dashboard" }).click();
    await page.getByRole("heading", { name: "Usage and quota" }).waitFor();
    await page.getByText("Recent activity").waitFor();
    await page.locator(".activity li").first().waitFor();
    await page.getByText("store:").waitFor();
    await shot(page, "dashboard");
  });

  // A sandbox in a project of its own (so the default project's lists stay as the
  // tests below expect); its first create builds the builtin `base` template, which
  // goes on while the tests below run.
  const sandboxReady = apiCall("POST", "/v1/projects", { name: "e2e-sbx", description: "sandbox page" })
    .then(() => apiCall("POST", "/v1/sandboxes", { template: "base", ttl_secs: 3600, project: "e2e-sbx" }));
  sandboxReady.catch(() => {});

  await test("launch an instance through the wizard and see it turn running without reload", async () => {
    await page.goto(`${server.url}/instances/new`);
    const navs = reloads;
    // Step 1: next without an image is refused.
    await page.getByRole("button", { name: "Next" }).click();
    await page.getByText("Choose an image").waitFor();
    await page.getByRole("radio", { name: /busybox/ }).check();
    await page.getByRole("button", { name: "Next" }).click();
    // Step 2: a custom size is validated.
    await page.getByRole("radio", { name: /custom/ }).check();
    await page.getByRole("textbox", { name: "CPUs" }).fill("0");
    await page.getByRole("button", { name: "Next" }).click();
    await page.getByText("CPUs must be a number above 0").waitFor();
    await page.getByRole("radio", { name: /nano/ }).check();
    await page.getByRole("table", { name: "Estimated quota use" }).waitFor();
    await page.getByRole("button", { name: "Next" }).click();
    // Step 3: networks and security groups (the project's defaults are ticked).
    await page.getByRole("checkbox", { name: /default .*eth0/ }).waitFor();
    await page.getByRole("checkbox", { name: /default .*eth0/ }).uncheck();
    await page.getByRole("button", { name: "Next" }).click();
    await page.getByText("Choose at least one network").waitFor();
    await page.getByRole("checkbox", { name: /^default/ }).first().check();
    await shot(page, "launch-network");
    await page.getByRole("button", { name: "Next" }).click();
    // Step 4: name, command, env, labels.
    await page.getByLabel("Name", { exact: true }).fill(INSTANCE);
    await page.getByLabel(/^Command/).fill(`sh -c "while true; do echo tick-$GREETING; sleep 1; done"`);
    await page.getByRole("button", { name: "Add environment" }).click();
    await page.getByLabel("Environment 1 name").fill("GREETING");
    await page.getByLabel("Environment 1 value").fill("hi");
    await page.getByRole("button", { name: "Add label" }).click();
    await page.getByLabel("Labels 1 name").fill("app");
    await page.getByLabel("Labels 1 value").fill("e2e");
    await page.getByRole("button", { name: "Next" }).click();
    await page.getByText("Estimated quota use after launch").waitFor();
    await shot(page, "launch-review");
    await page.getByRole("button", { name: "Launch" }).click();
    await page.waitForURL(`${server.url}/instances/${INSTANCE}`);
    await page.locator(`.pagehead [data-status="running"]`).waitFor({ timeout: 60_000 });
    assert(reloads - navs <= 2, `the page reloaded (${reloads - navs} navigations)`);
    await shot(page, "instance-overview");
  });

  await test("live status in the list without reload", async () => {
    await page.getByRole("link", { name: "Instances" }).first().click();
    const row = page.locator(`tr[data-instance="${INSTANCE}"]`);
    await row.locator(`[data-status="running"]`).waitFor();
    // Stop it through the API: the list must follow through the event stream.
    await apiCall("POST", `/v1/instances/${INSTANCE}/stop`, { timeout_secs: 1 });
    await row.locator(`[data-status="stopped"]`).waitFor({ timeout: 30_000 });
    await apiCall("POST", `/v1/instances/${INSTANCE}/start`);
    await row.locator(`[data-status="running"]`).waitFor({ timeout: 30_000 });
    await shot(page, "instances");
  });

  await test("logs follow the instance's output", async () => {
    await page.goto(`${server.url}/instances/${INSTANCE}?tab=logs`);
    await page.getByTestId("logs").getByText("tick-hi").first().waitFor({ timeout: 20_000 });
    await page.getByPlaceholder("Search the log").fill("tick");
    await page.getByRole("button", { name: "Pause" }).click();
    await page.getByRole("button", { name: /Resume/ }).waitFor();
    await shot(page, "instance-logs");
  });

  await test("terminal: echo hello comes back", async () => {
    await page.getByRole("tab", { name: "Terminal" }).click();
    await page.getByTestId("terminal-state").getByText("connected").waitFor({ timeout: 20_000 });
    await page.locator(".xterm").click();
    await page.keyboard.type("echo hello\n");
    // The echoed command line and the output line "hello" itself.
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll(".xterm-rows > div")].map((d) => d.textContent.trim());
      return rows.includes("hello");
    }, null, { timeout: 15_000 });
    // Resize reaches the shell.
    await page.setViewportSize({ width: 1000, height: 700 });
    await page.waitForTimeout(300);
    await page.keyboard.type("stty size\n");
    await page.waitForFunction(() => [...document.querySelectorAll(".xterm-rows > div")].some((d) => /^\d+ \d+$/.test(d.textContent.trim())), null, { timeout: 10_000 });
    await page.setViewportSize({ width: 1280, height: 800 });
    await shot(page, "instance-terminal");
  });

  await test("metrics charts render", async () => {
    // The sampler records a point every 10 s: wait for the first ones.
    for (let n = 0; n < 60; n++) {
      const m = await apiCall("GET", `/v1/instances/${INSTANCE}/metrics?period=1h`);
      if (m.points.length >= 2) break;
      await new Promise((ok) => setTimeout(ok, 1000));
    }
    await page.getByRole("tab", { name: "Metrics" }).click();
    await page.getByRole("button", { name: "1 hour" }).click();
    await page.locator(".uplot").first().waitFor({ timeout: 30_000 });
    await shot(page, "instance-metrics");
  });

  await test("security group rule editor", async () => {
    await page.goto(`${server.url}/security-groups`);
    await page.getByRole("link", { name: /^default/ }).waitFor();
    await page.getByRole("button", { name: "Create group" }).click();
    await page.getByLabel("Name", { exact: true }).fill("e2e-web-sg");
    await page.getByRole("dialog").getByRole("button", { name: "Create" }).click();
    await page.waitForURL(`${server.url}/security-groups/e2e-web-sg`);
    await page.getByLabel(/^Ports/).fill("90-80");
    await page.getByRole("button", { name: "Add rule" }).click();
    await page.getByText("'90-80' is a reversed range").waitFor();
    await page.getByLabel(/^Ports/).fill("80,443");
    await page.getByLabel("Description").fill("web");
    await page.getByRole("button", { name: "Add rule" }).click();
    await page.getByRole("cell", { name: "80,443", exact: true }).waitFor();
    const g = await apiCall("GET", "/v1/security-groups/e2e-web-sg");
    assert(g.rules.some((r) => r.ports === "80,443" && r.protocol === "tcp" && r.direction === "ingress"), JSON.stringify(g.rules));
    await shot(page, "security-group");
    await page.goto(`${server.url}/networks`);
    await page.getByRole("cell", { name: /^default/ }).first().waitFor();
    await shot(page, "networks");
  });

  await test("instance network tab: NICs, groups, port forwards", async () => {
    await page.goto(`${server.url}/instances/${INSTANCE}?tab=network`);
    await page.getByRole("table", { name: "Network interfaces" }).getByRole("cell", { name: "eth0" }).waitFor();
    await page.getByRole("checkbox", { name: "e2e-web-sg" }).check();
    await page.getByRole("button", { name: "Save groups" }).click();
    await page.getByText("Security groups saved").waitFor();
    await page.getByPlaceholder("8080:80/tcp").fill(`${18000 + (process.pid % 1000)}:80/tcp`);
    await page.getByRole("button", { name: "Add port forward" }).click();
    await page.getByRole("cell", { name: `${18000 + (process.pid % 1000)}/tcp` }).waitFor();
    const i = await apiCall("GET", `/v1/instances/${INSTANCE}`);
    assert(i.security_groups.includes("e2e-web-sg"), `groups: ${i.security_groups}`);
    await shot(page, "instance-network");
    await page.getByRole("table", { name: "Port forwards" }).getByRole("button", { name: "Remove" }).click();
    await page.getByText("No port forwards").waitFor();
  });

  await test("volumes: create, hot attach on the Volumes tab, snapshot, backup policy, detach", async () => {
    await page.goto(`${server.url}/volumes`);
    await page.getByRole("button", { name: "Create volume" }).click();
    const create = page.getByRole("dialog");
    await create.getByLabel("Name").fill("e2e-data");
    await create.getByLabel(/^Size/).fill("64m");
    await create.getByRole("button", { name: "Create" }).click();
    await page.getByRole("link", { name: "e2e-data" }).first().waitFor();
    await page.goto(`${server.url}/instances/${INSTANCE}?tab=volumes`);
    await page.getByLabel("Volume to attach").selectOption("e2e-data");
    await page.getByLabel("Mount path").fill("/data");
    await page.getByRole("button", { name: "Attach", exact: true }).click();
    await page.getByText("e2e-data is at /data now").waitFor();
    const i = await apiCall("GET", `/v1/instances/${INSTANCE}`);
    assert(i.volumes.some((v) => v.volume === "e2e-data" && v.path === "/data"), `volumes: ${JSON.stringify(i.volumes)}`);
    await page.getByRole("table", { name: "Volumes" }).getByRole("cell", { name: "/data" }).waitFor();
    await shot(page, "instance-volumes");
    await page.goto(`${server.url}/volumes`);
    await page.getByRole("button", { name: "Snapshot", exact: true }).click();
    await page.getByRole("dialog").getByLabel("Snapshot name").fill("e2e-snap");
    await page.getByRole("dialog").getByRole("button", { name: "Take snapshot" }).click();
    await page.getByRole("cell", { name: "e2e-snap" }).waitFor();
    await page.getByRole("button", { name: "Create backup policy" }).click();
    const policy = page.getByRole("dialog");
    await policy.getByLabel("Name").fill("e2e-nightly");
    await policy.getByRole("button", { name: "Create" }).click();
    await page.getByRole("cell", { name: "e2e-nightly" }).waitFor();
    await page.getByRole("button", { name: "Run now" }).click();
    await page.getByText("Backup e2e-nightly taken").waitFor();
    await shot(page, "volumes");
    await page.goto(`${server.url}/instances/${INSTANCE}?tab=volumes`);
    await page.getByRole("table", { name: "Volumes" }).getByRole("button", { name: "Detach" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Detach" }).click();
    await page.getByText("No volumes").waitFor();
  });

  // A viewer of the default project.
  await apiCall("POST", "/v1/users", { name: "e2e-viewer", role: "operator", password: "viewer-password-1", projects: [] });
  await apiCall("PUT", "/v1/projects/default/members/e2e-viewer", { role: "viewer" });
  await test("a viewer cannot press destructive buttons", async () => {
    const vctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: "dark" });
    const vpage = await vctx.newPage();
    watchConsole(vpage, errors);
    await login(vpage, "e2e-viewer", "viewer-password-1", `/instances/${INSTANCE}`);
    await vpage.waitForURL(`${server.url}/instances/${INSTANCE}`);
    await vpage.locator(`.pagehead [data-status]`).waitFor();
    for (const name of ["Start", "Stop", "Restart", "Terminate"]) {
      const b = vpage.getByRole("button", { name, exact: true });
      assert(await b.isDisabled(), `${name} is enabled for a viewer`);
      assert(((await b.getAttribute("title")) ?? "").includes("viewer"), `${name} gives no reason`);
    }
    await shot(vpage, "viewer-instance");
    await vpage.goto(`${server.url}/instances`);
    await vpage.locator(`tr[data-instance="${INSTANCE}"]`).waitFor();
    await vpage.getByLabel(`Select ${INSTANCE}`).check();
    for (const name of [/^Start/, /^Stop/, /^Delete/]) {
      assert(await vpage.getByRole("button", { name }).isDisabled(), `bulk ${name} is enabled for a viewer`);
    }
    assert(await vpage.getByRole("button", { name: "Launch instance" }).isDisabled(), "Launch is enabled for a viewer");
    await shot(vpage, "viewer-instances-dark");
    await vpage.goto(`${server.url}/images`);
    assert(await vpage.getByRole("button", { name: "Build image" }).isDisabled(), "Build image is enabled for a viewer");
    await vpage.goto(`${server.url}/buckets`);
    assert(await vpage.getByRole("button", { name: "Create bucket" }).isDisabled(), "Create bucket is enabled for a viewer");
    await vpage.goto(`${server.url}/volumes`);
    assert(await vpage.getByRole("button", { name: "Create volume" }).isDisabled(), "Create volume is enabled for a viewer");
    await vpage.goto(`${server.url}/security-groups/default`);
    assert(await vpage.getByRole("button", { name: "Add rule" }).isDisabled(), "Add rule is enabled for a viewer");
    await vpage.goto(`${server.url}/instances/new`);
    await vpage.getByRole("heading", { name: "Read only" }).waitFor();
    await vctx.close();
  });

  await test("switch project", async () => {
    await apiCall("POST", "/v1/projects", { name: "e2e-other", description: "for the switcher" });
    await page.goto(`${server.url}/instances`);
    await page.locator(`tr[data-instance="${INSTANCE}"]`).waitFor();
    await page.getByLabel("Project").selectOption("e2e-other");
    await page.getByText("No instances yet").waitFor();
    await page.getByText("Switched to project e2e-other").waitFor();
    await page.reload();
    assert((await page.getByLabel("Project").inputValue()) === "e2e-other", "the choice is not remembered");
    await page.getByLabel("Project").selectOption("default");
    await page.locator(`tr[data-instance="${INSTANCE}"]`).waitFor();
  });

  await test("keyboard: tabs move with the arrow keys", async () => {
    await page.goto(`${server.url}/instances/${INSTANCE}`);
    await page.getByRole("tab", { name: "Overview" }).focus();
    await page.keyboard.press("ArrowRight");
    await page.waitForURL(/tab=network/);
    assert(await page.getByRole("tab", { name: "Network" }).evaluate((el) => el === document.activeElement), "focus did not follow");
  });

  await test("command palette jumps to an instance", async () => {
    await page.goto(`${server.url}/`);
    await page.getByRole("heading", { name: "Dashboard" }).waitFor();
    await page.keyboard.press("Control+k");
    await page.getByRole("combobox", { name: "Search the console" }).fill("e2e");
    const option = page.getByRole("option", { name: new RegExp(`^${INSTANCE}\\s*instance`) });
    await option.waitFor();
    await shot(page, "palette");
    await option.click();
    await page.waitForURL(`${server.url}/instances/${INSTANCE}`);
  });

  await test("stop and delete the instance (typed confirmation)", async () => {
    await page.locator(`.pagehead [data-status="running"]`).waitFor();
    await page.getByRole("button", { name: "Stop", exact: true }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Stop" }).click();
    await page.locator(`.pagehead [data-status="stopped"]`).waitFor({ timeout: 30_000 });
    await page.getByRole("button", { name: "Terminate", exact: true }).click();
    const dialog = page.getByRole("dialog");
    assert(await dialog.getByRole("button", { name: "Terminate" }).isDisabled(), "Terminate is enabled before typing the name");
    await dialog.getByRole("textbox").fill(INSTANCE);
    await shot(page, "terminate-confirm");
    await dialog.getByRole("button", { name: "Terminate" }).click();
    await page.waitForURL(`${server.url}/instances`);
    for (let i = 0; i < 60; i++) {
      const r = await fetch(`${server.url}/v1/instances/${INSTANCE}`, { headers: { Authorization: `Bearer ${token}` } });
      if (r.status === 404) return;
      await new Promise((ok) => setTimeout(ok, 500));
    }
    throw new Error("the instance still exists");
  });

  await test("token create shows the secret once", async () => {
    await page.goto(`${server.url}/tokens`);
    await page.getByRole("button", { name: "Create token" }).click();
    await page.getByLabel("Name", { exact: true }).fill("e2e-token");
    await page.getByRole("dialog").getByRole("button", { name: "Create" }).click();
    const secret = await page.getByTestId("secret").textContent();
    assert(secret.startsWith("rst_"), `secret ${secret}`);
    await shot(page, "tokens");
  });

  await test("import an image by upload", async () => {
    // A root filesystem tarball: busybox and a shell link.
    const dir = mkdtempSync(join(tmpdir(), "roost-e2e-rootfs-"));
    mkdirSync(join(dir, "rootfs/bin"), { recursive: true });
    execFileSync("cp", ["/bin/busybox", join(dir, "rootfs/bin/busybox")]);
    execFileSync("ln", ["-s", "busybox", join(dir, "rootfs/bin/sh")]);
    const tarball = join(dir, "tiny-rootfs.tar.gz");
    execFileSync("tar", ["-czf", tarball, "-C", join(dir, "rootfs"), "."]);
    try {
      await page.goto(`${server.url}/images`);
      await page.getByRole("button", { name: "Import tarball" }).click();
      await page.getByLabel(/^Tarball/).setInputFiles(tarball);
      assert((await page.getByLabel("Name", { exact: true }).inputValue()) === "tiny-rootfs", "the name is not taken from the file");
      await page.getByRole("dialog").getByRole("button", { name: "Import" }).click();
      await page.getByText("Imported tiny-rootfs").waitFor({ timeout: 30_000 });
      await page.locator("tr", { hasText: "tiny-rootfs" }).locator('[data-status="ready"]').waitFor();
      await shot(page, "images-imported");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  await test("audit log filters", async () => {
    await page.goto(`${server.url}/audit`);
    await page.getByLabel("Action").fill("instance.");
    await page.waitForFunction(() => {
      const cells = [...document.querySelectorAll("tbody tr td:nth-child(4)")].map((td) => td.textContent);
      return cells.length > 0 && cells.every((a) => a.startsWith("instance."));
    }, null, { timeout: 10_000 });
    await shot(page, "audit-filtered");
  });

  await test("buckets: create, an S3 key shown once, upload and download through signed links", async () => {
    const bucket = `e2e-bucket-${process.pid}`;
    await page.goto(`${server.url}/buckets`);
    await page.getByText("No buckets").waitFor();
    await page.getByRole("button", { name: "Create bucket" }).click();
    await page.getByLabel(/^Name/).fill("No");
    await page.getByText("3–63 characters").waitFor();
    await page.getByLabel(/^Name/).fill(bucket);
    await page.getByRole("dialog").getByRole("button", { name: "Create" }).click();
    const row = page.locator("tr", { hasText: bucket });
    await row.waitFor();
    // Upload: the console signs a PUT link and shows the curl line a user would run.
    await row.getByRole("button", { name: "Upload link" }).click();
    await page.getByLabel("Object key").fill("docs/hello.txt");
    await page.getByRole("button", { name: "Sign a link" }).click();
    const curl = await page.locator(".copyfield code").first().textContent();
    const putUrl = curl.match(/'(http[^']+)'/)?.[1];
    assert(putUrl, `no URL in ${curl}`);
    const body = `hello from the console e2e ${Date.now()}`;
    const put = await fetch(putUrl, { method: "PUT", body });
    assert(put.ok, `PUT ${put.status} ${await put.text()}`);
    await page.keyboard.press("Escape");
    // Download through the console's signed GET link.
    await row.getByRole("button", { name: "Download link" }).click();
    await page.getByLabel("Object key").fill("docs/hello.txt");
    await page.getByRole("button", { name: "Sign a link" }).click();
    const href = await page.getByTestId("download-link").getAttribute("href");
    const got = await fetch(href);
    assert(got.ok && (await got.text()) === body, `GET ${got.status}`);
    await shot(page, "bucket-download-link");
    await page.keyboard.press("Escape");
    await page.reload();
    await page.locator("tr", { hasText: bucket }).getByRole("cell", { name: "1", exact: true }).waitFor();
    await shot(page, "buckets");
    await bucketBrowser(page, bucket);
    // An SSH key: generated, the private key shown once.
    await page.goto(`${server.url}/ssh-keys`);
    await page.getByRole("button", { name: "Add SSH key" }).click();
    await page.getByLabel("Name").fill("e2e-key");
    await page.getByRole("dialog").getByRole("button", { name: "Generate" }).click();
    const privateKey = await page.getByTestId("secret").textContent();
    assert(privateKey.startsWith("-----BEGIN OPENSSH PRIVATE KEY-----"), `private key ${privateKey}`);
    await page.locator("tr", { hasText: "e2e-key" }).getByText("ssh-ed25519").waitFor();
    await shot(page, "ssh-keys");
    // An S3 key: the secret once, with its access key id.
    await page.goto(`${server.url}/s3-keys`);
    await page.getByRole("button", { name: "Create S3 key" }).click();
    await page.getByLabel("Description").fill("e2e");
    await page.getByRole("dialog").getByRole("button", { name: "Create" }).click();
    const secret = await page.getByTestId("secret").textContent();
    assert(secret.length === 40, `secret ${secret}`);
    await shot(page, "s3-keys");
    await page.getByRole("button", { name: "I have stored it" }).click();
    assert((await page.getByTestId("secret").count()) === 0, "the secret is still shown");
  });

  await test("sandbox page: a file in the browser, upload, terminal, processes", async () => {
    const sbx = await sandboxReady;
    const put = await fetch(`${server.url}/v1/sandboxes/${sbx.id}/files?path=/root/hello-e2e.txt`, {
      method: "PUT",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/octet-stream" },
      body: "from the api\n",
    });
    assert(put.status === 204, `upload: ${put.status}`);
    await page.goto(`${server.url}/sandboxes`);
    await page.getByRole("link", { name: sbx.id }).click();
    await page.getByRole("heading", { name: sbx.id, level: 1 }).waitFor();
    await page.getByLabel("time left").waitFor();
    const files = page.getByRole("table", { name: "Sandbox files" });
    await files.getByText("hello-e2e.txt").waitFor({ timeout: 20_000 });
    await page.getByLabel("Upload files").setInputFiles({ name: "from-browser.txt", mimeType: "text/plain", buffer: Buffer.from("uploaded\n") });
    await files.getByText("from-browser.txt").waitFor({ timeout: 20_000 });
    await shot(page, "sandbox-files");
    await page.getByRole("tab", { name: "Terminal" }).click();
    await page.getByTestId("terminal-state").getByText("connected").waitFor({ timeout: 20_000 });
    await page.locator(".xterm").click();
    await page.keyboard.type("cat /root/from-browser.txt; echo $((6*7))\n");
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll(".xterm-rows > div")].map((d) => d.textContent.trim());
      return rows.includes("uploaded") && rows.includes("42");
    }, null, { timeout: 15_000 });
    await shot(page, "sandbox-terminal");
    const proc = await apiCall("POST", `/v1/sandboxes/${sbx.id}/processes`, { cmd: "sleep", args: ["1000"], tag: "e2e-sleep" });
    await page.getByRole("tab", { name: "Processes" }).click();
    const procs = page.getByRole("table", { name: "Sandbox processes" });
    await procs.getByText("e2e-sleep").waitFor({ timeout: 10_000 });
    await shot(page, "sandbox-processes");
    await procs.getByRole("button", { name: "Send" }).click();
    await page.getByText(`Sent SIGTERM to ${proc.pid}`).waitFor();
    await page.getByText("No background processes").waitFor({ timeout: 15_000 });
    await apiCall("DELETE", `/v1/sandboxes/${sbx.id}`);
  });

  await test("other pages render", async () => {
    for (const [path, heading, name] of [
      ["/images", "Images", "images"],
      ["/projects", "Projects", "projects"],
      ["/projects/default", "Project default", "project-default"],
      ["/users", "Users", "users"],
      ["/audit", "Audit log", "audit"],
      ["/operations", "Operations", "operations"],
      ["/account", "Your account", "account"],
      ["/node", "Compute node", "node"],
      ["/sandboxes", "Sandboxes", "sandboxes"],
      ["/sandbox-templates", "Sandbox templates", "sandbox-templates"],
    ]) {
      await page.goto(server.url + path);
      await page.getByRole("heading", { name: heading, level: 1 }).waitFor();
      await page.waitForLoadState("networkidle").catch(() => {});
      await shot(page, name);
    }
    await page.goto(`${server.url}/audit`);
    await page.locator("table tbody tr").first().waitFor();
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("link", { name: "Export CSV" }).click()]);
    const path = await download.path();
    assert(path, "no CSV downloaded");
  });

  await test("phone width", async () => {
    const m = await browser.newContext({ viewport: { width: 390, height: 844 }, colorScheme: "dark", isMobile: true, hasTouch: true });
    await m.addCookies((await ctx.cookies()).map((c) => ({ ...c })));
    const p = await m.newPage();
    watchConsole(p, errors);
    await p.goto(`${server.url}/`);
    await p.getByRole("heading", { name: "Dashboard" }).waitFor();
    const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert(overflow <= 1, `the page is ${overflow}px wider than the phone`);
    await shot(p, "phone-dashboard");
    await p.getByRole("button", { name: /Menu/ }).click();
    await p.getByRole("link", { name: "Instances" }).click();
    await p.getByRole("heading", { name: "Instances", level: 1 }).waitFor();
    await shot(p, "phone-instances");
    await m.close();
  });

  await test(`instances page with ${BULK} instances: timing`, async () => {
    const names = Array.from({ length: BULK }, (_, n) => `bulk-${String(n).padStart(3, "0")}`);
    // Every instance holds an address even while stopped: a network with room for them.
    await apiCall("POST", "/v1/networks", { name: "bulk", cidr: `10.${200 + (process.pid % 50)}.64.0/18`, nat: false });
    await pool(names, 8, (name) =>
      apiCall("POST", "/v1/instances", { name, image: "busybox", start: false, labels: { set: "bulk" }, networks: [{ network: "bulk" }] }),
    );
    // Warm: a new tab of the signed-in browser (static assets cached). Cold: a fresh
    // browser context with only the session cookie (nothing cached).
    const cold = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    await cold.addCookies(await ctx.cookies());
    for (const [label, context] of [["cold", cold], ["warm", ctx]]) {
      const q = await context.newPage();
      watchConsole(q, errors);
      const t = await measureInstancesPage(q);
      figures[`instances_page_${label}`] = t;
      log(`instances page (${label}), ${BULK} instances (${t.rows} rows on the first page): FCP ${t.fcp?.toFixed(0)} ms, domInteractive ${t.domInteractive.toFixed(0)} ms, rows rendered ${t.rowsAt.toFixed(0)} ms, interactive (idle) ${t.idleAt.toFixed(0)} ms`);
      // Figures only: per DESIGN.md no test asserts a time (docs/performance.md has them).
      assert(t.fcp !== undefined && t.rowsAt !== undefined, "no paint or row timing recorded");
      await q.close();
    }
    await cold.close();
    const p = await ctx.newPage();
    watchConsole(p, errors);
    await p.goto(`${server.url}/instances`);
    // Filtering and paging work on the large list.
    await p.getByLabel("Search").fill("bulk-49");
    await p.locator('tr[data-instance="bulk-499"]').waitFor();
    await p.getByLabel("Search").fill("");
    await p.locator('tr[data-instance="bulk-499"]').waitFor();
    await p.getByRole("button", { name: "Next →" }).click();
    await p.getByText("Page 2").waitFor();
    await shot(p, "instances-500");
    // Bulk delete the first page through the console, with its confirmation.
    await p.getByRole("button", { name: "← Previous" }).click();
    await p.getByText("Page 1").waitFor();
    await p.getByLabel("Select all on this page").check();
    await p.getByRole("button", { name: "Delete (50)" }).click();
    await p.getByRole("dialog").getByRole("button", { name: "Delete" }).click();
    const bulkAt = Date.now();
    // The console reports the outcome in a toast: all 50 accepted, or the API's error.
    const outcome = await p.locator(".toast").first().textContent({ timeout: 60_000 });
    assert(/^Deleting 50 instances/.test(outcome), `bulk delete: ${await p.locator(".toast").allTextContents()}`);
    for (let n = 0; ; n++) {
      let left = 0;
      let cursor;
      do {
        const page = await apiCall("GET", `/v1/instances?limit=1000${cursor ? `&cursor=${cursor}` : ""}`);
        left += page.items.length;
        cursor = page.next_cursor;
      } while (cursor);
      if (left === BULK - 50) break;
      const failed = await p.locator(".toast-error").allTextContents();
      assert(failed.length === 0, `the bulk delete reported: ${failed.join("; ")}`);
      assert(n < 240, `${left} instances left after deleting 50 of ${BULK}`);
      await new Promise((ok) => setTimeout(ok, 1000));
    }
    await p.close();
    log(`bulk delete of 50 through the console took ${((Date.now() - bulkAt) / 1000).toFixed(1)} s`);
    const cleanupAt = Date.now();
    const gone = new Set();
    await pool(names, 8, async (name) => {
      try {
        await apiCall("DELETE", `/v1/instances/${name}`);
      } catch (e) {
        if (!String(e).includes(": 404 ")) throw e;
        gone.add(name); // deleted by the console above
      }
    });
    assert(gone.size === 50, `${gone.size} were already deleted`);
    log(`deleting the other ${BULK - 50} through the API took ${((Date.now() - cleanupAt) / 1000).toFixed(1)} s`);
  });

  await test("sign out ends the session", async () => {
    await page.goto(`${server.url}/`);
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.waitForURL(`${server.url}/login`);
    await page.goto(`${server.url}/audit`);
    await page.waitForURL(`${server.url}/login?next=%2Faudit`);
    await page.getByRole("button", { name: "Sign in" }).waitFor();
  });

  await test("no console errors", async () => {
    assert(errors.length === 0, errors.join("\n"));
  });
  await ctx.close();
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

/** The bucket browser: uploads (file picker and drop), folders, metadata, download, delete, a viewer. */
async function bucketBrowser(page, bucket) {
  await page.goto(`${server.url}/buckets`);
  await page.getByRole("link", { name: bucket }).click();
  await page.waitForURL(`${server.url}/buckets/${bucket}`);
  await page.locator('tr[data-prefix="docs/"]').waitFor();
  // Upload through the file picker: the progress bar finishes and the object is listed.
  const one = Buffer.from(`first file ${Date.now()}\n`);
  await page.getByTestId("upload-input").setInputFiles({ name: "one.txt", mimeType: "text/plain", buffer: one });
  await page.locator('li[data-upload="one.txt"][data-state="done"]').waitFor();
  assert((await page.getByRole("progressbar", { name: "Upload of one.txt" }).getAttribute("value")) === "1", "the progress bar did not finish");
  await page.locator('tr[data-object="one.txt"]').waitFor();
  await page.getByText("Uploaded one.txt").waitFor();
  // Upload by dropping a file on the page.
  const dt = await page.evaluateHandle(() => {
    const d = new DataTransfer();
    d.items.add(new File(["dropped bytes"], "two.txt", { type: "text/plain" }));
    return d;
  });
  await page.getByTestId("dropzone").dispatchEvent("dragover", { dataTransfer: dt });
  await page.getByTestId("dropzone").dispatchEvent("drop", { dataTransfer: dt });
  await page.locator('li[data-upload="two.txt"][data-state="done"]').waitFor();
  await page.locator('tr[data-object="two.txt"]').waitFor();
  await shot(page, "bucket-browser");
  // A folder: open dir/ (new, empty) and upload x.txt into it, making dir/x.txt.
  await page.getByRole("button", { name: "New folder" }).click();
  await page.getByLabel("Folder name").fill("dir");
  await page.getByRole("button", { name: "Open folder" }).click();
  await page.getByText("Nothing in dir/").waitFor();
  const x = Buffer.from(`x in dir ${Date.now()} \u00e9\n`);
  await page.getByTestId("upload-input").setInputFiles({ name: "x.txt", mimeType: "text/plain", buffer: x });
  await page.locator('li[data-upload="dir/x.txt"][data-state="done"]').waitFor();
  await page.locator('tr[data-object="dir/x.txt"]').waitFor();
  // Back to the top through the breadcrumb, then into the folder by clicking it.
  await page.getByRole("navigation", { name: "Folder" }).getByRole("link", { name: `${bucket}/` }).click();
  await page.locator('tr[data-prefix="dir/"]').getByRole("link").click();
  await page.waitForURL(/prefix=dir%2F/);
  await page.locator('tr[data-object="dir/x.txt"]').waitFor();
  await page.getByRole("navigation", { name: "Folder" }).getByText("dir/").waitFor();
  // Its metadata, from a HEAD request.
  await page.getByRole("button", { name: "Metadata of x.txt" }).click();
  const meta = page.getByTestId("object-metadata");
  await meta.getByText("Content-Length").waitFor();
  const metaText = await meta.textContent();
  assert(metaText.includes("text/plain") && metaText.includes(String(x.length)) && metaText.includes("ETag"), `metadata: ${metaText}`);
  await shot(page, "bucket-object-metadata");
  await page.keyboard.press("Escape");
  // Download by clicking; the bytes are the ones uploaded.
  const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("link", { name: "Download x.txt" }).click()]);
  const got = readFileSync(await download.path());
  assert(Buffer.compare(got, x) === 0, `downloaded ${got.length} bytes that differ from the ${x.length} uploaded`);
  assert(download.suggestedFilename() === "x.txt", `suggested name ${download.suggestedFilename()}`);
  // Up, select two objects and delete them (after a confirmation).
  await page.getByRole("button", { name: "Up one folder" }).click();
  await page.locator('tr[data-object="one.txt"]').waitFor();
  await page.getByLabel("Select one.txt").check();
  await page.getByLabel("Select two.txt").check();
  await page.getByRole("button", { name: "Delete selected (2)" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Delete" }).click();
  await page.getByText("Deleted 2 objects").waitFor();
  await page.locator('tr[data-object="one.txt"]').waitFor({ state: "detached" });
  await page.locator('tr[data-object="two.txt"]').waitFor({ state: "detached" });
  await page.locator('tr[data-prefix="dir/"]').waitFor();
  await shot(page, "bucket-browser-after-delete");
  // A viewer sees the objects, with upload and delete disabled and the reason given.
  const vctx = await browser.newContext({ viewport: { width: 390, height: 844 }, colorScheme: "dark", isMobile: true, hasTouch: true });
  const vpage = await vctx.newPage();
  try {
    await login(vpage, "e2e-viewer", "viewer-password-1", `/buckets/${bucket}`);
    await vpage.waitForURL(`${server.url}/buckets/${bucket}`);
    await vpage.locator('tr[data-prefix="dir/"]').waitFor();
    for (const name of ["Upload files", "New folder", /^Delete selected/]) {
      const b = vpage.getByRole("button", { name });
      assert(await b.isDisabled(), `${name} is enabled for a viewer`);
      assert(((await b.getAttribute("title")) ?? "").includes("viewer"), `${name} gives no reason`);
    }
    assert(await vpage.getByTestId("upload-input").isDisabled(), "the file input is enabled for a viewer");
    await shot(vpage, "viewer-bucket-browser-phone");
  } finally {
    await vctx.close();
  }
}

async function cleanup() {
  try {
    await browser?.close();
  } catch {
    // already gone
  }
  if (server) {
    // Delete whatever instances remain so no container outlives the test.
    try {
      let cursor;
      do {
        const page = await apiCall("GET", `/v1/instances?limit=1000${cursor ? `&cursor=${cursor}` : ""}`);
        await pool(page.items, 8, (i) => apiCall("DELETE", `/v1/instances/${i.id}?force=true`).catch(() => {}));
        cursor = page.next_cursor;
      } while (cursor);
      for (let n = 0; n < 60; n++) {
        const left = await apiCall("GET", "/v1/instances?limit=1");
        if (left.items.length === 0) break;
        await new Promise((ok) => setTimeout(ok, 500));
      }
    } catch (e) {
      log(`cleanup: ${e}`);
    }
    server.child.kill("SIGTERM");
    await new Promise((ok) => {
      const t = setTimeout(() => {
        server.child.kill("SIGKILL");
        ok();
      }, 10_000);
      server.child.on("exit", () => {
        clearTimeout(t);
        ok();
      });
    });
    rmSync(server.data, { recursive: true, force: true });
    removeNetworks(server.table);
  }
}

try {
  await main();
} catch (e) {
  results.push({ name: "setup", ok: false, error: e });
  log(`FAIL setup: ${e?.stack ?? e}`);
} finally {
  await cleanup();
}
if (Object.keys(figures).length) writeFileSync(join(ARTIFACTS, "figures.json"), JSON.stringify(figures, null, 2));
const failed = results.filter((r) => !r.ok);
console.log(`e2e: ${results.length - failed.length} passed, ${failed.length} failed`);
process.exit(failed.length ? 1 : 0);
