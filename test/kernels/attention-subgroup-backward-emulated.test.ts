// The subgroup-matrix attention backward (dK/dV and dQ kernels) run on lavapipe with its matrix
// builtins emulated (test/support/subgroup-matrix-emulation.ts), after the scalar forward and delta
// kernels, against the float64 reference. Inputs and dO are f16 values, so the reference sees
// exactly what the kernels multiply; the kernels also round P and dS to f16.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { CommandBatch } from "../../runtime/gpu/batch.ts";
import { Random } from "../../runtime/random.ts";
import { attentionBackwardKernelsFor, subgroupAttentionBackwardTolerance } from "../../stdlib/kernels/attention-backward-subgroup.ts";
import { attentionBackwardUniforms } from "../../stdlib/kernels/attention-backward.ts";
import { attentionForwardKernel } from "../../stdlib/kernels/attention-forward.ts";
import { attentionBackwardReference } from "../../stdlib/kernels/attention-reference.ts";
import { roundToDType } from "../../stdlib/kernels/dtype.ts";
import { assertClose } from "../support/numeric.ts";
import { expectOk } from "../support/result.ts";
import { randomValues, withF16Gpu } from "./gpu-harness.ts";
import { emulateSubgroupMatrices } from "../support/subgroup-matrix-emulation.ts";
import { EMULATED_ADAPTER, emulatedAdapter } from "./attention-subgroup-emulation.ts";
import { attentionShape, backwardSetup, caseLabel, makeInputs, type AttentionCase } from "./attention-harness.ts";

const test = suite("attention backward on emulated subgroup matrices");

// One pipeline pair, as each kernel takes lavapipe seconds to compile: GQA, queries after a KV
// cache (S > T) with right padding, separate Q and KV views. With lavapipe's layouts (dQ: 64
// query rows a block, 32-key tiles; dK/dV: 64 keys a block, 16-query tiles) that is one block
// per head for each kernel, with two key tiles (dQ) and two query tiles (dK/dV); blocks after
// the first are left to the forward's emulated cases and the GPU self-check.
const CASE: AttentionCase = { shape: attentionShape(2, 4, 2, 21, 40, 32), mask: "padding", fused: false, dtype: "f32" };

test(
  "dK, dV and dQ with emulated matrices match the float64 reference on f16 inputs",
  withF16Gpu(async (gpu) => {
    const adapter = emulatedAdapter(gpu);
    const c = CASE;
    const { batch: B, queryHeads: Hq, queryLength: T, headDim: D } = c.shape;
    const inputs = makeInputs(c, 500);
    // f16 values in f32 buffers: the kernels' own rounding of Q, K, V is then exact
    for (const name of Object.keys(inputs.buffers)) inputs.buffers[name] = roundToDType("f16", inputs.buffers[name]);
    const [q, k, v] = [inputs.q, inputs.k, inputs.v].map((x) => roundToDType("f16", x));
    const dOut = randomValues(new Random(501), B * Hq * T * D, "f16");
    const scale = 1 / Math.sqrt(D);
    const { tensors, views, variant, read } = backwardSetup(gpu, c, inputs, dOut);
    const kernels = expectOk(attentionBackwardKernelsFor(adapter, variant, {}));
    assert.equal([kernels.dkdv.name, kernels.dq.name], ["attention_backward_dkdv_subgroup_matrix", "attention_backward_dq_subgroup_matrix"], `${caseLabel(c)}: both on subgroup matrices`);
    const config = EMULATED_ADAPTER.subgroupMatrixConfigs[0];
    const uniforms = attentionBackwardUniforms(c.shape, views, scale, inputs.mask);
    const batch = new CommandBatch(gpu);
    batch.dispatch(attentionForwardKernel(variant), uniforms, tensors);
    batch.dispatch(kernels.delta, uniforms, tensors);
    for (const kernel of [kernels.dkdv, kernels.dq]) {
      const emulated = emulateSubgroupMatrices(kernel, config, "u.head_dim");
      batch.dispatch(emulated.spec, uniforms, { ...tensors, emu_values: emulated.values(gpu, uniforms) });
    }
    await batch.submit();
    const got = await read();
    const ref = attentionBackwardReference({ shape: c.shape, q, k, v, mask: inputs.mask, scale }, dOut);
    assertClose(got.dq, ref.dq, subgroupAttentionBackwardTolerance(), `dQ ${caseLabel(c)}`);
    assertClose(got.dk, ref.dk, subgroupAttentionBackwardTolerance(), `dK ${caseLabel(c)}`);
    assertClose(got.dv, ref.dv, subgroupAttentionBackwardTolerance(), `dV ${caseLabel(c)}`);
  }),
);

test.run();
