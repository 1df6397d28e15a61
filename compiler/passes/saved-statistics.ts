// Forward launches that save statistics for their backward (attention's log-sum-exp, a norm's
// rstd and LayerNorm's mean) keep them beside their output only where a backward launch of the
// same schedule reads them. Elsewhere (an evaluation's or a generation step's forward, the first
// forward of a checkpointed layer, which its backward recomputes) the kernels still write them, but
// into the launch workspace that later launches reuse: the memory plan counts them there
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
  const forwards = schedule.launches.flatMap((l) => l.outputs).filter(isNorm);
  for (const launch of schedule.launches)
    for (const n of launch.outputs) {
      // attention_backward's inputs: dOut, q, k, v, then the forward's output
      if (n.op === "attention_backward") read.add(inputView(launch, n.inputs[4]).base);
      if (n.op === "norm_backward") for (const f of forwards) if (normOf(f, n)) read.add(f);
    }
  return read;
}

function isNorm(n: Node): boolean {
  return n.op === "rms_norm" || n.op === "layer_norm";
}
