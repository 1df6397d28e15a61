// Reads `config.json` from a model directory and checks it against a family.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { diag, fail, lineCol, type Result } from "../../compiler/diagnostics.ts";
import { resolveModelConfig, type ModelConfig } from "../../stdlib/families/config.ts";
import { families, type FamilyName } from "../../stdlib/families/index.ts";

/** The model configuration of `dir` for `family`, or errors naming the file and key. */
export async function loadModelConfig(dir: string, family: FamilyName): Promise<Result<ModelConfig>> {
  const file = join(dir, "config.json");
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === "ENOENT" ? "does not exist" : `cannot be read (${(error as Error).message})`;
    return fail(diag("SFT5101", `${file} ${reason}`, { where: file, hint: "a model directory needs the config.json published with its weights" }));
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    const { line, col } = lineCol(text, jsonErrorOffset(error.message, text));
    return fail(diag("SFT5102", `${file}:${line}:${col}: invalid JSON: ${error.message}`, { where: `${file}:${line}:${col}` }));
  }
  return resolveModelConfig(raw, families[family], file);
}

/** The offset a JSON.parse error points at ("at position N", or "line L column C"). */
function jsonErrorOffset(message: string, text: string): number {
  const position = /position (\d+)/.exec(message);
  if (position) return Number(position[1]);
  const lineColumn = /line (\d+) column (\d+)/.exec(message);
  if (lineColumn) {
    const lines = text.split("\n").slice(0, Number(lineColumn[1]) - 1);
    return lines.reduce((sum, l) => sum + l.length + 1, 0) + Number(lineColumn[2]) - 1;
  }
  return text.length;
}
