// Resources beside instances: security groups and networks, tokens, image import by
// upload, the audit log, buckets (signed links and the browser), SSH, S3 and sandbox
// keys, and a sandbox's page.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  VIEWER, api, apiResponse, ensureBucket, ensureInstance, ensureProject, ensureSandbox, ensureViewer, expect, login, shot,
  test, url,
} from "./fixtures.mjs";

test("security group rule editor, and the networks page", async ({ page }) => {
  const group = "e2e-rules-sg";
  if ((await apiResponse("GET", `/v1/security-groups/${group}`)).ok) await api("DELETE", `/v1/security-groups/${group}`);
  await page.goto("/security-groups");
  await page.getByRole("link", { name: /^default/ }).waitFor();
  await page.getByRole("button", { name: "Create group" }).click();
  await page.getByLabel("Name", { exact: true }).fill(group);
  await page.getByRole("dialog").getByRole("button", { name: "Create" }).click();
  await page.waitForURL(`${url()}/security-groups/${group}`);
  await page.getByLabel(/^Ports/).fill("90-80");
  await page.getByRole("button", { name: "Add rule" }).click();
  await page.getByText("'90-80' is a reversed range").waitFor();
  await page.getByLabel(/^Ports/).fill("80,443");
  await page.getByLabel("Description").fill("web");
  await page.getByRole("button", { name: "Add rule" }).click();
  await page.getByRole("cell", { name: "80,443", exact: true }).waitFor();
  const g = await api("GET", `/v1/security-groups/${group}`);
  expect(g.rules.some((r) => r.ports === "80,443" && r.protocol === "tcp" && r.direction === "ingress"), JSON.stringify(g.rules)).toBe(true);
  await shot(page, "security-group");
  // The networks page: the default network once by name, its DNS column.
  await ensureInstance();
  await page.goto("/networks");
  const table = page.getByRole("table", { name: "Networks" });
  const row = table.locator("tr", { has: page.getByRole("cell", { name: /^default/ }) }).first();
  await row.waitFor();
  await expect(row.getByRole("cell").first()).toHaveText("default");
  await expect(table.getByRole("columnheader", { name: "DNS" })).toBeVisible();
  await shot(page, "networks");
});

test("token create shows the secret once", async ({ page }) => {
  await page.goto("/tokens");
  await page.getByRole("button", { name: "Create token" }).click();
  await page.getByLabel("Name", { exact: true }).fill(`e2e-token-${Date.now()}`);
  await page.getByRole("dialog").getByRole("button", { name: "Create" }).click();
  await expect(page.getByTestId("secret")).toHaveText(/^rst_/);
  await shot(page, "tokens");
});

test("import an image by upload", async ({ page }) => {
  const name = "tiny-rootfs";
  if ((await apiResponse("GET", `/v1/images/${name}`)).ok) await api("DELETE", `/v1/images/${name}`);
  // A root filesystem tarball: busybox and a shell link.
  const dir = mkdtempSync(join(tmpdir(), "roost-e2e-rootfs-"));
  try {
    mkdirSync(join(dir, "rootfs/bin"), { recursive: true });
    execFileSync("cp", ["/bin/busybox", join(dir, "rootfs/bin/busybox")]);
    execFileSync("ln", ["-s", "busybox", join(dir, "rootfs/bin/sh")]);
    const tarball = join(dir, `${name}.tar.gz`);
    execFileSync("tar", ["-czf", tarball, "-C", join(dir, "rootfs"), "."]);
    await page.goto("/images");
    await page.getByRole("button", { name: "Import tarball" }).click();
    await page.getByLabel(/^Tarball/).setInputFiles(tarball);
    await expect(page.getByLabel("Name", { exact: true }), "the name comes from the file").toHaveValue(name);
    await page.getByRole("dialog").getByRole("button", { name: "Import" }).click();
    await page.getByText(`Imported ${name}`).waitFor({ timeout: 30_000 });
    await page.locator("tr", { hasText: name }).locator('[data-status="ready"]').waitFor();
    await shot(page, "images-imported");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("audit log filters", async ({ page }) => {
  await ensureInstance();
  await page.goto("/audit");
  await page.getByLabel("Action").fill("instance.");
  await page.waitForFunction(() => {
    const cells = [...document.querySelectorAll("tbody tr td:nth-child(4)")].map((td) => td.textContent);
    return cells.length > 0 && cells.every((a) => a.startsWith("instance."));
  }, null, { timeout: 10_000 });
  await shot(page, "audit-filtered");
});

test("buckets: create, upload and download through signed links", async ({ page, context }) => {
  const bucket = `e2e-bucket-${process.pid}`;
  if ((await apiResponse("GET", `/v1/buckets/${bucket}`)).ok) await api("DELETE", `/v1/buckets/${bucket}?force=true`);
  // A project of its own, so the page starts empty whatever other scenarios made.
  await ensureProject("e2e-buckets", "an empty project");
  await context.addInitScript(() => localStorage.setItem("roost_project", "e2e-buckets"));
  await page.goto("/buckets");
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
  expect(putUrl, `a URL in ${curl}`).toBeTruthy();
  const body = `hello from the console e2e ${Date.now()}`;
  const put = await fetch(putUrl, { method: "PUT", body });
  expect(put.ok, `PUT ${put.status} ${await put.text()}`).toBe(true);
  await page.keyboard.press("Escape");
  // Download through the console's signed GET link.
  await row.getByRole("button", { name: "Download link" }).click();
  await page.getByLabel("Object key").fill("docs/hello.txt");
  await page.getByRole("button", { name: "Sign a link" }).click();
  const href = await page.getByTestId("download-link").getAttribute("href");
  const got = await fetch(href);
  expect(got.ok, `GET ${got.status}`).toBe(true);
  expect(await got.text()).toBe(body);
  await shot(page, "bucket-download-link");
  await page.keyboard.press("Escape");
  await page.reload();
  await page.locator("tr", { hasText: bucket }).getByRole("cell", { name: "1", exact: true }).waitFor();
  await shot(page, "buckets");
});

test("bucket browser: uploads, a folder, metadata, download, delete, a viewer", async ({ page, newContext }) => {
  const bucket = `e2e-browse-${process.pid}`;
  if ((await apiResponse("GET", `/v1/buckets/${bucket}`)).ok) await api("DELETE", `/v1/buckets/${bucket}?force=true`);
  await ensureBucket(bucket);
  await ensureViewer();
  await page.goto("/buckets");
  await page.getByRole("link", { name: bucket }).click();
  await page.waitForURL(`${url()}/buckets/${bucket}`);
  await page.locator('tr[data-prefix="docs/"]').waitFor();
  // Upload through the file picker: the progress bar finishes and the object is listed.
  const one = Buffer.from(`first file ${Date.now()}\n`);
  await page.getByTestId("upload-input").setInputFiles({ name: "one.txt", mimeType: "text/plain", buffer: one });
  await page.locator('li[data-upload="one.txt"][data-state="done"]').waitFor();
  await expect(page.getByRole("progressbar", { name: "Upload of one.txt" }), "the progress bar finished").toHaveAttribute("value", "1");
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
  expect(metaText.includes("text/plain") && metaText.includes(String(x.length)) && metaText.includes("ETag"), `metadata: ${metaText}`).toBe(true);
  await shot(page, "bucket-object-metadata");
  await page.keyboard.press("Escape");
  // Download by clicking; the bytes are the ones uploaded.
  const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("link", { name: "Download x.txt" }).click()]);
  const got = readFileSync(await download.path());
  expect(Buffer.compare(got, x), `downloaded ${got.length} bytes, uploaded ${x.length}`).toBe(0);
  expect(download.suggestedFilename()).toBe("x.txt");
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
  const vctx = await newContext({ viewport: { width: 390, height: 844 }, colorScheme: "dark", isMobile: true, hasTouch: true });
  const vpage = await vctx.newPage();
  await login(vpage, VIEWER.name, VIEWER.password, `/buckets/${bucket}`);
  await vpage.waitForURL(`${url()}/buckets/${bucket}`);
  await vpage.locator('tr[data-prefix="dir/"]').waitFor();
  for (const name of ["Upload files", "New folder", /^Delete selected/]) {
    const b = vpage.getByRole("button", { name });
    await expect(b, `${name} for a viewer`).toBeDisabled();
    expect((await b.getAttribute("title")) ?? "", `${name} gives a reason`).toContain("viewer");
  }
  await expect(vpage.getByTestId("upload-input"), "the file input for a viewer").toBeDisabled();
  await shot(vpage, "viewer-bucket-browser-phone");
});

test("SSH key: generated, the private key shown once", async ({ page }) => {
  const name = `e2e-key-${Date.now()}`;
  await page.goto("/ssh-keys");
  await page.getByRole("button", { name: "Add SSH key" }).click();
  await page.getByLabel("Name").fill(name);
  await page.getByRole("dialog").getByRole("button", { name: "Generate" }).click();
  await expect(page.getByTestId("secret")).toHaveText(/^-----BEGIN OPENSSH PRIVATE KEY-----/);
  await page.locator("tr", { hasText: name }).getByText("ssh-ed25519").waitFor();
  await shot(page, "ssh-keys");
});

test("S3 key: the secret once, with its access key id", async ({ page }) => {
  await page.goto("/s3-keys");
  await page.getByRole("button", { name: "Create S3 key" }).click();
  await page.getByLabel("Description").fill("e2e");
  await page.getByRole("dialog").getByRole("button", { name: "Create" }).click();
  const secret = await page.getByTestId("secret").textContent();
  expect(secret.length, `secret ${secret}`).toBe(40);
  await shot(page, "s3-keys");
  await page.getByRole("button", { name: "I have stored it" }).click();
  await expect(page.getByTestId("secret"), "the secret is gone").toHaveCount(0);
});

test("sandbox key: revoked from the keys list", async ({ page }) => {
  const name = `e2e-sbk-${Date.now()}`;
  const created = await api("POST", "/v1/sandbox-keys", { name });
  await page.goto("/sandboxes");
  const row = page.getByRole("table", { name: "Sandbox keys" }).locator("tr", { hasText: name });
  await row.waitFor();
  await row.getByRole("button", { name: `Revoke key ${name}` }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Revoke" }).click();
  await page.getByText(`Revoked key ${name}`).waitFor();
  await row.waitFor({ state: "detached" });
  const keys = (await api("GET", "/v1/sandbox-keys?limit=1000")).items;
  expect(keys.some((k) => k.id === created.key.id), "the key is still listed").toBe(false);
});

test("sandbox page: a file in the browser, upload, terminal, processes", async ({ page }) => {
  test.setTimeout(10 * 60_000);
  const sbx = await ensureSandbox();
  const put = await fetch(`${url()}/v1/sandboxes/${sbx.id}/files?path=/root/hello-e2e.txt`, {
    method: "PUT",
    headers: { Authorization: `Bearer ${process.env.E2E_TOKEN}`, "Content-Type": "application/octet-stream" },
    body: "from the api\n",
  });
  expect(put.status, "upload").toBe(204);
  await page.goto("/sandboxes");
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
  const proc = await api("POST", `/v1/sandboxes/${sbx.id}/processes`, { cmd: "sleep", args: ["1000"], tag: "e2e-sleep" });
  await page.getByRole("tab", { name: "Processes" }).click();
  const procs = page.getByRole("table", { name: "Sandbox processes" });
  await procs.getByText("e2e-sleep").waitFor({ timeout: 10_000 });
  await shot(page, "sandbox-processes");
  await procs.getByRole("button", { name: "Send" }).click();
  await page.getByText(`Sent SIGTERM to ${proc.pid}`).waitFor();
  await page.getByText("No background processes").waitFor({ timeout: 15_000 });
});
