// Exact resume: a run killed (SIGKILL) or stopped (SIGINT) after a checkpoint and resumed gives
// bit for bit the losses and weights of the run that was never interrupted.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readManifest } from "../../runtime/repo/run-record.ts";
import { loadLatestCheckpoint } from "../../runtime/train/checkpoint-store.ts";
import type { MetricsRecord } from "../../runtime/train/metrics.ts";
import { runTraining } from "../../runtime/train/run-training.ts";
import { expectOk } from "../support/result.ts";
import { settings, tinyBackend, tinyData } from "./support.ts";

const root = join(import.meta.dirname, "..", "..");
// 12 steps over 6 shuffled batches (2 epochs), checkpoints at 4, 8, 12, evaluation every 3
const SETTINGS = settings({ max_steps: 12, save_every: 4, eval_every: 3, grad_accum: 2 });

const records = (runDir: string): MetricsRecord[] =>
  readFileSync(join(runDir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
/** Every figure of the run that must not depend on interruptions (not the timings). */
const numerics = (rs: MetricsRecord[]) => rs.map((r) => (r.kind === "train" ? [r.step, r.loss, r.lr, r.grad_norm, r.label_tokens] : [r.step, r.eval_loss]));

async function uninterrupted() {
  const dir = mkdtempSync(join(tmpdir(), "sftc-train-full-"));
  const backend = tinyBackend();
  expectOk(await runTraining({ runDir: dir, settings: SETTINGS, backend, data: tinyData(), progress: false, handleSignals: false }));
  return { records: records(dir), weights: backend.saveState() };
}

/** Runs the child until it pauses at `pauseAt`, then sends `signal`; resolves with its exit and stdout. */
function childRun(dir: string, pauseAt: number, pauseMs: number, signal: NodeJS.Signals): Promise<{ code: number | null; killed: NodeJS.Signals | null; out: string; err: string }> {
  const child = spawn(process.execPath, [join(root, "bin", "run-ts.js"), join(root, "test", "train", "train-child.ts"), dir, JSON.stringify(SETTINGS), String(pauseAt), String(pauseMs)], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stderr.on("data", (d) => (err += d));
  child.stdout.on("data", (d) => {
    out += d;
    if (out.includes("paused") && !child.killed) child.kill(signal);
  });
  return new Promise((resolve) => child.on("close", (code, killed) => resolve({ code, killed, out, err })));
}

async function resumeInProcess(dir: string) {
  const backend = tinyBackend(99); // different initial weights: everything must come from the checkpoint
  const outcome = expectOk(await runTraining({ runDir: dir, settings: SETTINGS, backend, data: tinyData(), resume: true, progress: false, handleSignals: false }));
  return { outcome, records: records(dir), weights: backend.saveState() };
}

test("SIGKILL after the step-4 checkpoint, then resume: losses and weights equal the uninterrupted run bitwise", async () => {
  const full = await uninterrupted();
  const dir = mkdtempSync(join(tmpdir(), "sftc-train-kill-"));
  const killed = await childRun(dir, 6, 60_000, "SIGKILL");
  assert.is(killed.killed, "SIGKILL");
  const before = records(dir);
  assert.is(before.filter((r) => r.kind === "train").length, 6, "the child logged 6 steps before it was killed");
  const latest = expectOk(await loadLatestCheckpoint(join(dir, "checkpoints")));
  assert.is(latest?.state.step, 4);
  assert.is((await readManifest(dir)).ok && expectOk(await readManifest(dir)).status, "running", "a killed run leaves its manifest running");

  const resumed = await resumeInProcess(dir);
  assert.is(resumed.outcome.status, "finished");
  assert.equal(numerics(resumed.records), numerics(full.records), "steps 5 and 6 are redone, not duplicated");
  assert.equal(resumed.weights.map((t) => [t.name, Array.from(t.data)]), full.weights.map((t) => [t.name, Array.from(t.data)]));
  assert.is(expectOk(await readManifest(dir)).status, "finished");
});

test("SIGINT stops after the current step with a checkpoint; resuming finishes the run exactly", async () => {
  const full = await uninterrupted();
  const dir = mkdtempSync(join(tmpdir(), "sftc-train-int-"));
  const stopped = await childRun(dir, 5, 300, "SIGINT");
  assert.is(stopped.code, 0, stopped.err);
  assert.match(stopped.err, /SIGINT: saving a checkpoint after this step, then stopping/);
  const outcome = JSON.parse(stopped.out.split("\n").filter(Boolean).at(-1)!);
  assert.is(outcome.value.status, "stopped");
  const at = outcome.value.step as number;
  assert.ok(at >= 5 && at < 12, `stopped at step ${at}`);
  assert.is(expectOk(await loadLatestCheckpoint(join(dir, "checkpoints")))?.state.step, at, "a checkpoint at the stopping step");
  const manifest = expectOk(await readManifest(dir));
  assert.is(manifest.status, "stopped");
  assert.is(manifest.metrics.stopped_at_step, at);

  const resumed = await resumeInProcess(dir);
  assert.equal(numerics(resumed.records), numerics(full.records));
  assert.equal(resumed.weights.map((t) => Array.from(t.data)), full.weights.map((t) => Array.from(t.data)));
});

test.run();
