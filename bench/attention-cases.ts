// Benchmark cases of attention through a materialized score matrix on the engine's matmul
// kernels (stdlib/kernels/attention-scores-steps.ts, every adapter; a sequence of launches timed
// as one run) and of the subgroup-matrix attention kernels (attention-forward-subgroup.ts,
// attention-backward-subgroup.ts, on adapters that have subgroup matrices): causal
// self-attention over one sequence, Q, K, V read from a fused f32 QKV projection as in
// op-cases.ts's attention case. A forward runs at the bench's token count (the subgroup one
// also at half of it), checked against attentionForwardReference on the inputs rounded to the
// precision its products take (f16 on subgroup matrices) for the first and last row of evenly
// spaced query blocks: the rows where a block's first and last subgroup start and end. A
// backward runs at the bench's token count on f16-valued inputs and dO, after the scalar
// forward and delta kernels, checked against attentionBackwardReference for the rows of the first
// and last head (every row at small sizes, evenly spaced ones at full size).
import { engineAttentionLayout } from "../runtime/gpu/attention-tuning.ts";
import type { GpuDevice } from "../runtime/gpu/device.ts";
import { CommandBatch } from "../runtime/gpu/batch.ts";
import { createTensor, readFloats, uploadTensor, type GpuTensor } from "../runtime/gpu/tensor.ts";
import { Random } from "../runtime/random.ts";
import { relativeError } from "../runtime/numeric.ts";
import { attentionForwardSubgroupKernel, subgroupAttentionTolerance } from "../stdlib/kernels/attention-forward-subgroup.ts";
import { blockRows, softmaxLanes, type SubgroupAttentionLayout } from "../stdlib/kernels/attention-subgroup-layout.ts";
import {
  attentionDkdvSubgroupKernel,
  attentionDqSubgroupKernel,
  subgroupAttentionBackwardTolerance,
} from "../stdlib/kernels/attention-backward-subgroup.ts";
import { attentionBackwardKernels, attentionBackwardUniforms, type BackwardViews } from "../stdlib/kernels/attention-backward.ts";
import { attentionForwardKernel, attentionForwardUniforms } from "../stdlib/kernels/attention-forward.ts";
import { denseView, fusedQkvViews, gatherView, keyValueGradientViews } from "../stdlib/kernels/attention-layout.ts";
import { attentionBackwardReference, attentionForwardReference, type AttentionShape } from "../stdlib/kernels/attention-reference.ts";
import { scoresBackwardKernels, scoresChunkHeads, scoresForwardKernels, type ScoresCall } from "../stdlib/kernels/attention-scores-steps.ts";
import { matmulKernelsOf } from "../stdlib/kernels/matmul.ts";
import { strategyName, type MatmulStrategy } from "../stdlib/kernels/matmul-strategy.ts";
import { invariant } from "../compiler/diagnostics.ts";
import { engineGemv } from "../runtime/gpu/gemv-tuning.ts";
import { causalVariant, scoresF16Tolerance } from "../runtime/gpu/kernel-probe-cases.ts";
import type { KernelRun } from "../runtime/gpu/kernel-probe.ts";
import { checkedMatmulStrategy } from "../runtime/gpu/kernel-self-check.ts";
import { roundToDType, type StorageDType } from "../stdlib/kernels/dtype.ts";
import { F32_TOLERANCE, type Case } from "./case-inputs.ts";
import { productInputs } from "./matmul-cases.ts";
import { pickRows, rowsNote } from "./checked-rows.ts";
import type { BenchShapes } from "./sizes.ts";

/**
 * The query rows checked: the first and last row of `limit / 2` evenly spaced blocks of
 * `blockQ` rows (the first and last block included), or every row when that is fewer.
 */
export function blockEdgeRows(length: number, blockQ: number, limit: number): number[] {
  if (length <= limit) return Array.from({ length }, (_, i) => i);
  const blocks = Math.ceil(length / blockQ);
  const picked = Math.max(2, Math.min(blocks, Math.floor(limit / 2)));
  const rows = new Set<number>();
  for (let x = 0; x < picked; x++) {
    const block = Math.round((x * (blocks - 1)) / (picked - 1));
    rows.add(block * blockQ);
    rows.add(Math.min(length, (block + 1) * blockQ) - 1);
  }
  return [...rows].sort((a, b) => a - b);
}

// e.g. "f16>f32 16x16x16, 2 subgroups x 16 rows, 32 keys per tile"; the dK/dV kernel's rows are
// keys and its tiles queries
function layoutLabel(layout: SubgroupAttentionLayout, tiled = "keys"): string {
  const c = layout.config;
  return `f16>f32 ${c.M}x${c.N}x${c.K}, ${layout.subgroups} subgroup${layout.subgroups > 1 ? "s" : ""} x ${c.M} rows, ${layout.blockK} ${tiled} per tile`;
}

/** The bench's mask: causal self-attention. */
const CAUSAL = { causal: true, queryOffset: 0 };

/** What a forward or backward case runs: the kernel (or sequence) as bound, the precision its products take, its tolerance. */
interface AttentionRun {
  label: string;
  run: (shape: AttentionShape, views: BackwardViews) => KernelRun;
  /** The precision the products multiply in: the reference reads the inputs rounded to it. */
  inputs: StorageDType;
  tolerance: number;
  /** Workspace tensors the run needs beyond the problem's: f32 elements by name. */
  workspace?: (shape: AttentionShape) => Record<string, number>;
  /** Query rows per block: the forward's check compares the first and last row of evenly spaced blocks (without blocks, evenly spaced rows). */
  blockRows?: number;
}

/** The scalar fused forward (f32 products), as every adapter runs it without subgroup matrices. */
const scalarForward: AttentionRun = {
  label: "attention forward",
  run: (shape, views) => ({ spec: attentionForwardKernel(causalVariant(shape.headDim, "f32")), uniforms: attentionForwardUniforms(shape, views, 1 / Math.sqrt(shape.headDim), CAUSAL) }),
  inputs: "f32",
  tolerance: F32_TOLERANCE,
};

/** The subgroup-matrix forward with `layout` and `lanes` invocations per row in the softmax. */
function subgroupForward(layout: SubgroupAttentionLayout, lanes = softmaxLanes(layout)): AttentionRun {
  return {
    label: `attention forward subgroup-matrix ${layoutLabel(layout)}, ${lanes} lane${lanes > 1 ? "s" : ""} per row in the softmax`,
    run: (shape, views) => ({ spec: attentionForwardSubgroupKernel(causalVariant(shape.headDim, "f32"), layout, lanes), uniforms: attentionForwardUniforms(shape, views, 1 / Math.sqrt(shape.headDim), CAUSAL) }),
    inputs: "f16",
    tolerance: subgroupAttentionTolerance(),
    blockRows: blockRows(layout),
  };
}

/** Causal self-attention over `T` tokens by `run`, from a fused f32 QKV buffer. */
function attentionCase(gpu: GpuDevice, s: BenchShapes, T: number, attention: AttentionRun, seed: number): Case {
  const D = s.headDim;
  const H = s.hidden / D;
  const shape = { batch: 1, queryHeads: H, kvHeads: H, queryLength: T, keyLength: T, headDim: D };
  const scale = 1 / Math.sqrt(D);
  const host = new Random(seed).normalArray(T * 3 * H * D, 0.5); // (T, Hq + 2 Hkv, D), Baichuan W_pack order
  const qkv = uploadTensor(gpu, "f32", [T, 3 * H, D], host);
  const views = problemViews(T, H, D);
  const o = createTensor(gpu, "f32", [T, H, D]);
  const lse = createTensor(gpu, "f32", [H, T]);
  return {
    label: `${attention.label}, causal (4 flop/score)`,
    shape: `T${T} H${H} D${D}`,
    compute: true,
    ...attention.run(shape, views),
    tensors: { q: qkv, k: qkv, v: qkv, o, lse, ...workspace(gpu, attention, shape) },
    flops: 4 * H * D * ((T * (T + 1)) / 2), // Q K^T and P V over the causal half
    bytes: 4 * (4 * T * H * D + H * T),
    verify: async () => {
      // the products' precision: the reference reads the inputs rounded to it
      const rounded = roundToDType(attention.inputs, host);
      const [q, k, v] = (["q", "k", "v"] as const).map((name) => gatherView(rounded, views[name], 1, T, H, D)); // (1, H, T, D)
      const out = gatherView(await readFloats(gpu, o), views.o, 1, T, H, D);
      const lseOut = await readFloats(gpu, lse); // (H, T)
      const { blockRows: block } = attention;
      const rows = block ? blockEdgeRows(T, block, s.checkedRows) : pickRows(T, s.checkedRows);
      const [outs, outRefs, lses, lseRefs]: number[][] = [[], [], [], []];
      for (const i of rows) {
        // one reference problem per checked row i: that row of every head, at position i
        const qi = new Float64Array(H * D);
        for (let h = 0; h < H; h++) qi.set(q.subarray((h * T + i) * D, (h * T + i + 1) * D), h * D);
        const ref = attentionForwardReference({ shape: { ...shape, queryLength: 1 }, q: qi, k, v, scale, mask: { ...CAUSAL, queryOffset: i } });
        for (let h = 0; h < H; h++) {
          outs.push(...out.subarray((h * T + i) * D, (h * T + i + 1) * D));
          lses.push(lseOut[h * T + i]);
        }
        outRefs.push(...ref.out);
        lseRefs.push(...ref.logSumExp);
      }
      const note = block && rows.length < T ? `${rows.length} of ${T} query rows (first and last of evenly spaced blocks)` : rowsNote(rows, T, "query rows");
      return { relativeError: Math.max(relativeError(outs, outRefs), relativeError(lses, lseRefs)), tolerance: attention.tolerance, rows: note };
    },
  };
}

/** What a backward case runs, and which gradients it checks. */
interface BackwardRun extends AttentionRun {
  outputs: readonly ("dq" | "dk" | "dv")[];
  /** Score-sized products: S, dP, dQ (3), S, dP, dV, dK (4), or all five. */
  products: number;
}

/** The subgroup-matrix dQ or dK/dV kernel on `layout`. */
function subgroupBackward(kernel: "dq" | "dkdv", layout: SubgroupAttentionLayout): BackwardRun {
  return {
    label: `attention backward ${kernel === "dq" ? "dQ" : "dK/dV"} subgroup-matrix ${layoutLabel(layout, kernel === "dq" ? "keys" : "queries")}`,
    run: (shape, views) => {
      const variant = causalVariant(shape.headDim, "f32");
      return { spec: kernel === "dq" ? attentionDqSubgroupKernel(variant, layout) : attentionDkdvSubgroupKernel(variant, layout), uniforms: attentionBackwardUniforms(shape, views, 1 / Math.sqrt(shape.headDim), CAUSAL) };
    },
    inputs: "f16",
    tolerance: subgroupAttentionBackwardTolerance(),
    blockRows: blockRows(layout),
    outputs: kernel === "dq" ? ["dq"] : ["dk", "dv"],
    products: kernel === "dq" ? 3 : 4,
  };
}

/**
 * The backward of `run` for causal self-attention over `T` tokens. Q, K, V (fused) and dO hold
 * f16 values in f32 buffers, so the scalar forward and delta kernels, run here before the case,
 * give O, lse and delta as the reference sees them.
 */
function backwardCase(gpu: GpuDevice, s: BenchShapes, T: number, attention: BackwardRun, seed: number): Case {
  const D = s.headDim;
  const H = s.hidden / D;
  const shape = { batch: 1, queryHeads: H, kvHeads: H, queryLength: T, keyLength: T, headDim: D };
  const scale = 1 / Math.sqrt(D);
  const rng = new Random(seed);
  const host = roundToDType("f16", rng.normalArray(T * 3 * H * D, 0.5)); // (T, Hq + 2 Hkv, D)
  const dOut = roundToDType("f16", rng.normalArray(T * H * D, 0.5)); // (T, H, D)
  const views = problemViews(T, H, D);
  const qkv = uploadTensor(gpu, "f32", [T, 3 * H, D], host);
  const tensors: Record<string, GpuTensor> = {
    q: qkv,
    k: qkv,
    v: qkv,
    dout: uploadTensor(gpu, "f32", [T, H, D], dOut),
    o: createTensor(gpu, "f32", [T, H, D]),
    lse: createTensor(gpu, "f32", [H, T]),
    delta: createTensor(gpu, "f32", [H, T]),
    dq: createTensor(gpu, "f32", [T, H, D]),
    dkv: createTensor(gpu, "f32", [2, T, H, D]), // dK and dV: halves of one buffer
    ...workspace(gpu, attention, shape),
  };
  const variant = causalVariant(D, "f32");
  const uniforms = attentionBackwardUniforms(shape, views, scale, CAUSAL);
  const before = new CommandBatch(gpu); // submitted now, so it runs before the case's dispatches
  before.dispatch(attentionForwardKernel(variant), uniforms, tensors);
  before.dispatch(attentionBackwardKernels(variant).delta, uniforms, tensors);
  before.flush();
  return {
    label: `${attention.label}, causal (${2 * attention.products} flop/score)`,
    shape: `T${T} H${H} D${D}`,
    compute: true,
    ...attention.run(shape, views),
    tensors,
    flops: 2 * attention.products * H * D * ((T * (T + 1)) / 2),
    bytes: 4 * ((4 + attention.outputs.length) * T * H * D + 2 * H * T), // Q, K, V, dO and the gradients; lse, delta
    verify: async () => {
      const [dq, dkv] = await Promise.all([readFloats(gpu, tensors.dq), readFloats(gpu, tensors.dkv)]);
      const [q, k, v] = (["q", "k", "v"] as const).map((name) => gatherView(host, views[name], 1, T, H, D)); // (1, H, T, D)
      const g = gatherView(dOut, views.dout, 1, T, H, D);
      const heads = [0, H - 1];
      const rows = pickRows(T, s.checkedRows);
      const [outs, refs]: number[][] = [[], []];
      for (const h of heads) {
        const one = (x: Float64Array) => x.subarray(h * T * D, (h + 1) * T * D);
        const ref = attentionBackwardReference({ shape: { ...shape, queryHeads: 1, kvHeads: 1 }, q: one(q), k: one(k), v: one(v), scale, mask: CAUSAL }, one(g));
        for (const name of attention.outputs) {
          const out = one(gatherView(name === "dq" ? dq : dkv, views[name], 1, T, H, D));
          // a loop, not push(...xs): a head's T·D values overflow the call stack as arguments
          for (const r of rows) for (let d = 0; d < D; d++) (outs.push(out[r * D + d]), refs.push(ref[name][r * D + d]));
        }
      }
      const note = rows.length === T ? `all ${T} rows` : `${rows.length} of ${T} rows`;
      return { relativeError: relativeError(outs, refs), tolerance: attention.tolerance, rows: `${note} of heads ${heads.join(" and ")}${rows.length === T ? "" : " (evenly spaced)"}` };
    },
  };
}

/** Q, K and V in a fused (T, 3H, D) projection as Baichuan's W_pack, O and the gradients dense (T, H, D), dK and dV in one buffer. */
function problemViews(T: number, H: number, D: number): BackwardViews {
  const dense = denseView("bthd", T, H, D);
  return { ...fusedQkvViews(T, H, H, D), o: dense, dout: dense, dq: dense, ...keyValueGradientViews(1, T, H, D) };
}

function workspace(gpu: GpuDevice, attention: AttentionRun, shape: AttentionShape): Record<string, GpuTensor> {
  return Object.fromEntries(Object.entries(attention.workspace?.(shape) ?? {}).map(([name, n]) => [name, createTensor(gpu, "f32", [n], name)]));
}

/**
 * Attention through a materialized score matrix on the engine's matmul kernels (`strategy`,
 * the device's decode workgroup), forward or backward (every gradient checked), in the chunks
 * the engine takes.
 */
function scoresRun(gpu: GpuDevice, strategy: MatmulStrategy, direction: "forward" | "backward"): BackwardRun {
  const matmul = matmulKernelsOf(strategy, engineGemv(gpu));
  // the chunking of a shape, the same for its kernels and its workspace (a few step lists, cheap to work out again)
  const call = (shape: AttentionShape): ScoresCall => {
    const heads = scoresChunkHeads(direction, shape, "f32", problemViews(shape.queryLength, shape.queryHeads, shape.headDim));
    invariant(heads, "the bench's attention can be bound as windows");
    return { shape, variant: causalVariant(shape.headDim, "f32"), scale: 1 / Math.sqrt(shape.headDim), heads };
  };
  const products = productInputs(strategy);
  return {
    label: `attention ${direction} score matrix on the ${strategyName(strategy)} matmul`,
    run: (shape, views) => ({ kernels: direction === "forward" ? scoresForwardKernels(call(shape), views, matmul) : scoresBackwardKernels(call(shape), views, matmul) }),
    inputs: products.dtype,
    // f32 products: as every f32 kernel's (the backward's inputs hold f16 values, exact in f32)
    tolerance: products.dtype === "f32" ? F32_TOLERANCE : scoresF16Tolerance(direction),
    workspace: (shape): Record<string, number> => {
      const scores = call(shape).heads * shape.queryLength * shape.keyLength;
      return direction === "forward" ? { scores } : { scores, grad: scores };
    },
    outputs: ["dq", "dk", "dv"],
    products: 5,
  };
}

/**
 * The attention cases: the scalar fused forward and the score matrix on the engine's matmul
 * (forward and backward) on every adapter; then, where the adapter has subgroup matrices, the forward with the
 * layout the engine picks at the bench's token count and at half of it; where its softmax takes
 * several lanes per row, the same with one (each invocation a whole row, half of them idle on
 * NVIDIA), to show what the split gains; where that layout has four subgroups, two (what the
 * larger query block gains); where it has several, the one-subgroup layout (which does not rely
 * on subgroups being consecutive local indices) at the full token count; then the backward's dQ
 * and dK/dV kernels.
 */
export function* attentionCases(gpu: GpuDevice, s: BenchShapes): Generator<Case> {
  yield attentionCase(gpu, s, s.tokens, scalarForward, 10);
  // the score matrix on the engine's matmul, forward and backward, on every adapter
  const strategy = checkedMatmulStrategy(gpu);
  if (strategy.ok) {
    yield attentionCase(gpu, s, s.tokens, scoresRun(gpu, strategy.value, "forward"), 11);
    yield backwardCase(gpu, s, s.tokens, scoresRun(gpu, strategy.value, "backward"), 13);
  }
  // the engine's layouts: the device's tuned ones at this head dim, else the largest that fit
  const layout = engineAttentionLayout(gpu, s.headDim);
  if (!layout) return;
  yield attentionCase(gpu, s, s.tokens, subgroupForward(layout), 11);
  yield attentionCase(gpu, s, s.tokens / 2, subgroupForward(layout), 12);
  if (softmaxLanes(layout) > 1) yield attentionCase(gpu, s, s.tokens, subgroupForward(layout, 1), 11);
  if (layout.subgroups > 2) yield attentionCase(gpu, s, s.tokens, subgroupForward({ ...layout, subgroups: layout.subgroups / 2 }), 11);
  if (layout.subgroups > 1) yield attentionCase(gpu, s, s.tokens, subgroupForward({ ...layout, subgroups: 1 }), 11);
  const dq = engineAttentionLayout(gpu, s.headDim, "dq");
  if (dq) yield backwardCase(gpu, s, s.tokens, subgroupBackward("dq", dq), 13);
  const dkdv = engineAttentionLayout(gpu, s.headDim, "dkdv");
  if (dkdv) yield backwardCase(gpu, s, s.tokens, subgroupBackward("dkdv", dkdv), 14);
}
