// `sftc lock FILE.sft`: pins the pipeline's inputs (sources, model files, datasets) by content
// in `sft.lock` next to the file; `sftc run` then refuses to run on anything else.
import type { CheckResult } from "../../compiler/check/check.ts";
import type { ResolvedPipeline } from "../../compiler/check/resolve.ts";
import { lockState } from "../../runtime/repo/inputs.ts";
import { mergeLocks, writeLock } from "../../runtime/repo/lock.ts";
import type { ParsedArgs } from "../args.ts";
import type { Io } from "../io.ts";
import { pipelineFlags, resolveOne } from "../pipeline-target.ts";
import type { Command } from "../registry.ts";
import { renderDiagnostic } from "../render.ts";

export const command: Command = {
  name: "lock",
  summary: "pin a pipeline's inputs (sources, model files, datasets) by content in sft.lock",
  usage: "FILE.sft[#PIPELINE] [--pipeline NAME] [--set PATH=VALUE]...",
  details:
    "Hashes (sha256, streamed) every `.sft` file the pipeline reads, every file of its model directory and " +
    "every dataset file, and records them with sftc's and the stdlib's versions in `sft.lock` beside the " +
    "pipeline file. Other pipelines already in the lock are kept. `sftc run` verifies the lock and names " +
    "whatever changed. Unchanged files are not re-hashed (a cache in .sftc-cache/).",
  flags: pipelineFlags.filter((f) => f.name !== "no-files"),
  async run(args: ParsedArgs, io: Io): Promise<number> {
    const target = resolveOne("lock", args, io);
    if (!target.ok) return target.exit;
    return (await updateLock(target.result, target.pipeline, io)) ? 0 : 1;
  },
};

/** Writes or refreshes the pipeline's entry in its sft.lock; false (after printing) on error. */
export async function updateLock(result: CheckResult, pipeline: ResolvedPipeline, io: Io): Promise<boolean> {
  const state = await lockState(result, pipeline);
  if (!state.ok) {
    for (const d of state.diagnostics) io.err(renderDiagnostic(d, result.texts, io.color));
    return false;
  }
  const { path, current, existing } = state.value;
  await writeLock(path, mergeLocks(existing, current));
  const entry = Object.values(current.pipelines)[0];
  const files = Object.keys(entry.sources).length + Object.keys(entry.datasets).length + Object.keys(entry.model?.files ?? {}).length;
  io.err(`locked ${Object.keys(current.pipelines)[0]}: ${files} files in ${path}\n`);
  return true;
}
