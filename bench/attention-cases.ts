// Benchmark cases of the subgroup-matrix attention kernels (attention-forward-subgroup.ts,
// attention-backward-subgroup.ts), on adapters that have subgroup matrices: causal
// self-attention over one sequence, Q, K, V read from a fused f32 QKV projection as in
// kernel-cases.ts's attention case. The forward runs at the bench's token count and at half of
// it, checked against attentionForwardReference on the f16-rounded inputs (the kernel's products
// take f16) for the first and last row of evenly spaced query blocks: the rows where a block's
// first and last subgroup start and end. The backward's dQ and dK/dV kernels run at the bench's
// token count on f16-valued inputs and dO, after the scalar forward and delta kernels, checked
// against attentionBackwardReference for every row of the first and last head.
import { engineAttentionLayout } from "../runtime/gpu/attention-tuning.ts";
import type { GpuDevice } from "../runtime/gpu/device.ts";
import { CommandBatch } from "../runtime/gpu/batch.ts";
import { createTensor, readFloats, uploadTensor, type GpuTensor } from "../runtime/gpu/tensor.ts";
import { Random } from "../runtime/random.ts";
import { relativeError } from "../runtime/numeric.ts";
import {
  attentionForwardSubgroupKernel,
  blockRows,
  softmaxLanes,
  subgroupAttentionTolerance,
  type SubgroupAttentionLayout,
} from "../stdlib/kernels/attention-forward-subgroup.ts";
import {
  attentionDkdvSubgroupKernel,
  attentionDqSubgroupKernel,
  subgroupAttentionBackwardTolerance,
} from "../stdlib/kernels/attention-backward-subgroup.ts";
import { attentionBackwardKernels, attentionBackwardUniforms, type BackwardViews } from "../stdlib/kernels/attention-backward.ts";
import { attentionForwardKernel, attentionForwardUniforms } from "../stdlib/kernels/attention-forward.ts";
import { denseView, fusedQkvViews, gatherView } from "../stdlib/kernels/attention-layout.ts";
import { maskFlags } from "../stdlib/kernels/attention-mask.ts";
import { attentionBackwardReference, attentionForwardReference } from "../stdlib/kernels/attention-reference.ts";
import { roundToDType } from "../stdlib/kernels/dtype.ts";
import type { Case } from "./kernel-cases.ts";
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

/** Causal self-attention over `T` tokens with `layout` and `lanes` invocations per row in the softmax, from a fused f32 QKV buffer. */
function attentionCase(gpu: GpuDevice, s: BenchShapes, T: number, layout: SubgroupAttentionLayout, seed: number, lanes = softmaxLanes(layout)): Case {
  const D = s.headDim;
  const H = s.hidden / D;
  const shape = { batch: 1, queryHeads: H, kvHeads: H, queryLength: T, keyLength: T, headDim: D };
  const scale = 1 / Math.sqrt(D);
  const mask = { causal: true, queryOffset: 0 };
  const host = new Random(seed).normalArray(T * 3 * H * D, 0.5); // (T, Hq + 2 Hkv, D), Baichuan W_pack order
  const qkv = uploadTensor(gpu, "f32", [T, 3 * H, D], host);
  const views = { ...fusedQkvViews(T, H, H, D), o: denseView("bthd", T, H, D) };
  const o = createTensor(gpu, "f32", [T, H, D]);
  const lse = createTensor(gpu, "f32", [H, T]);
  return {
    label: `attention forward subgroup-matrix ${layoutLabel(layout)}, ${lanes} lane${lanes > 1 ? "s" : ""} per row in the softmax, causal (4 flop/score)`,
    shape: `T${T} H${H} D${D}`,
    compute: true,
    spec: attentionForwardSubgroupKernel({ dtype: "f32", headDim: D, ...maskFlags(mask) }, layout, lanes),
    uniforms: attentionForwardUniforms(shape, views, scale, mask),
    tensors: { q: qkv, k: qkv, v: qkv, o, lse },
    flops: 4 * H * D * ((T * (T + 1)) / 2), // Q K^T and P V over the causal half
    bytes: 4 * (4 * T * H * D + H * T),
    verify: async () => {
      // the kernel multiplies f16 values: the reference reads the same rounded inputs
      const rounded = roundToDType("f16", host);
      const [q, k, v] = (["q", "k", "v"] as const).map((name) => gatherView(rounded, views[name], 1, T, H, D)); // (1, H, T, D)
      const out = gatherView(await readFloats(gpu, o), views.o, 1, T, H, D);
      const lseOut = await readFloats(gpu, lse); // (H, T)
      const rows = blockEdgeRows(T, blockRows(layout), s.checkedRows);
      const [outs, outRefs, lses, lseRefs]: number[][] = [[], [], [], []];
      for (const i of rows) {
        // one reference problem per checked row i: that row of every head, at position i
        const qi = new Float64Array(H * D);
        for (let h = 0; h < H; h++) qi.set(q.subarray((h * T + i) * D, (h * T + i + 1) * D), h * D);
        const ref = attentionForwardReference({ shape: { ...shape, queryLength: 1 }, q: qi, k, v, scale, mask: { causal: true, queryOffset: i } });
        for (let h = 0; h < H; h++) {
          outs.push(...out.subarray((h * T + i) * D, (h * T + i + 1) * D));
          lses.push(lseOut[h * T + i]);
        }
        outRefs.push(...ref.out);
        lseRefs.push(...ref.logSumExp);
      }
      const rowsNote = rows.length === T ? `all ${T} query rows` : `${rows.length} of ${T} query rows (first and last of evenly spaced blocks)`;
      return { relativeError: Math.max(relativeError(outs, outRefs), relativeError(lses, lseRefs)), tolerance: subgroupAttentionTolerance(), rows: rowsNote };
    },
  };
}

/**
 * The dQ or dK/dV kernel on `layout` for causal self-attention over `T` tokens. Q, K, V (fused)
 * and dO hold f16 values in f32 buffers, so the scalar forward and delta kernels, run here
 * before the case, give O, lse and delta as the reference sees them.
 */
function backwardCase(gpu: GpuDevice, s: BenchShapes, T: number, kernel: "dq" | "dkdv", layout: SubgroupAttentionLayout, seed: number): Case {
  const D = s.headDim;
  const H = s.hidden / D;
  const shape = { batch: 1, queryHeads: H, kvHeads: H, queryLength: T, keyLength: T, headDim: D };
  const scale = 1 / Math.sqrt(D);
  const mask = { causal: true, queryOffset: 0 };
  const rng = new Random(seed);
  const host = roundToDType("f16", rng.normalArray(T * 3 * H * D, 0.5)); // (T, Hq + 2 Hkv, D)
  const dOut = roundToDType("f16", rng.normalArray(T * H * D, 0.5)); // (T, H, D)
  const dense = denseView("bthd", T, H, D);
  const views: BackwardViews = { ...fusedQkvViews(T, H, H, D), o: dense, dout: dense, dq: dense, dk: dense, dv: denseView("bthd", T, H, D, T * H * D) };
  const qkv = uploadTensor(gpu, "f32", [T, 3 * H, D], host);
  const output = kernel === "dq" ? "dq" : "dkv"; // dK and dV: halves of one buffer
  const tensors: Record<string, GpuTensor> = {
    q: qkv,
    k: qkv,
    v: qkv,
    dout: uploadTensor(gpu, "f32", [T, H, D], dOut),
    o: createTensor(gpu, "f32", [T, H, D]),
    lse: createTensor(gpu, "f32", [H, T]),
    delta: createTensor(gpu, "f32", [H, T]),
    [output]: createTensor(gpu, "f32", kernel === "dq" ? [T, H, D] : [2, T, H, D]),
  };
  const variant = { dtype: "f32" as const, headDim: D, ...maskFlags(mask) };
  const uniforms = attentionBackwardUniforms(shape, views, scale, mask);
  const before = new CommandBatch(gpu); // submitted now, so it runs before the case's dispatches
  before.dispatch(attentionForwardKernel(variant), uniforms, tensors);
  before.dispatch(attentionBackwardKernels(variant).delta, uniforms, tensors);
  before.flush();
  const products = kernel === "dq" ? 3 : 4; // S, dP, dQ or S, dP, dV, dK
  return {
    label: `attention backward ${kernel === "dq" ? "dQ" : "dK/dV"} subgroup-matrix ${layoutLabel(layout, kernel === "dq" ? "keys" : "queries")}, causal (${2 * products} flop/score)`,
    shape: `T${T} H${H} D${D}`,
    compute: true,
    spec: kernel === "dq" ? attentionDqSubgroupKernel(variant, layout) : attentionDkdvSubgroupKernel(variant, layout),
    uniforms,
    tensors,
    flops: 2 * products * H * D * ((T * (T + 1)) / 2),
    bytes: 4 * ((kernel === "dq" ? 5 : 6) * T * H * D + 2 * H * T), // Q, K, V, dO and the gradients; lse, delta
    verify: async () => {
      const grads = await readFloats(gpu, tensors[output]);
      const [q, k, v] = (["q", "k", "v"] as const).map((name) => gatherView(host, views[name], 1, T, H, D)); // (1, H, T, D)
      const g = gatherView(dOut, dense, 1, T, H, D);
      const heads = [0, H - 1];
      const [outs, refs]: number[][] = [[], []];
      for (const h of heads) {
        const one = (x: Float64Array) => x.subarray(h * T * D, (h + 1) * T * D);
        const ref = attentionBackwardReference({ shape: { ...shape, queryHeads: 1, kvHeads: 1 }, q: one(q), k: one(k), v: one(v), scale, mask }, one(g));
        const names = kernel === "dq" ? (["dq"] as const) : (["dk", "dv"] as const);
        for (const name of names) {
          // a loop, not push(...xs): a head's T·D values overflow the call stack as arguments
          for (const x of one(gatherView(grads, views[name], 1, T, H, D))) outs.push(x);
          for (const x of ref[name]) refs.push(x);
        }
      }
      return { relativeError: relativeError(outs, refs), tolerance: subgroupAttentionBackwardTolerance(), rows: `all ${T} rows of heads ${heads.join(" and ")}` };
    },
  };
}

/**
 * The subgroup-matrix attention cases (none without subgroup matrices): the forward with the
 * layout the engine picks at the bench's token count and at half of it; where its softmax takes
 * several lanes per row, the same with one (each invocation a whole row, half of them idle on
 * NVIDIA), to show what the split gains; where that layout has four subgroups, two (what the
 * larger query block gains); where it has several, the one-subgroup layout (which does not rely
 * on subgroups being consecutive local indices) at the full token count; then the backward's dQ
 * and dK/dV kernels.
 */
export function* attentionCases(gpu: GpuDevice, s: BenchShapes): Generator<Case> {
  // the engine's layouts: the device's tuned ones at this head dim, else the largest that fit
  const layout = engineAttentionLayout(gpu, s.headDim);
  if (!layout) return;
  yield attentionCase(gpu, s, s.tokens, layout, 11);
  yield attentionCase(gpu, s, s.tokens / 2, layout, 12);
  if (softmaxLanes(layout) > 1) yield attentionCase(gpu, s, s.tokens, layout, 11, 1);
  if (layout.subgroups > 2) yield attentionCase(gpu, s, s.tokens, { ...layout, subgroups: layout.subgroups / 2 }, 11);
  if (layout.subgroups > 1) yield attentionCase(gpu, s, s.tokens, { ...layout, subgroups: 1 }, 11);
  const dq = engineAttentionLayout(gpu, s.headDim, "dq");
  if (dq) yield backwardCase(gpu, s, s.tokens, "dq", dq, 13);
  const dkdv = engineAttentionLayout(gpu, s.headDim, "dkdv");
  if (dkdv) yield backwardCase(gpu, s, s.tokens, "dkdv", dkdv, 14);
}
