// `sftc run FILE.sft`: check, then run the stages that exist. Training, generation and the GPU
// runtime are not wired into the CLI yet, so after a successful check this says so plainly.
import type { ParsedArgs } from "../args.ts";
import type { Io } from "../io.ts";
import { pipelineFlags, resolveOne } from "../pipeline-target.ts";
import type { Command } from "../registry.ts";

export const command: Command = {
  name: "run",
  summary: "check a pipeline, then run the stages that are built",
  usage: "FILE.sft[#PIPELINE] [--pipeline NAME] [--set PATH=VALUE]... [--no-files]",
  details:
    "Checks the pipeline (as `sftc check`), then runs it. In this version only the check is built: " +
    "loading weights, data loading, training and generation are not wired into `sftc run` yet, and " +
    "the command says so. Exits 0 when the check passes, 1 when it finds errors.",
  flags: pipelineFlags,
  async run(args: ParsedArgs, io: Io): Promise<number> {
    const resolved = resolveOne("run", args, io);
    if (!resolved.ok) return resolved.exit;
    const p = resolved.pipeline;
    io.out(
      `checked: pipeline \`${p.name}\` (${p.model.family}, ${p.method.kind}, ${p.datasets.length} dataset${p.datasets.length === 1 ? "" : "s"}, decode ${p.decode.strategy})\n` +
        "not built yet: loading the model, reading the data, training and generation are not available in this version of sftc; nothing was run.\n" +
        "`sftc explain` prints the resolved pipeline these stages will receive.\n",
    );
    return 0;
  },
};
