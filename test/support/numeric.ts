// Numeric comparison for kernel and model tests: the relative error ‖out−ref‖/‖ref‖ of
// runtime/numeric.ts, asserted and printed so a passing run still shows how close it was.
import * as assert from "uvu/assert";
import { relativeError } from "../../runtime/numeric.ts";

export { relativeError };

type Numbers = ArrayLike<number>;

/** Asserts ‖out−ref‖/‖ref‖ < tolerance and no NaN; prints the error with the label. */
export function assertClose(out: Numbers, ref: Numbers, tolerance: number, label: string): number {
  for (let i = 0; i < out.length; i++) {
    if (Number.isNaN(out[i]) !== Number.isNaN(ref[i])) assert.unreachable(`${label}: NaN at ${i} (out ${out[i]}, ref ${ref[i]})`);
  }
  const err = relativeError(out, ref);
  console.log(`    ${label}: relative error ${err.toExponential(2)}`);
  assert.ok(err < tolerance, `${label}: relative error ${err.toExponential(3)} >= ${tolerance} (first values out=${Array.from(out).slice(0, 4).map((v) => v.toPrecision(6))} ref=${Array.from(ref).slice(0, 4).map((v) => v.toPrecision(6))})`);
  return err;
}
