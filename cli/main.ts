// The `sftc` command line: dispatches to a command, and guards against internal errors so that
// a bug prints one line asking for a report (the stack only with SFT_DEBUG), never a raw trace.
import { closest } from "../compiler/check/suggest.ts";
import { parseArgs } from "./args.ts";
import { processIo, type Io } from "./io.ts";
import { commands, findCommand } from "./registry.ts";
import { versionLine } from "./version.ts";

/** Exit code of an internal error (EX_SOFTWARE). */
export const internalErrorExit = 70;

/** Runs `sftc` with `argv` (without the node and script paths); returns the exit code. */
export async function main(argv: string[], io: Io = processIo()): Promise<number> {
  try {
    return await dispatch(argv, io);
  } catch (e) {
    const message = e instanceof Error ? e.message.replace(/^sftc internal error: /, "") : String(e);
    io.err(`sftc internal error: ${message}\nThis is a bug in sftc, not in your pipeline; please report it with the command you ran.\n`);
    if (io.env.SFT_DEBUG) io.err(`${e instanceof Error ? e.stack : String(e)}\n`);
    else io.err("(set SFT_DEBUG=1 to print the stack trace)\n");
    return internalErrorExit;
  }
}

async function dispatch(argv: string[], io: Io): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === "--help" || first === "-h") {
    const help = await (await findCommand("help")!.load()).run({ positional: [], flags: new Map() }, io);
    return first === undefined ? 2 : help;
  }
  if (first === "--version" || first === "-V") {
    io.out(`${versionLine()}\n`);
    return 0;
  }
  const entry = findCommand(first);
  if (!entry) {
    const near = closest(first.replace(/^-+/, ""), commands.map((c) => c.name));
    const what = first.startsWith("-") ? `unknown flag \`${first}\`` : `unknown command \`${first}\``;
    io.err(`sftc: ${what}${near ? `; did you mean \`${near}\`?` : ""}\n(run \`sftc help\` for the list of commands)\n`);
    return 2;
  }
  const command = await entry.load();
  const parsed = parseArgs(rest, command.flags);
  if (!parsed.ok) {
    io.err(`sftc ${command.name}: ${parsed.error}\n(run \`sftc help ${command.name}\` for usage)\n`);
    return 2;
  }
  if (parsed.args.flags.has("help")) {
    const help = await findCommand("help")!.load();
    return help.run({ positional: [command.name], flags: new Map() }, io);
  }
  return command.run(parsed.args, io);
}
