// Host f16/bf16 conversions (round to nearest even, subnormals, overflow, NaN) and the GPU's
// exact widening of stored f16/bf16 values.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { runKernel } from "../../runtime/gpu/batch.ts";
import { createTensor, readFloats, uploadTensor } from "../../runtime/gpu/tensor.ts";
import { Random } from "../../runtime/random.ts";
import { activationForward } from "../../stdlib/kernels/activations.ts";
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits, roundToDType } from "../../stdlib/kernels/dtype.ts";
import { elementwiseKernel } from "../../stdlib/kernels/elementwise.ts";
import { assertBitwiseEqual, randomValues, withGpu } from "./gpu-harness.ts";

const test = suite("dtype");

test("f32 -> f16 bits: IEEE binary16 with round to nearest even", () => {
  const cases: [number, number][] = [
    [1, 0x3c00],
    [-2, 0xc000],
    [65504, 0x7bff], // largest finite
    [65519, 0x7bff], // below the halfway point to 65536
    [65520, 0x7c00], // halfway: ties to even rounds up to infinity
    [2 ** -14, 0x0400], // smallest normal
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -25, 0x0000], // halfway to the smallest subnormal: ties to even (0)
    [3 * 2 ** -26, 0x0001], // above halfway
    [1 + 2 ** -11, 0x3c00], // halfway between 1 and the next half: even is 1
    [1 + 3 * 2 ** -11, 0x3c02], // halfway, odd below: rounds up
    [Infinity, 0x7c00],
    [-0, 0x8000],
  ];
  for (const [v, bits] of cases) assert.is(f32ToF16Bits(v), bits, `f16 of ${v}`);
  assert.ok(Number.isNaN(f16BitsToF32(f32ToF16Bits(NaN))));
  for (let h = 0; h < 0x7c00; h += 7) assert.is(f32ToF16Bits(f16BitsToF32(h)), h, `f16 round trip ${h}`);
});

test("f32 -> bf16 bits: high half of the f32, round to nearest even", () => {
  const cases: [number, number][] = [
    [1, 0x3f80],
    [1 + 2 ** -8, 0x3f80], // halfway, even below
    [1 + 3 * 2 ** -8, 0x3f82], // halfway, odd below
    [-3.5, 0xc060],
    [Infinity, 0x7f80],
  ];
  for (const [v, bits] of cases) assert.is(f32ToBf16Bits(v), bits, `bf16 of ${v}`);
  assert.ok(Number.isNaN(bf16BitsToF32(f32ToBf16Bits(NaN))));
  for (let b = 0; b < 0x7f80; b += 97) assert.is(f32ToBf16Bits(bf16BitsToF32(b)), b, `bf16 round trip ${b}`);
});

test(
  "the GPU widens stored f16 and bf16 exactly and narrows to f16 like the host",
  withGpu(async (gpu) => {
    const n = 1001; // odd: the last bf16 word is half used
    const values = randomValues(new Random(70), n, "f32", 100);
    const copy = (dtype: "f16" | "bf16") =>
      elementwiseKernel({
        name: "copy_widen_test",
        variant: { dtype },
        bindings: [
          { name: "x", dtype, access: "read" },
          { name: "y", dtype: "f32", access: "read_write" },
        ],
        perElement: "  store_y(i, load_x(i));",
      });
    for (const dtype of gpu.hasF16 ? (["f16", "bf16"] as const) : (["bf16"] as const)) {
      const y = createTensor(gpu, "f32", [n]);
      await runKernel(gpu, copy(dtype), { n }, { x: uploadTensor(gpu, dtype, [n], values), y });
      assertBitwiseEqual(await readFloats(gpu, y), Float32Array.from(roundToDType(dtype, values)), `${dtype} widened`);
    }
    if (!gpu.hasF16) return;
    // silu output narrowed to f16 on the GPU vs the same f32 result rounded on the host
    const x = uploadTensor(gpu, "f32", [n], values);
    const y32 = createTensor(gpu, "f32", [n]);
    const y16 = createTensor(gpu, "f16", [n]);
    await runKernel(gpu, activationForward("silu", "f32", "f32"), { n }, { x, y: y32 });
    await runKernel(gpu, activationForward("silu", "f32", "f16"), { n }, { x, y: y16 });
    assertBitwiseEqual(await readFloats(gpu, y16), Float32Array.from(roundToDType("f16", await readFloats(gpu, y32))), "f16 narrowing");
  }),
);

test.run();
