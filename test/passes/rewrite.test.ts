// The rewrite engine and its rule tables: each simplification fires where it should and keeps the
// numbers; folding moves a query scale into attention; CSE merges equal nodes; views compute the
// strides of reshapes that need no copy and refuse the ones that do.
import { test } from "uvu";
import * as assert from "uvu/assert";
import * as b from "../../compiler/ir/build.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import { graph, topoSort, type Graph, type Node } from "../../compiler/ir/node.ts";
import { verifyGraph } from "../../compiler/ir/verify.ts";
import { eliminateCommonSubexpressions, rewriteGraph } from "../../compiler/passes/rewrite.ts";
import { foldRules, simplifyRules } from "../../compiler/passes/simplify.ts";
import { reshapeStrides } from "../../compiler/passes/views.ts";
import { Random } from "../../runtime/random.ts";
import { assertClose } from "../support/numeric.ts";

function feedsFor(g: Graph, seed: number): Map<string, Float64Array> {
  const rng = new Random(seed);
  const feeds = new Map<string, Float64Array>();
  for (const n of topoSort(g.outputs.values())) {
    if (n.op !== "param" && n.op !== "input") continue;
    const size = n.shape.reduce((a, d) => a * d, 1);
    feeds.set(n.attrs.name!, Float64Array.from({ length: size }, () => (n.dtype === "i32" ? rng.int(3) : rng.normal())));
  }
  return feeds;
}

// Rewrites `out`, checks the result verifies and computes the same values, returns its ops.
function simplified(out: Node, label: string): { ops: string[]; fired: Map<string, number>; result: Node } {
  const before = graph([["out", out]]);
  const r = rewriteGraph(before, [...simplifyRules, ...foldRules]);
  assert.equal(verifyGraph(r.graph), []);
  const feeds = feedsFor(before, 3);
  const [x, y] = [interpret(before, feeds), interpret(r.graph, feeds)];
  assert.ok(x.ok && y.ok);
  assertClose(y.value.get("out")!, x.value.get("out")!, 1e-14, label);
  const result = r.graph.outputs.get("out")!;
  return { ops: topoSort([result]).map((n) => n.op), fired: r.fired, result };
}

test("x*1, x+0, x*0, x/c and constant folding disappear", () => {
  const x = b.param("x", [3, 4]);
  const one = b.fill(1, x);
  const messy = b.add(b.mul(b.div(b.mul(x, b.add(one, b.fill(0, x))), b.fill(2, x)), b.fill(4, x)), b.mul(x, b.fill(0, x)));
  const { ops } = simplified(messy, "arithmetic identities");
  assert.equal(ops, ["param", "const", "mul"], "x * 2 is left");
});

test("reshape(reshape), permute(permute), no-op movements and movements of constants fold", () => {
  const x = b.param("x", [2, 3, 4]);
  const moved = b.permute(b.permute(b.reshape(b.reshape(x, [6, 4]), [2, 3, 4]), [2, 0, 1]), [1, 2, 0]);
  const withConst = b.add(moved, b.broadcast(b.constant(1, [1, 3, 1]), [2, 3, 4]));
  const { ops } = simplified(withConst, "movements");
  assert.equal(ops, ["param", "const", "add"]);
});

test("gradients of three slices of one tensor add up to one concat", () => {
  const x = b.param("x", [2, 9]);
  const pad = (g: Node, before: number, after: number) =>
    b.concat([...(before ? [b.constant(0, [2, before])] : []), g, ...(after ? [b.constant(0, [2, after])] : [])], 1);
  const [q, k, v] = [b.exp(b.slice(x, 1, 0, 4)), b.tanh(b.slice(x, 1, 4, 6)), b.neg(b.slice(x, 1, 6, 9))];
  const sum = b.add(b.add(pad(q, 0, 5), pad(k, 4, 3)), pad(v, 6, 0));
  const { result } = simplified(sum, "concat gradients");
  assert.is(result.op, "concat");
  assert.equal(result.inputs.map((i) => i.op), ["exp", "tanh", "neg"]);
});

test("concat of adjacent slices is the slice; sums over neighbouring axes merge", () => {
  const x = b.param("x", [2, 3, 8]);
  const { result } = simplified(b.concat([b.slice(x, 2, 0, 3), b.slice(x, 2, 3, 8)], 2), "adjacent slices");
  assert.is(result, x);
  const { ops } = simplified(b.sum(b.sum(x, 0), 1), "bias gradient");
  assert.equal(ops.filter((o) => o === "sum").length, 1);
});

test("a constant scale on the queries folds into attention's scale", () => {
  const q = b.param("q", [1, 4, 2, 3]);
  const k = b.param("k", [1, 4, 2, 3]);
  const v = b.param("v", [1, 4, 2, 3]);
  const attrs = { scale: 1 / Math.sqrt(3), causal: true, prefix: false, padding: false, segments: false, alibi: false };
  const { result, fired } = simplified(b.attention(b.scale(q, 0.5), k, v, attrs), "attention scale");
  assert.is(fired.get("fold scale into attention"), 1);
  assert.is(result.inputs[0], q);
  assert.ok(Math.abs(result.attrs.attention!.scale - 0.5 / Math.sqrt(3)) < 1e-15);
});

test("common subexpressions merge, and rules that loop are an internal error", () => {
  const x = b.param("x", [4]);
  const g = graph([["a", b.add(b.exp(x), b.exp(x))]]);
  const r = eliminateCommonSubexpressions(g);
  assert.is(r.fired.get("cse"), 1);
  const out = r.graph.outputs.get("a")!;
  assert.is(out.inputs[0], out.inputs[1]);
  const flip = { name: "flip", apply: (n: Node) => (n.op === "neg" ? b.neg(b.neg(n)) : undefined) };
  assert.throws(() => rewriteGraph(graph([["n", b.neg(x)]]), [flip]), /rewrite rules loop/);
});

test("reshape views: split and merge contiguous dims; refuse merging strided ones", () => {
  // (B, T, 3C) slice -> (B, T, C) with strides (T*3C, 3C, 1) -> (B, T, H, D): a view
  assert.equal(reshapeStrides([2, 5, 8], [120, 24, 1], [2, 5, 2, 4]), [120, 24, 4, 1]);
  // contiguous (B, T, H, D) -> (B*T, H*D)
  assert.equal(reshapeStrides([2, 5, 2, 4], [40, 8, 4, 1], [10, 8]), [8, 1]);
  // size-1 dims anywhere
  assert.equal(reshapeStrides([1, 6, 1], [6, 1, 1], [2, 1, 3]), [3, 0, 1]);
  // a transposed (B, H, T, D) -> (B, T, H*D) merge needs a copy
  assert.is(reshapeStrides([2, 5, 2, 4], [40, 4, 20, 1], [2, 5, 8]), undefined);
});

test.run();
