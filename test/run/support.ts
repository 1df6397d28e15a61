// Shared by the run tests: pipelines resolved with overrides, training runs through the loop on a
// chosen engine (the loss of every step), sandboxed copies of a pipeline with the bundled data,
// and `sftc` run in-process with captured output.
import { copyFileSync, cpSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import type { Io } from "../../cli/io.ts";
import { main } from "../../cli/main.ts";
import { checkFile } from "../../compiler/check/check.ts";
import type { ResolvedPipeline } from "../../compiler/check/resolve.ts";
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { prepareTraining, type TrainingSetup } from "../../runtime/pipeline/training-setup.ts";
import type { TrainingBackend } from "../../runtime/train/backend.ts";
import { GpuBackend } from "../../runtime/train/gpu-backend.ts";
import { trainLoop } from "../../runtime/train/loop.ts";
import { trainSettings } from "../../runtime/train/settings.ts";
import { expectOk } from "../support/result.ts";
import { createEngine } from "../../runtime/pipeline/run-job.ts";

export const ROOT = resolve(import.meta.dirname, "../..");
export const QUICKSTART = join(ROOT, "pipelines/quickstart.sft");

/** A fresh temporary directory. */
export function tempDir(label: string): string {
  return mkdtempSync(join(tmpdir(), `sftc-${label}-`));
}

/** The one pipeline of `file` with `--set` overrides; a diagnostic fails the test. */
export function resolvedPipeline(file: string, overrides: string[]): ResolvedPipeline {
  const checked = checkFile(file, { overrides });
  const errors = checked.diagnostics.filter((d) => d.severity === "error");
  if (errors.length || checked.pipelines.length !== 1) throw new Error(`${file}: ${errors.map((d) => `${d.code} ${d.message}`).join("; ")}`);
  return checked.pipelines[0];
}

/** The engine of a setup as `sftc run` makes it: the GPU one on `gpu`, else the float64 CPU reference. */
export function engineFor(setup: TrainingSetup, gpu?: GpuDevice, checkpointing = false): TrainingBackend {
  return expectOk(createEngine(setup, gpu, checkpointing));
}

/** Trains `pipeline` through the loop on the GPU (or the CPU engine) and returns every step's loss. */
export async function stepLosses(pipeline: ResolvedPipeline, gpu?: GpuDevice, checkpointing = false): Promise<number[]> {
  const setup = expectOk(await prepareTraining(pipeline));
  const backend = engineFor(setup, gpu, checkpointing);
  const losses: number[] = [];
  try {
    expectOk(
      await trainLoop({
        settings: trainSettings(pipeline.train),
        backend,
        data: setup.data,
        runDir: tempDir("losses"),
        title: "run test",
        onRecord: (r) => {
          if (r.kind === "train") losses.push(r.loss);
        },
      }),
    );
  } finally {
    if (backend instanceof GpuBackend) backend.destroy();
  }
  return losses;
}

/**
 * A temporary copy of the bundled data and tiny model with `sft` beside them (as in pipelines/):
 * runs write their lock file and run directories there, never into the repository.
 */
export function sandbox(sft: string): { dir: string; file: string } {
  const dir = tempDir("run");
  for (const sub of ["data", "models"]) cpSync(join(ROOT, "pipelines", sub), join(dir, sub), { recursive: true });
  const file = join(dir, basename(sft));
  copyFileSync(sft, file);
  return { dir, file };
}

/** Output captured from an in-process `main()`. */
export interface Captured {
  exit: number;
  out: string;
  err: string;
}

/** Runs `sftc ARGS` in this process with captured output and the environment `env`. */
export async function sftc(args: string[], env: Record<string, string> = {}): Promise<Captured> {
  let out = "";
  let err = "";
  const io: Io = { out: (t) => void (out += t), err: (t) => void (err += t), color: false, env };
  const exit = await main(args, io);
  return { exit, out, err };
}

/** The run directories under a sandbox's train.output, oldest first. */
export function runDirs(output: string): string[] {
  return readdirSync(output).sort().map((id) => join(output, id));
}

/** The training losses a run directory's metrics.jsonl records, by step. */
export function metricsLosses(runDir: string): number[] {
  return readFileSync(join(runDir, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as { kind: string; loss?: number })
    .filter((r) => r.kind === "train")
    .map((r) => r.loss!);
}
