// An export's output directory, made atomically: everything is written into a sibling
// `<out>.tmp-XXXXXX` that is renamed into place at the end, so a crash or an error never leaves
// a half-written model where a complete one is expected. Missing parent directories are made;
// an existing non-empty directory is replaced only when the caller says so.
import { existsSync, statSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rename, rm, rmdir } from "node:fs/promises";
import { dirname } from "node:path";
import { diag, fail, ok, type Diagnostic, type Result } from "../../compiler/diagnostics.ts";
import { CheckpointFault } from "../checkpoint/fault.ts";

/** Whether `outDir` may receive an export: absent, empty, or replaceable with `overwrite`. */
export async function checkOutputDir(outDir: string, overwrite: boolean): Promise<Result<void>> {
  if (!existsSync(outDir)) return ok(undefined);
  if (!statSync(outDir).isDirectory()) return fail(diag("SFT5805", `${outDir} exists and is not a directory`, { where: outDir }));
  const entries = await readdir(outDir);
  if (entries.length > 0 && !overwrite) {
    return fail(diag("SFT5804", `${outDir} already holds ${entries.length} file(s); the export would replace them`, { where: outDir, hint: "choose a new output directory, or allow overwriting it" }));
  }
  return ok(undefined);
}

/**
 * Runs `write(staging)` on a fresh staging directory beside `outDir`, then moves the result into
 * place (replacing an old `outDir`, which `checkOutputDir` has allowed). On any failure the
 * staging directory is removed and `outDir` is left as it was.
 */
export async function writeDirAtomically<T>(outDir: string, write: (staging: string) => Promise<Result<T>>): Promise<Result<T>> {
  const made = await captureWriteErrors(outDir, async () => {
    await mkdir(dirname(outDir), { recursive: true });
    return mkdtemp(`${outDir}.tmp-`);
  });
  if (!made.ok) return made;
  const staging = made.value;
  let result: Result<T>;
  try {
    result = await write(staging);
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    throw error;
  }
  if (!result.ok) {
    await rm(staging, { recursive: true, force: true });
    return result;
  }
  const moved = await captureWriteErrors(outDir, () => replaceDir(staging, outDir));
  if (!moved.ok) await rm(staging, { recursive: true, force: true });
  return moved.ok ? result : moved;
}

async function replaceDir(staging: string, outDir: string): Promise<void> {
  if (!existsSync(outDir)) return rename(staging, outDir);
  if ((await readdir(outDir)).length === 0) {
    await rmdir(outDir);
    return rename(staging, outDir);
  }
  // The old directory moves aside first, so a complete model is in place at every moment but one rename.
  const old = await mkdtemp(`${outDir}.old-`);
  await rename(outDir, `${old}/model`);
  await rename(staging, outDir);
  await rm(old, { recursive: true, force: true });
}

/**
 * Runs `work`, returning file-system errors as SFT5805 about `where` and checkpoint read faults
 * as their own diagnostics; anything else is a bug and is rethrown.
 */
export async function captureWriteErrors<T>(where: string, work: () => Promise<T>): Promise<Result<T>> {
  try {
    return ok(await work());
  } catch (error) {
    if (error instanceof CheckpointFault) return fail(error.diagnostic);
    if (error instanceof DiagnosticError) return fail(...error.diagnostics);
    const code = (error as NodeJS.ErrnoException | null)?.code;
    if (typeof code === "string" && /^E[A-Z]+$/.test(code)) {
      return fail(diag("SFT5805", `cannot write ${where}: ${(error as Error).message}`, { where, hint: "check that the disk has room and the directory is writable" }));
    }
    throw error;
  }
}

/**
 * Carries error values out of a callback that must return bytes (a tensor stream that failed
 * mid-write); `captureWriteErrors` turns it back into a value.
 */
export class DiagnosticError extends Error {
  constructor(readonly diagnostics: Diagnostic[]) {
    super(diagnostics.map((d) => d.message).join("; "));
  }
}
