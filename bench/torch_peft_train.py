"""LoRA / QLoRA training steps of a random-init Llama model in PyTorch + PEFT: the reference
bench/e2e-train.ts divides sftc's figures by (run by bench/e2e-torch.ts).

    python3 bench/torch_peft_train.py '{"hidden": 4096, "ffn": 11008, "heads": 32, "layers": 32,
        "vocab": 64000, "seq": 1024, "rows": 1, "rank": 8, "alpha": 16, "warmup": 1, "steps": 2,
        "methods": ["lora", "qlora"], "dtypes": ["bf16", "f32"], "device": "cuda", "seed": 0,
        "lr": 1e-4, "max_grad_norm": 1.0}'

A transformers LlamaForCausalLM of the given dimensions (SDPA attention, RMSNorm eps 1e-6, RoPE
theta 10000, untied head) is built directly on the device in each dtype, with gradient
checkpointing, PEFT LoRA on q/k/v/o_proj (dropout 0) and AdamW over the adapters. Each optimizer
step (forward, backward, global-norm clipping, AdamW) is timed between two synchronizations; the
peak is torch.cuda.max_memory_allocated() over the steps (tensors only: not the allocator's
cache, nor the CUDA context). QLoRA replaces the decoder's linears with bitsandbytes NF4 4-bit
linears (double-quantized, compute in the row's dtype) when bitsandbytes is installed.

Prints one JSON object on stdout: {"available": true, versions, device, "rows": [...]}, one row per
(method, dtype), a failed row carrying its error; or {"available": false, "why": ...} when torch,
transformers or peft cannot be imported.
"""

import gc
import json
import sys
import time

DTYPES = {"bf16": "bfloat16", "f32": "float32", "f16": "float16"}


def fail(why):
    print(json.dumps({"available": False, "why": why}))
    sys.exit(0)


try:
    import torch
    import transformers
    import peft
    from transformers import LlamaConfig, LlamaForCausalLM
    from peft import LoraConfig, get_peft_model
except Exception as e:  # a missing package or a broken install: said, not raised
    fail(f"{type(e).__name__}: {e}")

try:
    import bitsandbytes as bnb
except Exception:
    bnb = None


def llama(spec, dtype, device):
    """The random-init model, constructed on `device` in `dtype` (no CPU initialization)."""
    config = LlamaConfig(
        vocab_size=spec["vocab"],
        hidden_size=spec["hidden"],
        intermediate_size=spec["ffn"],
        num_hidden_layers=spec["layers"],
        num_attention_heads=spec["heads"],
        num_key_value_heads=spec["heads"],
        max_position_embeddings=max(2048, spec["seq"]),
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        attn_implementation="sdpa",
    )  # RoPE theta: LlamaConfig's default 10000 (reported as the config holds it)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    return model


def quantize_linears(model, compute_dtype):
    """Every linear inside the decoder layers replaced by an NF4 bitsandbytes linear (QLoRA's base)."""
    for layer in model.model.layers:
        for parent in (layer.self_attn, layer.mlp):
            for name, child in list(parent.named_children()):
                if not isinstance(child, torch.nn.Linear):
                    continue
                q = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=False, compute_dtype=compute_dtype, quant_type="nf4", compress_statistics=True, device="meta")
                q.weight = bnb.nn.Params4bit(child.weight.data, requires_grad=False, quant_type="nf4", compress_statistics=True).to(child.weight.device)
                setattr(parent, name, q)
    torch.cuda.empty_cache()


def rope_theta(config):
    theta = getattr(config, "rope_theta", None)
    if theta is None:
        theta = (getattr(config, "rope_parameters", None) or {}).get("rope_theta")
    return theta


def run(spec, method, dtype_name, device):
    dtype = getattr(torch, DTYPES[dtype_name])
    if method == "qlora" and bnb is None:
        return {"available": False, "why": "bitsandbytes is not installed on this machine"}
    if device == "cuda":
        torch.cuda.empty_cache()
    started = time.perf_counter()
    torch.manual_seed(spec["seed"])
    model = llama(spec, dtype, device)
    if method == "qlora":
        quantize_linears(model, dtype)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    lora = LoraConfig(r=spec["rank"], lora_alpha=spec["alpha"], lora_dropout=0.0, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=spec["lr"], betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    generator = torch.Generator(device=device).manual_seed(spec["seed"])
    ids = torch.randint(3, spec["vocab"], (spec["rows"], spec["seq"]), device=device, generator=generator)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    setup_seconds = time.perf_counter() - started
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    losses, samples = [], []
    for step in range(spec["warmup"] + spec["steps"]):
        sync()
        start = time.perf_counter_ns()
        optimizer.zero_grad(set_to_none=True)
        loss = model(input_ids=ids, labels=ids).loss  # the model shifts: logits[t] against ids[t + 1]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, spec["max_grad_norm"])
        optimizer.step()
        losses.append(loss.item())
        sync()
        if step >= spec["warmup"]:
            samples.append(time.perf_counter_ns() - start)
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else None
    row = {
        "available": True,
        "setup_seconds": setup_seconds,
        "samples_ns": samples,
        "losses": losses,
        "peak_bytes": peak,
        "trainable_values": sum(p.numel() for p in trainable),
        "attn_implementation": getattr(model.config, "_attn_implementation", None),
        "rope_theta": rope_theta(model.config),
    }
    del model, optimizer, trainable, loss
    return row


def main():
    spec = json.loads(sys.argv[1])
    device = spec.get("device", "cuda")
    if device == "cuda" and not torch.cuda.is_available():
        fail(f"torch {torch.__version__} sees no CUDA device")
    out = {
        "available": True,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "bitsandbytes": getattr(bnb, "__version__", None),
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "rows": [],
    }
    # LoRA always runs: without bitsandbytes it is the stand-in sftc's QLoRA is compared with
    methods = ["lora"] + [m for m in spec["methods"] if m != "lora"]
    for method in methods:
        for dtype_name in spec["dtypes"]:
            try:
                row = run(spec, method, dtype_name, device)
            except Exception as e:  # out of memory, an API change: this row fails, the others run
                row = {"available": False, "why": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
            out["rows"].append({"method": method, "dtype": dtype_name, **row})
            gc.collect()
            if device == "cuda":
                torch.cuda.empty_cache()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
