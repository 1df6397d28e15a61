// Attention through a materialized score matrix: its softmax and score-gradient kernels against
// their float64 references (every mask kind, a chunk at a later batch row and head), and whole
// attention launches on that path (forward and backward, chunked into one or two heads, fused
// QKV views, masks, ALiBi, grouped queries) against the float64 interpreter; attention whose
// operands cannot be bound as windows falls back to the fused kernels; and a fixture model's LoRA
// training step.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { trainingGraph } from "../../compiler/autodiff/grad.ts";
import * as ir from "../../compiler/ir/build.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import type { AttentionAttrs, Node } from "../../compiler/ir/node.ts";
import { compileGraph } from "../../compiler/passes/compile.ts";
import { GraphExecutor } from "../../runtime/execute/executor.ts";
import type { AttentionScoresChoice } from "../../stdlib/kernels/attention-scores.ts";
import { runKernel } from "../../runtime/gpu/batch.ts";
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { readFloats, uploadTensor } from "../../runtime/gpu/tensor.ts";
import { Random } from "../../runtime/random.ts";
import { maskFlags } from "../../stdlib/kernels/attention-mask.ts";
import { scoresChunkUniforms, scoresGradKernel, scoresGradRef, scoresGradUniforms, scoresSoftmaxKernel, scoresSoftmaxRef, type ScoresChunk } from "../../stdlib/kernels/attention-scores.ts";
import { attentionShape, assertLogSumExpClose, makeMask, uploadMask, type MaskKind } from "../kernels/attention-harness.ts";
import { withGpu } from "../kernels/gpu-harness.ts";
import { assertClose } from "../support/numeric.ts";
import { expectOk } from "../support/result.ts";
import { adapterValues, feedsFor, loadFixture } from "../models/support.ts";
import { attentionMaskInputs, feedsOf, fixtureGraph, runOnGpu, trainingOf } from "./support.ts";

const MASKS: MaskKind[] = ["none", "causal", "prefix", "padding", "left-padding", "segments", "alibi", "alibi+segments", "alibi+padding+segments"];

test(
  "the softmax kernel (forward and recompute) and the score-gradient kernel match their float64 references",
  withGpu(async (gpu) => {
    const [B, H, T, S] = [3, 4, 9, 13];
    for (const [i, kind] of MASKS.entries()) {
      const rng = new Random(40 + i);
      const mask = makeMask({ shape: attentionShape(B, H, H, T, S, 32), mask: kind, fused: false, dtype: "f32" }, rng);
      // two heads of the last batch row: the kernels must index the mask, ALiBi slopes, log-sum-exp and delta there
      const chunk: ScoresChunk = { batch: B, batchRow: 2, firstHead: 1, heads: 2, queryHeads: H, queryLength: T, keyLength: S, queryOffset: S - T, scale: 0.7 };
      const rows = chunk.heads * T;
      const scores = Float64Array.from(rng.normalArray(rows * S, 2));
      const maskTensors = uploadMask(gpu, mask, B, S);
      const flags = maskFlags(mask);
      const scoresT = uploadTensor(gpu, "f32", [rows, S], scores, "scores");
      const lse = uploadTensor(gpu, "f32", [B, H, T], new Float64Array(B * H * T), "lse");
      await runKernel(gpu, scoresSoftmaxKernel(flags, "forward"), scoresChunkUniforms(chunk), { scores: scoresT, lse, ...maskTensors });
      const ref = scoresSoftmaxRef(scores, chunk, mask);
      const label = `${kind} mask`;
      assertClose(await readFloats(gpu, scoresT), ref.probs, 1e-5, `${label}: probabilities`);
      // the chunk's rows of the (B, H, T) log-sum-exp; the others stay untouched
      const lseAll = await readFloats(gpu, lse);
      const at = (chunk.batchRow * H + chunk.firstHead) * T;
      assertLogSumExpClose(lseAll.subarray(at, at + rows), ref.lse, 1e-5, `${label}: log-sum-exp`);
      assert.ok(lseAll.subarray(0, at).every((x) => x === 0) && lseAll.subarray(at + rows).every((x) => x === 0), `${label}: rows outside the chunk untouched`);
      if (kind === "left-padding") assert.ok(ref.lse.includes(-Infinity), "left padding leaves a row that sees no key");

      // recompute from the saved log-sum-exp gives the same probabilities
      const again = uploadTensor(gpu, "f32", [rows, S], scores, "scores again");
      await runKernel(gpu, scoresSoftmaxKernel(flags, "recompute"), scoresChunkUniforms(chunk), { scores: again, lse, ...maskTensors });
      assertClose(await readFloats(gpu, again), scoresSoftmaxRef(scores, chunk, mask, ref.lse).probs, 1e-5, `${label}: recomputed probabilities`);

      // dS = P * (dP - delta), delta read at the chunk's rows of (B, H, T)
      const dp = Float64Array.from(rng.normalArray(rows * S, 1));
      const delta = Float64Array.from(rng.normalArray(B * H * T, 1));
      const grad = uploadTensor(gpu, "f32", [rows, S], dp, "dP");
      await runKernel(gpu, scoresGradKernel(), scoresGradUniforms(chunk), { probs: again, grad, delta: uploadTensor(gpu, "f32", [B, H, T], delta, "delta") });
      assertClose(await readFloats(gpu, grad), scoresGradRef(ref.probs, dp, delta.subarray(at, at + rows), chunk), 1e-5, `${label}: score gradients`);
      assert.equal((await gpu.takeErrors()).map((e) => e.message), [], `${label}: GPU errors`);
    }
  }),
);

/**
 * The training graph of a loss over attention of (B, T, H, D) operands on the GPU with `scores`,
 * against the interpreter; returns the dispatched kernels' keys.
 */
async function checkAttention(
  gpu: GpuDevice,
  label: string,
  o: { tokens?: number; headDim?: number; heads: number; kvHeads: number; fused: boolean; attrs: Partial<AttentionAttrs>; ints: Record<string, number[]>; scores: AttentionScoresChoice },
): Promise<string[]> {
  const [B, T, D] = [2, o.tokens ?? 7, o.headDim ?? 64];
  const { heads: H, kvHeads: KV } = o;
  const attrs: AttentionAttrs = { scale: 1 / Math.sqrt(D), causal: false, prefix: false, padding: false, segments: false, alibi: false, ...o.attrs };
  let q: Node, k: Node, v: Node;
  const params: Node[] = [];
  if (o.fused) {
    // one (B, T, H + 2 KV, D) projection, Q, K and V its head slices (as Baichuan's W_pack)
    const qkv = ir.param("qkv", [B, T, H + 2 * KV, D]);
    [q, k, v] = [ir.slice(qkv, 2, 0, H), ir.slice(qkv, 2, H, H + KV), ir.slice(qkv, 2, H + KV, H + 2 * KV)];
    params.push(qkv);
  } else {
    [q, k, v] = [ir.param("q", [B, T, H, D]), ir.param("k", [B, T, KV, D]), ir.param("v", [B, T, KV, D])];
    params.push(q, k, v);
  }
  const masks = attentionMaskInputs(attrs, B, T);
  const out = ir.attention(q, k, v, attrs, masks);
  const head = ir.param("head", [H * D, 5]);
  const labels = ir.input("labels", [B * T], "i32");
  const loss = ir.crossEntropy(ir.matmul(ir.reshape(out, [B * T, H * D]), head), labels);
  const training = expectOk(trainingGraph(loss, [...params, head])).graph;
  const feeds = feedsOf(training, { labels: Array.from({ length: B * T }, (_, i) => i % 5), ...o.ints }, 5);
  const compiled = expectOk(compileGraph(training));
  const ex = expectOk(GraphExecutor.create(gpu, compiled.schedule, new Map(), { attentionScores: o.scores }));
  try {
    for (const [name, values] of feeds) ex.write(name, values);
    expectOk(await ex.run());
    const reference = expectOk(interpret(training, feeds));
    for (const name of training.outputs.keys()) assertClose(await ex.read(name), reference.get(name)!, 1e-4, `${label} ${name}`);
    assert.equal((await gpu.takeErrors()).map((e) => e.message), [], `${label}: GPU errors`);
    return ex.kernelKeys();
  } finally {
    ex.destroy();
  }
}

const count = (keys: string[], name: string) => keys.filter((k) => k.startsWith(`${name}[`)).length;

// one head's scores of one batch row at 7 tokens: 4 * 7 * 7 bytes, so a chunk of 1 or 2 heads
const oneHead = 4 * 7 * 7;

test(
  "attention on the score-matrix path, forward and backward, matches the interpreter",
  withGpu(async (gpu) => {
    const cases: { label: string; attrs: Partial<AttentionAttrs>; ints: Record<string, number[]>; chunkBytes?: number; fused: boolean }[] = [
      { label: "causal, padding and packed segments, chunks of one head", attrs: { causal: true, padding: true, segments: true }, ints: { keyRange: [1, 7, 0, 5], segmentIds: [0, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 2, 2, 2] }, chunkBytes: oneHead, fused: false },
      { label: "GLM prefix with ALiBi, fused QKV, chunks of two heads", attrs: { causal: true, prefix: true, alibi: true }, ints: { prefixLen: [3, 5] }, chunkBytes: 2 * oneHead, fused: true },
      { label: "causal, fused QKV, every head in one chunk", attrs: { causal: true }, ints: {}, chunkBytes: undefined, fused: true },
    ];
    for (const c of cases) {
      const keys = await checkAttention(gpu, c.label, { heads: 4, kvHeads: 4, fused: c.fused, attrs: c.attrs, ints: c.ints, scores: { forward: true, backward: true, chunkBytes: c.chunkBytes } });
      const chunks = 2 * (c.chunkBytes === oneHead ? 4 : c.chunkBytes ? 2 : 1); // batch rows x chunks of heads
      // forward: a softmax per chunk; backward: a recomputing softmax and a score gradient per chunk
      assert.is(count(keys, "attention_scores_softmax"), 2 * chunks, `${c.label}: softmax dispatches`);
      assert.is(count(keys, "attention_scores_grad"), chunks, `${c.label}: score-gradient dispatches`);
      assert.ok(!keys.some((k) => k.startsWith("attention_forward") || k.startsWith("attention_backward_dq") || k.startsWith("attention_backward_dkdv")), `${c.label}: no fused kernel`);
    }
    // 20 tokens: the products are no decode-shaped ones (at most 8 rows), so they take the engine's
    // tiled kernels (subgroup matrices on GPUs that have them) over windows, not the gemv kernel
    const longer = await checkAttention(gpu, "causal, 20 tokens, chunks of one head", {
      tokens: 20,
      heads: 4,
      kvHeads: 4,
      fused: true,
      attrs: { causal: true },
      ints: {},
      scores: { forward: true, backward: true, chunkBytes: 4 * 20 * 20 },
    });
    assert.is(count(longer, "attention_scores_softmax"), 2 * 2 * 4, "a softmax per batch row and head, forward and backward");
    assert.ok(!longer.some((k) => k.startsWith("matmul_gemv")), "no product takes the gemv kernel");
    // the forward on one path and the backward on the other share the log-sum-exp
    const mixed = await checkAttention(gpu, "fused forward, score-matrix backward", { heads: 4, kvHeads: 4, fused: false, attrs: { causal: true }, ints: {}, scores: { forward: false, backward: true } });
    assert.ok(count(mixed, "attention_scores_grad") > 0 && mixed.some((k) => k.startsWith("attention_forward")), "mixed paths");
  }),
);

test(
  "a Baichuan-7B-style LoRA training step with attention on the score-matrix path matches the interpreter",
  withGpu(async (gpu) => {
    const fixture = await loadFixture("baichuan7b");
    const g = fixtureGraph(fixture, { kind: "lora", rank: 2, alpha: 4, targets: fixture.family.lora.defaultTargets });
    const rng = new Random(12);
    const feeds = feedsFor(fixture, adapterValues(g, (n) => rng.normalArray(n, 0.1), false));
    const training = trainingOf(g);
    const run = await runOnGpu(gpu, training, feeds, { attentionScores: { forward: true, backward: true } });
    assert.ok(count(run.kernelKeys, "attention_scores_softmax") > 0, "the score-matrix path runs (Q, K, V in W_pack's output)");
    const reference = expectOk(interpret(training, feeds));
    for (const name of training.outputs.keys()) assertClose(run.outputs.get(name)!, reference.get(name)!, 1e-4, `baichuan7b LoRA ${name}`);
  }),
);

test(
  "grouped-query attention on the score-matrix path: chunks within a group, dK and dV summed over its heads",
  withGpu(async (gpu) => {
    // 4 query heads over 2 key/value heads, 8 tokens (a head's scores, 256 bytes, can be bound one head at a time)
    for (const [label, chunkBytes, chunks] of [
      ["chunks of one head", 4 * 8 * 8, 4],
      ["chunks of a whole group", undefined, 2],
    ] as const) {
      const keys = await checkAttention(gpu, `GQA, ${label}`, { tokens: 8, heads: 4, kvHeads: 2, fused: true, attrs: { causal: true }, ints: {}, scores: { forward: true, backward: true, chunkBytes } });
      assert.is(count(keys, "attention_scores_grad"), 2 * chunks, `${label}: a score gradient per batch row and chunk`);
      assert.ok(!keys.some((k) => k.startsWith("attention_forward") || k.startsWith("attention_backward_dq")), `${label}: no fused kernel`);
    }
    // 10 tokens: a head's scores are 400 bytes, so dK and dV, which read them a head at a time, take
    // chunks of one head, while the forward, which reads them whole, takes whole groups
    const keys = await checkAttention(gpu, "GQA, 10 tokens", { tokens: 10, heads: 4, kvHeads: 2, fused: true, attrs: { causal: true }, ints: {}, scores: { forward: true, backward: true } });
    assert.is(count(keys, "attention_scores_grad"), 2 * 4, "backward: a chunk per batch row and head");
    assert.is(count(keys, "attention_scores_softmax"), 2 * 2 + 2 * 4, "forward: a chunk per batch row and group; backward: per head");
  }),
);

test(
  "attention whose windows cannot be bound keeps the fused kernels",
  withGpu(async (gpu) => {
    // head dim 32 in f32: a head's window starts 128 bytes after the previous one's, and grouped queries read each head alone
    const keys = await checkAttention(gpu, "GQA, head dim 32", { headDim: 32, heads: 4, kvHeads: 2, fused: false, attrs: { causal: true }, ints: {}, scores: { forward: true, backward: true } });
    assert.is(count(keys, "attention_scores_softmax"), 0);
    assert.ok(keys.some((k) => k.startsWith("attention_forward")), "the fused forward runs");
  }),
);

test.run();
