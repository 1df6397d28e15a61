#!/usr/bin/python3
"""Builds the tiny test checkpoints under test/fixtures/checkpoints/.

Run with Debian's PyTorch:  /usr/bin/python3 spec/golden/make_checkpoints.py

For every family: a random-weight model in the family's published file format (config.json
with the family's own keys, two `pytorch_model-0000N-of-00002.bin` shards written by
torch.save with the family's tensor names and published dtype, and pytorch_model.bin.index.json),
plus a manifest.json listing each tensor's name, shape, dtype and checksums. Also a safetensors
variant (written by hand: the `safetensors` package is not required) and special files for
the loader's edge cases: strided views and shared storages, a pickle that references a
forbidden global, a zip entry escaping its folder, and a truncated pickle.

The malicious pickle is assembled from opcodes; nothing in it is ever unpickled here.
"""
import json
import os
import shutil
import struct
import sys
import zipfile

import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "test", "fixtures", "checkpoints")

DTYPE_NAMES = {torch.float64: "f64", torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16", torch.uint8: "u8", torch.int64: "i64"}
SAFETENSORS_NAMES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.uint8: "U8", torch.int64: "I64"}

# The tiny configs, in each family's own config.json keys. stdlib/families/<family>.ts holds the
# same `tiny` objects; test/checkpoint/fixtures.test.ts checks that the two agree.
TINY = {
    "baichuan7b": {
        "architectures": ["BaiChuanForCausalLM"], "model_type": "baichuan", "vocab_size": 512, "hidden_size": 64,
        "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 172, "max_position_embeddings": 256,
        "rms_norm_eps": 1e-6, "hidden_act": "silu", "initializer_range": 0.02, "tie_word_embeddings": False,
        "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "torch_dtype": "bfloat16",
    },
    "baichuan13b": {
        "architectures": ["BaichuanForCausalLM"], "model_type": "baichuan", "vocab_size": 512, "hidden_size": 64,
        "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 172, "model_max_length": 256,
        "rms_norm_eps": 1e-6, "hidden_act": "silu", "initializer_range": 0.02, "tie_word_embeddings": False,
        "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "torch_dtype": "bfloat16",
    },
    "moss": {
        "architectures": ["MossForCausalLM"], "model_type": "moss", "vocab_size": 512, "n_embd": 64, "n_layer": 2,
        "n_head": 4, "n_inner": None, "rotary_dim": 8, "n_positions": 256, "n_ctx": 256, "layer_norm_epsilon": 1e-5,
        "activation_function": "gelu_new", "attn_pdrop": 0.0, "resid_pdrop": 0.0, "embd_pdrop": 0.0,
        "scale_attn_weights": True, "tie_word_embeddings": False, "bos_token_id": 106028, "eos_token_id": 106068,
        "tokenizer_class": "GPT2Tokenizer", "torch_dtype": "float16",
    },
    "chatglm": {
        "architectures": ["ChatGLMModel"], "model_type": "chatglm", "vocab_size": 512, "hidden_size": 64,
        "num_layers": 2, "num_attention_heads": 4, "inner_hidden_size": 256, "max_sequence_length": 256,
        "layernorm_epsilon": 1e-5, "position_encoding_2d": True, "mask_token_id": 500, "gmask_token_id": 501,
        "bos_token_id": 504, "eos_token_id": 505, "pad_token_id": 3, "use_cache": True, "torch_dtype": "float16",
    },
    "chatglm2": {
        "architectures": ["ChatGLMModel"], "model_type": "chatglm", "padded_vocab_size": 512, "vocab_size": 512,
        "hidden_size": 64, "num_layers": 2, "num_attention_heads": 4, "kv_channels": 16,
        "multi_query_attention": True, "multi_query_group_num": 2, "ffn_hidden_size": 172, "seq_length": 256,
        "layernorm_epsilon": 1e-5, "rmsnorm": True, "post_layer_norm": True,
        "apply_residual_connection_post_layernorm": False, "add_bias_linear": False, "add_qkv_bias": True,
        "apply_query_key_layer_scaling": True, "attention_softmax_in_fp32": True, "fp32_residual_connection": False,
        "original_rope": True, "tie_word_embeddings": False, "eos_token_id": 2, "pad_token_id": 0, "torch_dtype": "float16",
    },
}

PUBLISHED_DTYPE = {"baichuan7b": torch.bfloat16, "baichuan13b": torch.bfloat16, "moss": torch.float16, "chatglm": torch.float16, "chatglm2": torch.float16}


def rope_inv_freq(dim):
    return 1.0 / (10000 ** (torch.arange(0, dim, 2).float() / dim))


def tensor_shapes(family, c):
    """(name, shape, kind) of every tensor the published checkpoint stores, buffers included.
    kind: "matrix" (random normal), "norm" (around 1), "bias" (small), or a ready tensor."""
    out = []
    if family in ("baichuan7b", "baichuan13b"):
        h, f, v, n = c["hidden_size"], c["intermediate_size"], c["vocab_size"], c["num_hidden_layers"]
        out.append(("model.embed_tokens.weight", [v, h], "matrix"))
        for i in range(n):
            p = f"model.layers.{i}."
            out += [
                (p + "self_attn.W_pack.weight", [3 * h, h], "matrix"),
                (p + "self_attn.o_proj.weight", [h, h], "matrix"),
                (p + "mlp.gate_proj.weight", [f, h], "matrix"),
                (p + "mlp.down_proj.weight", [h, f], "matrix"),
                (p + "mlp.up_proj.weight", [f, h], "matrix"),
                (p + "input_layernorm.weight", [h], "norm"),
                (p + "post_attention_layernorm.weight", [h], "norm"),
            ]
            if family == "baichuan7b":
                out.append((p + "self_attn.rotary_emb.inv_freq", None, rope_inv_freq(h // c["num_attention_heads"])))
        out += [("model.norm.weight", [h], "norm"), ("lm_head.weight", [v, h], "matrix")]
    elif family == "moss":
        h, v, n, pos = c["n_embd"], c["vocab_size"], c["n_layer"], c["n_positions"]
        f = c["n_inner"] or 4 * h
        out.append(("transformer.wte.weight", [v, h], "matrix"))
        for i in range(n):
            p = f"transformer.h.{i}."
            out += [
                (p + "ln_1.weight", [h], "norm"),
                (p + "ln_1.bias", [h], "bias"),
                (p + "attn.causal_mask", None, torch.tril(torch.ones(pos, pos, dtype=torch.uint8)).view(1, 1, pos, pos)),
                (p + "attn.masked_bias", None, torch.tensor(-1e9)),
                (p + "attn.qkv_proj.weight", [3 * h, h], "matrix"),
                (p + "attn.out_proj.weight", [h, h], "matrix"),
                (p + "mlp.fc_in.weight", [f, h], "matrix"),
                (p + "mlp.fc_in.bias", [f], "bias"),
                (p + "mlp.fc_out.weight", [h, f], "matrix"),
                (p + "mlp.fc_out.bias", [h], "bias"),
            ]
        out += [
            ("transformer.ln_f.weight", [h], "norm"),
            ("transformer.ln_f.bias", [h], "bias"),
            ("lm_head.weight", [v, h], "matrix"),
            ("lm_head.bias", [v], "bias"),
        ]
    elif family == "chatglm":
        h, f, v, n = c["hidden_size"], c["inner_hidden_size"], c["vocab_size"], c["num_layers"]
        out.append(("transformer.word_embeddings.weight", [v, h], "matrix"))
        for i in range(n):
            p = f"transformer.layers.{i}."
            out += [
                (p + "input_layernorm.weight", [h], "norm"),
                (p + "input_layernorm.bias", [h], "bias"),
                (p + "attention.rotary_emb.inv_freq", None, rope_inv_freq(h // c["num_attention_heads"] // 2).half()),
                (p + "attention.query_key_value.weight", [3 * h, h], "matrix"),
                (p + "attention.query_key_value.bias", [3 * h], "bias"),
                (p + "attention.dense.weight", [h, h], "matrix"),
                (p + "attention.dense.bias", [h], "bias"),
                (p + "post_attention_layernorm.weight", [h], "norm"),
                (p + "post_attention_layernorm.bias", [h], "bias"),
                (p + "mlp.dense_h_to_4h.weight", [f, h], "matrix"),
                (p + "mlp.dense_h_to_4h.bias", [f], "bias"),
                (p + "mlp.dense_4h_to_h.weight", [h, f], "matrix"),
                (p + "mlp.dense_4h_to_h.bias", [h], "bias"),
            ]
        out += [
            ("transformer.final_layernorm.weight", [h], "norm"),
            ("transformer.final_layernorm.bias", [h], "bias"),
            ("lm_head.weight", None, "tied"),  # the published checkpoint stores a copy of the embedding
        ]
    elif family == "chatglm2":
        h, f, v, n = c["hidden_size"], c["ffn_hidden_size"], c["padded_vocab_size"], c["num_layers"]
        d, g, heads = c["kv_channels"], c["multi_query_group_num"], c["num_attention_heads"]
        qkv = (heads + 2 * g) * d
        out.append(("transformer.embedding.word_embeddings.weight", [v, h], "matrix"))
        out.append(("transformer.rotary_pos_emb.inv_freq", None, rope_inv_freq(d // 2).half()))
        for i in range(n):
            p = f"transformer.encoder.layers.{i}."
            out += [
                (p + "input_layernorm.weight", [h], "norm"),
                (p + "self_attention.query_key_value.weight", [qkv, h], "matrix"),
                (p + "self_attention.query_key_value.bias", [qkv], "bias"),
                (p + "self_attention.dense.weight", [h, heads * d], "matrix"),
                (p + "post_attention_layernorm.weight", [h], "norm"),
                (p + "mlp.dense_h_to_4h.weight", [2 * f, h], "matrix"),
                (p + "mlp.dense_4h_to_h.weight", [h, f], "matrix"),
            ]
        out += [("transformer.encoder.final_layernorm.weight", [h], "norm"), ("transformer.output_layer.weight", [v, h], "matrix")]
    return out


def build_state_dict(family, seed):
    config = TINY[family]
    dtype = PUBLISHED_DTYPE[family]
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape, kind in tensor_shapes(family, config):
        if isinstance(kind, torch.Tensor):
            state[name] = kind
        elif kind == "tied":
            state[name] = state["transformer.word_embeddings.weight"].clone()
        elif kind == "matrix":
            state[name] = (torch.randn(shape, generator=gen) * 0.15).to(dtype)
        elif kind == "norm":
            state[name] = (1 + 0.1 * torch.randn(shape, generator=gen)).to(dtype)
        else:
            state[name] = (0.1 * torch.randn(shape, generator=gen)).to(dtype)
    return state


def checksums(tensor):
    """Sum of the values, and a position-weighted sum (which a transposition would change)."""
    flat = tensor.contiguous().reshape(-1).to(torch.float64)
    weights = 1 + (torch.arange(flat.numel(), dtype=torch.int64) % 7).to(torch.float64)
    return float(flat.sum()), float((flat * weights).sum())


def manifest_entry(name, tensor, file):
    total, weighted = checksums(tensor)
    return {"name": name, "file": file, "dtype": DTYPE_NAMES[tensor.dtype], "shape": list(tensor.shape), "sum": total, "weighted_sum": weighted}


def write_json(path, value):
    with open(path, "w") as f:
        json.dump(value, f, indent=2, ensure_ascii=False)
        f.write("\n")


def reset_dir(path):
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)


def split_in_two(names):
    half = (len(names) + 1) // 2
    return [names[:half], names[half:]]


def write_torch_shards(directory, state):
    """Two shards in the published naming, with the index json."""
    names = list(state)
    parts = split_in_two(names)
    weight_map, entries = {}, []
    for i, part in enumerate(parts):
        file = f"pytorch_model-{i + 1:05d}-of-{len(parts):05d}.bin"
        torch.save({n: state[n] for n in part}, os.path.join(directory, file))
        for n in part:
            weight_map[n] = file
            entries.append(manifest_entry(n, state[n], file))
    total = sum(t.numel() * t.element_size() for t in state.values())
    write_json(os.path.join(directory, "pytorch_model.bin.index.json"), {"metadata": {"total_size": total}, "weight_map": weight_map})
    return entries


def tensor_bytes(tensor):
    t = tensor.contiguous()
    if t.element_size() == 2:
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def write_safetensors(path, tensors):
    """8-byte little-endian header length, JSON header, then the raw little-endian data."""
    header, chunks, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, tensor in tensors.items():
        data = tensor_bytes(tensor)
        header[name] = {"dtype": SAFETENSORS_NAMES[tensor.dtype], "shape": list(tensor.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for chunk in chunks:
            f.write(chunk)


def write_safetensors_shards(directory, state):
    names = list(state)
    parts = split_in_two(names)
    weight_map, entries = {}, []
    for i, part in enumerate(parts):
        file = f"model-{i + 1:05d}-of-{len(parts):05d}.safetensors"
        write_safetensors(os.path.join(directory, file), {n: state[n] for n in part})
        for n in part:
            weight_map[n] = file
            entries.append(manifest_entry(n, state[n], file))
    total = sum(t.numel() * t.element_size() for t in state.values())
    write_json(os.path.join(directory, "model.safetensors.index.json"), {"metadata": {"total_size": total}, "weight_map": weight_map})
    return entries


def make_family(family, seed):
    directory = os.path.join(OUT, family)
    reset_dir(directory)
    state = build_state_dict(family, seed)
    write_json(os.path.join(directory, "config.json"), TINY[family])
    entries = write_torch_shards(directory, state)
    write_json(os.path.join(directory, "manifest.json"), {"family": family, "format": "torch", "tensors": entries})
    return state


def make_safetensors_variant(family, state):
    """ChatGLM2 also exists as sharded safetensors (the model-0000N-of-0000M.safetensors layout)."""
    directory = os.path.join(OUT, f"{family}-safetensors")
    reset_dir(directory)
    write_json(os.path.join(directory, "config.json"), TINY[family])
    entries = write_safetensors_shards(directory, state)
    write_json(os.path.join(directory, "manifest.json"), {"family": family, "format": "safetensors", "tensors": entries})


def make_views():
    """Tensors that are views: a transpose, a strided slice, and two tensors sharing one storage."""
    directory = os.path.join(OUT, "special", "views")
    reset_dir(directory)
    gen = torch.Generator().manual_seed(7)
    base = torch.randn(6, 10, generator=gen)
    shared = torch.randn(40, generator=gen).half()
    state = {
        "transposed": base.t(),  # stride (1, 10)
        "every_other_column": base[:, ::2],  # offset 0, stride (10, 2)
        "shared_head": shared[3:13].view(2, 5),  # offset 3 into a storage shared with shared_tail
        "shared_tail": shared[20:],  # offset 20
        "bf16_block": base.bfloat16()[2:5, 1:4],  # offset 21, stride (10, 1)
        "scalar": torch.tensor(2.5, dtype=torch.float64),
        "int64_ids": torch.arange(5, dtype=torch.int64) * 1000003,
    }
    manifest = {"format": "torch", "tensors": [manifest_entry(n, t, "pytorch_model.bin") for n, t in state.items()]}
    torch.save(state, os.path.join(directory, "pytorch_model.bin"))
    write_json(os.path.join(directory, "manifest.json"), manifest)
    # The same tensors pickled with protocol 4 (FRAME, MEMOIZE, STACK_GLOBAL opcodes).
    directory = os.path.join(OUT, "special", "views-protocol4")
    reset_dir(directory)
    torch.save(state, os.path.join(directory, "pytorch_model.bin"), pickle_protocol=4)
    write_json(os.path.join(directory, "manifest.json"), manifest)


def rewrite_zip(source, target, edit):
    """Copies a torch.save zip entry by entry (stored, as torch writes), letting `edit` change the list."""
    with zipfile.ZipFile(source) as zin:
        entries = [(info.filename, zin.read(info.filename)) for info in zin.infolist()]
    entries = edit(entries)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as zout:
        for name, data in entries:
            zout.writestr(zipfile.ZipInfo(name), data)


def make_hostile_files():
    special = os.path.join(OUT, "special")
    base = os.path.join(special, "plain.bin")
    torch.save({"weight": torch.arange(6, dtype=torch.float32).view(2, 3)}, base)

    # A pickle whose first instruction imports os.system and whose REDUCE would call it.
    # Protocol 2: PROTO 2, GLOBAL 'os system', SHORT_BINUNICODE 'echo pwned', TUPLE1, REDUCE, STOP.
    command = b"echo pwned"
    evil = b"\x80\x02cos\nsystem\n" + b"\x8c" + bytes([len(command)]) + command + b"\x85R."
    directory = os.path.join(special, "evil-global")
    reset_dir(directory)
    rewrite_zip(base, os.path.join(directory, "pytorch_model.bin"), lambda es: [(n, evil if n.endswith("/data.pkl") else d) for n, d in es])

    directory = os.path.join(special, "evil-path")
    reset_dir(directory)
    rewrite_zip(base, os.path.join(directory, "pytorch_model.bin"), lambda es: es + [("plain/../../evil", b"#!/bin/sh\necho pwned\n")])

    directory = os.path.join(special, "bad-pickle")
    reset_dir(directory)
    rewrite_zip(base, os.path.join(directory, "pytorch_model.bin"), lambda es: [(n, d[: len(d) // 2] if n.endswith("/data.pkl") else d) for n, d in es])
    os.remove(base)


# ---- golden forward passes ----
# spec/golden/make_forward_goldens.py loads the checkpoints written here and writes each family's
# reference logits, loss and gradients to golden.json; run it after this script.


def main():
    torch.manual_seed(0)
    states = {}
    for seed, family in enumerate(TINY):
        states[family] = make_family(family, 1000 + seed)
    make_safetensors_variant("chatglm2", states["chatglm2"])
    os.makedirs(os.path.join(OUT, "special"), exist_ok=True)
    make_views()
    make_hostile_files()
    total = 0
    for dirpath, _, files in os.walk(OUT):
        total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
    print(f"wrote {OUT} ({total} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
