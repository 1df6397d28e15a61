// Debian's Python with PyTorch, for the tests that check against it. A test that needs torch
// registers only when it imports, and says so when it does not (a skip is not a pass).
import { spawnSync } from "node:child_process";

export const PYTHON = "/usr/bin/python3";

let cached: boolean | undefined;

/** Whether `/usr/bin/python3` can import torch. */
export function hasTorch(): boolean {
  cached ??= spawnSync(PYTHON, ["-c", "import torch"], { encoding: "utf8" }).status === 0;
  return cached;
}

export function reportSkippedWithoutTorch(what: string): void {
  console.log(`skipped (${PYTHON} has no torch; apt-get install python3-torch): ${what}`);
}
