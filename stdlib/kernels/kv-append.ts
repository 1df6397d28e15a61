// Appending a decode step's new keys and values to a KV cache in place: each row's new key and
// value (the step's outputs, (B, 1, KV, D) views such as one head's slice of a fused projection)
// go to position `column` of that row of the cache buffers (B, rowLength, KV · D), one
// invocation per element, keys and values in one dispatch. A decode step then moves a few
// kilobytes per layer, not the cache (runtime/generate/device-cache.ts). A 16-bit cache rounds
// the new f32 values to f16 as it stores them.
import { roundToDType } from "./dtype.ts";
import { elementwiseKernel } from "./elementwise.ts";
import type { KernelSpec, UniformValues } from "./kernel.ts";
import { denseView, viewIndex, viewUniforms, viewUniformValues, wgslViewIndex, type TensorView } from "./attention-layout.ts";

/** What one append writes: `batch` rows of `heads` x `headDim` values each, at `column` of rows `rowLength` long. */
export interface KvAppendShape {
  batch: number;
  heads: number;
  headDim: number;
  rowLength: number;
  column: number;
}

/** Bindings: k_new and v_new (f32, read; their views in the uniforms), k_cache and v_cache (`cache`, written). */
export function kvAppendKernel(cache: "f32" | "f16" = "f32"): KernelSpec {
  return elementwiseKernel({
    name: "kv_append",
    variant: { cache },
    uniforms: { heads: "u32", head_dim: "u32", row_length: "u32", column: "u32", ...viewUniforms("k_new"), ...viewUniforms("v_new") },
    bindings: [
      { name: "k_new", dtype: "f32", access: "read" },
      { name: "v_new", dtype: "f32", access: "read" },
      { name: "k_cache", dtype: cache, access: "read_write" },
      { name: "v_cache", dtype: cache, access: "read_write" },
    ],
    declarations: `${wgslViewIndex("k_new")}\n${wgslViewIndex("v_new")}`,
    perElement: `  let width = u.heads * u.head_dim;
  let b = i / width;
  let h = (i % width) / u.head_dim;
  let d = i % u.head_dim;
  let at = (b * u.row_length + u.column) * width + h * u.head_dim + d;
  store_k_cache(at, k_new[k_new_at(b, 0u, h) + d]);
  store_v_cache(at, v_new[v_new_at(b, 0u, h) + d]);`,
  });
}

export function kvAppendUniforms(s: KvAppendShape, keys: TensorView, values: TensorView): UniformValues {
  return {
    n: s.batch * s.heads * s.headDim,
    heads: s.heads,
    head_dim: s.headDim,
    row_length: s.rowLength,
    column: s.column,
    ...viewUniformValues("k_new", keys),
    ...viewUniformValues("v_new", values),
  };
}

/** CPU reference: `cache` (B, rowLength, heads · headDim) of `dtype` with each row's new value from `fresh` (through `view`) at `column`, rounded to `dtype`. */
export function kvAppendRef(cache: ArrayLike<number>, fresh: ArrayLike<number>, view: TensorView, s: KvAppendShape, dtype: "f32" | "f16" = "f32"): Float64Array {
  const out = Float64Array.from(cache);
  fresh = roundToDType(dtype, fresh);
  const rows = denseView("bthd", s.rowLength, s.heads, s.headDim); // the cache, (B, rowLength, heads, headDim)
  for (let b = 0; b < s.batch; b++)
    for (let h = 0; h < s.heads; h++) for (let d = 0; d < s.headDim; d++) out[viewIndex(rows, b, s.column, h, d)] = fresh[viewIndex(view, b, 0, h, d)];
  return out;
}
