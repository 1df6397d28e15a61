// Fusion is a tested property: the launches per transformer layer, forward and backward, for each
// family's tiny stand-in, counted by library kernel. A count that grows fails here.
import { test } from "uvu";
import * as assert from "uvu/assert";
import * as b from "../../compiler/ir/build.ts";
import { graph } from "../../compiler/ir/node.ts";
import { kernelCount } from "../../compiler/passes/print-schedule.ts";
import { build, compile, difference, launchCounts } from "./compile-support.ts";

const attentionBackward = { attention_backward_delta: 1, attention_backward_dkdv: 1, attention_backward_dq: 1 };
const rmsBackward = { rmsnorm_backward_input: 2, rmsnorm_backward_weight: 2 };

// Per layer. Forward: norms, QKV (+ bias epilogue), Q and K rotations read straight out of the
// QKV buffer, flash attention, the output projection with the residual in its epilogue, the MLP
// with SwiGLU in one kernel or GELU after a bias epilogue, the down projection with bias and
// residual epilogues (GLM's alpha·LN(x) residual as beta·C). Backward: dX and dW per projection,
// two launches per norm (dx; dw and db), the activation's backward and the Q/K/V gradient gather
// as generated kernels, the residual gradient sums (two per pre-norm layer, folded into matmul
// epilogues for GLM and MOSS) and the bias gradients as generated kernels.
const expected: Record<string, { forward: Record<string, number>; backward: Record<string, number> }> = {
  "baichuan-7b": {
    forward: { attention_forward: 1, matmul_tiled: 4, rmsnorm_forward: 2, rope: 2, swiglu_forward: 1 },
    backward: { ...attentionBackward, ...rmsBackward, fused_elementwise: 4, matmul_tiled: 8, rope: 2 },
  },
  "baichuan-13b": {
    forward: { attention_forward: 1, matmul_tiled: 4, rmsnorm_forward: 2, swiglu_forward: 1 },
    backward: { ...attentionBackward, ...rmsBackward, fused_elementwise: 4, matmul_tiled: 8 },
  },
  moss: {
    forward: { attention_forward: 1, gelu_tanh_forward: 1, layernorm_forward: 1, matmul_tiled: 4, rope: 2 },
    backward: { ...attentionBackward, fused_elementwise: 3, fused_reduce: 3, layernorm_backward_input: 1, layernorm_backward_weight: 1, matmul_tiled: 8, rope: 2 },
  },
  chatglm: {
    forward: { attention_forward: 1, gelu_tanh_forward: 1, layernorm_forward: 2, matmul_tiled: 4, rope: 2 },
    backward: { ...attentionBackward, fused_elementwise: 2, fused_reduce: 3, layernorm_backward_input: 2, layernorm_backward_weight: 2, matmul_tiled: 8, rope: 2 },
  },
  chatglm2: {
    forward: { attention_forward: 1, matmul_tiled: 4, rmsnorm_forward: 2, rope: 2, swiglu_forward: 1 },
    backward: { ...attentionBackward, ...rmsBackward, fused_elementwise: 4, fused_reduce: 1, matmul_tiled: 8, rope: 2 },
  },
};

for (const [family, want] of Object.entries(expected)) {
  test(`${family}: launches per layer, forward and backward`, () => {
    const [one, two] = [build(family, 1), build(family, 2)];
    const [f1, f2] = [compile(one.forward), compile(two.forward)];
    const [t1, t2] = [compile(one.training), compile(two.training)];
    const forward = Object.fromEntries(difference(launchCounts(f2), launchCounts(f1)));
    // backward launches of a model = training launches − forward launches
    const backwardOf = (t: typeof t1, f: typeof f1) => difference(launchCounts(t), launchCounts(f));
    const backward = Object.fromEntries(difference(backwardOf(t2, f2), backwardOf(t1, f1)));
    const total = (r: Record<string, number>) => Object.values(r).reduce((s, v) => s + v, 0);
    console.log(`    ${family}: ${total(forward)} forward launches per layer ${JSON.stringify(forward)}`);
    console.log(`    ${family}: ${total(backward)} backward launches per layer ${JSON.stringify(backward)}`);
    assert.equal(forward, want.forward);
    assert.equal(backward, want.backward);
  });
}

test("frozen weights cost no backward work beyond the chain to the trainable ones", async () => {
  const { trainingGraph } = await import("../../compiler/autodiff/grad.ts");
  const m = build("baichuan-7b", 2);
  const only = (names: string[]) => {
    const t = trainingGraph(m.model.loss, m.model.params.filter((p) => names.includes(p.attrs.name!)));
    assert.ok(t.ok);
    return Object.fromEntries(difference(launchCounts(compile(t.value.graph)), launchCounts(compile(m.forward))));
  };
  // the last down projection: the head's dX, the final norm's dx, then one dW
  assert.equal(only(["layers.1.mlp.down.weight"]), { matmul_tiled: 2, rmsnorm_backward_input: 1 });
  // a first-layer weight pulls the dX chain through every layer above, but no other dW
  const deep = only(["layers.0.attn.qkv.weight"]);
  assert.is(deep.embedding_backward, undefined);
  // head dX; layer 1: dX of down, gate_up, out and qkv; layer 0: dX of down, gate_up and out; the one dW
  assert.is(deep.matmul_tiled, 1 + 4 + 3 + 1);
});

test("an elementwise chain is one kernel: y.sum().sqrt().neg() style", () => {
  const x = b.param("x", [4, 8]);
  const y = b.neg(b.sqrt(b.add(b.exp(b.mul(x, x)), b.fill(1, x))));
  assert.is(kernelCount(compile(graph([["y", y]])).schedule), 1);
});

test("matmul + bias + residual is one kernel; silu(a) * b is one swiglu kernel", () => {
  const x = b.param("x", [2, 3, 8]);
  const w = b.param("w", [8, 8]);
  const bias = b.param("bias", [8]);
  const mm = b.matmul(x, w, { transB: true });
  const h = b.add(x, b.add(mm, b.expandTo(bias, mm.shape)));
  const c = compile(graph([["h", h]]));
  assert.is(kernelCount(c.schedule), 1);
  assert.equal(c.schedule.launches[0].epilogue, ["bias", "residual"]);
  const gateUp = b.param("gu", [2, 3, 16]);
  const act = b.mul(b.silu(b.slice(gateUp, 2, 0, 8)), b.slice(gateUp, 2, 8, 16));
  const s = compile(graph([["act", act]])).schedule;
  assert.equal(s.launches.map((l) => l.launches[0]), ["swiglu_forward"]);
});

test("matmul epilogues follow the kernel's formula alpha·AB + bias + beta·C", () => {
  const x = b.param("x", [2, 3, 8]);
  const w = b.param("w", [8, 8]);
  const bias = b.expandTo(b.param("bias", [8]), [2, 3, 8]);
  const epilogueOf = (out: ReturnType<typeof b.add>) => compile(graph([["y", out]])).schedule.launches.map((l) => l.epilogue);
  const mm = () => b.matmul(x, w, { transB: true });
  assert.equal(epilogueOf(b.add(b.scale(mm(), 0.5), bias)), [["alpha", "bias"]]);
  // a scale after the bias is not alpha: it runs as its own kernel
  assert.equal(epilogueOf(b.scale(b.add(mm(), bias), 0.5)), [["bias"], []]);
  // one residual per launch
  assert.equal(epilogueOf(b.add(b.add(mm(), x), b.param("r", [2, 3, 8]))), [["residual"], []]);
});

test("a small-K matmul added to a matmul (a LoRA up-projection) runs in its epilogue; not when read twice or next to a single row", () => {
  const x = b.param("x", [64, 48]);
  const w = b.param("w", [40, 48]);
  const t = b.param("t", [64, 4]);
  const l = b.param("l", [40, 4]);
  const epilogues = (outs: [string, ReturnType<typeof b.add>][]) => compile(graph(outs)).schedule.launches.map((launch) => launch.epilogue);
  // either operand order of the add
  assert.equal(epilogues([["y", b.add(b.matmul(x, w, { transB: true }), b.matmul(t, l, { transB: true }))]]), [["low-rank"]]);
  assert.equal(epilogues([["y", b.add(b.matmul(t, l, { transB: true }), b.matmul(x, w, { transB: true }))]]), [["low-rank"]]);
  // an output of its own keeps its buffer and launch; the add takes it as a residual
  const shared = b.matmul(t, l, { transB: true });
  const twice = epilogues([["y", b.add(b.matmul(x, w, { transB: true }), shared)], ["lr", shared]]);
  assert.is(twice.length, 2);
  assert.ok(!twice.flat().includes("low-rank"));
  // one row, as in decoding: K = 4 is not small next to it
  const row = (name: string, k: number) => b.param(name, [1, k]);
  const decode = epilogues([["y", b.add(b.matmul(row("xr", 48), w, { transB: true }), b.matmul(row("tr", 4), l, { transB: true }))]]);
  assert.is(decode.length, 2);
  assert.ok(!decode.flat().includes("low-rank"));
});

test("a view the kernel cannot read is copied first; one it can read costs nothing", () => {
  const x = b.param("x", [2, 4, 2, 8]);
  const w = b.param("w", [8]);
  // rms_norm needs rows contiguous: a (B, H, T, D) permute of x must be copied
  const permuted = compile(graph([["y", b.rmsNorm(b.permute(x, [0, 2, 1, 3]), w, 1e-5)]])).schedule;
  assert.equal(permuted.launches.map((l) => l.launches[0]), ["fused_elementwise", "rmsnorm_forward"]);
  // a reshape of a contiguous buffer is a view
  const reshaped = compile(graph([["y", b.rmsNorm(b.reshape(x, [16, 8]), w, 1e-5)]])).schedule;
  assert.equal(reshaped.launches.map((l) => l.launches[0]), ["rmsnorm_forward"]);
});

test.run();
