#!/usr/bin/env python3
"""The PyTorch twin of `examples/char_gpt.rs`: nanoGPT's `model.py` written
out (eager mode, no torch.compile), trained with nanoGPT's `train.py` loop
from the same initial weights on the same batches.

    cargo run --release --example char_gpt -- --export /tmp/gpt-twin --log kiln.jsonl
    python3 scripts/pytorch/char_gpt.py /tmp/gpt-twin --log torch.jsonl

It reads what `--export DIR` wrote: `config.json` (sizes, batch, the
learning-rate schedule, AdamW's β₂ and weight decay, clipping, steps,
evaluation interval), `init.safetensors` (kiln's initial weights under its
names, mapped by `kiln_to_nanogpt` below: kiln keeps `nn.MultiheadAttention`'s
layout, so `h{i}.attn.in_proj_weight` is nanoGPT's `transformer.h.{i}.attn.c_attn.weight`
and `h{i}.attn.out_proj.weight` its `attn.c_proj.weight`), `train.u8` and
`val.u8` (the encoded text) and `offsets.u32` (every batch's window starts,
in order). It prints and logs (JSON lines, the format kiln's `--log` writes,
with the step as "epoch") the mean training loss since the last report, the
validation loss over the same consecutive windows of the validation text and
the mean time per training step, at the same steps as kiln.

`scripts/pytorch/gpt_twin_fixture.py` imports `GPT` from here for the
gradient fixture of `tests/gpt_twin.rs`.

Needs torch, numpy and safetensors (a venv outside the repository; never CI).
"""

import argparse
import json
import math
import time

import numpy as np
import torch
import torch.nn as nn
from torch.nn import functional as F


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (PyTorch's has no bias=False before 2.1)."""

    def __init__(self, ndim, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head, bias):
        super().__init__()
        assert n_embd % n_head == 0
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.n_head, self.n_embd = n_head, n_embd

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, n_embd, bias):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd, bias=bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * n_embd, n_embd, bias=bias)

    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, n_embd, n_head, bias):
        super().__init__()
        self.ln_1 = LayerNorm(n_embd, bias)
        self.attn = CausalSelfAttention(n_embd, n_head, bias)
        self.ln_2 = LayerNorm(n_embd, bias)
        self.mlp = MLP(n_embd, bias)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, vocab, block_size, n_layer, n_head, n_embd, bias=False):
        super().__init__()
        self.block_size = block_size
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(vocab, n_embd),
                wpe=nn.Embedding(block_size, n_embd),
                h=nn.ModuleList([Block(n_embd, n_head, bias) for _ in range(n_layer)]),
                ln_f=LayerNorm(n_embd, bias),
            )
        )
        self.lm_head = nn.Linear(n_embd, vocab, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying

    def forward(self, idx, targets=None):
        _, t = idx.size()
        pos = torch.arange(0, t, dtype=torch.long, device=idx.device)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss


def kiln_to_nanogpt(name):
    """kiln's parameter name (`examples/char_gpt.rs`) -> nanoGPT's."""
    if name in ("wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias"):
        return "transformer." + name
    block, rest = name.split(".", 1)
    i = int(block[1:])
    rest = {
        "attn.in_proj_weight": "attn.c_attn.weight",
        "attn.in_proj_bias": "attn.c_attn.bias",
        "attn.out_proj.weight": "attn.c_proj.weight",
        "attn.out_proj.bias": "attn.c_proj.bias",
        "c_fc.weight": "mlp.c_fc.weight",
        "c_fc.bias": "mlp.c_fc.bias",
        "c_proj.weight": "mlp.c_proj.weight",
        "c_proj.bias": "mlp.c_proj.bias",
    }.get(rest, rest)
    return f"transformer.h.{i}.{rest}"


def load_kiln_state(model, tensors):
    """Loads kiln-named numpy arrays into `model` (the tied head comes with wte)."""
    state = {kiln_to_nanogpt(k): torch.from_numpy(np.ascontiguousarray(v)) for k, v in tensors.items()}
    state["lm_head.weight"] = state["transformer.wte.weight"]
    missing = set(model.state_dict()) - set(state)
    unknown = set(state) - set(model.state_dict())
    if missing or unknown:
        raise SystemExit(f"weights: missing {sorted(missing)}, unknown {sorted(unknown)}")
    model.load_state_dict(state)


def configure_optimizer(model, lr, beta2, weight_decay):
    """nanoGPT's configure_optimizers: decay on parameters of rank >= 2."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    nodecay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": nodecay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, beta2))


def get_lr(it, lr, min_lr, warmup, decay_iters):
    """nanoGPT's get_lr."""
    if it < warmup:
        return lr * (it + 1) / (warmup + 1)
    if it > decay_iters:
        return min_lr
    ratio = (it - warmup) / (decay_iters - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


def evaluate(model, ids, seq, batch):
    """Mean cross-entropy over the consecutive windows ids[k*seq : k*seq+seq]
    (targets shifted by one), as kiln's `evaluate`."""
    n = (len(ids) - 1) // seq
    total, count = 0.0, 0
    with torch.no_grad():
        for first in range(0, n, batch):
            ks = np.arange(first, min(first + batch, n)) * seq
            idx = ks[:, None] + np.arange(seq)[None, :]
            x = torch.from_numpy(ids[idx].astype(np.int64))
            y = torch.from_numpy(ids[idx + 1].astype(np.int64))
            _, loss = model(x, y)
            total += loss.item() * y.numel()
            count += y.numel()
    return total / count


def main():
    from safetensors.numpy import load_file

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dir", help="the directory kiln's --export wrote")
    p.add_argument("--log", help="write one JSON line per report here")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--steps", type=int, help="train only this many steps (default: config.json's)")
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    cfg = json.load(open(f"{a.dir}/config.json"))
    seq, batch, steps = cfg["block_size"], cfg["batch_size"], cfg["steps"]
    if a.steps is not None:
        steps = min(steps, a.steps)
    train = np.fromfile(f"{a.dir}/train.u8", dtype=np.uint8)
    val = np.fromfile(f"{a.dir}/val.u8", dtype=np.uint8)
    if cfg["eval_chars"]:
        val = val[: cfg["eval_chars"]]
    offsets = np.fromfile(f"{a.dir}/offsets.u32", dtype="<u4").reshape(-1, batch)
    if len(offsets) < steps:
        raise SystemExit(f"{a.dir}/offsets.u32 holds {len(offsets)} batches, {steps} needed")

    model = GPT(cfg["vocab"], seq, cfg["n_layer"], cfg["n_head"], cfg["n_embd"])
    load_kiln_state(model, load_file(f"{a.dir}/init.safetensors"))
    opt = configure_optimizer(model, cfg["lr"], cfg["beta2"], cfg["weight_decay"])
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {len(train)} training / "
        f"{len(val)} validation characters; batch {batch}x{seq}, AdamW lr {cfg['lr']} -> {cfg['min_lr']}, "
        f"clip {cfg['clip']}, {steps} steps"
    )
    log = open(a.log, "w") if a.log else None
    ar = np.arange(seq)[None, :]
    since_sum, since_n, since_secs = 0.0, 0, 0.0
    for it in range(steps):
        t0 = time.perf_counter()
        lr = get_lr(it, cfg["lr"], cfg["min_lr"], cfg["warmup"], cfg["lr_decay_iters"])
        for g in opt.param_groups:
            g["lr"] = lr
        idx = offsets[it].astype(np.int64)[:, None] + ar
        x = torch.from_numpy(train[idx].astype(np.int64))
        y = torch.from_numpy(train[idx + 1].astype(np.int64))
        _, loss = model(x, y)
        loss.backward()
        if cfg["clip"] > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["clip"])
        opt.step()
        opt.zero_grad(set_to_none=True)
        lv = loss.item()
        secs = time.perf_counter() - t0
        step = it + 1
        since_sum, since_n, since_secs = since_sum + lv, since_n + 1, since_secs + secs
        if step % cfg["eval_every"] == 0 or step == steps:
            t_eval = time.perf_counter()
            model.eval()
            vl = evaluate(model, val, seq, cfg["eval_batch"])
            model.train()
            rec = {
                "epoch": step,
                "train_loss": since_sum / since_n,
                "val_loss": vl,
                "val_perplexity": math.exp(vl),
                "step_ms": 1e3 * since_secs / since_n,
            }
            print(
                f"step {step:>5}/{steps}  train loss {rec['train_loss']:.4f}  val loss {vl:.4f}  "
                f"val perplexity {rec['val_perplexity']:.3f}  {rec['step_ms']:.1f} ms/step  "
                f"(eval {time.perf_counter() - t_eval:.1f} s)",
                flush=True,
            )
            if log:
                log.write(json.dumps(rec) + "\n")
                log.flush()
            since_sum, since_n, since_secs = 0.0, 0, 0.0


if __name__ == "__main__":
    main()
