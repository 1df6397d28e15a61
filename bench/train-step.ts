// The training step benchmark: the quickstart pipeline's tiny model with its LoRA method, one
// optimizer step (forward, backward, global-norm clipping, AdamW on the trainable tensors) on a
// fixed seeded batch, timed on the adapter by sftc's GPU engine and, in the same run, in PyTorch
// CPU with the model.py sftc generates for the family, loaded with the same initial weights.
// The first step's loss of both is reported: equal losses show the two ran the same model.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { checkFile } from "../compiler/check/check.ts";
import type { ResolvedPipeline } from "../compiler/check/resolve.ts";
import { numel, topoSort } from "../compiler/ir/node.ts";
import { torchModelSource } from "../runtime/export/torch/model-py.ts";
import type { GpuDevice } from "../runtime/gpu/device.ts";
import { prepareTraining, type TrainingSetup } from "../runtime/pipeline/training-setup.ts";
import { Random } from "../runtime/random.ts";
import { appliesWeightDecay, IGNORE_INDEX, type Batch, type TrainingBackend } from "../runtime/train/backend.ts";
import { optimizerUpdate } from "../runtime/train/loop.ts";
import { GpuBackend } from "../runtime/train/gpu-backend.ts";
import { trainSettings, type TrainSettings } from "../runtime/train/settings.ts";
import type { StepSizes } from "./sizes.ts";

/** Largest relative difference of the first step's loss, sftc against PyTorch, for the same model. */
export const FIRST_LOSS_TOLERANCE = 1e-4;

export const QUICKSTART = resolve(import.meta.dirname, "../pipelines/quickstart.sft");
const SCRIPT = resolve(import.meta.dirname, "torch_train_step.py");
/** Debian's Python, the one with PyTorch (the python3 on PATH may lack it). */
export const TORCH_PYTHON = "/usr/bin/python3";

/** Step times of one engine: warm-up steps are run, not timed. */
export interface StepTiming {
  /** Wall-clock time of every timed step, ns. */
  samplesNs: number[];
  medianNs: number;
  /** Tokens of the batch (rows x seq) per second at the median step time. */
  tokensPerSecond: number;
  /** Loss of every step, warm-up included; the first is the initial weights' loss. */
  losses: number[];
}

export type TorchStep = ({ available: true; torch: string; threads: number; python: string; blas: string[] } & StepTiming) | { available: false; why: string };

export interface TrainStepResult {
  pipeline: string;
  /** Family, method and dimensions in words. */
  model: string;
  trainableTensors: number;
  trainableValues: number;
  rows: number;
  seq: number;
  warmup: number;
  steps: number;
  sftc: StepTiming & { device: string };
  torch: TorchStep;
  /** sftc tokens/s over PyTorch tokens/s (> 1: sftc is faster); absent without PyTorch. */
  ratio?: number;
  /** |first loss sftc - first loss PyTorch| / |first loss PyTorch|; absent without PyTorch. */
  firstLossDifference?: number;
}

/** The quickstart pipeline resolved; its diagnostics are a broken repository, not a user error. */
export function quickstartPipeline(): ResolvedPipeline {
  const checked = checkFile(QUICKSTART);
  const errors = checked.diagnostics.filter((d) => d.severity === "error");
  if (errors.length || checked.pipelines.length !== 1) throw new Error(`${QUICKSTART}: ${errors.map((d) => `${d.code} ${d.message}`).join("; ")}`);
  return checked.pipelines[0];
}

/** A seeded batch of random tokens, every position but each row's last labelled with the next token. */
export function syntheticBatch(rows: number, seq: number, vocab: number, seed: number): Batch {
  const random = new Random(seed);
  const ids = Int32Array.from({ length: rows * seq }, () => 3 + random.int(vocab - 3));
  const labels = ids.map((_, i) => ((i + 1) % seq === 0 ? IGNORE_INDEX : ids[i + 1]));
  return { rows, seq, ids, labels };
}

/** The middle sample (the upper one of an even count). */
export function median(samples: readonly number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function timing(samplesNs: number[], losses: number[], tokens: number): StepTiming {
  const medianNs = median(samplesNs);
  return { samplesNs, medianNs, tokensPerSecond: tokens / (medianNs / 1e9), losses };
}

/** Optimizer update `step` on one batch as the training loop makes it (constant learning rate), with its mean loss and its wall time until the GPU finished, in ns. */
export async function timedUpdate(gpu: GpuDevice, s: TrainSettings, backend: TrainingBackend, batch: Batch, step: number): Promise<{ loss: number; ns: number }> {
  const start = performance.now();
  const { lossSum, labels } = await optimizerUpdate(s, backend, [batch], step, s.lr);
  await gpu.queue.onSubmittedWorkDone();
  return { loss: lossSum / labels, ns: (performance.now() - start) * 1e6 };
}

// The training loop's optimizer steps, timed.
async function gpuSteps(gpu: GpuDevice, setup: TrainingSetup, batch: Batch, s: TrainSettings, sizes: StepSizes): Promise<StepTiming & { device: string }> {
  const created = GpuBackend.create(gpu, setup.model, setup.weights, { nf4: setup.nf4 });
  if (!created.ok) throw new Error(created.diagnostics.map((d) => `${d.code} ${d.message}`).join("; "));
  const backend = created.value;
  const losses: number[] = [];
  const samples: number[] = [];
  try {
    for (let step = 1; step <= sizes.warmup + sizes.steps; step++) {
      const { loss, ns } = await timedUpdate(gpu, s, backend, batch, step);
      losses.push(loss);
      if (step > sizes.warmup) samples.push(ns);
    }
  } finally {
    backend.destroy();
  }
  return { ...timing(samples, losses, batch.rows * batch.seq), device: backend.device };
}

// The same step in PyTorch CPU, through bench/torch_train_step.py in a scratch directory.
function torchSteps(setup: TrainingSetup, batch: Batch, s: TrainSettings, sizes: StepSizes, python: string): TorchStep {
  const { family, config } = setup.generator;
  const lora = setup.method.kind === "lora" ? { rank: setup.method.rank, alpha: setup.method.alpha, dropout: 0, targets: setup.method.targets } : null;
  const source = torchModelSource(family, config, lora);
  if (!source.ok) return { available: false, why: `model.py was not generated: ${source.diagnostics.map((d) => d.message).join("; ")}` };
  const dir = mkdtempSync(join(tmpdir(), "sftc-bench-step-"));
  try {
    writeFileSync(join(dir, "model.py"), source.value);
    // every weight the graph reads, with its shape, in one float32 file
    const params = topoSort([setup.model.lossFor(batch.rows, batch.seq)]).filter((n) => n.op === "param");
    const values = new Float32Array(params.reduce((n, p) => n + numel(p.shape), 0));
    let at = 0;
    for (const p of params) {
      values.set(setup.weights.get(p.attrs.name!)!, at);
      at += numel(p.shape);
    }
    writeFileSync(join(dir, "weights.f32"), new Uint8Array(values.buffer)); // the host is little-endian (x86, arm)
    const trainable = setup.model.trainable.map((t) => t.name);
    const spec = {
      weights: params.map((p) => [p.attrs.name, p.shape]),
      trainable,
      decayed: trainable.filter(appliesWeightDecay),
      rows: batch.rows,
      seq: batch.seq,
      ids: Array.from(batch.ids),
      labels: Array.from(batch.labels),
      lr: s.lr,
      beta1: s.adam_beta1,
      beta2: s.adam_beta2,
      eps: s.adam_eps,
      weight_decay: s.weight_decay,
      max_grad_norm: s.max_grad_norm,
      warmup: sizes.warmup,
      steps: sizes.steps,
    };
    writeFileSync(join(dir, "step.json"), JSON.stringify(spec));
    let out: string;
    try {
      out = execFileSync(python, [SCRIPT, dir], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 16 << 20 });
    } catch (e) {
      const stderr = (e as { stderr?: string }).stderr?.trim().split("\n").pop();
      return { available: false, why: `${python} ${SCRIPT} did not run: ${stderr || (e instanceof Error ? e.message : String(e))}` };
    }
    const parsed = JSON.parse(out) as { torch: string; threads: number; blas: string[]; losses: number[]; samplesNs: number[] };
    return { available: true, torch: parsed.torch, threads: parsed.threads, blas: parsed.blas, python, ...timing(parsed.samplesNs, parsed.losses, batch.rows * batch.seq) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Times the quickstart's training step on `gpu` and in PyTorch CPU (through `python`) at `sizes`. */
export async function benchTrainingStep(gpu: GpuDevice, sizes: StepSizes, python = TORCH_PYTHON): Promise<TrainStepResult> {
  const pipeline = quickstartPipeline();
  const prepared = await prepareTraining(pipeline);
  if (!prepared.ok) throw new Error(prepared.diagnostics.map((d) => `${d.code} ${d.message}`).join("; "));
  const setup = prepared.value;
  const settings = trainSettings(pipeline.train);
  const d = setup.generator.config.dims;
  const batch = syntheticBatch(sizes.rows, sizes.seq, d.vocab, settings.seed);
  const sftc = await gpuSteps(gpu, setup, batch, settings, sizes);
  const torch = torchSteps(setup, batch, settings, sizes, python);
  const method = setup.method.kind === "lora" ? `LoRA rank ${setup.method.rank} on ${setup.method.targets.join(", ")}` : "full";
  const trainable = setup.model.trainable;
  return {
    pipeline: `${pipeline.name} (pipelines/quickstart.sft)`,
    model: `${setup.generator.family.name}, ${method}, plus ${trainable.filter((t) => !t.name.includes("lora_")).map((t) => t.name).join(", ") || "nothing else"}; hidden ${d.hidden}, ${d.layers} layers, ${d.heads} heads, vocab ${d.vocab}, f32`,
    trainableTensors: trainable.length,
    trainableValues: trainable.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0),
    rows: batch.rows,
    seq: batch.seq,
    warmup: sizes.warmup,
    steps: sizes.steps,
    sftc,
    torch,
    ratio: torch.available ? sftc.tokensPerSecond / torch.tokensPerSecond : undefined,
    firstLossDifference: torch.available ? Math.abs(sftc.losses[0] - torch.losses[0]) / Math.abs(torch.losses[0]) : undefined,
  };
}
