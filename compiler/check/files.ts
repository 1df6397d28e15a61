// Checks that the files and directories a pipeline names exist (skipped with `--no-files`, for
// checking pipelines on a machine without the data).
import { statSync } from "node:fs";
import { resolve } from "node:path";
import type { Schema } from "../../stdlib/schemas/common.ts";
import { diag, type Diagnostic } from "../diagnostics.ts";
import { baseDirectory } from "./resolve.ts";
import type { CheckedSection } from "./semantics.ts";

type Expected = "file" | "directory" | "file or directory";

function problem(path: string, expected: Expected): string | undefined {
  let isDirectory: boolean;
  try {
    isDirectory = statSync(path).isDirectory();
  } catch {
    return "does not exist";
  }
  if (expected === "file" && isDirectory) return "is a directory, not a file";
  if (expected === "directory" && !isDirectory) return "is a file, not a directory";
  return undefined;
}

export function checkFiles(section: CheckedSection, schema: Schema): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const [key, property] of Object.entries((schema.properties ?? {}) as Record<string, Schema>)) {
    const value = section.json[key];
    const expected = property["x-path"] as Expected | undefined;
    if (!expected || typeof value !== "string") continue;
    const found = problem(resolve(baseDirectory(section, key), value), expected);
    if (!found) continue;
    out.push(diag("SFT2015", `\`${key} = "${value}"\` ${found}`, {
      span: section.spans.get(`/${key}`)?.value ?? section.section.header,
      hint: "paths are relative to the directory of the .sft file; pass --no-files to check without the data",
    }));
  }
  return out;
}
