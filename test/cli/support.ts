// Runs the CLI in-process with captured output, and makes scratch directories for files.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Io } from "../../cli/io.ts";
import { main } from "../../cli/main.ts";

export interface Captured {
  code: number;
  out: string;
  err: string;
}

export async function sftc(argv: string[], options: { color?: boolean; env?: Record<string, string> } = {}): Promise<Captured> {
  let out = "";
  let err = "";
  const io: Io = { out: (t) => void (out += t), err: (t) => void (err += t), color: options.color ?? false, env: options.env ?? {} };
  const code = await main(argv, io);
  return { code, out, err };
}

/** A scratch directory with `files` written into it; `cleanup` removes it. */
export function scratch(files: Record<string, string | Uint8Array>): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), "sftc-cli-"));
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export const goodPipeline = `sft 1

pipeline p {
  model chatglm2 {
    path = "models/chatglm2-6b"
  }
  method lora {}
  dataset belle {
    path = "data/belle.json"
  }
  train {
    epochs = 1
  }
}
`;
