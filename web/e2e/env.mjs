// Paths and browser settings shared by the e2e runner, its config, setup and tests.
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";

export const HERE = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(HERE, "../..");
export const WEB = join(ROOT, "web");
export const ROOST_BIN = process.env.ROOST_BIN ?? join(ROOT, "target/debug/roost");
export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
export const ARTIFACTS = process.env.E2E_ARTIFACTS ?? join(ROOT, "target/e2e-artifacts");
export const FIGURES = join(ARTIFACTS, "figures.json");
export const ADMIN_PASSWORD = "e2e-admin-password";
export const BULK = Number(process.env.E2E_BULK ?? 500);
/** This run's own number: its firewall table, address pool and port-forward port derive from it. */
export const RUN = Number(process.env.E2E_RUN ?? process.pid % 50);

// Debian's chromium, headless, with nothing of its own going to the network (no
// component updates, sync, field trials or first-run fetches).
export const LAUNCH_OPTIONS = {
  executablePath: CHROMIUM,
  args: [
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
  ],
};
