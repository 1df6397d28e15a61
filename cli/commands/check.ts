// `sftc check FILE.sft`: every problem of a pipeline, before anything is loaded.
import { hasErrors, type Diagnostic } from "../../compiler/diagnostics.ts";
import { flag, type ParsedArgs } from "../args.ts";
import type { Io } from "../io.ts";
import { checkPath, diagnosticsJson, pipelineFlags, usageError } from "../pipeline-target.ts";
import { summarize } from "../render.ts";
import type { Command } from "../registry.ts";

export const command: Command = {
  name: "check",
  summary: "check a pipeline and report every problem with its file:line:col",
  usage: "FILE.sft[#PIPELINE]... [--pipeline NAME] [--all] [--set PATH=VALUE]... [--no-files] [--json]",
  details:
    "Reads each file and its imports, resolves `extends` and `--set` overrides, validates every section " +
    "against its schema and checks settings against each other. Exits 0 when there are no errors " +
    "(warnings allowed), 1 when there are errors, 2 on a usage mistake.",
  flags: [
    ...pipelineFlags,
    { name: "all", description: "check every pipeline the file declares" },
    { name: "json", description: "print diagnostics as JSON on stdout instead of text on stderr" },
  ],
  async run(args: ParsedArgs, io: Io): Promise<number> {
    if (args.positional.length === 0) return usageError(io, "check", "missing the .sft file to read");
    const json = flag(args, "json");
    const pipelines: string[] = [];
    const diagnostics: Diagnostic[] = [];
    const rendered: Record<string, unknown>[] = [];
    for (const file of args.positional) {
      const target = checkPath("check", file, args, io, { quiet: json, all: flag(args, "all") });
      if (!target.ok) return target.exit;
      pipelines.push(...target.result.pipelines.map((p) => p.name));
      diagnostics.push(...target.result.diagnostics);
      rendered.push(...diagnosticsJson(target.result));
    }
    const failed = hasErrors(diagnostics);
    if (json) {
      io.out(`${JSON.stringify({ ok: !failed, pipelines, diagnostics: rendered }, null, 2)}\n`);
      return failed ? 1 : 0;
    }
    if (diagnostics.length > 0) io.err(`${summarize(diagnostics)}\n`);
    if (!failed) io.out(`ok: ${pipelines.map((name) => `pipeline \`${name}\``).join(", ")}\n`);
    return failed ? 1 : 0;
  },
};
