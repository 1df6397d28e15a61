// Shared by the run tests: the quickstart pipeline resolved with overrides, and a training run of
// it through the loop on a chosen engine, returning the loss of every step.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { checkFile } from "../../compiler/check/check.ts";
import type { ResolvedPipeline } from "../../compiler/check/resolve.ts";
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { prepareTraining, type TrainingSetup } from "../../runtime/pipeline/training-setup.ts";
import type { TrainingBackend } from "../../runtime/train/backend.ts";
import { CpuBackend } from "../../runtime/train/cpu-backend.ts";
import { GpuBackend } from "../../runtime/train/gpu-backend.ts";
import { trainLoop } from "../../runtime/train/loop.ts";
import { trainSettings } from "../../runtime/train/settings.ts";
import { expectOk } from "../support/result.ts";

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

/** The engine of a setup: the GPU one on `gpu`, else the float64 CPU reference. */
export function engineFor(setup: TrainingSetup, gpu?: GpuDevice): TrainingBackend {
  return gpu ? expectOk(GpuBackend.create(gpu, setup.model, setup.weights)) : expectOk(CpuBackend.create(setup.model, setup.weights));
}

/** Trains `pipeline` through the loop on the GPU (or the CPU engine) and returns every step's loss. */
export async function stepLosses(pipeline: ResolvedPipeline, gpu?: GpuDevice): Promise<number[]> {
  const setup = expectOk(await prepareTraining(pipeline));
  const backend = engineFor(setup, gpu);
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
