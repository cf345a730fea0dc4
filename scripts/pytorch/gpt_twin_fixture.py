#!/usr/bin/env python3
"""Records tests/fixtures/gpt_twin.json for tests/gpt_twin.rs: a small
nanoGPT (`GPT` of scripts/pytorch/char_gpt.py: vocabulary 11, context 8,
2 blocks, 2 heads, width 16, bias=False, tied head) in float64, its
weights, a batch of 2 windows of ids and targets, the logits, the mean
cross-entropy and every parameter's gradient, under kiln's names
(`kiln_to_nanogpt` maps them).

    /tmp/torchenv/bin/python scripts/pytorch/gpt_twin_fixture.py

The weights are drawn wider than nanoGPT's N(0, 0.02) (N(0, 0.3), LayerNorm
weights 1 + N(0, 0.1)) so that every path of the gradient carries weight.
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from char_gpt import GPT, kiln_to_nanogpt  # noqa: E402

VOCAB, BLOCK, N_LAYER, N_HEAD, N_EMBD, BATCH = 11, 8, 2, 2, 16, 2


def kiln_names():
    names = ["wte.weight", "wpe.weight"]
    for i in range(N_LAYER):
        names += [
            f"h{i}.ln_1.weight",
            f"h{i}.attn.in_proj_weight",
            f"h{i}.attn.out_proj.weight",
            f"h{i}.ln_2.weight",
            f"h{i}.c_fc.weight",
            f"h{i}.c_proj.weight",
        ]
    return names + ["ln_f.weight"]


def main():
    torch.manual_seed(0)
    torch.set_default_dtype(torch.float64)
    model = GPT(VOCAB, BLOCK, N_LAYER, N_HEAD, N_EMBD)
    params = dict(model.named_parameters(remove_duplicate=False))
    with torch.no_grad():
        for name, p in params.items():
            if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))
    ids = torch.randint(0, VOCAB, (BATCH, BLOCK + 1))
    x, y = ids[:, :-1].contiguous(), ids[:, 1:].contiguous()
    logits, loss = model(x, y)
    loss.backward()
    out = {
        "config": {"vocab": VOCAB, "block_size": BLOCK, "n_layer": N_LAYER, "n_head": N_HEAD, "n_embd": N_EMBD},
        "ids": x.flatten().tolist(),
        "targets": y.flatten().tolist(),
        "logits": logits.detach().flatten().tolist(),
        "loss": loss.item(),
        "params": {},
        "grads": {},
    }
    for k in kiln_names():
        p = params[kiln_to_nanogpt(k)]
        out["params"][k] = p.detach().flatten().tolist()
        out["grads"][k] = p.grad.flatten().tolist()
    assert len(out["params"]) == len(set(id(p) for p in model.parameters()))
    path = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "gpt_twin.json")
    with open(path, "w") as f:
        json.dump(out, f)
        f.write("\n")
    print(f"wrote {os.path.normpath(path)}: loss {loss.item():.6f}")


if __name__ == "__main__":
    main()
