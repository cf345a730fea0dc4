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

Training toolkit (tests/torch_reference_toolkit.rs), on the same loss:

* optim_toolkit: Adagrad and RMSprop trajectories, as for optim.
* clip: the parameter split in two tensors (4 + 2 values), with
  clip_grad_norm_ over both between backward() and step(); the trajectory
  and the returned total norms.
* penalty: SGD/Adam on loss + l1*sum|p| + l2*sum p^2 (autograd of the penalty).
* freeze: the second tensor with requires_grad=False (optionally with
  clipping over the trainable tensor only); the first one's trajectory.
* schedules: get_last_lr() at construction and after each of 30
  scheduler.step() calls, for each lr_scheduler setting.
* losses_toolkit: soft-label and label-smoothed cross-entropy, KL divergence
  (F.kl_div, reduction='batchmean'), and the focal loss written from its
  definition -alpha_y (1 - p_y)^gamma log p_y (torch has none), with
  autograd gradients.

Tokens (tests/torch_reference_tokens.rs):

* tokens.embedding: nn.Embedding(5, 3, padding_idx=1) on fixed weights, ids
  with a repeated id and the padding id; output and weight gradient.
* tokens.token_cross_entropy: F.cross_entropy over [B·T, V] logits with and
  without ignore_index, value and gradient.
Parameter groups (tests/param_groups.rs): param_groups, see
param_group_cases.

Layers (tests/torch_reference_layers.rs): nn.GELU() (exact and
approximate='tanh'), nn.PReLU() / nn.PReLU(num_parameters=C) on [N, C, H, W],
nn.LayerNorm(D) (with bias, bias=False, elementwise_affine=False) on
[N, T, D], F.normalize(x, p=2, dim=-1, eps) (PyTorch's eps with a zero row,
and eps=1 with rows on both sides of it) on [N, T, D], nn.LSTM(3, 4, batch_first=True), nn.GRU(3, 4,
batch_first=True) and nn.RNN(3, 4, nonlinearity='tanh'|'relu',
batch_first=True) (with and without bias; the output sequence); fixed inputs, weights and output gradients dy (all recorded), the
output y and the autograd gradients of sum(y * dy) with respect to the input
and every parameter, under PyTorch's state_dict names.
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


TOOLKIT_OPTIMIZERS = [
    ("adagrad", lambda p: torch.optim.Adagrad(p, lr=0.1)),
    ("adagrad_all_options", lambda p: torch.optim.Adagrad(
        p, lr=0.1, lr_decay=0.05, weight_decay=0.02, initial_accumulator_value=0.3, eps=1e-6)),
    ("rmsprop", lambda p: torch.optim.RMSprop(p, lr=0.01)),
    ("rmsprop_momentum", lambda p: torch.optim.RMSprop(p, lr=0.01, momentum=0.9)),
    ("rmsprop_centered", lambda p: torch.optim.RMSprop(p, lr=0.005, centered=True)),
    ("rmsprop_all_options", lambda p: torch.optim.RMSprop(
        p, lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.05, momentum=0.8, centered=True)),
    # alpha < 0.5 takes the other branch of torch's lerp in the centred average
    ("rmsprop_low_alpha_centered", lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.3, centered=True)),
]


def group_settings(opt):
    d = dict(opt.param_groups[0])
    d.pop("params")
    return {k: v for k, v in d.items() if isinstance(v, (int, float, bool)) or k == "betas"}


def toolkit_optim_cases():
    out = {}
    for name, make in TOOLKIT_OPTIMIZERS:
        p = torch.tensor(P0, requires_grad=True)
        opt = make([p])
        traj = []
        for _ in range(12):
            opt.zero_grad()
            loss_fn(p).backward()
            opt.step()
            traj.append(p.detach().tolist())
        out[name] = {"kind": name.split("_")[0], **group_settings(opt), "trajectory": traj}
    return out


def split_params(requires_grad_second=True):
    p1 = torch.tensor(P0[:4], requires_grad=True)
    p2 = torch.tensor(P0[4:], requires_grad=requires_grad_second)
    return p1, p2


CLIPPED = [
    ("sgd_momentum", 2.5, lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9)),
    ("adam", 2.0, lambda ps: torch.optim.Adam(ps, lr=0.05)),
]


def clip_cases():
    out = {}
    for name, max_norm, make in CLIPPED:
        p1, p2 = split_params()
        opt = make([p1, p2])
        traj, norms = [], []
        for _ in range(12):
            opt.zero_grad()
            loss_fn(torch.cat([p1, p2])).backward()
            norms.append(torch.nn.utils.clip_grad_norm_([p1, p2], max_norm).item())
            opt.step()
            traj.append(torch.cat([p1, p2]).detach().tolist())
        out[name] = {"max_norm": max_norm, "trajectory": traj, "total_norms": norms}
    return out


PENALISED = [
    ("sgd_l1", 0.1, 0.0, lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9)),
    ("sgd_l2", 0.0, 0.2, lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9)),
    ("sgd_elastic", 0.05, 0.1, lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9)),
    ("adam_elastic", 0.05, 0.1, lambda ps: torch.optim.Adam(ps, lr=0.05)),
]


def penalty_cases():
    out = {}
    for name, l1, l2, make in PENALISED:
        p = torch.tensor(P0, requires_grad=True)
        opt = make([p])
        value0 = (l1 * p.abs().sum() + l2 * (p**2).sum()).item()
        traj = []
        for _ in range(12):
            opt.zero_grad()
            (loss_fn(p) + l1 * p.abs().sum() + l2 * (p**2).sum()).backward()
            opt.step()
            traj.append(p.detach().tolist())
        out[name] = {"l1": l1, "l2": l2, "value_at_p0": value0, "trajectory": traj}
    return out


def freeze_cases():
    out = {}
    for name, max_norm in [("adam", None), ("adam_clip", 0.5)]:
        p1, p2 = split_params(requires_grad_second=False)
        opt = torch.optim.Adam([p1, p2], lr=0.05)
        traj = []
        for _ in range(12):
            opt.zero_grad()
            loss_fn(torch.cat([p1, p2])).backward()
            if max_norm is not None:
                torch.nn.utils.clip_grad_norm_([p for p in (p1, p2) if p.requires_grad], max_norm)
            opt.step()
            traj.append(torch.cat([p1, p2]).detach().tolist())
        out[name] = {"max_norm": max_norm, "trajectory": traj}
    return out


def param_group_cases():
    """torch.optim param groups on the fixture's loss, the parameter split as a
    2x2 weight W (P0[:4]) and a bias b (P0[4:]): AdamW with weight decay 0.1
    on W (rank 2) and 0 on b, betas (0.9, 0.99); SGD with momentum and a
    different lr per group; the same SGD under CosineAnnealingLR(T_max=6,
    eta_min=0.001) stepped after every optimizer step (each group's lr from
    its own initial_lr). Trajectories of cat(W.flatten(), b) and each
    group's lr after every step."""
    out = {}
    cases = [
        ("adamw", lambda w, b: torch.optim.AdamW(
            [{"params": [w], "weight_decay": 0.1}, {"params": [b], "weight_decay": 0.0}],
            lr=0.05, betas=(0.9, 0.99)), None),
        ("sgd", lambda w, b: torch.optim.SGD(
            [{"params": [w], "lr": 0.1}, {"params": [b], "lr": 0.02}], lr=0.1, momentum=0.9), None),
        ("sgd_cosine", lambda w, b: torch.optim.SGD(
            [{"params": [w], "lr": 0.1}, {"params": [b], "lr": 0.02}], lr=0.1, momentum=0.9),
         lambda o: S.CosineAnnealingLR(o, T_max=6, eta_min=0.001)),
    ]
    for name, make, sched in cases:
        w = torch.tensor(P0[:4]).reshape(2, 2).requires_grad_(True)
        b = torch.tensor(P0[4:], requires_grad=True)
        opt = make(w, b)
        sch = sched(opt) if sched else None
        traj, lrs = [], []
        for _ in range(12):
            opt.zero_grad()
            loss_fn(torch.cat([w.flatten(), b])).backward()
            opt.step()
            if sch:
                sch.step()
            traj.append(torch.cat([w.flatten(), b]).detach().tolist())
            lrs.append([g["lr"] for g in opt.param_groups])
        groups = []
        for g in opt.param_groups:
            d = {k: v for k, v in g.items() if isinstance(v, (int, float, bool)) or k == "betas"}
            d["initial_lr"] = g.get("initial_lr", g["lr"])
            groups.append(d)
        out[name] = {"groups": groups, "trajectory": traj, "lrs": lrs}
    return out


S = torch.optim.lr_scheduler
SCHEDULES = [
    ("step", {"step_size": 3, "gamma": 0.5}, lambda o: S.StepLR(o, step_size=3, gamma=0.5)),
    ("exponential", {"gamma": 0.9}, lambda o: S.ExponentialLR(o, gamma=0.9)),
    ("cosine", {"t_max": 10, "eta_min": 0.001}, lambda o: S.CosineAnnealingLR(o, T_max=10, eta_min=0.001)),
    ("warm_restarts", {"t_0": 3, "t_mult": 2, "eta_min": 0.001},
     lambda o: S.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2, eta_min=0.001)),
    ("warm_restarts_equal", {"t_0": 4, "t_mult": 1, "eta_min": 0.0},
     lambda o: S.CosineAnnealingWarmRestarts(o, T_0=4, T_mult=1)),
    ("constant", {"factor": 0.25, "total_iters": 4}, lambda o: S.ConstantLR(o, factor=0.25, total_iters=4)),
    ("linear", {"start_factor": 0.2, "end_factor": 1.0, "total_iters": 5},
     lambda o: S.LinearLR(o, start_factor=0.2, end_factor=1.0, total_iters=5)),
    ("constant_warmup_then_cosine", {"factor": 0.1, "warmup": 3, "t_max": 12, "eta_min": 0.0},
     lambda o: S.SequentialLR(o, [S.ConstantLR(o, factor=0.1, total_iters=3), S.CosineAnnealingLR(o, T_max=12)],
                              milestones=[3])),
    ("linear_warmup_then_step", {"start_factor": 0.25, "warmup": 4, "step_size": 3, "gamma": 0.5},
     lambda o: S.SequentialLR(o, [S.LinearLR(o, start_factor=0.25, total_iters=4), S.StepLR(o, step_size=3, gamma=0.5)],
                              milestones=[4])),
]


def schedule_cases():
    out = {}
    for name, args, make in SCHEDULES:
        p = torch.zeros(1, requires_grad=True)
        opt = torch.optim.SGD([p], lr=0.1)
        sched = make(opt)
        lrs = [sched.get_last_lr()[0]]
        for _ in range(30):
            opt.step()
            sched.step()
            lrs.append(sched.get_last_lr()[0])
        out[name] = {"base_lr": 0.1, **args, "lrs": lrs}
    return out


def focal(z, y, gamma, alpha=None):
    """-alpha_y (1 - p_y)^gamma log p_y, averaged over the batch."""
    lt = F.log_softmax(z, dim=1).gather(1, y[:, None]).squeeze(1)
    w = (1 - lt.exp()) ** gamma
    if alpha is not None:
        w = w * alpha[y]
    return -(w * lt).mean()


def toolkit_loss_cases():
    x = torch.tensor([[3.2, 5.1, -1.7, 0.4], [1.3, 4.9, 2.0, -0.2], [2.2, 2.5, -3.1, 0.0]])
    y = torch.tensor([0, 1, 2])
    # probability targets; the last row sums to 1.2 (torch does not normalise)
    soft = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.7, 0.0, 0.3, 0.0], [0.25, 0.25, 0.3, 0.4]])
    alpha = torch.tensor([0.1, 0.2, 0.3, 0.4])
    log_in = F.log_softmax(x * 0.5, dim=1)
    out = {"x": x.tolist(), "labels": y.tolist(), "soft_target": soft.tolist(), "alpha": alpha.tolist(),
           "kl_input": log_in.tolist()}
    cases = {
        "soft_cross_entropy": (x, lambda z: F.cross_entropy(z, soft)),
        "soft_cross_entropy_smoothed": (x, lambda z: F.cross_entropy(z, soft, label_smoothing=0.15)),
        "cross_entropy_smoothed": (x, lambda z: F.cross_entropy(z, y, label_smoothing=0.1)),
        "focal_gamma2": (x, lambda z: focal(z, y, 2.0)),
        "focal_gamma0.5_alpha": (x, lambda z: focal(z, y, 0.5, alpha)),
        "kl_div": (log_in, lambda z: F.kl_div(z, soft, reduction="batchmean")),
        "kl_div_log_target": (log_in, lambda z: F.kl_div(z, soft.clamp_min(1e-3).log(), reduction="batchmean",
                                                           log_target=True)),
    }
    out["kl_log_target"] = soft.clamp_min(1e-3).log().tolist()
    for name, (inp, f) in cases.items():
        z = inp.clone().requires_grad_(True)
        v = f(z)
        v.backward()
        out[name] = {"value": v.item(), "grad": z.grad.tolist()}
    return out


def token_cases():
    """Embedding (gather, scatter-add with padding_idx and a repeated id) and
    per-position cross-entropy with ignore_index, on fixed values."""
    V, DIM = 5, 3
    emb = torch.nn.Embedding(V, DIM, padding_idx=1)
    w = (torch.arange(V * DIM, dtype=torch.float64).reshape(V, DIM) * 0.37).sin()
    with torch.no_grad():
        emb.weight.copy_(w)  # the padding row is nonzero here: forward still reads it
    ids = torch.tensor([[4, 1, 0], [4, 2, 4]])
    r = torch.linspace(-1.0, 1.0, 2 * 3 * DIM).reshape(2, 3, DIM)
    y = emb(ids)
    # L = Σ y·r + ½ Σ y², so ∂L/∂y = r + y
    (y * r + 0.5 * y * y).sum().backward()
    out = {"embedding": {"vocab": V, "dim": DIM, "padding_idx": 1, "weight": w.tolist(),
                         "ids": ids.tolist(), "r": r.tolist(), "y": y.tolist(),
                         "weight_grad": emb.weight.grad.tolist()}}
    T, VOC = 3, 4
    x = (torch.arange(2 * T * VOC, dtype=torch.float64).reshape(2, T, VOC) * 0.71).cos() * 2.0
    tg = torch.tensor([[0, 3, 1], [2, 1, 1]])
    ce = {"logits": x.tolist(), "targets": tg.tolist()}
    for name, ign in [("ignore_1", 1), ("no_ignore", -100)]:
        z = x.clone().requires_grad_(True)
        v = F.cross_entropy(z.view(-1, VOC), tg.view(-1), ignore_index=ign, reduction="mean")
        v.backward()
        ce[name] = {"value": v.item(), "grad": z.grad.tolist()}
    # every position ignored: torch gives NaN (kiln returns an error instead)
    allign = F.cross_entropy(x.view(-1, VOC), torch.ones(2 * T, dtype=torch.long), ignore_index=1)
    assert math.isnan(allign.item())
    out["token_cross_entropy"] = ce
    return out


def fixed(shape, a, b):
    """Deterministic values sin(a·i + b)·2 (i the flat index), no RNG."""
    n = math.prod(shape)
    return torch.tensor([2.0 * math.sin(a * i + b) for i in range(n)]).reshape(shape)


def layer_case(module, x, dy):
    x = x.clone().requires_grad_(True)
    y = module(x)
    (y * dy).sum().backward()
    out = {
        "x": x.detach().flatten().tolist(),
        "dy": dy.flatten().tolist(),
        "y": y.detach().flatten().tolist(),
        "dx": x.grad.flatten().tolist(),
        "params": {k: v.detach().flatten().tolist() for k, v in module.state_dict().items()},
        "grads": {k: p.grad.flatten().tolist() for k, p in module.named_parameters()},
    }
    return out


class L2Normalize(torch.nn.Module):
    """F.normalize(x, p=2, dim=-1, eps=eps) as a module, for layer_case."""

    def __init__(self, eps=1e-12):
        super().__init__()
        self.eps = eps

    def forward(self, x):
        return F.normalize(x, p=2, dim=-1, eps=self.eps)


def l2_normalize_cases(out):
    x = fixed((2, 3, 5), 1.1, 0.3)
    x[0, 1] = 0.0  # a zero row: y = 0, dx = dy/eps
    dy = fixed((2, 3, 5), 0.65, 0.5)
    out["l2_normalize"] = layer_case(L2Normalize(), x, dy)
    x = fixed((2, 3, 5), 1.1, 0.3) * 0.3
    norms = x.norm(dim=-1)
    assert (norms < 1.0).any() and (norms > 1.0).any(), norms  # both branches
    out["l2_normalize_eps"] = layer_case(L2Normalize(eps=1.0), x, dy)


def layer_cases():
    out = {}
    x = fixed((3, 7), 0.9, 0.1)
    dy = fixed((3, 7), 0.37, 1.0)
    out["gelu"] = layer_case(torch.nn.GELU(), x, dy)
    out["gelu_tanh"] = layer_case(torch.nn.GELU(approximate="tanh"), x, dy)
    x = fixed((2, 3, 2, 2), 0.8, 0.2)
    dy = fixed((2, 3, 2, 2), 0.45, 0.7)
    shared = torch.nn.PReLU()
    with torch.no_grad():
        shared.weight.fill_(0.3)
    out["prelu"] = layer_case(shared, x, dy)
    per = torch.nn.PReLU(num_parameters=3)
    with torch.no_grad():
        per.weight.copy_(torch.tensor([0.3, -0.2, 0.1]))
    out["prelu_channels"] = layer_case(per, x, dy)
    x = fixed((2, 3, 5), 1.3, 0.4)
    dy = fixed((2, 3, 5), 0.55, 0.9)
    w, b = fixed((5,), 0.7, 1.1) * 0.5 + 1.0, fixed((5,), 0.3, 0.2) * 0.25
    ln = torch.nn.LayerNorm(5)
    with torch.no_grad():
        ln.weight.copy_(w)
        ln.bias.copy_(b)
    out["layer_norm"] = layer_case(ln, x, dy)
    ln = torch.nn.LayerNorm(5, bias=False)
    with torch.no_grad():
        ln.weight.copy_(w)
    out["layer_norm_no_bias"] = layer_case(ln, x, dy)
    out["layer_norm_no_affine"] = layer_case(torch.nn.LayerNorm(5, eps=1e-3, elementwise_affine=False), x, dy)
    l2_normalize_cases(out)
    out["lstm"] = lstm_case(True)
    out["lstm_no_bias"] = lstm_case(False)
    out["gru"] = recurrent_case(torch.nn.GRU(3, 4, batch_first=True))
    out["gru_no_bias"] = recurrent_case(torch.nn.GRU(3, 4, batch_first=True, bias=False))
    out["rnn_tanh"] = recurrent_case(torch.nn.RNN(3, 4, batch_first=True))
    out["rnn_tanh_no_bias"] = recurrent_case(torch.nn.RNN(3, 4, batch_first=True, bias=False))
    out["rnn_relu"] = recurrent_case(torch.nn.RNN(3, 4, nonlinearity="relu", batch_first=True))
    out["rnn_relu_no_bias"] = recurrent_case(
        torch.nn.RNN(3, 4, nonlinearity="relu", batch_first=True, bias=False)
    )
    # Stacked and bidirectional (issue 19): dropout=0, so deterministic.
    out["lstm_l2_bi"] = recurrent_case(torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True))
    out["gru_l2_bi"] = recurrent_case(torch.nn.GRU(3, 4, num_layers=2, bidirectional=True, batch_first=True))
    out["rnn_relu_l2"] = recurrent_case(
        torch.nn.RNN(3, 4, nonlinearity="relu", num_layers=2, batch_first=True)
    )
    # Only the top layer's final states, [h_n[-2] | h_n[-1]] (kiln's `last = true`).
    out["lstm_l2_bi_last"] = recurrent_case(
        torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True), last=True
    )
    return out


def lstm_case(bias):
    return recurrent_case(torch.nn.LSTM(3, 4, batch_first=True, bias=bias))


def recurrent_case(m, last=False):
    """A recurrent module with input size 3 and hidden size 4 (nn.LSTM,
    nn.GRU, nn.RNN; batch_first=True) on a batch of 2 sequences of 5 steps,
    zero initial state; every parameter set from fixed() (scaled so the gates
    are not saturated); only the output sequence is used (as kiln's layers),
    or with `last` the top layer's final states of each direction,
    concatenated forward first (kiln's `last = true`)."""
    with torch.no_grad():
        for i, (_, p) in enumerate(m.named_parameters()):
            p.copy_(fixed(tuple(p.shape), 0.3 + 0.1 * i, 0.5 * i) * 0.25)
    dirs = 2 if m.bidirectional else 1
    x = fixed((2, 5, 3), 0.7, 0.3).clone().requires_grad_(True)
    y, state = m(x)
    if last:
        h_n = state[0] if isinstance(state, tuple) else state
        y = torch.cat([h_n[-dirs + d] for d in range(dirs)], dim=1)
    dy = fixed(tuple(y.shape), 0.45, 0.8)
    (y * dy).sum().backward()
    return {
        "x": x.detach().flatten().tolist(),
        "dy": dy.flatten().tolist(),
        "y": y.detach().flatten().tolist(),
        "dx": x.grad.flatten().tolist(),
        "params": {k: v.detach().flatten().tolist() for k, v in m.state_dict().items()},
        "grads": {k: p.grad.flatten().tolist() for k, p in m.named_parameters()},
    }


def attention_case(bias, causal, t, s, pad_from=None, cross=False):
    """nn.MultiheadAttention(8, 2, batch_first=True) on a batch of 2: queries
    [2, t, 8], keys/values from the queries (self) or a memory [2, s, 8]
    (cross); a causal attn_mask (key j > query i masked) and/or a
    key_padding_mask from ids (id 0 = padding; sample b's keys from
    pad_from[b] on are 0). Parameters from fixed(); outputs, per-head weights
    (average_attn_weights=False) and every gradient of sum(y * dy)."""
    m = torch.nn.MultiheadAttention(8, 2, bias=bias, batch_first=True)
    with torch.no_grad():
        for i, (_, p) in enumerate(m.named_parameters()):
            p.copy_(fixed(tuple(p.shape), 0.37 + 0.11 * i, 0.3 * i) * 0.3)
    x = fixed((2, t, 8), 0.61, 0.2).clone().requires_grad_(True)
    mem = fixed((2, s, 8), 0.83, 0.9).clone().requires_grad_(True) if cross else x
    ids = [[(1 + (b + j) % 5) if pad_from is None or j < pad_from[b] else 0 for j in range(s)] for b in range(2)]
    kpm = torch.tensor(ids) == 0 if pad_from is not None else None
    mask = torch.triu(torch.ones(t, s, dtype=torch.bool), diagonal=1) if causal else None
    dy = fixed((2, t, 8), 0.29, 0.6)
    y, w = m(x, mem, mem, key_padding_mask=kpm, attn_mask=mask, need_weights=True, average_attn_weights=False)
    (y * dy).sum().backward()
    out = {
        "x": x.detach().flatten().tolist(),
        "ids": sum(ids, []),
        "dy": dy.flatten().tolist(),
        "y": y.detach().flatten().tolist(),
        "weights": w.detach().flatten().tolist(),
        "dx": x.grad.flatten().tolist(),
        "params": {k: v.detach().flatten().tolist() for k, v in m.state_dict().items()},
        "grads": {k: p.grad.flatten().tolist() for k, p in m.named_parameters()},
    }
    if cross:
        out["memory"] = mem.detach().flatten().tolist()
        out["dmemory"] = mem.grad.flatten().tolist()
    return out


def attention_cases():
    """tests/torch_reference_attention.rs: kiln's MultiHeadAttention against
    nn.MultiheadAttention (no fully masked row: PyTorch gives NaN there)."""
    return {
        "self_plain": attention_case(True, False, 5, 5),
        "self_no_bias": attention_case(False, False, 5, 5),
        "self_causal_padded": attention_case(True, True, 5, 5, pad_from=[3, 5]),
        "cross_padded": attention_case(True, False, 4, 6, pad_from=[4, 5], cross=True),
        "cross_causal": attention_case(True, True, 4, 6, cross=True),
    }


json.dump(
    {
        "torch_version": torch.__version__,
        "loss_fn": {"a": A, "b": B, "c": C, "p0": P0, "formula": "sum(a*p^2 + b*p^3 + c*sin(p))"},
        "optim": optim_cases(),
        "losses": loss_cases(),
        "init": init_cases(),
        "optim_toolkit": toolkit_optim_cases(),
        "clip": clip_cases(),
        "penalty": penalty_cases(),
        "freeze": freeze_cases(),
        "schedules": schedule_cases(),
        "losses_toolkit": toolkit_loss_cases(),
        "tokens": token_cases(),
        "layers": layer_cases(),
        "attention": attention_cases(),
        "param_groups": param_group_cases(),
    },
    sys.stdout,
    indent=1,
)
