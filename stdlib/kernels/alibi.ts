// ALiBi (Baichuan-13B): per-head slopes computed exactly as the reference does, and the linear
// score bias the attention kernels add per score (never a materialized (H, T, S) tensor).

/**
 * Slopes of `heads` attention heads, models.md §2.2: Baichuan-13B's `_get_interleave(n)`.
 * A power of two n gives `start^(i+1)` with `start = 2^(-2^-(log2 n - 3))`; otherwise the slopes of
 * the closest lower power of two, then every other slope of twice that power, up to n.
 * Computed in float64 like the Python code, then stored as f32 (`torch.Tensor(...)`).
 */
export function alibiSlopes(heads: number): Float32Array {
  return Float32Array.from(interleave(heads));
}

function interleave(n: number): number[] {
  const log2n = Math.log2(n);
  if (Number.isInteger(log2n)) {
    const start = 2 ** -(2 ** -(log2n - 3));
    const out: number[] = [];
    for (let i = 0; i < n; i++) out.push(start * start ** i);
    return out;
  }
  const closest = 2 ** Math.floor(log2n);
  const extra = interleave(2 * closest).filter((_, i) => i % 2 === 0);
  return [...interleave(closest), ...extra.slice(0, n - closest)];
}

/**
 * The bias of query position `p` against key `j`. Baichuan adds `slope * j` (absolute key index,
 * models.md §2.2, §6.5); `slope * (j - p)` differs from it by a constant per query row, so softmax,
 * outputs and gradients are the same, and it stays small where keys are visible (j <= p), which
 * keeps f32 scores accurate for long sequences. The saved log-sum-exp uses this form.
 */
export function alibiBias(slope: number, p: number, j: number): number {
  return slope * (j - p);
}

/** WGSL twin of `alibiBias` (the subtraction is exact for positions below 2^24). */
export const WGSL_ALIBI_BIAS = `
fn alibi_bias(slope: f32, p: u32, j: u32) -> f32 {
  return slope * (f32(j) - f32(p));
}`;
