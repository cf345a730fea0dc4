#!/usr/bin/env python3
"""The table the twin benchmarks print (bench/char-lstm-twin, bench/char-gpt-twin):
kiln's and PyTorch's validation loss at equal steps, their difference, the
time per training step of each and the ratio, from the two JSON-lines logs.

    bench/twin-table.py kiln.jsonl torch.jsonl
"""
import json
import sys

k = {r["epoch"]: r for r in map(json.loads, open(sys.argv[1]))}
t = {r["epoch"]: r for r in map(json.loads, open(sys.argv[2]))}
print("| step | kiln val loss | PyTorch val loss | difference | kiln ms/step | PyTorch ms/step | kiln/PyTorch time |")
print("|---:|---:|---:|---:|---:|---:|---:|")
ks, ts = [], []
for s in sorted(set(k) & set(t)):
    a, b = k[s], t[s]
    ks.append(a["step_ms"])
    ts.append(b["step_ms"])
    print(
        f"| {s} | {a['val_loss']:.4f} | {b['val_loss']:.4f} | {a['val_loss'] - b['val_loss']:+.4f} | "
        f"{a['step_ms']:.1f} | {b['step_ms']:.1f} | {a['step_ms'] / b['step_ms']:.2f} |"
    )
if ks:
    print(
        f"mean time per step: kiln {sum(ks)/len(ks):.1f} ms, PyTorch {sum(ts)/len(ts):.1f} ms, "
        f"ratio {sum(ks)/sum(ts):.2f}"
    )
