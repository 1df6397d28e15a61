// The training program of the GPU engine (runtime/train/gpu-backend.ts), which the engine's memory
// plan (compiler/plan/engine-plan.ts) compiles too: one micro-batch's gradients added into the
// accumulators the engine binds, scaled on the way, and the loss.
import { type Result, ok } from "../diagnostics.ts";
import { add, expandTo, input, mul } from "../ir/build.ts";
import { graph, type Graph, type Node } from "../ir/node.ts";
import { GRAD_OUTPUT, trainingGraph } from "./grad.ts";

/** Input `grad_acc.<name>`: the accumulator of a trained tensor, bound by the engine. */
export const ACC_INPUT = "grad_acc.";
/** Output `accumulated.<name>`: the accumulator after this micro-batch. */
export const ACC_OUTPUT = "accumulated.";
/** Input (1): what the micro-batch's gradients are multiplied by before they are added. */
export const GRAD_SCALE = "grad_scale";

/**
 * accumulated.<name> = grad_acc.<name> + grad.<name> · grad_scale for each of `params`, and the
 * loss as trainingGraph differentiates it (a frozen head's loss in chunks), in trainingGraph's
 * order of outputs: launches are ordered depth-first from the outputs, so the first output's
 * gradient must be the backward's first, or a checkpointed step recomputes every layer before
 * any layer's backward frees one.
 */
export function accumulatingStep(loss: Node, params: readonly Node[]): Result<Graph> {
  const training = trainingGraph(loss, params);
  if (!training.ok) return training;
  const scale = input(GRAD_SCALE, [1]);
  const outputs = [...training.value.graph.outputs].map(([name, n]): [string, Node] => {
    if (n === training.value.loss) return [name, n];
    const param = name.slice(GRAD_OUTPUT.length);
    return [ACC_OUTPUT + param, add(input(ACC_INPUT + param, n.shape), mul(n, expandTo(scale, n.shape)))];
  });
  return ok(graph(outputs));
}
