#!/usr/bin/python3
"""Reference training steps of the tiny decoder, for the training loop's tests.

Run with Debian's PyTorch:
    /usr/bin/python3 spec/golden/make_training_steps.py > spec/golden/training_steps.json

The model is compiler/models/tiny-transformer.ts's configuration used by test/train (vocab 32,
hidden 16, 1 layer, 2 heads, SwiGLU 32, RMSNorm eps 1e-5, half-rotation RoPE, pre-norm residual,
untied head), written here from its definition in float64. Initial weights come from
torch.manual_seed(0) (N(0, 0.02) matrices, unit norm weights) and are written to the output, as
are the token batches, so the test starts from exactly these values.

Each case runs 5 optimizer steps the way Hugging Face Trainer does:
  - the loss of a step is sum(token cross-entropy) / N over its grad_accum micro-batches, N the
    step's label tokens (num_items_in_batch), each micro-batch's part backpropagated in turn;
  - torch.nn.utils.clip_grad_norm_ when max_grad_norm > 0;
  - torch.optim.AdamW with two groups: norm weights without weight decay, the rest with it;
  - LambdaLR from Hugging Face's schedule lambdas (restated: transformers is not installed),
    stepped after each update, so the first update uses lambda(0).
Written per step: loss, lr, gradient norm before clipping; after the last step: the loss on a
held-out batch and, per weight, its sum, l2 norm and weighted sum (weights 1 + i mod 7 over the
row-major flattening).
"""
import json
import math

import torch

F64 = torch.float64
VOCAB, HIDDEN, HEADS, FFN, SEQ, ROWS, EPS = 32, 16, 2, 32, 8, 2, 1e-5
HEAD_DIM = HIDDEN // HEADS
SHAPES = {
    "embed.weight": (VOCAB, HIDDEN),
    "layers.0.norm1.weight": (HIDDEN,),
    "layers.0.attn.qkv.weight": (3 * HIDDEN, HIDDEN),
    "layers.0.attn.out.weight": (HIDDEN, HIDDEN),
    "layers.0.norm2.weight": (HIDDEN,),
    "layers.0.mlp.gate_up.weight": (2 * FFN, HIDDEN),
    "layers.0.mlp.down.weight": (HIDDEN, FFN),
    "final_norm.weight": (HIDDEN,),
    "lm_head.weight": (VOCAB, HIDDEN),
}


def initial_weights():
    torch.manual_seed(0)
    return {name: torch.ones(shape, dtype=F64) if "norm" in name else 0.02 * torch.randn(shape, dtype=F64) for name, shape in SHAPES.items()}


def batches(count):
    """Rows following t[i+1] = (3 t[i] + 1) mod 32 from a random start, as the test data does;
    labels are the next tokens, -100 at each row's end and at ~10% of other positions."""
    out = []
    for _ in range(count):
        start = torch.randint(0, VOCAB, (ROWS,))
        ids = torch.zeros(ROWS, SEQ, dtype=torch.long)
        ids[:, 0] = start
        for i in range(1, SEQ):
            ids[:, i] = (3 * ids[:, i - 1] + 1) % VOCAB
        labels = (3 * ids + 1) % VOCAB
        labels[torch.rand(ROWS, SEQ) < 0.1] = -100
        labels[:, -1] = -100
        out.append((ids, labels))
    return out


def rms_norm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w


def rope_half(x):
    """x: (B, T, H, D); pairs (i, i + D/2) rotated by t * 10000^(-2i/D)."""
    t = torch.arange(x.shape[1], dtype=F64)
    inv_freq = 10000.0 ** (-torch.arange(0, HEAD_DIM, 2, dtype=F64) / HEAD_DIM)
    angles = t[:, None] * inv_freq  # (T, D/2)
    cos = torch.cat([angles.cos(), angles.cos()], -1)[None, :, None, :]
    sin = torch.cat([angles.sin(), angles.sin()], -1)[None, :, None, :]
    half = HEAD_DIM // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], -1)
    return x * cos + rotated * sin


def logits(w, ids):
    B, T = ids.shape
    x = w["embed.weight"][ids]  # (B, T, C)
    a = rms_norm(x, w["layers.0.norm1.weight"])
    q, k, v = (a @ w["layers.0.attn.qkv.weight"].t()).split(HIDDEN, -1)
    q, k, v = (t.reshape(B, T, HEADS, HEAD_DIM) for t in (q, k, v))
    q, k = rope_half(q), rope_half(k)
    scores = torch.einsum("bthd,bshd->bhts", q, k) / math.sqrt(HEAD_DIM)
    scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
    attn = torch.einsum("bhts,bshd->bthd", scores.softmax(-1), v).reshape(B, T, HIDDEN)
    h = x + attn @ w["layers.0.attn.out.weight"].t()
    m = rms_norm(h, w["layers.0.norm2.weight"])
    gate, up = (m @ w["layers.0.mlp.gate_up.weight"].t()).split(FFN, -1)
    x = h + (torch.nn.functional.silu(gate) * up) @ w["layers.0.mlp.down.weight"].t()
    return (rms_norm(x, w["final_norm.weight"]) @ w["lm_head.weight"].t()).reshape(B * T, VOCAB)


def loss_sum(w, ids, labels):
    return torch.nn.functional.cross_entropy(logits(w, ids), labels.reshape(-1), ignore_index=-100, reduction="sum")


def schedule(kind, warmup, total, min_rate):
    def after(s):
        progress = (s - warmup) / max(1, total - warmup)
        if kind in ("constant", "constant_with_warmup"):
            return 1.0
        if kind == "linear":
            return max(0.0, (total - s) / max(1, total - warmup))
        cosine = max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress)))
        return cosine * (1 - min_rate) + min_rate  # get_cosine_with_min_lr_schedule_with_warmup
    return lambda s: s / max(1, warmup) if s < warmup else after(s)


def run_case(case, init, pool, held):
    s = case["settings"]
    w = {name: t.clone().requires_grad_(True) for name, t in init.items()}
    groups = [
        {"params": [t for n, t in w.items() if "norm" not in n], "weight_decay": s["weight_decay"]},
        {"params": [t for n, t in w.items() if "norm" in n], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=s["lr"], betas=(s["adam_beta1"], s["adam_beta2"]), eps=s["adam_eps"])
    sch = s["schedule"]
    min_rate = sch.get("min_lr", 0.0) / s["lr"]
    lr_sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule(sch["type"], sch.get("warmup_steps", 0), s["max_steps"], min_rate))
    steps, k = [], 0
    for _ in range(s["max_steps"]):
        micro = [pool[(k + j) % len(pool)] for j in range(s["grad_accum"])]
        k += s["grad_accum"]
        n = sum(int((labels != -100).sum()) for _, labels in micro)
        opt.zero_grad()
        total = 0.0
        for ids, labels in micro:
            part = loss_sum(w, ids, labels) / n
            part.backward()
            total += part.item()
        params = list(w.values())
        if s["max_grad_norm"] > 0:
            norm = torch.nn.utils.clip_grad_norm_(params, s["max_grad_norm"]).item()
        else:
            norm = torch.sqrt(sum((p.grad ** 2).sum() for p in params)).item()
        lr = opt.param_groups[0]["lr"]
        opt.step()
        lr_sched.step()
        steps.append({"loss": total, "lr": lr, "grad_norm": norm})
    with torch.no_grad():
        ids, labels = held
        eval_loss = (loss_sum(w, ids, labels) / int((labels != -100).sum())).item()
        weights = {}
        for name, t in w.items():
            flat = t.detach().reshape(-1)
            mix = 1 + torch.arange(flat.numel()) % 7
            weights[name] = {"sum": flat.sum().item(), "l2": flat.norm().item(), "weighted_sum": (flat * mix).sum().item()}
    return {"name": case["name"], "settings": s, "steps": steps, "eval_loss": eval_loss, "final_weights": weights}


def main():
    torch.set_default_dtype(F64)
    init = initial_weights()
    pool = batches(4)
    held = batches(1)[0]
    base = {"grad_accum": 1, "adam_beta1": 0.9, "adam_beta2": 0.999, "adam_eps": 1e-8, "max_steps": 5}
    cases = [
        {"name": "cosine min_lr, warm-up 2, clipping 0.5, weight decay 0.1, grad_accum 2",
         "settings": {**base, "grad_accum": 2, "lr": 1e-2, "weight_decay": 0.1, "max_grad_norm": 0.5,
                      "schedule": {"type": "cosine", "warmup_steps": 2, "min_lr": 1e-3}}},
        {"name": "linear, warm-up 2, clipping 1, weight decay 0.01",
         "settings": {**base, "lr": 5e-3, "weight_decay": 0.01, "max_grad_norm": 1.0,
                      "schedule": {"type": "linear", "warmup_steps": 2}}},
        {"name": "constant_with_warmup 3, no clipping, no weight decay",
         "settings": {**base, "lr": 2e-2, "weight_decay": 0.0, "max_grad_norm": 0.0,
                      "schedule": {"type": "constant_with_warmup", "warmup_steps": 3}}},
        {"name": "constant, clipping 0.05 (clips every step), weight decay 0.5",
         "settings": {**base, "lr": 1e-2, "weight_decay": 0.5, "max_grad_norm": 0.05,
                      "schedule": {"type": "constant"}}},
    ]
    out = {
        "model": {"vocab": VOCAB, "hidden": HIDDEN, "layers": 1, "heads": HEADS, "kv_heads": HEADS, "ffn": FFN, "rows": ROWS, "seq": SEQ},
        "init": {name: t.reshape(-1).tolist() for name, t in init.items()},
        "batches": [{"ids": ids.reshape(-1).tolist(), "labels": labels.reshape(-1).tolist()} for ids, labels in pool],
        "eval_batch": {"ids": held[0].reshape(-1).tolist(), "labels": held[1].reshape(-1).tolist()},
        "cases": [run_case(c, init, pool, held) for c in cases],
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
