// Gradient checking in float64: autodiff gradients (interpreted) against central finite
// differences of the interpreted loss, over sampled entries of each parameter.
import { trainingGraph } from "../../compiler/autodiff/grad.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import { graph, numel, type Node } from "../../compiler/ir/node.ts";
import { verifyGraph } from "../../compiler/ir/verify.ts";
import { Random } from "../../runtime/random.ts";
import { assertClose } from "../support/numeric.ts";
import * as assert from "uvu/assert";

function lossAt(loss: Node, feeds: Map<string, Float64Array>): number {
  const out = interpret(graph([["loss", loss]]), feeds);
  assert.ok(out.ok, "the loss graph must interpret");
  return out.value.get("loss")![0];
}

/**
 * Asserts ‖autodiff − finite difference‖/‖finite difference‖ < tolerance for each parameter,
 * on up to `samples` random entries per tensor (all entries when the tensor is smaller).
 */
export function checkGradients(loss: Node, params: readonly Node[], feeds: Map<string, Float64Array>, opts: { samples: number; tolerance: number; seed: number; label: string }): void {
  const train = trainingGraph(loss, params);
  assert.ok(train.ok, "autodiff must succeed");
  assert.equal(verifyGraph(train.value.graph), [], "the training graph must verify");
  const grads = interpret(train.value.graph, feeds);
  assert.ok(grads.ok);
  const rng = new Random(opts.seed);
  const h = 1e-5;
  for (const p of params) {
    const name = p.attrs.name!;
    const values = feeds.get(name)!;
    const grad = grads.value.get(`grad.${name}`)!;
    const n = numel(p.shape);
    const picks = n <= opts.samples ? [...Array(n).keys()] : Array.from({ length: opts.samples }, () => rng.int(n));
    const numeric = picks.map((i) => {
      const keep = values[i];
      values[i] = keep + h;
      const up = lossAt(loss, feeds);
      values[i] = keep - h;
      const down = lossAt(loss, feeds);
      values[i] = keep;
      return (up - down) / (2 * h);
    });
    assertClose(picks.map((i) => grad[i]), numeric, opts.tolerance, `${opts.label} ${name}`);
  }
}
