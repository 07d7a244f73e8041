#!/usr/bin/python3
"""Writes the fixtures of tests/integration/test_predict.c: three tiny image classifiers with their
config.json (and labels.txt), two test images, and the class probabilities torchvision's
evaluation transform and torch give for them (expected.json).

- tiny-cnn: NCHW, RGB, logits. Resize(20) (bilinear) -> CenterCrop(16) -> ToTensor ->
  Normalize(ImageNet) -> Conv(3->4, 3x3, pad 1) -> Relu -> MaxPool(2) -> Flatten -> Gemm(256->5).
- tiny-linear: NHWC, BGR, probabilities, no labels. Resize(10, nearest) -> CenterCrop((8, 6)) ->
  ToTensor -> BGR -> Normalize((0.4, 0.5, 0.6), (0.25, 0.2, 0.5)) -> HWC -> Flatten ->
  Gemm(144->5) -> Softmax. A linear map of the raw pixels, so any layout or channel mix-up shows.
- three-class: 3 classes (for the class-count check of /v1/pseudo-label).
- tiny-cnn-srgb: tiny-cnn with "color": "srgb" in its preprocess (images converted to sRGB from
  their ICC profile first); the test holds it to tiny-cnn on the converted image, so it has no
  probabilities here.

The images: photo.png (RGB, 61x47, landscape) and gray.png (L, 33x50, portrait; classifiers take
convert("RGB")), lossless; and rocket.jpg, a tagged photo: skimage's rocket (a JPEG with an Adobe
RGB (1998) profile, as cameras write) made 64x43 by Pillow and saved with its profile, quality 90.
Its probabilities are those of the values stored, which is what Pillow, and so torchvision, reads
(the profile is ignored), and what augserve decodes by default (the same libjpeg-turbo, exactly).

Run with Debian's Python, which has torch, torchvision and onnx:
    /usr/bin/python3 tests/parity/gen_predict.py [out_dir]
out_dir defaults to tests/parity/fixtures/predict. The output is deterministic.
"""
import io
import json
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper
import skimage.data
from PIL import Image
from torchvision import transforms as T

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
LABELS = ["apple", "banana", "cherry", "date", "elderberry"]
IMAGES = ["photo.png", "gray.png", "rocket.jpg"]


def make_model(name, nodes, x_shape, out_name, weights):
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, ["N", None])],
        [numpy_helper.from_array(v, k) for k, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="gen_predict.py")
    model.ir_version = 7
    onnx.checker.check_model(model)
    return model


def tiny_cnn():
    rng = np.random.default_rng(2024)
    w = {"conv_w": rng.normal(0, 0.5, (4, 3, 3, 3)).astype(np.float32),
         "conv_b": rng.normal(0, 0.1, 4).astype(np.float32),
         "fc_w": rng.normal(0, 0.3, (5, 256)).astype(np.float32),
         "fc_b": rng.normal(0, 0.1, 5).astype(np.float32)}
    nodes = [
        helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["conv"], kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("MaxPool", ["relu"], ["pool"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["pool"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], transB=1),
    ]
    config = {"output_kind": "logits", "labels": "labels.txt",
              "preprocess": {"resize": 20, "crop": 16, "interpolation": "bilinear",
                             "mean": IMAGENET_MEAN, "std": IMAGENET_STD}}
    transform = T.Compose([T.Resize(20), T.CenterCrop(16), T.ToTensor(),
                           T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])

    def forward(image):
        x = transform(image.convert("RGB")).unsqueeze(0)
        t = {k: torch.from_numpy(v) for k, v in w.items()}
        y = F.max_pool2d(F.relu(F.conv2d(x, t["conv_w"], t["conv_b"], padding=1)), 2)
        logits = F.linear(y.flatten(1), t["fc_w"], t["fc_b"])
        return torch.softmax(logits.double(), dim=1)[0]

    return make_model("tiny-cnn", nodes, ["N", 3, 16, 16], "logits", w), config, forward


def tiny_linear():
    rng = np.random.default_rng(2025)
    w = {"fc_w": rng.normal(0, 0.2, (5, 144)).astype(np.float32),
         "fc_b": rng.normal(0, 0.1, 5).astype(np.float32)}
    nodes = [
        helper.make_node("Flatten", ["x"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    mean, std = [0.4, 0.5, 0.6], [0.25, 0.2, 0.5]
    config = {"output_kind": "probabilities", "layout": "NHWC",
              "preprocess": {"resize": 10, "crop": [8, 6], "interpolation": "nearest",
                             "mean": mean, "std": std, "channel_order": "BGR"}}
    transform = T.Compose([T.Resize(10, interpolation=T.InterpolationMode.NEAREST),
                           T.CenterCrop((8, 6)), T.ToTensor()])

    def forward(image):
        x = transform(image.convert("RGB"))[[2, 1, 0]]  # BGR
        x = T.Normalize(mean, std)(x).permute(1, 2, 0).reshape(1, -1)  # HWC
        logits = F.linear(x, torch.from_numpy(w["fc_w"]), torch.from_numpy(w["fc_b"]))
        return torch.softmax(logits.double(), dim=1)[0]

    return make_model("tiny-linear", nodes, ["N", 8, 6, 3], "probs", w), config, forward


def three_class():
    rng = np.random.default_rng(2026)
    w = {"fc_w": rng.normal(0, 0.2, (3, 48)).astype(np.float32),
         "fc_b": np.zeros(3, dtype=np.float32)}
    nodes = [
        helper.make_node("Flatten", ["x"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], transB=1),
    ]
    config = {"preprocess": {"resize": 4, "crop": 4}}
    return make_model("three-class", nodes, ["N", 3, 4, 4], "logits", w), config, None


def tiny_cnn_srgb():
    model, config, _ = tiny_cnn()
    config = dict(config, preprocess=dict(config["preprocess"], color="srgb"))
    return model, config, None


def images():
    """A smooth colour field with texture (so resizing matters), a grey portrait, and the encoded
    bytes of a tagged photo."""
    rng = np.random.default_rng(5)
    y, x = np.mgrid[0:47, 0:61]
    rgb = np.stack([x * 4, y * 5, (x + y) * 2], axis=-1) + rng.integers(0, 60, (47, 61, 3))
    photo = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
    y, x = np.mgrid[0:50, 0:33]
    grey = (x * 7 + y * 3 + rng.integers(0, 40, (50, 33))) % 256
    rocket = Image.open(os.path.join(os.path.dirname(skimage.data.__file__), "rocket.jpg"))
    icc = rocket.info["icc_profile"]
    assert b"Adobe RGB (1998)" in icc
    buf = io.BytesIO()
    rocket.resize((64, 43), Image.Resampling.LANCZOS).save(buf, "JPEG", quality=90,
                                                           icc_profile=icc)
    return {"photo.png": photo, "gray.png": Image.fromarray(grey.astype(np.uint8), "L"),
            "rocket.jpg": buf.getvalue()}


def ranked(probs):
    """Probabilities with their indices, descending, ties by index; fails on near ties, which
    would make the order depend on float rounding."""
    order = sorted(range(len(probs)), key=lambda i: (-probs[i], i))
    gaps = [probs[order[i]] - probs[order[i + 1]] for i in range(len(order) - 1)]
    assert min(gaps) > 5e-4, f"near tie in {probs}"
    return order


def pseudo_label(rows):
    """The vote of models x 1 view: mean, argmax, agreement and entropy (natural log)."""
    mean = np.mean(rows, axis=0)
    label = int(ranked(list(mean))[0])
    agreement = float(np.mean([int(np.argmax(r)) == label for r in rows]))
    entropy = float(-np.sum([p * np.log(p) for p in mean if p > 0]))
    return {"index": label, "confidence": float(mean[label]), "agreement": agreement,
            "entropy": entropy}


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "fixtures", "predict")
    torch.set_num_threads(1)
    os.makedirs(out_dir, exist_ok=True)
    pictures = images()
    for name, image in list(pictures.items()):
        if isinstance(image, bytes):  # written as encoded; classified as Pillow decodes it
            with open(os.path.join(out_dir, name), "wb") as f:
                f.write(image)
            pictures[name] = Image.open(io.BytesIO(image))
            pictures[name].load()
        else:
            image.save(os.path.join(out_dir, name))
    expected = {"images": IMAGES, "models": {}}
    for name, build in (("tiny-cnn", tiny_cnn), ("tiny-linear", tiny_linear),
                        ("three-class", three_class), ("tiny-cnn-srgb", tiny_cnn_srgb)):
        model, config, forward = build()
        folder = os.path.join(out_dir, name)
        os.makedirs(folder, exist_ok=True)
        onnx.save(model, os.path.join(folder, "model.onnx"))
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump(config, f, indent=2)
            f.write("\n")
        if "labels" in config:
            with open(os.path.join(folder, config["labels"]), "w") as f:
                f.write("\n".join(LABELS) + "\n")
        if forward:
            probs = {image: [float(p) for p in forward(pictures[image])] for image in IMAGES}
            for p in probs.values():
                ranked(p)
            expected["models"][name] = probs
    models = expected["models"]
    expected["pseudo_label"] = {
        image: pseudo_label(np.array([models["tiny-cnn"][image], models["tiny-linear"][image]]))
        for image in IMAGES}
    with open(os.path.join(out_dir, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
