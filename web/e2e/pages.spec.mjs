// The console as a whole: every page renders, every page can be left by the sidebar
// without a page error, one page's failure stays inside that page, phone width, and
// signing out.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  INSTANCE, ensureBucket, ensureInstance, ensureSandbox, ensureVolume, expect, login, shot, test, url,
} from "./fixtures.mjs";
import { ADMIN_PASSWORD, WEB } from "./env.mjs";

test("other pages render", async ({ page }) => {
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
    await page.goto(path);
    await page.getByRole("heading", { name: heading, level: 1 }).waitFor();
    await page.waitForLoadState("networkidle").catch(() => {});
    await shot(page, name);
  }
  await page.goto("/audit");
  await page.locator("table tbody tr").first().waitFor();
  const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("link", { name: "Export CSV" }).click()]);
  expect(await download.path(), "a CSV downloaded").toBeTruthy();
});

test("every page can be left through the sidebar without a page error", async ({ page, consoleErrors }) => {
  test.setTimeout(10 * 60_000);
  // One of each resource, for the detail pages.
  await ensureInstance();
  const bucket = `e2e-nav-${process.pid}`;
  await ensureBucket(bucket);
  await ensureVolume("e2e-nav-vol");
  const sandbox = await ensureSandbox();
  // Every route of the console (App.tsx's ROUTES), with a path to open and the heading
  // it shows. A route added there without a row here fails this test.
  const pages = [
    ["/", "/", "Dashboard"],
    ["/instances", "/instances", "Instances"],
    ["/instances/new", "/instances/new", /^Launch an instance/],
    ["/instances/:id", `/instances/${INSTANCE}`, new RegExp(`^${INSTANCE}`)],
    ["/images", "/images", "Images"],
    ["/projects", "/projects", "Projects"],
    ["/projects/:id", "/projects/default", "Project default"],
    ["/users", "/users", "Users"],
    ["/tokens", "/tokens", "API tokens"],
    ["/audit", "/audit", "Audit log"],
    ["/operations", "/operations", "Operations"],
    ["/account", "/account", "Your account"],
    ["/networks", "/networks", "Networks"],
    ["/buckets", "/buckets", "Buckets"],
    ["/buckets/:id", `/buckets/${bucket}`, `Bucket ${bucket}`],
    ["/s3-keys", "/s3-keys", "S3 keys"],
    ["/security-groups", "/security-groups", "Security groups"],
    ["/security-groups/:id", "/security-groups/default", "Security group default"],
    ["/volumes", "/volumes", "Volumes"],
    ["/volumes/:id", "/volumes/e2e-nav-vol", "e2e-nav-vol"],
    ["/ssh-keys", "/ssh-keys", "SSH keys"],
    ["/node", "/node", "Compute node"],
    ["/sandboxes", "/sandboxes", "Sandboxes"],
    ["/sandboxes/:id", `/sandboxes/${sandbox.id}`, sandbox.id],
    ["/sandbox-templates", "/sandbox-templates", "Sandbox templates"],
    ["/system/tasks", "/system/tasks", "System tasks"],
  ];
  const app = readFileSync(join(WEB, "src/App.tsx"), "utf8");
  const routes = [...app.slice(app.indexOf("export const ROUTES")).matchAll(/^\s*\["(\/[^"]*)",/gm)].map((m) => m[1]);
  expect(routes.length).toBeGreaterThan(20);
  expect(pages.map((p) => p[0]).sort()).toEqual([...routes].sort());

  // Where each page's sidebar link leads: the next section's page, so every page is
  // left for another one (and the targets cover the sidebar).
  const nav = page.getByRole("navigation", { name: "Main" });
  const targets = [
    ["Instances", "/instances", "Instances"],
    ["Volumes", "/volumes", "Volumes"],
    ["Networks", "/networks", "Networks"],
    ["Projects", "/projects", "Projects"],
    ["Dashboard", "/", "Dashboard"],
    ["Images", "/images", "Images"],
    ["Buckets", "/buckets", "Buckets"],
    ["Security groups", "/security-groups", "Security groups"],
    ["Audit log", "/audit", "Audit log"],
    ["Sandboxes", "/sandboxes", "Sandboxes"],
    ["S3 keys", "/s3-keys", "S3 keys"],
    ["API tokens", "/tokens", "API tokens"],
    ["Templates", "/sandbox-templates", "Sandbox templates"],
    ["SSH keys", "/ssh-keys", "SSH keys"],
    ["Operations", "/operations", "Operations"],
    ["Users", "/users", "Users"],
    ["Node", "/node", "Compute node"],
    ["System tasks", "/system/tasks", "System tasks"],
    ["Account", "/account", "Your account"],
  ];
  let n = 0;
  for (const [route, path, heading] of pages) {
    await page.goto(path);
    await page.getByRole("heading", { name: heading, level: 1 }).waitFor();
    // Let the page's queries and effects run before leaving it.
    await page.waitForLoadState("networkidle").catch(() => {});
    let [label, to, toHeading] = targets[n++ % targets.length];
    if (to === path) [label, to, toHeading] = targets[n++ % targets.length];
    await nav.getByRole("link", { name: label, exact: true }).click();
    await page.waitForURL(url() + to);
    await page.getByRole("heading", { name: toHeading, level: 1 }).waitFor();
    await expect(page.getByTestId("page-error")).toHaveCount(0);
    expect(consoleErrors.unexpected(), `leaving ${route} (${path}) for ${to}`).toEqual([]);
  }
});

test("system tasks: the list, and Run now runs one", async ({ page }) => {
  await page.goto("/system/tasks");
  await page.getByRole("heading", { name: "System tasks", level: 1 }).waitFor();
  const table = page.getByRole("table", { name: "System tasks" });
  for (const name of ["instance_reconciler", "network_sync", "sandbox_expiry", "housekeeping"]) {
    await expect(table.getByText(name, { exact: true })).toBeVisible();
  }
  const row = table.getByRole("row").filter({ has: page.getByText("housekeeping", { exact: true }) });
  const runs = async () => Number(await row.getByRole("cell").nth(6).textContent());
  const before = await runs();
  await row.getByRole("button", { name: "Run housekeeping now" }).click();
  await page.getByText("housekeeping: run asked for").waitFor();
  await expect.poll(runs, { timeout: 30_000 }).toBeGreaterThan(before);
  await expect(row.getByRole("cell").nth(4)).toContainText("ok");
  await shot(page, "system-tasks");
});

test("a page that fails shows an error panel in the layout, and the console keeps working", async ({ page, consoleErrors }) => {
  await ensureInstance();
  // React reports an error its boundary caught on the console: expected here.
  consoleErrors.allow(/^console error .*(The above error occurred|is not a function|dynamically imported module)/s);

  // 1. A render error: the instance list gets an answer of the wrong shape (forced
  // here; a server/console version mismatch would do it).
  await page.goto("/");
  await page.getByRole("heading", { name: "Usage and quota" }).waitFor();
  await page.route(/\/v1\/instances\?/, (route) => route.fulfill({ json: { items: 5, next_cursor: null } }));
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Instances" }).click();
  const panel = page.getByTestId("page-error");
  await panel.getByRole("heading", { name: "This page failed" }).waitFor();
  await expect(panel).toContainText("TypeError");
  await expect(page.getByRole("navigation", { name: "Main" })).toBeVisible();
  await expect(panel.getByRole("button", { name: "Try again" })).toBeVisible();
  await expect(panel.getByRole("button", { name: "Reload page" })).toBeVisible();
  await shot(page, "page-error");
  // The minified stack maps back to the sources through the hidden source maps.
  const stack = await panel.getByTestId("page-error-stack").textContent();
  expect(stack).toMatch(/\/assets\/[\w-]+\.js:\d+:\d+/);
  const mapped = execFileSync(process.execPath, [join(WEB, "scripts/map-stack.mjs")], { input: stack }).toString();
  expect(mapped, mapped).toMatch(/src\/pages\/Instances\.tsx:\d+:\d+/);
  // The maps are not served.
  const mapName = stack.match(/\/assets\/([\w-]+\.js):\d+/)[1];
  const map = await page.request.get(`/assets/${mapName}.map`);
  expect(map.status()).toBe(404);
  // Navigation keeps working, and leaving the page resets the panel.
  await page.unroute(/\/v1\/instances\?/);
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Dashboard" }).click();
  await page.getByRole("heading", { name: "Usage and quota" }).waitFor();
  await expect(page.getByTestId("page-error")).toHaveCount(0);
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Instances" }).click();
  await page.locator(`tr[data-instance="${INSTANCE}"]`).waitFor();

  // 2. A page whose code cannot be loaded (a stale chunk after an upgrade): the panel
  // says so, and reloading brings the page once its code is there.
  await page.route(/\/assets\/Volumes-[\w-]+\.js$/, (route) => route.abort());
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Volumes" }).click();
  await panel.getByRole("heading", { name: "The console could not load this page's code" }).waitFor();
  await expect(panel).toContainText("reload the page");
  await page.unroute(/\/assets\/Volumes-[\w-]+\.js$/);
  await panel.getByRole("button", { name: "Reload page" }).click();
  await page.getByRole("heading", { name: "Volumes", level: 1 }).waitFor();

  // 3. An API failure names the request id the server logged (on a page not visited
  // yet, so nothing is cached).
  await page.route(/\/v1\/buckets(\?|$)/, (route) =>
    route.fulfill({ status: 503, json: { error: { code: "unavailable", message: "the store is unavailable", request_id: "req-e2e-forced" } } }),
  );
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Buckets" }).click();
  await page.getByRole("heading", { name: "Buckets", level: 1 }).waitFor();
  await expect(page.getByRole("alert").filter({ hasText: "the store is unavailable" }).first()).toContainText("req-e2e-forced");
  await shot(page, "api-error-request-id");
  expect(consoleErrors.filter((e) => e.startsWith("pageerror")), "uncaught errors").toEqual([]);
});

test("phone width", async ({ newContext }) => {
  const m = await newContext({ viewport: { width: 390, height: 844 }, colorScheme: "dark", isMobile: true, hasTouch: true, storageState: process.env.E2E_ADMIN_STATE });
  const p = await m.newPage();
  await p.goto("/");
  await p.getByRole("heading", { name: "Dashboard" }).waitFor();
  const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow, "pixels wider than the phone").toBeLessThanOrEqual(1);
  await shot(p, "phone-dashboard");
  await p.getByRole("button", { name: /Menu/ }).click();
  await p.getByRole("link", { name: "Instances" }).click();
  await p.getByRole("heading", { name: "Instances", level: 1 }).waitFor();
  await shot(p, "phone-instances");
});

test.describe("signed out", () => {
  test.use({ storageState: { cookies: [], origins: [] } });

  test("sign out ends the session", async ({ page }) => {
    // A session of its own: the other scenarios share the setup's.
    await login(page, "admin", ADMIN_PASSWORD, "/");
    await page.getByTestId("whoami").waitFor();
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.waitForURL(`${url()}/login`);
    await page.goto("/audit");
    await page.waitForURL(`${url()}/login?next=%2Faudit`);
    await page.getByRole("button", { name: "Sign in" }).waitFor();
  });
});
