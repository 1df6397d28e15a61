// Generation with a KV cache: a prompt runs once (prefill), then each step evaluates only the new
// position against the cached keys and values (cached-graph.ts). A `StepRunner` executes each
// step's graph: the float64 interpreter (the CPU backend) or the WebGPU executor (gpu-runner.ts);
// the cache is kept here, on the host, as the step graph's inputs and outputs. Each
// sequence keeps its keys and values per layer as one chunk per position, so a beam reorder
// shares the parents' chunks instead of copying them: the layout a GPU cache gathers by row.
// Positions, GLM's 2D positions and prefix length are those of the whole sequence
// (familyFeeds), taken at the new rows: models.md §6.9's [mask_pos, len − context_len].
// Sequences of different lengths run as one left-padded batch, masked by key ranges.
import { invariant } from "../../compiler/diagnostics.ts";
import type { Result } from "../../compiler/diagnostics.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import type { Graph } from "../../compiler/ir/node.ts";
import { familyFeeds, INPUT } from "../../compiler/models/family-inputs.ts";
import type { ModelConfig } from "../../stdlib/families/config.ts";
import type { Family } from "../../stdlib/families/family.ts";
import { buildCachedStep, CACHE } from "./cached-graph.ts";
import { checkPrompt } from "./cpu-model.ts";
import type { GenerationModel, GenerationSession } from "./model.ts";

/** Runs one step graph with its feeds; returns every output. */
export interface StepRunner {
  /** Where it runs, for messages. */
  readonly backend: string;
  run(g: Graph, feeds: ReadonlyMap<string, Float64Array>): Promise<Map<string, Float64Array>>;
}

/** The float64 interpreter as a step runner: the CPU reference. */
export const interpreterRunner: StepRunner = {
  backend: "CPU reference (float64 interpreter, KV cache)",
  async run(g, feeds) {
    const result = interpret(g, feeds);
    invariant(result.ok, `interpreting the cached step: ${result.ok ? "" : result.diagnostics.map((d) => d.message).join("; ")}`);
    return result.value;
  },
};

export interface CachedModelOptions {
  family: Family;
  config: ModelConfig;
  /** Checkpoint weights by graph name (a LoRA adapter merged into them: see mergeLora). */
  weights: ReadonlyMap<string, Float64Array>;
}

interface CachedSequence {
  ids: number[];
  /** [layer][position]: (KV · D) each, keys after RoPE. */
  keys: Float64Array[][];
  values: Float64Array[][];
}

export class CachedGenerationModel implements GenerationModel {
  readonly backend: string;
  readonly vocabSize: number;
  readonly maxPositions: number;

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
    const layers = this.o.config.dims.layers;
    const sequences = prompts.map((p) => ({ ids: [...p], keys: Array.from({ length: layers }, () => []), values: Array.from({ length: layers }, () => []) }));
    const logits = await this.advance(sequences, (s) => s.ids.length);
    return { session: new CachedSession(this, sequences), logits };
  }

  /**
   * Runs the last `fresh(s)` ids of every sequence against its cache in one batch; appends their
   * keys and values. Rows of different lengths are left-padded: pad keys lie outside each row's
   * key range, and positions, GLM's prefix length and RoPE tables are the row's own, shifted
   * right by its padding, so every row computes what it would alone. Either every row is a
   * prompt (no cache yet) or every row adds the same number of tokens.
   */
  async advance(batch: readonly CachedSequence[], fresh: (s: CachedSequence) => number): Promise<Float32Array[]> {
    const { family, config } = this.o;
    const { layers, vocab, kvHeads, headDim } = config.dims;
    const B = batch.length;
    const T = Math.max(...batch.map(fresh));
    const L = Math.max(...batch.map((s) => s.ids.length));
    const P = L - T;
    invariant(batch.every((s) => s.ids.length === fresh(s) || fresh(s) === T), "a batch step either starts every row or adds the same tokens to each");
    const pads = batch.map((s) => L - s.ids.length);
    const built = buildCachedStep(family, config, { batch: B, past: P, fresh: T });
    invariant(built.ok, "the cached step graph builds for any shape the family graph builds");

    const feeds = new Map<string, Float64Array>(this.o.weights);
    const padded = batch.map((s, r) => [...new Array<number>(pads[r]).fill(0), ...s.ids]); // (B, L)
    feeds.set(INPUT.ids, Float64Array.from(padded.flatMap((ids) => ids.slice(P))));
    feeds.set(CACHE.keyRange, Float64Array.from(pads.flatMap((pad) => [pad, L])));
    const own = batch.map((s) => familyFeeds(family, config, { ids: [s.ids], labels: [s.ids.map(() => -100)] }));
    for (const name of [INPUT.positions, INPUT.cos, INPUT.sin]) {
      if (!own[0].ok || !own[0].value.has(name)) continue;
      // (1, len, ...) per row -> left-padded to L -> the last T positions
      feeds.set(name, Float64Array.from(own.flatMap((f, r) => {
        invariant(f.ok, "generation feeds are checked at the prompt");
        const values = f.value.get(name)!;
        const width = values.length / batch[r].ids.length;
        return [...new Float64Array(pads[r] * width), ...values].slice(P * width);
      })));
    }
    if (family.attention.mask.kind === "glm_prefix") {
      feeds.set(INPUT.prefixLength, Float64Array.from(own, (f, r) => (f.ok ? f.value.get(INPUT.prefixLength)![0] + pads[r] : 0)));
    }
    const width = kvHeads * headDim;
    for (let layer = 0; layer < layers && P > 0; layer++) {
      feeds.set(CACHE.pastKey(layer), padRows(batch.map((s) => s.keys[layer]), P, width));
      feeds.set(CACHE.pastValue(layer), padRows(batch.map((s) => s.values[layer]), P, width));
    }
    const result = await this.runner.run(built.value, feeds);
    for (let layer = 0; layer < layers; layer++) {
      const keys = result.get(CACHE.key(layer))!; // (B, T, KV, D)
      const values = result.get(CACHE.value(layer))!;
      batch.forEach((s, r) => {
        for (let t = T - fresh(s); t < T; t++) {
          const at = (r * T + t) * width;
          s.keys[layer].push(keys.slice(at, at + width));
          s.values[layer].push(values.slice(at, at + width));
        }
      });
    }
    const logits = result.get("logits")!; // (B, V)
    return batch.map((_, r) => Float32Array.from(logits.subarray(r * vocab, (r + 1) * vocab)));
  }
}

/** Each row's cached positions (`width` values each), left-padded with zeros to P: (B, P, width). */
function padRows(rows: readonly Float64Array[][], P: number, width: number): Float64Array {
  const out = new Float64Array(rows.length * P * width);
  rows.forEach((row, r) => row.forEach((chunk, p) => out.set(chunk, (r * P + P - row.length + p) * width)));
  return out;
}

class CachedSession implements GenerationSession {
  constructor(
    private readonly model: CachedGenerationModel,
    private sequences: CachedSequence[],
  ) {}

  get size(): number {
    return this.sequences.length;
  }

  async append(tokens: readonly number[]): Promise<Float32Array[]> {
    invariant(tokens.length === this.sequences.length, `append: ${tokens.length} tokens for ${this.sequences.length} sequences`);
    this.sequences.forEach((s, i) => s.ids.push(tokens[i]));
    return this.model.advance(this.sequences, () => 1);
  }

  async reorder(sources: readonly number[]): Promise<void> {
    // new lists of the same chunks: a forked beam shares its parent's cache rows
    this.sequences = sources.map((i) => {
      const s = this.sequences[i];
      return { ids: [...s.ids], keys: s.keys.map((l) => [...l]), values: s.values.map((l) => [...l]) };
    });
  }

  free(): void {
    this.sequences = [];
  }
}
