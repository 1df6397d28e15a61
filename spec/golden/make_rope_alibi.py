"""Reference for sftc's RoPE tables and rotations and Baichuan-13B's ALiBi slopes, written in plain
PyTorch from each family's reference formulas (models.md sections 1.2, 2.2, 3.2, 4.2, 5.2, 6.2-6.5),
fp32 model mode, plus the fp16-model tables.

Writes test/fixtures/rope/rope_alibi.json:
  tables[family]: inv_freq and [cos, sin] per pair at a few positions, as each reference builds them;
  half_tables[family]: the same in an fp16 model (MOSS keeps fp32 tables);
  rotations[family]: a small random x (T, H, D), its position ids and the reference's rotated output;
  alibi[n]: the slopes of n heads as stored (float32).

Run: /usr/bin/python3 spec/golden/make_rope_alibi.py
"""
import json
import math
import os

import torch

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures", "rope", "rope_alibi.json")
POSITIONS = [0, 1, 2, 17, 255, 1000, 2047, 2049, 4095]
BASE = 10000


def floats(t):
    # Shortest decimal that rounds back to the same float32 (read with Math.fround).
    return [float(str(v)) for v in t.reshape(-1).float().numpy()]


# ---- inverse frequencies and angle tables, as each reference computes them ----
def inv_freq_baichuan(dim):
    # Baichuan-7B RotaryEmbedding: arange(...).float() / dim, then base ** that, in f32.
    return 1.0 / (BASE ** (torch.arange(0, dim, 2).float() / dim))


def inv_freq_moss(dim):
    # MOSS create_sinusoidal_positions: integer arange true-divided (f32).
    return 1.0 / (BASE ** (torch.arange(0, dim, 2) / dim))


def inv_freq_chatglm(dim):
    # ChatGLM-6B: rounded to fp16 in __init__; model.float() widens the buffer back to f32.
    return (1.0 / (BASE ** (torch.arange(0, dim, 2).float() / dim))).half().float()


def inv_freq_chatglm2(dim):
    return 1.0 / (BASE ** (torch.arange(0, dim, 2, dtype=torch.float) / dim))


def angles(inv_freq, rows):
    t = torch.arange(rows, dtype=torch.float32)
    return torch.einsum("i,j->ij", t, inv_freq)  # f32 outer product


FAMILIES = {
    # name: (segment dim rotated per stream, inv_freq recipe)
    "baichuan7b": (128, inv_freq_baichuan),
    "moss": (64, inv_freq_moss),
    "chatglm": (64, inv_freq_chatglm),
    "chatglm2": (64, inv_freq_chatglm2),
}


def tables():
    out = {}
    for name, (dim, recipe) in FAMILIES.items():
        inv = recipe(dim)
        freqs = angles(inv, max(POSITIONS) + 1)[POSITIONS]
        out[name] = {"dim": dim, "positions": POSITIONS, "inv_freq": floats(inv), "cos": floats(freqs.cos()), "sin": floats(freqs.sin())}
    return out


# ---- fp16 models (models.md 6.3) ----
def half_tables():
    rows = max(POSITIONS) + 1
    out = {}
    # Baichuan-7B: fp32 tables, cast to the activation dtype at use.
    freqs = angles(inv_freq_baichuan(128), rows)[POSITIONS]
    out["baichuan7b"] = (128, inv_freq_baichuan(128), freqs.cos().half(), freqs.sin().half())
    # ChatGLM-6B .half(): the fp16 buffer, fp16 positions and products (einsum of two fp16
    # vectors), cos/sin of fp16 tensors. CPU torch lacks fp16 cos, so it is taken in fp32 and
    # rounded, as GPU kernels compute fp16 cos.
    inv = (1.0 / (BASE ** (torch.arange(0, 64, 2).float() / 64))).half()
    t = torch.arange(rows, dtype=torch.half)
    freqs = (t[:, None] * inv[None, :])[POSITIONS]
    out["chatglm"] = (64, inv, freqs.float().cos().half(), freqs.float().sin().half())
    # ChatGLM2 .half(): theta, positions and products in fp16, then .float(), cos/sin, .half().
    theta = 1.0 / (BASE ** (torch.arange(0, 64, 2, dtype=torch.half) / 64))
    idx = torch.outer(torch.arange(rows, dtype=torch.half), theta).float()[POSITIONS]
    out["chatglm2"] = (64, theta, idx.cos().half(), idx.sin().half())
    return {
        name: {"dim": dim, "positions": POSITIONS, "inv_freq": floats(inv), "cos": floats(cos), "sin": floats(sin)}
        for name, (dim, inv, cos, sin) in out.items()
    }


# ---- the rotations themselves, on x of shape (T, H, D) ----
def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def rotate_every_two(x):
    x1, x2 = x[..., ::2], x[..., 1::2]
    return torch.stack((-x2, x1), dim=-1).flatten(-2)


def half_rotation(x, inv, pos):
    freqs = angles(inv, int(pos.max()) + 1)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[pos][:, None, :], emb.sin()[pos][:, None, :]
    return x * cos + rotate_half(x) * sin


def rope_baichuan(x, pos):
    return half_rotation(x, inv_freq_baichuan(128), pos[:, 0])


def rope_chatglm(x, pos):
    # 2-D: first half of each head by position ids, second half by block position ids.
    x1, x2 = x.chunk(2, dim=-1)
    inv = inv_freq_chatglm(64)
    return torch.cat((half_rotation(x1, inv, pos[:, 0]), half_rotation(x2, inv, pos[:, 1])), dim=-1)


def rope_chatglm2(x, pos):
    freqs = angles(inv_freq_chatglm2(64), int(pos.max()) + 1)
    cache = torch.stack([freqs.cos(), freqs.sin()], dim=-1)[pos[:, 0]]  # (T, 32, 2)
    rot, rest = x[..., :64], x[..., 64:]
    pairs = rot.reshape(rot.shape[0], rot.shape[1], 32, 2)
    c, s = cache[:, None, :, 0], cache[:, None, :, 1]
    out = torch.stack([pairs[..., 0] * c - pairs[..., 1] * s, pairs[..., 1] * c + pairs[..., 0] * s], dim=-1).flatten(2)
    return torch.cat((out, rest), dim=-1)


def rope_moss(x, pos):
    freqs = angles(inv_freq_moss(64), int(pos.max()) + 1)[pos[:, 0]]
    sin = torch.repeat_interleave(freqs.sin()[:, None, :], 2, dim=-1)
    cos = torch.repeat_interleave(freqs.cos()[:, None, :], 2, dim=-1)
    rot, rest = x[..., :64], x[..., 64:]
    return torch.cat((rot * cos + rotate_every_two(rot) * sin, rest), dim=-1)


def rotations():
    gen = torch.Generator().manual_seed(7)
    cases = {
        "baichuan7b": (rope_baichuan, 128, [[p] for p in [0, 1, 5, 300, 2047, 4095]]),
        "moss": (rope_moss, 256, [[p] for p in [3, 2, 1, 0, 1000, 2047]]),
        # GLM positions of a 6-token sample whose <sop> is at index 4 and [gMASK] at 3.
        "chatglm": (rope_chatglm, 128, [[0, 0], [1, 0], [2, 0], [3, 0], [3, 1], [3, 2]]),
        "chatglm2": (rope_chatglm2, 128, [[p] for p in [0, 7, 8, 9, 1500, 32767]]),
    }
    out = {}
    for name, (fn, dim, pos) in cases.items():
        x = torch.randn(len(pos), 2, dim, generator=gen)
        pos_t = torch.tensor(pos)
        out[name] = {"shape": [len(pos), 2, dim], "positions": pos, "x": floats(x), "y": floats(fn(x, pos_t))}
    return out


# ---- ALiBi slopes, Baichuan-13B _get_interleave ----
def interleave(n):
    def power_of_2(n):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(n).is_integer():
        return power_of_2(n)
    closest = 2 ** math.floor(math.log2(n))
    return power_of_2(closest) + interleave(2 * closest)[0::2][: n - closest]


def main():
    data = {
        "tables": tables(),
        "half_tables": half_tables(),
        "rotations": rotations(),
        "alibi": {str(n): floats(torch.Tensor(interleave(n))) for n in [6, 8, 12, 32, 40]},
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(data, f)
    print("wrote", os.path.normpath(OUT))


main()
