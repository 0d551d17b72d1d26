// The console's own lint rule, run by the real oxlint over a fixture.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect, test } from "vitest";

const web = join(dirname(fileURLToPath(import.meta.url)), "..");

test("effect-returns-nothing reports effects that return a value, and only those", () => {
  const fixture = "lint/fixtures/effects.tsx";
  // The fixture is in the config's ignorePatterns (it is wrong on purpose): lint it
  // with a config that has only this rule.
  const run = spawnSync(
    join(web, "node_modules/.bin/oxlint"),
    ["-c", "lint/fixtures/oxlintrc.json", "--format", "json", fixture],
    { cwd: web, encoding: "utf8" },
  );
  expect(run.error).toBeUndefined();
  const report = JSON.parse(run.stdout) as { diagnostics: { code: string; labels: { span: { line: number } }[] }[] };
  const lines = report.diagnostics.map((d) => {
    expect(d.code).toBe("roost(effect-returns-nothing)");
    return d.labels[0]!.span.line;
  });
  const bad = readFileSync(join(web, fixture), "utf8")
    .split("\n")
    .flatMap((l, i) => (l.includes("// BAD") ? [i + 1] : []));
  expect(bad.length).toBe(4);
  expect(lines.sort((a, b) => a - b)).toEqual(bad);
  expect(run.status).not.toBe(0);
});
