// The PyTorch goldens (spec/golden/make_forward_goldens.py, written per family from models.md)
// against a forward pass that reads only the family declarations: the same logits and SFT loss
// from the weights streamed out of the fixture checkpoints.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { decodeElements } from "../../runtime/checkpoint/dtype.ts";
import { openModelDir } from "../../runtime/checkpoint/model-dir.ts";
import { families, familyNames, type FamilyName } from "../../stdlib/families/index.ts";
import { centralDifference, type Golden } from "../models/support.ts";
import { assertClose } from "../support/numeric.ts";
import { referenceForward, weightKey, type Weights } from "./reference-forward.ts";
import { FIXTURES } from "./support.ts";
import { expectOk } from "../support/result.ts";

/** Mean cross-entropy of logits[t] against labels[t + 1] over the labels that are not -100. */
function sftLoss(logits: Float64Array[][], labels: number[][]): number {
  let total = 0;
  let count = 0;
  logits.forEach((sequence, b) => {
    for (let t = 0; t + 1 < sequence.length; t++) {
      const label = labels[b][t + 1];
      if (label === -100) continue;
      const row = sequence[t];
      const max = Math.max(...row);
      const logSum = Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0)) + max;
      total += logSum - row[label];
      count++;
    }
  });
  return total / count;
}

async function loadFixture(name: FamilyName) {
  const dir = join(FIXTURES, name);
  const family = families[name];
  const { config, bindings, weights: stream } = expectOk(await openModelDir(dir, name));
  const weights: Weights = new Map();
  for await (const result of stream()) {
    const tensor = expectOk(result);
    weights.set(weightKey(tensor.role, tensor.layer), decodeElements(tensor.dtype, tensor.data));
  }
  const golden: Golden = JSON.parse(readFileSync(join(dir, "golden.json"), "utf8"));
  const loss = () => sftLoss(golden.input_ids.map((ids) => referenceForward(family, config, weights, ids)), golden.labels);
  return { family, config, weights, bindings, golden, loss };
}

for (const name of familyNames) {
  test(`${name}: logits and SFT loss from the declared traits match the PyTorch golden`, async () => {
    const { family, config, weights, golden } = await loadFixture(name);
    const logits = golden.input_ids.map((ids) => referenceForward(family, config, weights, ids));
    assertClose(logits.flat(2).flatMap((row) => Array.from(row)), golden.logits.flat(2), 1e-10, `${name} logits`);
    const loss = sftLoss(logits, golden.labels);
    assert.ok(Math.abs(loss - golden.loss) < 1e-10 * golden.loss, `${name}: loss ${loss} vs ${golden.loss}`);
  });

  test(`${name}: the golden gradients of two norm weights agree with central finite differences`, async () => {
    const { weights, bindings, golden, loss } = await loadFixture(name);
    const step = 1e-5;
    for (const [tensorName, { role, layer }] of bindings) {
      if (role !== "final_norm.weight" && !(role === "attn_norm.weight" && layer === 0)) continue;
      const values = golden.grads[tensorName].values!;
      const w = weights.get(weightKey(role, layer))!;
      const numeric = [0, 1].map((i) => centralDifference(w, i, step, loss));
      assertClose(numeric, values.slice(0, 2), 1e-6, `${name} d loss / d ${tensorName}[0..1]`);
    }
  });
}

test.run();
