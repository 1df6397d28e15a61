// `sftc fmt FILES...`: formats .sft files in place. A file is replaced by writing the new text to
// a temporary file beside it and renaming it over the original, so a crash or a full disk can
// never leave a half-written pipeline; a file that does not parse is left untouched.
import { chmodSync, readdirSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { readSource } from "../../compiler/check/sources.ts";
import { flag, type ParsedArgs } from "../args.ts";
import type { Io } from "../io.ts";
import { usageError } from "../pipeline-target.ts";
import type { Command } from "../registry.ts";
import { displayPath, renderDiagnostic } from "../render.ts";

/** The .sft files named by the arguments: files as given, directories searched recursively. */
function collect(paths: string[]): { files: string[]; problems: string[] } {
  const files: string[] = [];
  const problems: string[] = [];
  const walk = (dir: string) => {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch (e) {
      problems.push(`${dir}: cannot list the directory (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
      return;
    }
    for (const name of names) {
      if (name.startsWith(".") || name === "node_modules") continue;
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith(".sft")) files.push(path);
    }
  };
  for (const path of paths) {
    try {
      if (statSync(path).isDirectory()) walk(path);
      else files.push(path);
    } catch {
      problems.push(`${path}: no such file or directory`);
    }
  }
  return { files, problems };
}

/** Replaces the file's content through a temporary file and a rename; a symbolic link stays a link. */
function replaceAtomically(path: string, text: string): string | undefined {
  const target = realpathSync(path);
  const temp = join(dirname(target), `.${basename(target)}.sftc-fmt-${process.pid}`);
  try {
    writeFileSync(temp, text, { flag: "wx" });
    chmodSync(temp, statSync(target).mode);
    renameSync(temp, target);
    return undefined;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? String(e);
  } finally {
    rmSync(temp, { force: true });
  }
}

export const command: Command = {
  name: "fmt",
  summary: "format .sft files in place (or --check that they are formatted)",
  usage: "FILE.sft|DIR... [--check]",
  details:
    "Rewrites each file in the canonical layout (comments kept). Directories are searched for .sft " +
    "files. With --check nothing is written: the files that would change are listed and the exit " +
    "code is 1 if there are any. A file with syntax errors is reported and left as it is.",
  flags: [{ name: "check", description: "write nothing; list the files that are not formatted and exit 1 if any" }],
  async run(args: ParsedArgs, io: Io): Promise<number> {
    if (args.positional.length === 0) return usageError(io, "fmt", "missing the .sft files or directories to format");
    const { formatSft } = await import("../../grammar/format.ts");
    const checkOnly = flag(args, "check");
    const { files, problems } = collect(args.positional);
    for (const p of problems) io.err(`sftc fmt: ${p}\n`);
    let failed = problems.length > 0;
    let unformatted = 0;
    for (const file of files) {
      const read = readSource(file);
      if (!("text" in read)) {
        io.err(`sftc fmt: ${displayPath(file)} ${read.detail}\n`);
        failed = true;
        continue;
      }
      const formatted = formatSft(read.text, file);
      if (!formatted.ok) {
        for (const d of formatted.diagnostics) io.err(renderDiagnostic(d, new Map([[file, read.text]]), io.color));
        failed = true;
        continue;
      }
      if (formatted.value === read.text) continue;
      unformatted++;
      if (checkOnly) {
        io.out(`${displayPath(file)}\n`);
      } else {
        const problem = replaceAtomically(file, formatted.value);
        if (problem) {
          io.err(`sftc fmt: cannot write ${displayPath(file)} (${problem}); the file is unchanged\n`);
          failed = true;
        } else {
          io.out(`formatted ${displayPath(file)}\n`);
        }
      }
    }
    if (checkOnly && unformatted > 0) io.err(`${unformatted} file${unformatted === 1 ? "" : "s"} would be reformatted\n`);
    return failed || (checkOnly && unformatted > 0) ? 1 : 0;
  },
};
