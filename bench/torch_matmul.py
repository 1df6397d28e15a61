# PyTorch matmul timings, the reference the benchmark divides its matmul kernels by.
#   python3 bench/torch_matmul.py DEVICE SHAPES_JSON
# DEVICE: "cpu" or "cuda". SHAPES_JSON: [[M, N, K], ...]. Prints one JSON object: the torch
# version, the device name, and per shape and dtype the median time of one matmul in ns.
# f32 runs at every shape (with TF32 off on CUDA, so it is true f32 like the WGSL kernels);
# on CUDA f16 also runs at every shape (the reference of the subgroup-matrix kernels, which
# multiply f16 values on the tensor cores) and the first shape also in tf32 and bf16. On CUDA
# it also times a device-to-device copy of COPY_BYTES (argv[3]; read + write counted): the
# card's bandwidth as CUDA reaches it.
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


def run(device, shapes, copy_bytes=0):
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
        if device == "cuda":
            variants += [("f16", torch.float16, False)]
        if device == "cuda" and i == 0:
            variants += [("tf32", torch.float32, True), ("bf16", torch.bfloat16, False)]
        for label, dtype, tf32 in variants:
            if device == "cuda":
                torch.backends.cuda.matmul.allow_tf32 = tf32
            a = torch.randn(m, k, device=device, dtype=dtype)
            b = torch.randn(k, n, device=device, dtype=dtype)
            results.append({"m": m, "n": n, "k": k, "dtype": label, "ns": timed(device, a, b)})
    out = {"torch": torch.__version__, "device": name, "reps": REPS, "results": results}
    if device == "cuda" and copy_bytes > 0:
        out["copy"] = {"bytes": copy_bytes, "ns": copy_ns(copy_bytes)}
    return out


def copy_ns(nbytes):
    src = torch.empty(nbytes, dtype=torch.uint8, device="cuda").random_(0, 255)
    dst = torch.empty_like(src)
    samples = []
    for r in range(3 + REPS):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        dst.copy_(src)
        end.record()
        torch.cuda.synchronize()
        if r >= 3:
            samples.append(start.elapsed_time(end) * 1e6)
    return statistics.median(samples)


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 0)))
