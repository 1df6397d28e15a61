// The CPU backend with a KV cache: a prompt runs once (prefill), then each step evaluates only
// the new position against the cached keys and values (cached-graph.ts), in float64. Each
// sequence keeps its keys and values per layer as one chunk per position, so a beam reorder
// shares the parents' chunks instead of copying them: the layout a GPU cache gathers by row.
// Positions, GLM's 2D positions and prefix length are those of the whole sequence
// (familyFeeds), taken at the new rows: models.md §6.9's [mask_pos, len − context_len].
import { invariant } from "../../compiler/diagnostics.ts";
import type { Result } from "../../compiler/diagnostics.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import { familyFeeds, INPUT } from "../../compiler/models/family-inputs.ts";
import type { ModelConfig } from "../../stdlib/families/config.ts";
import type { Family } from "../../stdlib/families/family.ts";
import { buildCachedStep, CACHE } from "./cached-graph.ts";
import { checkPrompt } from "./cpu-model.ts";
import type { GenerationModel, GenerationSession } from "./model.ts";

export interface CpuCachedModelOptions {
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

export class CpuCachedGenerationModel implements GenerationModel {
  readonly backend = "CPU reference (float64 interpreter, KV cache)";
  readonly vocabSize: number;
  readonly maxPositions: number;

  constructor(private readonly o: CpuCachedModelOptions) {
    this.vocabSize = o.config.dims.vocab;
    this.maxPositions = o.config.dims.maxPositions;
  }

  check(prompt: readonly number[]): Result<void> {
    return checkPrompt(this.o.family, this.o.config, prompt);
  }

  async start(prompts: readonly (readonly number[])[]): Promise<{ session: GenerationSession; logits: Float32Array[] }> {
    const layers = this.o.config.dims.layers;
    const sequences = prompts.map((p) => ({ ids: [...p], keys: Array.from({ length: layers }, () => []), values: Array.from({ length: layers }, () => []) }));
    const logits = this.advance(sequences, (s) => s.ids.length);
    return { session: new CachedSession(this, sequences), logits };
  }

  /** Runs the last `fresh(s)` ids of every sequence against its cache; appends their keys and values. */
  advance(sequences: readonly CachedSequence[], fresh: (s: CachedSequence) => number): Float32Array[] {
    const out = new Array<Float32Array>(sequences.length);
    const groups = new Map<string, number[]>();
    sequences.forEach((s, i) => {
      const key = `${s.ids.length - fresh(s)}+${fresh(s)}`;
      groups.set(key, [...(groups.get(key) ?? []), i]);
    });
    for (const [key, rows] of groups) {
      const [past, count] = key.split("+").map(Number);
      const logits = this.step(rows.map((i) => sequences[i]), past, count);
      rows.forEach((i, r) => (out[i] = logits[r]));
    }
    return out;
  }

  private step(batch: readonly CachedSequence[], P: number, T: number): Float32Array[] {
    const { family, config } = this.o;
    const { layers, vocab, kvHeads, headDim } = config.dims;
    const B = batch.length;
    const built = buildCachedStep(family, config, { batch: B, past: P, fresh: T });
    invariant(built.ok, "the cached step graph builds for any shape the family graph builds");
    const full = familyFeeds(family, config, { ids: batch.map((s) => s.ids), labels: batch.map((s) => s.ids.map(() => -100)) });
    invariant(full.ok, "generation feeds are checked at the prompt");
    const feeds = new Map<string, Float64Array>(this.o.weights);
    feeds.set(INPUT.ids, Float64Array.from(batch.flatMap((s) => s.ids.slice(P))));
    // position-like feeds are (B, P + T, ...): keep each row's last T positions
    for (const name of [INPUT.positions, INPUT.cos, INPUT.sin]) {
      const values = full.value.get(name);
      if (!values) continue;
      const perRow = values.length / B;
      const perPosition = perRow / (P + T);
      feeds.set(name, Float64Array.from(batch.flatMap((_, r) => [...values.subarray(r * perRow + P * perPosition, (r + 1) * perRow)])));
    }
    const prefix = full.value.get(INPUT.prefixLength);
    if (prefix) feeds.set(INPUT.prefixLength, prefix);
    const width = kvHeads * headDim;
    for (let layer = 0; layer < layers && P > 0; layer++) {
      feeds.set(CACHE.pastKey(layer), concatRows(batch.map((s) => s.keys[layer]), width));
      feeds.set(CACHE.pastValue(layer), concatRows(batch.map((s) => s.values[layer]), width));
    }
    const result = interpret(built.value, feeds);
    invariant(result.ok, `interpreting the cached step: ${result.ok ? "" : result.diagnostics.map((d) => d.message).join("; ")}`);
    for (let layer = 0; layer < layers; layer++) {
      const keys = result.value.get(CACHE.key(layer))!; // (B, T, KV, D)
      const values = result.value.get(CACHE.value(layer))!;
      batch.forEach((s, r) => {
        for (let t = 0; t < T; t++) {
          const at = (r * T + t) * width;
          s.keys[layer].push(keys.slice(at, at + width));
          s.values[layer].push(values.slice(at, at + width));
        }
      });
    }
    const logits = result.value.get("logits")!; // (B, V)
    return batch.map((_, r) => Float32Array.from(logits.subarray(r * vocab, (r + 1) * vocab)));
  }
}

/** Rows of `rows[b][p]` (each `width` values) as one (B, P, width) array. */
function concatRows(rows: readonly Float64Array[][], width: number): Float64Array {
  const out = new Float64Array(rows.length * rows[0].length * width);
  let at = 0;
  for (const row of rows)
    for (const chunk of row) {
      out.set(chunk, at);
      at += width;
    }
  return out;
}

class CachedSession implements GenerationSession {
  constructor(
    private readonly model: CpuCachedGenerationModel,
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
