#!/usr/bin/python3
# Golden values for the optimizer kernels and learning-rate schedules, from PyTorch itself:
# torch.optim.AdamW steps, torch.nn.utils.clip_grad_norm_, and LambdaLR driven by the
# schedule lambdas of Hugging Face transformers (optimization.py: get_constant_schedule,
# get_constant_schedule_with_warmup, get_linear_schedule_with_warmup,
# get_cosine_schedule_with_warmup with num_cycles=0.5), restated here because transformers
# is not installed. Run: /usr/bin/python3 spec/golden/make_optimizer.py > spec/golden/optimizer.json
import json
import math

import torch

torch.manual_seed(0)


def schedules():
    def constant(_):
        return 1.0

    def with_warmup(warmup, after):
        return lambda step: step / max(1, warmup) if step < warmup else after(step)

    def linear(warmup, total):
        return with_warmup(warmup, lambda s: max(0.0, (total - s) / max(1, total - warmup)))

    def cosine(warmup, total, cycles=0.5):
        def after(s):
            progress = (s - warmup) / max(1, total - warmup)
            return max(0.0, 0.5 * (1.0 + math.cos(math.pi * cycles * 2.0 * progress)))
        return with_warmup(warmup, after)

    cases = {
        "constant": (constant, 0, 20),
        "constant_with_warmup": (with_warmup(5, lambda s: 1.0), 5, 20),
        "linear": (linear(5, 20), 5, 20),
        "cosine": (cosine(5, 20), 5, 20),
    }
    out = []
    for kind, (fn, warmup, total) in cases.items():
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=2e-4)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, fn)
        lrs = []
        for _ in range(total + 2):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        out.append({"kind": kind, "warmup": warmup, "total": total, "base_lr": 2e-4, "lrs": lrs})
    return out


def adamw():
    n = 37
    p0 = torch.randn(n, dtype=torch.float64)
    grads = [torch.randn(n, dtype=torch.float64) for _ in range(3)]
    hyper = dict(lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    p = torch.nn.Parameter(p0.clone())
    opt = torch.optim.AdamW([p], foreach=False, **hyper)
    for g in grads:
        p.grad = g.clone()
        opt.step()
    state = opt.state[p]
    return {
        "p0": p0.tolist(),
        "grads": [g.tolist() for g in grads],
        "lr": 1e-2, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1,
        "p": p.detach().tolist(),
        "m": state["exp_avg"].tolist(),
        "v": state["exp_avg_sq"].tolist(),
    }


def clip():
    grads = [torch.randn(n, dtype=torch.float64) * 3 for n in (5, 1000, 1)]
    params = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm=1.0)
    return {
        "grads": [g.tolist() for g in grads],
        "max_norm": 1.0,
        "norm": float(norm),
        "clipped": [p.grad.tolist() for p in params],
    }


print(json.dumps({"torch": torch.__version__, "schedules": schedules(), "adamw": adamw(), "clip": clip()}))
