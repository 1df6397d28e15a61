// The training loop: optimizer steps of `grad_accum` micro-batches each, the loss normalized by
// the step's label tokens (see backend.ts), global-norm clipping, AdamW with a warm-up schedule,
// evaluation every `eval_every` steps and after the last, checkpoints every `save_every` steps
// and after the last, and a clean stop on request. Resuming from a checkpoint restores weights,
// moments, step, data position and random streams (the schedule is a function of the step), so
// the rest of the run is bit for bit the run that was never interrupted.
import { join } from "node:path";
import { diag, fail, ok, type Result } from "../../compiler/diagnostics.ts";
import { labelTokens, type Batch, type TrainingBackend } from "./backend.ts";
import { saveCheckpoint, type SavedCheckpoint } from "./checkpoint-store.ts";
import { writeCurves } from "./curves.ts";
import type { Json, TrainingData } from "./data-source.ts";
import { MetricsLog, type EvalRecord, type MetricsRecord, type StepRecord } from "./metrics.ts";
import { learningRateAt, totalSteps, type TrainSettings } from "./settings.ts";
import { readState, stateToWrite, type TensorLayout } from "./state-tensors.ts";

export const CHECKPOINTS_DIR = "checkpoints";

export interface LoopInput {
  settings: TrainSettings;
  backend: TrainingBackend;
  data: TrainingData;
  runDir: string;
  /** Heading of curves.html. */
  title: string;
  /** A checkpoint to continue from. */
  resume?: SavedCheckpoint;
  onRecord?: (record: MetricsRecord) => void;
  /** Polled after every step: true saves a checkpoint and ends the loop early. */
  stopRequested?: () => boolean;
}

export interface LoopResult {
  step: number;
  totalSteps: number;
  /** True when the loop ended on a stop request before the last step. */
  stopped: boolean;
  last?: StepRecord;
  lastEval?: EvalRecord;
}

/** What a checkpoint's `extra` holds besides the store's own fields. */
type CheckpointExtra = {
  elapsed: number;
  layout: Record<string, TensorLayout>;
};

/** Runs the loop to the last step (or a stop request). */
export async function trainLoop(input: LoopInput): Promise<Result<LoopResult>> {
  const { settings: s, backend, data, runDir } = input;
  const total = totalSteps(s, data.batchesPerEpoch);
  let step = 0;
  let elapsedBefore = 0;
  if (input.resume) {
    const restored = await restore(input.resume, backend, data);
    if (!restored.ok) return restored;
    step = input.resume.state.step;
    elapsedBefore = restored.value.elapsed;
  }
  const log = await MetricsLog.open(runDir, input.resume ? step : undefined);
  const started = performance.now();
  const elapsed = () => elapsedBefore + (performance.now() - started) / 1000;
  const record = async (r: MetricsRecord) => {
    await log.append(r);
    input.onRecord?.(r);
  };
  const evalBatches = s.eval_every !== undefined ? await data.evalBatches() : [];
  const result: LoopResult = { step, totalSteps: total, stopped: false };

  const save = async () => {
    const { tensors, layout } = stateToWrite(await backend.saveState());
    const extra: CheckpointExtra = { elapsed: elapsed(), layout };
    const state = { step, dataPosition: data.position(), rng: backend.randomStates(), scheduler: { step, total_steps: total }, extra };
    await saveCheckpoint(join(runDir, CHECKPOINTS_DIR), state, tensors, s.keep_checkpoints ?? 2);
    await writeCurves(runDir, input.title, log.records);
  };

  while (step < total) {
    const last = await optimizerStep(s, backend, data, step, total);
    step = last.step;
    last.elapsed = elapsed();
    result.last = last;
    result.step = step;
    await record(last);

    const evalDue = evalBatches.length > 0 && (step % s.eval_every! === 0 || step === total);
    if (evalDue) await record((result.lastEval = await evaluate(backend, evalBatches, step, elapsed())));
    const stop = step < total && (input.stopRequested?.() ?? false);
    if (step % s.save_every === 0 || step === total || stop) await save();
    if (stop) {
      result.stopped = true;
      break;
    }
  }
  if (step === result.totalSteps && !result.last) await writeCurves(runDir, input.title, log.records); // resumed at the end
  return ok(result);
}

/**
 * Update `step` (1-based) of `backend` at learning rate `lr` over `batches` (accumulated): gradients
 * zeroed, each batch's forward and backward with the loss a mean over all their label tokens, the
 * global gradient norm clipped, AdamW. The benches time exactly this.
 */
export async function optimizerUpdate(s: TrainSettings, backend: TrainingBackend, batches: readonly Batch[], step: number, lr: number): Promise<{ lossSum: number; labels: number; gradNorm: number }> {
  await backend.zeroGradients();
  const labels = batches.reduce((n, b) => n + labelTokens(b), 0);
  let lossSum = 0;
  for (const b of batches) lossSum += (await backend.forwardBackward(b, labels > 0 ? 1 / labels : 0)).lossSum;
  const gradNorm = await backend.gradientNorm();
  // torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is below 1
  const clip = s.max_grad_norm > 0 ? Math.min(1, s.max_grad_norm / (gradNorm + 1e-6)) : 1;
  await backend.applyAdamW({ step, lr, beta1: s.adam_beta1, beta2: s.adam_beta2, eps: s.adam_eps, weightDecay: s.weight_decay, gradScale: clip });
  return { lossSum, labels, gradNorm };
}

/** One optimizer update after `done` of `total`: its record, `elapsed` left for the caller. */
async function optimizerStep(s: TrainSettings, backend: TrainingBackend, data: TrainingData, done: number, total: number): Promise<StepRecord> {
  const t0 = performance.now();
  const batches: Batch[] = [];
  for (let k = 0; k < s.grad_accum; k++) batches.push(await data.next());
  const lr = learningRateAt(s, done, total);
  const { lossSum, labels, gradNorm } = await optimizerUpdate(s, backend, batches, done + 1, lr);
  const tokens = batches.reduce((n, b) => n + b.ids.length, 0);
  const seconds = (performance.now() - t0) / 1000;
  return {
    kind: "train",
    step: done + 1,
    epoch: ((done + 1) * s.grad_accum) / data.batchesPerEpoch,
    loss: labels > 0 ? lossSum / labels : 0,
    lr,
    grad_norm: gradNorm,
    tokens,
    label_tokens: labels,
    tokens_per_s: tokens / Math.max(seconds, 1e-9),
    elapsed: 0,
  };
}

async function evaluate(backend: TrainingBackend, batches: readonly Batch[], step: number, elapsed: number): Promise<EvalRecord> {
  let lossSum = 0;
  let tokens = 0;
  for (const b of batches) {
    const r = await backend.evaluate(b);
    lossSum += r.lossSum;
    tokens += r.tokens;
  }
  const loss = tokens > 0 ? lossSum / tokens : 0;
  return { kind: "eval", step, eval_loss: loss, eval_perplexity: Math.exp(loss), eval_tokens: tokens, elapsed };
}

/** Puts engine and data back where the checkpoint left them. */
async function restore(checkpoint: SavedCheckpoint, backend: TrainingBackend, data: TrainingData): Promise<Result<{ elapsed: number }>> {
  const mismatch = (why: string) =>
    fail<{ elapsed: number }>(diag("SFT5403", `cannot resume from ${checkpoint.dir}: ${why}`, { where: checkpoint.dir, hint: "resume with the same model, method and data, or start a new run" }));
  const extra = checkpoint.state.extra as Partial<CheckpointExtra> | undefined;
  if (!extra?.layout) return mismatch("its state.json lacks the tensor layout");
  const tensors = await readState(join(checkpoint.dir, "tensors.safetensors"), extra.layout);
  if (!tensors.ok) return tensors;
  const loadProblem = await backend.loadState(tensors.value);
  if (loadProblem) return mismatch(loadProblem);
  const sought = await data.seek(checkpoint.state.dataPosition as Json);
  if (!sought.ok) return sought;
  backend.setRandomStates(checkpoint.state.rng);
  return ok({ elapsed: extra.elapsed ?? 0 });
}
