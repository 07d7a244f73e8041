#!/usr/bin/python3
"""Writes the ONNX fixtures for tests/unit/test_nn_ir.c: python onnx's view of a few models, and
small models built here to exercise what the testdata models do not (a float initializer in
raw_data and one in float_data, int64_data, a graph input that is an initializer, symbolic dims,
every attribute kind) and hostile ones the reader must refuse.

Run with Debian's Python, which has onnx 1.12 (the reference):
    /usr/bin/python3 tests/parity/gen_onnx.py [out_dir]
out_dir defaults to tests/parity/fixtures/onnx. The output is deterministic. The testdata models
are read from libonnx-testdata (/usr/share/libonnx-testdata/data); only their descriptions are
checked in.

    /usr/bin/python3 tests/parity/gen_onnx.py --check FILE
loads FILE (e.g. the round-tripped model test_nn_ir writes to /tmp) with onnx and runs its checker.
"""
import hashlib
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

TESTDATA = "/usr/share/libonnx-testdata/data"
TESTDATA_MODELS = [
    "node/test_conv_with_strides_padding/model.onnx",
    "node/test_gemm_default_matrix_bias/model.onnx",
    "node/test_gemm_default_no_bias/model.onnx",
    "node/test_relu/model.onnx",
    "node/test_maxpool_2d_pads/model.onnx",
    "node/test_batchnorm_example/model.onnx",
    "node/test_reshape_negative_dim/model.onnx",
    "node/test_reshape_reordered_all_dims/model.onnx",
    "node/test_constant/model.onnx",
]

ATTR_KINDS = {
    onnx.AttributeProto.FLOAT: "float",
    onnx.AttributeProto.INT: "int",
    onnx.AttributeProto.STRING: "string",
    onnx.AttributeProto.TENSOR: "tensor",
    onnx.AttributeProto.FLOATS: "floats",
    onnx.AttributeProto.INTS: "ints",
    onnx.AttributeProto.STRINGS: "strings",
}


def describe_tensor(t):
    """Shape, dtype and the sha256 of the values as little-endian bytes in C order."""
    a = numpy_helper.to_array(t)
    return {
        "name": t.name,
        "dtype": t.data_type,
        "dims": list(t.dims),
        "sha256": hashlib.sha256(a.astype(a.dtype.newbyteorder("<")).tobytes()).hexdigest(),
    }


def describe_attr(a):
    kind = ATTR_KINDS[a.type]
    value = helper.get_attribute_value(a)
    if kind == "string":
        value = value.decode()
    elif kind == "strings":
        value = [s.decode() for s in value]
    elif kind == "tensor":
        value = describe_tensor(value)
    elif kind == "floats":
        value = [float(np.float32(f)) for f in value]
    elif kind == "float":
        value = float(np.float32(value))
    return {"name": a.name, "type": kind, "value": value}


def describe_value(v):
    tt = v.type.tensor_type
    shape = None
    if tt.HasField("shape"):
        shape = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
    return {"name": v.name, "dtype": tt.elem_type, "shape": shape}


def describe(model):
    g = model.graph
    inits = {t.name for t in g.initializer}
    opset = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    return {
        "ir_version": model.ir_version,
        "opset": opset[0] if opset else -1,
        "nodes": [
            {
                "op_type": n.op_type,
                "inputs": list(n.input),
                "outputs": list(n.output),
                "attributes": [describe_attr(a) for a in n.attribute],
            }
            for n in g.node
        ],
        "inputs": [describe_value(v) for v in g.input if v.name not in inits],
        "outputs": [describe_value(v) for v in g.output],
        "initializers": [describe_tensor(t) for t in g.initializer],
    }


def mixed_model():
    """Conv -> Relu -> Reshape, weights in raw_data, bias in float_data, shape in int64_data, the
    weights also listed as a graph input (as older exporters do), a symbolic batch dim, and a
    Constant carrying every other attribute kind the IR holds (unknown attributes are legal on
    nodes the checker does not know, so they ride on a custom-domain node)."""
    rng = np.random.default_rng(7)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    weights = numpy_helper.from_array(w, "W")  # raw_data
    bias = helper.make_tensor("B", TensorProto.FLOAT, [4], b.tolist())  # float_data
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 4 * 6 * 6])  # int64_data
    assert weights.HasField("raw_data") and not bias.HasField("raw_data")
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["c"], name="conv", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1], strides=[1, 1], auto_pad="NOTSET"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Reshape", ["r", "shape"], ["y"], name="flatten"),
        helper.make_node("Tag", ["y"], ["z"], name="tag", domain="augserve.test", alpha=0.25,
                         scales=[0.5, 1.5], labels=["a", "bc"], mode="edge",
                         value=numpy_helper.from_array(np.arange(6, dtype=np.int64).reshape(2, 3),
                                                       "v")),
    ]
    graph = helper.make_graph(
        nodes, "mixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 6, 6]),
         helper.make_tensor_value_info("W", TensorProto.FLOAT, [4, 3, 3, 3])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 144])],
        [weights, bias, shape],
        value_info=[helper.make_tensor_value_info("c", TensorProto.FLOAT, ["N", 4, 6, 6])])
    return helper.make_model(graph, producer_name="gen_onnx.py",
                             opset_imports=[helper.make_opsetid("", 13),
                                            helper.make_opsetid("augserve.test", 1)])


def tiny_model(init):
    """Identity of an initializer: the carrier for one hostile tensor."""
    graph = helper.make_graph([helper.make_node("Identity", [init.name], ["y"])], "hostile", [],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [init])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def hostile_models():
    """name -> (model, error code the reader must give, text its message must contain)."""
    def tensor(name, data_type, dims, raw):
        # Built by hand: make_tensor refuses data that does not match the dims.
        t = TensorProto(name=name, data_type=data_type, raw_data=raw)
        t.dims.extend(dims)
        return t

    mismatch = tensor("short", TensorProto.FLOAT, [2, 3], b"\0" * 20)
    negative = tensor("neg", TensorProto.FLOAT, [2, -3], b"\0" * 24)
    rank9 = tensor("deep", TensorProto.FLOAT, [1] * 9, b"\0" * 4)
    huge = tensor("huge", TensorProto.FLOAT, [1 << 31, 1 << 31, 1 << 31], b"")
    product = tensor("wide", TensorProto.FLOAT, [1 << 20, 1 << 20], b"")
    dtype = tensor("half", TensorProto.FLOAT16, [2], b"\0" * 4)
    return {
        "raw_mismatch": (tiny_model(mismatch), "INVALID", "initializer 'short'"),
        "negative_dim": (tiny_model(negative), "INVALID", "initializer 'neg'"),
        "rank9": (tiny_model(rank9), "INVALID", "initializer 'deep' has rank 9"),
        "huge_dims": (tiny_model(huge), "INVALID", "initializer 'huge'"),
        "too_many_bytes": (tiny_model(product), "INVALID", "initializer 'wide'"),
        "unknown_dtype": (tiny_model(dtype), "UNSUPPORTED", "initializer 'half'"),
    }


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        onnx.checker.check_model(onnx.load(sys.argv[2]))
        print("ok:", sys.argv[2])
        return
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "fixtures", "onnx")
    os.makedirs(out, exist_ok=True)
    models, hostile = [], []
    for rel in TESTDATA_MODELS:
        models.append({"source": "testdata", "path": rel,
                       "expect": describe(onnx.load(os.path.join(TESTDATA, rel)))})
    mixed = mixed_model()
    onnx.checker.check_model(mixed)
    onnx.save(mixed, os.path.join(out, "mixed.onnx"))
    models.append({"source": "fixtures", "path": "mixed.onnx", "expect": describe(mixed)})
    for name, (model, code, message) in hostile_models().items():
        onnx.save(model, os.path.join(out, name + ".onnx"))
        hostile.append({"path": name + ".onnx", "code": code, "message": message})
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump({"models": models, "hostile": hostile}, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
