// The benchmarked kernels other than the matmuls and attention (attention-cases.ts): activations,
// norms, cross-entropy, embedding lookup and gradient, AdamW and the gradient norm. FLOPs are nominal per-element counts (given in the label); bytes are the minimum traffic
// (every input read once, every output written once). Each check compares the outputs with the
// kernel's float64 reference for every row, or an evenly spaced sample of rows at full size.
import { createTensor, readFloats, uploadTensor } from "../runtime/gpu/tensor.ts";
import { activationForward, activationForwardRef, splitHalves, swigluForward, swigluForwardRef } from "../stdlib/kernels/activations.ts";
import { adamwRef, adamwStep, adamwUniforms, ADAMW_DEFAULTS, type AdamWHyper } from "../stdlib/kernels/adamw.ts";
import { crossEntropy, crossEntropyRef, IGNORE_INDEX } from "../stdlib/kernels/cross-entropy.ts";
import { embeddingBackward, embeddingBackwardRef, embeddingForward, embeddingForwardRef, embeddingGradPlan } from "../stdlib/kernels/embedding.ts";
import { GRAD_NORM_CHUNK, gradNormPartial, gradNormPartials, gradNormRef } from "../stdlib/kernels/grad-clip.ts";
import { normBackwardInput, normBackwardRef, normForward, normForwardRef } from "../stdlib/kernels/norms.ts";
import { gather, worst, type Case, type CaseInputs } from "./case-inputs.ts";
import { rowsNote } from "./checked-rows.ts";

const f32 = Math.fround;

export function siluCase(inputs: CaseInputs): Case {
  const { tokens, ffn } = inputs.s;
  const x = inputs.input("f32", [tokens, ffn]);
  const y = createTensor(inputs.gpu, "f32", [tokens, ffn]);
  return {
    label: "silu forward (4 flop/elem)",
    shape: `${tokens}x${ffn}`,
    spec: activationForward("silu", "f32"),
    uniforms: { n: tokens * ffn },
    tensors: { x: x.tensor, y },
    flops: 4 * tokens * ffn,
    bytes: 8 * tokens * ffn,
    verify: async () => {
      const rows = inputs.rows(tokens);
      const ref = activationForwardRef("silu", gather(x.host, rows, ffn));
      return worst([[gather(await readFloats(inputs.gpu, y), rows, ffn), ref]], rowsNote(rows, tokens));
    },
  };
}

export function swigluCase(inputs: CaseInputs): Case {
  const { tokens, ffn } = inputs.s;
  const x = inputs.input("f32", [tokens, 2 * ffn]); // gate | up, as ChatGLM2 chunks them
  const y = createTensor(inputs.gpu, "f32", [tokens, ffn]);
  return {
    label: "swiglu fused forward (5 flop/elem)",
    shape: `${tokens}x2x${ffn}`,
    spec: swigluForward("f32", true),
    uniforms: { n: tokens * ffn, cols: ffn },
    tensors: { x: x.tensor, y },
    flops: 5 * tokens * ffn,
    bytes: 12 * tokens * ffn,
    verify: async () => {
      const rows = inputs.rows(tokens);
      const { a, b } = splitHalves(gather(x.host, rows, 2 * ffn), rows.length, ffn);
      return worst([[gather(await readFloats(inputs.gpu, y), rows, ffn), swigluForwardRef(a, b)]], rowsNote(rows, tokens));
    },
  };
}

export function rmsnormCase(inputs: CaseInputs): Case {
  const { tokens, hidden } = inputs.s;
  const eps = 1e-6;
  const x = inputs.input("f32", [tokens, hidden]);
  const w = inputs.input("f32", [hidden]);
  const y = createTensor(inputs.gpu, "f32", [tokens, hidden]);
  const rstd = createTensor(inputs.gpu, "f32", [tokens]);
  return {
    label: "rmsnorm forward (4 flop/elem)",
    shape: `${tokens}x${hidden}`,
    spec: normForward("rms", "f32", "f32"),
    uniforms: { rows: tokens, cols: hidden, eps },
    tensors: { x: x.tensor, w: w.tensor, y, rstd },
    flops: 4 * tokens * hidden,
    bytes: 8 * tokens * hidden,
    verify: async () => {
      const rows = inputs.rows(tokens);
      const ref = normForwardRef("rms", gather(x.host, rows, hidden), Float64Array.from(w.host), undefined, rows.length, hidden, eps);
      const pairs: [Float64Array, Float64Array][] = [
        [gather(await readFloats(inputs.gpu, y), rows, hidden), ref.y],
        [gather(await readFloats(inputs.gpu, rstd), rows, 1), ref.rstd],
      ];
      return worst(pairs, rowsNote(rows, tokens));
    },
  };
}

export function layernormBackwardCase(inputs: CaseInputs): Case {
  const { tokens, hidden } = inputs.s;
  const eps = 1e-5;
  const x = inputs.input("f32", [tokens, hidden]);
  const w = inputs.input("f32", [hidden]);
  const dy = inputs.input("f32", [tokens, hidden]);
  const w64 = Float64Array.from(w.host);
  // the statistics the forward would have saved
  const saved = normForwardRef("layer", Float64Array.from(x.host), w64, undefined, tokens, hidden, eps);
  const dx = createTensor(inputs.gpu, "f32", [tokens, hidden]);
  return {
    label: "layernorm backward dx (10 flop/elem)",
    shape: `${tokens}x${hidden}`,
    spec: normBackwardInput("layer", "f32", "f32"),
    uniforms: { rows: tokens, cols: hidden, eps },
    tensors: {
      x: x.tensor,
      w: w.tensor,
      dy: dy.tensor,
      mean: uploadTensor(inputs.gpu, "f32", [tokens], saved.mean),
      rstd: uploadTensor(inputs.gpu, "f32", [tokens], saved.rstd),
      dx,
    },
    flops: 10 * tokens * hidden,
    bytes: 12 * tokens * hidden,
    verify: async () => {
      const rows = inputs.rows(tokens);
      const ref = normBackwardRef("layer", gather(x.host, rows, hidden), w64, gather(dy.host, rows, hidden), rows.length, hidden, eps);
      return worst([[gather(await readFloats(inputs.gpu, dx), rows, hidden), ref.dx]], rowsNote(rows, tokens));
    },
  };
}

export function crossEntropyCase(inputs: CaseInputs): Case {
  const { tokens, vocab } = inputs.s;
  const logits = inputs.input("f32", [tokens, vocab]);
  const targets = Int32Array.from({ length: tokens }, () => inputs.rng.int(vocab));
  const loss = createTensor(inputs.gpu, "f32", [tokens]);
  const dLogits = createTensor(inputs.gpu, "f32", [tokens, vocab]);
  const scale = 1 / tokens;
  return {
    label: "cross-entropy + grad (6 flop/elem)",
    shape: `${tokens}x${vocab}`,
    spec: crossEntropy({ logits: "f32", grad: true }),
    uniforms: { rows: tokens, vocab, ignore: IGNORE_INDEX, scale },
    tensors: { logits: logits.tensor, targets: uploadTensor(inputs.gpu, "i32", [tokens], targets), loss, d_logits: dLogits },
    flops: 6 * tokens * vocab,
    bytes: 8 * tokens * vocab,
    verify: async () => {
      const rows = inputs.rows(tokens);
      const ref = crossEntropyRef(gather(logits.host, rows, vocab), rows.map((r) => targets[r]), rows.length, vocab, scale);
      const pairs: [Float64Array, Float64Array][] = [
        [gather(await readFloats(inputs.gpu, loss), rows, 1), ref.loss],
        [gather(await readFloats(inputs.gpu, dLogits), rows, vocab), ref.dLogits],
      ];
      return worst(pairs, rowsNote(rows, tokens));
    },
  };
}

export function embeddingForwardCase(inputs: CaseInputs, ids: Int32Array): Case {
  const { tokens, hidden, vocab } = inputs.s;
  const table = inputs.input("f32", [vocab, hidden]);
  const out = createTensor(inputs.gpu, "f32", [tokens, hidden]);
  return {
    label: "embedding forward (0 flop)",
    shape: `${tokens}x${hidden} of ${vocab}`,
    spec: embeddingForward("f32"),
    uniforms: { n: tokens * hidden, dim: hidden, vocab },
    tensors: { ids: uploadTensor(inputs.gpu, "i32", [tokens], ids), table: table.tensor, out },
    flops: 0,
    bytes: 8 * tokens * hidden,
    verify: async () => {
      const rows = inputs.rows(tokens);
      // the reference over a table of just the looked-up rows: token i reads row i
      const used = gather(table.host, rows.map((r) => ids[r]), hidden);
      const ref = embeddingForwardRef(rows.map((_, i) => i), used, rows.length, hidden);
      return worst([[gather(await readFloats(inputs.gpu, out), rows, hidden), ref]], rowsNote(rows, tokens));
    },
  };
}

export function embeddingBackwardCase(inputs: CaseInputs, ids: Int32Array): Case {
  const { tokens, hidden, vocab } = inputs.s;
  const plan = embeddingGradPlan(ids);
  const dOut = inputs.input("f32", [tokens, hidden]);
  const dTable = createTensor(inputs.gpu, "f32", [vocab, hidden]);
  const groups = plan.unique.length;
  return {
    label: "embedding backward (1 flop/elem)",
    shape: `${tokens}x${hidden} of ${vocab}`,
    spec: embeddingBackward(false),
    uniforms: { groups, dim: hidden },
    tensors: {
      unique: uploadTensor(inputs.gpu, "i32", [groups], plan.unique),
      offsets: uploadTensor(inputs.gpu, "u32", [plan.offsets.length], plan.offsets),
      positions: uploadTensor(inputs.gpu, "u32", [plan.positions.length], plan.positions),
      d_out: dOut.tensor,
      d_table: dTable,
    },
    flops: tokens * hidden,
    bytes: 4 * tokens * hidden + 4 * groups * hidden,
    verify: async () => {
      // the table rows of the checked token ids; the reference over just those ids
      const checked = inputs.rows(groups).map((j) => plan.unique[j]);
      const slot = new Map(checked.map((id, i) => [id, i]));
      const tokensOf = Array.from(ids.keys()).filter((t) => slot.has(ids[t]));
      const ref = embeddingBackwardRef(tokensOf.map((t) => slot.get(ids[t])!), gather(dOut.host, tokensOf, hidden), checked.length, hidden);
      return worst([[gather(await readFloats(inputs.gpu, dTable), checked, hidden), ref]], rowsNote(checked, groups, "token rows"));
    },
  };
}

export function adamwCase(inputs: CaseInputs): Case {
  const { hidden, ffn } = inputs.s;
  const n = hidden * ffn; // one (hidden, ffn) weight
  const p = inputs.input("f32", [hidden, ffn]);
  const g = inputs.input("f32", [hidden, ffn]);
  const m = createTensor(inputs.gpu, "f32", [hidden, ffn]);
  const v = createTensor(inputs.gpu, "f32", [hidden, ffn]);
  return {
    label: "adamw step (14 flop/elem)",
    shape: `${hidden}x${ffn}`,
    spec: adamwStep(false),
    uniforms: adamwUniforms(n, 1, ADAMW_DEFAULTS),
    tensors: { p: p.tensor, g: g.tensor, m, v },
    flops: 14 * n,
    bytes: 28 * n,
    verify: async () => {
      const rows = inputs.rows(hidden);
      const [pr, mr, vr] = [gather(p.host, rows, ffn), new Float64Array(rows.length * ffn), new Float64Array(rows.length * ffn)];
      // the kernel sees its hyper-parameters as f32 uniforms: 1 - f32(0.999) is 1.3e-5 off 0.001
      const h = ADAMW_DEFAULTS;
      const f32Hyper: AdamWHyper = { lr: f32(h.lr), beta1: f32(h.beta1), beta2: f32(h.beta2), eps: f32(h.eps), weightDecay: f32(h.weightDecay) };
      adamwRef(pr, gather(g.host, rows, ffn), mr, vr, 1, f32Hyper);
      const pairs: [Float64Array, Float64Array][] = [];
      for (const [tensor, ref] of [[p.tensor, pr], [m, mr], [v, vr]] as const) pairs.push([gather(await readFloats(inputs.gpu, tensor), rows, ffn), ref]);
      return worst(pairs, rowsNote(rows, hidden));
    },
  };
}

export function gradNormCase(inputs: CaseInputs): Case {
  const { hidden, ffn } = inputs.s;
  const n = hidden * ffn;
  const g = inputs.input("f32", [n]);
  const chunks = gradNormPartials(n);
  const partials = createTensor(inputs.gpu, "f32", [chunks]);
  return {
    label: "grad norm partials (2 flop/elem)",
    shape: `${n}`,
    spec: gradNormPartial("f32"),
    uniforms: { n, offset: 0 },
    tensors: { g: g.tensor, partials },
    flops: 2 * n,
    bytes: 4 * n,
    verify: async () => {
      const rows = inputs.rows(chunks);
      const ref = rows.map((w) => gradNormRef([g.host.subarray(w * GRAD_NORM_CHUNK, (w + 1) * GRAD_NORM_CHUNK)], 1)[0] ** 2);
      return worst([[gather(await readFloats(inputs.gpu, partials), rows, 1), ref]], rowsNote(rows, chunks, `chunks of ${GRAD_NORM_CHUNK}`));
    },
  };
}
