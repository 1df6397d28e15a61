// Mutated dataset files never crash a reader: every mutation ends in conversations plus a
// report that accounts for every record, or in a diagnostic.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Random } from "../../runtime/random.ts";
import type { DatasetFormat } from "../../runtime/data/read-dataset.ts";
import { readAll } from "./read-all.ts";

const dir = mkdtempSync(join(tmpdir(), "sftc-fuzz-"));
// Bytes that matter to the scanners: structure, quotes, escapes, newlines, a UTF-8 lead byte.
const interesting = [0x7b, 0x7d, 0x5b, 0x5d, 0x22, 0x5c, 0x2c, 0x3a, 0x0a, 0x0d, 0x20, 0xe4, 0xff, 0x30];

function mutate(original: Buffer, random: Random): Buffer {
  const edits = 1 + random.int(4);
  let out = Buffer.from(original);
  for (let e = 0; e < edits; e++) {
    const at = random.int(out.length);
    const kind = random.int(3);
    if (kind === 0) out[at] = interesting[random.int(interesting.length)];
    else if (kind === 1) out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1 + random.int(8))]);
    else out = out.subarray(0, at); // truncated
  }
  return out;
}

for (const [format, sample] of [
  ["safety", "pipelines/data/samples/safety/instruction_attack_scenarios.json"],
  ["moss003", "pipelines/data/samples/moss003-fnlp.jsonl"],
  ["belle", "pipelines/data/samples/belle.json"],
] as [DatasetFormat, string][]) {
  test(`${format}: 80 mutations of ${sample} never throw and always account for every record`, async () => {
    const original = readFileSync(sample);
    const random = new Random(7);
    for (let n = 0; n < 80; n++) {
      const path = join(dir, `${format}-${n}`);
      writeFileSync(path, mutate(original, random));
      const { report } = await readAll({ format, path, maxBadFraction: 1 }, { chunkBytes: 97 });
      if (report.failed) assert.ok(report.diagnostics.some((d) => d.severity === "error"), `mutation ${n} failed without an error`);
    }
  });
}

test.run();
