// The end-to-end training bench's options (methods, model depth, batch, LoRA rank, step
// counts, weight storage) and the model they describe: the Baichuan-7B preset at the given
// depth with any replaced dimensions, LoRA on its attention projections. Both sides, sftc's
// (e2e-sftc.ts) and PyTorch's (e2e-torch.ts), train this model from these options.
import { buildFamilyGraph } from "../compiler/models/family-graph.ts";
import { numel } from "../compiler/ir/node.ts";
import { fromDimensions } from "../compiler/plan/model-config.ts";
import type { WeightDType } from "../compiler/plan/settings.ts";
import { families } from "../stdlib/families/index.ts";
import { families as familyFacts, type Dimensions } from "../stdlib/schemas/model.ts";

/** The attention projections of Baichuan-7B: the fused q/k/v and the output. */
export const TARGETS = ["W_pack", "o_proj"];

export type Method = "lora" | "qlora";

export interface E2eOptions {
  methods: Method[];
  layers: number;
  seq: number;
  rows: number;
  rank: number;
  alpha: number;
  warmup: number;
  steps: number;
  /**
   * PyTorch's untimed and timed steps: its steps are cheap, and its first timed ones after a single
   * warm-up still vary (on an H200 at 7B size, 484 then 293 ms in bf16), so it takes more of each.
   */
  torchWarmup: number;
  torchSteps: number;
  /**
   * After the timed steps, one more forward and backward with every dispatch timed (GPU
   * timestamps), reported as GPU time by kernel: where a step's time goes.
   */
  profile: boolean;
  /**
   * The storage of the frozen weights (frozenWeightDtypes, as a pipeline's model.dtype chooses:
   * the kernels read them as stored): LoRA's block linears, and the embedding table and head of
   * LoRA and QLoRA (whose block linears are NF4).
   */
  dtype: WeightDType;
  /** Dimensions replacing the 7B preset's (tests shrink the model with it). */
  dims?: Partial<Dimensions>;
  /** Progress lines (the CLI writes them to stderr, so a run cut short still shows how far it got). */
  log?: (line: string) => void;
}

export const DEFAULT_OPTIONS: E2eOptions = { methods: ["lora"], layers: 32, seq: 1024, rows: 1, rank: 8, alpha: 16, warmup: 1, steps: 2, torchWarmup: 3, torchSteps: 10, profile: false, dtype: "f32" };

/** The Baichuan-7B preset with `options`' depth and any replaced dimensions. */
export function modelConfig(options: E2eOptions) {
  const dims: Dimensions = { ...familyFacts.baichuan7b.sizes["7b"], num_layers: options.layers, ...options.dims };
  const planned = fromDimensions(families.baichuan7b, dims, "the 7b preset");
  if (!planned.ok) throw new Error(planned.diagnostics.map((d) => d.message).join("; "));
  return planned.value.config;
}

/** The model in a line: the preset, its dimensions, its parameter count, the adapted linears. */
export function modelLabel(options: E2eOptions): string {
  const config = modelConfig(options);
  const d = config.dims;
  const shapes = buildFamilyGraph(families.baichuan7b, config, { batch: 1, seq: 2 });
  const parameters = shapes.ok ? [...shapes.value.weights.values()].reduce((n, p) => n + numel(p.shape), 0) : NaN;
  return `baichuan7b preset, random init: hidden ${d.hidden}, FFN ${d.ffn}, ${d.heads} heads, ${d.layers} layers, vocab ${d.vocab}, ${(parameters / 1e9).toFixed(2)} B parameters; LoRA on ${TARGETS.join(", ")}`;
}
