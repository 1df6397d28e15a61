// The subgroup-matrix attention forward run on lavapipe, which has no subgroup matrices, with its
// matrix builtins emulated (test/support/subgroup-matrix-emulation.ts): everything but the matrix
// hardware is the kernel's own code (tiling, staging, the online softmax, masks, views, GQA).
// Checked against the float64 reference on f16-rounded inputs for cases of the scalar forward's tests.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { runKernel } from "../../runtime/gpu/batch.ts";
import { createTensor, readFloats } from "../../runtime/gpu/tensor.ts";
import { attentionForwardSubgroupKernel, subgroupAttentionLayout, subgroupAttentionTolerance } from "../../stdlib/kernels/attention-forward-subgroup.ts";
import { attentionForwardUniforms } from "../../stdlib/kernels/attention-forward.ts";
import { denseView, gatherView } from "../../stdlib/kernels/attention-layout.ts";
import { maskFlags } from "../../stdlib/kernels/attention-mask.ts";
import { attentionForwardReference } from "../../stdlib/kernels/attention-reference.ts";
import { roundToDType } from "../../stdlib/kernels/dtype.ts";
import { assertClose } from "../support/numeric.ts";
import { withF16Gpu } from "./gpu-harness.ts";
import { emulateSubgroupMatrices } from "../support/subgroup-matrix-emulation.ts";
import { emulatedAdapter } from "./attention-subgroup-emulation.ts";
import { assertLogSumExpClose, casesFor, caseLabel, makeInputs, uploadInputs, type AttentionCase } from "./attention-harness.ts";

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

test(
  "the kernel's code with emulated matrices matches the float64 reference on f16-rounded inputs",
  withF16Gpu(async (gpu) => {
    let seed = 300;
    // the layout the engine would pick with the emulated configuration in this device's workgroup memory
    const adapter = emulatedAdapter(gpu);
    const cases = casesFor(gpu).filter(emulatedCase);
    assert.is(cases.length, 8, "the chosen cases exist");
    for (const c of cases) {
      const { batch: B, queryHeads: Hq, queryLength: T, headDim: D } = c.shape;
      const layout = subgroupAttentionLayout(adapter, D);
      assert.ok(layout, `${caseLabel(c)}: a layout fits ${adapter.workgroupStorageBytes} bytes of workgroup memory`);
      const inputs = makeInputs(c, seed++);
      const oView = denseView("bthd", T, Hq, D);
      const tensors = uploadInputs(gpu, c, inputs);
      tensors.o = createTensor(gpu, c.dtype, [B, T, Hq, D], "o");
      tensors.lse = createTensor(gpu, "f32", [B, Hq, T], "lse");
      const emulated = emulateSubgroupMatrices(attentionForwardSubgroupKernel({ dtype: c.dtype, headDim: D, ...maskFlags(inputs.mask) }, layout), layout.config, "u.head_dim");
      const uniforms = attentionForwardUniforms(c.shape, { ...inputs.views, o: oView }, SCALE(D), inputs.mask);
      tensors.emu_values = emulated.values(gpu, uniforms);
      await runKernel(gpu, emulated.spec, uniforms, tensors);
      const [q, k, v] = [inputs.q, inputs.k, inputs.v].map((x) => roundToDType("f16", x));
      const ref = attentionForwardReference({ shape: c.shape, q, k, v, mask: inputs.mask, scale: SCALE(D) });
      // an f16 output adds its own rounding (2^-11) to the f16 weights'
      const tol = subgroupAttentionTolerance() * (c.dtype === "f16" ? 2 : 1);
      assertClose(gatherView(await readFloats(gpu, tensors.o), oView, B, T, Hq, D), ref.out, tol, `O ${caseLabel(c)}`);
      assertLogSumExpClose(await readFloats(gpu, tensors.lse), ref.logSumExp, 1e-5, `lse ${caseLabel(c)}`);
    }
  }),
);

test.run();
