// Damaged files never crash the loader: random byte flips and cuts of real checkpoints either
// still load or give an SFT51xx error value. Any thrown exception fails the test.
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { openCheckpoint } from "../../runtime/checkpoint/checkpoint.ts";
import { Random } from "../../runtime/random.ts";
import { FIXTURES } from "./support.ts";

const ROUNDS = 300;

/** Opens and fully streams the checkpoint in `dir`; returns the first error code, or "ok". */
async function loadAll(dir: string): Promise<string> {
  const opened = await openCheckpoint(dir);
  if (!opened.ok) return opened.diagnostics[0].code;
  for await (const result of opened.value.stream()) if (!result.ok) return result.diagnostics[0].code;
  return "ok";
}

function damage(original: Uint8Array, random: Random): Uint8Array {
  const bytes = original.slice();
  if (random.uniform() < 0.3) return bytes.subarray(0, random.int(bytes.length));
  const flips = 1 + random.int(4);
  for (let i = 0; i < flips; i++) bytes[random.int(bytes.length)] = random.int(256);
  return bytes;
}

for (const [label, source, file] of [
  ["torch zip", join(FIXTURES, "special", "views"), "pytorch_model.bin"],
  ["safetensors", join(FIXTURES, "chatglm2-safetensors"), "model-00002-of-00002.safetensors"],
] as const) {
  test(`${ROUNDS} damaged copies of a ${label} file load or fail with SFT51xx, never throw`, async () => {
    const random = new Random(20240611);
    const original = new Uint8Array(readFileSync(join(source, file)));
    const outcomes = new Map<string, number>();
    for (let round = 0; round < ROUNDS; round++) {
      const dir = mkdtempSync(join(tmpdir(), "sftc-fuzz-"));
      if (label === "safetensors") {
        for (const other of ["model.safetensors.index.json", "model-00001-of-00002.safetensors"]) writeFileSync(join(dir, other), readFileSync(join(source, other)));
      }
      writeFileSync(join(dir, file), damage(original, random));
      const outcome = await loadAll(dir);
      assert.ok(outcome === "ok" || outcome.startsWith("SFT51"), `round ${round}: ${outcome}`);
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    }
    console.log(`    ${label}: ${[...outcomes].map(([k, v]) => `${k} ${v}`).join(", ")}`);
    assert.ok(outcomes.size > 2, "the damage produced several kinds of outcome");
  });
}

test.run();
