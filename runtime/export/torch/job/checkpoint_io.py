# checkpoint_io.py: the file formats a torchrun job reads and writes, with torch alone (no
# extra packages): Hugging Face model directories (pytorch_model*.bin zip-pickles, loaded with
# weights_only; or *.safetensors, with or without an index), safetensors files, and PEFT adapter
# directories. Written by `sftc export`.
import json
import os
import re
import struct

import torch

SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "U8": torch.uint8,
}
DTYPE_NAMES = {dtype: name for name, dtype in SAFETENSORS_DTYPES.items()}


def read_safetensors(path):
    """Every tensor of a safetensors file, by name."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
        body = bytearray(f.read())
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        dtype = SAFETENSORS_DTYPES[entry["dtype"]]
        raw = body[start:end]
        flat = torch.frombuffer(raw, dtype=dtype) if end > start else torch.empty(0, dtype=dtype)
        out[name] = flat.reshape(entry["shape"]).clone()
    return out


def write_safetensors(path, tensors, metadata=None):
    """Writes tensors (name -> tensor) atomically: a crash never leaves a half-written file."""
    header = {"__metadata__": metadata or {"format": "pt"}}
    blobs, offset = [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        # numpy has no bfloat16: write its 16-bit words
        raw = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes()
        header[name] = {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":"))
    text += " " * ((8 - len(text) % 8) % 8)
    temporary = path + ".tmp"
    with open(temporary, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text.encode())
        for raw in blobs:
            f.write(raw)
    os.replace(temporary, path)


def load_model_dir(directory):
    """The state dict of a Hugging Face model directory (every shard)."""
    names = os.listdir(directory)
    for index_name, reader in (("model.safetensors.index.json", read_safetensors), ("pytorch_model.bin.index.json", load_bin)):
        if index_name in names:
            with open(os.path.join(directory, index_name)) as f:
                files = sorted(set(json.load(f)["weight_map"].values()))
            state = {}
            for file in files:
                state.update(reader(os.path.join(directory, file)))
            return state
    if "model.safetensors" in names:
        return read_safetensors(os.path.join(directory, "model.safetensors"))
    if "pytorch_model.bin" in names:
        return load_bin(os.path.join(directory, "pytorch_model.bin"))
    raise SystemExit(f"{directory}: no model.safetensors, pytorch_model.bin or shard index found")


def load_bin(path):
    # weights_only: the pickle may build tensors and plain containers, never run other code
    return torch.load(path, map_location="cpu", weights_only=True)


def load_weights(model, state, ignored, what):
    """Copies a checkpoint into the model; a missing or mis-shaped tensor stops the job with its name."""
    patterns = [re.compile(p) for p in ignored]
    state = {k: v for k, v in state.items() if not any(p.match(k) for p in patterns)}
    own = model.state_dict()
    unknown = sorted(set(state) - set(own))
    if unknown:
        raise SystemExit(f"{what} holds tensors this model does not have: {', '.join(unknown[:5])}")
    for name, tensor in state.items():
        if tuple(tensor.shape) != tuple(own[name].shape):
            raise SystemExit(f"{what}: tensor {name} has shape {list(tensor.shape)}, the model needs {list(own[name].shape)}")
    missing = model.load_state_dict(state, strict=False).missing_keys
    return missing


def write_peft_adapter(directory, adapters, config):
    """A PEFT adapter directory: adapter_config.json and adapter_model.safetensors whose keys are
    base_model.model.<module path>.lora_A.weight / lora_B.weight."""
    os.makedirs(directory, exist_ok=True)
    write_safetensors(os.path.join(directory, "adapter_model.safetensors"), {"base_model.model." + k: v for k, v in adapters.items()})
    temporary = os.path.join(directory, "adapter_config.json.tmp")
    with open(temporary, "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    os.replace(temporary, os.path.join(directory, "adapter_config.json"))


def read_peft_adapter(directory):
    """The adapter tensors of a PEFT directory, by the model's own parameter names."""
    tensors = read_safetensors(os.path.join(directory, "adapter_model.safetensors"))
    return {k[len("base_model.model."):] if k.startswith("base_model.model.") else k: v for k, v in tensors.items()}
