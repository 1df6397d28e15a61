# transformers' generate on a Baichuan-7B-sized random model: the reference the benchmark divides
# sftc's batch-1 decode by.
#   python3 bench/torch_generate.py PROMPT_TOKENS NEW_TOKENS
# The model is a LlamaForCausalLM with Baichuan-7B's dimensions (Baichuan-7B is a LLaMA layout
# with a fused QKV projection: the same weights and arithmetic per token), built directly on the
# GPU in each dtype: f32 (TF32 off: the arithmetic sftc's f32 kernels do) and bf16 (what users
# run). Per dtype: one warm-up generate, then the median of REPS timed generates of NEW_TOKENS and
# of 1 new token from a seeded random prompt; decode tokens/s = (N - 1) / (t_N - t_1), prefill =
# t_1. Prints one JSON object; a dtype that fails is a row with its error, and a missing torch,
# transformers or CUDA is {"available": false, "why": ...}.
import gc
import json
import platform
import statistics
import sys
import time

REPS = 3
DIMENSIONS = dict(
    hidden_size=4096,
    intermediate_size=11008,
    num_attention_heads=32,
    num_key_value_heads=32,
    num_hidden_layers=32,
    vocab_size=64000,
    max_position_embeddings=4096,
    rms_norm_eps=1e-6,
    tie_word_embeddings=False,
)


def timed_generate(torch, model, prompt, new_tokens):
    torch.cuda.synchronize()
    start = time.perf_counter()
    out = model.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        pad_token_id=0,
    )
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    if out.shape[1] != prompt.shape[1] + new_tokens:
        raise RuntimeError(f"generate returned {out.shape[1] - prompt.shape[1]} new tokens, asked for {new_tokens}")
    return elapsed * 1e9


def run_dtype(torch, transformers, label, dtype, prompt_tokens, new_tokens):
    config = transformers.LlamaConfig(**DIMENSIONS)
    config._attn_implementation = "sdpa"
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        # built on the device: a CPU initialisation of 7 B parameters takes minutes
        with torch.device("cuda"):
            model = transformers.LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    model.eval()
    try:
        parameters = sum(p.numel() for p in model.parameters())
        generator = torch.Generator().manual_seed(1)
        prompt = torch.randint(3, DIMENSIONS["vocab_size"], (1, prompt_tokens), generator=generator).to("cuda")
        with torch.inference_mode():
            timed_generate(torch, model, prompt, new_tokens)  # warm-up
            t_n = statistics.median(timed_generate(torch, model, prompt, new_tokens) for _ in range(REPS))
            t_1 = statistics.median(timed_generate(torch, model, prompt, 1) for _ in range(REPS))
        return {
            "dtype": label,
            "ok": True,
            "parameters": parameters,
            "attention": model.config._attn_implementation,
            "newTokensNs": t_n,
            "oneTokenNs": t_1,
            "prefillNs": t_1,
            "decodeTokensPerSecond": (new_tokens - 1) / ((t_n - t_1) / 1e9),
            "peakMemoryBytes": torch.cuda.max_memory_allocated(),
        }
    finally:
        del model
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def main(prompt_tokens, new_tokens):
    try:
        import torch
        import transformers
    except ImportError as e:
        return {"available": False, "why": f"{sys.executable}: {e}"}
    if not torch.cuda.is_available():
        return {"available": False, "why": f"{sys.executable}: torch {torch.__version__} sees no CUDA device"}
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    rows = []
    for label, dtype in [("f32", torch.float32), ("bf16", torch.bfloat16)]:
        try:
            rows.append(run_dtype(torch, transformers, label, dtype, prompt_tokens, new_tokens))
        except Exception as e:  # one dtype's failure (out of memory, API change) is its row
            rows.append({"dtype": label, "ok": False, "error": f"{type(e).__name__}: {e}"})
            gc.collect()
            torch.cuda.empty_cache()
    return {
        "available": True,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.version.cuda,
        "device": torch.cuda.get_device_name(0),
        "promptTokens": prompt_tokens,
        "newTokens": new_tokens,
        "reps": REPS,
        "rows": rows,
    }


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]), int(sys.argv[2]))))
