// Launch kinds the family models do not reach, on small graphs run by the executor against the
// float64 interpreter (forward and training graphs): matmul epilogues with alpha, bias and a
// scaled residual, operands read through transposed and offset views (the latter copied), fused
// attention with every mask (causal, GLM prefix, padding, packed segments), GQA and ALiBi; new
// i32 inputs between runs; a checkpointed schedule; and the errors for inputs and launches the
// runtime cannot run.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { trainingGraph } from "../../compiler/autodiff/grad.ts";
import * as ir from "../../compiler/ir/build.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import { graph, type AttentionAttrs, type Node } from "../../compiler/ir/node.ts";
import { compileGraph } from "../../compiler/passes/compile.ts";
import { GraphExecutor } from "../../runtime/execute/executor.ts";
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { Random } from "../../runtime/random.ts";
import { withGpu } from "../kernels/gpu-harness.ts";
import { feedsFor, loadFixture } from "../models/support.ts";
import { assertClose, relativeError } from "../support/numeric.ts";
import { expectError, expectOk } from "../support/result.ts";
import { attentionMaskInputs, feedsOf, fixtureGraph, runOnGpu, trainingOf } from "./support.ts";

/** A scalar loss over `x` (rows, cols): cross-entropy against fixed labels (one ignored). */
function lossOf(x: Node): { loss: Node; labels: Node } {
  const [rows] = x.shape;
  const labels = ir.input("labels", [rows], "i32");
  return { loss: ir.crossEntropy(x, labels), labels };
}

/** Runs the training graph of `loss` over `params` on the GPU; every output within `tol` of the interpreter. */
async function checkTraining(gpu: GpuDevice, label: string, loss: Node, params: Node[], ints: Record<string, number[]>): Promise<number> {
  const training = expectOk(trainingGraph(loss, params)).graph;
  const feeds = feedsOf(training, ints, 3);
  const run = await runOnGpu(gpu, training, feeds);
  const reference = expectOk(interpret(training, feeds));
  for (const name of training.outputs.keys()) assertClose(run.outputs.get(name)!, reference.get(name)!, 1e-4, `${label} ${name}`);
  return run.stats.copies;
}

test(
  "matmul: alpha, bias and a scaled residual in the epilogue; transposed and offset operand views",
  withGpu(async (gpu) => {
    const [B, T, C, N] = [2, 3, 8, 6];
    const x = ir.param("x", [B, T, C]);
    const w = ir.param("w", [C, N]);
    const bias = ir.param("bias", [N]);
    const r = ir.param("r", [B, T, N]);
    const y = ir.add(ir.add(ir.scale(ir.matmul(x, w), 0.5), ir.expandTo(bias, [B, T, N])), ir.scale(r, 0.25));
    const wide = ir.param("wide", [B, T, C + 4]);
    const wT = ir.param("wT", [N, C]);
    // an operand at an offset (copied first) times a transposed one (read in place)
    const z = ir.matmul(ir.slice(wide, 2, 2, C + 2), ir.permute(wT, [1, 0]));
    const { loss } = lossOf(ir.reshape(ir.add(y, z), [B * T, N]));
    const launches = expectOk(compileGraph(graph([["y", y]]))).schedule.launches;
    assert.equal(launches.find((l) => l.kernel === "matmul")?.epilogue, ["alpha", "bias", "residual"]);
    const copies = await checkTraining(gpu, "matmul", loss, [x, w, bias, r, wide, wT], { labels: [1, 0, 5, -100, 2, 3] });
    console.log(`    matmul graphs: ${copies} view copies`);
    assert.ok(copies >= 1, "the offset view is copied");
  }),
);

const attentionCases: { name: string; attrs: Partial<AttentionAttrs>; masks: (b: number, s: number) => Record<string, number[]> }[] = [
  { name: "causal, padding and packed segments, GQA", attrs: { causal: true, padding: true, segments: true }, masks: () => ({ keyRange: [1, 7, 0, 5], segmentIds: [0, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 2, 2, 2] }) },
  { name: "GLM prefix with ALiBi", attrs: { causal: true, prefix: true, alibi: true }, masks: () => ({ prefixLen: [3, 5] }) },
];

for (const c of attentionCases) {
  test(
    `attention forward and backward: ${c.name}`,
    withGpu(async (gpu) => {
      const [B, T, H, KV, D] = [2, 7, 4, 2, 32];
      const attrs: AttentionAttrs = { scale: 1 / Math.sqrt(D), causal: false, prefix: false, padding: false, segments: false, alibi: false, ...c.attrs };
      const q = ir.param("q", [B, T, H, D]);
      const k = ir.param("k", [B, T, KV, D]);
      const v = ir.param("v", [B, T, KV, D]);
      const masks = attentionMaskInputs(attrs, B, T);
      const out = ir.attention(q, k, v, attrs, masks);
      const head = ir.param("head", [H * D, 5]);
      const { loss } = lossOf(ir.matmul(ir.reshape(out, [B * T, H * D]), head));
      const labels = Array.from({ length: B * T }, (_, i) => i % 5);
      await checkTraining(gpu, "attention", loss, [q, k, v, head], { labels, ...c.masks(B, T) });
    }),
  );
}

test(
  "new i32 inputs between runs rebuild the embedding-gradient plan and the loss's token count",
  withGpu(async (gpu) => {
    const fixture = await loadFixture("baichuan7b");
    const training = trainingOf(fixtureGraph(fixture));
    const compiled = expectOk(compileGraph(training));
    const ex = expectOk(GraphExecutor.create(gpu, compiled.schedule));
    try {
      const rng = new Random(8);
      const { input_ids, labels } = fixture.golden;
      const batches = [
        { ids: input_ids, labels },
        { ids: input_ids.map((row) => row.map(() => rng.int(64))), labels: labels.map((row) => row.map((l, t) => (t < row.length / 2 ? -100 : l))) },
      ];
      for (const [i, batch] of batches.entries()) {
        const feeds = feedsFor({ ...fixture, golden: { ...fixture.golden, input_ids: batch.ids, labels: batch.labels } });
        for (const [name, values] of feeds) ex.write(name, values);
        expectOk(await ex.run());
        const reference = expectOk(interpret(training, feeds));
        for (const name of ["loss", "grad.model.embed_tokens.weight"]) assertClose(await ex.read(name), reference.get(name)!, 1e-4, `batch ${i} ${name}`);
      }
    } finally {
      ex.destroy();
    }
  }),
);

test(
  "a checkpointed schedule (every activation recomputed in the backward) gives the interpreter's gradients",
  withGpu(async (gpu) => {
    const fixture = await loadFixture("chatglm");
    const training = trainingOf(fixtureGraph(fixture));
    const compiled = expectOk(compileGraph(training, { checkpoints: [] }));
    const ex = expectOk(GraphExecutor.create(gpu, compiled.schedule));
    try {
      const feeds = feedsFor(fixture);
      for (const [name, values] of feeds) ex.write(name, values);
      expectOk(await ex.run());
      const reference = expectOk(interpret(training, feeds));
      let worst = 0;
      for (const name of training.outputs.keys()) worst = Math.max(worst, relativeError(await ex.read(name), reference.get(name)!));
      console.log(`    chatglm checkpointed: ${ex.stats().dispatches} dispatches, worst relative error ${worst.toExponential(2)}`);
      assert.ok(worst < 1e-3);
    } finally {
      ex.destroy();
    }
  }),
);

test(
  "a token id outside the table is an input error naming it; a RoPE the kernel cannot do is refused",
  withGpu(async (gpu) => {
    const table = ir.param("table", [10, 4]);
    const ids = ir.input("ids", [3], "i32");
    const { loss } = lossOf(ir.embedding(table, ids));
    const training = expectOk(trainingGraph(loss, [table])).graph;
    const ex = expectOk(GraphExecutor.create(gpu, expectOk(compileGraph(training)).schedule));
    try {
      for (const [name, values] of feedsOf(training, { ids: [1, 12, 3], labels: [0, 1, 2] }, 1)) ex.write(name, values);
      const error = expectError(await ex.run());
      assert.is(error.code, "SFT4002");
      assert.match(error.message, /Token id 12 at position 1 is outside the embedding table \(10 rows\)/);
    } finally {
      ex.destroy();
    }

    const x = ir.param("x", [1, 2, 1, 16]);
    const positions = ir.input("positions", [1, 2, 2], "i32");
    const rotated = ir.rope(x, positions, { style: "half", rotaryDim: 4, sections: 2, base: 10000, inverse: false });
    const refused = expectError(GraphExecutor.create(gpu, expectOk(compileGraph(graph([["y", rotated]]))).schedule));
    assert.is(refused.code, "SFT4005");
    assert.match(refused.message, /two position streams with partial rotary dims/);
  }),
);

test.run();
