// Forward launches that save statistics for their backward (attention's log-sum-exp, a norm's
// rstd and LayerNorm's mean) keep them beside their output only where a backward launch of the
// same schedule reads them: a norm backward reads the latest matching norm before it (a
// checkpointed layer's recomputed one). Elsewhere (an evaluation's or a generation step's
// forward, the first forward of a checkpointed layer) the kernels still write them, but into the
// launch workspace that later launches reuse: the memory plan counts them there
// (launch-scratch.ts) instead of with the output (memory-plan.ts).
import type { Node } from "../ir/node.ts";
import { inputView, type Schedule } from "./schedule.ts";

/** Whether `n` is a forward whose kernels write statistics that only a backward reads. */
export function writesStatistics(n: Node): boolean {
  return n.op === "attention" || n.op === "cached_attention" || isNorm(n);
}

/** Whether norm_backward `backward` reads the statistics of `forward`: a norm of the same input, weight and eps. */
export function normOf(forward: Node, backward: Node): boolean {
  const [, x, w] = backward.inputs;
  return isNorm(forward) && forward.inputs[0] === x && forward.inputs[1] === w && forward.attrs.eps === backward.attrs.eps;
}

/** The forwards of `schedule` whose statistics one of its backward launches reads. */
export function statisticsRead(schedule: Schedule): Set<Node> {
  const read = new Set<Node>();
  const norms: Node[] = []; // the norm forwards so far, in launch order
  for (const launch of schedule.launches)
    for (const n of launch.outputs) {
      if (isNorm(n)) norms.push(n);
      // attention_backward's inputs: dOut, q, k, v, then the forward's output
      if (n.op === "attention_backward") read.add(inputView(launch, n.inputs[4]).base);
      if (n.op === "norm_backward") {
        const latest = latestNormOf(norms, n);
        if (latest) read.add(latest);
      }
    }
  return read;
}

/** The last of `forwards` whose statistics norm_backward `backward` reads (normOf), if any. */
export function latestNormOf(forwards: Iterable<Node>, backward: Node): Node | undefined {
  let latest: Node | undefined;
  for (const f of forwards) if (normOf(f, backward)) latest = f;
  return latest;
}

function isNorm(n: Node): boolean {
  return n.op === "rms_norm" || n.op === "layer_norm";
}
