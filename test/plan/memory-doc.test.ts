// docs/memory.md's table is the output of compiler/plan/memory-table.ts: the Baichuan-7B QLoRA
// case at sequence 512 (the design's 6 GB target) is planned again and must read the same.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { formatBytes } from "../../compiler/passes/memory-plan.ts";
import { planCase } from "../../compiler/plan/memory-table.ts";
import { expectOk } from "../support/result.ts";

const root = resolve(import.meta.dirname, "../..");

test("docs/memory.md states the planned Baichuan-7B QLoRA peak at sequence 512, batch 1, checkpointed", () => {
  const doc = readFileSync(resolve(root, "docs/memory.md"), "utf8");
  const planned = expectOk(planCase(resolve(root, "pipelines"), { family: "baichuan7b", method: "qlora", seq: 512, checkpointing: true }));
  const peak = planned.plan.training.peak;
  const sentence = `sequence 512, batch 1, gradient checkpointing: peak ${formatBytes(peak)} = ${(peak / 1e9).toFixed(2)} GB`;
  assert.ok(doc.includes(sentence), `the doc should say: ${sentence} (regenerate with node bin/run-ts.js compiler/plan/write-memory-table.ts)`);
  const row = doc.split("\n").find((l) => l.startsWith("| baichuan7b | qlora") && l.includes("| on |"));
  assert.ok(row?.includes(`| ${(peak / 2 ** 30).toFixed(1)} (`), row);
});

test.run();
