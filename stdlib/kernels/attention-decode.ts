// Single-token decode attention: one new query per sequence against a KV cache of S keys, split
// over S so caches spread over many workgroups, then a combine kernel merges the splits:
//   1. attention_decode_split:   per (split, query head, batch row): the split's max m, sum l
//                                and unnormalized sum of exp(score - m) * v into `partials`
//   2. attention_decode_combine: per (query head, batch row): rescale the splits to a common max
// Same masks, ALiBi and GQA as the forward kernel; reference: attentionForwardReference with T = 1.
import { invariant } from "../../compiler/diagnostics.ts";
import type { KernelSpec, UniformValues } from "./kernel.ts";
import { ceilDiv } from "./kernel.ts";
import { maskBindings, type AttentionMask } from "./attention-mask.ts";
import { viewUniforms, viewUniformValues, wgslViewIndex, type TensorView } from "./attention-layout.ts";
import type { AttentionShape } from "./attention-reference.ts";
import {
  ATTENTION_UNIFORMS,
  attentionUniformValues,
  wgslAttentionCommon,
  wgslAttentionConstants,
  type AttentionVariant,
  type AttentionViews,
} from "./attention-common.ts";

/** Most keys one split covers (its scores sit in workgroup memory). */
export const MAX_SPLIT_KEYS = 256;
/**
 * Keys per split the runtime chooses: a split's weighted sum of V walks its keys in order (each
 * invocation one dim, four keys a step), so its time grows with its keys, while splits run in
 * parallel: 32 keys make seven workgroups per head at 193 keys (192 cached and the new one)
 * instead of one walking all 193 (a 7B decode step: 224 workgroups instead of 32 on a GPU of
 * 132 multiprocessors). Chosen by that reasoning, not yet timed on a GPU.
 */
export const DECODE_SPLIT_KEYS = 32;
const THREADS = 64;

const DECODE_UNIFORMS = { ...ATTENTION_UNIFORMS, split_len: "u32", splits: "u32" } as const;

/** Keys per split for a cache of `keyLength`: the whole cache up to DECODE_SPLIT_KEYS, else full splits of that many. */
export function decodeSplitLength(keyLength: number): number {
  return Math.min(DECODE_SPLIT_KEYS, Math.max(1, keyLength));
}

/**
 * The keys (or values) cached_attention attends (compiler/ir/node.ts), (B, C + 1, width): row b's
 * first ends[b] - 1 positions of the cache `past` (B, C, width), then its new one from `fresh`
 * (B, 1, width); zero after that, outside the row's key range. The CPU reference of what the
 * appended decode kernels read in place.
 */
export function appendedKeys(past: ArrayLike<number>, fresh: ArrayLike<number>, ends: readonly number[], capacity: number, width: number): Float64Array {
  const out = new Float64Array(ends.length * (capacity + 1) * width);
  ends.forEach((end, b) => {
    invariant(end >= 1 && end <= capacity + 1, `cached attention: key range end ${end} outside 1..${capacity + 1}`);
    const row = b * (capacity + 1) * width;
    for (let i = 0; i < (end - 1) * width; i++) out[row + i] = past[b * capacity * width + i];
    for (let i = 0; i < width; i++) out[row + (end - 1) * width + i] = fresh[b * width + i];
  });
  return out;
}

/** Elements of the `partials` scratch buffer: (B, Hq, splits, D + 2) as [acc..., m, l]. */
export function decodePartialsSize(shape: AttentionShape, splitLength: number): number {
  return shape.batch * shape.queryHeads * ceilDiv(shape.keyLength, splitLength) * (shape.headDim + 2);
}

export interface AttentionDecodeKernels {
  split: KernelSpec;
  combine: KernelSpec;
}

/**
 * Bindings — split: q, k, v (read), with an appended cache k_new and v_new (read), partials (f32
 * scratch, see decodePartialsSize), then the mask's. combine: partials (read), o (written),
 * lse (B, Hq) f32. With `cache` (the dtype it is stored in: the variant's, or f16 beside f32
 * activations), k and v are a KV cache and the new token's key and value are k_new and v_new,
 * read as the key at position keyRange[b, 1] - 1 (cached_attention, compiler/ir/node.ts;
 * appendedKeys is the layout's reference).
 */
export function attentionDecodeKernels(variant: AttentionVariant, cache?: AttentionVariant["dtype"]): AttentionDecodeKernels {
  invariant(!cache || variant.padding, "appended decode attention reads the new key's position from the key range");
  return { split: splitKernel(variant, cache), combine: combineKernel(variant) };
}

// WGSL first_new_key(b), the position of row b's new key, read once per workgroup, and
// key_at / value_at(first_new, b, j, kvh, d): element d of key (value) j of KV head kvh of row b;
// with `appended`, key j at first_new (the row's key range end - 1) is the new one (k_new,
// v_new), the earlier ones cached.
function keyValueAccessors(appended: boolean): string {
  if (!appended)
    return `fn first_new_key(b: u32) -> u32 { return 0xffffffffu; } // none: every key is in k and v
fn key_at(first_new: u32, b: u32, j: u32, kvh: u32, d: u32) -> f32 { return load_k(k_at(b, j, kvh) + d); }
fn value_at(first_new: u32, b: u32, j: u32, kvh: u32, d: u32) -> f32 { return load_v(v_at(b, j, kvh) + d); }`;
  return `fn first_new_key(b: u32) -> u32 { return batch_info(b, 1u) - 1u; }
fn key_at(first_new: u32, b: u32, j: u32, kvh: u32, d: u32) -> f32 {
  if (j < first_new) { return load_k(k_at(b, j, kvh) + d); }
  return load_k_new(k_new_at(b, 0u, kvh) + d);
}
fn value_at(first_new: u32, b: u32, j: u32, kvh: u32, d: u32) -> f32 {
  if (j < first_new) { return load_v(v_at(b, j, kvh) + d); }
  return load_v_new(v_new_at(b, 0u, kvh) + d);
}`;
}

function splitKernel(variant: AttentionVariant, cache: AttentionVariant["dtype"] | undefined): KernelSpec {
  const { headDim, dtype } = variant;
  const appended = cache !== undefined;
  const fresh = appended ? ["k_new", "v_new"] : [];
  const read = (name: string, as: AttentionVariant["dtype"]) => ({ name, dtype: as, access: "read" as const });
  return {
    name: "attention_decode_split",
    variant: { ...variant, maxSplitKeys: MAX_SPLIT_KEYS, appended, cache: cache ?? dtype },
    uniforms: { ...DECODE_UNIFORMS, ...viewUniforms("q"), ...viewUniforms("k"), ...viewUniforms("v"), ...Object.assign({}, ...fresh.map(viewUniforms)) },
    bindings: [
      read("q", dtype),
      read("k", cache ?? dtype),
      read("v", cache ?? dtype),
      ...fresh.map((name) => read(name, dtype)),
      { name: "partials", dtype: "f32", access: "read_write" },
      ...maskBindings(variant),
    ],
    workgroupSize: [THREADS, 1, 1],
    dispatch: (u) => [u.splits, u.query_heads, u.batch],
    declarations: `${wgslAttentionCommon(variant, ["q", "k", "v", ...fresh])}
${keyValueAccessors(appended)}
var<workgroup> q_shared: array<f32, ${headDim}>;  // the query times scale
var<workgroup> weights: array<f32, ${MAX_SPLIT_KEYS}>; // scores, then exp(score - m)
var<workgroup> reduce: array<f32, ${THREADS}>;

// Tree reduction over the workgroup (max when take_max, else sum); all invocations get the result.
fn workgroup_reduce(value: f32, lidx: u32, take_max: bool) -> f32 {
  reduce[lidx] = value;
  workgroupBarrier();
  for (var stride = WG_X / 2u; stride > 0u; stride /= 2u) {
    if (lidx < stride) {
      let other = reduce[lidx + stride];
      reduce[lidx] = select(reduce[lidx] + other, max(reduce[lidx], other), take_max);
    }
    workgroupBarrier();
  }
  let result = reduce[0];
  workgroupBarrier();
  return result;
}`,
    body: `
  let split = wid.x;
  let h = wid.y;
  let b = wid.z;
  let kvh = h / u.group_size;
  let p = u.query_offset; // the new token's position
  let first_new = first_new_key(b);
  let j_start = max(key_window_start(b), split * u.split_len);
  let j_end = max(j_start, min(key_window_end(b, p), (split + 1u) * u.split_len));
  let n = j_end - j_start;
  let q0 = q_at(b, 0u, h);
  for (var d = lidx; d < D; d += WG_X) { q_shared[d] = load_q(q0 + d) * u.scale; }
  workgroupBarrier();

  var local_max = NEG_BIG;
  for (var r = lidx; r < n; r += WG_X) {
    let j = j_start + r;
    var score = NEG_BIG;
    if (key_allowed(b, p, j)) {
      // four independent sums keep four loads of the key in flight
      var dot = vec4<f32>(0.0);
      var d = 0u;
      for (; d + 4u <= u.head_dim; d += 4u) {
        dot += vec4<f32>(q_shared[d], q_shared[d + 1u], q_shared[d + 2u], q_shared[d + 3u]) * vec4<f32>(key_at(first_new, b, j, kvh, d), key_at(first_new, b, j, kvh, d + 1u), key_at(first_new, b, j, kvh, d + 2u), key_at(first_new, b, j, kvh, d + 3u));
      }
      for (; d < u.head_dim; d++) { dot.x += q_shared[d] * key_at(first_new, b, j, kvh, d); }
      score = dot.x + dot.y + dot.z + dot.w + score_bias(h, p, j);
    }
    weights[r] = score;
    local_max = max(local_max, score);
  }
  let m = workgroup_reduce(local_max, lidx, true);
  var local_sum = 0.0;
  for (var r = lidx; r < n; r += WG_X) {
    let w = select(0.0, exp(weights[r] - m), weights[r] > NEG_BIG);
    weights[r] = w;
    local_sum += w;
  }
  let l = workgroup_reduce(local_sum, lidx, false); // also orders the weights writes before the reads below

  let out = ((b * u.query_heads + h) * u.splits + split) * (D + 2u);
  for (var d = lidx; d < D; d += WG_X) {
    // four keys a step: four loads of V in flight, not one
    var acc = vec4<f32>(0.0);
    var r = 0u;
    for (; r + 4u <= n; r += 4u) {
      let w = vec4<f32>(weights[r], weights[r + 1u], weights[r + 2u], weights[r + 3u]);
      let j = j_start + r;
      acc += w * vec4<f32>(value_at(first_new, b, j, kvh, d), value_at(first_new, b, j + 1u, kvh, d), value_at(first_new, b, j + 2u, kvh, d), value_at(first_new, b, j + 3u, kvh, d));
    }
    for (; r < n; r++) { acc.x += weights[r] * value_at(first_new, b, j_start + r, kvh, d); }
    partials[out + d] = acc.x + acc.y + acc.z + acc.w;
  }
  if (lidx == 0u) {
    partials[out + D] = m;
    partials[out + D + 1u] = l;
  }`,
  };
}

function combineKernel(variant: AttentionVariant): KernelSpec {
  const { dtype, headDim } = variant;
  return {
    name: "attention_decode_combine",
    variant: { dtype, headDim },
    uniforms: { ...DECODE_UNIFORMS, ...viewUniforms("o") },
    bindings: [
      { name: "partials", dtype: "f32", access: "read" },
      { name: "o", dtype, access: "read_write" },
      { name: "lse", dtype: "f32", access: "read_write" },
    ],
    workgroupSize: [THREADS, 1, 1],
    dispatch: (u) => [1, u.query_heads, u.batch],
    declarations: `${wgslAttentionConstants(headDim)}
${wgslViewIndex("o")}`,
    body: `
  let h = wid.y;
  let b = wid.z;
  let row = b * u.query_heads + h;
  let first = row * u.splits * (D + 2u);
  var m = NEG_BIG;
  for (var s = 0u; s < u.splits; s++) {
    let at = first + s * (D + 2u) + D;
    if (partials[at + 1u] > 0.0) { m = max(m, partials[at]); }
  }
  var l = 0.0;
  for (var s = 0u; s < u.splits; s++) {
    let at = first + s * (D + 2u) + D;
    if (partials[at + 1u] > 0.0) { l += partials[at + 1u] * exp(partials[at] - m); }
  }
  let o0 = o_at(b, 0u, h);
  for (var d = lidx; d < D; d += WG_X) {
    var acc = 0.0;
    for (var s = 0u; s < u.splits; s++) {
      let at = first + s * (D + 2u);
      if (partials[at + D + 1u] > 0.0) { acc += partials[at + d] * exp(partials[at + D] - m); }
    }
    store_o(o0 + d, select(0.0, acc / l, l > 0.0));
  }
  if (lidx == 0u) { lse[row] = select(negative_infinity(), m + log(l), l > 0.0); }`,
  };
}

/**
 * Uniform values of both decode kernels; `shape.queryLength` must be 1. With `appended` (the
 * views of k_new and v_new), `shape.keyLength` counts the cache's capacity plus the new key.
 */
export function attentionDecodeUniforms(
  shape: AttentionShape,
  views: AttentionViews,
  scale: number,
  mask: AttentionMask,
  splitLength = decodeSplitLength(shape.keyLength),
  appended?: { kNew: TensorView; vNew: TensorView },
): UniformValues {
  invariant(shape.queryLength === 1, `decode attention takes one query per sequence, got ${shape.queryLength}`);
  invariant(splitLength >= 1 && splitLength <= MAX_SPLIT_KEYS, `decode split of ${splitLength} keys`);
  // assigned, not spread: a decode step refreshes these every layer, and spreading the views'
  // computed-key objects into a literal took about 40 us a call in V8, six times assigning's (a
  // one-off timing of this function on Node 20, not a script in the repository)
  return Object.assign(
    attentionUniformValues(shape, scale, mask),
    { split_len: splitLength, splits: ceilDiv(shape.keyLength, splitLength) },
    viewUniformValues("q", views.q),
    viewUniformValues("k", views.k),
    viewUniformValues("v", views.v),
    viewUniformValues("o", views.o),
    appended ? viewUniformValues("k_new", appended.kNew) : {},
    appended ? viewUniformValues("v_new", appended.vNew) : {},
  );
}
