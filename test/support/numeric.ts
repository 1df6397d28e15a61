// Numeric comparison for kernel and model tests: relative error ‖out−ref‖/‖ref‖, printed so a
// passing run still shows how close it was.
import * as assert from "uvu/assert";

type Numbers = ArrayLike<number>;

export function relativeError(out: Numbers, ref: Numbers): number {
  assert.is(out.length, ref.length, "length mismatch");
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = out[i] - ref[i];
    diff += d * d;
    norm += ref[i] * ref[i];
  }
  if (norm === 0) return Math.sqrt(diff);
  return Math.sqrt(diff / norm);
}

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
