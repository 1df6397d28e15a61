// The CPU reference backend of generation without a KV cache: the family graph itself (the one
// training runs, LoRA adapters in the graph) evaluated by the float64 interpreter over the whole
// sequence at every step. It is the reference the cached backends (cached-model.ts, on the
// interpreter or the GPU) are compared with; O(T²) work per step, which tiny models afford.
import { diag, fail, invariant, ok, type Result } from "../../compiler/diagnostics.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import { graph, type Graph } from "../../compiler/ir/node.ts";
import { buildFamilyGraph, type TrainingMethod } from "../../compiler/models/family-graph.ts";
import { familyFeeds } from "../../compiler/models/family-inputs.ts";
import type { ModelConfig } from "../../stdlib/families/config.ts";
import type { Family } from "../../stdlib/families/family.ts";
import type { GenerationModel, GenerationSession } from "./model.ts";

export interface CpuModelOptions {
  family: Family;
  config: ModelConfig;
  /** Every checkpoint weight and, with a LoRA method, every adapter parameter, by graph name. */
  weights: ReadonlyMap<string, Float64Array>;
  /** Default: the base model alone. */
  method?: TrainingMethod;
}

/** The float64 reference model; weights are checked against the graph when it is first built. */
export class CpuGenerationModel implements GenerationModel {
  readonly backend = "CPU reference (float64 interpreter, no KV cache)";
  readonly vocabSize: number;
  readonly maxPositions: number;
  private readonly graphs = new Map<string, Graph>();

  constructor(private readonly o: CpuModelOptions) {
    this.vocabSize = o.config.dims.vocab;
    this.maxPositions = o.config.dims.maxPositions;
  }

  async start(prompts: readonly (readonly number[])[]): Promise<{ session: GenerationSession; logits: Float32Array[] }> {
    const sequences = prompts.map((p) => [...p]);
    return { session: new CpuSession(this, sequences), logits: this.lastLogits(sequences) };
  }

  check(prompt: readonly number[]): Result<void> {
    return checkPrompt(this.o.family, this.o.config, prompt);
  }

  /** Next-token logits of every sequence: one batched run per distinct length. */
  lastLogits(sequences: readonly (readonly number[])[]): Float32Array[] {
    const out = new Array<Float32Array>(sequences.length);
    const byLength = new Map<number, number[]>();
    sequences.forEach((s, i) => byLength.set(s.length, [...(byLength.get(s.length) ?? []), i]));
    for (const [length, rows] of byLength) {
      // The graph builder needs two positions (its loss scores a next token); a lone token runs
      // with one pad after it, which a causal mask keeps from changing the token's own row.
      const T = Math.max(length, 2);
      const batch = rows.map((i) => [...sequences[i], ...new Array<number>(T - length).fill(0)]);
      const logits = this.run(batch); // (B·T, V)
      const V = this.vocabSize;
      rows.forEach((i, b) => (out[i] = Float32Array.from(logits.subarray((b * T + length - 1) * V, (b * T + length) * V))));
    }
    return out;
  }

  private run(batch: readonly (readonly number[])[]): Float64Array {
    const [B, T] = [batch.length, batch[0].length];
    const key = `${B}x${T}`;
    let g = this.graphs.get(key);
    if (!g) {
      const built = buildFamilyGraph(this.o.family, this.o.config, { batch: B, seq: T, method: this.o.method });
      invariant(built.ok, `family graph for ${key}: ${built.ok ? "" : built.diagnostics.map((d) => d.message).join("; ")}`);
      g = graph([["logits", built.value.logits]]);
      this.graphs.set(key, g);
    }
    const labels = batch.map((s) => s.map(() => -100));
    const feeds = familyFeeds(this.o.family, this.o.config, { ids: batch, labels });
    invariant(feeds.ok, "generation feeds are checked at the prompt");
    const result = interpret(g, new Map([...this.o.weights, ...feeds.value]));
    invariant(result.ok, `interpreting the family graph: ${result.ok ? "" : result.diagnostics.map((d) => d.message).join("; ")}`);
    return result.value.get("logits")!;
  }
}

class CpuSession implements GenerationSession {
  constructor(
    private readonly model: CpuGenerationModel,
    private sequences: number[][],
  ) {}

  get size(): number {
    return this.sequences.length;
  }

  async append(tokens: readonly number[]): Promise<Float32Array[]> {
    invariant(tokens.length === this.sequences.length, `append: ${tokens.length} tokens for ${this.sequences.length} sequences`);
    this.sequences.forEach((s, i) => s.push(tokens[i]));
    return this.model.lastLogits(this.sequences);
  }

  async reorder(sources: readonly number[]): Promise<void> {
    this.sequences = sources.map((i) => [...this.sequences[i]]);
  }

  free(): void {
    this.sequences = [];
  }
}

/** Whether `prompt` can run: non-empty, shorter than the positions, ids in the vocabulary, the family's required tokens (GLM's [gMASK] <sop>). */
export function checkPrompt(family: Family, config: ModelConfig, prompt: readonly number[]): Result<void> {
  const { vocab, maxPositions } = config.dims;
  if (prompt.length === 0) return fail(diag("SFT5701", "The prompt has no tokens.", { hint: "Give a non-empty prompt." }));
  if (prompt.length >= maxPositions) {
    return fail(diag("SFT5701", `The prompt has ${prompt.length} tokens; the model has ${maxPositions} positions and needs one left to generate.`, { hint: "Shorten the prompt." }));
  }
  const bad = prompt.find((id) => !(Number.isInteger(id) && id >= 0 && id < vocab));
  if (bad !== undefined) return fail(diag("SFT5701", `Token id ${bad} is outside the model's vocabulary of ${vocab}.`, { hint: `Give ids from 0 to ${vocab - 1}.` }));
  const feeds = familyFeeds(family, config, { ids: [prompt], labels: [prompt] });
  if (feeds.ok) return ok(undefined);
  return fail(...feeds.diagnostics.map((d) => ({ ...d, code: "SFT5701" as const, message: d.message.replace(/^Sample 0 of the batch/, "The prompt") })));
}
