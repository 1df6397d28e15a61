#!/usr/bin/python3
"""Reference forward passes of the tiny fixture models: logits, SFT loss and gradients.

Run with Debian's PyTorch after make_checkpoints.py:
    /usr/bin/python3 spec/golden/make_forward_goldens.py

For each family it loads test/fixtures/checkpoints/<family>/ (config.json + the torch.save
shards), widens the weights to float64 (exact for fp16/bf16), runs a forward pass written from
/work/shared/reference/models.md on fixed token ids, and writes golden.json next to the
checkpoint:
  input_ids, labels        (B, T) ints; labels use -100 for positions without loss
  logits                   (B, T, vocab), float64
  loss                     mean cross-entropy of logits[:, :-1] against labels[:, 1:]
  grads                    per parameter: sum, l2 (Euclidean norm), weighted_sum (weights 1 + i mod 7
                           over the row-major flattening); 1-D parameters also list every value
Every computation is float64: the reference for an fp32 implementation, not a bit-match of an fp16
GPU run. The model-defined constants that are rounded in the published code are kept rounded
(ChatGLM-6B's inv_freq is fp16 even in fp32 mode, models.md 6.3).
"""
import json
import math
import os

import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
FIXTURES = os.path.join(ROOT, "test", "fixtures", "checkpoints")
F64 = torch.float64


def load_state(directory):
    with open(os.path.join(directory, "pytorch_model.bin.index.json")) as f:
        files = sorted(set(json.load(f)["weight_map"].values()))
    state = {}
    for file in files:
        state.update(torch.load(os.path.join(directory, file), map_location="cpu"))
    return {name: t.to(F64).requires_grad_(t.is_floating_point()) for name, t in state.items()}


# ---- building blocks (x is (B, T, C) throughout) ----

def rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def layer_norm(x, weight, bias, eps):
    return torch.nn.functional.layer_norm(x, x.shape[-1:], weight, bias, eps)


def linear(x, weight, bias=None):
    y = x @ weight.t()
    return y if bias is None else y + bias


def gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x.pow(3))))


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def rope_half(x, positions, inv_freq):
    """Half-rotation RoPE over all of x's last dim. x: (B, T, nh, d); positions: (B, T)."""
    freqs = positions[..., None].to(F64) * inv_freq  # (B, T, d/2)
    emb = torch.cat([freqs, freqs], dim=-1)[:, :, None, :]
    return x * emb.cos() + rotate_half(x) * emb.sin()


def rope_interleaved(x, positions, rotary_dims):
    """GPT-J / ChatGLM2 RoPE on pairs (2i, 2i+1) of the first rotary_dims dims; the rest pass."""
    inv_freq = 1.0 / (10000 ** (torch.arange(0, rotary_dims, 2, dtype=F64) / rotary_dims))
    angles = positions[..., None].to(F64) * inv_freq  # (B, T, r/2)
    cos, sin = angles.cos()[:, :, None, :], angles.sin()[:, :, None, :]
    rot, rest = x[..., :rotary_dims], x[..., rotary_dims:]
    even, odd = rot[..., 0::2], rot[..., 1::2]
    rotated = torch.stack([even * cos - odd * sin, odd * cos + even * sin], dim=-1).flatten(-2)
    return torch.cat([rotated, rest], dim=-1)


def attention(q, k, v, allowed, bias=None):
    """q: (B, T, nh, d); k, v: (B, S, nh, d); allowed: (B, T, S) bool; bias: (nh, T, S) or None."""
    scores = torch.einsum("bthd,bshd->bhts", q, k) / math.sqrt(q.shape[-1])
    if bias is not None:
        scores = scores + bias
    scores = scores.masked_fill(~allowed[:, None], float("-inf"))
    return torch.einsum("bhts,bshd->bthd", scores.softmax(-1), v).flatten(2)


def causal(batch, length):
    return torch.ones(length, length, dtype=torch.bool).tril().expand(batch, length, length)


def heads(x, count):
    return x.unflatten(-1, (count, x.shape[-1] // count))


def alibi_slopes(n):
    """Baichuan-13B's _get_interleave: geometric slopes, padded from the next power of two."""
    def power_of_two(m):
        start = 2 ** (-(2 ** -(math.log2(m) - 3)))
        return [start * start ** i for i in range(m)]
    if math.log2(n).is_integer():
        return power_of_two(n)
    closest = 2 ** math.floor(math.log2(n))
    return power_of_two(closest) + alibi_slopes(2 * closest)[0::2][: n - closest]


# ---- the five forward passes: (state, config, input_ids) -> logits (B, T, vocab) ----

def baichuan(s, c, ids, alibi):
    eps, nh = c["rms_norm_eps"], c["num_attention_heads"]
    B, T = ids.shape
    h = s["model.embed_tokens.weight"][ids]
    positions = torch.arange(T).expand(B, T)
    head_dim = c["hidden_size"] // nh
    inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, dtype=F64) / head_dim))
    # Absolute key index times the slope: row-shift equivalent to slope * (j - i) under softmax.
    bias = torch.tensor(alibi_slopes(nh), dtype=F64)[:, None, None] * torch.arange(T, dtype=F64) if alibi else None
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        x = rms_norm(h, s[p + "input_layernorm.weight"], eps)
        q, k, v = (heads(t, nh) for t in linear(x, s[p + "self_attn.W_pack.weight"]).chunk(3, dim=-1))
        if not alibi:
            q, k = rope_half(q, positions, inv_freq), rope_half(k, positions, inv_freq)
        h = h + linear(attention(q, k, v, causal(B, T), bias), s[p + "self_attn.o_proj.weight"])
        x = rms_norm(h, s[p + "post_attention_layernorm.weight"], eps)
        gated = torch.nn.functional.silu(linear(x, s[p + "mlp.gate_proj.weight"])) * linear(x, s[p + "mlp.up_proj.weight"])
        h = h + linear(gated, s[p + "mlp.down_proj.weight"])
    return linear(rms_norm(h, s["model.norm.weight"], eps), s["lm_head.weight"])


def moss(s, c, ids):
    eps, nh, mp = c["layer_norm_epsilon"], c["n_head"], 4
    B, T = ids.shape
    h = s["transformer.wte.weight"][ids]
    positions = torch.arange(T).expand(B, T)
    for i in range(c["n_layer"]):
        p = f"transformer.h.{i}."
        x = layer_norm(h, s[p + "ln_1.weight"], s[p + "ln_1.bias"], eps)
        # 4 model-parallel chunks, each [q | v | k]; head h comes from chunk h // (nh / 4).
        chunks = linear(x, s[p + "attn.qkv_proj.weight"]).unflatten(-1, (mp, -1))
        q, v, k = (t.flatten(-2) for t in chunks.chunk(3, dim=-1))
        q, k, v = heads(q, nh), heads(k, nh), heads(v, nh)
        q, k = rope_interleaved(q, positions, c["rotary_dim"]), rope_interleaved(k, positions, c["rotary_dim"])
        attn = linear(attention(q, k, v, causal(B, T)), s[p + "attn.out_proj.weight"])
        mlp = linear(gelu_tanh(linear(x, s[p + "mlp.fc_in.weight"], s[p + "mlp.fc_in.bias"])), s[p + "mlp.fc_out.weight"], s[p + "mlp.fc_out.bias"])
        h = h + attn + mlp  # parallel residual: one LayerNorm feeds both branches
    x = layer_norm(h, s["transformer.ln_f.weight"], s["transformer.ln_f.bias"], eps)
    return linear(x, s["lm_head.weight"], s["lm_head.bias"])


def chatglm_positions_and_mask(ids, gmask, sop):
    """2D positions and the prefix mask of each sample (models.md 4.2 step 6)."""
    B, T = ids.shape
    positions, blocks, allowed = [], [], []
    for row in ids.tolist():
        context = row.index(sop)
        mask_position = row.index(gmask)
        positions.append([mask_position if t >= context else t for t in range(T)])
        blocks.append([0] * context + list(range(1, T - context + 1)))
        m = torch.ones(T, T, dtype=torch.bool).tril()
        m[:, :context] = True  # bidirectional over the prompt, causal from <sop> on
        allowed.append(m)
    return torch.tensor(positions), torch.tensor(blocks), torch.stack(allowed)


def chatglm(s, c, ids):
    eps, nh, layers = c["layernorm_epsilon"], c["num_attention_heads"], c["num_layers"]
    alpha = math.sqrt(2 * layers)
    half = c["hidden_size"] // nh // 2
    # inv_freq is rounded to fp16 in the model's __init__, even when the model runs in fp32.
    inv_freq = (1.0 / (10000 ** (torch.arange(0, half, 2).float() / half))).half().to(F64)
    positions, blocks, allowed = chatglm_positions_and_mask(ids, c["gmask_token_id"], c["bos_token_id"])
    h = s["transformer.word_embeddings.weight"][ids]
    for i in range(layers):
        p = f"transformer.layers.{i}."
        a = layer_norm(h, s[p + "input_layernorm.weight"], s[p + "input_layernorm.bias"], eps)
        qkv = heads(linear(a, s[p + "attention.query_key_value.weight"], s[p + "attention.query_key_value.bias"]), nh)
        q, k, v = qkv.chunk(3, dim=-1)  # per head [q | k | v]
        q = torch.cat([rope_half(q[..., :half], positions, inv_freq), rope_half(q[..., half:], blocks, inv_freq)], dim=-1)
        k = torch.cat([rope_half(k[..., :half], positions, inv_freq), rope_half(k[..., half:], blocks, inv_freq)], dim=-1)
        h = a * alpha + linear(attention(q, k, v, allowed), s[p + "attention.dense.weight"], s[p + "attention.dense.bias"])
        m = layer_norm(h, s[p + "post_attention_layernorm.weight"], s[p + "post_attention_layernorm.bias"], eps)
        up = gelu_tanh(linear(m, s[p + "mlp.dense_h_to_4h.weight"], s[p + "mlp.dense_h_to_4h.bias"]))
        h = m * alpha + linear(up, s[p + "mlp.dense_4h_to_h.weight"], s[p + "mlp.dense_4h_to_h.bias"])
    x = layer_norm(h, s["transformer.final_layernorm.weight"], s["transformer.final_layernorm.bias"], eps)
    return linear(x, s["transformer.word_embeddings.weight"])  # tied head


def chatglm2(s, c, ids):
    eps, nh, groups, d = c["layernorm_epsilon"], c["num_attention_heads"], c["multi_query_group_num"], c["kv_channels"]
    B, T = ids.shape
    positions = torch.arange(T).expand(B, T)
    h = s["transformer.embedding.word_embeddings.weight"][ids]
    for i in range(c["num_layers"]):
        p = f"transformer.encoder.layers.{i}."
        x = rms_norm(h, s[p + "input_layernorm.weight"], eps)
        qkv = linear(x, s[p + "self_attention.query_key_value.weight"], s[p + "self_attention.query_key_value.bias"])
        q, k, v = qkv.split([nh * d, groups * d, groups * d], dim=-1)
        q, k, v = heads(q, nh), heads(k, groups), heads(v, groups)
        q, k = rope_interleaved(q, positions, d // 2), rope_interleaved(k, positions, d // 2)
        # Multi-query: head j uses key/value group j // (nh / groups).
        k, v = k.repeat_interleave(nh // groups, dim=2), v.repeat_interleave(nh // groups, dim=2)
        h = h + linear(attention(q, k, v, causal(B, T)), s[p + "self_attention.dense.weight"])
        x = rms_norm(h, s[p + "post_attention_layernorm.weight"], eps)
        gate, up = linear(x, s[p + "mlp.dense_h_to_4h.weight"]).chunk(2, dim=-1)
        h = h + linear(torch.nn.functional.silu(gate) * up, s[p + "mlp.dense_4h_to_h.weight"])
    return linear(rms_norm(h, s["transformer.encoder.final_layernorm.weight"], eps), s["transformer.output_layer.weight"])


FORWARDS = {
    "baichuan7b": lambda s, c, ids: baichuan(s, c, ids, alibi=False),
    "baichuan13b": lambda s, c, ids: baichuan(s, c, ids, alibi=True),
    "moss": moss,
    "chatglm": chatglm,
    "chatglm2": chatglm2,
}


def inputs(family, config):
    """Two sequences of 8 tokens with SFT labels (-100 over the prompt)."""
    gen = torch.Generator().manual_seed(sum(map(ord, family)))
    ids = torch.randint(5, 400, (2, 8), generator=gen)
    prompt = [3, 5]
    if family == "chatglm":
        # prompt + [gMASK] <sop> + answer + <eop>; the loss starts at <sop> (models.md 4.4).
        for row, length in enumerate(prompt):
            ids[row, length] = config["gmask_token_id"]
            ids[row, length + 1] = config["bos_token_id"]
            ids[row, -1] = config["eos_token_id"]
        prompt = [length + 1 for length in prompt]
    labels = ids.clone()
    for row, length in enumerate(prompt):
        labels[row, :length] = -100
    return ids, labels


def sft_loss(logits, labels):
    return torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100)


def grad_summary(grad):
    flat = grad.reshape(-1)
    weights = 1 + (torch.arange(flat.numel()) % 7).to(F64)
    out = {"sum": float(flat.sum()), "l2": float(flat.norm()), "weighted_sum": float((flat * weights).sum())}
    if grad.dim() == 1:
        out["values"] = flat.tolist()
    return out


def check_causality(forward, state, config, ids, family):
    """Changing the last token must leave every earlier logit unchanged (no future leak)."""
    changed = ids.clone()
    changed[:, -1] = (changed[:, -1] + 1) % 400
    with torch.no_grad():
        a, b = forward(state, config, ids), forward(state, config, changed)
    assert torch.allclose(a[:, :-1], b[:, :-1], rtol=0, atol=1e-12), f"{family}: future token changed past logits"


def main():
    for family, forward in FORWARDS.items():
        directory = os.path.join(FIXTURES, family)
        with open(os.path.join(directory, "config.json")) as f:
            config = json.load(f)
        state = load_state(directory)
        ids, labels = inputs(family, config)
        check_causality(forward, state, config, ids, family)
        logits = forward(state, config, ids)
        loss = sft_loss(logits, labels)
        loss.backward()
        grads = {name: grad_summary(t.grad) for name, t in state.items() if t.grad is not None}
        golden = {
            "family": family,
            "input_ids": ids.tolist(),
            "labels": labels.tolist(),
            "loss": float(loss),
            "logits": logits.detach().tolist(),
            "grads": grads,
        }
        with open(os.path.join(directory, "golden.json"), "w") as f:
            json.dump(golden, f, separators=(",", ":"))
            f.write("\n")
        print(f"{family}: loss {float(loss):.6f}, {len(grads)} gradients")


if __name__ == "__main__":
    main()
