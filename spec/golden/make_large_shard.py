#!/usr/bin/python3
"""Writes a large torch.save shard for the streaming-memory test (not committed).

Usage: /usr/bin/python3 spec/golden/make_large_shard.py OUT_DIR MEGABYTES

OUT_DIR/pytorch_model.bin holds fp16 tensors `layer.{i}.weight` of 4 MiB each (1024 x 2048),
tensor i filled with the value i / 2 (exact in fp16), so a reader can check every tensor.
"""
import os
import sys

import torch

out_dir, megabytes = sys.argv[1], int(sys.argv[2])
count = max(1, megabytes // 4)
state = {f"layer.{i}.weight": torch.full((1024, 2048), i / 2, dtype=torch.float16) for i in range(count)}
os.makedirs(out_dir, exist_ok=True)
torch.save(state, os.path.join(out_dir, "pytorch_model.bin"))
