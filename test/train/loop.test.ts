// The training loop on the float64 CPU engine: learning, determinism, accumulation, epochs,
// settings and checkpoint errors, and the run directory's records.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Batch } from "../../runtime/train/backend.ts";
import { createCpuBackend } from "../../runtime/train/cpu-backend.ts";
import { MemoryData } from "../../runtime/train/data-source.ts";
import type { MetricsRecord, StepRecord } from "../../runtime/train/metrics.ts";
import { runTraining, type RunTrainingOptions } from "../../runtime/train/run-training.ts";
import { learningRateAt, totalSteps, trainSettings } from "../../runtime/train/settings.ts";
import { assertClose } from "../support/numeric.ts";
import { expectError, expectOk } from "../support/result.ts";
import { patternBatches, settings, TINY, tinyBackend, tinyData } from "./support.ts";

const root = join(import.meta.dirname, "..", "..");
const tempRun = () => mkdtempSync(join(tmpdir(), "sftc-train-"));

/** A run of the tiny model (seed 7) in a fresh directory unless `over` says otherwise. */
async function train(over: Partial<Omit<RunTrainingOptions, "backend">> = {}) {
  const records: MetricsRecord[] = [];
  const backend = tinyBackend();
  const options: RunTrainingOptions = { runDir: tempRun(), settings: settings(), backend, data: tinyData(), progress: false, handleSignals: false, ...over };
  const outcome = await runTraining({ ...options, onProgress: (r) => records.push(r) });
  return { outcome, records, steps: records.filter((r): r is StepRecord => r.kind === "train"), runDir: options.runDir, backend };
}

test("the loss falls: 30 steps of the tiny model learn the token pattern", async () => {
  const { steps, records } = await train({ settings: settings({ max_steps: 30, eval_every: 10 }) });
  const mean = (xs: StepRecord[]) => xs.reduce((a, s) => a + s.loss, 0) / xs.length;
  const [first, last] = [mean(steps.slice(0, 5)), mean(steps.slice(-5))];
  console.log(`    mean loss of steps 1-5: ${first.toFixed(4)}, steps 26-30: ${last.toFixed(4)}`);
  assert.ok(first > Math.log(TINY.vocab) - 0.2, "starts near ln(vocab)");
  assert.ok(last < first - 0.8, `loss fell by ${(first - last).toFixed(3)}`);
  const evals = records.flatMap((r) => (r.kind === "eval" ? [r.eval_loss] : []));
  assert.is(evals.length, 3);
  assert.ok(evals[2] < evals[0] - 0.3, `held-out loss ${evals.map((e) => e.toFixed(3))}`);
});

test("two runs with the same seeds give bitwise identical losses, norms and weights", async () => {
  const [a, b] = [await train(), await train()];
  assert.equal(a.steps.map((s) => [s.loss, s.grad_norm, s.lr]), b.steps.map((s) => [s.loss, s.grad_norm, s.lr]));
  assert.equal(a.backend.saveState().map((t) => Array.from(t.data)), b.backend.saveState().map((t) => Array.from(t.data)));
  const other = await train({ data: tinyData(12) });
  assert.not.equal(other.steps.map((s) => s.loss), a.steps.map((s) => s.loss), "another data seed gives another run");
});

/** Rows of `parts` stacked into one batch. */
const stack = (parts: Batch[]): Batch => ({
  rows: parts.reduce((n, p) => n + p.rows, 0),
  seq: parts[0].seq,
  ids: Int32Array.from(parts.flatMap((p) => Array.from(p.ids))),
  labels: Int32Array.from(parts.flatMap((p) => Array.from(p.labels))),
});

test("grad accumulation 2 x batch 2 equals batch 4: the loss is normalized by the step's label tokens", async () => {
  const halves = patternBatches(5, 6, 2, 8); // label counts differ between micro-batches
  const counts = halves.map((h) => h.labels.filter((l) => l !== -100).length);
  assert.ok(new Set(counts).size > 1, `micro-batches with different label counts: ${counts}`);
  const whole = [0, 2, 4].map((i) => stack([halves[i], halves[i + 1]]));
  const s = settings({ max_steps: 6, max_grad_norm: 0.5 });
  const accumulated = await train({ settings: { ...s, grad_accum: 2 }, data: new MemoryData(halves, [], { shuffle: false }) });
  const single = await train({ settings: { ...s, grad_accum: 1 }, data: new MemoryData(whole, [], { shuffle: false }) });
  assertClose(accumulated.steps.map((x) => x.loss), single.steps.map((x) => x.loss), 1e-13, "losses");
  assertClose(accumulated.steps.map((x) => x.grad_norm), single.steps.map((x) => x.grad_norm), 1e-13, "gradient norms");
  const flat = (r: typeof single) => r.backend.saveState().flatMap((t) => Array.from(t.data));
  assertClose(flat(accumulated), flat(single), 1e-13, "final weights and moments");
});

test("epochs count floor(batches / grad_accum) steps each; fractional epochs round up", async () => {
  assert.is(totalSteps(settings({ max_steps: undefined, epochs: 2, grad_accum: 2 }), 7), 6);
  assert.is(totalSteps(settings({ max_steps: undefined, epochs: 1.5, grad_accum: 1 }), 5), 8);
  assert.is(totalSteps(settings({ max_steps: undefined }), 6), 6, "one epoch by default");
  const { steps } = await train({ settings: settings({ max_steps: undefined, epochs: 2, grad_accum: 2 }) });
  assert.equal(steps.map((s) => s.epoch), [1, 2, 3, 4, 5, 6].map((k) => k / 3));
});

test("the quickstart pipeline's resolved train block reads as loop settings", async () => {
  const resolved = JSON.parse(execFileSync(process.execPath, [join(root, "bin", "sftc.js"), "explain", join(root, "pipelines", "quickstart.sft")], { encoding: "utf8" }));
  const s = trainSettings(resolved.train);
  assert.equal([s.max_steps, s.grad_accum, s.lr, s.schedule, s.max_grad_norm, s.seed, s.save_every, s.eval_every], [60, 1, 0.01, { type: "cosine", warmup_steps: 2, min_lr: 0 }, 1, 42, 20, 20]);
  assert.is(totalSteps(s, 100), 60);
  assert.is(learningRateAt(s, 1, 60), 0.005);
});

test("settings the loop cannot run are SFT5402 diagnostics", async () => {
  const sgd = expectError(await runTraining({ runDir: tempRun(), settings: settings({ optimizer: "sgd" }), backend: tinyBackend(), data: tinyData(), progress: false }));
  assert.is(sgd.code, "SFT5402");
  assert.match(sgd.hint!, /adamw/);
  const small = expectError(await runTraining({ runDir: tempRun(), settings: settings({ max_steps: undefined, grad_accum: 8 }), backend: tinyBackend(), data: tinyData(), progress: false }));
  assert.is(small.code, "SFT5402");
  assert.match(small.message, /6 micro-batches, fewer than grad_accum = 8/);
});

test("resuming with another model is SFT5403 naming the tensor; a broken resume path is SFT5401", async () => {
  const { runDir } = await train({ settings: settings({ max_steps: 4 }) });
  const wider = expectOk(createCpuBackend({ model: { ...TINY, ffn: 48 }, init: { seed: 1 } }));
  const e = expectError(await runTraining({ runDir, settings: settings({ max_steps: 8 }), backend: wider, data: tinyData(), resume: true, progress: false, handleSignals: false }));
  assert.is(e.code, "SFT5403");
  assert.match(e.message, /layers\.0\.mlp\.gate_up\.weight has 1024 values in the checkpoint, the model needs 1536/);
  const missing = expectError(await runTraining({ runDir: tempRun(), settings: settings(), backend: tinyBackend(), data: tinyData(), resume: join(runDir, "checkpoints", "step-00000003"), progress: false }));
  assert.is(missing.code, "SFT5401");
});

test("a fresh run in a directory that holds checkpoints is refused (SFT5402): it would mix two runs", async () => {
  const { runDir } = await train({ settings: settings({ max_steps: 4 }) });
  const e = expectError(await runTraining({ runDir, settings: settings(), backend: tinyBackend(), data: tinyData(), progress: false }));
  assert.is(e.code, "SFT5402");
  assert.match(e.message, /already holds checkpoints \(up to step 4\)/);
});

test("resume_from a checkpoint directory continues from that step", async () => {
  const { runDir } = await train({ settings: settings({ max_steps: 8, save_every: 4, keep_checkpoints: 3 }) });
  const other = tempRun();
  const r = await train({ runDir: other, resume: join(runDir, "checkpoints", "step-00000004") });
  assert.is(r.steps[0].step, 5);
  assert.is(expectOk(r.outcome).step, 12);
});

test("metrics.jsonl has one well-formed line per step and per evaluation; the manifest records the end", async () => {
  const { runDir } = await train({ settings: settings({ max_steps: 7, eval_every: 3 }) });
  const lines = readFileSync(join(runDir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as MetricsRecord);
  assert.equal(lines.map((r) => `${r.kind}${r.step}`), ["train1", "train2", "train3", "eval3", "train4", "train5", "train6", "eval6", "train7", "eval7"]);
  for (const r of lines) {
    const keys = r.kind === "train" ? ["step", "epoch", "loss", "lr", "grad_norm", "tokens", "label_tokens", "tokens_per_s", "elapsed"] : ["step", "eval_loss", "eval_perplexity", "eval_tokens", "elapsed"];
    for (const k of keys) assert.ok(Number.isFinite((r as unknown as Record<string, number>)[k]), `${r.kind} ${r.step}: ${k}`);
    if (r.kind === "train") assert.is(r.tokens, 16);
    if (r.kind === "eval") assert.ok(Math.abs(r.eval_perplexity - Math.exp(r.eval_loss)) < 1e-12);
  }
  const manifest = JSON.parse(readFileSync(join(runDir, "manifest.json"), "utf8"));
  assert.is(manifest.status, "finished");
  assert.is(manifest.metrics.steps, 7);
  assert.is(manifest.metrics.eval_loss, (lines.at(-1) as { eval_loss: number }).eval_loss);
});

test("curves.html is one self-contained page with loss, lr and gradient-norm charts", async () => {
  const { runDir, steps } = await train({ settings: settings({ max_steps: 9, eval_every: 3 }) });
  const html = readFileSync(join(runDir, "curves.html"), "utf8");
  assert.match(html, /^<!DOCTYPE html>/);
  assert.not.match(html, /<script|src=|href=/i, "no scripts or external resources");
  assert.is(html.match(/<svg /g)?.length, 3);
  assert.is(html.match(/<\/svg>/g)?.length, 3);
  for (const title of ["Loss", "Learning rate", "Gradient norm"]) assert.ok(html.includes(`<h2>${title}`), title);
  const polylines = [...html.matchAll(/<polyline points="([^"]+)"/g)].map((m) => m[1].split(" ").length);
  assert.equal(polylines, [steps.length, 3, steps.length, steps.length], "train loss, eval loss, lr, grad norm");
  assert.is(html.match(/<circle /g)?.length, 3, "a marker per evaluation");
});

test.run();
