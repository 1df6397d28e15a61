// Where the CLI writes, and whether it may use colour. Tests pass their own Io to capture output.

export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** Colour for text written to stderr (diagnostics): a TTY, and NO_COLOR unset. */
  color: boolean;
  env: Record<string, string | undefined>;
}

export function processIo(): Io {
  const noColor = process.env.NO_COLOR !== undefined && process.env.NO_COLOR !== "";
  return {
    out: (text) => void process.stdout.write(text),
    err: (text) => void process.stderr.write(text),
    color: Boolean(process.stderr.isTTY) && !noColor,
    env: process.env,
  };
}

const codes = { red: 31, yellow: 33, blue: 34, cyan: 36, bold: 1, dim: 2 } as const;
export type Style = keyof typeof codes;

/** Wraps `text` in an ANSI style when `enabled`. */
export function paint(enabled: boolean, style: Style, text: string): string {
  return enabled ? `\u001b[${codes[style]}m${text}\u001b[0m` : text;
}
