// `sftc check FILE.sft`: every problem of a pipeline, before anything is loaded.
import { hasErrors } from "../../compiler/diagnostics.ts";
import { flag, type ParsedArgs } from "../args.ts";
import type { Io } from "../io.ts";
import { checkTarget, diagnosticsJson, pipelineFlags } from "../pipeline-target.ts";
import type { Command } from "../registry.ts";

export const command: Command = {
  name: "check",
  summary: "check a pipeline and report every problem with its file:line:col",
  usage: "FILE.sft[#PIPELINE] [--pipeline NAME] [--all] [--set PATH=VALUE]... [--no-files] [--json]",
  details:
    "Reads the file and its imports, resolves `extends` and `--set` overrides, validates every section " +
    "against its schema and checks settings against each other. Exits 0 when there are no errors " +
    "(warnings allowed), 1 when there are errors, 2 on a usage mistake.",
  flags: [
    ...pipelineFlags,
    { name: "all", description: "check every pipeline the file declares" },
    { name: "json", description: "print diagnostics as JSON on stdout instead of text on stderr" },
  ],
  async run(args: ParsedArgs, io: Io): Promise<number> {
    const json = flag(args, "json");
    const target = checkTarget("check", args, io, { quiet: json, all: flag(args, "all") });
    if (!target.ok) return target.exit;
    const { result } = target;
    const failed = hasErrors(result.diagnostics);
    if (json) {
      io.out(`${JSON.stringify({ ok: !failed, pipelines: result.pipelines.map((p) => p.name), diagnostics: diagnosticsJson(result) }, null, 2)}\n`);
    } else if (!failed) {
      io.out(`ok: ${result.pipelines.map((p) => `pipeline \`${p.name}\``).join(", ")}\n`);
    }
    return failed ? 1 : 0;
  },
};
