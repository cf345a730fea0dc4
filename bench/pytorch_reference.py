#!/usr/bin/env python3
"""PyTorch reference for kiln's benchmark workloads (`cargo run --release --example bench`).

The same five workloads as `examples/bench.rs`, in f32, on fixed random data
made once before the timed loop, timed the same way: warm-up steps, then each
step timed on its own, and the median reported.

  W1  MLP 784-256-128-10, ReLU, softmax cross-entropy, SGD, batch 128
  W2  LeNet-5 on 1x28x28 (conv 6@5x5 pad 2, max-pool 2, conv 16@5x5, max-pool 2,
      120, 84, 10, ReLU), cross-entropy, SGD, batch 64
  W3  W1's MLP, inference at batch 1 under torch.inference_mode() (latency)
  W4  MLP 4096-4096-4096-10, ReLU, cross-entropy, SGD, batch 512
  W5  small ResNet on 3x32x32, batch 32: stem conv 3->16 3x3 pad 1 (no bias) + BN
      + ReLU, three basic blocks of 16 channels, global average pooling, Linear 16->10
  W6  char_lstm's training step: Embedding(84, 64), nn.LSTM(64, 512, num_layers=2),
      Linear(512, 84), 32 sequences of 100, per-position cross-entropy, Adam 2e-3
  W7  char_gpt's training step: scripts/pytorch/char_gpt.py's GPT (nanoGPT's model,
      4 layers, 4 heads, width 128, no biases, tied head), 12 sequences of 64,
      AdamW in nanoGPT's two groups (beta2 0.99, weight decay 0.1), clip_grad_norm_ 1.0
  W8  char_gpt generation at batch 1: 64 characters from an empty context as
      nanoGPT's generate does it (the whole context again for each character, the
      head on the last position only), under torch.inference_mode()
  SGEMM  a 4096^3 torch.mm (MKL here)

A training step is `opt.zero_grad(); loss = F.cross_entropy(model(x), y);
loss.backward(); opt.step()`, as anyone writes it.

Threads: `--threads N` sets OMP_NUM_THREADS and MKL_NUM_THREADS to N *before*
torch is imported and calls `torch.set_num_threads(N)` (and
`torch.set_num_interop_threads(1)`); without it torch uses its defaults (one
thread per core). kiln's bench passes the same N to `kiln::set_threads`.

Usage:
  python bench/pytorch_reference.py --threads 2 --json torch.json
  python bench/pytorch_reference.py --only W1,W3 --device cpu
  cargo run --release --example bench -- --threads 2 --torch torch.json

Needs only `torch` (CPU build is enough; CUDA rows are added when a GPU is
present). Not used by CI.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

WORKLOADS = ["W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "SGEMM"]

# Warm-up steps, minimum timed steps, minimum timed seconds, maximum steps;
# the same numbers as examples/bench.rs.
PLAN = {
    "W1": (20, 50, 1.0, 2000),
    "W2": (10, 30, 1.0, 1000),
    "W3": (200, 500, 0.5, 20000),
    "W4": (2, 5, 3.0, 20),
    "W5": (3, 10, 2.0, 200),
    "W6": (2, 10, 3.0, 100),
    "W7": (5, 30, 2.0, 500),
    "W8": (3, 20, 1.0, 500),
    "SGEMM": (2, 5, 3.0, 20),
}


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=0, help="threads (0: torch's default)")
    p.add_argument("--json", help="write the results to this file")
    p.add_argument("--only", default="", help="comma-separated workloads (default: all)")
    p.add_argument("--device", default="all", choices=["cpu", "cuda", "all"],
                   help="cpu, cuda, or all (cuda only when available)")
    p.add_argument("--quick", action="store_true", help="a tenth of the timed time (smoke test)")
    return p.parse_args()


args = parse()
if args.threads > 0:
    # Must happen before torch (and its OpenMP / MKL runtimes) load.
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    os.environ["MKL_NUM_THREADS"] = str(args.threads)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

if args.threads > 0:
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass


def mlp(sizes):
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i + 2 < len(sizes):
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def lenet():
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, 10),
    )


class BasicBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.c2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        h = F.relu(self.bn1(self.c1(x)))
        h = self.bn2(self.c2(h))
        return F.relu(h + x)


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        self.blocks = nn.Sequential(BasicBlock(16), BasicBlock(16), BasicBlock(16))
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        x = F.relu(self.bn(self.stem(x)))
        x = self.blocks(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.head(x)


# FLOPs of a training step, counted as in examples/bench.rs: 2 per multiply-add
# of the forward, weight-gradient and input-gradient products (no input
# gradient for the first layer); element-wise work is not counted.
def linear_train_macs(sizes):
    macs = 0
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        macs += a * b * (2 if i == 0 else 3)
    return macs


W1_SIZES = [784, 256, 128, 10]
W4_SIZES = [4096, 4096, 4096, 10]
FLOPS = {
    "W1": 2 * 128 * linear_train_macs(W1_SIZES),
    "W2": 2 * 64 * (2 * 6 * 28 * 28 * 25 + 3 * 16 * 10 * 10 * 6 * 25 + 3 * (400 * 120 + 120 * 84 + 84 * 10)),
    "W3": 2 * (784 * 256 + 256 * 128 + 128 * 10),
    "W4": 2 * 512 * linear_train_macs(W4_SIZES),
    "W5": 2 * 32 * (2 * 16 * 32 * 32 * 3 * 9 + 3 * 6 * 16 * 32 * 32 * 16 * 9 + 3 * 16 * 10),
    "W6": 2 * 3 * 3200 * (2048 * (64 + 512 + 512 + 512) + 512 * 84),
    "W7": 2 * 3 * (4 * (768 * 128 * 1536 + 2 * 48 * 64 * 64 * 32) + 768 * 128 * 84),
    "W8": 0,
    "SGEMM": 2 * 4096 ** 3,
}
BATCH = {"W1": 128, "W2": 64, "W3": 1, "W4": 512, "W5": 32, "W6": 32, "W7": 12, "W8": 64, "SGEMM": 0}


class CharLstm(nn.Module):
    """examples/char_lstm.rs's network (its twin: scripts/pytorch/char_lstm.py)."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(84, 64)
        self.lstm = nn.LSTM(64, 512, num_layers=2, batch_first=True)
        self.head = nn.Linear(512, 84)

    def forward(self, x):
        return self.head(self.lstm(self.emb(x))[0])


def char_gpt_module():
    """scripts/pytorch/char_gpt.py (nanoGPT's model written out)."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "..", "scripts", "pytorch"))
    import char_gpt  # noqa: E402

    return char_gpt


def timed(name, step, sync, quick):
    warm, min_steps, min_s, max_steps = PLAN[name]
    if quick:
        min_s /= 10
        min_steps = max(2, min_steps // 5)
    for _ in range(warm):
        step()
    sync()
    times = []
    start = time.perf_counter()
    while len(times) < max_steps and (len(times) < min_steps or time.perf_counter() - start < min_s):
        t = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t)
    return times


def train_step(model, x, y, lr=1e-3):
    opt = torch.optim.SGD(model.parameters(), lr=lr)

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    return step


def make(name, dev, gen):
    def rand(*shape):
        return torch.rand(*shape, generator=gen).to(dev) * 2 - 1

    def labels(n):
        return torch.randint(0, 10, (n,), generator=gen).to(dev)

    torch.manual_seed(0)
    if name == "W1":
        return train_step(mlp(W1_SIZES).to(dev), rand(128, 784), labels(128))
    if name == "W2":
        return train_step(lenet().to(dev), rand(64, 1, 28, 28), labels(64))
    if name == "W3":
        model = mlp(W1_SIZES).to(dev).eval()
        x = rand(1, 784)

        def step():
            with torch.inference_mode():
                model(x)

        return step
    if name == "W4":
        return train_step(mlp(W4_SIZES).to(dev), rand(512, 4096), labels(512))
    if name == "W5":
        return train_step(ResNet().to(dev), rand(32, 3, 32, 32), labels(32))
    if name == "W6":
        model = CharLstm().to(dev)
        x, y = (torch.randint(0, 84, (32, 100), generator=gen).to(dev) for _ in range(2))
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)

        def step():
            opt.zero_grad()
            loss = F.cross_entropy(model(x).reshape(-1, 84), y.reshape(-1))
            loss.backward()
            opt.step()

        return step
    if name == "W7":
        cg = char_gpt_module()
        model = cg.GPT(84, 64, 4, 4, 128).to(dev)
        x, y = (torch.randint(0, 84, (12, 64), generator=gen).to(dev) for _ in range(2))
        opt = cg.configure_optimizer(model, 1e-3, 0.99, 0.1)

        def step():
            opt.zero_grad(set_to_none=True)
            _, loss = model(x, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()

        return step
    if name == "W8":
        model = char_gpt_module().GPT(84, 64, 4, 4, 128).to(dev).eval()
        ids = torch.randint(0, 84, (1, 64), generator=gen).to(dev)
        tr = model.transformer

        def step():
            # nanoGPT's generate: the context so far through every block, the
            # head on the last position only (model.py's inference path).
            with torch.inference_mode():
                for t in range(1, 65):
                    idx = ids[:, :t]
                    pos = torch.arange(0, t, dtype=torch.long, device=dev)
                    h = tr.wte(idx) + tr.wpe(pos)
                    for block in tr.h:
                        h = block(h)
                    model.lm_head(tr.ln_f(h[:, [-1], :]))

        return step
    if name == "SGEMM":
        a, b = rand(4096, 4096), rand(4096, 4096)
        out = torch.empty(4096, 4096, device=dev)

        def step():
            torch.mm(a, b, out=out)

        return step
    raise ValueError(name)


def main():
    names = [w.strip().upper() for w in args.only.split(",") if w.strip()] or WORKLOADS
    for n in names:
        if n not in WORKLOADS:
            sys.exit(f"unknown workload {n}; choose from {', '.join(WORKLOADS)}")
    devices = []
    if args.device in ("cpu", "all"):
        devices.append("cpu")
    if args.device in ("cuda", "all") and torch.cuda.is_available():
        devices.append("cuda")
    if args.device == "cuda" and not devices:
        sys.exit("no CUDA device")

    results = []
    for dev in devices:
        sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
        for name in names:
            gen = torch.Generator().manual_seed(1)
            times = timed(name, make(name, dev, gen), sync, args.quick)
            med = statistics.median(times)
            batch = BATCH[name]
            results.append({
                "workload": name,
                "device": dev,
                "median_s": med,
                "min_s": min(times),
                "steps": len(times),
                "samples_per_s": (batch / med if batch else None) if name != "W3" else 1.0 / med,
                "gflops": FLOPS[name] / med / 1e9 if FLOPS[name] else None,
            })

    meta = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "mkl_num_threads": os.environ.get("MKL_NUM_THREADS"),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    print(f"PyTorch {meta['torch']}, {meta['threads']} threads "
          f"(OMP_NUM_THREADS={meta['omp_num_threads']}, MKL_NUM_THREADS={meta['mkl_num_threads']}), "
          f"CPU capability {meta['cpu_capability']}")
    print(f"{'workload':<10} {'device':<6} {'time/step':>12} {'samples/s':>12} {'GFLOP/s':>9} {'steps':>6}")
    for r in results:
        sps = f"{r['samples_per_s']:.0f}" if r["samples_per_s"] else "-"
        gf = f"{r['gflops']:.1f}" if r["gflops"] else "-"
        print(f"{r['workload']:<10} {r['device']:<6} {fmt_time(r['median_s']):>12} {sps:>12} "
              f"{gf:>9} {r['steps']:>6}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)


def fmt_time(s):
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    if s < 1:
        return f"{s * 1e3:.3f} ms"
    return f"{s:.3f} s"


if __name__ == "__main__":
    main()
