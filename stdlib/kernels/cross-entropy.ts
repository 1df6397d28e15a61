// Cross-entropy fused with log-softmax over the vocabulary, one workgroup per token row.
// Pass 1 streams the row once keeping an online (max, sum-exp) per invocation, merged across
// the workgroup; pass 2 streams it again writing the logits gradient (softmax - onehot) * scale.
// Probabilities are never stored; with `inPlace` the gradient overwrites the logits.
import { invariant } from "../../compiler/diagnostics.ts";
import type { StorageDType } from "./dtype.ts";
import { linearGrid, WGSL_FLAT_WORKGROUP, type KernelBinding, type KernelSpec } from "./kernel.ts";
import { wgslWorkgroupReduce } from "./reduce.ts";

const WORKGROUP = 256;

/** The label value whose tokens contribute no loss and no gradient (PyTorch's default). */
export const IGNORE_INDEX = -100;

export interface CrossEntropyOptions {
  logits: StorageDType;
  /** Write d_logits (scaled by the `scale` uniform); off for evaluation. */
  grad: boolean;
  /** The gradient replaces the logits in their own buffer (logits must be f32 or f16). */
  inPlace?: boolean;
}

/**
 * loss[r] = logsumexp(logits[r, :]) - logits[r, target[r]] (0 where target = ignore);
 * uniforms rows, vocab, ignore (i32), scale (f32, e.g. 1 / valid tokens).
 * Bindings: logits ((rows, vocab)), targets (i32, rows), loss (f32, rows), [d_logits (f32)].
 */
export function crossEntropy(o: CrossEntropyOptions): KernelSpec {
  const inPlace = o.grad && !!o.inPlace;
  invariant(!inPlace || o.logits !== "bf16", "in-place cross-entropy needs writable (f32/f16) logits");
  const bindings: KernelBinding[] = [
    { name: "logits", dtype: o.logits, access: inPlace ? "read_write" : "read" },
    { name: "targets", dtype: "i32", access: "read" },
    { name: "loss", dtype: "f32", access: "read_write" },
  ];
  if (o.grad && !inPlace) bindings.push({ name: "d_logits", dtype: "f32", access: "read_write" });
  const storeGrad = inPlace ? "store_logits" : "store_d_logits";
  return {
    name: "cross_entropy",
    variant: { logits: o.logits, grad: o.grad, inPlace },
    uniforms: { rows: "u32", vocab: "u32", ignore: "i32", scale: "f32" },
    bindings,
    workgroupSize: [WORKGROUP, 1, 1],
    dispatch: (u) => linearGrid(u.rows),
    declarations: `${WGSL_FLAT_WORKGROUP}\n${wgslWorkgroupReduce(WORKGROUP)}\nconst LOWEST = -3.4028234e38;`,
    body: `  let row = flat_workgroup_id(wid, nwg);
  if (row >= u.rows) { return; }
  let base = row * u.vocab;
  let label = targets[row];
  let ignored = label == u.ignore || label < 0 || u32(label) >= u.vocab;
  // (m, s): running max and sum of exp(x - m) over this invocation's columns
  var m = LOWEST;
  var s = 0.0;
  for (var c = lidx; c < u.vocab; c += WG_X) {
    let x = load_logits(base + c);
    if (x > m) { s = s * exp(m - x) + 1.0; m = x; } else { s += exp(x - m); }
  }
  let row_max = workgroup_max(lidx, m);
  let sum_exp = workgroup_sum(lidx, s * exp(m - row_max));
  let log_z = row_max + log(sum_exp);
  if (lidx == 0u) {
    var l = 0.0;
    if (!ignored) { l = log_z - load_logits(base + u32(label)); }
    loss[row] = l;
  }
${
  o.grad
    ? `  // every invocation read its label logit above (lidx 0) before any column is overwritten
  workgroupBarrier();
  for (var c = lidx; c < u.vocab; c += WG_X) {
    var g = 0.0;
    if (!ignored) {
      g = exp(load_logits(base + c) - log_z);
      if (c == u32(label)) { g -= 1.0; }
      g *= u.scale;
    }
    ${storeGrad}(base + c, g);
  }`
    : ""
}`,
  };
}

// ---- float64 CPU reference ----

export function crossEntropyRef(
  logits: Float64Array,
  targets: ArrayLike<number>,
  rows: number,
  vocab: number,
  scale: number,
  ignore = IGNORE_INDEX,
): { loss: Float64Array; dLogits: Float64Array } {
  const loss = new Float64Array(rows);
  const dLogits = new Float64Array(rows * vocab);
  for (let r = 0; r < rows; r++) {
    const t = targets[r];
    if (t === ignore || t < 0 || t >= vocab) continue;
    const row = logits.subarray(r * vocab, (r + 1) * vocab);
    const max = row.reduce((a, v) => Math.max(a, v), -Infinity);
    const logZ = max + Math.log(row.reduce((a, v) => a + Math.exp(v - max), 0));
    loss[r] = logZ - row[t];
    for (let c = 0; c < vocab; c++) dLogits[r * vocab + c] = (Math.exp(row[c] - logZ) - (c === t ? 1 : 0)) * scale;
  }
  return { loss, dLogits };
}
