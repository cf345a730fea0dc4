"""Checks an ONNX model and runs it in ONNX Runtime, for tests/onnx_runtime.rs.

    run_model.py MODEL DIR

DIR/inputs.json lists the inputs: [{"name", "shape", "dtype", "file"}], each
file raw little-endian values of that dtype ("float32", "float64" or
"int64"), row-major. The model is checked with
onnx.checker.check_model(full_check=True) (which also runs strict shape
inference), then run on CPU; each output is written to DIR/out_<name>.bin
(raw little-endian, the model's dtype), and stdout gets one JSON line:
{"outputs": [{"name", "shape", "dtype", "file"}], "opset": N, "ir_version": N,
"onnx": version, "onnxruntime": version}.
"""

import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort


def main():
    model_path, d = sys.argv[1], sys.argv[2]
    model = onnx.load(model_path)
    onnx.checker.check_model(model, full_check=True)
    with open(os.path.join(d, "inputs.json")) as f:
        spec = json.load(f)
    feeds = {}
    for s in spec:
        a = np.fromfile(os.path.join(d, s["file"]), dtype=np.dtype(s["dtype"]).newbyteorder("<"))
        feeds[s["name"]] = a.reshape(s["shape"])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model_path, opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    outs = sess.run(names, feeds)
    report = []
    for name, a in zip(names, outs):
        a = np.ascontiguousarray(a)
        fname = "out_" + name + ".bin"
        a.astype(a.dtype.newbyteorder("<")).tofile(os.path.join(d, fname))
        report.append({"name": name, "shape": list(a.shape), "dtype": str(a.dtype), "file": fname})
    print(json.dumps({
        "outputs": report,
        "opset": model.opset_import[0].version,
        "ir_version": model.ir_version,
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
    }))


if __name__ == "__main__":
    main()
