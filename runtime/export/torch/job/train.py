# train.py: the pipeline's training run under PyTorch's distributed engine, written by
# `sftc export --target torchrun`. Launch it with torchrun (see README.md), or with
# `--spawn N` where torchrun is unavailable (torch.multiprocessing, gloo).
#
# It reproduces sftc's own run: the same initial weights (the model directory, plus sftc's
# initial adapters for LoRA), the same micro-batches in the same order (data/, tokenized by sftc),
# and the same step: the loss of an optimizer step is the sum of its token losses over all
# micro-batches and ranks divided by their label-token count, gradients are clipped by global
# norm as torch.nn.utils.clip_grad_norm_ does, AdamW takes the scheduled rate of the step.
# Each micro-batch's rows are split across ranks (rank r takes rows r, r + W, ...), so the global
# batch does not depend on the number of processes.
import argparse
import json
import math
import os
import shutil
import sys
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import checkpoint_io  # noqa: E402
import model as generated  # noqa: E402

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}


def parse_args():
    p = argparse.ArgumentParser(description="Train the exported pipeline with DDP or FSDP.")
    p.add_argument("--mode", choices=["ddp", "fsdp"], default="ddp", help="ddp (default) or fsdp (PyTorch 2.x)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="parameter and activation dtype")
    p.add_argument("--run", default=os.path.join(HERE, "run"), help="run directory: metrics.jsonl, checkpoints/, final/")
    p.add_argument("--model-dir", default=None, help="the base model directory (default: config.json's model.path)")
    p.add_argument("--resume", default=None, help="'latest' or a checkpoint directory to continue from")
    p.add_argument("--stop-after", type=int, default=None, help="save a checkpoint and stop after this step")
    p.add_argument("--spawn", type=int, default=0, help="start N local processes with torch.multiprocessing (gloo)")
    return p.parse_args()


# ---- schedule (Hugging Face's schedules as LambdaLR steps them) ----

def learning_rate(train, step, total):
    """The rate of the update made after `step` updates."""
    s = train["schedule"]
    kind, warmup, base = s["type"], s.get("warmup_steps", 0), train["lr"]
    if kind == "constant":
        return base
    if step < warmup:
        return base * step / max(1, warmup)
    if kind == "constant_with_warmup":
        return base
    if kind == "linear":
        return base * max(0.0, (total - step) / max(1, total - warmup))
    progress = (step - warmup) / max(1, total - warmup)
    factor = max(0.0, 0.5 * (1 + math.cos(math.pi * progress)))
    floor = s.get("min_lr", 0) / base
    return base * (factor * (1 - floor) + floor)


# ---- data ----

def load_data(config):
    """Token ids and labels of every example, and the micro-batches (example indices) in order."""
    data = os.path.join(HERE, "data")
    with open(os.path.join(data, "examples.json")) as f:
        index = json.load(f)
    ids = read_i32(os.path.join(data, "input_ids.i32"))
    labels = read_i32(os.path.join(data, "labels.i32"))
    offsets = index["offsets"]
    examples = [(ids[offsets[i]:offsets[i + 1]], labels[offsets[i]:offsets[i + 1]]) for i in range(len(offsets) - 1)]
    with open(os.path.join(data, "batches.json")) as f:
        batches = json.load(f)
    return examples, [mb for epoch in batches["epochs"] for mb in epoch], batches["pad_id"]


def read_i32(path):
    with open(path, "rb") as f:
        raw = bytearray(f.read())
    return torch.frombuffer(raw, dtype=torch.int32).long() if raw else torch.empty(0, dtype=torch.long)


def collate(rows, pad_id):
    """Rows right-padded to the longest: ids (B, T) with pad_id, labels (B, T) with -100."""
    T = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), T), -100, dtype=torch.long)
    for r, (i, l) in enumerate(rows):
        ids[r, : len(i)] = i
        labels[r, : len(l)] = l
    return ids, labels


def label_tokens(example):
    return int((example[1][1:] != -100).sum())


# ---- model ----

def build_model(config, args, device, dtype):
    net = generated.Model()
    model_dir = args.model_dir or config["model"]["path"]
    missing = checkpoint_io.load_weights(net, checkpoint_io.load_model_dir(model_dir), generated.IGNORED, model_dir)
    if generated.LORA is not None:
        init = os.path.join(HERE, "init", "adapter")
        adapters = checkpoint_io.read_peft_adapter(init)
        checkpoint_io.load_weights(net, adapters, [], init)
        missing = [m for m in missing if m not in adapters]
    if missing:
        raise SystemExit(f"{model_dir} lacks tensors the model needs: {', '.join(missing[:5])}")
    for name, p in net.named_parameters():
        p.requires_grad_(generated.LORA is None or ".lora_" in name)
    net = net.to(dtype)
    if config["method"]["kind"] == "qlora":
        quantize_base_weights(net, device)
    return net.to(device)


def quantize_base_weights(net, device):
    """QLoRA: the frozen linear weights in NF4 with double quantization (bitsandbytes)."""
    try:
        import bitsandbytes.functional as bnbf
    except ImportError:
        raise SystemExit("method qlora needs bitsandbytes (pip install bitsandbytes) and a CUDA GPU; "
                         "or export the pipeline with method lora")
    if device.type != "cuda":
        raise SystemExit("method qlora needs a CUDA GPU (bitsandbytes' NF4 kernels)")
    head = net.get_submodule(net.parts["head"]) if "head" in net.parts else None
    for module in net.modules():
        if isinstance(module, generated.Linear) and module is not head:  # the head stays in 16 bits, as in QLoRA
            weight = module.weight.data.to(device=device, dtype=torch.bfloat16)
            packed, module.quant_state = bnbf.quantize_4bit(weight, quant_type="nf4", compress_statistics=True)
            module.weight = torch.nn.Parameter(packed, requires_grad=False)


def applies_weight_decay(name):
    """Hugging Face Trainer's grouping: no decay for biases and norm weights."""
    parts = name.split(".")
    return not (parts[-1] == "bias" or any("norm" in p or p.startswith("ln_") for p in parts))


def wrap(net, args, device):
    if args.mode == "fsdp":
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        from torch.distributed.fsdp.wrap import ModuleWrapPolicy
        return FSDP(net, auto_wrap_policy=ModuleWrapPolicy({generated.Block}), use_orig_params=True,
                    device_id=device if device.type == "cuda" else None)
    from torch.nn.parallel import DistributedDataParallel as DDP
    return DDP(net, device_ids=[device] if device.type == "cuda" else None)


def plain_name(name):
    """A parameter's model name, without DDP's `module.` and FSDP's `_fsdp_wrapped_module.`."""
    name = name.replace("_fsdp_wrapped_module.", "")
    return name[len("module."):] if name.startswith("module.") else name


# ---- checkpoints ----

def full_state(wrapped, args):
    """The whole model's tensors on rank 0 (None elsewhere under FSDP)."""
    if args.mode == "fsdp":
        from torch.distributed.fsdp import FullStateDictConfig, StateDictType
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        with FSDP.state_dict_type(wrapped, StateDictType.FULL_STATE_DICT, FullStateDictConfig(offload_to_cpu=True, rank0_only=True)):
            state = wrapped.state_dict()
        return {n.replace("_fsdp_wrapped_module.", ""): t for n, t in state.items()}
    return wrapped.module.state_dict()


def optimizer_state(wrapped, optimizer, args):
    if args.mode == "fsdp":
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        return FSDP.full_optim_state_dict(wrapped, optimizer)
    return optimizer.state_dict()


def export_weights(directory, state, config):
    """sftc's formats: a PEFT adapter directory (LoRA) or Hugging Face safetensors (full)."""
    os.makedirs(directory, exist_ok=True)
    if generated.LORA is not None:
        adapters = {k: v for k, v in state.items() if ".lora_" in k}
        checkpoint_io.write_peft_adapter(os.path.join(directory, "adapter"), adapters, config["peft"])
        return
    checkpoint_io.write_safetensors(os.path.join(directory, "model.safetensors"), state)
    model_dir = config["model"]["path"]
    for name in config["model"]["copy_files"]:
        if os.path.exists(os.path.join(model_dir, name)):
            shutil.copyfile(os.path.join(model_dir, name), os.path.join(directory, name))


def save_checkpoint(run, step, wrapped, optimizer, args, config):
    state = full_state(wrapped, args)
    osd = optimizer_state(wrapped, optimizer, args)
    directory = os.path.join(run, "checkpoints", f"step-{step:08d}")
    if dist.get_rank() == 0:
        partial = directory + ".partial"
        shutil.rmtree(partial, ignore_errors=True)
        export_weights(partial, state, config)
        torch.save({"step": step, "optimizer": osd}, os.path.join(partial, "state.pt"))
        os.makedirs(os.path.dirname(directory), exist_ok=True)
        shutil.rmtree(directory, ignore_errors=True)
        os.replace(partial, directory)
        keep = config["train"].get("keep_checkpoints", 2)
        done = sorted(d for d in os.listdir(os.path.dirname(directory)) if d.startswith("step-") and not d.endswith(".partial"))
        for old in done[:-keep] if keep > 0 else []:
            shutil.rmtree(os.path.join(os.path.dirname(directory), old))
    dist.barrier()
    torch.save(torch.get_rng_state(), os.path.join(directory, f"rng-{dist.get_rank()}.pt"))
    dist.barrier()


def find_checkpoint(run, resume):
    if resume != "latest":
        return resume
    root = os.path.join(run, "checkpoints")
    done = sorted(d for d in os.listdir(root) if d.startswith("step-") and not d.endswith(".partial")) if os.path.isdir(root) else []
    return os.path.join(root, done[-1]) if done else None


def restore(directory, wrapped, optimizer, args):
    """Weights, optimizer moments and random state of a checkpoint; returns its step."""
    saved = torch.load(os.path.join(directory, "state.pt"), map_location="cpu")
    net = wrapped.module if args.mode == "ddp" else wrapped
    if generated.LORA is not None:
        tensors = checkpoint_io.read_peft_adapter(os.path.join(directory, "adapter"))
    else:
        tensors = checkpoint_io.read_safetensors(os.path.join(directory, "model.safetensors"))
    if args.mode == "fsdp":
        from torch.distributed.fsdp import FullStateDictConfig, StateDictType
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        with FSDP.state_dict_type(wrapped, StateDictType.FULL_STATE_DICT, FullStateDictConfig(offload_to_cpu=True)):
            wrapped.load_state_dict(tensors, strict=False)
        optimizer.load_state_dict(FSDP.shard_full_optim_state_dict(saved["optimizer"], wrapped))
    else:
        with torch.no_grad():
            own = dict(net.named_parameters())
            for name, t in tensors.items():
                own[name].copy_(t)
        optimizer.load_state_dict(saved["optimizer"])
    rng = os.path.join(directory, f"rng-{dist.get_rank()}.pt")
    if os.path.exists(rng):
        torch.set_rng_state(torch.load(rng))
    return saved["step"]


# ---- the run ----

def train(rank, world, args, rendezvous):
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    local = int(os.environ.get("LOCAL_RANK", rank))
    device = torch.device("cuda", local) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    backend = "nccl" if use_cuda else "gloo"
    if rendezvous:
        dist.init_process_group(backend, init_method=rendezvous, rank=rank, world_size=world)
    else:
        dist.init_process_group(backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    with open(os.path.join(HERE, "config.json")) as f:
        config = json.load(f)
    t = config["train"]
    torch.manual_seed(t["seed"] + rank)  # dropout streams differ per rank; weights come from files

    wrapped = wrap(build_model(config, args, device, DTYPES[args.dtype]), args, device)
    named = [(plain_name(n), p) for n, p in wrapped.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in named if applies_weight_decay(n)], "weight_decay": t["weight_decay"]},
        {"params": [p for n, p in named if not applies_weight_decay(n)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=t["lr"], betas=(t["adam_beta1"], t["adam_beta2"]), eps=t["adam_eps"])
    examples, stream, pad_id = load_data(config)
    accum, total = t["grad_accum"], config["total_steps"]

    step = 0
    checkpoint = find_checkpoint(args.run, args.resume) if args.resume else None
    if checkpoint:
        step = restore(checkpoint, wrapped, optimizer, args)
    metrics = os.path.join(args.run, "metrics.jsonl")
    if rank == 0:
        os.makedirs(args.run, exist_ok=True)
        kept = []
        if checkpoint and os.path.exists(metrics):
            with open(metrics) as f:
                kept = [line for line in f if json.loads(line)["step"] <= step]
        with open(metrics, "w") as f:
            f.writelines(kept)

    while step < total:
        started = time.time()
        micro = [[examples[i] for i in mb] for mb in stream[step * accum:(step + 1) * accum]]
        labels_total = sum(label_tokens(e) for mb in micro for e in mb)
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        for k, rows in enumerate(micro):
            mine = rows[rank::world] or [(torch.tensor([pad_id]), torch.tensor([-100]))]  # no rows: a pad row keeps the collectives in step
            ids, labels = collate(mine, pad_id)
            ids, labels = ids.to(device), labels.to(device)
            sync = k == len(micro) - 1
            context = wrapped.no_sync() if not sync else _nothing()
            with context:
                logits = wrapped(ids)
                logits = logits.float() if logits.dtype in generated.HALF else logits
                token_losses = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100, reduction="sum")
                # the wrappers average gradients over ranks: scale so the average is d(sum / labels_total)
                (token_losses * (world / max(labels_total, 1))).backward()
            loss_sum += token_losses.detach().double()
        dist.all_reduce(loss_sum)
        clip = t["max_grad_norm"]
        params = [p for _, p in named]
        if args.mode == "fsdp":
            grad_norm = wrapped.clip_grad_norm_(clip if clip > 0 else float("inf"))
        else:
            grad_norm = torch.nn.utils.clip_grad_norm_(params, clip if clip > 0 else float("inf"))
        lr = learning_rate(t, step, total)
        for g in optimizer.param_groups:
            g["lr"] = lr
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        record = {"step": step, "loss": float(loss_sum) / max(labels_total, 1), "lr": lr, "grad_norm": float(grad_norm),
                  "label_tokens": labels_total, "seconds": time.time() - started}
        if rank == 0:
            with open(metrics, "a") as f:
                f.write(json.dumps(record) + "\n")
            print(json.dumps(record), flush=True)
        stop = args.stop_after is not None and step >= args.stop_after and step < total
        if step % t["save_every"] == 0 or step == total or stop:
            save_checkpoint(args.run, step, wrapped, optimizer, args, config)
        if stop:
            break
    if step == total:
        state = full_state(wrapped, args)
        if rank == 0:
            export_weights(os.path.join(args.run, "final"), state, config)
    dist.barrier()
    dist.destroy_process_group()


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def main():
    args = parse_args()
    if args.spawn > 0:
        import torch.multiprocessing as mp
        os.makedirs(args.run, exist_ok=True)
        store = os.path.join(os.path.abspath(args.run), f".rendezvous-{os.getpid()}")
        if os.path.exists(store):
            os.remove(store)
        # fork is quick on CPU; CUDA needs fresh processes
        method = "spawn" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "fork"
        mp.start_processes(train, args=(args.spawn, args, "file://" + store), nprocs=args.spawn, join=True, start_method=method)
        if os.path.exists(store):
            os.remove(store)
    else:
        train(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), args, None)


if __name__ == "__main__":
    main()
