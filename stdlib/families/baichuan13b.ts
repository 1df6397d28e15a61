// Baichuan-13B (baichuan-inc/Baichuan-13B-Base, -Chat): the 7B layers, tensors and LoRA names
// with ALiBi instead of RoPE, a softmax in the model dtype, and positions from model_max_length.
import type { Family } from "./family.ts";
import { baichuan7b } from "./baichuan7b.ts";

const { max_position_embeddings: _rope, ...sharedTiny } = baichuan7b.tiny;

export const baichuan13b: Family = {
  ...baichuan7b,
  name: "baichuan13b",
  title: "Baichuan-13B",
  dims: { ...baichuan7b.dims, maxPositions: { keys: ["model_max_length"] }, rotaryDims: { keys: [], fallback: () => 0 } },
  checks: [
    { key: "model_type", oneOf: ["baichuan"], required: true, because: "Baichuan configs have model_type baichuan" },
    { key: "architectures", oneOf: ["BaichuanForCausalLM"], because: "Baichuan-13B is BaichuanForCausalLM (ALiBi); BaiChuanForCausalLM is Baichuan-7B (RoPE)" },
    { key: "max_position_embeddings", absent: true, because: "max_position_embeddings marks Baichuan-7B, which uses RoPE; Baichuan-13B uses ALiBi up to model_max_length" },
    { key: "hidden_act", oneOf: ["silu"], because: "the MLP is SwiGLU" },
  ],
  position: { kind: "alibi" },
  attention: { softmax: "model_dtype", queryKeyLayerScaling: false, mask: { kind: "causal" } },
  skip: [],
  tokens: {
    ...baichuan7b.tokens,
    specials: [
      { name: "<reserved_102>", key: "user_token_id", id: 195 },
      { name: "<reserved_103>", key: "assistant_token_id", id: 196 },
    ],
  },
  tiny: { ...sharedTiny, architectures: ["BaichuanForCausalLM"], model_max_length: 256 },
};
