// Embedding lookup and its gradient. The gradient scatter-adds rows of d_out into the table
// gradient without float atomics: the host groups token positions by token id (a CSR plan,
// positions in ascending order), and one workgroup per distinct token sums its rows in that
// order, so the result is bitwise reproducible.
import type { StorageDType } from "./dtype.ts";
import { elementwiseKernel, writableDType } from "./elementwise.ts";
import { linearGrid, WGSL_FLAT_WORKGROUP, type KernelSpec } from "./kernel.ts";

const GRAD_WORKGROUP = 64;

/**
 * out[t, :] = table[ids[t], :]; uniforms n = tokens * dim, dim, vocab. An id outside
 * [0, vocab) yields a zero row (the data loader validates ids; this keeps reads in bounds).
 * Bindings: ids (i32, tokens), table (dtype, (vocab, dim)), out (out dtype, (tokens, dim)).
 */
export function embeddingForward(dtype: StorageDType, out: StorageDType = writableDType(dtype)): KernelSpec {
  return elementwiseKernel({
    name: "embedding_forward",
    variant: { dtype, out },
    uniforms: { dim: "u32", vocab: "u32" },
    bindings: [
      { name: "ids", dtype: "i32", access: "read" },
      { name: "table", dtype, access: "read" },
      { name: "out", dtype: out, access: "read_write" },
    ],
    perElement: `  let t = i / u.dim;
  let id = ids[t];
  var v = 0.0;
  if (id >= 0 && u32(id) < u.vocab) { v = load_table(u32(id) * u.dim + i % u.dim); }
  store_out(i, v);`,
  });
}

/** Token positions grouped by id: positions[offsets[j] .. offsets[j+1]) hold token unique[j]. */
export interface EmbeddingGradPlan {
  unique: Int32Array;
  offsets: Uint32Array;
  positions: Uint32Array;
}

/** Groups the positions of `ids` by token id (ids ascending, positions ascending within an id). */
export function embeddingGradPlan(ids: ArrayLike<number>): EmbeddingGradPlan {
  const order = Array.from({ length: ids.length }, (_, t) => t).sort((a, b) => ids[a] - ids[b] || a - b);
  const unique: number[] = [];
  const offsets: number[] = [];
  order.forEach((t, k) => {
    if (k === 0 || ids[t] !== ids[order[k - 1]]) {
      unique.push(ids[t]);
      offsets.push(k);
    }
  });
  offsets.push(order.length);
  return { unique: Int32Array.from(unique), offsets: Uint32Array.from(offsets), positions: Uint32Array.from(order) };
}

/**
 * d_table[unique[j], :] (+)= sum of d_out[positions[k], :] over the group of j. Rows of tokens
 * that do not occur are untouched. Uniforms groups (= unique.length), dim.
 * Bindings: unique (i32), offsets (u32), positions (u32), d_out (f32), d_table (f32).
 */
export function embeddingBackward(accumulate: boolean): KernelSpec {
  return {
    name: "embedding_backward",
    variant: { accumulate },
    uniforms: { groups: "u32", dim: "u32" },
    bindings: [
      { name: "unique", dtype: "i32", access: "read" },
      { name: "offsets", dtype: "u32", access: "read" },
      { name: "positions", dtype: "u32", access: "read" },
      { name: "d_out", dtype: "f32", access: "read" },
      { name: "d_table", dtype: "f32", access: "read_write" },
    ],
    workgroupSize: [GRAD_WORKGROUP, 1, 1],
    dispatch: (u) => linearGrid(u.groups),
    declarations: WGSL_FLAT_WORKGROUP,
    body: `  let j = flat_workgroup_id(wid, nwg);
  if (j >= u.groups) { return; }
  let row = u32(unique[j]) * u.dim;
  let first = offsets[j];
  let last = offsets[j + 1u];
  for (var c = lidx; c < u.dim; c += WG_X) {
    var s = ${accumulate ? "load_d_table(row + c)" : "0.0"};
    for (var k = first; k < last; k++) { s += load_d_out(positions[k] * u.dim + c); }
    store_d_table(row + c, s);
  }`,
  };
}

// ---- float64 CPU references ----

export function embeddingForwardRef(ids: ArrayLike<number>, table: Float64Array, vocab: number, dim: number): Float64Array {
  const out = new Float64Array(ids.length * dim);
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t];
    if (id >= 0 && id < vocab) out.set(table.subarray(id * dim, (id + 1) * dim), t * dim);
  }
  return out;
}

export function embeddingBackwardRef(ids: ArrayLike<number>, dOut: Float64Array, vocab: number, dim: number): Float64Array {
  const dTable = new Float64Array(vocab * dim);
  for (let t = 0; t < ids.length; t++) for (let c = 0; c < dim; c++) dTable[ids[t] * dim + c] += dOut[t * dim + c];
  return dTable;
}
