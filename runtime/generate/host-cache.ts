// The KV cache on the host, for a runner that evaluates step graphs from host arrays (the float64
// interpreter): each row keeps its keys and values per layer as one chunk per position, fed to the
// step graph as its past inputs and appended from its outputs, rounded to f16 where the cache is
// (as a GPU's f16 cache stores them). A beam reorder shares the parents' chunks instead of copying them.
import type { Graph } from "../../compiler/ir/node.ts";
import { CACHE, type CacheDType, type CachedStepShape } from "../../compiler/models/cached-graph.ts";
import { roundToDType } from "../../stdlib/kernels/dtype.ts";
import type { CacheDims, StepCache } from "./cached-model.ts";

/** Evaluates a step graph from host feeds, returning every output. */
export type HostStep = (g: Graph, feeds: ReadonlyMap<string, Float64Array>) => Promise<Map<string, Float64Array>>;

interface Row {
  /** [layer][position]: (KV · D) each, keys after RoPE. */
  keys: Float64Array[][];
  values: Float64Array[][];
}

/** A host-resident cache whose steps run through `run`, keeping float64 values, or f16 ones for an f16 `dtype`. */
export function hostCache(dims: CacheDims, run: HostStep, dtype: CacheDType = "f32"): StepCache {
  const keep = (chunk: Float64Array) => (dtype === "f16" ? roundToDType("f16", chunk) : chunk);
  let rows: Row[] = [];
  const emptyRow = (): Row => ({ keys: Array.from({ length: dims.layers }, () => []), values: Array.from({ length: dims.layers }, () => []) });
  return {
    pastLength: (past) => past,
    async step(g, feeds, shape, fresh) {
      const { batch: B, past: P, fresh: T } = shape;
      if (rows.length === 0) rows = Array.from({ length: B }, emptyRow);
      const all = new Map(feeds);
      for (let layer = 0; layer < dims.layers && P > 0; layer++) {
        all.set(CACHE.pastKey(layer), padRows(rows.map((s) => s.keys[layer]), shape, dims.width));
        all.set(CACHE.pastValue(layer), padRows(rows.map((s) => s.values[layer]), shape, dims.width));
      }
      const result = await run(g, all);
      for (let layer = 0; layer < dims.layers; layer++) {
        const keys = result.get(CACHE.key(layer))!; // (B, T, KV, D)
        const values = result.get(CACHE.value(layer))!;
        rows.forEach((s, r) => {
          for (let t = T - fresh[r]; t < T; t++) {
            const at = (r * T + t) * dims.width;
            s.keys[layer].push(keep(keys.slice(at, at + dims.width)));
            s.values[layer].push(keep(values.slice(at, at + dims.width)));
          }
        });
      }
      return result.get("logits")!;
    },
    async reorder(sources) {
      // new lists of the same chunks: a forked beam shares its parent's cache rows
      rows = sources.map((i) => ({ keys: rows[i].keys.map((l) => [...l]), values: rows[i].values.map((l) => [...l]) }));
    },
    free() {
      rows = [];
    },
  };
}

/** Each row's cached positions (`width` values each), left-padded with zeros to P: (B, P, width). */
function padRows(rows: readonly Float64Array[][], shape: CachedStepShape, width: number): Float64Array {
  const { batch: B, past: P } = shape;
  const out = new Float64Array(B * P * width);
  rows.forEach((row, r) => row.forEach((chunk, p) => out.set(chunk, (r * P + P - row.length + p) * width)));
  return out;
}
