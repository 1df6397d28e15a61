// Gradient checkpointing: the backward reads recomputed copies of forward activations instead of
// the originals, rebuilt from a few kept tensors (the layer inputs, and values computed from
// inputs alone). The originals then die right after the forward uses them, and the scheduler
// places each recomputation next to the backward step that needs it, which lowers the planned peak.
import { withInputs } from "../ir/build.ts";
import { LEAF_OPS, graph, topoSort, type Graph, type Node } from "../ir/node.ts";

/**
 * Rewrites `g` so that backward nodes read recomputed forward values. `forwardOutput` names the
 * loss output (its ancestors are the forward pass); `keep` are the forward tensors that are stored
 * (checkpoints). Forward nodes downstream of the last checkpoint are stored too: recomputing the
 * head right before its own backward would save nothing.
 */
export function checkpoint(g: Graph, keep: readonly Node[], forwardOutput = "loss"): Graph {
  const loss = g.outputs.get(forwardOutput)!;
  const forward = new Set(topoSort([loss]));
  const stored = new Set(keep);
  const tail = new Set<Node>();
  const last = keep[keep.length - 1];
  for (const n of forward) if (n === last || n.inputs.some((i) => tail.has(i))) tail.add(n);

  // values computed from inputs and constants alone (the shifted labels) are kept: they are small,
  // and a recomputed copy would part the loss from its gradient, which share one launch
  const dataOnly = new Set<Node>();
  for (const n of forward) if (n.op === "input" || n.op === "const" || (n.inputs.length && n.inputs.every((i) => dataOnly.has(i)))) dataOnly.add(n);
  const recomputed = new Map<Node, Node>();
  const recompute = (f: Node): Node => {
    if (stored.has(f) || tail.has(f) || dataOnly.has(f) || LEAF_OPS.has(f.op)) return f;
    let copy = recomputed.get(f);
    if (!copy) {
      copy = withInputs(f, f.inputs.map(recompute));
      recomputed.set(f, copy);
    }
    return copy;
  };
  const rebuilt = new Map<Node, Node>();
  for (const n of topoSort(g.outputs.values())) {
    if (forward.has(n)) continue;
    const inputs = n.inputs.map((i) => (forward.has(i) ? recompute(i) : rebuilt.get(i)!));
    rebuilt.set(n, inputs.every((x, i) => x === n.inputs[i]) ? n : withInputs(n, inputs));
  }
  return graph([...g.outputs].map(([name, n]) => [name, forward.has(n) ? n : rebuilt.get(n)!]));
}
