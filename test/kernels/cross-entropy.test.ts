// Fused log-softmax cross-entropy against the float64 reference: loss per token, logits
// gradient, ignore_index rows, large logits, in-place gradient, f16/bf16 logits.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { runKernel } from "../../runtime/gpu/batch.ts";
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { createTensor, readFloats, uploadTensor } from "../../runtime/gpu/tensor.ts";
import { Random } from "../../runtime/random.ts";
import { crossEntropy, crossEntropyRef, IGNORE_INDEX } from "../../stdlib/kernels/cross-entropy.ts";
import type { StorageDType } from "../../stdlib/kernels/dtype.ts";
import { assertClose } from "../support/numeric.ts";
import { assertBitwiseEqual, floatDTypes, numericGradient, randomValues, withGpu } from "./gpu-harness.ts";

const test = suite("cross-entropy");
const SHAPES = [[1, 1], [3, 7], [5, 1000], [2, 3001]];

test("the reference gradient matches finite differences of the reference loss", () => {
  const logits = randomValues(new Random(50), 2 * 6, "f32", 3);
  const targets = [4, 1];
  const { dLogits } = crossEntropyRef(logits, targets, 2, 6, 0.5);
  const numeric = numericGradient((x) => 0.5 * crossEntropyRef(x, targets, 2, 6, 1).loss.reduce((a, b) => a + b, 0), logits);
  assertClose(dLogits, numeric, 1e-6, "dlogits ref");
});

async function run(gpu: GpuDevice, dtype: StorageDType, rows: number, vocab: number, rng: Random, inPlace = false) {
  const logits = randomValues(rng, rows * vocab, dtype, 8); // wide range: exp would overflow without the max shift
  const targets = Int32Array.from({ length: rows }, (_, r) => (r % 3 === 2 ? IGNORE_INDEX : rng.int(vocab)));
  const valid = targets.filter((t) => t !== IGNORE_INDEX).length;
  const scale = 1 / Math.max(1, valid);
  const tLogits = uploadTensor(gpu, dtype, [rows, vocab], logits);
  const loss = createTensor(gpu, "f32", [rows]);
  const dLogits = createTensor(gpu, "f32", [rows, vocab]);
  const tensors = { logits: tLogits, targets: uploadTensor(gpu, "i32", [rows], targets), loss, ...(inPlace ? {} : { d_logits: dLogits }) };
  await runKernel(gpu, crossEntropy({ logits: dtype, grad: true, inPlace }), { rows, vocab, ignore: IGNORE_INDEX, scale }, tensors);
  return {
    ref: crossEntropyRef(logits, targets, rows, vocab, scale),
    loss: await readFloats(gpu, loss),
    grad: await readFloats(gpu, inPlace ? tLogits : dLogits),
  };
}

test(
  "loss and logits gradient with ignored tokens",
  withGpu(async (gpu) => {
    const rng = new Random(51);
    for (const dtype of floatDTypes(gpu))
      for (const [rows, vocab] of SHAPES) {
        const got = await run(gpu, dtype, rows, vocab, rng);
        // logits are rounded before the reference sees them; math is f32 everywhere
        assertClose(got.loss, got.ref.loss, 1e-5, `loss ${dtype} ${rows}x${vocab}`);
        assertClose(got.grad, got.ref.dLogits, 1e-5, `dlogits ${dtype} ${rows}x${vocab}`);
        if (rows >= 3) assert.is(got.loss[2], 0, "ignored token has zero loss");
      }
  }),
);

test(
  "in-place gradient and loss-only evaluation",
  withGpu(async (gpu) => {
    const rng = new Random(52);
    for (const dtype of gpu.hasF16 ? (["f32", "f16"] as StorageDType[]) : (["f32"] as StorageDType[])) {
      const got = await run(gpu, dtype, 4, 513, rng, true);
      assertClose(got.loss, got.ref.loss, 1e-5, `in-place loss ${dtype}`);
      assertClose(got.grad, got.ref.dLogits, dtype === "f32" ? 1e-5 : 1e-2, `in-place dlogits ${dtype}`);
    }
    const logits = randomValues(rng, 3 * 50);
    const targets = Int32Array.from([1, IGNORE_INDEX, 49]);
    const loss = createTensor(gpu, "f32", [3]);
    await runKernel(gpu, crossEntropy({ logits: "f32", grad: false }), { rows: 3, vocab: 50, ignore: IGNORE_INDEX, scale: 1 }, {
      logits: uploadTensor(gpu, "f32", [3, 50], logits),
      targets: uploadTensor(gpu, "i32", [3], targets),
      loss,
    });
    const out = await readFloats(gpu, loss);
    assert.is(out[1], 0, "ignored token has zero loss");
    assertClose(out, crossEntropyRef(logits, targets, 3, 50, 1).loss, 1e-5, "eval loss");
  }),
);

test(
  "deterministic",
  withGpu(async (gpu) => {
    const a = await run(gpu, "f32", 3, 2000, new Random(53));
    const b = await run(gpu, "f32", 3, 2000, new Random(53));
    assertBitwiseEqual(a.loss, b.loss, "loss");
    assertBitwiseEqual(a.grad, b.grad, "dlogits");
  }),
);

test.run();
