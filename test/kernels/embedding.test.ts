// Embedding gather and its deterministic scatter-add gradient against float64 references.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { runKernel } from "../../runtime/gpu/batch.ts";
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { createTensor, readFloats, uploadTensor } from "../../runtime/gpu/tensor.ts";
import { Random } from "../../runtime/random.ts";
import { embeddingBackward, embeddingBackwardRef, embeddingForward, embeddingForwardRef, embeddingGradPlan } from "../../stdlib/kernels/embedding.ts";
import { assertClose } from "../support/numeric.ts";
import { assertBitwiseEqual, floatDTypes, randomValues, withGpu } from "./gpu-harness.ts";

const test = suite("embedding");
const SHAPES = [
  { vocab: 1, dim: 1, tokens: 1 },
  { vocab: 11, dim: 5, tokens: 9 },
  { vocab: 50, dim: 130, tokens: 200 }, // many repeats per id
];

test("the gradient plan groups positions by id in ascending order", () => {
  const plan = embeddingGradPlan([3, 1, 3, 0, 1, 3]);
  assert.equal(Array.from(plan.unique), [0, 1, 3]);
  assert.equal(Array.from(plan.offsets), [0, 1, 3, 6]);
  assert.equal(Array.from(plan.positions), [3, 1, 4, 0, 2, 5]);
});

async function gradient(gpu: GpuDevice, ids: Int32Array, dOut: Float64Array, vocab: number, dim: number, start?: Float64Array): Promise<Float32Array> {
  const plan = embeddingGradPlan(ids);
  const dTable = start ? uploadTensor(gpu, "f32", [vocab, dim], start) : createTensor(gpu, "f32", [vocab, dim]);
  await runKernel(gpu, embeddingBackward(!!start), { groups: plan.unique.length, dim }, {
    unique: uploadTensor(gpu, "i32", [plan.unique.length], plan.unique),
    offsets: uploadTensor(gpu, "u32", [plan.offsets.length], plan.offsets),
    positions: uploadTensor(gpu, "u32", [plan.positions.length], plan.positions),
    d_out: uploadTensor(gpu, "f32", [ids.length, dim], dOut),
    d_table: dTable,
  });
  return readFloats(gpu, dTable);
}

test(
  "gather and scatter-add gradient",
  withGpu(async (gpu) => {
    const rng = new Random(40);
    for (const dtype of floatDTypes(gpu))
      for (const { vocab, dim, tokens } of SHAPES) {
        const ids = Int32Array.from({ length: tokens }, () => rng.int(vocab));
        const table = randomValues(rng, vocab * dim, dtype);
        const out = createTensor(gpu, dtype === "bf16" ? "f32" : dtype, [tokens, dim]);
        await runKernel(gpu, embeddingForward(dtype), { n: tokens * dim, dim, vocab }, {
          ids: uploadTensor(gpu, "i32", [tokens], ids),
          table: uploadTensor(gpu, dtype, [vocab, dim], table),
          out,
        });
        // a gather copies stored values exactly
        assertClose(await readFloats(gpu, out), embeddingForwardRef(ids, table, vocab, dim), 1e-12, `gather ${dtype} ${vocab}x${dim} t=${tokens}`);
        if (dtype !== "f32") continue;
        const dOut = randomValues(rng, tokens * dim);
        assertClose(await gradient(gpu, ids, dOut, vocab, dim), embeddingBackwardRef(ids, dOut, vocab, dim), 1e-6, `grad ${vocab}x${dim} t=${tokens}`);
      }
  }),
);

test(
  "out-of-range ids give zero rows; the gradient accumulates and is bitwise reproducible",
  withGpu(async (gpu) => {
    const rng = new Random(41);
    const [vocab, dim] = [6, 4];
    const table = randomValues(rng, vocab * dim);
    const out = createTensor(gpu, "f32", [3, dim]);
    const ids = Int32Array.from([2, -1, 6]);
    await runKernel(gpu, embeddingForward("f32"), { n: 3 * dim, dim, vocab }, { ids: uploadTensor(gpu, "i32", [3], ids), table: uploadTensor(gpu, "f32", [vocab, dim], table), out });
    const got = await readFloats(gpu, out);
    assert.equal(Array.from(got.subarray(dim)), new Array(2 * dim).fill(0));

    const many = Int32Array.from({ length: 300 }, () => rng.int(3));
    const dOut = randomValues(rng, 300 * dim);
    const start = randomValues(rng, vocab * dim);
    const first = await gradient(gpu, many, dOut, vocab, dim, start);
    const second = await gradient(gpu, many, dOut, vocab, dim, start);
    assertBitwiseEqual(first, second, "embedding grad");
    const ref = embeddingBackwardRef(many, dOut, vocab, dim).map((v, i) => v + start[i]);
    assertClose(first, ref, 1e-6, "grad accumulated onto an existing gradient");
  }),
);

test.run();
