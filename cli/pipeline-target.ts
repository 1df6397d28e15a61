// What `check`, `explain` and `run` share: the FILE[#PIPELINE] argument, `--pipeline`, `--set`,
// `--no-files`, and printing the checker's diagnostics.
import { existsSync } from "node:fs";
import { checkFile, type CheckResult } from "../compiler/check/check.ts";
import type { ResolvedPipeline } from "../compiler/check/resolve.ts";
import { hasErrors } from "../compiler/diagnostics.ts";
import { flag, flagValue, flagValues, type FlagSpec, type ParsedArgs } from "./args.ts";
import type { Io } from "./io.ts";
import { diagnosticJson, renderDiagnostic, summarize } from "./render.ts";

export const pipelineFlags: FlagSpec[] = [
  { name: "pipeline", value: "one", placeholder: "NAME", description: "the pipeline to use when the file declares several (same as FILE.sft#NAME)" },
  { name: "set", value: "repeat", placeholder: "PATH=VALUE", description: "override a setting, e.g. --set train.lr=2e-4 (repeatable; VALUE has .sft syntax)" },
  { name: "no-files", description: "do not check that referenced files and directories exist" },
];

export const usageExit = 2;

/** Reports a usage mistake the way every command does; returns the exit code. */
export function usageError(io: Io, command: string, message: string): number {
  io.err(`sftc ${command}: ${message}\n(run \`sftc help ${command}\` for usage)\n`);
  return usageExit;
}

export type TargetResult = { ok: true; result: CheckResult } | { ok: false; exit: number };

/**
 * Checks the file `target` (`FILE.sft` or `FILE.sft#PIPELINE`). Prints its diagnostics (no summary)
 * unless `quiet`; referenced files are checked unless `--no-files` or `checkFiles: false`.
 */
export function checkPath(command: string, target: string, args: ParsedArgs, io: Io, options: { quiet?: boolean; all?: boolean; checkFiles?: boolean } = {}): TargetResult {
  let path = target;
  let pipeline = flagValue(args, "pipeline");
  const hash = path.lastIndexOf("#");
  if (hash > 0 && !existsSync(path)) {
    const named = path.slice(hash + 1);
    path = path.slice(0, hash);
    if (pipeline !== undefined && pipeline !== named) {
      return { ok: false, exit: usageError(io, command, `the path names pipeline \`${named}\` but --pipeline names \`${pipeline}\``) };
    }
    pipeline = named;
  }
  const result = checkFile(path, { pipeline, all: options.all, overrides: flagValues(args, "set"), checkFiles: (options.checkFiles ?? true) && !flag(args, "no-files") });
  if (!options.quiet) printEach(result, io);
  return { ok: true, result };
}

/** Checks the one file of the command line; prints its diagnostics and their summary. */
export function checkTarget(command: string, args: ParsedArgs, io: Io): TargetResult {
  if (args.positional.length !== 1) {
    const problem = args.positional.length === 0 ? "missing the .sft file to read" : `expected one .sft file, got ${args.positional.length} arguments`;
    return { ok: false, exit: usageError(io, command, problem) };
  }
  const target = checkPath(command, args.positional[0], args, io, { quiet: true });
  if (target.ok) printDiagnostics(target.result, io);
  return target;
}

/**
 * The single resolved pipeline of the command line and the check that resolved it, or the exit
 * code when there is none (diagnostics printed).
 */
export function resolveOne(command: string, args: ParsedArgs, io: Io): { ok: true; pipeline: ResolvedPipeline; result: CheckResult } | { ok: false; exit: number } {
  const target = checkTarget(command, args, io);
  if (!target.ok) return target;
  const { diagnostics, pipelines } = target.result;
  if (hasErrors(diagnostics) || pipelines.length !== 1) return { ok: false, exit: 1 };
  return { ok: true, pipeline: pipelines[0], result: target.result };
}

function printEach(result: CheckResult, io: Io): void {
  for (const d of result.diagnostics) io.err(renderDiagnostic(d, result.texts, io.color));
}

/** Prints each diagnostic with its code frame, then the count of errors and warnings. */
export function printDiagnostics(result: CheckResult, io: Io): void {
  printEach(result, io);
  if (result.diagnostics.length > 0) io.err(`${summarize(result.diagnostics)}\n`);
}

export function diagnosticsJson(result: CheckResult): Record<string, unknown>[] {
  return result.diagnostics.map(diagnosticJson);
}
