// The memory plan of what the GPU training engine holds during a run (runtime/train/gpu-backend.ts),
// for the comparison `sftc run` prints. `sftc plan` plans one optimizer step at the pipeline's
// batch × longest max_length; the engine instead compiles one program per batch shape it meets
// (sequence lengths padded to buckets of 16), keeps several of them on the device at once, and
// binds one set of weights and trained state into all of them. So this plan is:
//
//   shared, counted once: base weights as the engine stores them (the graph's dtype: f32, but
//     the frozen weights of LoRA and QLoRA in a 16-bit model's dtype, storage.ts
//     frozenWeightDtypes; NF4 for QLoRA's quantized linears), adapters, and per trained tensor its
//     f32 gradient accumulator and AdamW's m and v (the engine holds an accumulator even without
//     grad_accum: the compiled step adds into it), the grad-norm partials and the NF4 tables;
//   per program held (training or evaluation, rows × padded length): the graph the engine
//     compiles at that shape, planned: the pool of activations and gradients with their side
//     outputs, the inputs the host writes (ids, labels, positions, the gradient scale), and the
//     launches' scratch (launch-scratch.ts: masks, positions and RoPE tables written by the host,
//     and the workspace launches share, which includes what checkpointing recomputes and, where
//     the device takes the score-matrix attention (`scores`), a chunk's scores).
//
// The shapes come from the run (the programs the engine holds); everything else is compile-time.
import { ACC_INPUT, accumulatingStep } from "../autodiff/accumulating-step.ts";
import { ok, type Result } from "../diagnostics.ts";
import { numel, type Graph, type Node } from "../ir/node.ts";
import { buildFamilyGraph } from "../models/family-graph.ts";
import { evaluationGraph } from "../passes/chunk-loss.ts";
import { compileGraph } from "../passes/compile.ts";
import type { ModelConfig } from "../../stdlib/families/config.ts";
import type { Family } from "../../stdlib/families/family.ts";
import type { AttentionScoresChoice } from "../../stdlib/kernels/attention-scores.ts";
import { gradNormPartials } from "../../stdlib/kernels/grad-clip.ts";
import { nf4Tables } from "../../stdlib/kernels/nf4-matmul.ts";
import { launchScratchBytes } from "./launch-scratch.ts";
import { savedModules, type PlanSettings } from "./settings.ts";
import { f32Bytes, graphMethod, layerInputs, roleIndex, trainableParams, weightBytes } from "./step-plan.ts";
import { denseStorageBytes, frozenWeightDtypes } from "./storage.ts";

/** A compiled program the engine holds: its kind and batch shape (sequence already padded). */
export interface ProgramShape {
  kind: "training" | "evaluation";
  rows: number;
  seq: number;
}

export interface ProgramFigures extends ProgramShape {
  /** Activations and gradients (pool buffers and side outputs). */
  arena: number;
  /** Inputs the host writes that the engine does not bind (ids, labels, positions, the gradient scale). */
  inputs: number;
  /** Masks, tables and positions the launches write, and their shared workspace. */
  scratch: number;
  bytes: number;
}

export interface EngineFigures {
  /** Base weights in their storage format. */
  weights: number;
  /** LoRA A and B (f32). */
  adapters: number;
  /** Per trained tensor: gradient accumulator, AdamW m and v (f32). */
  trainedState: number;
  /** Grad-norm partials and result, NF4 lookup tables. */
  engine: number;
  programs: ProgramFigures[];
  total: number;
}

// The weights the engine stores narrower than f32, as runtime/pipeline/training-setup.ts does.
const engineWeightDtypes = (family: Family, config: ModelConfig, s: PlanSettings) =>
  frozenWeightDtypes(family, config, s.method.kind, s.dtype, savedModules(s.method));

/** Plans the engine holding the programs `shapes` for `family` with `config` under `settings`. */
export function planEngine(family: Family, config: ModelConfig, settings: PlanSettings, shapes: readonly ProgramShape[], scores?: AttentionScoresChoice): Result<EngineFigures> {
  const roles = roleIndex(family);
  const probe = buildFamilyGraph(family, config, { batch: 1, seq: 2, method: graphMethod(settings), weightDtypes: engineWeightDtypes(family, config, settings) });
  if (!probe.ok) return probe;
  const trainable = trainableParams(probe.value, settings, roles);
  const partials = trainable.reduce((n, t) => n + gradNormPartials(numel(t.shape)), 0);
  const quantized = settings.method.kind === "qlora" && settings.method.nf4 !== undefined;
  const programs: ProgramFigures[] = [];
  for (const shape of shapes) {
    const planned = planProgram(family, config, settings, shape, scores);
    if (!planned.ok) return planned;
    programs.push(planned.value);
  }
  const figures = {
    weights: weightBytes(probe.value, settings, roles, { graphDtype: true }),
    adapters: f32Bytes(probe.value.adapters.values()),
    trainedState: 3 * f32Bytes(trainable),
    engine: denseStorageBytes("f32", Math.max(1, partials)) + denseStorageBytes("f32", 2) + (quantized ? denseStorageBytes("f32", nf4Tables().length) : 0),
    programs,
  };
  const total = figures.weights + figures.adapters + figures.trainedState + figures.engine + programs.reduce((n, p) => n + p.bytes, 0);
  return ok({ ...figures, total });
}

/** One program at its shape: the graph the engine compiles, planned, less what the engine binds. */
function planProgram(family: Family, config: ModelConfig, s: PlanSettings, shape: ProgramShape, scores: AttentionScoresChoice | undefined): Result<ProgramFigures> {
  const built = buildFamilyGraph(family, config, { batch: shape.rows, seq: shape.seq, method: graphMethod(s), weightDtypes: engineWeightDtypes(family, config, s) });
  if (!built.ok) return built;
  const g = built.value;
  let program: Graph = evaluationGraph(g.loss);
  let checkpoints: Node[] | undefined;
  if (shape.kind === "training") {
    const trainable = trainableParams(g, s, roleIndex(family));
    const step = accumulatingStep(g.loss, trainable);
    if (!step.ok) return step;
    program = step.value;
    if (s.gradientCheckpointing) checkpoints = layerInputs(g, family, config.dims.layers);
  }
  const compiled = compileGraph(program, checkpoints ? { checkpoints } : {});
  if (!compiled.ok) return compiled;
  const { plan, schedule } = compiled.value;
  // weights and accumulators are the engine's, bound into every program
  const inputs = [...plan.buffers.values()]
    .filter((b) => b.category === "inputs" && !b.node.attrs.name?.startsWith(ACC_INPUT))
    .reduce((n, b) => n + b.bytes, 0);
  const scratch = launchScratchBytes(schedule, scores);
  return ok({ ...shape, arena: plan.arenaBytes, inputs, scratch, bytes: plan.arenaBytes + inputs + scratch });
}
