// The version line of `sftc --version`: the package version and the .sft language version.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { languageVersion } from "../grammar/build-ast.ts";

export function versionLine(): string {
  const pkg = JSON.parse(readFileSync(join(import.meta.dirname, "..", "package.json"), "utf8")) as { version: string };
  return `sftc ${pkg.version} (.sft language version ${languageVersion})`;
}
