// The bundled CLI (what `sftc` runs after setup) behaves like the sources: paths to the install
// (package.json, stdlib, worker sources) and lazily loaded commands must survive bundling.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { execFileSync, spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const root = join(import.meta.dirname, "..", "..");
const outdir = join(root, "node_modules", ".cache", "sftc-bundle-test");

function sftc(...args: string[]) {
  const entry = pathToFileURL(join(outdir, "sftc.mjs")).href;
  const script = `const { main } = await import(${JSON.stringify(entry)}); process.exitCode = await main(${JSON.stringify(args)});`;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { cwd: root, encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test.before(() => {
  rmSync(outdir, { recursive: true, force: true });
  execFileSync(process.execPath, [join(root, "scripts", "build.js"), outdir]);
});

test("the bundle reports the package version", () => {
  const r = sftc("--version");
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /^sftc \d+\.\d+\.\d+ /);
});

test("the bundle checks, explains and tokenizes the quickstart pipeline", () => {
  const check = sftc("check", "pipelines/quickstart.sft");
  assert.is(check.code, 0, check.err);
  const explain = sftc("explain", "pipelines/quickstart.sft");
  assert.is(explain.code, 0, explain.err);
  assert.is(JSON.parse(explain.out).name, "quickstart");
  const tokenize = sftc("tokenize", "pipelines/quickstart.sft", "--text", "晚上睡不着怎么办", "--json");
  assert.is(tokenize.code, 0, tokenize.err);
  assert.ok(JSON.parse(tokenize.out).ids.length > 0);
});

test("the bundle reads datasets (stats) and reports a user error without a stack trace", () => {
  const stats = sftc("data", "stats", "pipelines/quickstart.sft", "--no-cache");
  assert.is(stats.code, 0, stats.err);
  const missing = sftc("check", "pipelines/does-not-exist.sft");
  assert.is(missing.code, 1);
  assert.not.match(missing.err, /\n\s+at /);
});

test.after(() => rmSync(outdir, { recursive: true, force: true }));

test.run();
