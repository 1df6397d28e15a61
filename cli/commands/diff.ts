// `sftc diff A B`: how two resolved configurations differ, leaf by leaf. Each side is a
// pipeline (`file.sft[#name]`) or a run directory (its manifest's resolved pipeline).
import { existsSync, statSync } from "node:fs";
import { hasErrors } from "../../compiler/diagnostics.ts";
import { diffJson, readManifest } from "../../runtime/repo/run-record.ts";
import { flag, type ParsedArgs } from "../args.ts";
import type { Io } from "../io.ts";
import { checkPath, printDiagnostics, usageError } from "../pipeline-target.ts";
import type { Command } from "../registry.ts";
import { renderDiagnostic } from "../render.ts";

async function resolvedOf(target: string, args: ParsedArgs, io: Io): Promise<unknown | undefined> {
  if (existsSync(target) && statSync(target).isDirectory()) {
    const manifest = await readManifest(target);
    if (!manifest.ok) {
      for (const d of manifest.diagnostics) io.err(renderDiagnostic(d, new Map(), io.color));
      return undefined;
    }
    return manifest.value.resolved;
  }
  const checked = checkPath("diff", target, args, io, { quiet: true, checkFiles: false });
  if (!checked.ok) return undefined;
  const { result } = checked;
  if (hasErrors(result.diagnostics) || result.pipelines.length !== 1) {
    printDiagnostics(result, io);
    return undefined;
  }
  // Paths are absolute in a resolved pipeline; the file itself is where it was declared.
  const { file: _file, ...rest } = result.pipelines[0];
  return rest;
}

export const command: Command = {
  name: "diff",
  summary: "show the configuration differences between two pipelines or two runs",
  usage: "A B [--json]   (each a FILE.sft[#PIPELINE] or a run directory)",
  details: "Compares resolved configurations (after imports, extends and defaults) key by key.",
  flags: [{ name: "json", description: "print the differences as JSON" }],
  async run(args: ParsedArgs, io: Io): Promise<number> {
    if (args.positional.length !== 2) return usageError(io, "diff", "expected two pipelines or run directories");
    const [a, b] = await Promise.all(args.positional.map((t) => resolvedOf(t, args, io)));
    if (a === undefined || b === undefined) return 1;
    const changes = diffJson(a, b);
    if (flag(args, "json")) io.out(`${JSON.stringify(changes, null, 2)}\n`);
    else if (changes.length === 0) io.out("no differences\n");
    else for (const c of changes) io.out(`${c.path}: ${JSON.stringify(c.before) ?? "(absent)"} -> ${JSON.stringify(c.after) ?? "(absent)"}\n`);
    return 0;
  },
};
