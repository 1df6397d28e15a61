// Scoring a token sequence under a family model: the log-probability of each token given the ones
// before it, the mean negative log-likelihood over the scored tokens (every token but the first)
// and its perplexity. The family graph's logits (T, V) come from the float64 interpreter or, on a
// GPU, from the compiled schedule run by the WebGPU executor; the log-softmax is taken on the host
// in float64 either way, so both paths differ only by the logits.
import { diag, fail, ok, type Result } from "../../compiler/diagnostics.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import { graph } from "../../compiler/ir/node.ts";
import { buildFamilyGraph } from "../../compiler/models/family-graph.ts";
import { familyFeeds, INPUT } from "../../compiler/models/family-inputs.ts";
import { compileGraph } from "../../compiler/passes/compile.ts";
import type { ModelConfig } from "../../stdlib/families/config.ts";
import type { Family } from "../../stdlib/families/family.ts";
import { GraphExecutor } from "../execute/executor.ts";
import type { GpuDevice } from "../gpu/device.ts";

export interface Scored {
  ids: number[];
  /** log p(ids[t] | ids[<t]) for t ≥ 1; null for the first token, which has no context. */
  logprobs: (number | null)[];
  /** Mean negative log-likelihood of the scored tokens. */
  loss: number;
  /** exp(loss). */
  perplexity: number;
}

/**
 * Scores `ids` under the model `family` with `config` and `weights` (by checkpoint tensor name),
 * on `gpu` when given, else in float64 on the CPU. Too few ids, ids outside the vocabulary or
 * more ids than the model has positions are input errors.
 */
export async function scoreIds(
  family: Family,
  config: ModelConfig,
  weights: ReadonlyMap<string, Float64Array>,
  ids: readonly number[],
  gpu?: GpuDevice,
): Promise<Result<Scored>> {
  const where = "the token ids to score";
  const vocab = config.dims.vocab;
  if (ids.length < 2) return fail(diag("SFT4002", `Scoring needs at least 2 tokens (the first has no context); got ${ids.length}.`, { where, hint: "Give a longer text or more ids." }));
  const outside = ids.find((id) => id >= vocab);
  if (outside !== undefined) return fail(diag("SFT4002", `Token id ${outside} is outside the model's vocabulary of ${vocab}.`, { where, hint: `Give ids from 0 to ${vocab - 1}.` }));
  if (ids.length > config.dims.maxPositions) {
    return fail(diag("SFT4002", `${ids.length} tokens are more than the model's ${config.dims.maxPositions} positions.`, { where, hint: "Score a shorter sequence." }));
  }
  const built = buildFamilyGraph(family, config, { batch: 1, seq: ids.length });
  if (!built.ok) return built;
  // the labels input feeds only the loss, which this graph leaves out
  const inputs = familyFeeds(family, config, { ids: [ids], labels: [ids] });
  if (!inputs.ok) return fail(...inputs.diagnostics.map((d) => ({ ...d, where })));
  const feeds = new Map([...weights, ...inputs.value]);
  const g = graph([["logits", built.value.logits]]);
  const logits = gpu ? await gpuLogits(gpu, g, feeds) : cpuLogits(g, feeds);
  if (!logits.ok) return logits;
  return ok(fromLogits(logits.value, ids, vocab));
}

function cpuLogits(g: ReturnType<typeof graph>, feeds: ReadonlyMap<string, Float64Array>): Result<Float64Array> {
  const out = interpret(g, feeds);
  return out.ok ? ok(out.value.get("logits")!) : out;
}

async function gpuLogits(gpu: GpuDevice, g: ReturnType<typeof graph>, feeds: ReadonlyMap<string, Float64Array>): Promise<Result<Float64Array>> {
  const compiled = compileGraph(g);
  if (!compiled.ok) return compiled;
  const executor = GraphExecutor.create(gpu, compiled.value.schedule);
  if (!executor.ok) return executor;
  try {
    for (const [name, values] of feeds) if (name !== INPUT.labels) executor.value.write(name, values);
    const ran = await executor.value.run();
    if (!ran.ok) return ran;
    const logits = await executor.value.read("logits");
    const errors = await gpu.takeErrors();
    return errors.length ? fail(...errors) : ok(logits);
  } finally {
    executor.value.destroy();
  }
}

/** Log-softmax of each row of `logits` (T, V) at the next token, in float64. */
export function fromLogits(logits: Float64Array, ids: readonly number[], vocab: number): Scored {
  const logprobs: (number | null)[] = [null];
  for (let t = 1; t < ids.length; t++) {
    const row = logits.subarray((t - 1) * vocab, t * vocab);
    let max = -Infinity;
    for (const v of row) max = Math.max(max, v);
    let sum = 0;
    for (const v of row) sum += Math.exp(v - max);
    logprobs.push(row[ids[t]] - max - Math.log(sum));
  }
  const scored = logprobs.slice(1) as number[];
  const loss = -scored.reduce((s, v) => s + v, 0) / scored.length;
  return { ids: [...ids], logprobs, loss, perplexity: Math.exp(loss) };
}
