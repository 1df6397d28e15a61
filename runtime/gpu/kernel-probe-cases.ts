// The problems of the self-check's probes, each with its float64 answer: matmuls off every tile,
// and causal attention forward and backward at the families' head dims. Sizes are small and off
// the kernels' tiles, so a probe runs in milliseconds and catches edge handling; the score-matrix
// attention's probe, up to eight cases of both storage dtypes, grouped queries and two chunkings,
// takes 0.1 to 0.3 s to build its float64 answers (measured on a CPU), so a probe builds its cases
// once, and a tuning run that checks one twice passes the probe on (attention-path-tuning.ts).
import { attentionBackwardUniforms, type AttentionBackwardKernels, type BackwardViews } from "../../stdlib/kernels/attention-backward.ts";
import type { AttentionVariant } from "../../stdlib/kernels/attention-common.ts";
import { subgroupAttentionBackwardTolerance, type BackwardKernel } from "../../stdlib/kernels/attention-backward-subgroup.ts";
import { subgroupAttentionTolerance } from "../../stdlib/kernels/attention-forward-subgroup.ts";
import { attentionForwardUniforms } from "../../stdlib/kernels/attention-forward.ts";
import { denseView, keyValueGradientViews, scatterView } from "../../stdlib/kernels/attention-layout.ts";
import { scoresBackwardKernels, scoresChunkHeads, scoresForwardKernels } from "../../stdlib/kernels/attention-scores-steps.ts";
import { attentionBackwardReference, attentionForwardReference, type AttentionShape } from "../../stdlib/kernels/attention-reference.ts";
import { roundToDType, type StorageDType } from "../../stdlib/kernels/dtype.ts";
import { onSubgroupMatrices, type KernelSpec } from "../../stdlib/kernels/kernel.ts";
import { matmulRef, matmulUniforms, type MatmulKernel, type MatmulOptions, type MatmulShape } from "../../stdlib/kernels/matmul.ts";
import { nf4MatmulKernel } from "../../stdlib/kernels/nf4-matmul.ts";
import { dequantizeNf4, quantizeNf4 } from "../../stdlib/quant/nf4.ts";
import { nf4Contents } from "../execute/nf4-weights.ts";
import { Random } from "../random.ts";
import type { GpuDevice } from "./device.ts";
import type { KernelProbe, ProbeCase } from "./kernel-probe.ts";
import type { TuningProblem } from "./kernel-tuning.ts";

/** x Wᵀ in f32 with W stored (N, K), as a model's linears multiply. */
export const WEIGHTS: MatmulOptions = { a: "f32", b: "f32", out: "f32", transA: false, transB: true };

/** `n` timing values in [-amplitude, amplitude) without a random draw over millions of elements (any finite values time the same). */
function timingValues(n: number, amplitude = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = amplitude * (((i * 7919) % 64) / 32 - 1);
  return out;
}

/** The head dims the attention tunings time: Baichuan's, ChatGLM's and ChatGLM2's 128 and MOSS's 256. */
export const TUNED_HEAD_DIMS = [128, 256];
/** The tokens a row of the attention tunings' problems holds. */
export const TUNING_TOKENS = 1024;

/** The storage dtypes a probe of `gpu` checks: f32, and f16 where the device has shader-f16. */
export function probeStorage(gpu: GpuDevice): readonly AttentionVariant["dtype"][] {
  return gpu.hasF16 ? ["f32", "f16"] : ["f32"];
}

/** The tensors of x Wᵀ (WEIGHTS) at `shape` for timing (timingValues). */
export function weightProductProblem(shape: MatmulShape): TuningProblem {
  const { m, n, k } = shape;
  return {
    label: `${m}x${k} times (${n}, ${k})ᵀ, f32`,
    tensors: () => ({ a: { dtype: "f32", data: timingValues(m * k) }, b: { dtype: "f32", data: timingValues(n * k) }, c: { dtype: "f32", data: new Float32Array(m * n) } }),
  };
}

/**
 * Causal self-attention to time kernels on: `batch` rows of `tokens` tokens, 4096 / D query heads
 * (a 7B model's width) over `kvHeads` key/value heads (default as many), dense (B, L, H, D) f32
 * operands (dK and dV in one buffer), and their contents: inputs in [-0.5, 0.5), so scores stay
 * near 0 and, with the log-sum-exp and delta 0, a backward's P stays near 1.
 */
export function causalTimingAttention(headDim: number, tokens: number, batch: number, kvHeads?: number) {
  const heads = Math.max(1, 4096 / headDim);
  const keyHeads = kvHeads ?? heads;
  const shape: AttentionShape = { batch, queryHeads: heads, kvHeads: keyHeads, queryLength: tokens, keyLength: tokens, headDim };
  const elements = batch * tokens * heads * headDim;
  const keyElements = batch * tokens * keyHeads * headDim;
  const [view, keys] = [denseView("bthd", tokens, heads, headDim), denseView("bthd", tokens, keyHeads, headDim)];
  const views: BackwardViews = { q: view, k: keys, v: keys, o: view, dout: view, dq: view, ...keyValueGradientViews(batch, tokens, keyHeads, headDim) };
  // one array per length: the problem's inputs all hold the same values
  const patterns = new Map<number, Float32Array>();
  const timingPattern = (n: number) => patterns.get(n) ?? patterns.set(n, timingValues(n, 0.5)).get(n)!;
  return {
    shape,
    views,
    scale: 1 / Math.sqrt(headDim),
    mask: { causal: true, queryOffset: 0 },
    elements,
    keyElements,
    /** Query rows of all heads: the log-sum-exp's and delta's length. */
    rows: batch * heads * tokens,
    pattern: (n = elements) => ({ dtype: "f32" as const, data: timingPattern(n) }),
    zeros: (n: number) => ({ dtype: "f32" as const, zeros: n }),
  };
}

/**
 * Matmuls with M, N, K off every tile: x Wᵀ with W stored (N, K) as weights are, in f32 and with
 * f16 activations times bf16 weights (half-precision checkpoints), and a batched A B with bias,
 * alpha and accumulation (as gradients accumulate). `inputs` is the precision the kernel
 * multiplies in: the reference sees A and B rounded to it.
 */
export function matmulCases(kernel: MatmulKernel, inputs: StorageDType): ProbeCase[] {
  return productCases(kernel, inputs, new Random(5010), [
    [WEIGHTS, { batch: 1, m: 70, n: 90, k: 100 }, "70x100 times (90, 100)ᵀ"],
    [{ ...WEIGHTS, a: "f16", b: "bf16" }, { batch: 1, m: 24, n: 72, k: 40 }, "f16 24x40 times bf16 (72, 40)ᵀ"],
    [{ ...WEIGHTS, transB: false, bias: "f32", accumulate: true }, { batch: 2, m: 33, n: 40, k: 50, alpha: 0.5, beta: 1 }, "2 x (33x50 times 50x40) + bias + C"],
  ]);
}

/**
 * Decode products (matmul-gemv.ts): one and three rows times W stored (N, K), N off the
 * workgroup's columns, K long (many steps along it) and off 4 (the scalar tail), a bf16 W with
 * bias and accumulation; f32 products.
 */
export function gemvCases(kernel: MatmulKernel): ProbeCase[] {
  return productCases(kernel, "f32", new Random(5013), [
    [WEIGHTS, { batch: 1, m: 1, n: 37, k: 2100 }, "1x2100 times (37, 2100)ᵀ"],
    [WEIGHTS, { batch: 1, m: 3, n: 37, k: 2101 }, "3x2101 times (37, 2101)ᵀ"],
    [{ ...WEIGHTS, b: "bf16", bias: "f32", accumulate: true }, { batch: 1, m: 2, n: 21, k: 96, alpha: 0.5, beta: 1 }, "2x96 times bf16 (21, 96)ᵀ + bias + C"],
  ]);
}

/**
 * Decode products with W an NF4 weight stored (N, K) (nf4-matmul.ts) by `kernel`'s dense kernels:
 * one and two rows at K a multiple of 32 (where a gemv takes 32 weights a step), three rows at a K
 * off 32 (four a step, a block's absmax shared with the next row's first weights); f32 products
 * against matmulRef on the dequantized weight.
 */
export function nf4GemvCases(kernel: MatmulKernel): ProbeCase[] {
  const rng = new Random(5017);
  return ([[1, 37, 2048], [2, 21, 4160], [3, 9, 200]] as const).map(([m, n, k]) => {
    const s: MatmulShape = { batch: 1, m, n, k, strideB: 0 };
    const weight = quantizeNf4(rng.normalArray(n * k, 0.05));
    const a = rng.normalArray(m * k);
    const expected = matmulRef(Float64Array.from(a), Float64Array.from(dequantizeNf4(weight)), WEIGHTS, s);
    const tensors: ProbeCase["tensors"] = { a: { dtype: "f32", data: a }, c: { dtype: "f32", zeros: m * n }, ...nf4Contents(weight) };
    return { label: `${m}x${k} times NF4 (${n}, ${k})ᵀ`, spec: nf4MatmulKernel(WEIGHTS, s, kernel), uniforms: matmulUniforms(s, WEIGHTS), tensors, expected: { c: expected } };
  });
}

/** The tensors of x Wᵀ (WEIGHTS) at `shape` with W an NF4 weight, for timing (timingValues quantized). */
export function nf4WeightProductProblem(shape: MatmulShape): TuningProblem {
  const { m, n, k } = shape;
  return {
    label: `${m}x${k} times NF4 (${n}, ${k})ᵀ, f32`,
    tensors: () => ({ a: { dtype: "f32", data: timingValues(m * k) }, c: { dtype: "f32", data: new Float32Array(m * n) }, ...nf4Contents(quantizeNf4(timingValues(n * k))) }),
  };
}

// Each product of `list` on seeded inputs, against matmulRef on A and B rounded to `inputs`.
function productCases(kernel: MatmulKernel, inputs: StorageDType, rng: Random, list: [MatmulOptions, MatmulShape, string][]): ProbeCase[] {
  return list.map(([o, s, label]) => {
    const a = roundToDType(o.a, rng.normalArray(s.batch * s.m * s.k));
    const b = roundToDType(o.b, rng.normalArray(s.batch * s.k * s.n));
    const bias = o.bias ? Float64Array.from(rng.normalArray(s.n)) : undefined;
    const c0 = o.accumulate ? Float64Array.from(rng.normalArray(s.batch * s.m * s.n)) : new Float64Array(s.batch * s.m * s.n);
    const expected = matmulRef(roundToDType(inputs, a), roundToDType(inputs, b), o, s, { bias, c0: o.accumulate ? c0 : undefined });
    const tensors: ProbeCase["tensors"] = { a: { dtype: o.a, data: a }, b: { dtype: o.b, data: b }, c: { dtype: o.out, data: c0 } };
    if (bias) tensors.bias = { dtype: "f32", data: bias };
    return { label, spec: kernel(o, s), uniforms: matmulUniforms(s, o), tensors, expected: { c: expected } };
  });
}

/** The variant of causal attention with `dtype` storage. */
export function causalVariant(headDim: number, dtype: AttentionVariant["dtype"]): AttentionVariant {
  return { dtype, headDim, causal: true, prefix: false, padding: false, segments: false, alibi: false };
}

// The problem of the attention probes: causal attention of 40 queries over 40 keys, 2 query heads
// sharing 1 KV head (as ChatGLM2's groups do), Q, K, V in `variant`'s storage dtype, dense (B, H, L, D).
function causalProblem(rng: Random, variant: AttentionVariant) {
  const { headDim, dtype } = variant;
  const shape: AttentionShape = { batch: 1, queryHeads: 2, kvHeads: 1, queryLength: 40, keyLength: 40, headDim };
  const mask = { causal: true, queryOffset: 0 };
  const scale = 1 / Math.sqrt(headDim);
  const q = roundToDType(dtype, rng.normalArray(shape.queryHeads * shape.queryLength * headDim));
  const k = roundToDType(dtype, rng.normalArray(shape.kvHeads * shape.keyLength * headDim));
  const v = roundToDType(dtype, rng.normalArray(shape.kvHeads * shape.keyLength * headDim));
  const queries = denseView("bhtd", shape.queryLength, shape.queryHeads, headDim);
  const keys = denseView("bhtd", shape.keyLength, shape.kvHeads, headDim);
  const label = `causal attention T 40, 2 heads over 1 KV head, head dim ${headDim}, ${dtype} storage`;
  return { shape, mask, scale, q, k, v, queries, keys, label };
}

// Each checked head dim with f32 storage, and the first with f16 storage (f16 models).
const probeVariants = (headDims: number[]) => [...headDims.map((d) => causalVariant(d, "f32")), causalVariant(headDims[0], "f16")];

/**
 * The forward of causalProblem at each variant of probeVariants: O and the log-sum-exp against
 * attentionForwardReference on Q, K and V rounded to `inputs`, the precision the kernel
 * multiplies in.
 */
export function attentionCases(kernel: (variant: AttentionVariant) => KernelSpec, headDims: number[], inputs: StorageDType): ProbeCase[] {
  const rng = new Random(5011);
  return probeVariants(headDims).map((variant) => {
    const { shape, mask, scale, q, k, v, queries, keys, label } = causalProblem(rng, variant);
    const ref = attentionForwardReference({ shape, q: roundToDType(inputs, q), k: roundToDType(inputs, k), v: roundToDType(inputs, v), scale, mask });
    const { dtype } = variant;
    return {
      label,
      spec: kernel(variant),
      uniforms: attentionForwardUniforms(shape, { q: queries, k: keys, v: keys, o: queries }, scale, mask),
      tensors: {
        q: { dtype, data: q },
        k: { dtype, data: k },
        v: { dtype, data: v },
        o: { dtype, zeros: q.length },
        lse: { dtype: "f32", zeros: shape.queryHeads * shape.queryLength },
      },
      expected: { o: ref.out, lse: ref.logSumExp },
    };
  });
}

/**
 * The backward of causalProblem at each variant of probeVariants, two cases each: the dQ kernel,
 * and the dK/dV kernel (dK and dV each compared on their own half of the one buffer). Both are
 * fed the reference's log-sum-exp and delta = rowsum(dO * O) (the delta kernel is the plain
 * backward's), and checked against attentionBackwardReference on Q, K, V and dO rounded to
 * `inputs`, the precision the kernels multiply in.
 */
export function attentionBackwardCases(
  kernels: (variant: AttentionVariant) => AttentionBackwardKernels,
  headDims: number[],
  inputs: StorageDType,
  only?: BackwardKernel,
): ProbeCase[] {
  const rng = new Random(5012);
  return probeVariants(headDims).flatMap((variant) => {
    const { shape, mask, scale, q, k, v, queries, keys, label } = causalProblem(rng, variant);
    const { dtype, headDim } = variant;
    const dout = roundToDType(dtype, rng.normalArray(q.length));
    const problem = { shape, q: roundToDType(inputs, q), k: roundToDType(inputs, k), v: roundToDType(inputs, v), scale, mask };
    const dOut = roundToDType(inputs, dout);
    const forward = attentionForwardReference(problem);
    const grads = attentionBackwardReference(problem, dOut);
    const delta = new Float64Array(forward.logSumExp.length); // (B, Hq, T)
    for (let row = 0; row < delta.length; row++) for (let d = 0; d < headDim; d++) delta[row] += dOut[row * headDim + d] * forward.out[row * headDim + d];
    const views = { q: queries, k: keys, v: keys, o: queries, dout: queries, dq: queries, dk: keys, dv: denseView("bhtd", shape.keyLength, shape.kvHeads, headDim, k.length) };
    const uniforms = attentionBackwardUniforms(shape, views, scale, mask);
    const read: ProbeCase["tensors"] = {
      q: { dtype, data: q },
      k: { dtype, data: k },
      v: { dtype, data: v },
      dout: { dtype, data: dout },
      lse: { dtype: "f32", data: forward.logSumExp },
      delta: { dtype: "f32", data: delta },
    };
    const chosen = kernels(variant);
    const dq: ProbeCase = { label: `dQ of ${label}`, spec: chosen.dq, uniforms, tensors: { ...read, dq: { dtype, zeros: q.length } }, expected: { dq: grads.dq } };
    const dkdv: ProbeCase = {
      label: `dK, dV of ${label}`,
      spec: chosen.dkdv,
      uniforms,
      tensors: { ...read, dkv: { dtype, zeros: 2 * k.length } },
      expected: { dk: grads.dk, dv: grads.dv },
      placed: { dk: { binding: "dkv", offset: 0 }, dv: { binding: "dkv", offset: k.length } },
    };
    return only === "dq" ? [dq] : only === "dkdv" ? [dkdv] : [dq, dkdv];
  });
}

/** The subgroup-matrix attention forward `kernel` at each head dim in `headDims` against the reference on f16-rounded Q, K, V. */
export function subgroupAttentionProbe(kernel: (variant: AttentionVariant) => KernelSpec, headDims: number[]): KernelProbe {
  return {
    op: "attention",
    kernel: `subgroup-matrix attention forward (head dims ${headDims.join(", ")})`,
    fallback: "scalar attention forward",
    tolerance: subgroupAttentionTolerance(),
    cases: () => attentionCases(kernel, headDims, "f16"),
  };
}

/**
 * The subgroup-matrix attention backward `kernels` at each head dim in `headDims` against the
 * reference on f16-rounded Q, K, V and dO: the cases of both kernels, or of the `only` one.
 */
export function subgroupAttentionBackwardProbe(kernels: (variant: AttentionVariant) => AttentionBackwardKernels, headDims: number[], only?: BackwardKernel): KernelProbe {
  return {
    op: "attention backward",
    kernel: `subgroup-matrix attention backward (head dims ${headDims.join(", ")})`,
    fallback: "scalar attention backward",
    tolerance: subgroupAttentionBackwardTolerance(),
    cases: () => attentionBackwardCases(kernels, headDims, "f16", only),
  };
}

/**
 * Attention through a materialized score matrix (attention-scores-steps.ts) on the `matmul`
 * kernels, at `headDim`, per storage dtype of `storage`: causal attention of 40 queries over 40
 * keys in 2 batch rows, of 2 heads and of 4 query heads over 2 key/value heads (grouped queries),
 * (B, L, H, D) as projections lay them out, each in chunks of one head where they can be bound
 * (the products then read windows at later batch rows and heads) and in the chunks the engine
 * takes (a layout that cannot be bound at all is left out). The forward's O and log-sum-exp, or
 * the backward's dQ, dK and dV (fed the reference's O and log-sum-exp; delta is the sequence's
 * own), against the float64 reference on Q, K, V and dO rounded to the precision the products
 * multiply in (scoresProducts). Every buffer a sequence writes starts as NaN, so a value it leaves
 * unwritten (or adds to before writing) fails.
 */
export function scoresAttentionProbe(matmul: MatmulKernel, headDim: number, direction: "forward" | "backward", storage: readonly AttentionVariant["dtype"][] = ["f32"]): KernelProbe {
  const what = `attention ${direction}`;
  const { inputs, tolerance } = scoresProducts(matmul, direction);
  let built: ProbeCase[] | undefined;
  return {
    op: direction === "forward" ? "attention" : "attention backward",
    kernel: `score-matrix ${what} (head dim ${headDim}, ${storage.join(" and ")} storage)`,
    fallback: `fused ${what}`,
    tolerance,
    cases: () => (built ??= scoresCases(matmul, headDim, [direction], inputs, storage)),
  };
}

/** scoresAttentionProbe's cases forward and backward at each of `headDims`, as one probe of the path (held to the backward's tolerance, the looser). */
export function scoresPathProbe(matmul: MatmulKernel, headDims: readonly number[], storage: readonly AttentionVariant["dtype"][]): KernelProbe {
  const { inputs, tolerance } = scoresProducts(matmul, "backward");
  return {
    op: "attention scores",
    kernel: `score-matrix attention, forward and backward (head dims ${headDims.join(", ")})`,
    fallback: "fused attention",
    tolerance,
    cases: () => headDims.flatMap((d) => scoresCases(matmul, d, ["forward", "backward"], inputs, storage)),
  };
}

/**
 * The precision the score-matrix sequence on `matmul` multiplies in, and the tolerance of its
 * `direction` that follows: f16 operands on subgroup matrices, which round P (and dS) to f16 as
 * the fused subgroup-matrix kernels do, so theirs; else f32, where f16 storage's rounding of the
 * outputs (2^-11) bounds the error.
 */
function scoresProducts(matmul: MatmulKernel, direction: "forward" | "backward"): { inputs: StorageDType; tolerance: number } {
  if (!onSubgroupMatrices(matmul(WEIGHTS, { batch: 1, m: 64, n: 64, k: 64 }))) return { inputs: "f32", tolerance: 1e-3 };
  return { inputs: "f16", tolerance: scoresF16Tolerance(direction) };
}

/** The score-matrix attention's tolerance where its products take f16 inputs: the fused subgroup-matrix kernels' of the direction. */
export function scoresF16Tolerance(direction: "forward" | "backward"): number {
  return direction === "forward" ? subgroupAttentionTolerance() : subgroupAttentionBackwardTolerance();
}

// The score-matrix cases of `directions` at `headDim`, per storage dtype: 2 heads, and 4 query heads over 2.
function scoresCases(matmul: MatmulKernel, headDim: number, directions: readonly ("forward" | "backward")[], inputs: StorageDType, storage: readonly AttentionVariant["dtype"][]): ProbeCase[] {
  return storage.flatMap((dtype) =>
    [
      [2, 2],
      [4, 2],
    ].flatMap(([heads, kvHeads]) => scoresAttentionCases(matmul, causalVariant(headDim, dtype), heads, kvHeads, directions, inputs)),
  );
}

// One problem's cases in each of `directions`, on one float64 forward (the backward's O and log-sum-exp are its).
function scoresAttentionCases(matmul: MatmulKernel, variant: AttentionVariant, H: number, KV: number, directions: readonly ("forward" | "backward")[], inputs: StorageDType): ProbeCase[] {
  const rng = new Random(5014);
  const { headDim: D, dtype } = variant;
  const [B, T] = [2, 40];
  const shape: AttentionShape = { batch: B, queryHeads: H, kvHeads: KV, queryLength: T, keyLength: T, headDim: D };
  const [mask, scale] = [{ causal: true, queryOffset: 0 }, 1 / Math.sqrt(D)];
  // dense (B, H, L, D) values as stored (rounded to the storage dtype), and their (B, L, H, D) layout
  const [q, dout] = [0, 1].map(() => roundToDType(dtype, rng.normalArray(B * H * T * D)));
  const [k, v] = [0, 1].map(() => roundToDType(dtype, rng.normalArray(B * KV * T * D)));
  const [queries, keys] = [denseView("bthd", T, H, D), denseView("bthd", T, KV, D)];
  const views = { q: queries, k: keys, v: keys, o: queries, dout: queries, dq: queries, ...keyValueGradientViews(B, T, KV, D) };
  const laidOut = (dense: ArrayLike<number>, heads = H) => scatterView(dense, heads === H ? queries : keys, [B, heads, T, D]);
  const problem = { shape, q: roundToDType(inputs, q), k: roundToDType(inputs, k), v: roundToDType(inputs, v), scale, mask };
  const forward = attentionForwardReference(problem);
  const stored = (data: ArrayLike<number>, heads = H) => ({ dtype, data: laidOut(data, heads) });
  const f32 = (data: ArrayLike<number>) => ({ dtype: "f32" as const, data });
  const unwritten = (n: number, as: StorageDType = dtype) => ({ dtype: as, data: new Float64Array(n).fill(NaN) });
  const read = { q: stored(q), k: stored(k, KV), v: stored(v, KV) };
  return directions.flatMap((direction) => {
    // chunks of one head where they can be bound, and the engine's chunks
    const chunkings = new Set([scoresChunkHeads(direction, shape, dtype, views, 4 * T * T), scoresChunkHeads(direction, shape, dtype, views)].filter((h) => h !== undefined));
    const grads = direction === "backward" ? attentionBackwardReference(problem, roundToDType(inputs, dout)) : undefined;
    return [...chunkings].map((heads): ProbeCase => {
      const call = { shape, variant, scale, heads };
      const scores = unwritten(heads * T * T, "f32"); // a chunk's (heads, T, S)
      const label = `${direction}: causal attention T ${T}, ${B} batch rows of ${H} heads over ${KV}, head dim ${D}, ${dtype} storage, chunks of ${heads} head${heads > 1 ? "s" : ""}`;
      if (!grads) {
        return {
          label,
          kernels: scoresForwardKernels(call, views, matmul),
          tensors: { ...read, o: unwritten(q.length), lse: unwritten(B * H * T, "f32"), scores },
          expected: { o: laidOut(forward.out), lse: forward.logSumExp },
        };
      }
      return {
        label,
        kernels: scoresBackwardKernels(call, views, matmul),
        tensors: {
          ...{ ...read, o: stored(forward.out), dout: stored(dout), lse: f32(forward.logSumExp) },
          ...{ delta: unwritten(B * H * T, "f32"), dq: unwritten(q.length), dkv: unwritten(2 * k.length), scores, grad: scores },
        },
        expected: { dq: laidOut(grads.dq), dk: laidOut(grads.dk, KV), dv: laidOut(grads.dv, KV) },
        placed: { dk: { binding: "dkv", offset: 0 }, dv: { binding: "dkv", offset: k.length } },
      };
    });
  });
}
