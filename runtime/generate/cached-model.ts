// Generation with a KV cache: a prompt runs once (prefill), then each step evaluates only the new
// position against the cached keys and values (compiler/models/cached-graph.ts). A `StepRunner` executes the step
// graphs and keeps the cache of a session where it runs: on the host for the float64 interpreter
// (host-cache.ts, the CPU reference), on the device for the GPU (gpu-runner.ts). The cache lays
// each row's positions right-aligned at the longest row's length in a past of the length it
// chooses (at least that; the GPU rounds it up to a bucket so steps share compiled executors and
// appends each new key in place), the rest masked by key ranges. Positions, GLM's 2D positions and prefix length are those of the whole sequence,
// computed for the new rows only (positionFeeds): models.md §6.9's [mask_pos, len − context_len].
// Sequences of different lengths run as one left-padded batch, masked by key ranges.
import { invariant } from "../../compiler/diagnostics.ts";
import type { Result } from "../../compiler/diagnostics.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import type { DType, Graph } from "../../compiler/ir/node.ts";
import { INPUT, positionFeeds } from "../../compiler/models/family-inputs.ts";
import type { TrainingMethod } from "../../compiler/models/family-graph.ts";
import type { ModelConfig } from "../../stdlib/families/config.ts";
import type { Family } from "../../stdlib/families/family.ts";
import { buildCachedStep, CACHE, readsCacheInPlace, type CacheDType, type CachedStepShape } from "../../compiler/models/cached-graph.ts";
import { checkPrompt } from "./cpu-model.ts";
import { hostCache } from "./host-cache.ts";
import type { GenerationModel, GenerationSession } from "./model.ts";

/** Runs step graphs, keeping each session's KV cache where it runs them. */
export interface StepRunner {
  /** Where it runs, for messages. */
  readonly backend: string;
  /** Weights it stores narrower than f32, by graph name: the step graphs declare them so. */
  readonly weightDtypes?: ReadonlyMap<string, DType>;
  /** The dtype its caches keep keys and values in (f32 where absent): the step graphs declare their past so. */
  readonly cacheDtype?: CacheDType;
  /** An empty cache for one session. */
  openCache(dims: CacheDims): StepCache;
}

/** A cache's size per position: layers, and keys or values of one position, (KV · D). */
export interface CacheDims {
  layers: number;
  width: number;
}

/** The keys and values of one session's rows, and the steps that read and extend them. */
export interface StepCache {
  /** The past length of the step graph when the longest row has `past` cached positions (at least `past`). */
  pastLength(past: number): number;
  /**
   * Runs step graph `g` of `shape` (its past from pastLength) with `feeds`; the cache supplies the
   * past inputs, each row's positions ending at the longest row's length (a decode step's key
   * range ends one after it, cached_attention) or, for several new tokens, at the past's end, then
   * keeps each row's new keys and values: the last `fresh[r]` of its T. Returns the logits (B, V).
   */
  step(g: Graph, feeds: ReadonlyMap<string, Float64Array>, shape: CachedStepShape, fresh: readonly number[]): Promise<Float64Array>;
  /** Row i becomes old row `sources[i]`. */
  reorder(sources: readonly number[]): Promise<void>;
  free(): void;
}

/**
 * The float64 interpreter as a step runner, the CPU reference: its cache keeps float64 keys and
 * values, or with `cacheDtype` f16 rounds them as a GPU's f16 cache stores them.
 */
export function interpreterRunnerOf(cacheDtype: CacheDType = "f32"): StepRunner {
  return {
    backend: `CPU reference (float64 interpreter, ${cacheDtype === "f16" ? "f16 " : ""}KV cache)`,
    cacheDtype,
    openCache: (dims) =>
      hostCache(
        dims,
        async (g, feeds) => {
          const result = interpret(g, feeds);
          invariant(result.ok, `interpreting the cached step: ${result.ok ? "" : result.diagnostics.map((d) => d.message).join("; ")}`);
          return result.value;
        },
        cacheDtype,
      ),
  };
}

/** The CPU reference with a float64 cache. */
export const interpreterRunner: StepRunner = interpreterRunnerOf();

/** Step graphs kept for reuse (the CPU reference's past grows every step; the GPU's by buckets). */
const KEPT_GRAPHS = 8;

export interface CachedModelOptions {
  family: Family;
  config: ModelConfig;
  /** Checkpoint weights by graph name, with an adapter's tensors where `method` is LoRA. */
  weights: ReadonlyMap<string, Float64Array>;
  /** A LoRA adapter's method: its linears add their low-rank path unmerged (compiler/models/cached-graph.ts). */
  method?: TrainingMethod;
}

interface CachedSequence {
  ids: number[];
}

export class CachedGenerationModel implements GenerationModel {
  readonly backend: string;
  readonly vocabSize: number;
  readonly maxPositions: number;
  private readonly graphs = new Map<string, Graph>();

  constructor(
    private readonly o: CachedModelOptions,
    private readonly runner: StepRunner = interpreterRunner,
  ) {
    this.backend = runner.backend;
    this.vocabSize = o.config.dims.vocab;
    this.maxPositions = o.config.dims.maxPositions;
  }

  check(prompt: readonly number[]): Result<void> {
    return checkPrompt(this.o.family, this.o.config, prompt);
  }

  async start(prompts: readonly (readonly number[])[]): Promise<{ session: GenerationSession; logits: Float32Array[] }> {
    const { layers, kvHeads, headDim } = this.o.config.dims;
    const cache = this.runner.openCache({ layers, width: kvHeads * headDim });
    const sequences = prompts.map((p) => ({ ids: [...p] }));
    const logits = await this.advance(cache, sequences, (s) => s.ids.length);
    return { session: new CachedSession(this, cache, sequences), logits };
  }

  /**
   * Runs the last `fresh(s)` ids of every sequence against `cache` in one batch; the cache keeps
   * their keys and values. Rows of different lengths are left-padded: pad keys lie outside each
   * row's key range, and positions, GLM's prefix length and RoPE tables are the row's own,
   * shifted right by its padding, so every row computes what it would alone. Either every row
   * is a prompt (no cache yet) or every row adds the same number of tokens.
   */
  async advance(cache: StepCache, batch: readonly CachedSequence[], fresh: (s: CachedSequence) => number): Promise<Float32Array[]> {
    const { family, config } = this.o;
    const vocab = config.dims.vocab;
    const B = batch.length;
    const T = Math.max(...batch.map(fresh));
    const L = Math.max(...batch.map((s) => s.ids.length));
    const P = L - T;
    invariant(batch.every((s) => s.ids.length === fresh(s) || fresh(s) === T), "a batch step either starts every row or adds the same tokens to each");
    // the cache's past may be longer than P. Over a concatenation (a prompt) the keys end at
    // past + T, each row's right-aligned there, so they start that much further right; a decode
    // step (cached_attention) attends the cache's first P positions and then the new key
    const shape = { batch: B, past: cache.pastLength(P), fresh: T };
    const shift = readsCacheInPlace(shape) ? 0 : shape.past - P;
    const pads = batch.map((s) => L - s.ids.length);
    const g = this.stepGraph(shape);

    const feeds = new Map<string, Float64Array>(this.o.weights);
    const padded = batch.map((s, r) => [...new Array<number>(pads[r]).fill(0), ...s.ids]); // (B, L)
    feeds.set(INPUT.ids, Float64Array.from(padded.flatMap((ids) => ids.slice(P))));
    feeds.set(CACHE.keyRange, Float64Array.from(pads.flatMap((pad) => [pad + shift, P + shift + T])));
    // each row's positions (and tables) of its tokens among the batch's last T, computed for
    // those tokens only; a row shorter than T (a prompt) is left-padded with zeros
    const own = batch.map((s) => positionFeeds(family, config, [s.ids], Math.max(0, s.ids.length - T)));
    for (const name of [INPUT.positions, INPUT.cos, INPUT.sin]) {
      if (!own[0].ok || !own[0].value.has(name)) continue;
      feeds.set(name, Float64Array.from(own.flatMap((f, r) => {
        invariant(f.ok, "generation feeds are checked at the prompt");
        const values = f.value.get(name)!; // (1, kept, ...)
        const kept = Math.min(T, batch[r].ids.length);
        const width = values.length / kept;
        return [...new Float64Array((T - kept) * width), ...values];
      })));
    }
    if (family.attention.mask.kind === "glm_prefix") {
      feeds.set(INPUT.prefixLength, Float64Array.from(own, (f, r) => (f.ok ? f.value.get(INPUT.prefixLength)![0] + pads[r] + shift : 0)));
    }
    const logits = await cache.step(g, feeds, shape, batch.map(fresh)); // (B, V)
    return batch.map((_, r) => Float32Array.from(logits.subarray(r * vocab, (r + 1) * vocab)));
  }

  // One graph per step shape: a decode step reuses its bucket's graph.
  private stepGraph(shape: CachedStepShape): Graph {
    const key = `${shape.batch},${shape.past},${shape.fresh}`;
    let g = this.graphs.get(key);
    if (!g) {
      const built = buildCachedStep(this.o.family, this.o.config, shape, this.runner.weightDtypes, this.o.method, this.runner.cacheDtype);
      invariant(built.ok, "the cached step graph builds for any shape the family graph builds");
      g = built.value;
      this.graphs.set(key, g);
      if (this.graphs.size > KEPT_GRAPHS) this.graphs.delete(this.graphs.keys().next().value!);
    }
    return g;
  }
}

class CachedSession implements GenerationSession {
  constructor(
    private readonly model: CachedGenerationModel,
    private readonly cache: StepCache,
    private sequences: CachedSequence[],
  ) {}

  get size(): number {
    return this.sequences.length;
  }

  async append(tokens: readonly number[]): Promise<Float32Array[]> {
    invariant(tokens.length === this.sequences.length, `append: ${tokens.length} tokens for ${this.sequences.length} sequences`);
    this.sequences.forEach((s, i) => s.ids.push(tokens[i]));
    return this.model.advance(this.cache, this.sequences, () => 1);
  }

  async reorder(sources: readonly number[]): Promise<void> {
    this.sequences = sources.map((i) => ({ ids: [...this.sequences[i].ids] }));
    await this.cache.reorder(sources);
  }

  free(): void {
    this.cache.free();
    this.sequences = [];
  }
}
