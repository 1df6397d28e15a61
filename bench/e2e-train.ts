// End-to-end LoRA / QLoRA training on a Baichuan-7B-sized random-init model (hidden 4096, FFN
// 11008, 32 heads, vocab 64000, 32 layers unless --layers says otherwise), timed on the adapter
// by sftc's GPU engine and, with --torch, by PyTorch + PEFT (bench/torch_peft_train.py: a
// transformers Llama of the same dimensions, SDPA attention) on the same machine, as ratios.
//
//   node bin/run-ts.js bench/e2e-train.ts --method lora|qlora|lora,qlora [--layers N] [--seq 1024]
//     [--rows 1] [--rank 8] [--warmup 1] [--steps 2] [--torch] [--torch-warmup 3] [--torch-steps 10]
//     [--profile] [--dtype f32|bf16|f16] [--out FILE.json]
//
// sftc runs as `sftc run` runs a 7B pipeline: LoRA on the attention projections (W_pack, the
// fused q/k/v, and o_proj; PEFT's side adapts q_proj, k_proj, v_proj, o_proj), gradient
// checkpointing (each layer's input kept, the layer recomputed before its backward), f32
// weights (--dtype bf16 keeps the frozen ones in bf16, as a Baichuan pipeline's default
// model.dtype does), the engine's matmul and attention kernels for the adapter (f16 products
// on subgroup matrices where it has them and they pass their self-check, else f32; the precision column
// says which), QLoRA's base linears in NF4 decoded inside the matmul, AdamW over the
// adapters with global-norm clipping. Exits 1 when a loss is not finite or the sftc side fails.
//
// Work of one step at the 7B preset, seq 1024 (rows 1): the linears hold 6.48 G weights and the
// head 0.26 G, 2 FLOP per weight and token: forward 13.8 TFLOP, the layers' recomputation 13.3,
// the backward's input gradients 13.8 (frozen weights get none; the rank-8 adapters add < 1%),
// attention scores and values 4 · T² · C per layer = 0.55 TFLOP per pass, about 2.2 over the
// four passes: about 43 TFLOP per step. At the 10-20 TFLOP/s the tiled f32 matmul may reach on
// an H200 that is 2-4 s a step, hence the default of 1 warm-up and 2 timed steps. Measured on an
// H200 (2026-11-26, tiled matmul): 8.1 s a LoRA step and 8.7 s a QLoRA step (about 5 TFLOP/s),
// weights uploaded in 27 s (LoRA, f32) and 19 s (QLoRA); both methods with --torch took 129 s.
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { ok } from "../compiler/diagnostics.ts";
import { buildFamilyGraph, type TrainingMethod } from "../compiler/models/family-graph.ts";
import { numel } from "../compiler/ir/node.ts";
import { fromDimensions } from "../compiler/plan/model-config.ts";
import { DEFAULT_SUBGROUP_TILING } from "../stdlib/kernels/matmul-subgroup.ts";
import { frozenWeightDtypes, nf4WeightNames } from "../compiler/plan/storage.ts";
import type { WeightDType } from "../compiler/plan/settings.ts";
import { formatBytes } from "../compiler/passes/memory-plan.ts";
import type { GpuDevice } from "../runtime/gpu/device.ts";
import { checkedMatmulStrategy, selfCheckOf } from "../runtime/gpu/kernel-self-check.ts";
import { tuningSource } from "../runtime/gpu/kernel-tuning.ts";
import { openBenchDevice } from "./adapter.ts";
import { familyGraphModel, initialWeights } from "../runtime/pipeline/family-model.ts";
import { labelTokens } from "../runtime/train/backend.ts";
import { GpuBackend } from "../runtime/train/gpu-backend.ts";
import type { WeightSource } from "../runtime/train/gpu-weights.ts";
import { trainSettings } from "../runtime/train/settings.ts";
import type { ModelConfig } from "../stdlib/families/config.ts";
import type { Family } from "../stdlib/families/family.ts";
import { families } from "../stdlib/families/index.ts";
import { families as familyFacts, type Dimensions } from "../stdlib/schemas/model.ts";
import { torchDeviceFor } from "./ceilings.ts";
import { machineFacts } from "./machine.ts";
import { table } from "./table.ts";
import { sharedShapeWeights, uploadsCaughtUp } from "./shared-weights.ts";
import { median, syntheticBatch, TORCH_PYTHON } from "./train-step.ts";
import { kernelProfile, profileTable, type ProfileRow } from "./profile.ts";

const SCRIPT = resolve(import.meta.dirname, "torch_peft_train.py");
const USAGE = "usage: node bin/run-ts.js bench/e2e-train.ts --method lora|qlora|lora,qlora [--layers N] [--seq 1024] [--rows 1] [--rank 8] [--warmup 1] [--steps 2] [--torch] [--torch-warmup 3] [--torch-steps 10] [--profile] [--dtype f32|bf16|f16] [--out FILE.json]";
/** The attention projections of Baichuan-7B: the fused q/k/v and the output. */
const TARGETS = ["W_pack", "o_proj"];
/** Precisions of the PyTorch reference rows. */
const TORCH_DTYPES = ["bf16", "f32"] as const;
/** The Python side's wall-clock limit: a hung reference must not stop the report. */
const TORCH_TIMEOUT_MS = 360_000;

export type Method = "lora" | "qlora";

export interface E2eOptions {
  methods: Method[];
  layers: number;
  seq: number;
  rows: number;
  rank: number;
  alpha: number;
  warmup: number;
  steps: number;
  /**
   * PyTorch's untimed and timed steps: its steps are cheap, and its first timed ones after a single
   * warm-up still vary (on an H200 at 7B size, 484 then 293 ms in bf16), so it takes more of each.
   */
  torchWarmup: number;
  torchSteps: number;
  /**
   * After the timed steps, one more forward and backward with every dispatch timed (GPU
   * timestamps), reported as GPU time by kernel: where a step's time goes.
   */
  profile: boolean;
  /**
   * The storage of the frozen weights (frozenWeightDtypes, as a pipeline's model.dtype chooses:
   * the kernels read them as stored): LoRA's block linears, and the embedding table and head of
   * LoRA and QLoRA (whose block linears are NF4).
   */
  dtype: WeightDType;
  /** Dimensions replacing the 7B preset's (tests shrink the model with it). */
  dims?: Partial<Dimensions>;
  /** Progress lines (the CLI writes them to stderr, so a run cut short still shows how far it got). */
  log?: (line: string) => void;
}

export const DEFAULT_OPTIONS: E2eOptions = { methods: ["lora"], layers: 32, seq: 1024, rows: 1, rank: 8, alpha: 16, warmup: 1, steps: 2, torchWarmup: 3, torchSteps: 10, profile: false, dtype: "f32" };

/** One sftc run: its figures, or why it failed. */
export type SftcRow = { method: Method; precision: string } & (
  | {
      ok: true;
      /** Host-side random draw and adapter initialization, s. */
      initSeconds: number;
      /** Weights to the device (QLoRA: quantization included), s. */
      uploadSeconds: number;
      /** The first step: compiling the training graph, creating the pipelines, running it, s. */
      firstStepSeconds: number;
      samplesNs: number[];
      medianNs: number;
      tokensPerSecond: number;
      /** Loss of every step, warm-up included. */
      losses: number[];
      /** Most bytes of sftc's tensor buffers alive at once (gpu.memory.peakBytes). */
      peakBytes: number;
      trainableValues: number;
      /** GPU time by kernel of one profiled forward and backward (--profile); absent otherwise. */
      profile?: ProfileRow[];
    }
  | { ok: false; why: string }
);

/** One PyTorch + PEFT row, as bench/torch_peft_train.py reports it. */
export type TorchRow = { method: Method; dtype: string } & (
  | { available: true; setup_seconds: number; samples_ns: number[]; losses: number[]; peak_bytes: number | null; trainable_values: number; attn_implementation: string | null; rope_theta: number | null }
  | { available: false; why: string }
);

export type TorchSide =
  | { available: true; python: string; torch: string; cuda: string | null; transformers: string; peft: string; bitsandbytes: string | null; device: string; rows: TorchRow[] }
  | { available: false; why: string };

/** sftc's figure over PyTorch's: > 1 means sftc has more tokens/s, or more peak memory. */
export interface Ratio {
  sftc: string;
  reference: string;
  tokensPerSecond?: number;
  peakMemory?: number;
  /** Why the reference is not the like-for-like one, when it is not. */
  note?: string;
}

export interface E2eReport {
  date: string;
  command: string;
  card: string;
  driver: string;
  /** The kernel choices the device tuned when it opened ("job: choice"), none where it tuned nothing. */
  tunings: string[];
  model: string;
  options: E2eOptions;
  sftc: SftcRow[];
  torch?: TorchSide;
  ratios: Ratio[];
}

/** The Baichuan-7B preset with `options`' depth and any replaced dimensions. */
function modelConfig(options: E2eOptions) {
  const dims: Dimensions = { ...familyFacts.baichuan7b.sizes["7b"], num_layers: options.layers, ...options.dims };
  const planned = fromDimensions(families.baichuan7b, dims, "the 7b preset");
  if (!planned.ok) throw new Error(planned.diagnostics.map((d) => d.message).join("; "));
  return planned.value.config;
}

/**
 * The base weights (bench/shared-weights.ts: one seeded array per shape, the device caught up
 * after each upload), then the adapters' initial values.
 */
async function* baseThenAdapters(gpu: GpuDevice, family: Family, config: ModelConfig, adapters: ReadonlyMap<string, ArrayLike<number>>): WeightSource {
  yield* sharedShapeWeights(family, config, 0, () => uploadsCaughtUp(gpu));
  for (const [name, values] of adapters) yield ok({ name, values });
}

const seconds = (since: number) => (performance.now() - since) / 1000;

/** What the engine's matmuls multiply on this device (its choice after the self-check, SFT_MATMUL included). */
function computePrecision(gpu: GpuDevice): string {
  const strategy = checkedMatmulStrategy(gpu);
  if (!strategy.ok) return "matmul strategy refused";
  const s = strategy.value;
  return typeof s === "string"
    ? `f32 compute (${s} matmul)`
    : `matmuls: f16 products, ${s.config.resultComponentType} accumulation (subgroup matrices, ${s.tiling ?? DEFAULT_SUBGROUP_TILING})`;
}

/** One method's training steps on `gpu`: a failure (not a NaN loss: that is reported) becomes the row's `why`. */
export async function sftcRun(gpu: GpuDevice, method: Method, options: E2eOptions): Promise<SftcRow> {
  const narrow = options.dtype === "f32" ? "" : `, ${options.dtype} embeddings and head`;
  const base = method === "qlora" ? `NF4 base + f32 adapters${narrow}` : options.dtype === "f32" ? "f32 weights" : `${options.dtype} block linears${narrow}, f32 adapters and norms`;
  const precision = `${base}, ${computePrecision(gpu)}`;
  try {
    return { method, precision, ok: true, ...(await sftcSteps(gpu, method, options)) };
  } catch (e) {
    return { method, precision, ok: false, why: e instanceof Error ? e.message : String(e) };
  }
}

async function sftcSteps(gpu: GpuDevice, method: Method, options: E2eOptions) {
  const started = performance.now();
  const family = families.baichuan7b;
  const config = modelConfig(options);
  const lora: TrainingMethod = { kind: "lora", rank: options.rank, alpha: options.alpha, targets: TARGETS, dropout: 0 };
  const model = familyGraphModel(family, config, lora, { weightDtypes: frozenWeightDtypes(family, config, method, options.dtype), quantized: method === "qlora" });
  const probe = buildFamilyGraph(family, config, { batch: 1, seq: 2 });
  if (!model.ok || !probe.ok) throw new Error([...model.diagnostics, ...probe.diagnostics].map((d) => d.message).join("; "));
  const shapes = new Map([...probe.value.weights].map(([name, p]) => [name, p.shape]));
  const largest = Math.max(...[...shapes.values()].map((shape) => 4 * numel(shape)));
  if (largest > gpu.limits.maxStorageBufferBindingSize) {
    throw new Error(`the largest weight is ${formatBytes(largest)} in f32, above this adapter's maxStorageBufferBindingSize of ${formatBytes(gpu.limits.maxStorageBufferBindingSize)}`);
  }
  const adapters = initialWeights(family, config, lora, new Map(), 0);
  if (!adapters.ok) throw new Error(adapters.diagnostics.map((d) => d.message).join("; "));
  const initSeconds = seconds(started);

  // the peak of this run alone: the device may have served another before
  gpu.memory.peakBytes = gpu.memory.liveBytes;
  const uploading = performance.now();
  const nf4 = nf4WeightNames(family, config, method);
  const loaded = await GpuBackend.load(gpu, model.value, baseThenAdapters(gpu, family, config, adapters.value), { nf4, checkpoints: (loss) => model.value.layerInputs(loss) });
  if (!loaded.ok) throw new Error(loaded.diagnostics.map((d) => `${d.code} ${d.message}`).join("; "));
  const backend = loaded.value;
  await gpu.queue.onSubmittedWorkDone();
  const uploadSeconds = seconds(uploading);
  options.log?.(`sftc ${method}: host init ${initSeconds.toFixed(1)} s, weights on the device in ${uploadSeconds.toFixed(1)} s`);

  const s = trainSettings({});
  const batch = syntheticBatch(options.rows, options.seq, config.dims.vocab, s.seed);
  const losses: number[] = [];
  const samplesNs: number[] = [];
  let firstStepSeconds = 0;
  let profile: ProfileRow[] | undefined;
  try {
    for (let step = 1; step <= options.warmup + options.steps; step++) {
      const start = performance.now();
      backend.zeroGradients();
      const { lossSum, tokens } = await backend.forwardBackward(batch, 1 / labelTokens(batch));
      const norm = await backend.gradientNorm();
      const clip = Math.min(1, s.max_grad_norm / (norm + 1e-6));
      await backend.applyAdamW({ step, lr: s.lr, beta1: s.adam_beta1, beta2: s.adam_beta2, eps: s.adam_eps, weightDecay: s.weight_decay, gradScale: clip });
      await gpu.queue.onSubmittedWorkDone();
      const elapsedNs = (performance.now() - start) * 1e6;
      if (step === 1) firstStepSeconds = elapsedNs / 1e9;
      if (step > options.warmup) samplesNs.push(elapsedNs);
      losses.push(lossSum / tokens);
      options.log?.(`sftc ${method} step ${step}: ${(elapsedNs / 1e9).toFixed(2)} s, loss ${losses[losses.length - 1]}`);
    }
    if (options.profile && !gpu.hasTimestamps) options.log?.(`sftc ${method} profile: not taken, the adapter has no timestamp-query`);
    if (options.profile && gpu.hasTimestamps) {
      backend.zeroGradients();
      profile = kernelProfile((await backend.forwardBackward(batch, 1 / labelTokens(batch), { timestamps: true })).timings);
      options.log?.(`sftc ${method} profile: ${profile.map((r) => `${r.kernel} ${(r.ns / 1e6).toFixed(1)} ms`).join(", ")}`);
    }
    const errors = await gpu.takeErrors();
    if (errors.length) throw new Error(`the GPU reported: ${errors.map((d) => d.message).join("; ")}`);
  } finally {
    backend.destroy();
  }
  const medianNs = median(samplesNs);
  const trainableValues = model.value.trainable.reduce((n, t) => n + numel(t.shape), 0);
  return { initSeconds, uploadSeconds, firstStepSeconds, samplesNs, medianNs, tokensPerSecond: (options.rows * options.seq) / (medianNs / 1e9), losses, peakBytes: gpu.memory.peakBytes, trainableValues, ...(profile ? { profile } : {}) };
}

/** Runs bench/torch_peft_train.py with `options`' dimensions through `python` on `device`; any failure is an unavailable side. */
export function torchRun(options: E2eOptions, python: string, device: "cuda" | "cpu"): TorchSide {
  const d = modelConfig(options).dims;
  const s = trainSettings({});
  const spec = {
    hidden: d.hidden,
    ffn: d.ffn,
    heads: d.heads,
    layers: d.layers,
    vocab: d.vocab,
    seq: options.seq,
    rows: options.rows,
    rank: options.rank,
    alpha: options.alpha,
    warmup: options.torchWarmup,
    steps: options.torchSteps,
    methods: options.methods,
    dtypes: TORCH_DTYPES,
    device,
    seed: s.seed,
    lr: s.lr,
    max_grad_norm: s.max_grad_norm,
  };
  options.log?.(`PyTorch+PEFT: ${python} ${SCRIPT} on ${device}`);
  const ran = spawnSync(python, [SCRIPT, JSON.stringify(spec)], { encoding: "utf8", timeout: TORCH_TIMEOUT_MS, maxBuffer: 16 << 20 });
  const lastLine = (text: string | null) => text?.trim().split("\n").pop() ?? "";
  if (ran.error) return { available: false, why: `${python} ${SCRIPT} did not run: ${ran.error.message}` };
  if (ran.status !== 0) return { available: false, why: `${python} ${SCRIPT} exited with ${ran.status ?? ran.signal}: ${lastLine(ran.stderr)}` };
  try {
    return JSON.parse(lastLine(ran.stdout)) as TorchSide;
  } catch {
    return { available: false, why: `${python} ${SCRIPT} printed no JSON: ${lastLine(ran.stdout) || lastLine(ran.stderr)}` };
  }
}

const torchLabel = (r: TorchRow) => `PyTorch+PEFT ${r.method === "qlora" ? "QLoRA (bitsandbytes NF4)" : "LoRA"} ${r.dtype}`;
const sftcLabel = (r: SftcRow) => `sftc ${r.method === "qlora" ? "QLoRA" : "LoRA"} (${r.precision})`;
const torchTokensPerSecond = (r: TorchRow & { available: true }, options: E2eOptions) => (options.rows * options.seq) / (median(r.samples_ns) / 1e9);

/**
 * sftc over PyTorch for each sftc row: LoRA against PEFT LoRA in f32 (same precision) and bf16
 * (the usual one); QLoRA against bitsandbytes QLoRA in bf16, or, without it, PEFT LoRA bf16 as a
 * named stand-in.
 */
export function ratios(sftc: readonly SftcRow[], torch: TorchSide | undefined, options: E2eOptions): Ratio[] {
  if (!torch?.available) return [];
  const find = (method: Method, dtype: string) => torch.rows.find((r): r is TorchRow & { available: true } => r.method === method && r.dtype === dtype && r.available);
  const out: Ratio[] = [];
  for (const row of sftc) {
    if (!row.ok) continue;
    const pairs: [TorchRow & { available: true }, string | undefined][] = [];
    if (row.method === "lora") {
      for (const dtype of ["f32", "bf16"]) {
        const ref = find("lora", dtype);
        if (ref) pairs.push([ref, undefined]);
      }
    } else {
      const qlora = find("qlora", "bf16");
      const standIn = find("lora", "bf16");
      if (qlora) pairs.push([qlora, undefined]);
      else if (standIn) pairs.push([standIn, "stand-in: bitsandbytes is missing, so no PyTorch QLoRA ran; PEFT LoRA bf16 (16-bit base weights) is the nearest reference"]);
    }
    for (const [ref, note] of pairs) {
      out.push({
        sftc: sftcLabel(row),
        reference: torchLabel(ref),
        tokensPerSecond: row.tokensPerSecond / torchTokensPerSecond(ref, options),
        ...(ref.peak_bytes ? { peakMemory: row.peakBytes / ref.peak_bytes } : {}),
        ...(note ? { note } : {}),
      });
    }
  }
  return out;
}

/** sftc's runs of every method on `gpu`, in order (each backend freed before the next). */
export async function sftcRuns(gpu: GpuDevice, options: E2eOptions): Promise<SftcRow[]> {
  const rows: SftcRow[] = [];
  for (const method of options.methods) rows.push(await sftcRun(gpu, method, options));
  return rows;
}

/** Whether the report holds a failure: an sftc run that did not finish, or a loss that is not finite. */
export function reportFailed(report: E2eReport): boolean {
  return report.sftc.some((r) => !r.ok || r.losses.some((x) => !Number.isFinite(x)));
}

const lossList = (xs: readonly number[]) => xs.map((x) => x.toFixed(4)).join(", ");

/** The report as markdown: where and how it ran, one row per engine and precision, the ratios. */
export function reportMarkdown(r: E2eReport): string {
  const header = ["engine", "method and precision", "tokens/s", "median step (ms)", "peak memory", "losses (warm-up first)", "setup (s)"];
  const rows: string[][] = r.sftc.map((x) =>
    x.ok
      ? [
          "sftc (WebGPU)",
          `${x.method}: ${x.precision}`,
          x.tokensPerSecond.toFixed(1),
          (x.medianNs / 1e6).toFixed(1),
          formatBytes(x.peakBytes),
          lossList(x.losses),
          `init ${x.initSeconds.toFixed(1)}, upload ${x.uploadSeconds.toFixed(1)}, first step ${x.firstStepSeconds.toFixed(1)}`,
        ]
      : ["sftc (WebGPU)", `${x.method}: ${x.precision}`, "failed", "-", "-", x.why, "-"],
  );
  const torch = r.torch;
  if (torch && !torch.available) rows.push(["PyTorch+PEFT", "all", "not available", "-", "-", torch.why, "-"]);
  if (torch?.available) {
    for (const t of torch.rows) {
      rows.push(
        t.available
          ? [`PyTorch ${torch.torch} (${torch.device})`, `${t.method} ${t.dtype}`, torchTokensPerSecond(t, r.options).toFixed(1), (median(t.samples_ns) / 1e6).toFixed(1), t.peak_bytes ? formatBytes(t.peak_bytes) : "-", lossList(t.losses), t.setup_seconds.toFixed(1)]
          : [`PyTorch ${torch.torch}`, `${t.method} ${t.dtype}`, "not available", "-", "-", t.why, "-"],
      );
    }
  }
  const ratioRows = r.ratios.map((x) => [x.sftc, x.reference, x.tokensPerSecond?.toFixed(3) ?? "-", x.peakMemory?.toFixed(3) ?? "-", x.note ?? ""]);
  const versions = torch?.available ? `PyTorch side: python ${torch.python}, torch ${torch.torch} (CUDA ${torch.cuda}), transformers ${torch.transformers}, peft ${torch.peft}, bitsandbytes ${torch.bitsandbytes ?? "not installed"}, SDPA attention, gradient checkpointing, LoRA on q/k/v/o_proj.` : "";
  return [
    `## End-to-end training: ${r.model}`,
    "",
    `- card: ${r.card}`,
    `- driver: ${r.driver}`,
    `- kernels tuned at device open: ${r.tunings.length ? r.tunings.join("; ") : "none"}`,
    `- date: ${r.date}`,
    `- command: \`${r.command}\``,
    `- batch: ${r.options.rows} x ${r.options.seq} tokens, LoRA rank ${r.options.rank}, alpha ${r.options.alpha}; sftc ${r.options.warmup} warm-up step(s) then the median (the upper of an even count) of ${r.options.steps} timed optimizer step(s), PyTorch ${r.options.torchWarmup} and ${r.options.torchSteps}; a step is forward, backward, clipping and AdamW, ended by waiting for the device`,
    "- peak memory: sftc counts its own tensor buffers (weights, NF4 parts, adapters, moments, activation pool, scratch), not Dawn's internal allocations or pipelines; PyTorch's is torch.cuda.max_memory_allocated (tensors, not the allocator's cache or the CUDA context)",
    ...(versions ? [`- ${versions}`] : []),
    "",
    table(header, rows),
    "",
    ...(ratioRows.length ? ["Ratios (sftc / PyTorch):", "", table(["sftc", "reference", "tokens/s ratio", "peak memory ratio", "note"], ratioRows)] : ["Ratios: none (no PyTorch figures)."]),
    ...r.sftc.flatMap((x) =>
      x.ok && x.profile
        ? ["", `GPU time of one sftc ${x.method} forward and backward by kernel (every dispatch in its own timed pass, so no overlap; clipping and AdamW not included):`, "", profileTable(x.profile)]
        : [],
    ),
  ].join("\n");
}

function modelLabel(options: E2eOptions): string {
  const config = modelConfig(options);
  const d = config.dims;
  const shapes = buildFamilyGraph(families.baichuan7b, config, { batch: 1, seq: 2 });
  const parameters = shapes.ok ? [...shapes.value.weights.values()].reduce((n, p) => n + numel(p.shape), 0) : NaN;
  return `baichuan7b preset, random init: hidden ${d.hidden}, FFN ${d.ffn}, ${d.heads} heads, ${d.layers} layers, vocab ${d.vocab}, ${(parameters / 1e9).toFixed(2)} B parameters; LoRA on ${TARGETS.join(", ")}`;
}

/** Runs the sftc side on `gpu`, then (with `python`) the PyTorch side, and assembles the report. */
export async function benchE2eTrain(gpu: GpuDevice, options: E2eOptions, run: { command: string; torch?: { python: string; device: "cuda" | "cpu" }; beforeTorch?: () => void }): Promise<E2eReport> {
  const { name, description } = gpu.adapter;
  const card = name && description ? `${name} (${description})` : name || description;
  const sftc = await sftcRuns(gpu, options);
  run.beforeTorch?.();
  const torch = run.torch ? torchRun(options, run.torch.python, run.torch.device) : undefined;
  return {
    date: new Date().toISOString(),
    command: run.command,
    card,
    driver: machineFacts().nvidiaSmi ?? "no nvidia-smi on this machine",
    tunings: (selfCheckOf(gpu)?.tunings ?? []).map((t) => `${t.job}: ${t.chosen} (${tuningSource(t)})`),
    model: modelLabel(options),
    options,
    sftc,
    ...(torch ? { torch } : {}),
    ratios: ratios(sftc, torch, options),
  };
}

function cliOptions(): { options: E2eOptions; torch: boolean; out?: string } {
  const stop = (message: string): never => {
    console.error(`e2e-train: ${message}\n${USAGE}`);
    process.exit(2);
  };
  let v;
  try {
    v = parseArgs({
      options: {
        method: { type: "string", default: "lora" },
        layers: { type: "string" },
        seq: { type: "string" },
        rows: { type: "string" },
        rank: { type: "string" },
        warmup: { type: "string" },
        steps: { type: "string" },
        "torch-warmup": { type: "string" },
        "torch-steps": { type: "string" },
        torch: { type: "boolean", default: false },
        profile: { type: "boolean", default: false },
        dtype: { type: "string", default: "f32" },
        out: { type: "string" },
      },
    }).values;
  } catch (e) {
    return stop(e instanceof Error ? e.message : String(e));
  }
  const methods = v.method.split(",");
  if (!methods.every((m): m is Method => m === "lora" || m === "qlora")) stop(`--method takes lora, qlora or lora,qlora (got '${v.method}')`);
  const count = (name: string, text: string | undefined, fallback: number, min: number) => {
    if (text === undefined) return fallback;
    const n = Number(text);
    return Number.isInteger(n) && n >= min ? n : stop(`--${name} must be an integer >= ${min} (got '${text}')`);
  };
  const d = DEFAULT_OPTIONS;
  const options: E2eOptions = {
    methods: methods as Method[],
    layers: count("layers", v.layers, d.layers, 1),
    seq: count("seq", v.seq, d.seq, 2),
    rows: count("rows", v.rows, d.rows, 1),
    rank: count("rank", v.rank, d.rank, 1),
    alpha: d.alpha,
    warmup: count("warmup", v.warmup, d.warmup, 0),
    steps: count("steps", v.steps, d.steps, 1),
    torchWarmup: count("torch-warmup", v["torch-warmup"], d.torchWarmup, 0),
    torchSteps: count("torch-steps", v["torch-steps"], d.torchSteps, 1),
    profile: v.profile,
    dtype: (["f32", "bf16", "f16"].includes(v.dtype) ? v.dtype : stop(`--dtype takes f32, bf16 or f16 (got '${v.dtype}')`)) as WeightDType,
  };
  return { options, torch: v.torch, out: v.out };
}

async function main(): Promise<void> {
  const { options: given, torch, out } = cliOptions();
  const options: E2eOptions = { ...given, log: (line) => process.stderr.write(`${line}\n`) };
  const gpu = await openBenchDevice();
  const device = torchDeviceFor(gpu) === "cuda" ? "cuda" : "cpu";
  const command = ["node bin/run-ts.js bench/e2e-train.ts", ...process.argv.slice(2)].join(" ");
  // the device is closed before PyTorch starts, so its memory is PyTorch's
  const report = await benchE2eTrain(gpu, options, { command, ...(torch ? { torch: { python: device === "cuda" ? "python3" : TORCH_PYTHON, device } } : {}), beforeTorch: () => gpu.destroy() });
  console.log(reportMarkdown(report));
  if (out) writeFileSync(out, JSON.stringify(report, null, 2));
  process.exit(reportFailed(report) ? 1 : 0);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
