#!/usr/bin/python3
"""Writes the model repository fixture for tests/integration/test_kserve.c: every model with an
input and its expected outputs, computed here with numpy, independently of the server's executor.

- tiny: an image classifier, x FP32 [N,3,4,4] -> Conv(2 filters 3x3, pad 1) -> Relu ->
  GlobalAveragePool -> Flatten ("features" [N,2]) -> Gemm(2->3) -> Softmax ("probs" [N,3]).
- pixels: x UINT8 [N,4] -> Cast(to=FLOAT) -> Mul(1/255) -> Gemm(4->2) -> "y" [N,2].
- counts: x INT64 [N,3] -> Cast(to=FLOAT) -> Gemm(3->2) -> "y" [N,2].
- untyped: x of undeclared element type [N,2] -> Relu -> "y" (such an input takes FP32).
- mymodel: the model of the protocol documentation's examples (Triton's binary tensor data
  extension): input0 [2,2] and input1 [3] -> output0 FP32 [3,2]. The documentation's UINT32 and
  BOOL become FP32 and UINT8, which have the same element sizes (so its 19 bytes of binary input
  and 24 of output hold): output0 = Concat(input0, Gemm(Reshape(Cast(input1), [1,3]), W [3,2])).

Run with Debian's Python, which has onnx:
    /usr/bin/python3 tests/parity/gen_models.py [out_dir]
out_dir defaults to tests/parity/fixtures/models. The output is deterministic. Each model is
<out_dir>/<name>/model.onnx (+ config.json) and its expectation <out_dir>/<name>_expected.json:
{"inputs": [{"name", "datatype", "shape", "data" (flat)}], "outputs": {name: {"shape", "data"}}}.
"""
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def make_model(name, nodes, inputs, outputs, initializers, check=True):
    graph = helper.make_graph(nodes, name, inputs, outputs,
                              [numpy_helper.from_array(v, k) for k, v in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="gen_models.py")
    model.ir_version = 7
    if check:
        onnx.checker.check_model(model)
    return model


def gemm(a, w, b):
    """Gemm with transB=1 in float64."""
    return a.astype(np.float64) @ w.T.astype(np.float64) + b


def tiny():
    rng = np.random.default_rng(1234)
    conv_w = rng.uniform(-1, 1, (2, 3, 3, 3)).astype(np.float32)
    conv_b = np.array([0.1, -0.05], dtype=np.float32)
    gemm_w = rng.uniform(-1, 1, (3, 2)).astype(np.float32)  # transB: [out, in]
    gemm_b = np.array([0.2, 0.0, -0.1], dtype=np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["conv"], kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["pool"]),
        helper.make_node("Flatten", ["pool"], ["features"], axis=1),
        helper.make_node("Gemm", ["features", "gemm_w", "gemm_b"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    model = make_model(
        "tiny", nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4, 4])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 3]),
         helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 2])],
        {"conv_w": conv_w, "conv_b": conv_b, "gemm_w": gemm_w, "gemm_b": gemm_b})
    x = np.random.default_rng(99).uniform(-1, 1, (2, 3, 4, 4)).astype(np.float32)
    # The model in plain numpy (float64), so the expectation does not come from any ONNX runtime.
    n, c, h, w = x.shape
    padded = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    conv = np.zeros((n, conv_w.shape[0], h, w))
    for f in range(conv_w.shape[0]):
        for i in range(h):
            for j in range(w):
                conv[:, f, i, j] = (padded[:, :, i:i + 3, j:j + 3] * conv_w[f]).sum(axis=(1, 2, 3))
        conv[:, f] += conv_b[f]
    features = np.maximum(conv, 0).mean(axis=(2, 3))
    logits = gemm(features, gemm_w, gemm_b)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return model, {"max_batch": 4}, [("x", "FP32", x)], {
        "probs": e / e.sum(axis=1, keepdims=True), "features": features}


def pixels():
    rng = np.random.default_rng(7)
    w = rng.uniform(-1, 1, (2, 4)).astype(np.float32)
    b = np.array([0.5, -0.25], dtype=np.float32)
    scale = np.array([1 / 255], dtype=np.float32)
    nodes = [
        helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["xf", "scale"], ["scaled"]),
        helper.make_node("Gemm", ["scaled", "w", "b"], ["y"], transB=1),
    ]
    model = make_model(
        "pixels", nodes, [helper.make_tensor_value_info("x", TensorProto.UINT8, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        {"scale": scale, "w": w, "b": b})
    x = np.array([[0, 255, 128, 7], [255, 0, 1, 254], [64, 32, 16, 8]], dtype=np.uint8)
    return model, {"max_batch": 4}, [("x", "UINT8", x)], {
        "y": gemm(x.astype(np.float64) * np.float64(scale[0]), w, b)}


def counts():
    rng = np.random.default_rng(8)
    w = rng.uniform(-1, 1, (2, 3)).astype(np.float32)
    b = np.array([1.0, -1.0], dtype=np.float32)
    nodes = [
        helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT),
        helper.make_node("Gemm", ["xf", "w", "b"], ["y"], transB=1),
    ]
    model = make_model(
        "counts", nodes, [helper.make_tensor_value_info("x", TensorProto.INT64, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])], {"w": w, "b": b})
    # Integers a float holds exactly (|v| <= 2^24), negatives included.
    x = np.array([[0, -3, 1000], [16777216, -16777216, 42]], dtype=np.int64)
    return model, {"max_batch": 4}, [("x", "INT64", x)], {"y": gemm(x, w, b)}


def untyped():
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    # elem_type 0 (UNDEFINED) is what a model that does not declare the type holds; the checker
    # refuses it, the server takes it as FP32.
    model = make_model(
        "untyped", nodes, [helper.make_tensor_value_info("x", TensorProto.UNDEFINED, ["N", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])], {}, check=False)
    x = np.array([[-1.5, 2.25], [3.0, -0.5]], dtype=np.float32)
    return model, None, [("x", "FP32", x)], {"y": np.maximum(x.astype(np.float64), 0)}


def mymodel():
    w = np.array([[0.5, -1.0], [2.0, 0.25], [-0.75, 1.5]], dtype=np.float32)  # transB: [in, out]
    b = np.array([0.1, 0.2], dtype=np.float32)
    nodes = [
        helper.make_node("Cast", ["input1"], ["input1_f"], to=TensorProto.FLOAT),
        helper.make_node("Reshape", ["input1_f", "row"], ["input1_row"]),
        helper.make_node("Gemm", ["input1_row", "w", "b"], ["mixed"]),
        helper.make_node("Concat", ["input0", "mixed"], ["output0"], axis=0),
    ]
    model = make_model(
        "mymodel", nodes,
        [helper.make_tensor_value_info("input0", TensorProto.FLOAT, [2, 2]),
         helper.make_tensor_value_info("input1", TensorProto.UINT8, [3])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [3, 2])],
        {"row": np.array([1, 3], dtype=np.int64), "w": w, "b": b})
    input0 = np.array([[1, 2], [3, 4]], dtype=np.float32)
    input1 = np.array([1, 0, 1], dtype=np.uint8)
    mixed = input1.astype(np.float64).reshape(1, 3) @ w.astype(np.float64) + b
    return model, None, [("input0", "FP32", input0), ("input1", "UINT8", input1)], {
        "output0": np.concatenate([input0.astype(np.float64), mixed], axis=0)}


def write(out_dir, name, model, config, inputs, outputs):
    os.makedirs(os.path.join(out_dir, name), exist_ok=True)
    onnx.save(model, os.path.join(out_dir, name, "model.onnx"))
    if config is not None:
        with open(os.path.join(out_dir, name, "config.json"), "w") as f:
            json.dump(config, f)
            f.write("\n")
    expected = {
        "inputs": [{"name": n, "datatype": t, "shape": list(v.shape), "data": v.ravel().tolist()}
                   for n, t, v in inputs],
        "outputs": {n: {"shape": list(v.shape), "data": [float(e) for e in v.ravel()]}
                    for n, v in outputs.items()},
    }
    with open(os.path.join(out_dir, name + "_expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "fixtures", "models")
    for build in (tiny, pixels, counts, untyped, mymodel):
        write(out_dir, build.__name__, *build())


if __name__ == "__main__":
    main()
