// NF4 quantization against the PyTorch reference (spec/golden/make_nf4.py).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { dequantizeNf4, dynamicMap, nf4Levels, quantizeNf4, type DoubleQuantized } from "../../stdlib/quant/nf4.ts";
import { assertClose } from "../support/numeric.ts";

const golden = JSON.parse(readFileSync(join(import.meta.dirname, "..", "fixtures", "quant", "nf4.json"), "utf8"));
const bytes = (b64: string) => new Uint8Array(Buffer.from(b64, "base64"));
const floats = (b64: string) => {
  const b = bytes(b64);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
};

test("NF4 levels and the dynamic map equal the reference tables", () => {
  assert.equal(Array.from(nf4Levels), Array.from(floats(golden.levels)));
  assert.equal(Array.from(dynamicMap()), Array.from(floats(golden.dynamicMap)));
});

for (const c of golden.cases) {
  test(`NF4 codes and absmax equal the reference (${c.length} weights)`, () => {
    const q = quantizeNf4(floats(c.weights), false);
    assert.equal(Array.from(q.codes), Array.from(bytes(c.codes)));
    assert.equal(Array.from(q.absmax as Float32Array), Array.from(floats(c.absmax)));
    assertClose(dequantizeNf4(q), floats(c.dequantized), 1e-7, `dequantized (${c.length})`);
  });

  test(`double quantization equals the reference (${c.length} weights)`, () => {
    const q = quantizeNf4(floats(c.weights), true);
    const dq = q.absmax as DoubleQuantized;
    assert.equal(Array.from(dq.codes), Array.from(bytes(c.absmaxCodes)));
    assert.equal(Array.from(dq.scales), Array.from(floats(c.absmaxScales)));
    assert.is(dq.offset, Math.fround(c.absmaxOffset));
    assertClose(dequantizeNf4(q), floats(c.dequantizedDouble), 1e-6, `dequantized, double-quantized absmax (${c.length})`);
  });
}

test("an all-zero block quantizes to the exact zero level", () => {
  const q = quantizeNf4(new Float32Array(64), false);
  assert.ok(Array.from(dequantizeNf4(q)).every((v) => v === 0));
});

test.run();
