// The benchmarked kernels, in the order the bench runs them: the matmuls of matmul-cases.ts,
// the other kernels of op-cases.ts, and the attention cases of attention-cases.ts and
// decode-attention-cases.ts. Each case holds seeded inputs (on the host for the reference and
// uploaded; the cases here draw from one CaseInputs, in this order), its FLOP and byte counts,
// and a check of its outputs against the float64 CPU reference of stdlib/kernels.
import type { GpuDevice } from "../runtime/gpu/device.ts";
import { plainMatmulStrategy, subgroupMatrixStrategyFor } from "../stdlib/kernels/matmul-strategy.ts";
import { DEFAULT_SUBGROUP_TILING, SUBGROUP_TILINGS, type SubgroupTilingName } from "../stdlib/kernels/matmul-subgroup.ts";
import { attentionCases } from "./attention-cases.ts";
import { CaseInputs, type Case } from "./case-inputs.ts";
import { decodeAttentionCases } from "./decode-attention-cases.ts";
import { decodeCase, matmulCase, matmulShapes, nf4MatmulCase } from "./matmul-cases.ts";
import {
  adamwCase,
  crossEntropyCase,
  embeddingBackwardCase,
  embeddingForwardCase,
  gradNormCase,
  layernormBackwardCase,
  rmsnormCase,
  siluCase,
  swigluCase,
} from "./op-cases.ts";
import type { BenchShapes } from "./sizes.ts";

// Cases are built one at a time (generator) so that a full-size run holds one case's buffers.
export function* kernelCases(gpu: GpuDevice, s: BenchShapes): Generator<Case> {
  const inputs = new CaseInputs(gpu, s);
  const preferred = plainMatmulStrategy(gpu.adapter.architecture);
  const [[sq], [m, n, k], ffnUp] = matmulShapes(s);
  yield matmulCase(inputs, sq, sq, sq, "f32", false, "tiled");
  yield matmulCase(inputs, sq, sq, sq, "f32", false, "registers");
  yield matmulCase(inputs, sq, sq, sq, "bf16", true, preferred);
  if (gpu.hasF16) yield matmulCase(inputs, sq, sq, sq, "f16", true, preferred);
  yield matmulCase(inputs, m, n, k, "f32", false, "tiled", ", scalar loads");
  // a frozen base weight of the FFN up-projection, stored (N, K) in bf16 as LoRA keeps it
  yield matmulCase(inputs, ...ffnUp, "bf16", true, preferred, ", FFN up");
  // and in f32, as the engine stores it (the forward of a linear in training)
  yield matmulCase(inputs, ...ffnUp, "f32", true, preferred, ", FFN up");
  const sub = subgroupMatrixStrategyFor(gpu.adapter);
  if (sub) {
    yield matmulCase(inputs, sq, sq, sq, "f32", false, sub);
    yield matmulCase(inputs, sq, sq, sq, "f16", true, sub);
    // one subgroup per workgroup: no assumption on which invocations form a subgroup
    yield matmulCase(inputs, sq, sq, sq, "f16", true, { ...sub, tiling: "one-subgroup" });
    yield matmulCase(inputs, m, n, k, "f32", false, sub, ", unaligned");
    yield matmulCase(inputs, ...ffnUp, "bf16", true, sub, ", FFN up");
    // QLoRA's frozen FFN up-projection, and the same on the plain strategy for comparison
    yield nf4MatmulCase(inputs, ...ffnUp, sub, ", FFN up");
    yield nf4MatmulCase(inputs, ...ffnUp, preferred, ", FFN up");
    // the tiling presets side by side, weights stored (N, K): the square shape in f16 (PyTorch's
    // f16 matmul is its reference), the FFN up-projection in f32 (as the engine stores weights),
    // and ragged M and N over an aligned K (the vec4 fills' edges)
    for (const tiling of Object.keys(SUBGROUP_TILINGS) as SubgroupTilingName[]) {
      if (tiling === "one-subgroup") continue;
      const preset = { ...sub, tiling };
      if (tiling !== DEFAULT_SUBGROUP_TILING) yield matmulCase(inputs, sq, sq, sq, "f16", true, preset);
      yield matmulCase(inputs, ...ffnUp, "f32", true, preset, ", FFN up");
      yield matmulCase(inputs, m, n, sq, "f16", true, preset, ", ragged M and N");
    }
  }
  // a 7B layer's decode (at full size): W of the FFN up-projection and of a square projection,
  // f32, bf16 (as generation stores a bf16 model) and NF4, on the engine's gemv workgroup (every
  // workgroup's time on a 4096 x 4096 f32 W is the tuning's, in the report's Adapter section);
  // NF4 decoded 32 weights a step and four (the device tunes which the engine takes)
  yield decodeCase(gpu, matmulCase(inputs, 1, s.ffn, s.hidden, "f32", true, "tiled"), "f32");
  yield decodeCase(gpu, matmulCase(inputs, 1, s.hidden, s.hidden, "f32", true, "tiled"), "f32");
  yield decodeCase(gpu, matmulCase(inputs, 1, s.ffn, s.hidden, "bf16", true, "tiled"), "bf16");
  yield decodeCase(gpu, matmulCase(inputs, 1, s.hidden, s.hidden, "bf16", true, "tiled"), "bf16");
  yield decodeCase(gpu, nf4MatmulCase(inputs, 1, s.ffn, s.hidden, "tiled", "", true), "nf4", ", 32 weights a step");
  yield decodeCase(gpu, nf4MatmulCase(inputs, 1, s.ffn, s.hidden, "tiled", "", false), "nf4", ", four weights a step");
  yield siluCase(inputs);
  yield swigluCase(inputs);
  yield rmsnormCase(inputs);
  yield layernormBackwardCase(inputs);
  yield crossEntropyCase(inputs);
  const ids = inputs.tokenIds();
  yield embeddingForwardCase(inputs, ids);
  yield embeddingBackwardCase(inputs, ids);
  yield* attentionCases(gpu, s);
  yield* decodeAttentionCases(gpu, s);
  yield adamwCase(inputs);
  yield gradNormCase(inputs);
}
