// Unwrapping results in tests: a result that should succeed fails the test with its
// diagnostics; one that should fail must carry exactly one diagnostic.
import * as assert from "uvu/assert";
import type { Diagnostic, Result } from "../../compiler/diagnostics.ts";

/** The value of a result that must succeed. */
export function expectOk<T>(result: Result<T>): T {
  if (result.ok) return result.value;
  throw new Error(`expected success: ${result.diagnostics.map((d) => `${d.code} ${d.message}`).join("\n")}`);
}

/** The single diagnostic of a result that must fail. */
export function expectError<T>(result: Result<T>): Diagnostic {
  assert.is(result.ok, false, "expected an error");
  assert.is(result.diagnostics.length, 1, result.diagnostics.map((d) => d.message).join("\n"));
  return result.diagnostics[0];
}
