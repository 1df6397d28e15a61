// The low-rank epilogue of the matmul kernels: C = alpha·op(A)op(B) + bias + T·op(L) + beta·C,
// with T (M, r) per batch item and op(L) (r, N) of a small inner size r. A LoRA linear
// y = x Wᵀ + (scale · x Aᵀ) Bᵀ then runs as two launches, the down-projection T = scale · x Aᵀ
// and x Wᵀ whose stores add the r-term dot product T[m, :] · B[n, :], instead of three plus a
// copy: the (M, N) up-projection is never written, copied or read back. The input gradient
// dY W + dT' A folds the same way. Every strategy (tiled, registers, subgroup matrices, gemv,
// NF4) shares the store function, so all of them take the epilogue; it runs in f32.
import type { StorageDType } from "./dtype.ts";
import type { KernelBinding, UniformValues } from "./kernel.ts";

/** The dtypes of T and L. */
export interface LowRankOperands {
  t: StorageDType;
  l: StorageDType;
}

/**
 * Where T and op(L) are, in elements: T[z, m, j] at z·strideT + m·tRow + j·tRank, op(L)[z, j, n]
 * at z·strideL + n·lCol + j·lRank (either operand transposed, strided or shared over the batch).
 */
export interface LowRankLayout {
  rank: number;
  strideT: number;
  tRow: number;
  tRank: number;
  strideL: number;
  lCol: number;
  lRank: number;
}

/** The uniforms the low-rank epilogue adds to the matmul's. */
export const LOW_RANK_UNIFORMS = {
  lrRank: "u32",
  lrStrideT: "u32",
  lrTRow: "u32",
  lrTRank: "u32",
  lrStrideL: "u32",
  lrLCol: "u32",
  lrLRank: "u32",
} as const;

export function lowRankUniforms(l: LowRankLayout): UniformValues {
  return { lrRank: l.rank, lrStrideT: l.strideT, lrTRow: l.tRow, lrTRank: l.tRank, lrStrideL: l.strideL, lrLCol: l.lCol, lrLRank: l.lRank };
}

/** T and L, bound after A, B and the bias. */
export function lowRankBindings(o: LowRankOperands): KernelBinding[] {
  return [
    { name: "lora_t", dtype: o.t, access: "read" },
    { name: "lora_l", dtype: o.l, access: "read" },
  ];
}

/**
 * WGSL low_rank(base, m, n): (T·op(L))[m, n] of the batch item whose outputs start at `base`
 * (every matmul kernel passes wid.z · strideC, so the item is base / strideC).
 */
export const LOW_RANK_FUNCTION = `fn low_rank(base: u32, m: u32, n: u32) -> f32 {
  let z = select(0u, base / u.strideC, u.strideC > 0u);
  let t0 = z * u.lrStrideT + m * u.lrTRow;
  let l0 = z * u.lrStrideL + n * u.lrLCol;
  var sum = 0.0;
  for (var j = 0u; j < u.lrRank; j++) {
    sum += load_lora_t(t0 + j * u.lrTRank) * load_lora_l(l0 + j * u.lrLRank);
  }
  return sum;
}`;

/** Float64 reference: T·op(L) for every (z, m, n), packed (batch, M, N). */
export function lowRankRef(t: ArrayLike<number>, l: ArrayLike<number>, layout: LowRankLayout, batch: number, m: number, n: number): Float64Array {
  const out = new Float64Array(batch * m * n);
  for (let z = 0; z < batch; z++)
    for (let i = 0; i < m; i++)
      for (let c = 0; c < n; c++) {
        let sum = 0;
        for (let j = 0; j < layout.rank; j++) sum += t[z * layout.strideT + i * layout.tRow + j * layout.tRank] * l[z * layout.strideL + c * layout.lCol + j * layout.lRank];
        out[(z * m + i) * n + c] = sum;
      }
  return out;
}
