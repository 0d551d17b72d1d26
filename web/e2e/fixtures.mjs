// What every scenario gets: a browser context of its own signed in as the admin (unless
// a test says otherwise), the REST API as the admin for setup and checks, and a watch on
// page errors and console errors that fails the scenario that caused them. Each
// scenario ensures the state it needs itself (ensureInstance, ensureViewer, …), so one
// failure does not cascade into the next.
import { test as base, expect } from "@playwright/test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ARTIFACTS, FIGURES } from "./env.mjs";

export { expect };

export const INSTANCE = "e2e-web";
export const VIEWER = { name: "e2e-viewer", password: "viewer-password-1" };

export function url() {
  const u = process.env.E2E_URL;
  if (!u) throw new Error("E2E_URL is not set: run the suite through `node web/e2e/run.mjs`");
  return u;
}

/** A call to the REST API as the admin (bearer token). Throws on a non-2xx answer. */
export async function api(method, path, body) {
  const res = await apiResponse(method, path, body);
  const text = await res.text();
  let data;
  try {
    data = text ? JSON.parse(text) : undefined;
  } catch {
    data = text;
  }
  if (!res.ok) {
    const err = new Error(`${method} ${path}: ${res.status} ${text}`);
    err.status = res.status;
    throw err;
  }
  return data;
}

export function apiResponse(method, path, body) {
  return fetch(url() + path, {
    method,
    headers: { Authorization: `Bearer ${process.env.E2E_TOKEN}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
}

/** Like api(), but an answer with status `ok` (e.g. 409: it exists) is fine too. */
export async function apiTolerating(ok, method, path, body) {
  try {
    return await api(method, path, body);
  } catch (e) {
    if (e.status === ok) return undefined;
    throw e;
  }
}

export async function sleep(ms) {
  await new Promise((ok) => setTimeout(ok, ms));
}

/** Polls `check` (which returns a truthy value when done) until `timeout` ms pass. */
export async function eventually(what, check, timeout = 60_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(500);
  }
}

/** A busybox instance printing "tick-hi" every second, running; created when missing. */
export async function ensureInstance(name = INSTANCE, { running = true } = {}) {
  const got = await apiResponse("GET", `/v1/instances/${name}`);
  if (got.status === 404) {
    await api("POST", "/v1/instances", {
      name,
      image: "busybox",
      cpus: 0.25,
      memory_bytes: 64 * 1024 * 1024,
      command: ["sh", "-c", "while true; do echo tick-$GREETING; sleep 1; done"],
      env: { GREETING: "hi" },
      labels: { app: "e2e" },
    });
  } else if (!got.ok) {
    throw new Error(`GET /v1/instances/${name}: ${got.status} ${await got.text()}`);
  }
  if (!running) return api("GET", `/v1/instances/${name}`);
  return eventually(`${name} to run`, async () => {
    const i = await api("GET", `/v1/instances/${name}`);
    if (i.status === "running") return i;
    if (i.status === "stopped" || i.status === "created" || i.status === "failed") {
      await apiTolerating(409, "POST", `/v1/instances/${name}/start`);
    }
    return null;
  });
}

/** A user who is a viewer of the default project. */
export async function ensureViewer() {
  await apiTolerating(409, "POST", "/v1/users", { name: VIEWER.name, role: "operator", password: VIEWER.password, projects: [] });
  await api("PUT", `/v1/projects/default/members/${VIEWER.name}`, { role: "viewer" });
}

export async function ensureProject(name, description = "e2e") {
  await apiTolerating(409, "POST", "/v1/projects", { name, description });
}

export async function ensureVolume(name, size_bytes = 64 * 1024 * 1024) {
  if ((await apiResponse("GET", `/v1/volumes/${name}`)).status === 404) {
    await api("POST", "/v1/volumes", { name, size_bytes });
  }
}

/** A bucket holding `docs/readme.txt` (put through the REST object API). */
export async function ensureBucket(name) {
  if ((await apiResponse("GET", `/v1/buckets/${name}`)).status === 404) {
    await api("POST", "/v1/buckets", { name });
  }
  const put = await fetch(`${url()}/v1/buckets/${name}/objects/docs/readme.txt`, {
    method: "PUT",
    headers: { Authorization: `Bearer ${process.env.E2E_TOKEN}`, "Content-Type": "text/plain" },
    body: "a folder for the browser\n",
  });
  if (!put.ok) throw new Error(`PUT docs/readme.txt into ${name}: ${put.status} ${await put.text()}`);
}

export async function ensureSecurityGroup(name) {
  if ((await apiResponse("GET", `/v1/security-groups/${name}`)).status === 404) {
    await api("POST", "/v1/security-groups", { name });
  }
}

/** A running sandbox in project `project` (the first one builds the `base` template). */
export async function ensureSandbox(project = "e2e-sbx") {
  await ensureProject(project, "sandbox page");
  const { id } = await api("GET", `/v1/projects/${project}`);
  const running = (await api("GET", `/v1/sandboxes?project=${id}&limit=1000`)).items.find((s) => s.project_id === id && s.state === "running");
  return running ?? api("POST", "/v1/sandboxes", { template: "base", ttl_secs: 3600, project });
}

export async function shot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: false });
}

/** Adds `values` to target/e2e-artifacts/figures.json (the global setup starts it). */
export function recordFigures(values) {
  let figures = {};
  try {
    figures = JSON.parse(readFileSync(FIGURES, "utf8"));
  } catch {
    figures = {};
  }
  writeFileSync(FIGURES, JSON.stringify({ ...figures, ...values }, null, 2));
}

export async function login(page, user, password, next = "/") {
  await page.goto(url() + next);
  await page.waitForURL(/\/login/);
  await page.getByLabel("Username").fill(user);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
}

/** Collects a context's page errors and console errors (not Chromium's "Failed to load
 * resource" lines: some 4xx answers are expected, such as 401 before login). */
function watch(context, errors) {
  context.on("weberror", (e) => errors.push(`pageerror on ${e.page()?.url() ?? "?"}: ${e.error().stack ?? e.error().message}`));
  context.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) {
      errors.push(`console error on ${m.page()?.url() ?? "?"}: ${m.text()}`);
    }
  });
}

export const test = base.extend({
  baseURL: async ({}, use) => use(url()),
  storageState: async ({}, use) => use(process.env.E2E_ADMIN_STATE),

  // Errors seen by any page of the test's contexts; the test fails with them unless it
  // allows them (`consoleErrors.allow(/pattern/)`), and may check them as it goes.
  consoleErrors: [
    async ({}, use) => {
      const errors = [];
      const allowed = [];
      errors.allow = (re) => allowed.push(re);
      errors.unexpected = () => errors.filter((e) => !allowed.some((re) => re.test(e)));
      await use(errors);
      expect(errors.unexpected(), "page errors and console errors").toEqual([]);
    },
    { auto: true },
  ],

  context: async ({ context, consoleErrors }, use) => {
    watch(context, consoleErrors);
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: url() });
    await use(context);
  },

  // Another browser context (a viewer, a phone, a cold cache), watched like the first
  // and closed at the end.
  newContext: async ({ browser, consoleErrors }, use) => {
    const made = [];
    await use(async (options = {}) => {
      // Signed out unless `options` says otherwise (the test's own storage state would
      // apply to a new context too).
      const c = await browser.newContext({ baseURL: url(), storageState: { cookies: [], origins: [] }, ...options });
      watch(c, consoleErrors);
      made.push(c);
      return c;
    });
    for (const c of made) await c.close().catch(() => {});
  },
});
