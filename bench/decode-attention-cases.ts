// Benchmark cases of the decode attention's split kernel (stdlib/kernels/attention-decode.ts):
// one new query per head against a KV cache of a 7B layer's shape, at the generation bench's
// cached length and at the bench's token count, each with the runtime's split length
// (DECODE_SPLIT_KEYS) and with the longest the kernel takes (MAX_SPLIT_KEYS), which was the
// runtime's before: the same run shows what shorter splits give. The timed dispatch is the split
// kernel, which reads the cache; the check runs the combine kernel after it (untimed) and
// compares O with attentionForwardReference.
import { CommandBatch } from "../runtime/gpu/batch.ts";
import type { GpuDevice } from "../runtime/gpu/device.ts";
import { createTensor, readFloats, uploadTensor } from "../runtime/gpu/tensor.ts";
import { relativeError } from "../runtime/numeric.ts";
import { Random } from "../runtime/random.ts";
import { attentionDecodeKernels, attentionDecodeUniforms, DECODE_SPLIT_KEYS, decodePartialsSize, decodeSplitLength, MAX_SPLIT_KEYS } from "../stdlib/kernels/attention-decode.ts";
import { denseView, gatherView } from "../stdlib/kernels/attention-layout.ts";
import { maskFlags } from "../stdlib/kernels/attention-mask.ts";
import { attentionForwardReference } from "../stdlib/kernels/attention-reference.ts";
import type { Case } from "./case-inputs.ts";
import type { BenchShapes } from "./sizes.ts";

/**
 * Keys of a decode step of the generation bench's 7B model (128 prompt tokens + 64 new): its
 * cache bucket of 192 positions plus the new token, the shape the runtime's splits are argued
 * from (seven of 32 keys).
 */
const GENERATION_KEYS = 193;

/** The split kernel over `keys` keys (the cached positions and the new one) of every head, `splitLength` keys per split. */
function decodeCase(gpu: GpuDevice, s: BenchShapes, keys: number, splitLength: number, seed: number): Case {
  const D = s.headDim;
  const H = s.hidden / D;
  const shape = { batch: 1, queryHeads: H, kvHeads: H, queryLength: 1, keyLength: keys, headDim: D };
  const scale = 1 / Math.sqrt(D);
  const mask = { causal: true, queryOffset: keys - 1 };
  const random = new Random(seed);
  const [q, k, v] = [H * D, keys * H * D, keys * H * D].map((n) => random.normalArray(n, 0.5));
  const views = { q: denseView("bthd", 1, H, D), k: denseView("bthd", keys, H, D), v: denseView("bthd", keys, H, D), o: denseView("bthd", 1, H, D) };
  const tensors = {
    q: uploadTensor(gpu, "f32", [1, H, D], q),
    k: uploadTensor(gpu, "f32", [keys, H, D], k),
    v: uploadTensor(gpu, "f32", [keys, H, D], v),
    partials: createTensor(gpu, "f32", [decodePartialsSize(shape, splitLength)]),
    o: createTensor(gpu, "f32", [1, H, D]),
    lse: createTensor(gpu, "f32", [1, H]),
  };
  const kernels = attentionDecodeKernels({ dtype: "f32", headDim: D, ...maskFlags(mask) });
  const uniforms = attentionDecodeUniforms(shape, views, scale, mask, splitLength);
  return {
    label: `attention decode split, ${splitLength} keys per split${splitLength === decodeSplitLength(keys) ? " (the runtime's)" : ""}`,
    shape: `S${keys} H${H} D${D}`,
    spec: kernels.split,
    uniforms,
    tensors,
    flops: 4 * H * D * keys,
    bytes: 4 * (2 * keys * H * D + H * D) + 4 * decodePartialsSize(shape, splitLength),
    verify: async () => {
      const combine = new CommandBatch(gpu);
      combine.dispatch(kernels.combine, uniforms, tensors);
      await combine.submit();
      // (1, H, T, D), the reference's layout
      const ref = attentionForwardReference({ shape, q: gatherView(q, views.q, 1, 1, H, D), k: gatherView(k, views.k, 1, keys, H, D), v: gatherView(v, views.v, 1, keys, H, D), scale, mask });
      const out = gatherView(await readFloats(gpu, tensors.o), views.o, 1, 1, H, D);
      return { relativeError: relativeError(out, ref.out), tolerance: 1e-5, rows: `all ${H} heads` };
    },
  };
}

/** The split kernel at the generation bench's cached length and at the bench's token count, with the runtime's and the longest split. */
export function* decodeAttentionCases(gpu: GpuDevice, s: BenchShapes): Generator<Case> {
  const lengths = [...new Set([Math.min(GENERATION_KEYS, s.tokens), s.tokens])];
  let seed = 60;
  for (const keys of lengths)
    for (const split of new Set([DECODE_SPLIT_KEYS, MAX_SPLIT_KEYS].map((x) => Math.min(x, keys)))) yield decodeCase(gpu, s, keys, split, seed++);
}
