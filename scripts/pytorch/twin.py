#!/usr/bin/env python3
"""PyTorch twins of kiln's example networks, to show that weights exchange
both ways through safetensors with PyTorch's state_dict names.

Needs PyTorch (not in CI: its wheel pulls several GB):

  # PyTorch -> kiln: write a checkpoint and the outputs PyTorch computes
  # (committed as tests/fixtures/torch_twin_<net>.safetensors; the CI test
  # tests/pytorch_twin.rs loads it into kiln and reproduces the outputs)
  python3 scripts/pytorch/twin.py record mlp tests/fixtures/torch_twin_mlp.safetensors

  # kiln -> PyTorch: load what kiln wrote (cargo test --test pytorch_twin
  # writes target/twin/kiln_<net>.safetensors) with load_state_dict(strict=True)
  # and compare with the outputs kiln stored beside the weights
  python3 scripts/pytorch/twin.py check mlp target/twin/kiln_mlp.safetensors

Tensors whose names start with "__" are not weights: "__input" and
"__output" hold a batch and the network's output for it.
"""
import sys

import torch
from safetensors.torch import load_file, save_file
from torch import nn


class Mlp(nn.Module):
    """examples/mnist_mlp.rs: 784-512-256-10 with ReLU."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 512)
        self.fc2 = nn.Linear(512, 256)
        self.fc3 = nn.Linear(256, 10)

    def forward(self, x):
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


NETS = {"mlp": (Mlp, (784,))}


def record(name, path):
    torch.manual_seed(0)
    cls, shape = NETS[name]
    net = cls().eval()
    x = torch.rand(4, *shape)
    with torch.no_grad():
        y = net(x)
    tensors = {k: v.contiguous() for k, v in net.state_dict().items()}
    tensors["__input"] = x
    tensors["__output"] = y
    save_file(tensors, path, metadata={"source": f"scripts/pytorch/twin.py record {name}", "torch": torch.__version__})
    print(f"wrote {path}: {len(tensors) - 2} weights, output {list(y.shape)}")


def check(name, path):
    cls, _ = NETS[name]
    net = cls().eval()
    t = load_file(path)
    x, want = t.pop("__input"), t.pop("__output")
    net.load_state_dict(t, strict=True)
    with torch.no_grad():
        got = net(x)
    err = (got - want).abs().max().item()
    ok = err <= 1e-5
    print(f"{name}: load_state_dict(strict=True) ok; max |torch - kiln| = {err:.3g} -> {'PASS' if ok else 'FAIL'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    mode, name, path = sys.argv[1:4]
    {"record": record, "check": check}[mode](name, path)
