// Storage formats of the plan: NF4 bytes against what stdlib/quant/nf4.ts actually produces,
// bytes per weight in the limit, and the parsing of device memory sizes.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { nf4Parts, nf4StorageBytes } from "../../compiler/plan/storage.ts";
import { knownAdapterMemory, parseByteSize } from "../../compiler/plan/device-memory.ts";
import { comparePlanWithAllocated } from "../../compiler/plan/measured.ts";
import { quantizeNf4 } from "../../stdlib/quant/nf4.ts";
import { Random } from "../../runtime/random.ts";

const layout = { blockSize: 64, doubleQuant: true, doubleQuantBlockSize: 256 };

test("NF4 parts have the sizes of a quantized tensor, with and without double quantization", () => {
  const rng = new Random(3);
  for (const n of [1, 63, 64, 65, 64 * 256, 64 * 256 * 3 + 17]) {
    const weights = Float32Array.from(rng.normalArray(n, 1));
    const dq = quantizeNf4(weights, true);
    assert.ok(!(dq.absmax instanceof Float32Array));
    const parts = nf4Parts(n, layout);
    assert.is(parts.codes, dq.codes.length, `codes of ${n}`);
    assert.is(parts.absmax, dq.absmax.codes.length, `absmax codes of ${n}`);
    assert.is(parts.scales, 4 * dq.absmax.scales.length, `scales of ${n}`);
    assert.is(parts.offset, 4, "one f32 offset");
    const plain = quantizeNf4(weights, false);
    const single = nf4Parts(n, { ...layout, doubleQuant: false });
    assert.ok(plain.absmax instanceof Float32Array);
    assert.is(single.absmax, plain.absmax.byteLength, `f32 absmax of ${n}`);
    assert.is(single.scales + single.offset, 0);
  }
});

test("QLoRA weights cost 0.5 bytes plus 1/64 byte of absmax code plus 4/(64·256) of scale per weight", () => {
  const n = 4096 * 11008; // a Baichuan-7B MLP matrix: a whole number of 64·256 blocks
  const bytes = nf4StorageBytes(n, layout);
  const exact = n * (0.5 + 1 / 64 + 4 / (64 * 256)) + 16; // + the offset's 16-byte buffer
  assert.is(bytes, exact);
  console.log(`    ${n} weights: ${(bytes / n).toFixed(6)} bytes per weight (${(8 * bytes / n).toFixed(4)} bits)`);
  const single = nf4StorageBytes(n, { ...layout, doubleQuant: false });
  assert.is(single, n * (0.5 + 4 / 64));
  assert.ok(Math.abs(8 * (single - bytes) / n - 0.373) < 0.01, "double quantization saves about 0.37 bits per weight");
});

test("device memory sizes: binary and decimal units, bare bytes; nonsense is refused", () => {
  assert.is(parseByteSize("24GiB"), 24 * 2 ** 30);
  assert.is(parseByteSize("24 gib"), 24 * 2 ** 30);
  assert.is(parseByteSize("80GB"), 80e9);
  assert.is(parseByteSize("16g"), 16 * 2 ** 30);
  assert.is(parseByteSize("1.5MiB"), 1.5 * 2 ** 20);
  assert.is(parseByteSize("17179869184"), 17179869184);
  for (const bad of ["", "lots", "24 parsecs", "-3GB", "0"]) assert.is(parseByteSize(bad), null, bad);
  assert.is(knownAdapterMemory("NVIDIA H100 80GB HBM3"), 80e9);
  assert.is(knownAdapterMemory("llvmpipe (LLVM 19.1.7, 256 bits)"), null);
});

test("a plan is compared with allocated bytes: relative error and the 5% tolerance", () => {
  const near = comparePlanWithAllocated(1040, 1000);
  assert.ok(near.withinTolerance && Math.abs(near.relativeError - 0.04) < 1e-12, near.summary);
  const far = comparePlanWithAllocated(900, 1000);
  assert.not.ok(far.withinTolerance, far.summary);
});

test.run();
