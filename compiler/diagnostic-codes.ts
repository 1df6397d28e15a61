// The table of every diagnostic code sftc can report. Codes are stable: never renumber one.
// Ranges: SFT1xxx lexing/parsing, SFT2xxx names and validation, SFT3xxx types, shapes and
// memory, SFT4xxx lowering and fusion, SFT5xxx runtime (device, checkpoints, data, training).
// spec/language.md documents each code; a test checks that the two agree.
import type { Severity } from "./diagnostics.ts";

interface CodeInfo {
  severity: Severity;
  title: string;
}

const table = {
  // ---- SFT1xxx: lexing and parsing ----
  SFT1001: { severity: "error", title: "unexpected character" },
  SFT1002: { severity: "error", title: "syntax error" },
  SFT1003: { severity: "error", title: "unterminated string" },
  SFT1004: { severity: "error", title: "unterminated block comment" },
  SFT1005: { severity: "error", title: "invalid escape sequence in string" },
  SFT1006: { severity: "error", title: "invalid number" },
  SFT1007: { severity: "error", title: "missing or unsupported language version header" },
  SFT1008: { severity: "error", title: "nesting too deep" },

  // ---- SFT2xxx: names and validation (checker) ----

  // ---- SFT3xxx: types, shapes and memory ----

  // ---- SFT4xxx: lowering and fusion ----

  // ---- SFT5xxx: runtime ----
  // SFT50xx: device and kernels

  // SFT51xx: checkpoints (config.json, zip, pickle, safetensors)

  // SFT52xx: tokenizers

  // SFT53xx: datasets and data loading

} as const satisfies Record<string, CodeInfo>;

export type Code = keyof typeof table;
export const codes: Record<Code, CodeInfo> = table;
