#!/usr/bin/env python3
"""Records reference values from PyTorch for kiln's tests.

Run where PyTorch is installed (its wheel pulls several GB of CUDA packages,
so not in CI):

    python3 scripts/pytorch/record_fixtures.py > tests/fixtures/torch_reference.json

Everything is float64 so kiln's f64 path can be compared to ~1e-12.

* optimizers: a 6-element parameter trained for 12 steps on the fixed loss
  L(p) = sum(a * p**2 + b * p**3 + c * sin(p)) by each torch.optim setting;
  the parameter after every step is recorded. kiln recomputes the same
  gradient in Rust and must follow the same trajectory.
* losses: value and gradient (autograd) of each loss on fixed inputs.
* init: empirical mean/std/max|.| of each torch.nn.init function on a
  [400, 300] weight (the streams differ from kiln's; the statistics must not).
"""
import json
import math
import sys

import torch
import torch.nn.functional as F

torch.manual_seed(0)
torch.set_default_dtype(torch.float64)

A = [0.5, 1.0, 2.0, 0.1, 1.5, 0.7]
B = [0.1, -0.2, 0.05, 0.3, 0.0, -0.1]
C = [0.3, 0.0, -0.5, 1.0, 0.2, 0.4]
P0 = [1.0, -0.5, 0.3, 2.0, -1.5, 0.8]


def loss_fn(p):
    a, b, c = (torch.tensor(v) for v in (A, B, C))
    return (a * p**2 + b * p**3 + c * torch.sin(p)).sum()


OPTIMIZERS = [
    ("sgd", lambda p: torch.optim.SGD([p], lr=0.1)),
    ("sgd_wd", lambda p: torch.optim.SGD([p], lr=0.1, weight_decay=0.05)),
    ("momentum", lambda p: torch.optim.SGD([p], lr=0.05, momentum=0.9)),
    ("momentum_dampening_wd", lambda p: torch.optim.SGD([p], lr=0.05, momentum=0.8, dampening=0.1, weight_decay=0.01)),
    ("nesterov", lambda p: torch.optim.SGD([p], lr=0.05, momentum=0.9, nesterov=True)),
    ("adam", lambda p: torch.optim.Adam([p], lr=0.05)),
    ("adam_betas_wd", lambda p: torch.optim.Adam([p], lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("adamw", lambda p: torch.optim.AdamW([p], lr=0.05, weight_decay=0.1)),
]


def optim_cases():
    out = {}
    for name, make in OPTIMIZERS:
        p = torch.tensor(P0, requires_grad=True)
        opt = make(p)
        traj = []
        for _ in range(12):
            opt.zero_grad()
            loss_fn(p).backward()
            opt.step()
            traj.append(p.detach().tolist())
        d = opt.param_groups[0]
        out[name] = {
            "lr": d["lr"],
            "momentum": d.get("momentum", 0.0),
            "dampening": d.get("dampening", 0.0),
            "nesterov": d.get("nesterov", False),
            "weight_decay": d.get("weight_decay", 0.0),
            "betas": list(d.get("betas", (0.9, 0.999))),
            "eps": d.get("eps", 1e-8),
            "decoupled": name.startswith("adamw"),
            "kind": "adam" if "adam" in name else "sgd",
            "trajectory": traj,
        }
    return out


def loss_cases():
    x = torch.tensor([[3.2, 5.1, -1.7, 0.4], [1.3, 4.9, 2.0, -0.2], [2.2, 2.5, -3.1, 0.0]])
    y = torch.tensor([0, 1, 2])
    t = torch.tensor([[0.0, 1.0, 0.25, 0.5], [1.0, 0.0, 0.75, 0.1], [0.3, 0.3, 0.9, 0.0]])
    out = {"x": x.tolist(), "labels": y.tolist(), "target": t.tolist()}
    fns = {
        "cross_entropy": lambda z: F.cross_entropy(z, y),
        # torch divides each sample's hinge sum by the class count; kiln follows the course (no division)
        "hinge_times_classes": lambda z: F.multi_margin_loss(z, y, margin=1.0) * z.shape[1],
        "mse": lambda z: F.mse_loss(z, t),
        "l1": lambda z: F.l1_loss(z, t),
        "bce_with_logits": lambda z: F.binary_cross_entropy_with_logits(z, t),
    }
    for name, f in fns.items():
        z = x.clone().requires_grad_(True)
        v = f(z)
        v.backward()
        out[name] = {"value": v.item(), "grad": z.grad.tolist()}
    out["softmax"] = torch.softmax(x, dim=1).tolist()
    return out


def init_cases():
    out = {}
    fns = {
        "xavier_uniform": torch.nn.init.xavier_uniform_,
        "xavier_normal": torch.nn.init.xavier_normal_,
        "lecun_normal": lambda w: torch.nn.init.kaiming_normal_(w, nonlinearity="linear"),
        "he_normal": lambda w: torch.nn.init.kaiming_normal_(w, nonlinearity="relu"),
        "he_uniform": lambda w: torch.nn.init.kaiming_uniform_(w, nonlinearity="relu"),
        "normal_0.01": lambda w: torch.nn.init.normal_(w, 0.0, 0.01),
        "torch_default": lambda w: torch.nn.init.kaiming_uniform_(w, a=math.sqrt(5)),
    }
    for name, f in fns.items():
        w = torch.empty(400, 300)
        f(w)
        out[name] = {"mean": w.mean().item(), "std": w.std().item(), "max_abs": w.abs().max().item()}
    lin = torch.nn.Linear(300, 400)
    out["linear_bias"] = {"max_abs": lin.bias.abs().max().item(), "bound": 1 / math.sqrt(300)}
    return out


json.dump(
    {
        "torch_version": torch.__version__,
        "loss_fn": {"a": A, "b": B, "c": C, "p0": P0, "formula": "sum(a*p^2 + b*p^3 + c*sin(p))"},
        "optim": optim_cases(),
        "losses": loss_cases(),
        "init": init_cases(),
    },
    sys.stdout,
    indent=1,
)
