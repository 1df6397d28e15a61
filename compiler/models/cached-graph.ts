// One generation step of a family's model with a KV cache, as an op graph: `fresh` new tokens per
// sequence attend to `past` cached keys/values plus their own, and the graph returns the logits
// of the last new token and the new tokens' keys and values, for the cache to keep. With
// past = 0 it is the prefill of a prompt; with fresh = 1 it is a decode step that evaluates only
// the new position, whose attention (cached_attention) reads the cache in place and the new key
// and value apart, so nothing of the cache is copied in a step. Several new tokens over a past
// (the GPU's prompt over its one placeholder key) attend to the concatenation, which the graph
// also returns (all_keys, all_values) for the cache to keep. The layer structure (norms, residual styles, MLP, head) follows the family
// graph (compiler/models/family-graph.ts), whose weights it reuses by name; the attention differs
// only in its keys and values: the cache's rows, then the new ones (after RoPE, as HF caches them).
// The cache may be f16 beside f32 activations (a 16-bit model's, half the memory): a decode step's
// attention reads it so; a prompt widens its placeholder past and rounds what it hands the cache.
// B = batch, P = past, T = fresh, C = hidden, H = heads, KV = key/value heads, D = head dim.
import { ok, type Result } from "../diagnostics.ts";
import * as b from "../ir/build.ts";
import { graph, type DType, type Graph, type Node } from "../ir/node.ts";
import { layerStack, qkvHeads, type BlockContext, type LinearRole, type NormRole } from "./family-blocks.ts";
import { buildFamilyGraph, type FamilyGraph, type TrainingMethod } from "./family-graph.ts";
import { INPUT, positionStreams, usesRopeTables } from "./family-inputs.ts";
import { linear, loraParamNames, type LoraAdapter } from "./lora-linear.ts";
import type { ModelConfig } from "../../stdlib/families/config.ts";
import type { Family, ParamRole } from "../../stdlib/families/family.ts";

/**
 * Names of the cache inputs (B, P, KV, D), the new keys/values outputs (B, T, KV, D) (a prompt
 * without a past, a decode step), the past and new keys/values outputs (B, P + T, KV, D) instead
 * when P > 0 and T > 1, and the valid key range
 * [start, end) of each row (B, 2): rows of different lengths are left-padded. Over the
 * concatenation the range ends at P + T; in a decode step (T = 1) it ends at the cached length
 * plus one, the cache's positions ending where the new key is attended (cached_attention).
 */
export const CACHE = {
  keyRange: "key_range",
  pastKey: (layer: number) => `past_key.${layer}`,
  pastValue: (layer: number) => `past_value.${layer}`,
  key: (layer: number) => `key.${layer}`,
  value: (layer: number) => `value.${layer}`,
  allKeys: (layer: number) => `all_keys.${layer}`,
  allValues: (layer: number) => `all_values.${layer}`,
} as const;

/**
 * The outputs of step graph `g` that a device cache copies out as soon as they are written (the
 * concatenations a prompt's step returns, all_keys.L and all_values.L): compiled with these as
 * PlanOptions.copiedOut, a prompt's step holds a layer's keys and values until its attention has
 * read them, not every layer's to the step's end.
 */
export function copiedOutputs(g: Graph): Set<string> {
  const concatenation = (name: string) => {
    const layer = Number(name.slice(name.lastIndexOf(".") + 1));
    return Number.isInteger(layer) && (name === CACHE.allKeys(layer) || name === CACHE.allValues(layer));
  };
  return new Set([...g.outputs.keys()].filter(concatenation));
}

/** The dtypes a KV cache can be kept in (the activations stay f32): compiler/plan/storage.ts kvCacheDtype chooses. */
export type CacheDType = "f32" | "f16";

/** Cached positions a device cache gives a prompt: one placeholder key, outside every row's key range. */
export const PROMPT_PLACEHOLDER_KEYS = 1;

/** Cached positions per bucket by default. */
export const CACHE_BUCKET = 64;

/** The cache's capacity for rows ending at `end`: the bucket with room for the next decode step's key. */
export function cacheCapacity(end: number, bucket: number): number {
  return Math.ceil((end + 1) / bucket) * bucket;
}

export interface CachedStepShape {
  batch: number;
  past: number;
  fresh: number;
}

/** Whether a step of `shape` reads the cache in place (cached_attention): one new token per row over a past. */
export function readsCacheInPlace(shape: CachedStepShape): boolean {
  return shape.past > 0 && shape.fresh === 1;
}

/**
 * The step graph: outputs `logits` (B, V) and, per layer, `key.L` and `value.L` (`all_keys.L` and
 * `all_values.L` instead with a past and several new tokens). Its parameters are f32 unless `weightDtypes` names them. With a
 * LoRA `method` (an adapter's), the adapted linears add their low-rank path unmerged, as in
 * training: a frozen weight kept in 16 bits does not round the adapter's update away. The cache
 * (past inputs, all_keys.L and all_values.L) is in `cache`'s dtype; key.L and value.L stay f32,
 * rounded as they are appended.
 */
export function buildCachedStep(
  family: Family,
  config: ModelConfig,
  shape: CachedStepShape,
  weightDtypes?: ReadonlyMap<string, DType>,
  method: TrainingMethod = { kind: "full" },
  cache: CacheDType = "f32",
): Result<Graph> {
  // the family graph names and shapes every parameter
  const full = buildFamilyGraph(family, config, { batch: 1, seq: 2, weightDtypes, method });
  if (!full.ok) return full;
  return ok(cachedStepGraph(family, config, shape, full.value, method, cache));
}

/**
 * buildCachedStep's graph over the parameters of `full`, a family graph built with `method` (at any
 * batch and sequence: the parameters' shapes depend on neither), so that steps of several shapes
 * can share one family graph.
 */
export function cachedStepGraph(
  family: Family,
  config: ModelConfig,
  shape: CachedStepShape,
  full: Pick<FamilyGraph, "weights" | "adapters">,
  method: TrainingMethod,
  cache: CacheDType = "f32",
): Graph {
  const { batch: B, past: P, fresh: T } = shape;
  const dims = config.dims;
  // a linear's bias is its weight's sibling in the family graph's parameters
  const params = full.weights;
  const adapters = full.adapters;
  const adapterOf = (weight: string): LoraAdapter | null => {
    const names = loraParamNames(weight);
    const [a, up] = [adapters.get(names.a), adapters.get(names.b)];
    return a && up && method.kind === "lora" ? { a, b: up, scale: method.alpha / method.rank } : null;
  };
  const weightName = (role: ParamRole, layer: number | null) => {
    const decl = family.tensors.find((t) => t.role === role)!;
    return layer === null ? decl.name : decl.name.replaceAll("{layer}", String(layer));
  };
  const project = (x: Node, role: LinearRole, layer: number | null): Node => {
    const name = weightName(`${role}.weight`, layer);
    return linear(x, params.get(name)!, params.get(name.replace(/\.weight$/, ".bias")) ?? null, adapterOf(name));
  };
  const norm = (x: Node, prefix: NormRole, layer: number | null): Node => {
    const name = weightName(`${prefix}.weight`, layer);
    const w = params.get(name)!;
    if (family.norm.kind === "rmsnorm") return b.rmsNorm(x, w, dims.normEps);
    return b.layerNorm(x, w, params.get(name.replace(/\.weight$/, ".bias")) ?? b.fill(0, w), dims.normEps);
  };

  const streams = positionStreams(family);
  const tables = usesRopeTables(family);
  const rotaryInputs = {
    positions: streams > 0 && !tables ? b.input(INPUT.positions, [B, T, streams], "i32") : null,
    cos: tables ? b.input(INPUT.cos, [B, T, streams, dims.rotaryDims / 2]) : null,
    sin: tables ? b.input(INPUT.sin, [B, T, streams, dims.rotaryDims / 2]) : null,
  };
  const prefixLength = family.attention.mask.kind === "glm_prefix" ? b.input(INPUT.prefixLength, [B], "i32") : null;
  const keyRange = b.input(CACHE.keyRange, [B, 2], "i32");
  const ctx: BlockContext = { family, dims, project, norm, rotary: rotaryInputs, prefixLength, rotateTogether: true };
  const outputs: [string, Node][] = [];

  const attend = (a: Node, layer: number): Node => {
    const D = dims.headDim;
    const { q, k, v } = qkvHeads(ctx, a, layer); // (B, T, H, D), (B, T, KV, D), (B, T, KV, D)
    // over a concatenation the cache keeps all_keys.L and all_values.L, which hold these rows too
    if (P === 0 || readsCacheInPlace(shape)) outputs.push([CACHE.key(layer), k], [CACHE.value(layer), v]);
    const past = (name: string) => b.input(name, [B, P, dims.kvHeads, D], cache); // (B, P, KV, D)
    // a prompt attends to its own keys as computed (f32) and hands the cache their stored dtype
    const cached = (name: string, fresh: Node, all: string) => {
      if (P === 0) return fresh;
      const joined = b.concat([b.cast(past(name), fresh.dtype), fresh], 1); // (B, P + T, KV, D)
      outputs.push([all, b.cast(joined, cache)]);
      return joined;
    };
    const mask = family.attention.mask;
    const attrs = { scale: 1 / Math.sqrt(D), causal: true, prefix: mask.kind === "glm_prefix", padding: true, segments: false, alibi: family.position.kind === "alibi" };
    const masks = [...(prefixLength ? [prefixLength] : []), keyRange];
    // a decode step reads the cache in place; otherwise the queries are the last T of P + T key
    // positions: the causal mask offsets them by P
    const out =
      readsCacheInPlace(shape)
        ? b.cachedAttention(q, past(CACHE.pastKey(layer)), past(CACHE.pastValue(layer)), k, v, attrs, masks)
        : b.attention(q, cached(CACHE.pastKey(layer), k, CACHE.allKeys(layer)), cached(CACHE.pastValue(layer), v, CACHE.allValues(layer)), attrs, masks);
    return project(b.reshape(out, [B, T, dims.heads * D]), "attn.out", layer);
  };

  const table = params.get(weightName("embed.weight", null))!;
  const x = layerStack(ctx, b.embedding(table, b.input(INPUT.ids, [B, T], "i32")), attend); // (B, T, C)
  const last = b.reshape(b.slice(norm(x, "final_norm", null), 1, T - 1, T), [B, dims.hidden]); // (B, C)
  const logits = config.tiedHead ? b.matmul(last, table, { transB: true }) : project(last, "head", null); // (B, V)
  // the cache's outputs first: launches run depth-first from the outputs (compiler/passes/schedule.ts),
  // so each layer's rounding of its keys for an f16 cache runs as soon as they are joined, not
  // after the last layer with every layer's joined keys held until then
  return graph([...outputs, ["logits", logits]]);
}
