# The training step of the benchmark's model in PyTorch: the generated model.py with sftc's
# initial weights, forward, backward, global-norm clipping and AdamW on the same trainable
# tensors, timed step by step.
#   python3 bench/torch_train_step.py DIR
# DIR holds model.py (runtime/export/torch/model-py.ts), weights.f32 (every weight, float32
# little-endian, concatenated), and step.json: {"weights": [[name, shape], ...] in the file's
# order, "trainable": [names], "decayed": [names], "rows", "seq", "ids" (rows * seq),
# "labels" (next-token labels aligned with ids, -100 where none), "lr", "beta1", "beta2", "eps",
# "weight_decay", "max_grad_norm", "warmup", "steps"}.
# Prints one JSON object: torch version, threads, the BLAS libraries loaded (Debian's torch calls
# whichever libblas.so.3 the system's alternatives select), the loss of every step and each
# timed step's ns.
import json
import os
import sys
import time

import numpy
import torch
import torch.nn.functional as F


def load(directory):
    sys.path.insert(0, directory)
    import model as generated  # noqa: E402  (the job's model.py in DIR)

    with open(os.path.join(directory, "step.json")) as f:
        spec = json.load(f)
    values = numpy.fromfile(os.path.join(directory, "weights.f32"), dtype="<f4")
    state, at = {}, 0
    for name, shape in spec["weights"]:
        n = int(numpy.prod(shape)) if shape else 1
        state[name] = torch.from_numpy(values[at:at + n].reshape(shape).copy())
        at += n
    net = generated.Model()
    expected = set(net.state_dict())
    missing = sorted(expected - set(state))
    if missing:
        raise SystemExit(f"weights.f32 lacks {len(missing)} tensors of model.py, e.g. {missing[:3]}")
    net.load_state_dict({k: state[k] for k in expected})
    return net, spec


def loaded_blas():
    """Shared libraries of this process whose name says BLAS (read after the steps ran)."""
    with open("/proc/self/maps") as maps:
        return sorted({line.split()[-1] for line in maps if "blas" in line.rsplit("/", 1)[-1].lower()})


def run(directory):
    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    net, spec = load(directory)
    params = dict(net.named_parameters())
    trainable = set(spec["trainable"])
    unknown = sorted(trainable - set(params))
    if unknown:
        raise SystemExit(f"trainable tensors not in model.py: {unknown[:3]}")
    for name, p in params.items():
        p.requires_grad_(name in trainable)
    decayed = set(spec["decayed"])
    groups = [
        {"params": [params[n] for n in spec["trainable"] if n in decayed], "weight_decay": spec["weight_decay"]},
        {"params": [params[n] for n in spec["trainable"] if n not in decayed], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=spec["lr"], betas=(spec["beta1"], spec["beta2"]), eps=spec["eps"])
    shape = (spec["rows"], spec["seq"])
    ids = torch.tensor(spec["ids"], dtype=torch.long).reshape(shape)
    labels = torch.tensor(spec["labels"], dtype=torch.long).reshape(shape)
    losses, samples = [], []
    for step in range(spec["warmup"] + spec["steps"]):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        logits = net(ids)  # (B, T, vocab)
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        loss.backward()
        if spec["max_grad_norm"] > 0:
            torch.nn.utils.clip_grad_norm_([params[n] for n in spec["trainable"]], spec["max_grad_norm"])
        optimizer.step()
        elapsed = time.perf_counter() - start
        losses.append(loss.item())
        if step >= spec["warmup"]:
            samples.append(elapsed * 1e9)
    return {"torch": torch.__version__, "threads": torch.get_num_threads(), "blas": loaded_blas(), "losses": losses, "samplesNs": samples}


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1])))
