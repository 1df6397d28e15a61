"""Reference for sftc's NF4 quantization (QLoRA paper, bitsandbytes storage conventions),
written in PyTorch: blockwise absmax over 64 weights, nearest NF4 level (argmin, lower level
on ties), two codes per byte with the first in the high nibble; double quantization of the
absmax values (mean offset, signed 8-bit dynamic map, blocks of 256).

The NF4 levels are the published float32 table (what real QLoRA checkpoints use); the script
re-derives them from the normal quantiles (create_normal_map's recipe, offset 0.9677083) and
checks the table against the derivation. Arrays are stored as base64 of little-endian bytes.

Writes test/fixtures/quant/nf4.json. Run: /usr/bin/python3 spec/golden/make_nf4.py
"""
import base64
import json
import os

import torch

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures", "quant", "nf4.json")


NF4_LEVELS = [
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
    -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
    0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
    0.7229568362236023, 1.0,
]


def b64(t):
    return base64.b64encode(t.contiguous().numpy().tobytes()).decode()


def derived_normal_map(offset=0.9677083):
    normal = torch.distributions.Normal(0.0, 1.0)
    pos = normal.icdf(torch.linspace(offset, 0.5, 9, dtype=torch.float64)[:-1])
    neg = -normal.icdf(torch.linspace(offset, 0.5, 8, dtype=torch.float64)[:-1])
    values = torch.cat([pos, torch.zeros(1, dtype=torch.float64), neg]).sort().values
    return (values / values.abs().max()).float()


def dynamic_map():
    # float64 throughout, rounded to float32 once (float32 linspace rounding varies by CPU).
    data = [0.0, 1.0]
    for e in range(7):
        bounds = torch.linspace(0.1, 1, 2 ** e + 1, dtype=torch.float64)
        means = (bounds[:-1] + bounds[1:]) / 2.0
        data += ((10 ** (e - 6)) * means).tolist()
        data += (-(10 ** (e - 6)) * means).tolist()
    return torch.tensor(sorted(data), dtype=torch.float64).float()


def nearest(levels, x):
    return torch.argmin((x[:, None] - levels[None, :]).abs(), dim=1)


def blockwise_absmax(x, block):
    pad = (-x.numel()) % block
    padded = torch.cat([x, torch.zeros(pad)]).view(-1, block)
    return padded.abs().max(dim=1).values


def quantize(w, levels):
    absmax = blockwise_absmax(w, 64)
    scale = absmax.repeat_interleave(64)[: w.numel()]
    normed = torch.where(scale == 0, torch.zeros_like(w), w / torch.where(scale == 0, torch.ones_like(scale), scale))
    q = nearest(levels, normed)
    if q.numel() % 2:
        q = torch.cat([q, torch.zeros(1, dtype=q.dtype)])
    packed = (q[0::2] << 4) | q[1::2]
    return packed.to(torch.uint8), absmax


def double_quantize(absmax):
    dmap = dynamic_map()
    # The mean is taken in float64 and rounded once: a float32 reduction's result depends on
    # its summation order (bitsandbytes takes it on the GPU), which no reference can pin down.
    offset = absmax.double().mean().float()
    centered = absmax - offset
    scales = blockwise_absmax(centered, 256)
    s = scales.repeat_interleave(256)[: centered.numel()]
    normed = torch.where(s == 0, torch.zeros_like(centered), centered / torch.where(s == 0, torch.ones_like(s), s))
    codes = nearest(dmap, normed).to(torch.uint8)
    dequant = dmap[codes.long()] * s + offset
    return codes, scales, offset, dequant


def main():
    torch.manual_seed(4)
    levels = torch.tensor(NF4_LEVELS, dtype=torch.float32)
    derived = derived_normal_map()
    assert (levels - derived).abs().max() < 1e-6, (levels - derived)
    cases = []
    for n, scale in [(64, 1.0), (1000, 0.02), (64 * 260 + 7, 0.5), (130, 3.0)]:
        w = torch.randn(n) * scale
        w[5] = 0.0
        packed, absmax = quantize(w, levels)
        q = torch.stack([packed >> 4, packed & 15], dim=1).view(-1)[:n].long()
        dequant = levels[q] * absmax.repeat_interleave(64)[:n]
        codes2, scales2, offset, absmax_dq = double_quantize(absmax)
        dequant_dq = levels[q] * absmax_dq.repeat_interleave(64)[:n]
        cases.append({"length": n, "weights": b64(w), "codes": b64(packed), "absmax": b64(absmax),
                      "dequantized": b64(dequant), "absmaxCodes": b64(codes2), "absmaxScales": b64(scales2),
                      "absmaxOffset": offset.item(), "dequantizedDouble": b64(dequant_dq)})
    doc = {"levels": b64(levels), "dynamicMap": b64(dynamic_map()), "cases": cases,
           "generator": "spec/golden/make_nf4.py", "torch": torch.__version__}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(doc, f)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
