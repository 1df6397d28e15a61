#!/usr/bin/python3
"""Recomputes one weight of a merged model with Debian's PyTorch, independently of sftc.

Usage:  /usr/bin/python3 spec/golden/check_merged_weight.py BASE_DIR ADAPTER_DIR MERGED_DIR TENSOR

BASE_DIR holds the base model as torch.save shards (pytorch_model.bin.index.json), ADAPTER_DIR a
PEFT LoRA directory, MERGED_DIR the merged Hugging Face directory (safetensors shards with
model.safetensors.index.json). Both safetensors files are parsed by hand (8-byte little-endian
header length, JSON header, raw little-endian data), so the `safetensors` package is not needed.
The reference is PEFT's merge, `W + (B @ A) * scaling` with scaling = lora_alpha / r
(lora_alpha / sqrt(r) with use_rslora; peft/tuners/lora.py `get_delta_weight`), in float64.
Prints one JSON line: {"tensor", "dtype", "shape", "relative_error", "max_abs_error"}.
"""
import json
import math
import os
import struct
import sys

import torch

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}


def read_safetensors(path, name):
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
        entry = header[name]
        begin, end = entry["data_offsets"]
        f.seek(8 + length + begin)
        data = bytearray(f.read(end - begin))
    return torch.frombuffer(data, dtype=DTYPES[entry["dtype"]]).reshape(entry["shape"]), entry["dtype"]


def main():
    base_dir, adapter_dir, merged_dir, tensor = sys.argv[1:5]
    with open(os.path.join(base_dir, "pytorch_model.bin.index.json")) as f:
        base_file = json.load(f)["weight_map"][tensor]
    base = torch.load(os.path.join(base_dir, base_file), map_location="cpu", weights_only=True)[tensor]

    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        config = json.load(f)
    r, alpha = config["r"], config["lora_alpha"]
    scaling = alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r
    module = tensor[: -len(".weight")]
    adapter_file = os.path.join(adapter_dir, "adapter_model.safetensors")
    a, _ = read_safetensors(adapter_file, f"base_model.model.{module}.lora_A.weight")
    b, _ = read_safetensors(adapter_file, f"base_model.model.{module}.lora_B.weight")

    with open(os.path.join(merged_dir, "model.safetensors.index.json")) as f:
        merged_file = json.load(f)["weight_map"][tensor]
    merged, dtype = read_safetensors(os.path.join(merged_dir, merged_file), tensor)

    reference = base.double() + (b.double() @ a.double()) * scaling
    error = (merged.double() - reference).norm() / reference.norm()
    print(json.dumps({
        "tensor": tensor, "dtype": dtype, "shape": list(merged.shape),
        "relative_error": error.item(), "max_abs_error": (merged.double() - reference).abs().max().item(),
    }))


if __name__ == "__main__":
    main()
