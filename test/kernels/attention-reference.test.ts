// The float64 attention reference checks itself: the hand-derived backward against central finite
// differences of the forward, and masks against their definitions (no GPU needed).
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Random } from "../../runtime/random.ts";
import { alibiSlopes } from "../../stdlib/kernels/alibi.ts";
import { keyAllowed, maskBindings, maskFlags, maskWords, type AttentionMask } from "../../stdlib/kernels/attention-mask.ts";
import { attentionBackwardReference, attentionForwardReference, type AttentionShape } from "../../stdlib/kernels/attention-reference.ts";
import { assertClose } from "../support/numeric.ts";
import { randomValues } from "./gpu-harness.ts";

const test = suite("attention reference");

const shape: AttentionShape = { batch: 2, queryHeads: 4, kvHeads: 2, queryLength: 5, keyLength: 7, headDim: 3 };

const masks: Record<string, AttentionMask> = {
  causal: { causal: true, queryOffset: 2 },
  "prefix + alibi": { causal: true, queryOffset: 2, prefixLengths: Uint32Array.from([4, 0]), alibiSlopes: alibiSlopes(4) },
  "padding + segments": {
    causal: true,
    queryOffset: 2,
    keyRanges: Uint32Array.from([1, 7, 0, 5]),
    segments: Int32Array.from([0, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 1, 2, 2]),
  },
};

for (const [name, mask] of Object.entries(masks)) {
  test(`backward equals finite differences of the forward (${name})`, () => {
    const rng = new Random(5);
    const { batch: B, queryHeads: Hq, kvHeads: Hkv, queryLength: T, keyLength: S, headDim: D } = shape;
    const q = randomValues(rng, B * Hq * T * D, "f32");
    const k = randomValues(rng, B * Hkv * S * D, "f32");
    const v = randomValues(rng, B * Hkv * S * D, "f32");
    const g = randomValues(rng, B * Hq * T * D, "f32");
    const scale = 0.7;
    // loss = sum(O * g), so dLoss/dO = g.
    const loss = () => attentionForwardReference({ shape, q, k, v, scale, mask }).out.reduce((s, o, i) => s + o * g[i], 0);
    const grads = attentionBackwardReference({ shape, q, k, v, scale, mask }, g);
    for (const [label, x, dx] of [["q", q, grads.dq], ["k", k, grads.dk], ["v", v, grads.dv]] as const) {
      const numeric = new Float64Array(x.length);
      for (let i = 0; i < x.length; i++) {
        const keep = x[i];
        x[i] = keep + 1e-6;
        const up = loss();
        x[i] = keep - 1e-6;
        const down = loss();
        x[i] = keep;
        numeric[i] = (up - down) / 2e-6;
      }
      assertClose(dx, numeric, 1e-6, `d${label} ${name}`);
    }
  });
}

test("mask rules: causal, GLM prefix, padding, segments", () => {
  const glm: AttentionMask = { causal: true, queryOffset: 0, prefixLengths: Uint32Array.from([3]) };
  // The prompt (positions 0..2) attends bidirectionally, later tokens causally (models.md §4.2).
  assert.ok(keyAllowed(glm, 6, 0, 0, 2));
  assert.not.ok(keyAllowed(glm, 6, 0, 0, 3));
  assert.ok(keyAllowed(glm, 6, 0, 4, 2));
  assert.not.ok(keyAllowed(glm, 6, 0, 4, 5));
  const padded: AttentionMask = { causal: true, queryOffset: 0, keyRanges: Uint32Array.from([2, 5]) };
  assert.not.ok(keyAllowed(padded, 6, 0, 4, 1));
  assert.not.ok(keyAllowed(padded, 6, 0, 5, 5));
  assert.ok(keyAllowed(padded, 6, 0, 4, 3));
  const packed: AttentionMask = { causal: true, queryOffset: 0, segments: Int32Array.from([0, 0, 1, 1]) };
  assert.not.ok(keyAllowed(packed, 4, 0, 2, 1));
  assert.ok(keyAllowed(packed, 4, 0, 3, 2));
});

test("the mask's words: slopes, batch info and segments, each where the variant declares it", () => {
  for (const mask of Object.values(masks)) assert.is(maskWords(mask, 2, 7) !== undefined, maskBindings(maskFlags(mask)).length === 1);
  assert.is(maskWords(masks.causal, 2, 7), undefined);
  const packed = maskWords(masks["padding + segments"], 2, 7)!;
  // [key start, key end, prefix, unused] per row, then the segment ids
  assert.equal(Array.from(packed), [1, 7, 0, 0, 0, 5, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 1, 2, 2]);
  const glm = maskWords(masks["prefix + alibi"], 2, 7)!;
  assert.equal(Array.from(new Float32Array(glm.buffer, 0, 4)), Array.from(alibiSlopes(4)));
  assert.equal(Array.from(glm.subarray(4)), [0, 7, 4, 0, 0, 7, 0, 0]);
  // ALiBi and segments without batch_info: the segment ids follow the slopes
  const segments = masks["padding + segments"].segments!;
  const alibiPacked = maskWords({ causal: true, queryOffset: 2, alibiSlopes: alibiSlopes(4), segments }, 2, 7)!;
  assert.equal(Array.from(new Float32Array(alibiPacked.buffer, 0, 4)), Array.from(alibiSlopes(4)));
  assert.equal(Array.from(alibiPacked.subarray(4)), Array.from(segments));
});

test("a query row that sees no key gives zeros, lse -inf and no gradient", () => {
  const one: AttentionShape = { batch: 1, queryHeads: 1, kvHeads: 1, queryLength: 3, keyLength: 3, headDim: 2 };
  const mask: AttentionMask = { causal: true, queryOffset: 0, keyRanges: Uint32Array.from([2, 3]) }; // left padding of 2
  const ones = new Float64Array(6).fill(1);
  const fwd = attentionForwardReference({ shape: one, q: ones, k: ones, v: Float64Array.from([1, 2, 3, 4, 5, 6]), scale: 1, mask });
  assert.equal(Array.from(fwd.logSumExp.slice(0, 2)), [-Infinity, -Infinity]);
  assert.equal(Array.from(fwd.out), [0, 0, 0, 0, 5, 6]);
  const grads = attentionBackwardReference({ shape: one, q: ones, k: ones, v: ones, scale: 1, mask }, ones);
  assert.equal(Array.from(grads.dq.slice(0, 4)), [0, 0, 0, 0]);
});

test.run();
