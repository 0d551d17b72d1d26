// The console's end-to-end tests: @playwright/test driving Debian's chromium against a
// real `roost server` with real runc instances (started by global-setup.mjs).
// Run through `node web/e2e/run.mjs`, which prints the suite's summary line.
import { defineConfig } from "@playwright/test";
import { join } from "node:path";
import { ARTIFACTS, HERE, LAUNCH_OPTIONS } from "./env.mjs";

export default defineConfig({
  testDir: HERE,
  testMatch: /.*\.spec\.mjs$/,
  // One browser at a time against one server: the machine has 2 cores, and the tests
  // time nothing but still should not starve the server.
  workers: 1,
  fullyParallel: false,
  // A failure is a failure: no retry hides a flaky one.
  retries: 0,
  forbidOnly: true,
  timeout: 180_000,
  expect: { timeout: 15_000 },
  outputDir: join(ARTIFACTS, "test-results"),
  globalSetup: join(HERE, "global-setup.mjs"),
  reporter: [["list"], [join(HERE, "summary-reporter.mjs")]],
  use: {
    launchOptions: LAUNCH_OPTIONS,
    viewport: { width: 1280, height: 800 },
    colorScheme: "light",
    actionTimeout: 30_000,
    navigationTimeout: 30_000,
    screenshot: "only-on-failure",
    trace: process.env.E2E_TRACE ? "retain-on-failure" : "off",
  },
  projects: [{ name: "chromium" }],
});
