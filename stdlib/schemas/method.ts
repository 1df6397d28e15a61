// `method KIND { ... }`: which weights train. Full fine-tuning updates every weight; LoRA trains
// low-rank adapters beside frozen weights; QLoRA does the same over NF4-quantized base weights.
import { block, boolean, integer, listOf, number, oneOf, string, type Schema } from "./common.ts";

const loraKeys: Record<string, Schema> = {
  rank: integer("Rank r of each adapter pair (A: r x in, B: out x r).", { min: 1, default: 8 }),
  alpha: number("Scaling numerator: the adapter output is multiplied by alpha / rank (alpha / sqrt(rank) with `rslora`).", { above: 0, default: 16 }),
  dropout: number("Dropout on the adapter input during training, in [0, 1).", { min: 0, below: 1, default: 0.05 }),
  targets: listOf(
    string("A model-native layer name (`W_pack`, `query_key_value`, `qkv_proj`, ...) or a canonical one (`attn.qkv`, `attn.out`, `mlp.up`, `mlp.down`, `mlp.gate`, `attn.*`, `mlp.*`, `all`)."),
    "Layers that get adapters. Defaults to the family's attention QKV projection (PEFT's convention).",
    { minItems: 1 },
  ),
  bias: oneOf(["none", "lora_only", "all"], "Which biases train: none, only those of adapted layers, or all.", { default: "none" }),
  modules_to_save: listOf(oneOf(["embeddings", "lm_head"], "A module trained in full beside the adapters."), "Modules trained and saved in full (e.g. after adding tokens).", { default: [] }),
  rslora: boolean("Rank-stabilised scaling alpha / sqrt(rank) instead of alpha / rank.", { default: false }),
};

export const methodSchemas: Record<string, Schema> = {
  full: block("Full-parameter fine-tuning: every weight trains (AdamW state costs 2 extra f32 copies).", {
    freeze_embeddings: boolean("Keep the token embeddings (and a tied output head) frozen.", { default: false }),
    freeze_layers: integer("Freeze the first N transformer blocks.", { min: 0, default: 0 }),
  }),
  lora: block("LoRA: frozen base weights plus trainable low-rank adapters.", loraKeys),
  qlora: block("QLoRA: LoRA over 4-bit base weights (block-wise absmax quantization).", {
    ...loraKeys,
    quant_type: oneOf(["nf4", "fp4"], "4-bit code book of the base weights.", { default: "nf4" }),
    block_size: integer("Weights per quantization block (one absmax scale each).", { min: 16, max: 4096, default: 64 }),
    double_quant: boolean("Quantize the per-block scales again (8-bit, blocks of `double_quant_block_size`), saving about 0.37 bits per weight.", { default: true }),
    double_quant_block_size: integer("Scales per block of the second quantization.", { min: 16, max: 4096, default: 256 }),
    compute_dtype: oneOf(["f32", "f16"], "Type the base weights are dequantized to inside the matmul (WebGPU has no bf16 arithmetic; f16 needs the `shader-f16` feature).", { default: "f16" }),
  }),
};
