// The entry point of a training run: checks the settings, finds the checkpoint to resume from,
// writes the run manifest (running, then finished or failed with the final metrics), shows
// progress, turns SIGINT/SIGTERM into "save a checkpoint and stop", and runs the loop.
import { existsSync } from "node:fs";
import { basename, join } from "node:path";
import { diag, fail, ok, type Result } from "../../compiler/diagnostics.ts";
import type { Lock } from "../repo/lock.ts";
import { gitState, readManifest, writeManifest, type RunManifest } from "../repo/run-record.ts";
import type { TrainingBackend } from "./backend.ts";
import { loadCheckpointAt, loadLatestCheckpoint, type SavedCheckpoint } from "./checkpoint-store.ts";
import type { TrainingData } from "./data-source.ts";
import { CHECKPOINTS_DIR, trainLoop, type LoopResult } from "./loop.ts";
import type { MetricsRecord } from "./metrics.ts";
import { progressReporter, type ProgressSink } from "./progress.ts";
import { checkSettings, totalSteps, type TrainSettings } from "./settings.ts";

export interface RunTrainingOptions {
  /** The run directory: manifest.json, metrics.jsonl, curves.html, checkpoints/. */
  runDir: string;
  /** The resolved pipeline's `train` block. */
  settings: TrainSettings;
  backend: TrainingBackend;
  data: TrainingData;
  /**
   * true: continue from this run directory's latest checkpoint (a fresh start when there is
   * none); a path: a checkpoints directory or one `step-NNNNNNNN` checkpoint to continue from.
   */
  resume?: boolean | string;
  /** Called with every metrics record (steps and evaluations). */
  onProgress?: (record: MetricsRecord) => void;
  /** Where the progress bar or lines go (default stderr); false for none. */
  progress?: ProgressSink | false;
  /** What the manifest records about the pipeline. */
  pipeline?: { name: string; resolved: unknown; lock?: Lock; dir?: string };
  /** Install SIGINT/SIGTERM handlers that stop cleanly (default true). */
  handleSignals?: boolean;
}

export interface TrainingOutcome {
  status: "finished" | "stopped";
  step: number;
  totalSteps: number;
  /** Final figures, as written to the manifest. */
  metrics: Record<string, number>;
}

async function findCheckpoint(runDir: string, resume: boolean | string | undefined): Promise<Result<SavedCheckpoint | undefined>> {
  const own = join(runDir, CHECKPOINTS_DIR);
  if (resume === true) return loadLatestCheckpoint(own);
  // new checkpoints would be pruned against the old ones by step number: never mix two runs
  const existing = await loadLatestCheckpoint(own);
  if (!existing.ok || existing.value) {
    const at = existing.ok ? ` (up to step ${existing.value!.state.step})` : "";
    return fail(diag("SFT5402", `the run directory ${runDir} already holds checkpoints${at}`, { where: own, hint: "resume that run, or start this one in a new run directory" }));
  }
  if (resume === undefined || resume === false) return ok(undefined);
  if (existsSync(join(resume, "state.json"))) return loadCheckpointAt(resume);
  const latest = await loadLatestCheckpoint(resume);
  if (!latest.ok || latest.value) return latest;
  return fail(diag("SFT5401", `no checkpoint at ${resume}`, { where: resume, hint: "point train.resume_from at a run's checkpoints directory or one of its step-NNNNNNNN directories" }));
}

function finalMetrics(r: LoopResult): Record<string, number> {
  const m: Record<string, number> = { steps: r.step };
  if (r.last) Object.assign(m, { loss: r.last.loss, lr: r.last.lr, epoch: r.last.epoch, elapsed_s: r.last.elapsed, tokens_per_s: r.last.tokens_per_s });
  if (r.lastEval) Object.assign(m, { eval_loss: r.lastEval.eval_loss, eval_perplexity: r.lastEval.eval_perplexity });
  if (r.stopped) m.stopped_at_step = r.step;
  return m;
}

/** Trains to the end (or a signal), keeping the run directory complete at every checkpoint. */
export async function runTraining(o: RunTrainingOptions): Promise<Result<TrainingOutcome>> {
  const checked = checkSettings(o.settings, o.data.batchesPerEpoch);
  if (!checked.ok) return checked;
  const checkpoint = await findCheckpoint(o.runDir, o.resume);
  if (!checkpoint.ok) return checkpoint;

  const previous = await readManifest(o.runDir);
  const manifest: RunManifest = {
    runId: previous.ok ? previous.value.runId : basename(o.runDir),
    pipeline: o.pipeline?.name ?? (previous.ok ? previous.value.pipeline : basename(o.runDir)),
    startedAt: previous.ok && checkpoint.value ? previous.value.startedAt : new Date().toISOString(),
    status: "running",
    resolved: o.pipeline?.resolved ?? (previous.ok ? previous.value.resolved : { train: o.settings }),
    lock: o.pipeline?.lock,
    git: await gitState(o.pipeline?.dir ?? process.cwd()),
    seed: o.settings.seed,
    device: o.backend.device,
    metrics: {},
  };
  await writeManifest(o.runDir, manifest);

  let stopRequested = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopRequested) process.exit(signal === "SIGINT" ? 130 : 143); // a second signal: stop now
    stopRequested = true;
    process.stderr.write(`\n${signal}: saving a checkpoint after this step, then stopping (send it again to quit at once)\n`);
  };
  const signals: NodeJS.Signals[] = o.handleSignals === false ? [] : ["SIGINT", "SIGTERM"];
  for (const s of signals) process.on(s, onSignal);

  const first = checkpoint.value?.state.step ?? 0;
  const sink = o.progress === undefined ? process.stderr : o.progress;
  const progress = sink ? progressReporter(sink, { totalSteps: totalSteps(o.settings, o.data.batchesPerEpoch), firstStep: first, logEvery: o.settings.log_every, memoryBytes: () => o.backend.memoryBytes?.() }) : undefined;
  try {
    const result = await trainLoop({
      settings: o.settings,
      backend: o.backend,
      data: o.data,
      runDir: o.runDir,
      title: `${manifest.pipeline} (${manifest.runId})`,
      resume: checkpoint.value,
      onRecord: (r) => {
        progress?.report(r);
        o.onProgress?.(r);
      },
      stopRequested: () => stopRequested,
    });
    progress?.finish();
    if (!result.ok) {
      await writeManifest(o.runDir, { ...manifest, status: "failed", finishedAt: new Date().toISOString() });
      return result;
    }
    const metrics = finalMetrics(result.value);
    const status = result.value.stopped ? "stopped" : "finished";
    await writeManifest(o.runDir, { ...manifest, status, finishedAt: new Date().toISOString(), metrics });
    return ok({ status, step: result.value.step, totalSteps: result.value.totalSteps, metrics });
  } catch (error) {
    progress?.finish();
    await writeManifest(o.runDir, { ...manifest, status: "failed", finishedAt: new Date().toISOString() });
    throw error;
  } finally {
    for (const s of signals) process.off(s, onSignal);
  }
}
