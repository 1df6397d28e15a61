// Where the host time of a decode step's GraphExecutor.run() goes. A thin random Baichuan-7B-style
// model (hidden 64, LAYERS layers, default 32: many launches of little work each, so the host's
// share of a step is large) decodes STEPS tokens (default 50) after an 8-token prompt on the
// adapter the runtime would use, every run timed by phase (GpuDevice.hostPhases,
// runtime/execute/run-phases.ts). Printed: the median per decode step of each phase, of the whole
// run() and of the step's wall time (session.append: feeds, run, KV appends, the logits' read),
// and what a step runs. Each median is over its own samples, so the phases' need not add up to
// run()'s.
//   node bin/run-ts.js bench/host-time.ts [LAYERS] [STEPS]
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { invariant } from "../compiler/diagnostics.ts";
import type { RunPhases } from "../runtime/execute/run-phases.ts";
import { CachedGenerationModel, type CachedModelOptions } from "../runtime/generate/cached-model.ts";
import { gpuRunner } from "../runtime/generate/gpu-runner.ts";
import type { GpuDevice } from "../runtime/gpu/device.ts";
import { openBenchDevice } from "./adapter.ts";
import { contextModelOptions, decodeAfterPrompt } from "./decode-context.ts";
import { median } from "./train-step.ts";

/** Tokens of the prompt before the timed decode steps. */
export const PROMPT_TOKENS = 8;

const HIDDEN = 64;

/** The thin model of `layers` layers. */
export function thinModelOptions(layers: number): CachedModelOptions {
  const dimensions = { hidden_size: HIDDEN, num_layers: layers, num_heads: 4, intermediate_size: 2 * HIDDEN, max_positions: 2048, vocab_size: 256 };
  return contextModelOptions(dimensions, "bench/host-time.ts");
}

export interface HostTime {
  /** The run() of each decode step, in order. */
  runs: RunPhases[];
  /** Each decode step's wall milliseconds. */
  wallMs: number[];
}

/** `steps` decode steps of the thin model of `layers` layers after the prompt, on `gpu`. */
export async function benchHostTime(gpu: GpuDevice, layers: number, steps: number): Promise<HostTime> {
  const runner = gpuRunner(gpu);
  const runs: RunPhases[] = [];
  gpu.hostPhases = runs;
  try {
    const { samples } = await decodeAfterPrompt(new CachedGenerationModel(thinModelOptions(layers), runner), PROMPT_TOKENS, steps);
    // the prompt's step is one run, and each decode step one more
    invariant(runs.length === steps + 1, `${runs.length} executor runs for a prompt and ${steps} decode steps`);
    return { runs: runs.slice(1), wallMs: samples };
  } finally {
    gpu.hostPhases = undefined;
    runner.destroy();
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [layers = 32, steps = 50] = process.argv.slice(2).map(Number);
  const gpu = await openBenchDevice();
  const { runs, wallMs } = await benchHostTime(gpu, layers, steps);
  const ms = (samples: number[]) => `${median(samples).toFixed(3)} ms`;
  const phase = (name: keyof RunPhases) => ms(runs.map((r) => r[name]));
  console.log(`adapter: ${gpu.adapter.name}; model: hidden ${HIDDEN}, ${layers} layers; ${steps} decode steps after a prompt of ${PROMPT_TOKENS} tokens`);
  console.log(`a step runs: ${[...new Set(runs.map((r) => `${r.launches} launches, ${r.dispatches} dispatches`))].join("; ")}`);
  console.log("median per decode step:");
  console.log(`  refresh         ${phase("refreshMs")}`);
  console.log(`  uniform update  ${phase("updateMs")}`);
  console.log(`  record          ${phase("recordMs")}`);
  console.log(`  submit (flush)  ${phase("submitMs")}`);
  console.log(`  run() in all    ${phase("runMs")}`);
  console.log(`  step wall time  ${ms(wallMs)}`);
  gpu.destroy();
}
