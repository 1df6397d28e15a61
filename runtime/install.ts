// Where sftc is installed, and its version: found by walking up from this module to sftc's
// package.json, so the answer is the same whether the sources run directly or from the
// bundled dist/sftc.mjs.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";

function findRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const pkg = join(dir, "package.json");
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, "utf8")) as { name?: string }).name === "sftc") return dir;
    if (dirname(dir) === dir) throw new Error(`sftc internal error: no sftc package.json above ${from}`);
  }
}

/** The directory holding sftc's package.json, stdlib/ and the sources. */
export const installRoot = findRoot(import.meta.dirname);

export const sftcVersion = (JSON.parse(readFileSync(join(installRoot, "package.json"), "utf8")) as { version: string }).version;
