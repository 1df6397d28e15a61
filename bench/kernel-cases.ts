// The benchmarked kernels: each case holds seeded inputs (on the host for the reference and
// uploaded), its FLOP and byte counts, and a check of its outputs against the float64 CPU
// reference of stdlib/kernels (every output row, or an evenly spaced sample of rows at full
// size). FLOPs of non-matmul kernels are nominal per-element counts (given in the label); bytes
// are the minimum traffic (every input read once, every output written once).
import type { GpuDevice } from "../runtime/gpu/device.ts";
import { createTensor, readFloats, uploadTensor, type GpuTensor } from "../runtime/gpu/tensor.ts";
import { Random } from "../runtime/random.ts";
import { relativeError } from "../runtime/numeric.ts";
import { activationForward, activationForwardRef, splitHalves, swigluForward, swigluForwardRef } from "../stdlib/kernels/activations.ts";
import { attentionForwardKernel, attentionForwardUniforms } from "../stdlib/kernels/attention-forward.ts";
import { denseView, fusedQkvViews, gatherView } from "../stdlib/kernels/attention-layout.ts";
import { maskFlags } from "../stdlib/kernels/attention-mask.ts";
import { attentionForwardReference } from "../stdlib/kernels/attention-reference.ts";
import { adamwRef, adamwStep, adamwUniforms, ADAMW_DEFAULTS, type AdamWHyper } from "../stdlib/kernels/adamw.ts";
import { crossEntropy, crossEntropyRef, IGNORE_INDEX } from "../stdlib/kernels/cross-entropy.ts";
import { bytesPerElement, roundToDType, type StorageDType } from "../stdlib/kernels/dtype.ts";
import { embeddingBackward, embeddingBackwardRef, embeddingForward, embeddingForwardRef, embeddingGradPlan } from "../stdlib/kernels/embedding.ts";
import { GRAD_NORM_CHUNK, gradNormPartial, gradNormPartials, gradNormRef } from "../stdlib/kernels/grad-clip.ts";
import type { KernelRun } from "../runtime/gpu/kernel-probe.ts";
import { matmulKernel, matmulKernelsOf, matmulRef, matmulUniforms } from "../stdlib/kernels/matmul.ts";
import { plainMatmulStrategy, strategyName, subgroupMatrixStrategyFor, type MatmulStrategy } from "../stdlib/kernels/matmul-strategy.ts";
import { DEFAULT_SUBGROUP_TILING, SUBGROUP_TILINGS, subgroupMatrixTolerance, tilingKey, type SubgroupTilingName } from "../stdlib/kernels/matmul-subgroup.ts";
import { engineGemv, gemvVariantName, tunedGemv } from "../runtime/gpu/gemv-tuning.ts";
import { nf4MatmulKernel } from "../stdlib/kernels/nf4-matmul.ts";
import { dequantizeNf4 } from "../stdlib/quant/nf4.ts";
import { nf4Bindings, nf4Buffers, uploadNf4Tables, uploadNf4Tensor } from "../runtime/execute/nf4-weights.ts";
import { quantizeNf4, type Nf4Tensor } from "../stdlib/quant/nf4.ts";
import { normBackwardInput, normBackwardRef, normForward, normForwardRef } from "../stdlib/kernels/norms.ts";
import { attentionCases } from "./attention-cases.ts";
import { pickRows, rowsNote } from "./checked-rows.ts";
import { decodeAttentionCases } from "./decode-attention-cases.ts";
import type { BenchShapes } from "./sizes.ts";

/** Relative error allowed for kernels with f32 outputs (inputs rounded to their storage dtype). */
export const F32_TOLERANCE = 1e-5;

/** A kernel's outputs against its float64 reference. */
export interface KernelCheck {
  /** Largest ‖out−ref‖/‖ref‖ over the kernel's outputs. */
  relativeError: number;
  tolerance: number;
  /** Which rows were compared, e.g. "all 128 rows" or "32 of 2048 rows (evenly spaced)". */
  rows: string;
}

/**
 * One kernel ready to run (or a sequence of kernels bound to its tensors by name, timed as one
 * run): its pipeline, tensors, counts and check.
 */
export type Case = CaseProblem & KernelRun;

interface CaseProblem {
  label: string;
  shape: string;
  /** A matmul: (M, N, K). */
  mnk?: [number, number, number];
  /** Compute-bound without being a matmul (attention). */
  compute?: boolean;
  tensors: Record<string, GpuTensor>;
  flops: number;
  bytes: number;
  /** Compares the outputs of the first run (on the fresh inputs) with the reference. */
  verify: () => Promise<KernelCheck>;
}

const f32 = Math.fround;

/** The rows `rows` of a (?, width) row-major array, packed. */
function gather(values: ArrayLike<number>, rows: readonly number[], width: number): Float64Array {
  const out = new Float64Array(rows.length * width);
  rows.forEach((r, i) => {
    for (let c = 0; c < width; c++) out[i * width + c] = values[r * width + c];
  });
  return out;
}

/** Relative errors of several outputs (pairs of GPU values and reference) reduced to the worst. */
function worst(pairs: [ArrayLike<number>, ArrayLike<number>][], rows: string): KernelCheck {
  const errors = pairs.map(([out, ref]) => relativeError(out, ref));
  // NaN compares false with everything: keep it visible instead of letting max() hide it
  const relative = errors.some(Number.isNaN) ? NaN : Math.max(...errors);
  return { relativeError: relative, tolerance: F32_TOLERANCE, rows };
}

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

class CaseBuilder {
  private readonly rng = new Random(1);
  // The matmul cases repeat a few shapes over many kernels: each operand is drawn (and each NF4
  // weight quantized) once per shape, and each float64 reference computed once per operands,
  // rounding and checked rows. At full size drawing, quantizing and the reference take seconds.
  private readonly operands = new Map<string, Float32Array>();
  private readonly nf4Weights = new Map<string, Nf4Tensor>();
  private readonly references = new Map<string, Float64Array>();

  constructor(
    private readonly gpu: GpuDevice,
    private readonly s: BenchShapes,
  ) {}

  /**
   * Seeded N(0, 0.25) values: kept on the host for the reference, uploaded in `dtype`. With
   * `shareAs` (a matmul operand's role, "a" or "b"), drawn on the first use of that role and
   * shape, then shared.
   */
  private input(dtype: StorageDType, shape: number[], shareAs?: string): { host: Float32Array; tensor: GpuTensor } {
    const key = shareAs && `${shareAs} ${shape.join("x")}`;
    let host = key ? this.operands.get(key) : undefined;
    if (!host) {
      host = this.rng.normalArray(shape.reduce((a, b) => a * b, 1), 0.5);
      if (key) this.operands.set(key, host);
    }
    return { host, tensor: uploadTensor(this.gpu, dtype, shape, host) };
  }

  /** `compute()`, once per `key`. */
  private reference(key: string, compute: () => Float64Array): Float64Array {
    let ref = this.references.get(key);
    if (!ref) this.references.set(key, (ref = compute()));
    return ref;
  }

  private rows(total: number): number[] {
    return pickRows(total, this.s.checkedRows);
  }

  matmul(m: number, n: number, k: number, bType: StorageDType, transB: boolean, strategy: MatmulStrategy, note = ""): Case {
    const shape = { batch: 1, m, n, k };
    const layout = { transA: false, transB };
    const a = this.input("f32", [m, k], "a"); // (M, K)
    const b = this.input(bType, transB ? [n, k] : [k, n], "b"); // (N, K) or (K, N)
    const c = createTensor(this.gpu, "f32", [m, n]); // (M, N)
    const products = productInputs(strategy);
    return {
      label: `matmul ${strategyLabel(strategy)} f32 x ${bType}${transB ? " (B^T)" : ""}${note}`,
      shape: `${m}x${n}x${k}`,
      mnk: [m, n, k],
      // decode shapes take the gemv kernel with the engine's workgroup (the tuned one, else the default)
      spec: matmulKernel({ a: "f32", b: bType, out: "f32", ...layout }, shape, strategy, engineGemv(this.gpu)),
      uniforms: matmulUniforms(shape, layout),
      tensors: { a: a.tensor, b: b.tensor, c },
      flops: 2 * m * n * k,
      bytes: 4 * m * k + bytesPerElement(bType) * k * n + 4 * m * n,
      verify: async () => {
        const rows = this.rows(m);
        const ref = this.reference(`${m}x${n}x${k} ${bType}${transB ? " (B^T)" : ""} ${products.dtype} products`, () => {
          const aRef = roundToDType(products.dtype, gather(a.host, rows, k));
          const bRef = roundToDType(products.dtype, roundToDType(bType, b.host));
          return matmulRef(aRef, bRef, layout, { ...shape, m: rows.length });
        });
        return { ...worst([[gather(await readFloats(this.gpu, c), rows, n), ref]], rowsNote(rows, m)), tolerance: products.tolerance };
      },
    };
  }

  /** x Wᵀ with W an NF4 weight stored (N, K), decoded inside the kernel (QLoRA's frozen base linears). */
  nf4Matmul(m: number, n: number, k: number, strategy: MatmulStrategy, note = ""): Case {
    const shape = { batch: 1, m, n, k, strideB: 0 };
    const layout = { transA: false, transB: true };
    const a = this.input("f32", [m, k], "a"); // (M, K)
    const key = `${n}x${k}`;
    let quantized = this.nf4Weights.get(key);
    if (!quantized) this.nf4Weights.set(key, (quantized = quantizeNf4(this.rng.normalArray(n * k, 0.05))));
    const weight = uploadNf4Tensor(this.gpu, quantized, "nf4 weight"); // (N, K)
    const c = createTensor(this.gpu, "f32", [m, n]); // (M, N)
    const products = productInputs(strategy);
    const nf4Bytes = nf4Buffers(weight).reduce((sum, t) => sum + t.buffer.size, 0);
    return {
      label: `matmul ${strategyLabel(strategy)} f32 x nf4 (B^T)${note}`,
      shape: `${m}x${n}x${k}`,
      mnk: [m, n, k],
      spec: nf4MatmulKernel({ a: "f32", b: "f32", out: "f32", ...layout }, shape, matmulKernelsOf(strategy, engineGemv(this.gpu))),
      uniforms: matmulUniforms(shape, layout),
      tensors: { a: a.tensor, c, ...nf4Bindings(weight, uploadNf4Tables(this.gpu)) },
      flops: 2 * m * n * k,
      bytes: 4 * m * k + nf4Bytes + 4 * m * n,
      verify: async () => {
        const rows = this.rows(m);
        const ref = this.reference(`${m}x${n}x${k} nf4 (B^T) ${products.dtype} products`, () => {
          // the dequantized weight (what the kernel decodes), rounded to the products' inputs
          const w = roundToDType(products.dtype, dequantizeNf4(quantized));
          return matmulRef(roundToDType(products.dtype, gather(a.host, rows, k)), w, layout, { ...shape, m: rows.length });
        });
        return { ...worst([[gather(await readFloats(this.gpu, c), rows, n), ref]], rowsNote(rows, m)), tolerance: products.tolerance };
      },
    };
  }

  silu(): Case {
    const { tokens, ffn } = this.s;
    const x = this.input("f32", [tokens, ffn]);
    const y = createTensor(this.gpu, "f32", [tokens, ffn]);
    return {
      label: "silu forward (4 flop/elem)",
      shape: `${tokens}x${ffn}`,
      spec: activationForward("silu", "f32"),
      uniforms: { n: tokens * ffn },
      tensors: { x: x.tensor, y },
      flops: 4 * tokens * ffn,
      bytes: 8 * tokens * ffn,
      verify: async () => {
        const rows = this.rows(tokens);
        const ref = activationForwardRef("silu", gather(x.host, rows, ffn));
        return worst([[gather(await readFloats(this.gpu, y), rows, ffn), ref]], rowsNote(rows, tokens));
      },
    };
  }

  swiglu(): Case {
    const { tokens, ffn } = this.s;
    const x = this.input("f32", [tokens, 2 * ffn]); // gate | up, as ChatGLM2 chunks them
    const y = createTensor(this.gpu, "f32", [tokens, ffn]);
    return {
      label: "swiglu fused forward (5 flop/elem)",
      shape: `${tokens}x2x${ffn}`,
      spec: swigluForward("f32", true),
      uniforms: { n: tokens * ffn, cols: ffn },
      tensors: { x: x.tensor, y },
      flops: 5 * tokens * ffn,
      bytes: 12 * tokens * ffn,
      verify: async () => {
        const rows = this.rows(tokens);
        const { a, b } = splitHalves(gather(x.host, rows, 2 * ffn), rows.length, ffn);
        return worst([[gather(await readFloats(this.gpu, y), rows, ffn), swigluForwardRef(a, b)]], rowsNote(rows, tokens));
      },
    };
  }

  rmsnorm(): Case {
    const { tokens, hidden } = this.s;
    const eps = 1e-6;
    const x = this.input("f32", [tokens, hidden]);
    const w = this.input("f32", [hidden]);
    const y = createTensor(this.gpu, "f32", [tokens, hidden]);
    const rstd = createTensor(this.gpu, "f32", [tokens]);
    return {
      label: "rmsnorm forward (4 flop/elem)",
      shape: `${tokens}x${hidden}`,
      spec: normForward("rms", "f32", "f32"),
      uniforms: { rows: tokens, cols: hidden, eps },
      tensors: { x: x.tensor, w: w.tensor, y, rstd },
      flops: 4 * tokens * hidden,
      bytes: 8 * tokens * hidden,
      verify: async () => {
        const rows = this.rows(tokens);
        const ref = normForwardRef("rms", gather(x.host, rows, hidden), Float64Array.from(w.host), undefined, rows.length, hidden, eps);
        const pairs: [Float64Array, Float64Array][] = [
          [gather(await readFloats(this.gpu, y), rows, hidden), ref.y],
          [gather(await readFloats(this.gpu, rstd), rows, 1), ref.rstd],
        ];
        return worst(pairs, rowsNote(rows, tokens));
      },
    };
  }

  layernormBackward(): Case {
    const { tokens, hidden } = this.s;
    const eps = 1e-5;
    const x = this.input("f32", [tokens, hidden]);
    const w = this.input("f32", [hidden]);
    const dy = this.input("f32", [tokens, hidden]);
    const w64 = Float64Array.from(w.host);
    // the statistics the forward would have saved
    const saved = normForwardRef("layer", Float64Array.from(x.host), w64, undefined, tokens, hidden, eps);
    const dx = createTensor(this.gpu, "f32", [tokens, hidden]);
    return {
      label: "layernorm backward dx (10 flop/elem)",
      shape: `${tokens}x${hidden}`,
      spec: normBackwardInput("layer", "f32", "f32"),
      uniforms: { rows: tokens, cols: hidden, eps },
      tensors: {
        x: x.tensor,
        w: w.tensor,
        dy: dy.tensor,
        mean: uploadTensor(this.gpu, "f32", [tokens], saved.mean),
        rstd: uploadTensor(this.gpu, "f32", [tokens], saved.rstd),
        dx,
      },
      flops: 10 * tokens * hidden,
      bytes: 12 * tokens * hidden,
      verify: async () => {
        const rows = this.rows(tokens);
        const ref = normBackwardRef("layer", gather(x.host, rows, hidden), w64, gather(dy.host, rows, hidden), rows.length, hidden, eps);
        return worst([[gather(await readFloats(this.gpu, dx), rows, hidden), ref.dx]], rowsNote(rows, tokens));
      },
    };
  }

  crossEntropy(): Case {
    const { tokens, vocab } = this.s;
    const logits = this.input("f32", [tokens, vocab]);
    const targets = Int32Array.from({ length: tokens }, () => this.rng.int(vocab));
    const loss = createTensor(this.gpu, "f32", [tokens]);
    const dLogits = createTensor(this.gpu, "f32", [tokens, vocab]);
    const scale = 1 / tokens;
    return {
      label: "cross-entropy + grad (6 flop/elem)",
      shape: `${tokens}x${vocab}`,
      spec: crossEntropy({ logits: "f32", grad: true }),
      uniforms: { rows: tokens, vocab, ignore: IGNORE_INDEX, scale },
      tensors: { logits: logits.tensor, targets: uploadTensor(this.gpu, "i32", [tokens], targets), loss, d_logits: dLogits },
      flops: 6 * tokens * vocab,
      bytes: 8 * tokens * vocab,
      verify: async () => {
        const rows = this.rows(tokens);
        const ref = crossEntropyRef(gather(logits.host, rows, vocab), rows.map((r) => targets[r]), rows.length, vocab, scale);
        const pairs: [Float64Array, Float64Array][] = [
          [gather(await readFloats(this.gpu, loss), rows, 1), ref.loss],
          [gather(await readFloats(this.gpu, dLogits), rows, vocab), ref.dLogits],
        ];
        return worst(pairs, rowsNote(rows, tokens));
      },
    };
  }

  embeddingForward(ids: Int32Array): Case {
    const { tokens, hidden, vocab } = this.s;
    const table = this.input("f32", [vocab, hidden]);
    const out = createTensor(this.gpu, "f32", [tokens, hidden]);
    return {
      label: "embedding forward (0 flop)",
      shape: `${tokens}x${hidden} of ${vocab}`,
      spec: embeddingForward("f32"),
      uniforms: { n: tokens * hidden, dim: hidden, vocab },
      tensors: { ids: uploadTensor(this.gpu, "i32", [tokens], ids), table: table.tensor, out },
      flops: 0,
      bytes: 8 * tokens * hidden,
      verify: async () => {
        const rows = this.rows(tokens);
        // the reference over a table of just the looked-up rows: token i reads row i
        const used = gather(table.host, rows.map((r) => ids[r]), hidden);
        const ref = embeddingForwardRef(rows.map((_, i) => i), used, rows.length, hidden);
        return worst([[gather(await readFloats(this.gpu, out), rows, hidden), ref]], rowsNote(rows, tokens));
      },
    };
  }

  embeddingBackward(ids: Int32Array): Case {
    const { tokens, hidden, vocab } = this.s;
    const plan = embeddingGradPlan(ids);
    const dOut = this.input("f32", [tokens, hidden]);
    const dTable = createTensor(this.gpu, "f32", [vocab, hidden]);
    const groups = plan.unique.length;
    return {
      label: "embedding backward (1 flop/elem)",
      shape: `${tokens}x${hidden} of ${vocab}`,
      spec: embeddingBackward(false),
      uniforms: { groups, dim: hidden },
      tensors: {
        unique: uploadTensor(this.gpu, "i32", [groups], plan.unique),
        offsets: uploadTensor(this.gpu, "u32", [plan.offsets.length], plan.offsets),
        positions: uploadTensor(this.gpu, "u32", [plan.positions.length], plan.positions),
        d_out: dOut.tensor,
        d_table: dTable,
      },
      flops: tokens * hidden,
      bytes: 4 * tokens * hidden + 4 * groups * hidden,
      verify: async () => {
        // the table rows of the checked token ids; the reference over just those ids
        const checked = this.rows(groups).map((j) => plan.unique[j]);
        const slot = new Map(checked.map((id, i) => [id, i]));
        const tokensOf = Array.from(ids.keys()).filter((t) => slot.has(ids[t]));
        const ref = embeddingBackwardRef(tokensOf.map((t) => slot.get(ids[t])!), gather(dOut.host, tokensOf, hidden), checked.length, hidden);
        return worst([[gather(await readFloats(this.gpu, dTable), checked, hidden), ref]], rowsNote(checked, groups, "token rows"));
      },
    };
  }

  adamw(): Case {
    const { hidden, ffn } = this.s;
    const n = hidden * ffn; // one (hidden, ffn) weight
    const p = this.input("f32", [hidden, ffn]);
    const g = this.input("f32", [hidden, ffn]);
    const m = createTensor(this.gpu, "f32", [hidden, ffn]);
    const v = createTensor(this.gpu, "f32", [hidden, ffn]);
    return {
      label: "adamw step (14 flop/elem)",
      shape: `${hidden}x${ffn}`,
      spec: adamwStep(false),
      uniforms: adamwUniforms(n, 1, ADAMW_DEFAULTS),
      tensors: { p: p.tensor, g: g.tensor, m, v },
      flops: 14 * n,
      bytes: 28 * n,
      verify: async () => {
        const rows = this.rows(hidden);
        const [pr, mr, vr] = [gather(p.host, rows, ffn), new Float64Array(rows.length * ffn), new Float64Array(rows.length * ffn)];
        // the kernel sees its hyper-parameters as f32 uniforms: 1 - f32(0.999) is 1.3e-5 off 0.001
        const h = ADAMW_DEFAULTS;
        const f32Hyper: AdamWHyper = { lr: f32(h.lr), beta1: f32(h.beta1), beta2: f32(h.beta2), eps: f32(h.eps), weightDecay: f32(h.weightDecay) };
        adamwRef(pr, gather(g.host, rows, ffn), mr, vr, 1, f32Hyper);
        const pairs: [Float64Array, Float64Array][] = [];
        for (const [tensor, ref] of [[p.tensor, pr], [m, mr], [v, vr]] as const) pairs.push([gather(await readFloats(this.gpu, tensor), rows, ffn), ref]);
        return worst(pairs, rowsNote(rows, hidden));
      },
    };
  }

  gradNorm(): Case {
    const { hidden, ffn } = this.s;
    const n = hidden * ffn;
    const g = this.input("f32", [n]);
    const chunks = gradNormPartials(n);
    const partials = createTensor(this.gpu, "f32", [chunks]);
    return {
      label: "grad norm partials (2 flop/elem)",
      shape: `${n}`,
      spec: gradNormPartial("f32"),
      uniforms: { n, offset: 0 },
      tensors: { g: g.tensor, partials },
      flops: 2 * n,
      bytes: 4 * n,
      verify: async () => {
        const rows = this.rows(chunks);
        const ref = rows.map((w) => gradNormRef([g.host.subarray(w * GRAD_NORM_CHUNK, (w + 1) * GRAD_NORM_CHUNK)], 1)[0] ** 2);
        return worst([[gather(await readFloats(this.gpu, partials), rows, 1), ref]], rowsNote(rows, chunks, `chunks of ${GRAD_NORM_CHUNK}`));
      },
    };
  }

  /** Causal self-attention over one sequence of `tokens`, Q, K, V read from a fused QKV projection. */
  attention(): Case {
    const { tokens: T, hidden, headDim: D } = this.s;
    const H = hidden / D;
    const shape = { batch: 1, queryHeads: H, kvHeads: H, queryLength: T, keyLength: T, headDim: D };
    const scale = 1 / Math.sqrt(D);
    const mask = { causal: true, queryOffset: 0 };
    const qkv = this.input("f32", [T, 3 * H, D]); // (T, Hq + 2 Hkv, D), Baichuan W_pack order
    const views = { ...fusedQkvViews(T, H, H, D), o: denseView("bthd", T, H, D) };
    const o = createTensor(this.gpu, "f32", [T, H, D]);
    const lse = createTensor(this.gpu, "f32", [H, T]);
    return {
      label: "attention forward, causal (4 flop/score)",
      shape: `T${T} H${H} D${D}`,
      compute: true,
      spec: attentionForwardKernel({ dtype: "f32", headDim: D, ...maskFlags(mask) }),
      uniforms: attentionForwardUniforms(shape, views, scale, mask),
      tensors: { q: qkv.tensor, k: qkv.tensor, v: qkv.tensor, o, lse },
      flops: 4 * H * D * ((T * (T + 1)) / 2), // Q K^T and P V over the causal half
      bytes: 4 * (4 * T * H * D + H * T),
      verify: async () => {
        // one reference problem per checked query row i: that row of every head at position i
        const [q, k, v] = (["q", "k", "v"] as const).map((name) => gatherView(qkv.host, views[name], 1, T, H, D)); // (1, H, T, D)
        const out = gatherView(await readFloats(this.gpu, o), views.o, 1, T, H, D);
        const lseOut = await readFloats(this.gpu, lse); // (H, T)
        const rows = this.rows(T);
        const pairs: [number[], number[]][] = [[[], []], [[], []]];
        for (const i of rows) {
          const heads = Array.from({ length: H }, (_, h) => h);
          const qi = Float64Array.from(heads.flatMap((h) => Array.from(q.subarray((h * T + i) * D, (h * T + i + 1) * D))));
          const ref = attentionForwardReference({ shape: { ...shape, queryLength: 1 }, q: qi, k, v, scale, mask: { causal: true, queryOffset: i } });
          for (const h of heads) {
            pairs[0][0].push(...out.subarray((h * T + i) * D, (h * T + i + 1) * D));
            pairs[1][0].push(lseOut[h * T + i]);
          }
          pairs[0][1].push(...ref.out);
          pairs[1][1].push(...ref.logSumExp);
        }
        return worst(pairs, rowsNote(rows, T, "query rows"));
      },
    };
  }

  tokenIds(): Int32Array {
    return Int32Array.from({ length: this.s.tokens }, () => this.rng.int(this.s.vocab));
  }
}

/**
 * A decode product (one row of activations times W stored (N, K)) as a memory-bound row: its
 * bytes are W's plus A's and C's. Built on the tiled strategy, for which matmulKernel takes the
 * gemv kernel (matmul-gemv.ts) at these shapes, with the engine's workgroup, which the row names.
 */
function decodeCase(gpu: GpuDevice, c: Case, weight: string): Case {
  const workgroup = `${gemvVariantName(engineGemv(gpu))} (${tunedGemv(gpu) ? "tuned" : "default"})`;
  return { ...c, label: `matmul gemv f32 x ${weight} (B^T), decode, ${workgroup}`, mnk: undefined };
}

/** The (M, N, K) of the benchmarked matmuls: square, square minus a little (unaligned), FFN up-projection. */
export function matmulShapes(s: BenchShapes): [number, number, number][] {
  const sq = s.square;
  return [[sq, sq, sq], [sq - 1, sq - 3, sq - 5], [s.tokens, s.ffn, s.hidden]];
}

// Cases are built one at a time (generator) so that a full-size run holds one case's buffers.
export function* kernelCases(gpu: GpuDevice, s: BenchShapes): Generator<Case> {
  const b = new CaseBuilder(gpu, s);
  const preferred = plainMatmulStrategy(gpu.adapter.architecture);
  const [[sq], [m, n, k], ffnUp] = matmulShapes(s);
  yield b.matmul(sq, sq, sq, "f32", false, "tiled");
  yield b.matmul(sq, sq, sq, "f32", false, "registers");
  yield b.matmul(sq, sq, sq, "bf16", true, preferred);
  if (gpu.hasF16) yield b.matmul(sq, sq, sq, "f16", true, preferred);
  yield b.matmul(m, n, k, "f32", false, "tiled", ", scalar loads");
  // a frozen base weight of the FFN up-projection, stored (N, K) in bf16 as LoRA keeps it
  yield b.matmul(...ffnUp, "bf16", true, preferred, ", FFN up");
  // and in f32, as the engine stores it (the forward of a linear in training)
  yield b.matmul(...ffnUp, "f32", true, preferred, ", FFN up");
  const sub = subgroupMatrixStrategyFor(gpu.adapter);
  if (sub) {
    yield b.matmul(sq, sq, sq, "f32", false, sub);
    yield b.matmul(sq, sq, sq, "f16", true, sub);
    // one subgroup per workgroup: no assumption on which invocations form a subgroup
    yield b.matmul(sq, sq, sq, "f16", true, { ...sub, tiling: "one-subgroup" });
    yield b.matmul(m, n, k, "f32", false, sub, ", unaligned");
    yield b.matmul(...ffnUp, "bf16", true, sub, ", FFN up");
    // QLoRA's frozen FFN up-projection, and the same on the plain strategy for comparison
    yield b.nf4Matmul(...ffnUp, sub, ", FFN up");
    yield b.nf4Matmul(...ffnUp, preferred, ", FFN up");
    // the tiling presets side by side, weights stored (N, K): the square shape in f16 (PyTorch's
    // f16 matmul is its reference), the FFN up-projection in f32 (as the engine stores weights),
    // and ragged M and N over an aligned K (the vec4 fills' edges)
    for (const tiling of Object.keys(SUBGROUP_TILINGS) as SubgroupTilingName[]) {
      if (tiling === "one-subgroup") continue;
      const preset = { ...sub, tiling };
      if (tiling !== DEFAULT_SUBGROUP_TILING) yield b.matmul(sq, sq, sq, "f16", true, preset);
      yield b.matmul(...ffnUp, "f32", true, preset, ", FFN up");
      yield b.matmul(m, n, sq, "f16", true, preset, ", ragged M and N");
    }
  }
  // a 7B layer's decode (at full size): W of the FFN up-projection and of a square projection,
  // f32, bf16 (as generation stores a bf16 model) and NF4, on the engine's gemv workgroup (every
  // workgroup's time on a 4096 x 4096 f32 W is the tuning's, in the report's Adapter section)
  yield decodeCase(gpu, b.matmul(1, s.ffn, s.hidden, "f32", true, "tiled"), "f32");
  yield decodeCase(gpu, b.matmul(1, s.hidden, s.hidden, "f32", true, "tiled"), "f32");
  yield decodeCase(gpu, b.matmul(1, s.ffn, s.hidden, "bf16", true, "tiled"), "bf16");
  yield decodeCase(gpu, b.matmul(1, s.hidden, s.hidden, "bf16", true, "tiled"), "bf16");
  yield decodeCase(gpu, b.nf4Matmul(1, s.ffn, s.hidden, "tiled"), "nf4");
  yield b.silu();
  yield b.swiglu();
  yield b.rmsnorm();
  yield b.layernormBackward();
  yield b.crossEntropy();
  const ids = b.tokenIds();
  yield b.embeddingForward(ids);
  yield b.embeddingBackward(ids);
  yield b.attention();
  yield* attentionCases(gpu, s);
  yield* decodeAttentionCases(gpu, s);
  yield b.adamw();
  yield b.gradNorm();
}
