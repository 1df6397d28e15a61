// The subgroup-matrix attention forward run on lavapipe, which has no subgroup matrices, with its
// matrix builtins emulated (test/support/subgroup-matrix-emulation.ts): everything but the matrix
// hardware is the kernel's own code (tiling, staging, the online softmax, masks, views, GQA).
// Checked against the float64 reference on f16-rounded inputs for cases of the scalar forward's tests,
// for scores that rise along the keys, which make the kernel rescale O (conditional rescaling),
// and with the softmax split over two invocations per row (as on NVIDIA) or taking whole rows.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { runKernel } from "../../runtime/gpu/batch.ts";
import { createTensor, readFloats } from "../../runtime/gpu/tensor.ts";
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { Random } from "../../runtime/random.ts";
import { attentionForwardSubgroupKernel, RESCALE_TAU, subgroupAttentionTolerance } from "../../stdlib/kernels/attention-forward-subgroup.ts";
import { softmaxLanes, subgroupAttentionLayout, workgroupBytes, type SubgroupAttentionLayout } from "../../stdlib/kernels/attention-subgroup-layout.ts";
import { range } from "../../stdlib/kernels/attention-subgroup-wgsl.ts";
import { attentionForwardUniforms } from "../../stdlib/kernels/attention-forward.ts";
import { denseView, gatherView, viewIndex } from "../../stdlib/kernels/attention-layout.ts";
import { maskFlags } from "../../stdlib/kernels/attention-mask.ts";
import { attentionForwardReference } from "../../stdlib/kernels/attention-reference.ts";
import { roundToDType } from "../../stdlib/kernels/dtype.ts";
import { assertClose } from "../support/numeric.ts";
import { withF16Gpu } from "./gpu-harness.ts";
import { emulateSubgroupMatrices } from "../support/subgroup-matrix-emulation.ts";
import { H200 } from "../support/h200-adapter.ts";
import { emulatedAdapter } from "./attention-subgroup-emulation.ts";
import { assertLogSumExpClose, attentionShape, casesFor, caseLabel, makeInputs, uploadInputs, type AttentionCase, type AttentionInputs } from "./attention-harness.ts";

const test = suite("attention forward on emulated subgroup matrices");

// One case per pipeline (a first compile takes lavapipe seconds; Mesa caches it): GQA over
// several tiles (fused QKV), a KV cache with right padding (separate Q and KV views), rows that
// see no key (left padding, MQA), the GLM prefix (the key window), ALiBi, packed segments, D 128,
// f16 storage. D 256 does not fit lavapipe's workgroup memory.
const emulatedCase = (c: AttentionCase) =>
  [
    "B2 Hq4 Hkv2 T37 S37 D64 causal fused f32",
    "B2 Hq4 Hkv2 T7 S40 D32 padding f32",
    "B3 Hq2 Hkv1 T9 S9 D32 left-padding fused f32",
    "B2 Hq2 Hkv1 T16 S16 D32 prefix fused f32",
    "B1 Hq6 Hkv6 T19 S19 D32 alibi fused f32",
    "B2 Hq2 Hkv2 T30 S30 D32 segments fused f32",
    "B1 Hq2 Hkv2 T20 S20 D128 causal fused f32",
    "B2 Hq4 Hkv2 T37 S37 D64 causal fused f16",
  ].includes(caseLabel(c));

const SCALE = (headDim: number) => 1 / Math.sqrt(headDim);

/** Runs the forward of `layout` with emulated matrices on case `c` with `inputs`, and checks O and lse against the reference. */
async function checkEmulated(gpu: GpuDevice, c: AttentionCase, inputs: AttentionInputs, layout: SubgroupAttentionLayout, label: string, lanes?: number): Promise<void> {
  const { batch: B, queryHeads: Hq, queryLength: T, headDim: D } = c.shape;
  const oView = denseView("bthd", T, Hq, D);
  const tensors = uploadInputs(gpu, c, inputs);
  tensors.o = createTensor(gpu, c.dtype, [B, T, Hq, D], "o");
  tensors.lse = createTensor(gpu, "f32", [B, Hq, T], "lse");
  const emulated = emulateSubgroupMatrices(attentionForwardSubgroupKernel({ dtype: c.dtype, headDim: D, ...maskFlags(inputs.mask) }, layout, lanes), layout.config, "u.head_dim");
  const uniforms = attentionForwardUniforms(c.shape, { ...inputs.views, o: oView }, SCALE(D), inputs.mask);
  tensors.emu_values = emulated.values(gpu, uniforms);
  await runKernel(gpu, emulated.spec, uniforms, tensors);
  const [q, k, v] = [inputs.q, inputs.k, inputs.v].map((x) => roundToDType("f16", x));
  const ref = attentionForwardReference({ shape: c.shape, q, k, v, mask: inputs.mask, scale: SCALE(D) });
  // an f16 output adds its own rounding (2^-11) to the f16 weights'
  const tol = subgroupAttentionTolerance() * (c.dtype === "f16" ? 2 : 1);
  assertClose(gatherView(await readFloats(gpu, tensors.o), oView, B, T, Hq, D), ref.out, tol, `O ${label}`);
  assertLogSumExpClose(await readFloats(gpu, tensors.lse), ref.logSumExp, 1e-5, `lse ${label}`);
}

test(
  "the kernel's code with emulated matrices matches the float64 reference on f16-rounded inputs",
  withF16Gpu(async (gpu) => {
    let seed = 300;
    // the layout the engine would pick with the emulated configuration in this device's workgroup memory
    const adapter = emulatedAdapter(gpu);
    const cases = casesFor(gpu).filter(emulatedCase);
    assert.is(cases.length, 8, "the chosen cases exist");
    for (const c of cases) {
      const layout = subgroupAttentionLayout(adapter, c.shape.headDim);
      assert.ok(layout, `${caseLabel(c)}: a layout fits ${adapter.workgroupStorageBytes} bytes of workgroup memory`);
      await checkEmulated(gpu, c, makeInputs(c, seed++), layout, caseLabel(c));
    }
  }),
);

/**
 * Inputs of case `c` (separate Q and KV tensors) whose scores rise along the keys by `rise`
 * times a per-row factor in [0.5, 1.5] from the first key to the last (scaled units): the first
 * element of each query is that factor, the first of key j is rise * sqrt(D) * j / S, the rest
 * are makeInputs's N(0, 1), whose products add scores of a few units either way.
 */
function risingScores(c: AttentionCase, seed: number, rise: number): AttentionInputs {
  const inputs = makeInputs(c, seed);
  const { batch: B, queryHeads: Hq, kvHeads: Hkv, queryLength: T, keyLength: S, headDim: D } = c.shape;
  const { views, buffers } = inputs;
  const rng = new Random(seed);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) for (let t = 0; t < T; t++) buffers.q[viewIndex(views.q, b, t, h, 0)] = 0.5 + rng.uniform();
    for (let h = 0; h < Hkv; h++) for (let j = 0; j < S; j++) buffers.kv[viewIndex(views.k, b, j, h, 0)] = (rise * Math.sqrt(D) * j) / S;
  }
  return { ...inputs, q: gatherView(buffers.q, views.q, B, T, Hq, D), k: gatherView(buffers.kv, views.k, B, S, Hkv, D) };
}

/**
 * The (row, key tile) steps at which the kernel moves a row's m after its first tile, by the
 * kernel's rule in float64 on f16-rounded `inputs` of causal case `c` (T == S) with `blockK`.
 */
function rescaleSteps(c: AttentionCase, inputs: AttentionInputs, blockK: number): number {
  const { batch: B, queryHeads: Hq, kvHeads: Hkv, queryLength: T, keyLength: S, headDim: D } = c.shape;
  const [q, k] = [inputs.q, inputs.k].map((x) => roundToDType("f16", x));
  let steps = 0;
  for (let b = 0; b < B; b++)
    for (let h = 0; h < Hq; h++)
      for (let i = 0; i < T; i++) {
        const kRow = (j: number) => ((b * Hkv + Math.floor(h / (Hq / Hkv))) * S + j) * D;
        const score = (j: number) => SCALE(D) * range(D).reduce((sum, d) => sum + q[((b * Hq + h) * T + i) * D + d] * k[kRow(j) + d], 0);
        let m = -Infinity;
        for (let j0 = 0; j0 <= i; j0 += blockK) {
          const tileMax = Math.max(...range(Math.min(blockK, i + 1 - j0)).map((c) => score(j0 + c)));
          if (m !== -Infinity && tileMax > m + RESCALE_TAU) steps++;
          if (m === -Infinity || tileMax > m + RESCALE_TAU) m = tileMax;
        }
      }
  return steps;
}

test(
  "scores that rise by more than TAU from tile to tile rescale O and still match the reference; flat scores never rescale",
  withF16Gpu(async (gpu) => {
    // 16-key tiles: 5 per row of 80 keys; the chosen query block of several subgroups and one subgroup
    const chosen = subgroupAttentionLayout(emulatedAdapter(gpu), 32);
    assert.ok(chosen && chosen.subgroups > 1, "several subgroups fit lavapipe's workgroup memory at D 32");
    const c: AttentionCase = { shape: attentionShape(1, 2, 1, 80, 80, 32), mask: "causal", fused: false, dtype: "f32" };
    for (const layout of [{ ...chosen, blockK: 16 }, { ...chosen, subgroups: 1, blockK: 16 }])
      for (const rise of [40, 0]) {
        const inputs = risingScores(c, 41, rise);
        const steps = rescaleSteps(c, inputs, layout.blockK);
        assert.ok(rise > 0 ? steps > 100 : steps === 0, `rise ${rise}: ${steps} rescaled row tiles`);
        await checkEmulated(gpu, c, inputs, layout, `${caseLabel(c)} ${layout.subgroups} subgroups rise ${rise} (${steps} rescaled row tiles)`);
      }
  }),
);

test(
  "two invocations per row in the softmax (subgroups of 32 lanes over 16-row matrices) match the reference, with and without rescaling, as does one per row",
  withF16Gpu(async (gpu) => {
    // every lane of an emulated subgroup computes the subgroup's matrices (stored alike), so a
    // subgroup of 32 runs the kernel's softmax as on NVIDIA: lanes 2r and 2r + 1 share row r
    const chosen = subgroupAttentionLayout(emulatedAdapter(gpu), 32);
    assert.ok(chosen);
    const c: AttentionCase = { shape: attentionShape(1, 1, 1, 40, 40, 32), mask: "causal", fused: false, dtype: "f32" };
    for (const subgroups of [1, 2]) {
      const layout = { ...chosen!, subgroupSize: 32, subgroups, blockK: 16 };
      assert.is(softmaxLanes(layout), 2);
      for (const rise of [40, 0]) {
        const inputs = risingScores(c, 43, rise);
        const steps = rescaleSteps(c, inputs, layout.blockK);
        assert.ok(rise > 0 ? steps > 10 : steps === 0, `rise ${rise}: ${steps} rescaled row tiles`);
        for (const lanes of [2, 1]) await checkEmulated(gpu, c, inputs, layout, `${caseLabel(c)} ${subgroups} subgroups of 32, ${lanes} lanes per row, rise ${rise} (${steps} rescaled row tiles)`, lanes);
      }
    }
  }),
);

test(
  "the layout the H200 gets at D 128 (16x16x16, four subgroups, 32-key tiles: 64-row blocks) over several blocks, the last partial, matches the reference",
  withF16Gpu(async (gpu) => {
    // the chooser's layout for the H200, run with one-invocation subgroups (emulated): the sizes
    // are what the H200 runs, lanes aside (one per row here, two there: tested above)
    const chosen = subgroupAttentionLayout(H200, 128);
    assert.ok(chosen, "the H200 has a layout at D 128");
    const layout: SubgroupAttentionLayout = { ...chosen, subgroupSize: 1 };
    assert.equal([layout.config.M, layout.config.N, layout.config.K, layout.subgroups, layout.blockK], [16, 16, 16, 4, 32]);
    assert.ok(workgroupBytes(layout, 128) <= gpu.limits.maxComputeWorkgroupStorageSize, "the layout fits lavapipe's workgroup memory");
    const c: AttentionCase = { shape: attentionShape(1, 2, 1, 150, 150, 128), mask: "causal", fused: true, dtype: "f32" };
    await checkEmulated(gpu, c, makeInputs(c, 47), layout, `${caseLabel(c)} 4 subgroups x 16 rows, 32 keys`);
  }),
);

test.run();
