// How attention on the score-matrix path is cut into chunks of query heads (scoresChunkHeads):
// as many heads as the scores' byte limit allows, within a group under grouped queries, and only
// where every window the kernel sequence binds starts at an offset a bind group can take (256 bytes).
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { BackwardViews } from "../../stdlib/kernels/attention-backward.ts";
import { causalVariant } from "../../runtime/gpu/kernel-probe-cases.ts";
import { denseView, fusedQkvViews, keyValueGradientViews } from "../../stdlib/kernels/attention-layout.ts";
import type { AttentionShape } from "../../stdlib/kernels/attention-reference.ts";
import { scoresBackwardKernels, scoresChunkHeads, scoresForwardKernels } from "../../stdlib/kernels/attention-scores-steps.ts";
import { bytesPerElement, type StorageDType } from "../../stdlib/kernels/dtype.ts";
import { matmulKernelsOf } from "../../stdlib/kernels/matmul.ts";

// Q, K and V in one fused projection output, as Baichuan's W_pack and ChatGLM2's query_key_value give them
function fusedViews(shape: AttentionShape): BackwardViews {
  const { batch, queryLength: T, keyLength: S, queryHeads: H, kvHeads: KV, headDim: D } = shape;
  const dense = denseView("bthd", T, H, D);
  return { ...fusedQkvViews(T, H, KV, D), o: dense, dout: dense, dq: dense, ...keyValueGradientViews(batch, S, KV, D) };
}

const shapeOf = (batch: number, T: number, H: number, KV: number, D: number): AttentionShape => ({ batch, queryHeads: H, kvHeads: KV, queryLength: T, keyLength: T, headDim: D });

test("chunks take as many heads as 128 MiB of f32 scores hold", () => {
  const at = (T: number) => scoresChunkHeads("forward", shapeOf(2, T, 32, 32, 128), "f32", fusedViews(shapeOf(2, T, 32, 32, 128)));
  assert.is(at(1024), 32, "4 MiB a head");
  assert.is(at(2048), 8, "16 MiB a head");
  assert.is(scoresChunkHeads("forward", shapeOf(1, 64, 4, 4, 128), "f32", fusedViews(shapeOf(1, 64, 4, 4, 128)), 4 * 64 * 64 * 3), 3, "a byte limit of three heads");
  assert.is(scoresChunkHeads("forward", shapeOf(1, 64, 4, 4, 128), "f32", fusedViews(shapeOf(1, 64, 4, 4, 128)), 4 * 64 * 64 - 1), undefined, "one head's scores over the limit");
  assert.is(scoresChunkHeads("forward", shapeOf(1, 1, 4, 4, 128), "f32", fusedViews(shapeOf(1, 1, 4, 4, 128))), undefined, "one query row: the decode kernels");
});

test("grouped queries: a forward chunk is a whole group, a backward's per-head score windows must be aligned too", () => {
  // ChatGLM2-6B: 32 query heads over 2 key/value heads of 128
  for (const T of [100, 300]) {
    const shape = shapeOf(1, T, 32, 2, 128);
    assert.is(scoresChunkHeads("forward", shape, "f32", fusedViews(shape)), 16, `T ${T}: forward`);
    // dK and dV read each head's scores alone, T * T f32 apart: 40,000 and 360,000 bytes are no multiples of 256
    assert.is(scoresChunkHeads("backward", shape, "f32", fusedViews(shape)), 1, `T ${T}: backward`);
  }
  const aligned = shapeOf(1, 64, 32, 2, 128);
  assert.is(scoresChunkHeads("backward", aligned, "f32", fusedViews(aligned)), 16, "T 64: a head's scores are 16 KiB");
});

test("no chunking where a window would start at an offset a bind group cannot take", () => {
  // head dim 32 in f32: neighbouring heads 128 bytes apart, so only even query heads and key/value head 0 start aligned
  const shape = shapeOf(1, 16, 4, 2, 32);
  assert.is(scoresChunkHeads("forward", shape, "f32", fusedViews(shape)), undefined);
  // Q shifted by one element: no window of it is aligned
  const shifted = shapeOf(1, 64, 4, 4, 128);
  const views = fusedViews(shifted);
  assert.is(scoresChunkHeads("forward", shifted, "f32", { ...views, q: { ...views.q, offset: views.q.offset + 1 } }), undefined);
});

// The rule checks the steps before they are bound; this checks the bound kernels themselves, so a
// binding that moved a window (boundStep) cannot pass unnoticed.
test("every window the kernels bind starts at an aligned offset, for the chunking the rule picks", () => {
  const matmul = matmulKernelsOf("tiled");
  let checked = 0;
  for (const dtype of ["f32", "f16"] as StorageDType[])
    for (const [B, T, H, KV, D] of [[2, 40, 4, 4, 64], [2, 37, 8, 2, 128], [3, 24, 6, 3, 64], [1, 100, 32, 2, 128], [2, 16, 4, 1, 256]]) {
      const shape = shapeOf(B, T, H, KV, D);
      const views = fusedViews(shape);
      for (const direction of ["forward", "backward"] as const) {
        const heads = scoresChunkHeads(direction, shape, dtype, views);
        if (heads === undefined) continue;
        const call = { shape, variant: causalVariant(D, dtype as "f32" | "f16"), scale: 1, heads };
        const kernels = direction === "forward" ? scoresForwardKernels(call, views, matmul) : scoresBackwardKernels(call, views, matmul);
        for (const k of kernels)
          for (const [name, ref] of Object.entries(k.bind ?? {})) {
            const elementBytes = ["a", "b", "c"].includes(name) && !["scores", "grad"].includes(ref.name) ? bytesPerElement(dtype) : 4;
            assert.is(((ref.start ?? 0) * elementBytes) % 256, 0, `${dtype} ${[B, T, H, KV, D]} ${direction}: ${k.spec.name} binds ${ref.name} at ${ref.start}`);
            checked++;
          }
      }
    }
  assert.ok(checked > 100, `${checked} windows checked`);
});

test.run();
