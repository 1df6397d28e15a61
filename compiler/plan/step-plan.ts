// The memory plan of one optimizer step of a pipeline, before any weight is loaded. The family's
// graph is built, differentiated and compiled symbolically; the compiled schedule's memory plan
// gives the arena of activations and step gradients (with liveness reuse, and with gradient
// checkpointing at the layer inputs when the pipeline asks for it). Persistent buffers are counted
// from the graph's parameters in their storage formats: base weights (f32/f16/bf16, or NF4 for
// QLoRA), f32 adapters, f32 master copies of trained 16-bit weights, AdamW's m and v, gradient
// accumulators. What the runtime adds beyond the graph is counted and named: uniform arenas, the
// loss readback, and the launches' scratch (masks, RoPE tables, shared workspace) as the fused
// attention kernels need it: a device that takes the score-matrix path adds a chunk's scores,
// which the engine's plan in `sftc run` counts (engine-plan.ts). Evaluation during training (forward only) and generation after it (with a
// KV cache) are planned beside the step.
//
// Every layer adds the same buffers, so the persistent figures grow exactly linearly with depth,
// and the forward-only arenas of evaluation and generation do not grow, or grow by the same bytes
// per layer: planned at 2 and 3 layers they extrapolate exactly (tests check this). The training
// arena does not: which buffers are live together at its peak changes with depth (ChatGLM2-6B
// QLoRA at sequence 128: 163 MB extrapolated, 513 MB planned over 28 layers). So the training
// step is compiled at full depth (1.5 to 2.5 s for the published sizes); `estimate` extrapolates
// it, for advice, marked as such.
import { invariant, ok, type Result } from "../diagnostics.ts";
import { trainingGraph } from "../autodiff/grad.ts";
import { numel, topoSort, type Node } from "../ir/node.ts";
import { CACHE, CACHE_BUCKET, cachedStepGraph, cacheCapacity, copiedOutputs, PROMPT_PLACEHOLDER_KEYS, type CacheDType, type CachedStepShape } from "../models/cached-graph.ts";
import { buildFamilyGraph, type FamilyGraph, type TrainingMethod } from "../models/family-graph.ts";
import { evaluationGraph } from "../passes/chunk-loss.ts";
import { compileGraph, type Compiled } from "../passes/compile.ts";
import { kernelCount } from "../passes/print-schedule.ts";
import type { ModelConfig } from "../../stdlib/families/config.ts";
import type { Family, ParamRole } from "../../stdlib/families/family.ts";
import type { StorageDType } from "../../stdlib/kernels/dtype.ts";
import { UNIFORM_ARENA_BYTES } from "../../stdlib/kernels/kernel.ts";
import { launchScratchBytes } from "./launch-scratch.ts";
import { describeMethod, savedModules, type PlanSettings } from "./settings.ts";
import { denseStorageBytes, frozenWeightDtypes, isQuantizedRole, kvCacheDtype, nf4StorageBytes, SAVED_MODULE_ROLES } from "./storage.ts";

/** Bytes of one training step, by what holds them. The peak is the sum of all but the arena's parts. */
export interface TrainingFigures {
  /** Frozen and trained base weights in their storage format. */
  weights: number;
  /** LoRA A and B matrices (f32). */
  adapters: number;
  /** f32 copies of trained 16-bit base weights, which the update is applied to. */
  masterWeights: number;
  /** AdamW's first and second moments, f32. */
  optimizerState: number;
  /** f32 sums of the micro-batch gradients (only with grad_accum > 1). */
  gradientAccumulators: number;
  /** Token ids, labels, positions and graph constants of one micro-batch. */
  inputs: number;
  /** The planned arena: activations and the step's gradients, placed with liveness reuse. */
  arena: number;
  /** Of the arena: the most activation bytes live at once. */
  activations: number;
  /** Of the arena: the gradients the backward writes (f32). */
  gradients: number;
  /** Masks, positions and tables the launches write, and their shared workspace (launch-scratch.ts). */
  scratch: number;
  /** Runtime: uniform arenas for the step's dispatches. */
  uniforms: number;
  /** Runtime: staging buffer that reads the loss back. */
  staging: number;
  peak: number;
}

export interface EvaluationFigures {
  /** Examples per evaluation batch. */
  batch: number;
  /** Inputs of one evaluation batch. */
  inputs: number;
  /** Arena of the forward pass and its loss. */
  arena: number;
  /** The forward launches' masks, tables and workspace. */
  scratch: number;
  /** Training's persistent buffers stay allocated; the training arena is free between steps. */
  peak: number;
}

export type GenerationPhase = "prompt" | "beam fork" | "decode" | "bucket move" | "beam reorder";

export interface GenerationFigures {
  strategy: string;
  /** Sequences decoded together (beams). */
  sequences: number;
  /** Tokens the cache holds per sequence: max_length of the data plus max_new_tokens, at most the model's positions. */
  contextTokens: number;
  /**
   * The weights as generation stores them on the GPU: after full fine-tuning the f32 weights it
   * trained; else the linears (QLoRA: NF4), table and head in the model's dtype and the rest,
   * with modules trained in full, in f32 (the frozen weights' dtypes).
   */
  weights: number;
  /** When generation holds the most (the phases of probeGeneration). */
  phase: GenerationPhase;
  /** The dtype the cache holds keys and values in: f16 for a 16-bit model (kvCacheDtype). */
  cacheDtype: CacheDType;
  /** Keys and values of every layer, in buckets of CACHE_BUCKET positions, as the GPU holds them in that phase. */
  kvCache: number;
  /** That phase's step's inputs beside the cache: token ids, positions, key ranges. */
  inputs: number;
  /** Arena of that phase's step: the prompt's (max_length tokens per sequence) or a decode step's. */
  arena: number;
  /** That step's masks, tables and workspace. */
  scratch: number;
  /** Staging buffer for one row of logits per sequence. */
  staging: number;
  /** Its weights, the adapters, KV cache, step inputs, arena, scratch and staging: training's buffers are released. */
  peak: number;
}

export interface PipelinePlan {
  settings: PlanSettings;
  method: string;
  parameters: { total: number; trainable: number };
  training: TrainingFigures;
  evaluation: EvaluationFigures | null;
  generation: GenerationFigures | null;
  /** The largest of the training, evaluation and generation peaks. */
  peakBytes: number;
  /** Kernel dispatches of one micro-batch step (forward and backward). */
  launches: number;
  /** How the layers were planned. */
  depth: { layers: number; planned: "every layer" | "2 and 3 layers, extrapolated" };
}

// A uniform slot per dispatch at WebGPU's default minUniformBufferOffsetAlignment of 256 bytes
// (every kernel's uniforms fit one): the step's in one buffer its compiled program keeps
// (runtime/gpu/bound-steps.ts), AdamW's in arenas of 64 KiB (runtime/gpu/batch.ts).
const UNIFORM_SLOT_BYTES = 256;

/**
 * Plans one optimizer step (with evaluation during training and generation after it) of `family` with `config` under
 * `settings`. `estimate` extrapolates the training step from 2 and 3 layers (fast, the arena
 * approximate) instead of compiling every layer.
 */
export function planStep(family: Family, config: ModelConfig, settings: PlanSettings, options: { estimate?: boolean } = {}): Result<PipelinePlan> {
  const layers = config.dims.layers;
  const depth = (n: number): ModelConfig => ({ ...config, dims: { ...config.dims, layers: n } });
  const shallow = layers <= 3;
  const frozenLayers = settings.method.kind === "full" && settings.method.freezeLayers > 0;
  const estimate = options.estimate === true && !shallow && !frozenLayers;

  const step = estimate ? extrapolated((n) => probeStep(family, depth(n), settings), layers) : probeStep(family, config, settings);
  if (!step.ok) return step;
  const p = step.value;
  // forward-only arenas grow at most linearly with depth: 2 and 3 layers give them exactly
  const forward = <T extends object>(probe: (c: ModelConfig) => Result<T>) => (shallow ? probe(config) : extrapolated((n) => probe(depth(n)), layers));
  const wantsGeneration = settings.generation !== null && settings.generation.maxNewTokens > 0;
  const generation = wantsGeneration ? forward((c) => probeGeneration(family, c, settings)) : ok(null);
  if (!generation.ok) return generation;
  const evaluation = settings.evaluation ? forward((c) => probeEvaluation(family, c, settings)) : ok(null);
  if (!evaluation.ok) return evaluation;

  const uniforms = p.launches * UNIFORM_SLOT_BYTES + Math.ceil((p.updates * UNIFORM_SLOT_BYTES) / UNIFORM_ARENA_BYTES) * UNIFORM_ARENA_BYTES;
  const t = { ...p.training, uniforms };
  const persistent = t.weights + t.adapters + t.masterWeights + t.optimizerState + t.gradientAccumulators + t.uniforms + t.staging;
  const training: TrainingFigures = { ...t, peak: persistent + t.inputs + t.arena + t.scratch };
  const g = generation.value;
  const decoding = g && peakPhase(g, t.adapters);
  const e = evaluation.value;
  const evaluating = e && { ...e, peak: persistent + e.inputs + e.arena + e.scratch };
  return ok({
    settings,
    method: describeMethod(settings.method),
    parameters: { total: p.parameters, trainable: p.trainableParameters },
    training,
    evaluation: evaluating,
    generation: decoding,
    peakBytes: Math.max(training.peak, evaluating?.peak ?? 0, decoding?.peak ?? 0),
    launches: p.launches,
    depth: { layers, planned: estimate ? "2 and 3 layers, extrapolated" : "every layer" },
  });
}

/** The figures of a training step at one depth. */
interface StepProbe {
  parameters: number;
  trainableParameters: number;
  /** Launches of the compiled step. */
  launches: number;
  /** AdamW updates, one per trained tensor, each a dispatch with a uniform slot of its own. */
  updates: number;
  training: Omit<TrainingFigures, "peak" | "uniforms">;
}

function probeStep(family: Family, config: ModelConfig, s: PlanSettings): Result<StepProbe> {
  const built = buildFamilyGraph(family, config, { batch: s.batch, seq: s.seq, method: graphMethod(s) });
  if (!built.ok) return built;
  const g = built.value;
  const roles = roleIndex(family);
  const trainable = trainableParams(g, s, roles);
  const train = trainingGraph(g.loss, trainable);
  if (!train.ok) return train;
  const compiled = compileGraph(train.value.graph, s.gradientCheckpointing ? { checkpoints: layerInputs(g, family, config.dims.layers) } : {});
  if (!compiled.ok) return compiled;
  const plan = compiled.value.plan;

  const trained = new Set(trainable);
  const weights = weightBytes(g, s, roles);
  let masterWeights = 0;
  for (const w of g.weights.values()) if (trained.has(w) && s.dtype !== "f32") masterWeights += denseStorageBytes("f32", numel(w.shape));
  const count = (nodes: Iterable<Node>) => [...nodes].reduce((sum, n) => sum + numel(n.shape), 0);
  const launches = kernelCount(compiled.value.schedule);
  return ok({
    parameters: count(g.weights.values()) + count(g.adapters.values()),
    trainableParameters: count(trainable),
    launches,
    updates: trainable.length,
    training: {
      weights,
      adapters: f32Bytes(g.adapters.values()),
      masterWeights,
      optimizerState: s.optimizer === "adamw" ? 2 * f32Bytes(trainable) : 0,
      gradientAccumulators: s.gradAccum > 1 ? f32Bytes(trainable) : 0,
      inputs: plan.categories.inputs,
      arena: plan.arenaBytes,
      activations: plan.categories.activations,
      gradients: plan.categories.gradients,
      scratch: launchScratchBytes(compiled.value.schedule),
      staging: denseStorageBytes("f32", 1),
    },
  });
}

/**
 * Decoding after training, as runtime/generate/device-cache.ts holds it: the weights, then the
 * most of these phases, each a KV cache with one step's inputs, arena and launch scratch.
 * - "prompt": the prompt's step (max_length tokens a sequence, once for beam search) over a
 *   placeholder cache of one key, beside the prompt's bucket; each layer's new keys and values are
 *   copied into the bucket as they are written and leave its arena after that layer's attention.
 * - "beam fork": beam search copies that cache into one per beam, a buffer at a time, and reorders
 *   the beams once before any decode step.
 * - "decode": a decode step in the last bucket, the one that the last token fed (position
 *   context - 2: the last new token is never fed back) fits.
 * - "bucket move": the rows move into that bucket when they outgrow the one before, a buffer at a
 *   time (the new cache and one buffer of the old), while that one's decode step lives.
 * - "beam reorder": after each beam step the rows are gathered through one scratch buffer.
 */
export function probeGeneration(family: Family, config: ModelConfig, s: PlanSettings): Result<GenerationProbe> {
  const gen = s.generation!;
  // the weights in the dtypes generation stores them in: those of the method's frozen weights
  // (runtime/generate/pipeline-model.ts pipelineGpuRunner), NF4 linears after QLoRA
  const weightDtypes = frozenWeightDtypes(family, config, s.method.kind, s.dtype, savedModules(s.method));
  // one family graph gives the weights' sizes and every step's parameters
  const full = buildFamilyGraph(family, config, { batch: gen.sequences, seq: 2, method: graphMethod(s), weightDtypes });
  if (!full.ok) return full;
  const contextTokens = Math.min(s.seq + gen.maxNewTokens, config.dims.maxPositions);
  const promptTokens = Math.min(s.seq, contextTokens - 1);
  const d = config.dims;
  // one layer's keys (or values), and the whole cache, in the dtype pipelineGpuRunner keeps it on a
  // device with shader-f16 (without it a 16-bit model's cache is f32: twice these bytes)
  const cacheDtype = kvCacheDtype(s.dtype, d);
  const buffer = (rows: number, positions: number) => denseStorageBytes(cacheDtype, rows * positions * d.kvHeads * d.headDim);
  const cache = (rows: number, positions: number) => d.layers * 2 * buffer(rows, positions);
  const beam = gen.strategy === "beam";
  const rows = gen.sequences;
  const promptRows = beam ? 1 : rows;
  const promptCapacity = cacheCapacity(promptTokens, CACHE_BUCKET);
  // [phase, its cache, its step (none for the fork) and the positions its RoPE table has rows for]
  const wanted: [GenerationPhase, number, CachedStepShape | null, number][] = [
    ["prompt", cache(promptRows, PROMPT_PLACEHOLDER_KEYS) + cache(promptRows, promptCapacity), { batch: promptRows, past: PROMPT_PLACEHOLDER_KEYS, fresh: promptTokens }, promptTokens],
  ];
  // the fork holds one buffer of the prompt's cache beside the beams'; the first reorder, before
  // any decode step, one scratch buffer of theirs
  if (beam) wanted.push(["beam fork", cache(rows, promptCapacity) + buffer(rows, promptCapacity), null, 0]);
  // decode steps feed positions promptTokens .. contextTokens - 2, the last in bucket `last`
  if (contextTokens - promptTokens >= 2) {
    const last = Math.max(promptCapacity, cacheCapacity(contextTokens - 2, CACHE_BUCKET));
    const before = last - CACHE_BUCKET;
    const lastStep = { batch: rows, past: last, fresh: 1 };
    // a step runs over the last bucket unless the move into it came with the last position
    const stepsInLast = last === promptCapacity || contextTokens - 2 > before;
    if (stepsInLast) wanted.push(["decode", cache(rows, last), lastStep, contextTokens - 1]);
    // the step that outgrows the bucket before feeds its position `before`
    if (last > promptCapacity) wanted.push(["bucket move", cache(rows, last) + buffer(rows, before), { batch: rows, past: before, fresh: 1 }, before + 1]);
    if (beam) wanted.push(["beam reorder", cache(rows, last) + buffer(rows, last), stepsInLast ? lastStep : null, contextTokens - 1]);
  }
  const phases: Partial<Record<GenerationPhase, PhaseMemory>> = {};
  // the past keys and values are graph inputs the cache's buffers are bound to
  const pastInputs = new Set([...Array(d.layers).keys()].flatMap((layer) => [CACHE.pastKey(layer), CACHE.pastValue(layer)]));
  const compiled = new Map<string, Compiled>();
  for (const [phase, kvCache, shape, positions] of wanted) {
    if (!shape) {
      phases[phase] = { kvCache, inputs: 0, arena: 0, scratch: 0 };
      continue;
    }
    const key = `${shape.batch} ${shape.past} ${shape.fresh}`;
    if (!compiled.has(key)) {
      const graph = cachedStepGraph(family, config, shape, full.value, graphMethod(s), cacheDtype);
      const step = compileGraph(graph, { copiedOut: copiedOutputs(graph) });
      if (!step.ok) return step;
      compiled.set(key, step.value);
    }
    const { plan, schedule } = compiled.get(key)!;
    const inputs = [...plan.buffers.values()].filter((b) => b.category === "inputs" && !pastInputs.has(b.node.attrs.name!)).reduce((n, b) => n + b.bytes, 0);
    phases[phase] = { kvCache, inputs, arena: plan.arenaBytes, scratch: launchScratchBytes(schedule, undefined, positions) };
  }
  return ok({
    strategy: gen.strategy,
    sequences: gen.sequences,
    contextTokens,
    cacheDtype,
    weights: weightBytes(full.value, s, roleIndex(family), { graphDtype: true }),
    phases,
    staging: denseStorageBytes("f32", gen.sequences * d.vocab),
  });
}

/** What one phase of generation holds besides the weights. */
interface PhaseMemory {
  kvCache: number;
  inputs: number;
  arena: number;
  scratch: number;
}

/** probeGeneration's figures: every phase's, each linear in depth, so they extrapolate apart. */
export interface GenerationProbe extends Omit<GenerationFigures, "peak" | "phase" | keyof PhaseMemory> {
  phases: Partial<Record<GenerationPhase, PhaseMemory>>;
}

/** The figures of the phase that holds the most (the first of equals). */
export function peakPhase({ phases, ...rest }: GenerationProbe, adapters: number): GenerationFigures {
  const held = (m: PhaseMemory) => m.kvCache + m.inputs + m.arena + m.scratch;
  const [phase, memory] = (Object.entries(phases) as [GenerationPhase, PhaseMemory][]).reduce((a, b) => (held(b[1]) > held(a[1]) ? b : a));
  return { ...rest, phase, ...memory, peak: rest.weights + adapters + held(memory) + rest.staging };
}

/** Evaluation: the forward pass and loss of one evaluation batch. */
export function probeEvaluation(family: Family, config: ModelConfig, s: PlanSettings): Result<Omit<EvaluationFigures, "peak">> {
  const batch = s.evaluation!.batch;
  const built = buildFamilyGraph(family, config, { batch, seq: s.seq, method: graphMethod(s) });
  if (!built.ok) return built;
  const compiled = compileGraph(evaluationGraph(built.value.loss));
  if (!compiled.ok) return compiled;
  return ok({ batch, inputs: compiled.value.plan.categories.inputs, arena: compiled.value.plan.arenaBytes, scratch: launchScratchBytes(compiled.value.schedule) });
}

/**
 * Bytes of the base weights in their storage format: NF4 for QLoRA's quantized linears, else the
 * model's dtype, or with `graphDtype` each parameter's dtype in the graph (what the GPU engine stores).
 */
export function weightBytes(g: FamilyGraph, s: PlanSettings, roles: RoleIndex, options: { graphDtype?: boolean } = {}): number {
  const m = s.method;
  let bytes = 0;
  for (const [name, w] of g.weights) {
    const quantized = m.kind === "qlora" && m.nf4 && isQuantizedRole(roles(name).role);
    const dense = options.graphDtype ? (w.dtype as StorageDType) : s.dtype;
    bytes += quantized ? nf4StorageBytes(numel(w.shape), m.nf4!) : denseStorageBytes(dense, numel(w.shape));
  }
  return bytes;
}

/** Bytes of `nodes` as f32 buffers. */
export function f32Bytes(nodes: Iterable<Node>): number {
  return [...nodes].reduce((sum, n) => sum + denseStorageBytes("f32", numel(n.shape)), 0);
}

export function graphMethod(s: PlanSettings): TrainingMethod {
  const m = s.method;
  return m.kind === "full" ? { kind: "full" } : { kind: "lora", rank: m.rank, alpha: m.alpha, targets: m.targets };
}

/** What trains: every weight not frozen (full), or the adapters plus the biases and modules the method names. */
export function trainableParams(g: FamilyGraph, s: PlanSettings, roles: RoleIndex): Node[] {
  const m = s.method;
  const named = [...g.weights].map(([name, node]) => ({ node, name, ...roles(name) }));
  if (m.kind === "full") {
    return named.filter((w) => !(m.freezeEmbeddings && w.role === "embed.weight") && !(w.layer !== null && w.layer < m.freezeLayers)).map((w) => w.node);
  }
  const adapted = new Set([...g.adapters.keys()].map((n) => n.replace(/\.lora_[AB]\.weight$/, "")));
  const saved = new Set<ParamRole>(m.modulesToSave.flatMap((x) => SAVED_MODULE_ROLES[x] ?? []));
  const extra = named.filter(
    (w) =>
      saved.has(w.role) ||
      (m.bias === "all" && w.name.endsWith(".bias")) ||
      (m.bias === "lora_only" && w.name.endsWith(".bias") && adapted.has(w.name.slice(0, -".bias".length))),
  );
  return [...g.adapters.values(), ...extra.map((w) => w.node)];
}

export type RoleIndex = (name: string) => { role: ParamRole; layer: number | null };

/** The declared role and layer of a checkpoint tensor name. */
export function roleIndex(family: Family): RoleIndex {
  const patterns = family.tensors.map((t) => {
    const escaped = t.name.split("{layer}").map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    return { role: t.role, pattern: new RegExp(`^${escaped.join("(\\d+)")}$`) };
  });
  return (name) => {
    for (const { role, pattern } of patterns) {
      const match = pattern.exec(name);
      if (match) return { role, layer: match[1] === undefined ? null : Number(match[1]) };
    }
    invariant(false, `${family.name}: graph weight ${name} has no declared tensor`);
  };
}

/** Each layer's input (the residual stream entering it): what gradient checkpointing keeps. */
export function layerInputs(g: FamilyGraph, family: Family, layers: number): Node[] {
  const decl = family.tensors.find((t) => t.role === "attn_norm.weight");
  invariant(decl, `${family.name} declares no attention norm`);
  const norms = new Set(Array.from({ length: layers }, (_, i) => g.weights.get(decl.name.replaceAll("{layer}", String(i)))));
  const inputs = topoSort([g.loss]).filter((n) => (n.op === "rms_norm" || n.op === "layer_norm") && norms.has(n.inputs[1])).map((n) => n.inputs[0]);
  invariant(inputs.length === layers, `${family.name}: found ${inputs.length} layer inputs for ${layers} layers`);
  return inputs;
}

/** Each numeric figure of `at(2)` + (layers − 2)·(`at(3)` − `at(2)`); other fields as at 2 layers. */
function extrapolated<T extends object>(at: (layers: number) => Result<T>, layers: number): Result<T> {
  const two = at(2);
  if (!two.ok) return two;
  const three = at(3);
  if (!three.ok) return three;
  const line = (a: unknown, b: unknown): unknown => {
    if (typeof a === "number") return a + (layers - 2) * ((b as number) - a);
    if (a !== null && typeof a === "object") return Object.fromEntries(Object.entries(a).map(([k, v]) => [k, line(v, (b as Record<string, unknown>)[k])]));
    return a;
  };
  return ok(line(two.value, three.value) as T);
}
