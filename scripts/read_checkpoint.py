#!/usr/bin/env python3
"""Reads a kiln checkpoint with Python's safetensors and numpy (no PyTorch)
and prints, as JSON, every tensor's dtype, shape and values. Used by
tests/python_interop.rs to show that other tools read what kiln writes.

    python3 scripts/read_checkpoint.py model.safetensors
"""
import json
import sys

from safetensors.numpy import load_file
from safetensors import safe_open

path = sys.argv[1]
tensors = load_file(path)
with safe_open(path, framework="numpy") as f:
    meta = f.metadata() or {}
out = {
    "metadata": meta,
    "tensors": {
        name: {"dtype": str(a.dtype), "shape": list(a.shape), "values": a.astype("float64").ravel().tolist()}
        for name, a in sorted(tensors.items())
    },
}
json.dump(out, sys.stdout)
