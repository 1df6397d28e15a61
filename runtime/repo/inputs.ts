// Which files a resolved pipeline reads: its `.sft` sources, the model directory (for models
// loaded from a checkpoint) and the dataset files. The lock pins exactly these.
import { dirname, join, relative } from "node:path";
import type { CheckResult } from "../../compiler/check/check.ts";
import type { ResolvedPipeline } from "../../compiler/check/resolve.ts";
import { fail, ok, type Result } from "../../compiler/diagnostics.ts";
import { HashCache } from "./file-hash.ts";
import { computeLock, readLock, type Lock, type LockInputs } from "./lock.ts";

/** `file.sft#name` with the file relative to the lock's directory. */
export function pipelineKey(lockDir: string, pipeline: ResolvedPipeline): string {
  return `${relative(lockDir, pipeline.file).split("\\").join("/")}#${pipeline.name}`;
}

export function lockInputsOf(result: CheckResult, pipeline: ResolvedPipeline, lockDir: string): LockInputs {
  const sourceFiles = [...result.texts.keys()].filter((f) => f.endsWith(".sft"));
  const modelPath = typeof pipeline.model.path === "string" && pipeline.model.init !== "random" ? pipeline.model.path : undefined;
  const datasetFiles = pipeline.datasets.map((d) => d.path).filter((p): p is string => typeof p === "string");
  const tokenizer = typeof pipeline.model.tokenizer === "string" && !modelPath ? [pipeline.model.tokenizer] : [];
  return { pipeline: pipelineKey(lockDir, pipeline), sourceFiles, modelDir: modelPath, datasetFiles, otherFiles: tokenizer };
}

export const lockDirOf = (pipeline: ResolvedPipeline) => dirname(pipeline.file);

export interface LockState {
  /** `sft.lock` beside the pipeline's file. */
  path: string;
  /** The pipeline's inputs as they are now. */
  current: Lock;
  /** The lock file's content; undefined when there is none yet. */
  existing: Lock | undefined;
}

/** The pipeline's inputs fingerprinted now (unchanged files come from the hash cache), and its lock file. */
export async function lockState(result: CheckResult, pipeline: ResolvedPipeline): Promise<Result<LockState>> {
  const dir = lockDirOf(pipeline);
  const path = join(dir, "sft.lock");
  const cache = await HashCache.open(join(dir, ".sftc-cache", "hashes.json"));
  const current = await computeLock(lockInputsOf(result, pipeline, dir), dir, cache);
  const existing = await readLock(path);
  if (!current.ok || !existing.ok) return fail(...current.diagnostics, ...existing.diagnostics);
  return ok({ path, current: current.value, existing: existing.value });
}
