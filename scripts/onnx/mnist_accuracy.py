"""Test accuracy of an exported MNIST classifier in ONNX Runtime.

    .venv-test/bin/python scripts/onnx/mnist_accuracy.py MODEL [DATA_DIR] [--normalize] [--limit N]

Reads t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (or their .gz) from
DATA_DIR (default data/mnist), scales pixels to [0, 1] (then, with
--normalize, by MNIST's mean 0.1307 and std 0.3081, as the examples' flag),
feeds the model's one input in batches of 1000 with the shape its input
declares ([batch, 1, 28, 28] or [batch, 784]), and prints
`onnxruntime test accuracy (MNIST t10k, N images): 0.xxxx` and, on a second
line, `correct K`.
"""

import gzip
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort


def read_idx(path):
    if not os.path.exists(path) and os.path.exists(path + ".gz"):
        path += ".gz"
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    normalize = "--normalize" in sys.argv
    limit = None
    if "--limit" in sys.argv:
        limit = int(sys.argv[sys.argv.index("--limit") + 1])
        args.remove(str(limit))
    model_path = args[0]
    data_dir = args[1] if len(args) > 1 else "data/mnist"
    onnx.checker.check_model(onnx.load(model_path), full_check=True)
    x = read_idx(os.path.join(data_dir, "t10k-images-idx3-ubyte")).astype(np.float32) / 255.0
    y = read_idx(os.path.join(data_dir, "t10k-labels-idx1-ubyte")).astype(np.int64)
    if limit is not None:
        x, y = x[:limit], y[:limit]
    if normalize:
        x = (x - np.float32(0.1307)) / np.float32(0.3081)
    sess = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    per_sample = [d for d in inp.shape[1:]]
    correct = 0
    for s in range(0, len(x), 1000):
        xb = x[s : s + 1000].reshape([-1] + per_sample)
        logits = sess.run(None, {inp.name: xb})[0]
        correct += int((logits.argmax(axis=1) == y[s : s + 1000]).sum())
    print(f"onnxruntime test accuracy (MNIST t10k, {len(x)} images): {correct / len(x):.4f}")
    print(f"correct {correct}")


if __name__ == "__main__":
    main()
