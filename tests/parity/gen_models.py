#!/usr/bin/python3
"""Writes the model repository fixture for tests/integration/test_kserve.c: a tiny image
classifier, x [N,3,4,4] -> Conv(2 filters 3x3, pad 1) -> Relu -> GlobalAveragePool -> Flatten
("features" [N,2]) -> Gemm(2->3) -> Softmax ("probs" [N,3]), with fixed weights, and an input with
its expected outputs computed here with numpy, independently of the server's executor.

Run with Debian's Python, which has onnx:
    /usr/bin/python3 tests/parity/gen_models.py [out_dir]
out_dir defaults to tests/parity/fixtures/models. The output is deterministic.
"""
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def weights():
    rng = np.random.default_rng(1234)
    conv_w = rng.uniform(-1, 1, (2, 3, 3, 3)).astype(np.float32)
    conv_b = np.array([0.1, -0.05], dtype=np.float32)
    gemm_w = rng.uniform(-1, 1, (3, 2)).astype(np.float32)  # transB: [out, in]
    gemm_b = np.array([0.2, 0.0, -0.1], dtype=np.float32)
    return conv_w, conv_b, gemm_w, gemm_b


def build_model(conv_w, conv_b, gemm_w, gemm_b):
    nodes = [
        helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["conv"], kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["pool"]),
        helper.make_node("Flatten", ["pool"], ["features"], axis=1),
        helper.make_node("Gemm", ["features", "gemm_w", "gemm_b"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4, 4])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 3]),
         helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 2])],
        [numpy_helper.from_array(conv_w, "conv_w"), numpy_helper.from_array(conv_b, "conv_b"),
         numpy_helper.from_array(gemm_w, "gemm_w"), numpy_helper.from_array(gemm_b, "gemm_b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="gen_models.py")
    model.ir_version = 7
    onnx.checker.check_model(model)
    return model


def reference(x, conv_w, conv_b, gemm_w, gemm_b):
    """The model in plain numpy (float64), so the expectation does not come from any ONNX runtime."""
    n, c, h, w = x.shape
    padded = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    conv = np.zeros((n, conv_w.shape[0], h, w))
    for f in range(conv_w.shape[0]):
        for i in range(h):
            for j in range(w):
                conv[:, f, i, j] = (padded[:, :, i:i + 3, j:j + 3] * conv_w[f]).sum(axis=(1, 2, 3))
        conv[:, f] += conv_b[f]
    features = np.maximum(conv, 0).mean(axis=(2, 3))
    logits = features @ gemm_w.T.astype(np.float64) + gemm_b
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return features, e / e.sum(axis=1, keepdims=True)


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "fixtures", "models")
    conv_w, conv_b, gemm_w, gemm_b = weights()
    os.makedirs(os.path.join(out_dir, "tiny"), exist_ok=True)
    onnx.save(build_model(conv_w, conv_b, gemm_w, gemm_b), os.path.join(out_dir, "tiny", "model.onnx"))
    with open(os.path.join(out_dir, "tiny", "config.json"), "w") as f:
        json.dump({"max_batch": 4}, f)
        f.write("\n")
    x = np.random.default_rng(99).uniform(-1, 1, (2, 3, 4, 4)).astype(np.float32)
    features, probs = reference(x, conv_w, conv_b, gemm_w, gemm_b)
    expected = {
        "input": {"name": "x", "shape": list(x.shape), "data": [float(v) for v in x.ravel()]},
        "outputs": {
            "probs": {"shape": list(probs.shape), "data": [float(v) for v in probs.ravel()]},
            "features": {"shape": list(features.shape), "data": [float(v) for v in features.ravel()]},
        },
    }
    with open(os.path.join(out_dir, "tiny_expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
