#!/usr/bin/env node
// Test runner: every test/**/*.test.ts file (or those whose path contains one of the given
// words) runs in one process through uvu; the last line printed is `N passed, M failed`.
import { register } from "tsx/esm/api";
import { existsSync, readdirSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { pathToFileURL } from "node:url";

register();
const root = resolve(import.meta.dirname, "..");
// kernel tuning (on a GPU that has something to tune) writes here, never into the user's cache
process.env.SFT_TUNING_CACHE ??= join(tmpdir(), "sftc-test-kernel-tuning.json");
const filters = process.argv.slice(2);

function findTests(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...findTests(path));
    else if (name.endsWith(".test.ts")) out.push(path);
  }
  return out;
}

const files = findTests(join(root, "test")).filter(
  (f) => filters.length === 0 || filters.some((w) => relative(root, f).includes(w)),
);

globalThis.UVU_DEFER = 1;
const uvu = await import("uvu");
let passed = 0;
let failed = 0;
let brokenFiles = 0;

for (const file of files) {
  const name = relative(root, file);
  const before = globalThis.UVU_QUEUE.length;
  globalThis.UVU_QUEUE.push([name]);
  try {
    await import(pathToFileURL(file).href);
  } catch (err) {
    brokenFiles++;
    console.error(`\n  FAIL ${name}: the file did not load\n  ${err?.stack ?? err}\n`);
    globalThis.UVU_QUEUE.length = before;
  }
}

// Count tests as they finish: each queued entry returns [errors, ran, skipped, total].
for (const group of globalThis.UVU_QUEUE) {
  for (let i = 1; i < group.length; i++) {
    const run = group[i];
    group[i] = async () => {
      const result = await run();
      const [errors, ran, , total] = result;
      passed += ran;
      failed += total - ran;
      if (errors.length && total === ran) failed++; // a suite hook failed
      return result;
    };
  }
}

await uvu.exec(false);

// GPU tests share one device; release it so the process can exit cleanly.
const devicePath = join(root, "runtime", "gpu", "device.ts");
if (existsSync(devicePath)) {
  const device = await import(pathToFileURL(devicePath).href);
  await device.closeSharedDevice?.();
}
failed += brokenFiles;
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
