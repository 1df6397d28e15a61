// Command-line flags: each command declares its flags; anything else is an error with a
// suggestion. Values are given as `--flag VALUE` or `--flag=VALUE`.
import { closest } from "../compiler/check/suggest.ts";

export interface FlagSpec {
  name: string;
  /** Takes a value; `repeat` collects every occurrence. */
  value?: "one" | "repeat";
  description: string;
  /** Shown in help, e.g. `NAME` or `PATH=VALUE`. */
  placeholder?: string;
}

export interface ParsedArgs {
  positional: string[];
  flags: Map<string, string[]>;
}

export type ArgsResult = { ok: true; args: ParsedArgs } | { ok: false; error: string };

/** Parses `argv` against `specs`; `--help` is always accepted. */
export function parseArgs(argv: string[], specs: FlagSpec[]): ArgsResult {
  const positional: string[] = [];
  const flags = new Map<string, string[]>();
  const all = [...specs, { name: "help", description: "" }];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--") {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith("-") || arg === "-") {
      positional.push(arg);
      continue;
    }
    const [rawName, inline] = arg.startsWith("--") ? splitOnce(arg.slice(2), "=") : [arg.slice(1), undefined];
    const spec = all.find((s) => s.name === rawName);
    if (!spec) {
      const near = closest(rawName, all.map((s) => s.name));
      return { ok: false, error: `unknown flag \`${arg}\`${near ? `; did you mean \`--${near}\`?` : ""}` };
    }
    let value: string | undefined;
    if ("value" in spec && spec.value) {
      value = inline ?? argv[++i];
      if (value === undefined) return { ok: false, error: `\`--${spec.name}\` needs a value: --${spec.name} ${spec.placeholder ?? "VALUE"}` };
    } else if (inline !== undefined) {
      return { ok: false, error: `\`--${spec.name}\` takes no value` };
    }
    const previous = flags.get(spec.name) ?? [];
    if (previous.length > 0 && !("value" in spec && spec.value === "repeat")) return { ok: false, error: `\`--${spec.name}\` is given twice` };
    flags.set(spec.name, [...previous, value ?? ""]);
  }
  return { ok: true, args: { positional, flags } };
}

function splitOnce(text: string, separator: string): [string, string | undefined] {
  const at = text.indexOf(separator);
  return at < 0 ? [text, undefined] : [text.slice(0, at), text.slice(at + 1)];
}

export function flag(args: ParsedArgs, name: string): boolean {
  return args.flags.has(name);
}

export function flagValue(args: ParsedArgs, name: string): string | undefined {
  return args.flags.get(name)?.[0];
}

export function flagValues(args: ParsedArgs, name: string): string[] {
  return args.flags.get(name) ?? [];
}

/** `--ids 1,2,3`: comma-separated token ids. */
export function parseIds(list: string): { ok: true; ids: number[] } | { ok: false; error: string } {
  const parts = list.split(",").map((p) => p.trim());
  const bad = parts.find((p) => !/^\d+$/.test(p));
  if (bad !== undefined) return { ok: false, error: `--ids takes comma-separated non-negative integers, got \`${bad}\`` };
  return { ok: true, ids: parts.map(Number) };
}
