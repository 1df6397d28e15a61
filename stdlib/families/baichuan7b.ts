// Baichuan-7B (baichuan-inc/Baichuan-7B): LLaMA-like pre-norm decoder with RMSNorm, a fused
// W_pack projection, half-rotation RoPE over the whole head, SwiGLU MLP, no biases.
import type { Family, TensorDecl } from "./family.ts";

const tensors: readonly TensorDecl[] = [
  { name: "model.embed_tokens.weight", role: "embed.weight", shape: (d) => [d.vocab, d.hidden] },
  { name: "model.layers.{layer}.input_layernorm.weight", role: "attn_norm.weight", shape: (d) => [d.hidden] },
  { name: "model.layers.{layer}.self_attn.W_pack.weight", role: "attn.qkv.weight", shape: (d) => [3 * d.hidden, d.hidden] },
  { name: "model.layers.{layer}.self_attn.o_proj.weight", role: "attn.out.weight", shape: (d) => [d.hidden, d.hidden] },
  { name: "model.layers.{layer}.post_attention_layernorm.weight", role: "mlp_norm.weight", shape: (d) => [d.hidden] },
  { name: "model.layers.{layer}.mlp.gate_proj.weight", role: "mlp.gate.weight", shape: (d) => [d.ffn, d.hidden] },
  { name: "model.layers.{layer}.mlp.up_proj.weight", role: "mlp.up.weight", shape: (d) => [d.ffn, d.hidden] },
  { name: "model.layers.{layer}.mlp.down_proj.weight", role: "mlp.down.weight", shape: (d) => [d.hidden, d.ffn] },
  { name: "model.norm.weight", role: "final_norm.weight", shape: (d) => [d.hidden] },
  { name: "lm_head.weight", role: "head.weight", shape: (d) => [d.vocab, d.hidden] },
];

const lora: Family["lora"] = {
  defaultTargets: ["W_pack"],
  modules: [
    { native: "W_pack", canonical: ["attn.qkv"] },
    { native: "o_proj", canonical: ["attn.out"] },
    { native: "gate_proj", canonical: ["mlp.gate"] },
    { native: "up_proj", canonical: ["mlp.up"] },
    { native: "down_proj", canonical: ["mlp.down"] },
  ],
};

const tokens: Family["tokens"] = {
  bos: { name: "<s>", key: "bos_token_id", id: 1 },
  eos: [{ name: "</s>", key: "eos_token_id", id: 2 }],
  pad: { name: "<unk>", key: "pad_token_id", id: 0 },
  specials: [],
};

export const baichuan7b: Family = {
  name: "baichuan7b",
  title: "Baichuan-7B",
  publishedDtype: "bf16",
  dims: {
    hidden: { keys: ["hidden_size"] },
    layers: { keys: ["num_hidden_layers"] },
    heads: { keys: ["num_attention_heads"] },
    headDim: { keys: [], fallback: (d) => d.hidden! / d.heads! },
    kvHeads: { keys: [], fallback: (d) => d.heads! },
    ffn: { keys: ["intermediate_size"] },
    vocab: { keys: ["vocab_size"] },
    maxPositions: { keys: ["max_position_embeddings"] },
    normEps: { keys: ["rms_norm_eps"] },
    rotaryDims: { keys: [], fallback: (d) => d.headDim! },
  },
  checks: [
    { key: "model_type", oneOf: ["baichuan"], required: true, because: "Baichuan configs have model_type baichuan" },
    { key: "architectures", oneOf: ["BaiChuanForCausalLM"], because: "Baichuan-7B is BaiChuanForCausalLM (RoPE); BaichuanForCausalLM is Baichuan-13B (ALiBi)" },
    { key: "model_max_length", absent: true, because: "model_max_length without max_position_embeddings marks Baichuan-13B, which uses ALiBi instead of RoPE" },
    { key: "hidden_act", oneOf: ["silu"], because: "the MLP is SwiGLU" },
  ],
  norm: { kind: "rmsnorm", halfRounding: "twice" },
  residual: { kind: "pre_norm" },
  qkv: { groups: 1, order: ["q", "k", "v"] },
  position: { kind: "rope", pairing: "half", streams: 1, base: 10000, invFreq: "f32" },
  attention: { softmax: "fp32", queryKeyLayerScaling: false, mask: { kind: "causal" } },
  mlp: { kind: "swiglu", gateUp: "separate" },
  biases: { qkv: false, out: false, mlp: false, norm: false, head: false },
  tiedHead: { key: "tie_word_embeddings", default: false },
  tensors,
  skip: ["model.layers.{layer}.self_attn.rotary_emb.inv_freq"],
  tokens,
  lora,
  tiny: {
    architectures: ["BaiChuanForCausalLM"],
    model_type: "baichuan",
    vocab_size: 512,
    hidden_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    intermediate_size: 172,
    max_position_embeddings: 256,
    rms_norm_eps: 1e-6,
    hidden_act: "silu",
    initializer_range: 0.02,
    tie_word_embeddings: false,
    bos_token_id: 1,
    eos_token_id: 2,
    pad_token_id: 0,
    torch_dtype: "bfloat16",
  },
};
