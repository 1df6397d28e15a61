// The memory plan as people read it (a table, one buffer class per row) and as JSON.
import { CACHE_BUCKET } from "../models/cached-graph.ts";
import { formatBytes } from "../passes/memory-plan.ts";
import type { DeviceMemory } from "./device-memory.ts";
import type { GenerationPhase, PipelinePlan } from "./step-plan.ts";

/** What the printed plan says about the pipeline and its model. */
export interface PlanHeader {
  pipeline: string;
  file: string;
  family: string;
  /** Where the dimensions came from. */
  source: string;
  dims: { hidden: number; layers: number; heads: number; kvHeads: number; ffn: number; vocab: number };
}

const count = (n: number) => (n >= 1e9 ? `${(n / 1e9).toFixed(2)} B` : n >= 1e6 ? `${(n / 1e6).toFixed(1)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} K` : String(n));

// When generation holds the most (GenerationFigures.phase), as the plan prints it.
const PHASE_TEXT: Record<GenerationPhase, string> = {
  prompt: "during the prompt's step, whose keys and values are copied into the cache",
  "beam fork": "while beam search copies the prompt's cache into one per beam and first reorders them",
  "bucket move": "while the rows move into the last bucket, one buffer of the bucket before still alive",
  "beam reorder": "while a beam reorder gathers the rows through a scratch buffer of one layer's keys",
  decode: "during a decode step in the last bucket",
};

/** The plan as a table with its notes. */
export function formatPlan(h: PlanHeader, p: PipelinePlan, device: DeviceMemory | null): string {
  const s = p.settings;
  const t = p.training;
  const d = h.dims;
  const storage = s.method.kind === "qlora" && s.method.nf4 ? `NF4 linears (block ${s.method.nf4.blockSize}${s.method.nf4.doubleQuant ? ", double-quantized" : ""}), the rest ${s.dtype}` : s.dtype;
  const rows: [string, number, string][] = [
    ["base weights", t.weights, storage],
    ["LoRA adapters", t.adapters, "f32"],
    ["master weights", t.masterWeights, s.dtype === "f32" ? "f32 weights are their own master copy" : t.masterWeights ? "f32 copies of the trained 16-bit weights" : "none: no 16-bit weight trains"],
    ["optimizer state", t.optimizerState, s.optimizer === "adamw" ? "AdamW m and v, f32" : "SGD keeps none"],
    ["gradient accumulators", t.gradientAccumulators, s.gradAccum > 1 ? `f32, grad_accum = ${s.gradAccum}` : "none: grad_accum = 1, the update reads the step's gradients"],
    ["inputs", t.inputs, "token ids, labels, positions, constants"],
    ["arena", t.arena, "activations and step gradients, reused by liveness"],
    ["  activations (peak live)", t.activations, s.gradientCheckpointing ? "gradient checkpointing at every layer input" : "no gradient checkpointing"],
    ["  gradients", t.gradients, "f32, written by the backward"],
    ["launch scratch", t.scratch, "masks, RoPE tables and the launches' shared workspace (fused attention)"],
    ["uniform arenas (runtime)", t.uniforms, `one 256-byte slot per dispatch: the step's kept with the program (${p.launches} launches), AdamW's in 64 KiB arenas`],
    ["loss readback (runtime)", t.staging, "staging buffer"],
  ];
  const width = Math.max(...rows.map((r) => r[0].length));
  const line = (label: string, bytes: number, note: string) => `  ${label.padEnd(width)}  ${formatBytes(bytes).padStart(10)}  ${note}`;
  const out = [
    `memory plan of ${h.pipeline} (${h.file})`,
    `model   ${h.family}: ${d.layers} layers, hidden ${d.hidden}, ${d.heads} heads (${d.kvHeads} key/value), ffn ${d.ffn}, vocab ${d.vocab}; dimensions from ${h.source}`,
    `method  ${p.method}: ${count(p.parameters.total)} parameters, ${count(p.parameters.trainable)} trained`,
    `step    batch ${s.batch} x ${s.seq} tokens, grad_accum ${s.gradAccum}, gradient checkpointing ${s.gradientCheckpointing ? "on" : "off"}`,
    "",
    "training step",
    ...rows.map((r) => line(...r)),
    line("peak", t.peak, "sum of the rows above, arena once"),
  ];
  const e = p.evaluation;
  if (e) {
    out.push(
      "",
      `evaluation (forward only, batch ${e.batch} x ${s.seq} tokens)`,
      line("inputs", e.inputs, "of one evaluation batch"),
      line("arena", e.arena, "the forward pass and its loss"),
      line("launch scratch", e.scratch, "masks, tables and workspace of the forward launches"),
      line("peak", e.peak, "with training's persistent buffers, which stay allocated"),
    );
  }
  const g = p.generation;
  if (g) {
    out.push(
      "",
      `generation (${g.strategy}, ${g.sequences} sequence${g.sequences === 1 ? "" : "s"} of up to ${g.contextTokens} tokens)`,
      line("weights", g.weights, "as generation stores them: linears (NF4 after QLoRA), table and head in the model's dtype; all f32 after full fine-tuning"),
      `  most held ${PHASE_TEXT[g.phase]}`,
      line("KV cache", g.kvCache, `keys and values of every layer, ${g.cacheDtype}, in buckets of ${CACHE_BUCKET} positions`),
      line("step inputs", g.inputs, "token ids, positions and key ranges of that step"),
      line("step arena", g.arena, g.phase === "prompt" ? "a prompt of max_length tokens per sequence" : "a step of one decoded token"),
      line("launch scratch", g.scratch, "masks, tables and workspace of that step's launches"),
      line("logits readback", g.staging, "staging buffer"),
      line("peak", g.peak, "with the adapters; training buffers released"),
    );
  }
  out.push("", `peak ${formatBytes(p.peakBytes)} (${p.peakBytes} bytes); planned over ${p.depth.planned} of ${p.depth.layers}`);
  out.push(`(one step at batch ${s.batch} x ${s.seq} tokens; \`sftc run\` compares the batch shapes its engine keeps compiled with what it allocates)`);
  if (device) out.push(`device memory ${formatBytes(device.bytes)} (${device.source}): ${p.peakBytes <= device.bytes ? "fits" : "does not fit"}`);
  else out.push("device memory not given: set --memory or SFT_DEVICE_MEMORY to check the plan against it");
  return `${out.join("\n")}\n`;
}

/** The plan as plain JSON (bytes as integers). */
export function planJson(h: PlanHeader, p: PipelinePlan, device: DeviceMemory | null): Record<string, unknown> {
  return {
    pipeline: h.pipeline,
    file: h.file,
    model: { family: h.family, source: h.source, ...h.dims },
    settings: p.settings,
    method: p.method,
    parameters: p.parameters,
    training: p.training,
    evaluation: p.evaluation,
    generation: p.generation,
    peakBytes: p.peakBytes,
    launches: p.launches,
    depth: p.depth,
    device: device && { ...device, fits: p.peakBytes <= device.bytes },
  };
}
