// The low-rank epilogue of the matmul kernels: C = alpha·op(A)op(B) + bias + T·op(L) + beta·C,
// with T (M, r) per batch item and op(L) (r, N) of a small inner size r. A LoRA linear
// y = x Wᵀ + (scale · x Aᵀ) Bᵀ then runs as two launches, the down-projection T = scale · x Aᵀ
// and x Wᵀ whose stores add the r-term dot product T[m, :] · B[n, :], instead of three plus a
// copy: the (M, N) up-projection is never written, copied or read back. The input gradient
// dY W + dT' A folds the same way. Every strategy (tiled, registers, subgroup matrices, gemv,
// NF4) shares the store function, so all of them take the epilogue; it runs in f32.
import type { StorageDType } from "./dtype.ts";
import type { KernelBinding, UniformValues } from "./kernel.ts";
import type { MatmulShape } from "./matmul.ts";

/** The dtypes of T and L. */
export interface LowRankOperands {
  t: StorageDType;
  l: StorageDType;
}

/**
 * Where T and L are, in the matmul's own operand terms: T stored (M, r), or (r, M) with
 * `transT`, rows `ldt` apart; L stored (r, N), or (N, r) with `transL` (a LoRA B applied as
 * T Bᵀ), rows `ldl` apart; batch items `strideT` / `strideL` apart (0: one shared by all).
 */
export interface LowRankLayout {
  rank: number;
  transT: boolean;
  ldt: number;
  strideT: number;
  transL: boolean;
  ldl: number;
  strideL: number;
}

/** The uniforms the low-rank epilogue adds to the matmul's: element strides of T along M and r, of op(L) along N and r. */
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
  return {
    lrRank: l.rank,
    lrStrideT: l.strideT,
    lrTRow: l.transT ? 1 : l.ldt,
    lrTRank: l.transT ? l.ldt : 1,
    lrStrideL: l.strideL,
    lrLCol: l.transL ? l.ldl : 1,
    lrLRank: l.transL ? 1 : l.ldl,
  };
}

/**
 * T·op(L) as a matmul of its own, (batch, M, N) packed: what the epilogue adds, for the float64
 * reference and for devices that run it as a second, accumulating launch.
 */
export function lowRankProduct(l: LowRankLayout, batch: number, m: number, n: number): { shape: MatmulShape; trans: { transA: boolean; transB: boolean } } {
  return {
    shape: { batch, m, n, k: l.rank, strideA: l.strideT, strideB: l.strideL, lda: l.ldt, ldb: l.ldl },
    trans: { transA: l.transT, transB: l.transL },
  };
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
