# PyTorch matmul timings, the reference the benchmark divides its matmul kernels by.
#   python3 bench/torch_matmul.py DEVICE SHAPES_JSON
# DEVICE: "cpu" or "cuda". SHAPES_JSON: [[M, N, K], ...]. Prints one JSON object: the torch
# version, the device name, and per shape and dtype the median time of one matmul in ns.
# f32 runs at every shape (with TF32 off on CUDA, so it is true f32 like the WGSL kernels);
# on CUDA the first shape also runs in tf32, bf16 and f16: the tensor-core figures.
import json
import os
import platform
import statistics
import sys
import time

import torch

REPS = 10


def timed(device, a, b):
    for _ in range(3):
        a @ b
    samples = []
    for _ in range(REPS):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            a @ b
            end.record()
            torch.cuda.synchronize()
            samples.append(start.elapsed_time(end) * 1e6)
        else:
            t = time.perf_counter()
            a @ b
            samples.append((time.perf_counter() - t) * 1e9)
    return statistics.median(samples)


def run(device, shapes):
    if device == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("torch.cuda is not available")
        name = torch.cuda.get_device_name(0)
    else:
        torch.set_num_threads(os.cpu_count() or 1)
        name = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    results = []
    for i, (m, n, k) in enumerate(shapes):
        variants = [("f32", torch.float32, False)]
        if device == "cuda" and i == 0:
            variants += [("tf32", torch.float32, True), ("bf16", torch.bfloat16, False), ("f16", torch.float16, False)]
        for label, dtype, tf32 in variants:
            if device == "cuda":
                torch.backends.cuda.matmul.allow_tf32 = tf32
            a = torch.randn(m, k, device=device, dtype=dtype)
            b = torch.randn(k, n, device=device, dtype=dtype)
            results.append({"m": m, "n": n, "k": k, "dtype": label, "ns": timed(device, a, b)})
    return {"torch": torch.__version__, "device": name, "reps": REPS, "results": results}


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1], json.loads(sys.argv[2]))))
