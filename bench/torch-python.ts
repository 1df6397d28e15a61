// The PyTorch reference scripts run through the first Python that can: Debian's (its torch lives in
// /usr/bin/python3), then the python3 on PATH (a CUDA machine's).
import { execFileSync } from "node:child_process";

const PYTHONS = ["/usr/bin/python3", "python3"];

export type TorchRun<T> = { ok: true; python: string; value: T } | { ok: false; why: string };

/**
 * `parse` of the stdout of the first Python that runs `args` to completion and whose output
 * `parse` takes (it throws otherwise); else each Python's failure, its last stderr line or error.
 */
export function runTorchScript<T>(args: readonly string[], parse: (stdout: string) => T, options: { timeout?: number; maxBuffer?: number } = {}): TorchRun<T> {
  const failures: string[] = [];
  for (const python of PYTHONS) {
    try {
      const stdout = execFileSync(python, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], ...options });
      return { ok: true, python, value: parse(stdout) };
    } catch (e) {
      const stderr = (e as { stderr?: string }).stderr?.trim().split("\n").pop();
      failures.push(`${python}: ${stderr || (e instanceof Error ? e.message : String(e))}`);
    }
  }
  return { ok: false, why: failures.join("; ") };
}
