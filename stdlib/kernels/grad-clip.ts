// Global gradient-norm clipping over many buffers (torch.nn.utils.clip_grad_norm_ semantics):
// stage 1 writes per-workgroup partial sums of squares of each buffer into one partials array,
// stage 2 sums them in a fixed order into [norm, coefficient], then `gradScale` multiplies every
// gradient by the coefficient (or AdamW reads it directly). No float atomics: deterministic.
import type { StorageDType } from "./dtype.ts";
import { elementwiseKernel } from "./elementwise.ts";
import { ceilDiv, linearGrid, WGSL_FLAT_WORKGROUP, type KernelSpec } from "./kernel.ts";
import { wgslWorkgroupReduce } from "./reduce.ts";

const WORKGROUP = 256;
const ITEMS = 16; // elements per invocation in stage 1
/** Elements one stage-1 workgroup reduces into one partial sum. */
export const GRAD_NORM_CHUNK = WORKGROUP * ITEMS;

/** Number of partial sums a buffer of n elements contributes. */
export function gradNormPartials(n: number): number {
  return ceilDiv(n, GRAD_NORM_CHUNK);
}

/**
 * Stage 1: partials[offset + w] = sum of g^2 over chunk w of g. Uniforms n, offset (this buffer's
 * first slot). Bindings: g (dtype), partials (f32).
 */
export function gradNormPartial(dtype: StorageDType): KernelSpec {
  return {
    name: "grad_norm_partial",
    variant: { dtype },
    uniforms: { n: "u32", offset: "u32" },
    bindings: [
      { name: "g", dtype, access: "read" },
      { name: "partials", dtype: "f32", access: "read_write" },
    ],
    workgroupSize: [WORKGROUP, 1, 1],
    dispatch: (u) => linearGrid(gradNormPartials(u.n)),
    declarations: `${WGSL_FLAT_WORKGROUP}\n${wgslWorkgroupReduce(WORKGROUP)}`,
    body: `  let w = flat_workgroup_id(wid, nwg);
  if (w >= (u.n + ${GRAD_NORM_CHUNK - 1}u) / ${GRAD_NORM_CHUNK}u) { return; }
  var s = 0.0;
  for (var k = 0u; k < ${ITEMS}u; k++) {
    let i = w * ${GRAD_NORM_CHUNK}u + k * WG_X + lidx;
    if (i < u.n) { let x = load_g(i); s += x * x; }
  }
  let total = workgroup_sum(lidx, s);
  if (lidx == 0u) { partials[u.offset + w] = total; }`,
  };
}

/**
 * Stage 2: clip = [norm, min(1, max_norm / (norm + 1e-6))] from `count` partials.
 * Uniforms count, max_norm. Bindings: partials (f32), clip (f32, 2).
 */
export function gradNormFinalize(): KernelSpec {
  return {
    name: "grad_norm_finalize",
    variant: {},
    uniforms: { count: "u32", max_norm: "f32" },
    bindings: [
      { name: "partials", dtype: "f32", access: "read" },
      { name: "clip", dtype: "f32", access: "read_write" },
    ],
    workgroupSize: [WORKGROUP, 1, 1],
    dispatch: () => [1, 1, 1],
    declarations: wgslWorkgroupReduce(WORKGROUP),
    body: `  var s = 0.0;
  for (var i = lidx; i < u.count; i += WG_X) { s += load_partials(i); }
  let norm = sqrt(workgroup_sum(lidx, s));
  if (lidx == 0u) {
    store_clip(0u, norm);
    store_clip(1u, min(1.0, u.max_norm / (norm + 1e-6)));
  }`,
  };
}

/** g *= clip[1] in place; uniforms n. Bindings: g (f32), clip (f32). */
export function gradScale(): KernelSpec {
  return elementwiseKernel({
    name: "grad_scale",
    variant: {},
    bindings: [
      { name: "g", dtype: "f32", access: "read_write" },
      { name: "clip", dtype: "f32", access: "read" },
    ],
    perElement: "  store_g(i, load_g(i) * load_clip(1u));",
  });
}

// ---- float64 CPU reference ----

/** [total norm, clip coefficient] over all buffers, as torch.nn.utils.clip_grad_norm_ computes them. */
export function gradNormRef(buffers: readonly ArrayLike<number>[], maxNorm: number): [number, number] {
  let s = 0;
  for (const b of buffers) for (let i = 0; i < b.length; i++) s += b[i] * b[i];
  const norm = Math.sqrt(s);
  return [norm, Math.min(1, maxNorm / (norm + 1e-6))];
}
