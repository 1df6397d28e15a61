// The family declarations against the facts of reference/models.md: published configs give the
// published tensor shapes and parameter counts, fused-QKV offsets follow each model's layout.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { resolveModelConfig, type ModelConfig } from "../../stdlib/families/config.ts";
import { expandTemplate, loraModulesFor, qkvRowOffsets, templatePattern, type Family, type ParamRole } from "../../stdlib/families/family.ts";
import { families, familyNames } from "../../stdlib/families/index.ts";
import { expectOk } from "../support/result.ts";

/** The published config.json values (models.md §1.1, §2.1, §3.1, §4.1, §5.1). */
const published: Record<string, Record<string, unknown>> = {
  baichuan7b: {
    architectures: ["BaiChuanForCausalLM"], model_type: "baichuan", vocab_size: 64000, hidden_size: 4096, num_hidden_layers: 32,
    num_attention_heads: 32, intermediate_size: 11008, max_position_embeddings: 4096, rms_norm_eps: 1e-6, hidden_act: "silu",
    tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2, pad_token_id: 0, torch_dtype: "float16",
  },
  baichuan13b: {
    architectures: ["BaichuanForCausalLM"], model_type: "baichuan", vocab_size: 64000, hidden_size: 5120, num_hidden_layers: 40,
    num_attention_heads: 40, intermediate_size: 13696, model_max_length: 4096, rms_norm_eps: 1e-6, hidden_act: "silu",
    tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2, pad_token_id: 0, torch_dtype: "bfloat16",
  },
  moss: {
    architectures: ["MossForCausalLM"], model_type: "moss", vocab_size: 107008, n_embd: 6144, n_layer: 34, n_head: 24, n_inner: null,
    rotary_dim: 64, n_positions: 2048, n_ctx: 2048, layer_norm_epsilon: 1e-5, activation_function: "gelu_new",
    tie_word_embeddings: false, bos_token_id: 106028, eos_token_id: 106068, torch_dtype: "float16",
  },
  chatglm: {
    architectures: ["ChatGLMModel"], model_type: "chatglm", vocab_size: 130528, hidden_size: 4096, num_layers: 28, num_attention_heads: 32,
    inner_hidden_size: 16384, max_sequence_length: 2048, layernorm_epsilon: 1e-5, position_encoding_2d: true, bos_token_id: 130004,
    eos_token_id: 130005, mask_token_id: 130000, gmask_token_id: 130001, pad_token_id: 3, torch_dtype: "float16",
  },
  chatglm2: {
    model_type: "chatglm", padded_vocab_size: 65024, vocab_size: 65024, hidden_size: 4096, num_layers: 28, num_attention_heads: 32,
    kv_channels: 128, multi_query_attention: true, multi_query_group_num: 2, ffn_hidden_size: 13696, seq_length: 32768,
    layernorm_epsilon: 1e-5, rmsnorm: true, post_layer_norm: true, apply_residual_connection_post_layernorm: false,
    add_bias_linear: false, add_qkv_bias: true, original_rope: true, tie_word_embeddings: false, eos_token_id: 2, pad_token_id: 0,
  },
};

function resolve(name: string, raw: Record<string, unknown>): ModelConfig {
  return expectOk(resolveModelConfig(raw, families[name as keyof typeof families], "config.json"));
}

function shapes(family: Family, config: ModelConfig): Map<string, number[]> {
  return new Map(family.tensors.flatMap((t) => expandTemplate(t.name, config.dims.layers).map((n) => [n, t.shape(config.dims)] as [string, number[]])));
}

function parameterCount(family: Family, config: ModelConfig): number {
  return [...shapes(family, config).values()].reduce((sum, s) => sum + s.reduce((a, b) => a * b, 1), 0);
}

test("published configs resolve to the published dimensions", () => {
  const dims = Object.fromEntries(familyNames.map((n) => [n, resolve(n, published[n]).dims]));
  assert.equal(dims.baichuan7b, { hidden: 4096, layers: 32, heads: 32, kvHeads: 32, headDim: 128, ffn: 11008, vocab: 64000, maxPositions: 4096, normEps: 1e-6, rotaryDims: 128 });
  assert.equal(dims.baichuan13b, { hidden: 5120, layers: 40, heads: 40, kvHeads: 40, headDim: 128, ffn: 13696, vocab: 64000, maxPositions: 4096, normEps: 1e-6, rotaryDims: 0 });
  assert.equal(dims.moss, { hidden: 6144, layers: 34, heads: 24, kvHeads: 24, headDim: 256, ffn: 24576, vocab: 107008, maxPositions: 2048, normEps: 1e-5, rotaryDims: 64 });
  assert.equal(dims.chatglm, { hidden: 4096, layers: 28, heads: 32, kvHeads: 32, headDim: 128, ffn: 16384, vocab: 130528, maxPositions: 2048, normEps: 1e-5, rotaryDims: 64 });
  assert.equal(dims.chatglm2, { hidden: 4096, layers: 28, heads: 32, kvHeads: 2, headDim: 128, ffn: 13696, vocab: 65024, maxPositions: 32768, normEps: 1e-5, rotaryDims: 64 });
});

test("published shapes of the fused and MLP tensors (models.md checkpoint tables)", () => {
  const at = (name: string) => shapes(families[name as keyof typeof families], resolve(name, published[name]));
  assert.equal(at("baichuan7b").get("model.layers.31.self_attn.W_pack.weight"), [12288, 4096]);
  assert.equal(at("baichuan7b").get("model.layers.0.mlp.down_proj.weight"), [4096, 11008]);
  assert.equal(at("baichuan13b").get("model.layers.39.self_attn.W_pack.weight"), [15360, 5120]);
  assert.equal(at("moss").get("transformer.h.33.attn.qkv_proj.weight"), [18432, 6144]);
  assert.equal(at("moss").get("transformer.h.0.mlp.fc_in.weight"), [24576, 6144]);
  assert.equal(at("moss").get("lm_head.bias"), [107008]);
  assert.equal(at("chatglm").get("transformer.layers.27.attention.query_key_value.bias"), [12288]);
  assert.equal(at("chatglm").get("transformer.layers.0.mlp.dense_4h_to_h.weight"), [4096, 16384]);
  assert.equal(at("chatglm2").get("transformer.encoder.layers.0.self_attention.query_key_value.weight"), [4608, 4096]);
  assert.equal(at("chatglm2").get("transformer.encoder.layers.0.mlp.dense_h_to_4h.weight"), [27392, 4096]);
  assert.equal(at("chatglm2").get("transformer.output_layer.weight"), [65024, 4096]);
});

test("parameter counts match the published figures", () => {
  const count = (name: string) => parameterCount(families[name as keyof typeof families], resolve(name, published[name]));
  assert.is(count("baichuan7b"), 7_000_559_616); // Baichuan-13B README model table
  assert.is(count("baichuan13b"), 13_264_901_120); // same table
  // ChatGLM2's index total_size 12 487 168 064 bytes of fp16 = the parameters + the 32-element inv_freq buffer.
  assert.is(count("chatglm2") + 32, 12_487_168_064 / 2);
});

test("fused QKV row offsets follow each model's layout (models.md §6.1)", () => {
  const offsets = (name: string) => qkvRowOffsets(families[name as keyof typeof families].qkv, resolve(name, published[name]).dims);
  const heads = (n: number) => Array.from({ length: n }, (_, h) => h);
  assert.equal(offsets("baichuan7b"), { q: heads(32).map((h) => h * 128), k: heads(32).map((h) => 4096 + h * 128), v: heads(32).map((h) => 8192 + h * 128) });
  assert.equal(offsets("chatglm"), { q: heads(32).map((h) => 384 * h), k: heads(32).map((h) => 384 * h + 128), v: heads(32).map((h) => 384 * h + 256) });
  assert.equal(offsets("chatglm2"), { q: heads(32).map((h) => h * 128), k: [4096, 4224], v: [4352, 4480] });
  const c = (h: number) => Math.floor(h / 6) * 4608;
  const s = (h: number) => (h % 6) * 256;
  assert.equal(offsets("moss"), { q: heads(24).map((h) => c(h) + s(h)), v: heads(24).map((h) => c(h) + 1536 + s(h)), k: heads(24).map((h) => c(h) + 3072 + s(h)) });
});

test("every family: the tiny config resolves, QKV offsets tile the fused rows exactly once", () => {
  for (const name of familyNames) {
    const family = families[name];
    const { dims } = resolve(name, family.tiny);
    assert.equal([dims.hidden, dims.layers, dims.heads, dims.vocab], [64, 2, 4, 512], name);
    const { q, k, v } = qkvRowOffsets(family.qkv, dims);
    const rows = [...q, ...k, ...v].flatMap((start) => Array.from({ length: dims.headDim }, (_, i) => start + i)).sort((a, b) => a - b);
    const qkvRows = family.tensors.find((t) => t.role === "attn.qkv.weight")!.shape(dims)[0];
    assert.equal(rows, Array.from({ length: qkvRows }, (_, i) => i), `${name}: rows`);
  }
});

test("every family: bias flags agree with the bias tensors, skip patterns match no weight, mask tokens exist", () => {
  const biasRoles: Record<keyof Family["biases"], ParamRole[]> = {
    qkv: ["attn.qkv.bias"], out: ["attn.out.bias"], mlp: ["mlp.up.bias", "mlp.down.bias"], norm: ["attn_norm.bias", "final_norm.bias"], head: ["head.bias"],
  };
  for (const name of familyNames) {
    const family = families[name];
    const roles = new Set(family.tensors.map((t) => t.role));
    for (const [flag, wanted] of Object.entries(biasRoles)) {
      assert.is(wanted.every((r) => roles.has(r)), family.biases[flag as keyof Family["biases"]], `${name}: ${flag} bias`);
    }
    const patterns = family.skip.map(templatePattern);
    const weights = family.tensors.flatMap((t) => expandTemplate(t.name, 3));
    assert.ok(!weights.some((w) => patterns.some((p) => p.test(w))), `${name}: a skip pattern hides a weight`);
    assert.ok(family.skip.every((s) => patterns.some((p) => p.test(s.replaceAll("{layer}", "12")))), `${name}: skip patterns`);
    const mask = family.attention.mask;
    if (mask.kind === "glm_prefix") {
      const specials = family.tokens.specials.map((t) => t.name);
      assert.ok(specials.includes(mask.maskToken) && specials.includes(mask.startToken), `${name}: prefix-mask tokens are declared specials`);
    }
  }
});

test("traits that are commonly gotten wrong (models.md §6)", () => {
  const { dims } = resolve("chatglm", published.chatglm);
  const residual = families.chatglm.residual;
  assert.is(residual.kind === "scaled_normed_input" && residual.alpha(dims), Math.sqrt(56));
  assert.equal(families.moss.residual, { kind: "parallel" });
  assert.equal(families.baichuan13b.position, { kind: "alibi" });
  assert.equal([families.baichuan7b.norm.halfRounding, families.chatglm2.norm.halfRounding], ["twice", "once"]);
  assert.is(resolve("chatglm", published.chatglm).tiedHead, true, "no tie_word_embeddings key: the default ties the head");
  assert.is(resolve("chatglm2", published.chatglm2).tiedHead, false);
  assert.equal(resolve("moss", published.moss).tokens.eos, [106068]);
  assert.equal(resolve("chatglm2", { ...published.chatglm2, eos_token_id: [2, 64793] }).tokens.eos, [2, 64793]);
  assert.equal(resolve("chatglm", published.chatglm).tokens.specials["[gMASK]"], 130001);
  assert.equal(resolve("chatglm", families.chatglm.tiny).tokens.specials["[gMASK]"], 501, "ids come from config.json when it has them");
});

test("LoRA targets: defaults, native names, canonical names and wildcards", () => {
  assert.equal(familyNames.map((n) => families[n].lora.defaultTargets), [["W_pack"], ["W_pack"], ["qkv_proj"], ["query_key_value"], ["query_key_value"]]);
  for (const name of familyNames) {
    const family = families[name];
    for (const target of family.lora.defaultTargets) assert.is(loraModulesFor(family, target).length, 1, `${name}: ${target}`);
    assert.equal(loraModulesFor(family, "attn.qkv"), loraModulesFor(family, family.lora.defaultTargets[0]), name);
  }
  assert.equal(loraModulesFor(families.chatglm2, "mlp.*").map((m) => m.native), ["dense_h_to_4h", "dense_4h_to_h"]);
  assert.equal(loraModulesFor(families.chatglm2, "mlp.gate").map((m) => m.native), ["dense_h_to_4h"]);
  assert.equal(loraModulesFor(families.baichuan7b, "mlp.*").map((m) => m.native), ["gate_proj", "up_proj", "down_proj"]);
  assert.equal(loraModulesFor(families.moss, "mlp.gate"), []);
  assert.equal(loraModulesFor(families.moss, "attn.*").map((m) => m.native), ["qkv_proj", "out_proj"]);
  assert.equal(loraModulesFor(families.chatglm, "all").length, 4);
});

test.run();
