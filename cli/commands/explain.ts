// `sftc explain FILE.sft`: the resolved pipeline, i.e. exactly what would run.
import type { ParsedArgs } from "../args.ts";
import type { Io } from "../io.ts";
import { pipelineFlags, resolveOne } from "../pipeline-target.ts";
import type { Command } from "../registry.ts";

export const command: Command = {
  name: "explain",
  summary: "print the resolved pipeline (imports, extends, overrides, defaults) as JSON",
  usage: "FILE.sft[#PIPELINE] [--pipeline NAME] [--set PATH=VALUE]... [--no-files]",
  details:
    "Prints the pipeline after imports, `extends`, `--set` overrides and defaults (schema defaults, then " +
    "the model family's), with paths made absolute and LoRA targets expanded to the family's layer names. " +
    "Exits 1 (printing the diagnostics) when the pipeline has errors.",
  flags: pipelineFlags,
  async run(args: ParsedArgs, io: Io): Promise<number> {
    const resolved = resolveOne("explain", args, io);
    if (!resolved.ok) return resolved.exit;
    io.out(`${JSON.stringify(resolved.pipeline, null, 2)}\n`);
    return 0;
  },
};
