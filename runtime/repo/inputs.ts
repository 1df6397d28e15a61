// Which files a resolved pipeline reads: its `.sft` sources, the model directory (for models
// loaded from a checkpoint) and the dataset files. The lock pins exactly these.
import { dirname, relative } from "node:path";
import type { CheckResult } from "../../compiler/check/check.ts";
import type { ResolvedPipeline } from "../../compiler/check/resolve.ts";
import type { LockInputs } from "./lock.ts";

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
