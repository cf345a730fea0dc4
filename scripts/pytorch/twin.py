#!/usr/bin/env python3
"""PyTorch twins of kiln's example networks, to show that weights exchange
both ways through safetensors with PyTorch's state_dict names.

Needs PyTorch (not in CI: its wheel pulls several GB):

  # PyTorch -> kiln: write a checkpoint and the outputs PyTorch computes
  # (committed as tests/fixtures/torch_twin_<net>.safetensors; the CI test
  # tests/pytorch_twin.rs loads it into kiln and reproduces the outputs)
  python3 scripts/pytorch/twin.py record mlp tests/fixtures/torch_twin_mlp.safetensors
  python3 scripts/pytorch/twin.py record lenet tests/fixtures/torch_twin_lenet.safetensors
  python3 scripts/pytorch/twin.py record rescnn tests/fixtures/torch_twin_rescnn.safetensors

  # kiln -> PyTorch: load what kiln wrote (cargo test --test integration pytorch_twin::
  # writes target/twin/kiln_<net>.safetensors) with load_state_dict(strict=True)
  # and compare with the outputs kiln stored beside the weights
  python3 scripts/pytorch/twin.py check mlp target/twin/kiln_mlp.safetensors   (and lenet, rescnn)

Tensors whose names start with "__" are not weights: "__input" and
"__output" hold a batch and the network's output for it.
"""
import sys

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F


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


class LeNet(nn.Module):
    """examples/mnist_lenet.rs: LeNet-5 with ReLU and max pooling."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = F.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


class ResCnn(nn.Module):
    """tests/pytorch_twin.rs's ResCnn: conv (no bias) + batch norm, a residual
    block, global average pooling, a linear head — the pieces of
    examples/fashion_cnn.rs, with buffers (running statistics and
    num_batches_tracked) that must exchange too."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(8)
        self.c1 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.down = nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(16)
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        s = torch.relu(self.bn0(self.stem(x)))
        h = self.bn2(self.c2(torch.relu(self.bn1(self.c1(s)))))
        r = torch.relu(h + s)
        d = torch.relu(self.bn3(self.down(r)))
        return self.head(d.mean(dim=(2, 3)))


NETS = {"mlp": (Mlp, (784,)), "lenet": (LeNet, (1, 28, 28)), "rescnn": (ResCnn, (1, 12, 12))}


def record(name, path):
    torch.manual_seed(0)
    cls, shape = NETS[name]
    net = cls()
    # Training-mode passes give batch norm's running statistics (and
    # num_batches_tracked) values other than their defaults.
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.rand(8, *shape) * 2 - 0.5)
    net.eval()
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
