// Per-op gradient checks: each op (and each variant of the fused ops) inside a weighted-sum loss,
// autodiff in float64 against central finite differences on every entry.
import { test } from "uvu";
import * as assert from "uvu/assert";
import * as b from "../../compiler/ir/build.ts";
import { numel, topoSort, type AttentionAttrs, type Node, type RopeAttrs } from "../../compiler/ir/node.ts";
import { Random } from "../../runtime/random.ts";
import { checkGradients } from "./check-gradients.ts";

interface Case {
  out: Node;
  params: Node[];
  /** Integer inputs (ids, positions, labels, masks) by name. */
  ints?: Record<string, number[]>;
}

// loss = Σ out ⊙ w with a fixed random w, so every output entry matters.
function check(label: string, build: () => Case): void {
  test(`${label}: gradients match finite differences`, () => {
    const { out, params, ints = {} } = build();
    const w = b.input("loss_weight", out.shape);
    const flat = b.reshape(b.mul(out, w), [numel(out.shape)]);
    const loss = b.reshape(b.sum(flat, 0), []);
    const rng = new Random(11);
    const feeds = new Map<string, Float64Array>();
    for (const p of topoSort([loss]).filter((n) => n.op === "param")) feeds.set(p.attrs.name!, Float64Array.from({ length: numel(p.shape) }, () => rng.normal()));
    feeds.set("loss_weight", Float64Array.from({ length: numel(out.shape) }, () => rng.normal()));
    for (const [name, values] of Object.entries(ints)) feeds.set(name, Float64Array.from(values));
    checkGradients(loss, params, feeds, { samples: 40, tolerance: 1e-6, seed: 5, label });
  });
}

const x = () => b.param("x", [2, 3, 4]);
const y = () => b.param("y", [2, 3, 4]);

for (const op of ["neg", "exp", "tanh", "sigmoid", "silu", "geluTanh"] as const) check(op, () => {
  const p = x();
  return { out: b[op](p), params: [p] };
});
// log, sqrt and rsqrt need positive inputs
for (const op of ["log", "sqrt", "rsqrt"] as const) check(op, () => {
  const p = x();
  return { out: b[op](b.exp(p)), params: [p] };
});
for (const op of ["add", "sub", "mul", "div", "maximum"] as const) check(op, () => {
  const [p, q] = [x(), y()];
  return { out: b[op](p, op === "div" ? b.exp(q) : q), params: [p, q] };
});
check("where", () => {
  const [p, q] = [x(), y()];
  return { out: b.where(b.greater(p, q), b.mul(p, p), q), params: [p, q] };
});
check("cast", () => {
  const p = x();
  return { out: b.cast(b.cast(p, "f16"), "f32"), params: [p] };
});
for (const op of ["sum", "mean", "reduceMax"] as const)
  for (const axis of [0, 1, 2]) check(`${op} axis ${axis}`, () => {
    const p = x();
    return { out: b[op](p, axis), params: [p] };
  });
check("reshape, permute, slice, concat, broadcast", () => {
  const [p, q] = [x(), b.param("q", [2, 1, 4])];
  const moved = b.permute(b.reshape(p, [2, 3, 2, 2]), [2, 0, 3, 1]); // (2, 2, 2, 3)
  const joined = b.concat([b.slice(p, 1, 1, 3), b.broadcast(q, [2, 3, 4])], 1); // (2, 5, 4)
  return { out: b.concat([b.reshape(moved, [2, 12]), b.reshape(joined, [2, 20])], 1), params: [p, q] };
});
for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]])
  check(`matmul transA=${transA} transB=${transB}, batched`, () => {
    const p = b.param("a", transA ? [2, 4, 3] : [2, 3, 4]);
    const q = b.param("b", transB ? [2, 5, 4] : [2, 4, 5]);
    return { out: b.matmul(p, q, { transA, transB }), params: [p, q] };
  });
for (const transB of [false, true])
  check(`matmul with a shared 2-D right operand, transB=${transB}`, () => {
    const p = b.param("a", [2, 3, 4]);
    const q = b.param("b", transB ? [5, 4] : [4, 5]);
    return { out: b.matmul(p, q, { transB }), params: [p, q] };
  });
test("a matmul of f32 activations by bf16 weights is f32; its weight gradient is f32", async () => {
  const { gradients } = await import("../../compiler/autodiff/grad.ts");
  const x = b.param("x", [2, 3, 4]);
  const w = b.param("w", [5, 4], "bf16");
  const y = b.matmul(x, w, { transB: true });
  assert.is(y.dtype, "f32");
  const grads = gradients(b.reshape(b.sum(b.reshape(y, [30]), 0), []), [x, w]);
  assert.ok(grads.ok);
  assert.equal([grads.value.get(x)!.dtype, grads.value.get(w)!.dtype], ["f32", "f32"]);
});
check("embedding (repeated ids accumulate)", () => {
  const table = b.param("table", [5, 3]);
  return { out: b.embedding(table, b.input("ids", [2, 3], "i32")), params: [table], ints: { ids: [1, 4, 1, 0, 1, 3] } };
});
check("rms_norm", () => {
  const [p, w] = [x(), b.param("w", [4])];
  return { out: b.rmsNorm(p, w, 1e-5), params: [p, w] };
});
check("layer_norm", () => {
  const [p, w, bias] = [x(), b.param("w", [4]), b.param("bias", [4])];
  return { out: b.layerNorm(p, w, bias, 1e-5), params: [p, w, bias] };
});

const ropeCases: [string, Partial<RopeAttrs>][] = [
  ["half, full rotation", { style: "half", rotaryDim: 8 }],
  ["interleaved, partial", { style: "interleaved", rotaryDim: 4 }],
  ["half, GLM 2-D", { style: "half", rotaryDim: 4, sections: 2 }],
  ["interleaved inverse", { style: "interleaved", rotaryDim: 8, inverse: true }],
];
for (const [name, attrs] of ropeCases) check(`rope ${name}`, () => {
  const r: RopeAttrs = { style: "half", rotaryDim: 8, sections: 1, base: 10000, inverse: false, ...attrs };
  const p = b.param("x", [2, 3, 2, 8]);
  const positions = Array.from({ length: 2 * 3 * r.sections }, (_, i) => (i * 7) % 5);
  return { out: b.rope(p, b.input("positions", [2, 3, r.sections], "i32"), r), params: [p], ints: { positions } };
});

const attentionCases: [string, Partial<AttentionAttrs>, number, number, Record<string, number[]>][] = [
  ["causal", {}, 2, 2, {}],
  ["causal GQA (4 query heads, 2 kv heads) with ALiBi", { alibi: true }, 4, 2, {}],
  ["multi-query (1 kv head), bidirectional", { causal: false }, 2, 1, {}],
  ["GLM prefix", { prefix: true }, 2, 2, { prefix_len: [2, 3] }],
  ["left and right padding", { padding: true }, 2, 2, { key_range: [0, 3, 1, 4] }],
  ["packed segments", { segments: true }, 2, 2, { segment_ids: [0, 0, 1, 1, 0, 1, 1, 1] }],
];
for (const [name, attrs, hq, hkv, masks] of attentionCases)
  for (const wrt of ["q", "k", "v"]) check(`attention ${name}, d${wrt}`, () => {
    const a: AttentionAttrs = { scale: 0.7, causal: true, prefix: false, padding: false, segments: false, alibi: false, ...attrs };
    const q = b.param("q", [2, 4, hq, 3]);
    const k = b.param("k", [2, 4, hkv, 3]);
    const v = b.param("v", [2, 4, hkv, 3]);
    const inputs = [...(a.prefix ? [b.input("prefix_len", [2], "i32")] : []), ...(a.padding ? [b.input("key_range", [2, 2], "i32")] : []), ...(a.segments ? [b.input("segment_ids", [2, 4], "i32")] : [])];
    const all = { q, k, v };
    return { out: b.attention(q, k, v, a, inputs), params: [all[wrt as keyof typeof all]], ints: masks };
  });
check("cross_entropy with ignored labels", () => {
  const logits = b.param("logits", [4, 5]);
  return { out: b.reshape(b.crossEntropy(logits, b.input("labels", [4], "i32")), [1]), params: [logits], ints: { labels: [3, -100, 0, 4] } };
});

test("a frozen weight off the trainable path gets no backward work", async () => {
  const { gradients } = await import("../../compiler/autodiff/grad.ts");
  const frozen = b.param("frozen", [3, 4]);
  const adapter = b.param("adapter", [3, 4]);
  const h = b.add(b.mul(b.exp(frozen), b.param("input", [3, 4])), adapter);
  const loss = b.reshape(b.sum(b.reshape(h, [12]), 0), []);
  const grads = gradients(loss, [adapter]);
  assert.ok(grads.ok);
  const backward = topoSort([grads.value.get(adapter)!]);
  assert.ok(!backward.some((n) => n.op === "exp" || n.op === "mul"), "no gradient flows into the frozen branch");
});

test("differentiating a non-parameter is an SFT4004 error value", async () => {
  const { gradients } = await import("../../compiler/autodiff/grad.ts");
  const p = x();
  const r = gradients(b.reshape(b.sum(b.reshape(p, [24]), 0), []), [b.exp(p)]);
  assert.not.ok(r.ok);
  assert.is(r.diagnostics[0].code, "SFT4004");
});

test.run();
