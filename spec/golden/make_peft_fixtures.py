#!/usr/bin/python3
"""Writes the expected PEFT adapter directories of each family under test/fixtures/peft/.

Run:  /usr/bin/python3 spec/golden/make_peft_fixtures.py   (plain Python; PEFT is not needed)

For each family and each scenario (a LoRA method block as a pipeline writes it), expected.json
holds what `PeftModel.save_pretrained` would write for that model class: the adapter_config.json
object, and every key of adapter_model.safetensors with its shape. The model sizes come from the
tiny config.json of test/fixtures/checkpoints/<family>/. test/export/peft-fixtures.test.ts builds
the same adapters through sftc's graph and exporter and compares.

This file is written independently of sftc's family declarations: the module trees below are
transcribed from each model's own modeling file, and the naming rules from PEFT's source:

* Module matching (peft/tuners/lora.py `LoraModel._find_and_replace` in 0.3-0.5,
  peft/tuners/tuners_utils.py `check_target_module_exists` from 0.6): a list of target_modules
  matches a module whose full name equals a target or ends with "." + target; a string is a
  regular expression that must match the whole name.
* The LoRA layer (peft/tuners/lora.py `LoraLayer.update_layer`): lora_A = nn.Linear(in_features,
  r, bias=False), lora_B = nn.Linear(r, out_features, bias=False), held in ModuleDicts keyed by
  the adapter name; so lora_A.weight is (r, in_features) and lora_B.weight is (out_features, r).
* Saved keys (peft/utils/save_and_load.py `get_peft_model_state_dict`): with bias="none" only
  parameters whose name contains "lora_"; the adapter name is removed (".default"), so a key is
  base_model.model.<module>.lora_A.weight. PeftModelForCausalLM holds the LoraModel as
  `base_model`, which holds the wrapped model as `model`: hence the "base_model.model." prefix.
  A modules_to_save module (a ModulesToSaveWrapper, matched when the full name ends with the
  entry, peft/utils/other.py `_set_trainable`) is saved with "modules_to_save.<adapter>"
  removed, i.e. under the module's own parameter names.
* adapter_config.json (peft/config.py `PeftConfigMixin.save_pretrained`): the LoraConfig
  dataclass fields as a JSON object; PEFT 0.4-0.6 fields are listed in CONFIG_FIELDS.
  use_rslora exists from PEFT 0.7 and is written only when true here, since older releases
  reject unknown fields. target_modules is a set inside PEFT (written in no fixed order); the
  fixture lists it sorted.
* Target names: PEFT's TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING has
  "chatglm": ["query_key_value"] and "codegen": ["qkv_proj"]; Baichuan's README uses W_pack
  (reference/models.md section 0.5).
"""
import json
import os

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
CHECKPOINTS = os.path.join(ROOT, "test", "fixtures", "checkpoints")
OUT = os.path.join(ROOT, "test", "fixtures", "peft")


def linear(name, in_features, out_features, bias):
    return {"name": name, "kind": "linear", "in": in_features, "out": out_features, "bias": bias}


def embedding(name, rows, dim):
    return {"name": name, "kind": "embedding", "rows": rows, "dim": dim}


def baichuan(c):
    """modeling_baichuan.py (Baichuan-7B BaiChuanForCausalLM, Baichuan-13B BaichuanForCausalLM):
    model.embed_tokens; model.layers.N.self_attn.{W_pack, o_proj}; model.layers.N.mlp.{gate_proj,
    down_proj, up_proj} (registered in that order); lm_head. No linear has a bias."""
    h, f = c["hidden_size"], c["intermediate_size"]
    modules = [embedding("model.embed_tokens", c["vocab_size"], h)]
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}"
        modules += [
            linear(f"{p}.self_attn.W_pack", h, 3 * h, False),
            linear(f"{p}.self_attn.o_proj", h, h, False),
            linear(f"{p}.mlp.gate_proj", h, f, False),
            linear(f"{p}.mlp.down_proj", f, h, False),
            linear(f"{p}.mlp.up_proj", h, f, False),
        ]
    return modules + [linear("lm_head", h, c["vocab_size"], False)]


def moss(c):
    """models/modeling_moss.py (MossForCausalLM): transformer.wte; transformer.h.N.attn.{qkv_proj,
    out_proj} without bias; transformer.h.N.mlp.{fc_in, fc_out} with bias; lm_head with bias."""
    h = c["n_embd"]
    inner = c["n_inner"] if c.get("n_inner") is not None else 4 * h
    modules = [embedding("transformer.wte", c["vocab_size"], h)]
    for i in range(c["n_layer"]):
        p = f"transformer.h.{i}"
        modules += [
            linear(f"{p}.attn.qkv_proj", h, 3 * h, False),
            linear(f"{p}.attn.out_proj", h, h, False),
            linear(f"{p}.mlp.fc_in", h, inner, True),
            linear(f"{p}.mlp.fc_out", inner, h, True),
        ]
    return modules + [linear("lm_head", h, c["vocab_size"], True)]


def chatglm(c):
    """modeling_chatglm.py of THUDM/chatglm-6b (ChatGLMForConditionalGeneration):
    transformer.word_embeddings; transformer.layers.N.attention.{query_key_value, dense} and
    transformer.layers.N.mlp.{dense_h_to_4h, dense_4h_to_h}, all with bias; lm_head without."""
    h = c["hidden_size"]
    inner = c.get("inner_hidden_size") or 4 * h
    modules = [embedding("transformer.word_embeddings", c["vocab_size"], h)]
    for i in range(c["num_layers"]):
        p = f"transformer.layers.{i}"
        modules += [
            linear(f"{p}.attention.query_key_value", h, 3 * h, True),
            linear(f"{p}.attention.dense", h, h, True),
            linear(f"{p}.mlp.dense_h_to_4h", h, inner, True),
            linear(f"{p}.mlp.dense_4h_to_h", inner, h, True),
        ]
    return modules + [linear("lm_head", h, c["vocab_size"], False)]


def chatglm2(c):
    """modeling_chatglm.py of THUDM/chatglm2-6b (ChatGLMForConditionalGeneration):
    transformer.embedding.word_embeddings; transformer.encoder.layers.N.self_attention.
    query_key_value (out = heads*kv_channels + 2*kv_channels*multi_query_group_num, bias from
    add_qkv_bias) and .dense; transformer.encoder.layers.N.mlp.dense_h_to_4h (out = 2*ffn, gate
    and up fused) and .dense_4h_to_h; the output head is transformer.output_layer."""
    h, heads, kv = c["hidden_size"], c["num_attention_heads"], c["kv_channels"]
    projection = heads * kv
    qkv = projection + 2 * kv * c["multi_query_group_num"]
    f, vocab, lb = c["ffn_hidden_size"], c["padded_vocab_size"], c["add_bias_linear"]
    modules = [embedding("transformer.embedding.word_embeddings", vocab, h)]
    for i in range(c["num_layers"]):
        p = f"transformer.encoder.layers.{i}"
        modules += [
            linear(f"{p}.self_attention.query_key_value", h, qkv, lb or c["add_qkv_bias"]),
            linear(f"{p}.self_attention.dense", projection, h, lb),
            linear(f"{p}.mlp.dense_h_to_4h", h, 2 * f, lb),
            linear(f"{p}.mlp.dense_4h_to_h", f, h, lb),
        ]
    return modules + [linear("transformer.output_layer", h, vocab, False)]


FAMILIES = {"baichuan7b": baichuan, "baichuan13b": baichuan, "moss": moss, "chatglm": chatglm, "chatglm2": chatglm2}

# The block linears each family lets a pipeline adapt ("attn.*", "mlp.*": every linear of the
# attention and the MLP), and the default target (PEFT's mapping, or the model's README).
BLOCK_LINEARS = {
    "baichuan7b": ["W_pack", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "baichuan13b": ["W_pack", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "moss": ["qkv_proj", "out_proj", "fc_in", "fc_out"],
    "chatglm": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
    "chatglm2": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
}
DEFAULT_TARGET = {"baichuan7b": "W_pack", "baichuan13b": "W_pack", "moss": "qkv_proj", "chatglm": "query_key_value", "chatglm2": "query_key_value"}
# The output head's module name, which PEFT's modules_to_save matches by suffix.
HEAD = {"baichuan7b": "lm_head", "baichuan13b": "lm_head", "moss": "lm_head", "chatglm": "lm_head", "chatglm2": "output_layer"}

CONFIG_FIELDS = [
    "auto_mapping", "base_model_name_or_path", "bias", "fan_in_fan_out", "inference_mode", "init_lora_weights",
    "layers_pattern", "layers_to_transform", "lora_alpha", "lora_dropout", "modules_to_save", "peft_type", "r",
    "revision", "target_modules", "task_type",
]


def matches(name, targets):
    """PEFT's check for a list of target_modules."""
    return any(name == t or name.endswith("." + t) for t in targets)


def scenarios(family):
    return {
        # The default of a method block: the family's QKV projection.
        "default": {"method": {"rank": 4, "alpha": 8, "dropout": 0.05, "targets": [DEFAULT_TARGET[family]]},
                    "peft": {"r": 4, "lora_alpha": 8, "lora_dropout": 0.05, "target_modules": [DEFAULT_TARGET[family]],
                             "modules_to_save": None, "use_rslora": False}},
        # Every block linear by canonical wildcards, rank-stabilised scaling, the head trained in full.
        "blocks": {"method": {"rank": 2, "alpha": 16, "dropout": 0.0, "targets": ["attn.*", "mlp.*"], "rslora": True, "modulesToSave": ["lm_head"]},
                   "peft": {"r": 2, "lora_alpha": 16, "lora_dropout": 0.0, "target_modules": BLOCK_LINEARS[family],
                            "modules_to_save": [HEAD[family]], "use_rslora": True}},
    }


def expected(family, config, scenario):
    peft = scenario["peft"]
    targets, r = peft["target_modules"], peft["r"]
    modules = FAMILIES[family](config)
    tensors = {}
    for m in modules:
        if m["kind"] == "linear" and matches(m["name"], targets):
            tensors[f"base_model.model.{m['name']}.lora_A.weight"] = [r, m["in"]]
            tensors[f"base_model.model.{m['name']}.lora_B.weight"] = [m["out"], r]
    for saved in peft["modules_to_save"] or []:
        for m in modules:
            if m["name"].endswith(saved):
                shape = [m["out"], m["in"]] if m["kind"] == "linear" else [m["rows"], m["dim"]]
                tensors[f"base_model.model.{m['name']}.weight"] = shape
                if m["kind"] == "linear" and m["bias"]:
                    tensors[f"base_model.model.{m['name']}.bias"] = [m["out"]]
    values = {
        "auto_mapping": None, "base_model_name_or_path": f"models/{family}-tiny", "bias": "none", "fan_in_fan_out": False,
        "inference_mode": True, "init_lora_weights": True, "layers_pattern": None, "layers_to_transform": None,
        "lora_alpha": peft["lora_alpha"], "lora_dropout": peft["lora_dropout"], "modules_to_save": peft["modules_to_save"],
        "peft_type": "LORA", "r": r, "revision": None, "target_modules": sorted(set(targets)), "task_type": "CAUSAL_LM",
    }
    adapter_config = {k: values[k] for k in CONFIG_FIELDS}
    if peft["use_rslora"]:
        adapter_config["use_rslora"] = True
    return {
        "method": scenario["method"],
        "base_model": f"models/{family}-tiny",
        "adapter_config": adapter_config,
        "tensors": [{"name": k, "shape": v} for k, v in sorted(tensors.items())],
    }


def main():
    for family in FAMILIES:
        with open(os.path.join(CHECKPOINTS, family, "config.json")) as f:
            config = json.load(f)
        out = {name: expected(family, config, s) for name, s in scenarios(family).items()}
        os.makedirs(os.path.join(OUT, family), exist_ok=True)
        with open(os.path.join(OUT, family, "expected.json"), "w") as f:
            json.dump(out, f, indent=2)
            f.write("\n")
        print(family, {k: len(v["tensors"]) for k, v in out.items()})


if __name__ == "__main__":
    main()
