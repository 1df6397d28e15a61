// The benchmarked matmuls: f32, bf16 and f16 weights on the plain strategies and on subgroup
// matrices (each tiling preset), NF4 weights decoded inside the kernel, and decode products (one
// row of activations) on the gemv kernel. Each case's FLOPs are 2·M·N·K and its bytes the
// operands read once and the product written once; its check compares the product with
// matmulRef on the inputs rounded to the precision the strategy multiplies in.
import type { GpuDevice } from "../runtime/gpu/device.ts";
import { createTensor, readFloats } from "../runtime/gpu/tensor.ts";
import { bytesPerElement, roundToDType, type StorageDType } from "../stdlib/kernels/dtype.ts";
import { matmulKernel, matmulKernelsOf, matmulRef, matmulUniforms } from "../stdlib/kernels/matmul.ts";
import { strategyName, type MatmulStrategy } from "../stdlib/kernels/matmul-strategy.ts";
import { DEFAULT_SUBGROUP_TILING, SUBGROUP_TILINGS, subgroupMatrixTolerance, tilingKey } from "../stdlib/kernels/matmul-subgroup.ts";
import { engineGemv, gemvVariantName, tunedGemv } from "../runtime/gpu/gemv-tuning.ts";
import { nf4MatmulKernel } from "../stdlib/kernels/nf4-matmul.ts";
import { dequantizeNf4 } from "../stdlib/quant/nf4.ts";
import { nf4Bindings, nf4Buffers, uploadNf4Tables, uploadNf4Tensor } from "../runtime/execute/nf4-weights.ts";
import { F32_TOLERANCE, gather, worst, type Case, type CaseInputs } from "./case-inputs.ts";
import { rowsNote } from "./checked-rows.ts";
import type { BenchShapes } from "./sizes.ts";

/**
 * What a matmul strategy multiplies: f32 values, or f16 ones on subgroup matrices (the reference
 * rounds its inputs alike, so the tolerance stays that of the accumulation).
 */
export function productInputs(strategy: MatmulStrategy): { dtype: StorageDType; tolerance: number } {
  return typeof strategy === "string" ? { dtype: "f32", tolerance: F32_TOLERANCE } : { dtype: "f16", tolerance: subgroupMatrixTolerance(strategy.config) };
}

// e.g. "subgroup-matrix f16>f32 16x16x16 wg64-vec4-pad (2x2 of 32x32, bk32, vec4, pad8)"
function strategyLabel(strategy: MatmulStrategy): string {
  if (typeof strategy === "string") return strategy;
  const c = strategy.config;
  const tiling = strategy.tiling ?? DEFAULT_SUBGROUP_TILING;
  const accumulation = c.resultComponentType === "f32" ? "" : ", f16 accumulation";
  return `${strategyName(strategy)} ${c.componentType}>${c.resultComponentType} ${c.M}x${c.N}x${c.K} ${tiling} (${tilingKey(SUBGROUP_TILINGS[tiling])})${accumulation}`;
}

export function matmulCase(inputs: CaseInputs, m: number, n: number, k: number, bType: StorageDType, transB: boolean, strategy: MatmulStrategy, note = ""): Case {
  const shape = { batch: 1, m, n, k };
  const layout = { transA: false, transB };
  const a = inputs.input("f32", [m, k], "a"); // (M, K)
  const b = inputs.input(bType, transB ? [n, k] : [k, n], "b"); // (N, K) or (K, N)
  const c = createTensor(inputs.gpu, "f32", [m, n]); // (M, N)
  const products = productInputs(strategy);
  return {
    label: `matmul ${strategyLabel(strategy)} f32 x ${bType}${transB ? " (B^T)" : ""}${note}`,
    shape: `${m}x${n}x${k}`,
    mnk: [m, n, k],
    // decode shapes take the gemv kernel with the engine's workgroup (the tuned one, else the default)
    spec: matmulKernel({ a: "f32", b: bType, out: "f32", ...layout }, shape, strategy, engineGemv(inputs.gpu)),
    uniforms: matmulUniforms(shape, layout),
    tensors: { a: a.tensor, b: b.tensor, c },
    flops: 2 * m * n * k,
    bytes: 4 * m * k + bytesPerElement(bType) * k * n + 4 * m * n,
    verify: async () => {
      const rows = inputs.rows(m);
      const ref = inputs.reference(`${m}x${n}x${k} ${bType}${transB ? " (B^T)" : ""} ${products.dtype} products`, () => {
        const aRef = roundToDType(products.dtype, gather(a.host, rows, k));
        const bRef = roundToDType(products.dtype, roundToDType(bType, b.host));
        return matmulRef(aRef, bRef, layout, { ...shape, m: rows.length });
      });
      return { ...worst([[gather(await readFloats(inputs.gpu, c), rows, n), ref]], rowsNote(rows, m)), tolerance: products.tolerance };
    },
  };
}

/**
 * x Wᵀ with W an NF4 weight stored (N, K), decoded inside the kernel (QLoRA's frozen base linears)
 * by the kernels of `strategy` (with the engine's gemv workgroup); `wideSteps` sets the gemv's
 * weights a step (GemvVariant.wideSteps: true 32, false four; default the engine's).
 */
export function nf4MatmulCase(inputs: CaseInputs, m: number, n: number, k: number, strategy: MatmulStrategy, note = "", wideSteps?: boolean): Case {
  const shape = { batch: 1, m, n, k, strideB: 0 };
  const layout = { transA: false, transB: true };
  const a = inputs.input("f32", [m, k], "a"); // (M, K)
  const quantized = inputs.nf4Weight(n, k);
  const weight = uploadNf4Tensor(inputs.gpu, quantized, "nf4 weight"); // (N, K)
  const c = createTensor(inputs.gpu, "f32", [m, n]); // (M, N)
  const products = productInputs(strategy);
  const nf4Bytes = nf4Buffers(weight).reduce((sum, t) => sum + t.buffer.size, 0);
  return {
    label: `matmul ${strategyLabel(strategy)} f32 x nf4 (B^T)${note}`,
    shape: `${m}x${n}x${k}`,
    mnk: [m, n, k],
    spec: nf4MatmulKernel({ a: "f32", b: "f32", out: "f32", ...layout }, shape, matmulKernelsOf(strategy, { ...engineGemv(inputs.gpu), ...(wideSteps === undefined ? {} : { wideSteps }) })),
    uniforms: matmulUniforms(shape, layout),
    tensors: { a: a.tensor, c, ...nf4Bindings(weight, uploadNf4Tables(inputs.gpu)) },
    flops: 2 * m * n * k,
    bytes: 4 * m * k + nf4Bytes + 4 * m * n,
    verify: async () => {
      const rows = inputs.rows(m);
      const ref = inputs.reference(`${m}x${n}x${k} nf4 (B^T) ${products.dtype} products`, () => {
        // the dequantized weight (what the kernel decodes), rounded to the products' inputs
        const w = roundToDType(products.dtype, dequantizeNf4(quantized));
        return matmulRef(roundToDType(products.dtype, gather(a.host, rows, k)), w, layout, { ...shape, m: rows.length });
      });
      return { ...worst([[gather(await readFloats(inputs.gpu, c), rows, n), ref]], rowsNote(rows, m)), tolerance: products.tolerance };
    },
  };
}

/**
 * A decode product (one row of activations times W stored (N, K)) as a memory-bound row: its
 * bytes are W's plus A's and C's. Built on the tiled strategy, for which matmulKernel takes the
 * gemv kernel (matmul-gemv.ts) at these shapes, with the engine's workgroup, which the row names.
 */
export function decodeCase(gpu: GpuDevice, c: Case, weight: string, note = ""): Case {
  const workgroup = `${gemvVariantName(engineGemv(gpu))} (${tunedGemv(gpu) ? "tuned" : "default"})`;
  return { ...c, label: `matmul gemv f32 x ${weight} (B^T), decode${note}, ${workgroup}`, mnk: undefined };
}

/** The (M, N, K) of the benchmarked matmuls: square, square minus a little (unaligned), FFN up-projection. */
export function matmulShapes(s: BenchShapes): [number, number, number][] {
  const sq = s.square;
  return [[sq, sq, sq], [sq - 1, sq - 3, sq - 5], [s.tokens, s.ffn, s.hidden]];
}
