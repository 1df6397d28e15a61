// Strided operand layout of the attention and RoPE kernels. Every (B, L, H, D) operand is read
// through a view (element offset and batch/token/head strides, head dims contiguous) passed as
// uniforms, so the kernels read Q, K and V straight out of a fused QKV projection (B, T, 3, H, D),
// a (B, H, T, D) tensor or a KV cache without a transpose, and one pipeline serves all of them.

/** Where element (b, t, h, d) of a (B, L, H, D) operand lives: offset + b*batch + t*token + h*head + d. */
export interface TensorView {
  offset: number;
  batchStride: number;
  tokenStride: number;
  headStride: number;
}

/** Dense layouts: "bthd" is (B, L, H, D) (projection output), "bhtd" is (B, H, L, D). */
export function denseView(layout: "bthd" | "bhtd", length: number, heads: number, headDim: number, offset = 0): TensorView {
  return layout === "bthd"
    ? { offset, batchStride: length * heads * headDim, tokenStride: heads * headDim, headStride: headDim }
    : { offset, batchStride: heads * length * headDim, tokenStride: headDim, headStride: length * headDim };
}

/** dK and dV as the attention backward writes them: the halves of one (2, B, S, Hkv, D) buffer, each dense (B, S, Hkv, D). */
export function keyValueGradientViews(batch: number, keyLength: number, kvHeads: number, headDim: number): { dk: TensorView; dv: TensorView } {
  return { dk: denseView("bthd", keyLength, kvHeads, headDim), dv: denseView("bthd", keyLength, kvHeads, headDim, batch * keyLength * kvHeads * headDim) };
}

/**
 * Views of Q, K and V inside one fused projection output laid out (B, T, Hq + 2*Hkv, D) with the
 * heads of Q, then K, then V (Baichuan W_pack and ChatGLM2 query_key_value order, models.md §6.1).
 */
export function fusedQkvViews(length: number, queryHeads: number, kvHeads: number, headDim: number): { q: TensorView; k: TensorView; v: TensorView } {
  const row = (queryHeads + 2 * kvHeads) * headDim;
  const at = (offset: number): TensorView => ({ offset, batchStride: length * row, tokenStride: row, headStride: headDim });
  return { q: at(0), k: at(queryHeads * headDim), v: at((queryHeads + kvHeads) * headDim) };
}

/** Index of element (b, t, h, d) in the view's buffer. */
export function viewIndex(view: TensorView, b: number, t: number, h: number, d: number): number {
  return view.offset + b * view.batchStride + t * view.tokenStride + h * view.headStride + d;
}

/** Elements a buffer needs to hold the whole view. */
function viewExtent(view: TensorView, batch: number, length: number, heads: number, headDim: number): number {
  return viewIndex(view, batch - 1, length - 1, heads - 1, headDim - 1) + 1;
}

/** The uniforms that carry a view named `name` (all u32). */
export function viewUniforms(name: string): Record<string, "u32"> {
  return { [`${name}_offset`]: "u32", [`${name}_sb`]: "u32", [`${name}_st`]: "u32", [`${name}_sh`]: "u32" };
}

export function viewUniformValues(name: string, view: TensorView): Record<string, number> {
  return {
    [`${name}_offset`]: view.offset,
    [`${name}_sb`]: view.batchStride,
    [`${name}_st`]: view.tokenStride,
    [`${name}_sh`]: view.headStride,
  };
}

/** WGSL `NAME_at(b, t, h) -> u32`: the index of head dim 0 of that row. */
export function wgslViewIndex(name: string): string {
  return `fn ${name}_at(b: u32, t: u32, h: u32) -> u32 { return u.${name}_offset + b * u.${name}_sb + t * u.${name}_st + h * u.${name}_sh; }`;
}

/** Scatters a dense (B, H, L, D) array into a buffer of the view's extent through `view` (gatherView's inverse). */
export function scatterView(dense: ArrayLike<number>, view: TensorView, shape: [number, number, number, number]): Float64Array {
  const [B, H, L, D] = shape;
  const out = new Float64Array(viewExtent(view, B, L, H, D));
  let i = 0;
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let t = 0; t < L; t++) for (let d = 0; d < D; d++) out[viewIndex(view, b, t, h, d)] = dense[i++];
  return out;
}

/** Copies a view out of its buffer into a dense (B, H, L, D) array. */
export function gatherView(buffer: ArrayLike<number>, view: TensorView, batch: number, length: number, heads: number, headDim: number): Float64Array {
  const out = new Float64Array(batch * heads * length * headDim);
  let o = 0;
  for (let b = 0; b < batch; b++)
    for (let h = 0; h < heads; h++)
      for (let t = 0; t < length; t++) for (let d = 0; d < headDim; d++) out[o++] = buffer[viewIndex(view, b, t, h, d)];
  return out;
}
