// ALiBi slopes against Baichuan-13B's _get_interleave run in PyTorch (spec/golden/make_rope_alibi.py)
// and the closed form of models.md §2.2; attention with it equals attention with Baichuan's slope*j.
import { readFileSync } from "node:fs";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Random } from "../../runtime/random.ts";
import { alibiBias, alibiSlopes } from "../../stdlib/kernels/alibi.ts";
import { attentionForwardReference } from "../../stdlib/kernels/attention-reference.ts";
import { assertClose } from "../support/numeric.ts";

const test = suite("alibi");
const fixture = JSON.parse(readFileSync(new URL("../fixtures/rope/rope_alibi.json", import.meta.url), "utf8"));

test("slopes equal the reference's float32 values bit for bit", () => {
  for (const [n, slopes] of Object.entries(fixture.alibi as Record<string, number[]>)) {
    assert.equal(Array.from(alibiSlopes(Number(n))), slopes.map(Math.fround), `${n} heads`);
  }
});

test("40 heads: 2^(-(h+1)/4) for h < 32, then 2^(-(2j+1)/8)", () => {
  const slopes = alibiSlopes(40);
  for (let h = 0; h < 32; h++) assert.is(slopes[h], Math.fround(2 ** (-(h + 1) / 4)), `head ${h}`);
  for (let j = 0; j < 8; j++) assert.is(slopes[32 + j], Math.fround(2 ** (-(2 * j + 1) / 8)), `head ${32 + j}`);
});

test("attention with this bias equals softmax with Baichuan's absolute slope*j bias", () => {
  // One head, causal, T = S = 6, D = 2: Baichuan adds slope*j (models.md §2.2) to the scores.
  const rng = new Random(3);
  const shape = { batch: 1, queryHeads: 1, kvHeads: 1, queryLength: 6, keyLength: 6, headDim: 2 };
  const [q, k, v] = [0, 1, 2].map(() => Float64Array.from({ length: 12 }, () => rng.normal()));
  const slope = alibiSlopes(40)[35];
  const { out } = attentionForwardReference({ shape, q, k, v, scale: 0.5, mask: { causal: true, queryOffset: 0, alibiSlopes: Float32Array.of(slope) } });
  const want = new Float64Array(12);
  for (let i = 0; i < 6; i++) {
    const w = Array.from({ length: i + 1 }, (_, j) => Math.exp(0.5 * (q[2 * i] * k[2 * j] + q[2 * i + 1] * k[2 * j + 1]) + slope * j));
    const sum = w.reduce((a, b) => a + b, 0);
    for (let j = 0; j <= i; j++) for (let d = 0; d < 2; d++) want[2 * i + d] += (w[j] / sum) * v[2 * j + d];
  }
  assertClose(out, want, 1e-12, "ALiBi attention vs slope*j");
  assert.is(alibiBias(slope, 4, 1), slope * -3);
});

test.run();
