// The relative error every check of a kernel against its float64 reference reports: the
// device's self-check, the benchmarks and the tests.

/**
 * ‖out−ref‖/‖ref‖ (‖out−ref‖ where ref is all zeros); NaN when `out` holds a NaN or an
 * infinity, so a check against a tolerance fails on it.
 */
export function relativeError(out: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (out.length !== ref.length) throw new Error(`relativeError: ${out.length} values against a reference of ${ref.length}`);
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < ref.length; i++) {
    if (!Number.isFinite(out[i])) return NaN;
    diff += (out[i] - ref[i]) ** 2;
    norm += ref[i] * ref[i];
  }
  return Math.sqrt(diff / (norm || 1));
}
