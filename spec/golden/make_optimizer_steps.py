#!/usr/bin/python3
"""Reference for one optimizer step of full, LoRA and QLoRA training on each fixture family.

Run with Debian's PyTorch after make_checkpoints.py:
    /usr/bin/python3 spec/golden/make_optimizer_steps.py

For each family it loads test/fixtures/checkpoints/<family>/, takes the fixed SFT batch of
make_forward_goldens.py (two rows of 8 tokens, labels -100 over the prompt) and its forward
pass, and runs one step of torch.optim.AdamW after torch.nn.utils.clip_grad_norm_:
  full   every weight the forward reads trains;
  lora   rank-2 adapters (alpha 4, scale alpha / rank) on the family's default targets.
         A is PEFT's kaiming_uniform(a=sqrt(5)) draw (bound 1/sqrt(in)) from a fixed torch
         seed. PEFT starts B at zero, which leaves A without gradient on the first step; here B
         is instead set to the deterministic perturbation B[o, r] = 0.01 * sin(1 + o * rank + r)
         so that both A and B get gradients;
  qlora  as lora, with every per-layer linear weight (2-D, inside a numbered layer; not the
         embeddings or the head, which QLoRA leaves unquantized) replaced by its NF4 round trip
         (blocks of 64, absmax double-quantized to 8 bits in blocks of 256), computed with the
         make_nf4.py algorithm.
A LoRA adapter enters as W + scale * B @ A, which is the adapter path x A^T B^T scale added to
x W^T. Weight decay follows Hugging Face's grouping (no decay for biases and norm weights).
AdamW's eps is 1e-6 rather than PyTorch's 1e-8: some gradients are zero in exact arithmetic
(a key bias shifts every score of a query equally, which softmax ignores), and on the first step
AdamW scales a gradient g by 1 / (|g| + eps), so with eps 1e-8 the float32 rounding noise of
such a gradient (~1e-10) becomes an update of order lr that no two float32 programs share.

The step runs in float64 (the reference) and again in float32; the float32 run's largest
relative deviation is printed and stored ("float32Deviation"). Output, per family,
test/fixtures/optimizer-steps/<family>.json: the batch, hyperparameters, and per method the
loss, gradient norm, clipping coefficient, initial adapters (lora/qlora) and per trainable
tensor the updated weight, the update (updated minus initial, in float64) and AdamW's exp_avg
(= (1 - beta1) * clipped gradient after one step) at flat indices 0, stride, 2*stride, ... (stride = ceil(numel / 512), to keep the fixtures small).
Arrays are base64 of little-endian float32.
"""
import base64
import json
import math
import os
import re
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_forward_goldens as fwd  # noqa: E402
import make_nf4 as nf4  # noqa: E402

OUT = os.path.join(fwd.ROOT, "test", "fixtures", "optimizer-steps")
HYPER = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-6, "weightDecay": 0.01, "maxGradNorm": 0.5}
RANK, ALPHA, SEED = 2, 4.0, 1234
SAMPLES = 512
DEFAULT_TARGETS = {"baichuan7b": "W_pack", "baichuan13b": "W_pack", "moss": "qkv_proj", "chatglm": "query_key_value", "chatglm2": "query_key_value"}


def b64(t):
    return base64.b64encode(t.detach().to(torch.float32).contiguous().numpy().tobytes()).decode()


def decays(name):
    parts = name.split(".")
    return not (parts[-1] == "bias" or any("norm" in p or p.startswith("ln_") for p in parts))


def quantized_layer_weight(name, t):
    return t.dim() == 2 and name.endswith(".weight") and re.search(r"\.\d+\.", name) is not None


def nf4_round_trip(w):
    """w (any shape) -> the dequantized NF4 values with double-quantized absmax, float32."""
    levels = torch.tensor(nf4.NF4_LEVELS, dtype=torch.float32)
    flat = w.detach().to(torch.float32).reshape(-1)
    packed, absmax = nf4.quantize(flat, levels)
    q = torch.stack([packed >> 4, packed & 15], dim=1).view(-1)[: flat.numel()].long()
    *_, absmax_dq = nf4.double_quantize(absmax)
    return (levels[q] * absmax_dq.repeat_interleave(64)[: flat.numel()]).reshape(w.shape)


def initial_adapters(state, family):
    gen = torch.Generator().manual_seed(SEED)
    adapters = {}
    for name in sorted(state, key=lambda n: [int(p) if p.isdigit() else p for p in n.split(".")]):
        if not name.endswith(f".{DEFAULT_TARGETS[family]}.weight"):
            continue
        out_features, in_features = state[name].shape
        bound = 1 / math.sqrt(in_features)
        a = (torch.rand(RANK, in_features, generator=gen, dtype=torch.float64) * 2 - 1) * bound
        idx = torch.arange(out_features * RANK, dtype=torch.float64).view(out_features, RANK)
        b = 0.01 * torch.sin(1 + idx)
        module = name[: -len(".weight")]
        # float32 values are what the fixture stores: both sides start from them exactly
        adapters[module] = (a.float().double(), b.float().double())
    return adapters


def one_step(family, config, state, method, adapters, ids, labels, dtype):
    """Loss, grad norm, clip coefficient and {name: (updated, exp_avg)} for one AdamW step."""
    base = {n: t.detach().to(dtype) for n, t in state.items()}
    if method == "qlora":
        base = {n: (nf4_round_trip(t).to(dtype) if quantized_layer_weight(n, t) else t) for n, t in base.items()}
    trainable = {}
    if method == "full":
        for n, t in base.items():
            if t.is_floating_point():
                trainable[n] = t.clone().requires_grad_(True)
        weights = dict(base, **trainable)
    else:
        for module, (a, b) in adapters.items():
            trainable[f"{module}.lora_A.weight"] = a.to(dtype).clone().requires_grad_(True)
            trainable[f"{module}.lora_B.weight"] = b.to(dtype).clone().requires_grad_(True)
        weights = dict(base)
        for module in adapters:
            a, b = trainable[f"{module}.lora_A.weight"], trainable[f"{module}.lora_B.weight"]
            weights[f"{module}.weight"] = base[f"{module}.weight"] + (ALPHA / RANK) * (b @ a)
    # the forward's own constants (RoPE angles, ALiBi slopes) follow the module's F64 setting
    fwd.F64 = dtype
    try:
        loss = fwd.sft_loss(fwd.FORWARDS[family](weights, config, ids), labels)
    finally:
        fwd.F64 = torch.float64
    loss.backward()
    params = {n: p for n, p in trainable.items() if p.grad is not None}
    before = {n: p.detach().clone() for n, p in params.items()}
    norm = float(torch.nn.utils.clip_grad_norm_(list(params.values()), HYPER["maxGradNorm"]))
    clip = min(1.0, HYPER["maxGradNorm"] / (norm + 1e-6))
    groups = [
        {"params": [p for n, p in params.items() if decays(n)], "weight_decay": HYPER["weightDecay"]},
        {"params": [p for n, p in params.items() if not decays(n)], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=HYPER["lr"], betas=(HYPER["beta1"], HYPER["beta2"]), eps=HYPER["eps"])
    opt.step()
    updated = {n: (p.detach(), opt.state[p]["exp_avg"], before[n]) for n, p in params.items()}
    return float(loss), norm, clip, updated


def relative(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30))


def sampled(t):
    flat = t.reshape(-1)
    stride = max(1, math.ceil(flat.numel() / SAMPLES))
    return stride, flat[::stride]


def main():
    os.makedirs(OUT, exist_ok=True)
    total = 0
    for family in fwd.FORWARDS:
        directory = os.path.join(fwd.FIXTURES, family)
        with open(os.path.join(directory, "config.json")) as f:
            config = json.load(f)
        state = {n: t.detach() for n, t in fwd.load_state(directory).items()}
        ids, labels = fwd.inputs(family, config)
        adapters = initial_adapters(state, family)
        doc = {"family": family, "generator": "spec/golden/make_optimizer_steps.py", "torch": torch.__version__,
               "input_ids": ids.tolist(), "labels": labels.tolist(), "hyper": HYPER, "rank": RANK, "alpha": ALPHA,
               "target": DEFAULT_TARGETS[family], "methods": {}}
        for method in ["full", "lora", "qlora"]:
            loss, norm, clip, updated = one_step(family, config, state, method, adapters, ids, labels, torch.float64)
            loss32, norm32, _, updated32 = one_step(family, config, state, method, adapters, ids, labels, torch.float32)
            deviation = max([abs(loss32 - loss) / loss, abs(norm32 - norm) / norm] + [relative(updated32[n][0], w) for n, (w, _, _) in updated.items()])
            tensors = []
            for name, (w, m, w0) in updated.items():
                stride, w_s = sampled(w)
                _, m_s = sampled(m)
                _, d_s = sampled(w - w0)
                tensors.append({"name": name, "shape": list(w.shape), "stride": stride, "weight": b64(w_s), "update": b64(d_s), "expAvg": b64(m_s)})
            entry = {"loss": loss, "gradNorm": norm, "clip": clip, "float32Deviation": deviation, "tensors": tensors}
            if method != "full":
                entry["adapters"] = [{"module": mod, "a": b64(a), "b": b64(b)} for mod, (a, b) in adapters.items()]
            doc["methods"][method] = entry
            print(f"{family} {method}: loss {loss:.6f}, grad norm {norm:.6f}, clip {clip:.4f}, {len(tensors)} tensors, float32 deviation {deviation:.2e}")
        path = os.path.join(OUT, f"{family}.json")
        with open(path, "w") as f:
            json.dump(doc, f, separators=(",", ":"))
            f.write("\n")
        total += os.path.getsize(path)
    print(f"wrote {OUT} ({total} bytes)")


if __name__ == "__main__":
    main()
