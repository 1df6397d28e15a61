// Where the CLI writes, and whether it may use colour. Tests pass their own Io to capture output.

export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** Colour for text written to stderr (diagnostics): a TTY, and NO_COLOR unset. */
  color: boolean;
  env: Record<string, string | undefined>;
}

/** Colour only on a terminal, and never when NO_COLOR is set to a non-empty value (no-color.org). */
export function colorEnabled(isTTY: boolean | undefined, env: Record<string, string | undefined>): boolean {
  return Boolean(isTTY) && !env.NO_COLOR;
}

export function processIo(): Io {
  return {
    out: (text) => void process.stdout.write(text),
    err: (text) => void process.stderr.write(text),
    color: colorEnabled(process.stderr.isTTY, process.env),
    env: process.env,
  };
}

const codes = { red: 31, yellow: 33, blue: 34, cyan: 36, bold: 1, dim: 2 } as const;
export type Style = keyof typeof codes;

/** Wraps `text` in an ANSI style when `enabled`. */
export function paint(enabled: boolean, style: Style, text: string): string {
  return enabled ? `\u001b[${codes[style]}m${text}\u001b[0m` : text;
}
