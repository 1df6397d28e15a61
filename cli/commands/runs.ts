// `sftc runs [DIR]`: the runs recorded under a runs directory, oldest first.
import { listRuns } from "../../runtime/repo/run-record.ts";
import { flag, type ParsedArgs } from "../args.ts";
import type { Io } from "../io.ts";
import type { Command } from "../registry.ts";

export const command: Command = {
  name: "runs",
  summary: "list recorded runs (pipeline, id, status, git commit, final metrics)",
  usage: "[RUNS_DIR] [--json]",
  details: "Reads every `<pipeline>/<run-id>/manifest.json` under RUNS_DIR (default `runs`).",
  flags: [{ name: "json", description: "print the manifests as JSON" }],
  async run(args: ParsedArgs, io: Io): Promise<number> {
    const runs = await listRuns(args.positional[0] ?? "runs");
    if (flag(args, "json")) {
      io.out(`${JSON.stringify(runs.map((r) => ({ dir: r.dir, ...r.manifest })), null, 2)}\n`);
      return 0;
    }
    if (runs.length === 0) {
      io.err(`no runs under ${args.positional[0] ?? "runs"}\n`);
      return 0;
    }
    for (const { dir, manifest: m } of runs) {
      const git = m.git ? `${m.git.commit.slice(0, 10)}${m.git.dirty ? "+dirty" : ""}` : "no git";
      const metrics = Object.entries(m.metrics).map(([k, v]) => `${k}=${Number(v.toPrecision(5))}`).join(" ");
      io.out(`${m.startedAt}  ${m.pipeline.padEnd(20)} ${m.status.padEnd(9)} ${git.padEnd(17)} ${metrics}  ${dir}\n`);
    }
    return 0;
  },
};
