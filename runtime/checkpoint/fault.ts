// Inside the checkpoint readers a user-data problem (a corrupt zip, a bad pickle) is raised as a
// `CheckpointFault` so that deep parsing code stays linear; every exported entry point catches
// it with `captureFaults` and returns it as a diagnostic value. Faults never leave this folder.
import { diag, fail, ok, type Diagnostic, type Result } from "../../compiler/diagnostics.ts";
import type { Code } from "../../compiler/diagnostic-codes.ts";

export class CheckpointFault extends Error {
  constructor(readonly diagnostic: Diagnostic) {
    super(diagnostic.message);
  }
}

/** Raises `code` with `message` about `where` (a file, or file + tensor). */
export function fault(code: Code, message: string, where: string, hint?: string): never {
  throw new CheckpointFault(diag(code, message, { where, hint }));
}

/** Runs `work`, turning checkpoint faults and file-system errors into an error value. */
export async function captureFaults<T>(where: string, work: () => Promise<T>): Promise<Result<T>> {
  try {
    return ok(await work());
  } catch (error) {
    return fail(faultDiagnostic(error, where));
  }
}

/** The diagnostic for something thrown while reading `where`; other errors are bugs and rethrown. */
export function faultDiagnostic(error: unknown, where: string): Diagnostic {
  if (error instanceof CheckpointFault) return error.diagnostic;
  const code = (error as NodeJS.ErrnoException | null)?.code;
  if (typeof code === "string" && /^E[A-Z]+$/.test(code)) {
    return diag("SFT5118", `cannot read ${where}: ${(error as Error).message}`, { where, hint: "check that the file exists and is readable" });
  }
  throw error;
}
