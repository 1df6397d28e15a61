// cached_attention, a decode step's attention over the KV cache read in place and the new key and
// value apart (compiler/ir/node.ts): the interpreter equals attention over the keys written out
// by hand (each row's cached positions up to its key range's end, then the new one; whatever the
// cache holds after that is ignored), with left padding, GQA, GLM's prefix and ALiBi; the
// schedule's launch counts the keys as the launch does (the cache's and the new one); the GPU
// (the appended decode kernels, several splits, the new key a strided view of a fused
// projection) equals the interpreter, over an f32 cache and an f16 one (f32 activations); and the
// KV append kernel writes each row's new key and value where the reference puts them, rounded to
// an f16 cache's dtype.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as b from "../../compiler/ir/build.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import { graph, type Node } from "../../compiler/ir/node.ts";
import { compileGraph } from "../../compiler/passes/compile.ts";
import { GraphExecutor } from "../../runtime/execute/executor.ts";
import { callOf } from "../../runtime/execute/library/attention-call.ts";
import { CommandBatch } from "../../runtime/gpu/batch.ts";
import { readFloats, uploadTensor } from "../../runtime/gpu/tensor.ts";
import { Random } from "../../runtime/random.ts";
import type { AttentionAttrs } from "../../compiler/ir/node.ts";
import { kvAppendKernel, kvAppendRef, kvAppendUniforms } from "../../stdlib/kernels/kv-append.ts";
import { roundToDType } from "../../stdlib/kernels/dtype.ts";
import { runOnGpu } from "../execute/support.ts";
import { assertClose } from "../support/numeric.ts";
import { expectOk } from "../support/result.ts";
import { withGpu } from "./gpu-harness.ts";

const test = suite("cached attention");

interface Case {
  label: string;
  batch: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  /** The cache's capacity. */
  capacity: number;
  /** Each row's key range [start, end): cached positions [start, end - 1), the new key at end - 1. */
  ranges: [number, number][];
  prefix?: number[];
  alibi?: boolean;
}

const CASES: Case[] = [
  { label: "one row, GQA", batch: 1, heads: 4, kvHeads: 2, headDim: 16, capacity: 8, ranges: [[0, 6]] },
  { label: "left-padded rows, several splits", batch: 3, heads: 2, kvHeads: 2, headDim: 32, capacity: 96, ranges: [[0, 81], [17, 81], [80, 81]] },
  { label: "a full cache", batch: 2, heads: 2, kvHeads: 1, headDim: 8, capacity: 40, ranges: [[3, 41], [0, 41]] },
  { label: "GLM prefix", batch: 2, heads: 2, kvHeads: 2, headDim: 16, capacity: 24, ranges: [[0, 20], [5, 20]], prefix: [7, 12] },
  { label: "ALiBi", batch: 2, heads: 4, kvHeads: 4, headDim: 16, capacity: 64, ranges: [[0, 50], [9, 50]], alibi: true },
];

const attrsOf = (c: Case): AttentionAttrs => ({ scale: 1 / Math.sqrt(c.headDim), causal: true, prefix: c.prefix !== undefined, padding: true, segments: false, alibi: c.alibi ?? false });

// The case's graph: the new key and value are slices of one fused (B, 1, 2 KV, D) projection, as a
// fused K|V linear would give them; masks as the attention attributes ask.
// The cache is in `cache`'s dtype.
function cachedGraph(c: Case, cache: "f32" | "f16" = "f32"): { out: Node; masks: Node[] } {
  const { batch: B, heads, kvHeads: KV, headDim: D, capacity } = c;
  const fused = b.input("fused", [B, 1, 2 * KV, D]);
  const masks = [...(c.prefix ? [b.input("prefix", [B], "i32")] : []), b.input("range", [B, 2], "i32")];
  const past = (name: string) => b.input(name, [B, capacity, KV, D], cache);
  const out = b.cachedAttention(b.input("q", [B, 1, heads, D]), past("k_past"), past("v_past"), b.slice(fused, 2, 0, KV), b.slice(fused, 2, KV, 2 * KV), attrsOf(c), masks);
  return { out, masks };
}

function feedsOf(c: Case, seed: number): Map<string, Float64Array> {
  const random = new Random(seed);
  const { batch: B, heads, kvHeads: KV, headDim: D, capacity } = c;
  return new Map([
    ["q", Float64Array.from(random.normalArray(B * heads * D))],
    // positions past each row's end hold values that must not be read
    ["k_past", Float64Array.from(random.normalArray(B * capacity * KV * D))],
    ["v_past", Float64Array.from(random.normalArray(B * capacity * KV * D))],
    ["fused", Float64Array.from(random.normalArray(B * 2 * KV * D))],
    ["range", Float64Array.from(c.ranges.flat())],
    ...(c.prefix ? [["prefix", Float64Array.from(c.prefix)] as [string, Float64Array]] : []),
  ]);
}

// Attention over the keys written out by hand: row b's cached positions [0, end - 1), then its new
// key and value (from the fused projection); the query at the last position.
function byHand(c: Case, feeds: Map<string, Float64Array>): Float64Array {
  const { batch: B, heads, kvHeads: KV, headDim: D, capacity } = c;
  const width = KV * D;
  const keys = new Float64Array(B * (capacity + 1) * width);
  const values = new Float64Array(B * (capacity + 1) * width);
  const fused = feeds.get("fused")!;
  c.ranges.forEach(([, end], r) => {
    for (let i = 0; i < (end - 1) * width; i++) {
      keys[r * (capacity + 1) * width + i] = feeds.get("k_past")![r * capacity * width + i];
      values[r * (capacity + 1) * width + i] = feeds.get("v_past")![r * capacity * width + i];
    }
    for (let i = 0; i < width; i++) {
      keys[(r * (capacity + 1) + end - 1) * width + i] = fused[r * 2 * width + i];
      values[(r * (capacity + 1) + end - 1) * width + i] = fused[r * 2 * width + width + i];
    }
  });
  const masks = [...(c.prefix ? [b.input("prefix", [B], "i32")] : []), b.input("range", [B, 2], "i32")];
  const out = b.attention(b.input("q", [B, 1, heads, D]), b.input("k_all", [B, capacity + 1, KV, D]), b.input("v_all", [B, capacity + 1, KV, D]), attrsOf(c), masks);
  const all = new Map([...feeds, ["k_all", keys], ["v_all", values]]);
  return expectOk(interpret(graph([["out", out]]), all)).get("out")!;
}

test("the interpreter: attention over each row's cached positions up to its key range's end, then the new key", () => {
  CASES.forEach((c, i) => {
    const feeds = feedsOf(c, 700 + i);
    const got = expectOk(interpret(graph([["out", cachedGraph(c).out]]), feeds)).get("out")!;
    assertClose(got, byHand(c, feeds), 1e-12, `${c.label} (interpreter vs by hand)`);
  });
});

test("the schedule's launch counts the cache's keys and the new one, as the launch's call does", () => {
  for (const c of CASES) {
    const { out } = cachedGraph(c);
    const launch = expectOk(compileGraph(graph([["out", out]]))).schedule.launches.find((l) => l.kernel === "cached_attention");
    assert.ok(launch, `${c.label}: a cached_attention launch`);
    assert.is(launch.uniforms.keys, c.capacity + 1, c.label);
    assert.is(launch.uniforms.keys, callOf(out, 0).shape.keyLength, c.label);
  }
});

test(
  "the GPU (appended decode kernels) equals the interpreter, the new key a strided view",
  withGpu(async (gpu) => {
    for (const [i, c] of CASES.entries()) {
      const feeds = feedsOf(c, 700 + i);
      const g = graph([["out", cachedGraph(c).out]]);
      const want = expectOk(interpret(g, feeds)).get("out")!;
      const run = await runOnGpu(gpu, g, feeds);
      assert.ok(run.kernelKeys.some((k) => k.startsWith("attention_decode_split")), "the decode kernels run");
      assertClose(run.outputs.get("out")!, want, 1e-5, `${c.label} (GPU vs interpreter)`);
    }
  }),
);

test(
  "the GPU over an f16 cache (f32 query and new key) equals the interpreter over the cache rounded to f16",
  withGpu(async (gpu) => {
    for (const [i, c] of CASES.entries()) {
      const feeds = feedsOf(c, 700 + i);
      for (const name of ["k_past", "v_past"]) feeds.set(name, roundToDType("f16", feeds.get(name)!));
      const g = graph([["out", cachedGraph(c, "f16").out]]);
      const want = expectOk(interpret(g, feeds)).get("out")!;
      const run = await runOnGpu(gpu, g, feeds);
      assert.ok(run.kernelKeys.some((k) => k.startsWith("attention_decode_split")), "the decode kernels run");
      assertClose(run.outputs.get("out")!, want, 1e-5, `${c.label} (GPU over an f16 cache vs interpreter)`);
    }
  }),
);

test("an f16 cache beside f32 keys is declared; other mixes are refused", () => {
  const c = CASES[0];
  assert.is(cachedGraph(c, "f16").out.dtype, "f32");
  const [B, KV, D] = [c.batch, c.kvHeads, c.headDim];
  const range = [b.input("range", [B, 2], "i32")];
  const input = (name: string, length: number, dtype: "f32" | "f16") => b.input(name, [B, length, name === "q" ? c.heads : KV, D], dtype);
  const cached = (q: "f32" | "f16", kPast: "f32" | "f16", vPast: "f32" | "f16", kNew: "f32" | "f16") =>
    b.cachedAttention(input("q", 1, q), input("k_past", c.capacity, kPast), input("v_past", c.capacity, vPast), input("k", 1, kNew), input("v", 1, q), attrsOf(c), range);
  assert.is(cached("f16", "f16", "f16", "f16").dtype, "f16", "one dtype throughout");
  assert.throws(() => cached("f16", "f32", "f32", "f16"), /the cache's keys and values share one dtype: q's, or f16/, "an f32 cache beside f16 queries");
  assert.throws(() => cached("f32", "f16", "f32", "f32"), /the cache's keys and values share one dtype/, "keys and values of different dtypes");
  assert.throws(() => cached("f32", "f16", "f16", "f16"), /q and the new key and value share one dtype/, "a new key unlike the query");
});

test(
  "on the GPU, a key range that would read outside a row (an end of 0 or past the capacity plus one) is SFT4005, not a silent read",
  withGpu(async (gpu) => {
    const c = CASES[0];
    const compiled = expectOk(compileGraph(graph([["out", cachedGraph(c).out]])));
    const executor = expectOk(GraphExecutor.create(gpu, compiled.schedule));
    try {
      for (const end of [0, c.capacity + 2]) {
        for (const [name, values] of feedsOf(c, 9)) executor.write(name, name === "range" ? Float64Array.of(0, end) : values);
        const ran = await executor.run();
        assert.ok(!ran.ok && ran.diagnostics[0].code === "SFT4005", `end ${end}`);
        assert.match(ran.diagnostics[0].message, `row 0's key range [0, ${end})`);
      }
    } finally {
      executor.destroy();
    }
  }),
);

test(
  "the KV append kernel writes each row's new key and value at the column, from strided views, and nothing else",
  withGpu(async (gpu) => {
    const random = new Random(77);
    const [B, heads, headDim, rowLength, column] = [3, 2, 8, 10, 6];
    const width = heads * headDim;
    // a fused (B, 1, 3 heads' q|k|v) projection with the heads interleaved, as ChatGLM's and MOSS's
    const fused = Float64Array.from(random.normalArray(B * heads * 3 * headDim));
    const keys = { offset: headDim, batchStride: heads * 3 * headDim, tokenStride: 0, headStride: 3 * headDim };
    const values = { ...keys, offset: 2 * headDim };
    const cacheK = Float64Array.from(random.normalArray(B * rowLength * width));
    const cacheV = Float64Array.from(random.normalArray(B * rowLength * width));
    const shape = { batch: B, heads, headDim, rowLength, column };
    const tensors = {
      k_new: uploadTensor(gpu, "f32", [fused.length], fused),
      v_new: uploadTensor(gpu, "f32", [fused.length], fused),
      k_cache: uploadTensor(gpu, "f32", [cacheK.length], cacheK),
      v_cache: uploadTensor(gpu, "f32", [cacheV.length], cacheV),
    };
    const batch = new CommandBatch(gpu);
    batch.dispatch(kvAppendKernel(), kvAppendUniforms(shape, keys, values), tensors);
    await batch.submit();
    // a copy: exactly the reference's values, the cache's others untouched
    assert.equal(Array.from(await readFloats(gpu, tensors.k_cache)), Array.from(kvAppendRef(Float32Array.from(cacheK), Float32Array.from(fused), keys, shape)), "keys");
    assert.equal(Array.from(await readFloats(gpu, tensors.v_cache)), Array.from(kvAppendRef(Float32Array.from(cacheV), Float32Array.from(fused), values, shape)), "values");
    for (const t of Object.values(tensors)) t.destroy();

    // into an f16 cache: the new values rounded (to nearest; either neighbour where the WGSL
    // conversion differs, one f16 step), the cache's others untouched
    const half = {
      ...tensors,
      k_cache: uploadTensor(gpu, "f16", [cacheK.length], cacheK),
      v_cache: uploadTensor(gpu, "f16", [cacheV.length], cacheV),
      k_new: uploadTensor(gpu, "f32", [fused.length], fused),
      v_new: uploadTensor(gpu, "f32", [fused.length], fused),
    };
    const into = new CommandBatch(gpu);
    into.dispatch(kvAppendKernel("f16"), kvAppendUniforms(shape, keys, values), half);
    await into.submit();
    for (const [name, cache, view] of [["k_cache", cacheK, keys], ["v_cache", cacheV, values]] as const) {
      const want = kvAppendRef(roundToDType("f16", cache), Float32Array.from(fused), view, shape, "f16");
      const got = await readFloats(gpu, half[name]);
      const changed = want.filter((w, at) => w !== roundToDType("f16", [cache[at]])[0]).length;
      assert.is(changed, B * width, `${name}: one new position per row`);
      assertClose(got, want, 2 ** -11, `${name} (f16)`);
    }
    for (const t of Object.values(half)) t.destroy();
  }),
);

test.run();
