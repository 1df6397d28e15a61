// `sftc help [COMMAND]`.
import type { FlagSpec, ParsedArgs } from "../args.ts";
import type { Io } from "../io.ts";
import { commands, findCommand, type Command } from "../registry.ts";
import { usageError } from "../pipeline-target.ts";
import { didYouMean } from "../../compiler/check/suggest.ts";

export function overview(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    "sftc: supervised fine-tuning pipelines for Chinese chat models",
    "",
    "usage: sftc COMMAND [ARGS]",
    "",
    "commands:",
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "  sftc --version      print the version",
    "  sftc help COMMAND   show the usage and flags of a command",
    "",
    "environment: NO_COLOR (no colours), SFT_DEBUG (stack traces of internal errors)",
    "",
  ].join("\n");
}

/** Breaks `text` into lines of at most `width` characters, at spaces. */
function wrap(text: string, width = 78): string {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  return [...lines, line].join("\n");
}

function flagLine(f: FlagSpec): string {
  return `--${f.name}${f.value ? ` ${f.placeholder ?? "VALUE"}` : ""}`;
}

export function commandHelp(c: Command): string {
  const width = Math.max(0, ...c.flags.map((f) => flagLine(f).length));
  return [
    `usage: sftc ${c.name} ${c.usage}`,
    "",
    c.summary,
    "",
    wrap(c.details),
    "",
    ...(c.flags.length ? ["flags:", ...c.flags.map((f) => `  ${flagLine(f).padEnd(width)}  ${f.description}`), ""] : []),
  ].join("\n");
}

export const command: Command = {
  name: "help",
  summary: "show help for sftc or one command",
  usage: "[COMMAND]",
  details: "Without a command, lists the commands; with one, shows its usage and flags.",
  flags: [],
  async run(args: ParsedArgs, io: Io): Promise<number> {
    const name = args.positional[0];
    if (name === undefined) {
      io.out(overview());
      return 0;
    }
    const entry = findCommand(name);
    if (!entry) return usageError(io, "help", `unknown command \`${name}\`${didYouMean(name, commands.map((c) => c.name))}`);
    io.out(commandHelp(await entry.load()));
    return 0;
  },
};
