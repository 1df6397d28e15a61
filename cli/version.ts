// The version line of `sftc --version`: the package version and the .sft language version.
import { languageVersion } from "../grammar/build-ast.ts";
import { sftcVersion } from "../runtime/install.ts";

export function versionLine(): string {
  return `sftc ${sftcVersion} (.sft language version ${languageVersion})`;
}
