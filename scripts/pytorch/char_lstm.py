#!/usr/bin/env python3
"""The PyTorch twin of `examples/char_lstm.rs`: the same model, data, initial
weights, batches and evaluation, with PyTorch's fused `nn.LSTM` (never a loop
over cells).

    cargo run --release --example char_lstm -- --export /tmp/twin --log kiln.jsonl
    python3 scripts/pytorch/char_lstm.py /tmp/twin --log torch.jsonl

It reads what `--export DIR` wrote: `config.json` (sizes, batch, lr, steps,
evaluation interval), `init.safetensors` (kiln's initial weights under its
names: `emb.weight`, `lstm1.*_l0`, `lstm2.*_l0`, `head.*`; kiln's two stacked
layers are `nn.LSTM(num_layers=2)`'s `*_l0` and `*_l1`), `train.u8` and
`val.u8` (the encoded text) and `offsets.u32` (every batch's window starts, in
order). It prints and logs (JSON lines, the format kiln's `--log` writes, with
the step as "epoch") the mean training loss since the last report, the
validation loss over the same consecutive windows of the validation text and
the mean time per training step, at the same steps as kiln.

Needs torch, numpy and safetensors (a venv outside the repository; never CI).
"""

import argparse
import json
import math
import time

import numpy as np
import torch
from safetensors.numpy import load_file


class CharLstm(torch.nn.Module):
    def __init__(self, vocab, embed, hidden, layers):
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, embed)
        self.lstm = torch.nn.LSTM(embed, hidden, num_layers=layers, batch_first=True)
        self.head = torch.nn.Linear(hidden, vocab)

    def forward(self, x):
        h, _ = self.lstm(self.emb(x))
        return self.head(h)


def load_kiln_weights(model, path, layers):
    w = load_file(path)
    state = {"emb.weight": w["emb.weight"], "head.weight": w["head.weight"], "head.bias": w["head.bias"]}
    for layer in range(layers):
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            state[f"lstm.{name}_l{layer}"] = w[f"lstm{layer + 1}.{name}_l0"]
    missing = set(model.state_dict()) - set(state)
    if missing:
        raise SystemExit(f"{path}: no tensors for {sorted(missing)}")
    model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()})


def evaluate(model, ids, seq, batch):
    """Mean cross-entropy over the consecutive windows ids[k*seq : k*seq+seq]
    (targets shifted by one), each from a zero state, as kiln's `evaluate`."""
    n = (len(ids) - 1) // seq
    total, count = 0.0, 0
    with torch.no_grad():
        for first in range(0, n, batch):
            ks = np.arange(first, min(first + batch, n)) * seq
            idx = ks[:, None] + np.arange(seq)[None, :]
            x = torch.from_numpy(ids[idx].astype(np.int64))
            y = torch.from_numpy(ids[idx + 1].astype(np.int64))
            logits = model(x)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            total += loss.item() * y.numel()
            count += y.numel()
    return total / count


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dir", help="the directory kiln's --export wrote")
    p.add_argument("--log", help="append one JSON line per report here")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--steps", type=int, help="train only this many steps (default: config.json's)")
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    cfg = json.load(open(f"{a.dir}/config.json"))
    seq, batch, steps = cfg["seq"], cfg["batch_size"], cfg["steps"]
    if a.steps is not None:
        steps = min(steps, a.steps)
    train = np.fromfile(f"{a.dir}/train.u8", dtype=np.uint8)
    val = np.fromfile(f"{a.dir}/val.u8", dtype=np.uint8)
    if cfg["eval_chars"]:
        val = val[: cfg["eval_chars"]]
    offsets = np.fromfile(f"{a.dir}/offsets.u32", dtype="<u4").reshape(-1, batch)
    if len(offsets) < steps:
        raise SystemExit(f"{a.dir}/offsets.u32 holds {len(offsets)} batches, {steps} needed")

    model = CharLstm(cfg["vocab"], cfg["embed"], cfg["hidden"], cfg["layers"])
    load_kiln_weights(model, f"{a.dir}/init.safetensors", cfg["layers"])
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {len(train)} training / "
        f"{len(val)} validation characters; batch {batch}x{seq}, Adam lr {cfg['lr']}, clip {cfg['clip']}, {steps} steps"
    )
    log = open(a.log, "w") if a.log else None
    ar = np.arange(seq)[None, :]
    since_sum, since_n, since_secs = 0.0, 0, 0.0
    for step in range(1, steps + 1):
        t0 = time.perf_counter()
        idx = offsets[step - 1].astype(np.int64)[:, None] + ar
        x = torch.from_numpy(train[idx].astype(np.int64))
        y = torch.from_numpy(train[idx + 1].astype(np.int64))
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, cfg["vocab"]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg["clip"] > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["clip"])
        opt.step()
        lv = loss.item()
        secs = time.perf_counter() - t0
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
                f"val perplexity {rec['val_perplexity']:.3f}  {rec['step_ms']:.0f} ms/step  "
                f"(eval {time.perf_counter() - t_eval:.1f} s)",
                flush=True,
            )
            if log:
                log.write(json.dumps(rec) + "\n")
                log.flush()
            since_sum, since_n, since_secs = 0.0, 0, 0.0


if __name__ == "__main__":
    main()
