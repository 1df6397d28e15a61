// Reverse-mode autodiff over the op graph. Gradients are built only along paths from the chosen
// parameters to the loss: a frozen weight whose branch does not lead to a trainable one gets no
// backward nodes at all (LoRA relies on this). Fan-out gradients accumulate by `add`.
import { diag, fail, ok, type Result } from "../diagnostics.ts";
import * as b from "../ir/build.ts";
import { graph, topoSort, type Graph, type Node } from "../ir/node.ts";
import { chunkLoss } from "../passes/chunk-loss.ts";
import { backwardRule, isDifferentiableInput } from "./rules.ts";

/** A forward graph with its loss and the gradient of every trainable parameter. */
export interface TrainingGraph {
  /**
   * Outputs `grad.<param name>` from the last parameter to the first (the order the backward
   * produces them, which the scheduler follows), then `loss`: launches are ordered depth-first
   * from the outputs, and a loss head in chunks (chunk-loss.ts) must reach each chunk's gradient
   * from the backward, not every chunk's loss first.
   */
  graph: Graph;
  loss: Node;
  /** Parameter node to its gradient node. */
  grads: Map<Node, Node>;
  /** Every node of the forward pass (the loss and its ancestors). */
  forward: ReadonlySet<Node>;
}

/** Gradients of the scalar `loss` with respect to each of `params`. */
export function gradients(loss: Node, params: readonly Node[]): Result<Map<Node, Node>> {
  const order = topoSort([loss]);
  const inGraph = new Set(order);
  for (const p of params) {
    if (p.op !== "param" || !inGraph.has(p)) {
      const what = p.op === "param" ? `the parameter '${p.attrs.name}' does not reach the loss` : `node %${p.id} (${p.op}) is not a parameter`;
      return fail(diag("SFT4004", `Cannot differentiate: ${what}.`, { where: p.attrs.name, hint: "Train only parameters that the loss depends on." }));
    }
  }
  if (loss.shape.length !== 0) return fail(diag("SFT4004", `The loss must be a scalar, got shape [${loss.shape}].`, { hint: "Reduce the loss with a mean or a sum." }));

  const wanted = new Set(params);
  const needsGrad = new Set<Node>();
  for (const n of order) if (wanted.has(n) || n.inputs.some((i) => needsGrad.has(i))) needsGrad.add(n);

  const pending = new Map<Node, Node[]>([[loss, [b.constant(1, [], loss.dtype)]]]);
  const result = new Map<Node, Node>();
  for (let k = order.length - 1; k >= 0; k--) {
    const n = order[k];
    const parts = pending.get(n);
    if (!parts || !needsGrad.has(n)) continue;
    pending.delete(n);
    const g = parts.reduce((acc, p) => b.add(acc, p));
    if (wanted.has(n)) result.set(n, g);
    n.inputs.forEach((x, i) => {
      if (!needsGrad.has(x) || !isDifferentiableInput(n, i)) return;
      const list = pending.get(x) ?? [];
      list.push(backwardRule(n, g, i));
      pending.set(x, list);
    });
  }
  // a parameter reached only through non-differentiable inputs gets a zero gradient
  return ok(new Map(params.map((p) => [p, result.get(p) ?? b.fill(0, p)])));
}

/** Output `grad.<name>` of a training graph: the gradient of trained tensor `name`. */
export const GRAD_OUTPUT = "grad.";

/**
 * The training graph of `loss` for the trainable `params`; a frozen linear head's loss is computed
 * in chunks of rows whose logits take at most `lossChunkBytes` (chunk-loss.ts).
 */
export function trainingGraph(forwardLoss: Node, params: readonly Node[], options: { lossChunkBytes?: number } = {}): Result<TrainingGraph> {
  const loss = chunkLoss(forwardLoss, new Set(params), options.lossChunkBytes);
  const grads = gradients(loss, params);
  if (!grads.ok) return grads;
  const outputs: [string, Node][] = [...[...params].reverse().map((p): [string, Node] => [GRAD_OUTPUT + p.attrs.name, grads.value.get(p)!]), ["loss", loss]];
  return ok({ graph: graph(outputs), loss, grads: grads.value, forward: new Set(topoSort([loss])) });
}
