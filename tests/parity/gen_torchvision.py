#!/usr/bin/python3
"""Exports torchvision classifiers with seeded random weights (and random BatchNorm statistics,
so folding BatchNorm is exercised with non-trivial values) to ONNX, with an input batch and the
logits PyTorch computes for it, for tests/unit/test_nn_models.c.

The files are large (AlexNet alone is 244 MB), so they are not checked in: ctest runs this script
into the build folder before the parity test. It needs Debian's python3-torch and
python3-torchvision; without them it writes a manifest saying why, and the test skips.

    /usr/bin/python3 tests/parity/gen_torchvision.py OUT_DIR

OUT_DIR/manifest.json lists each case: the model file, the opset, the input and expected output
files (raw little-endian float32) and their shapes. Re-running with the same script is a no-op.
"""
import json
import os
import sys

import generated

# name, torchvision constructor, opset, batch, export options[, image size (default 224)]
CASES = [
    ("alexnet", "alexnet", 11, 1, {}),
    ("resnet18", "resnet18", 13, 2, {}),
    # Exported without constant folding, the BatchNormalization nodes stay in the graph and the
    # executor folds them itself.
    ("resnet18_bn", "resnet18", 14, 1, {"do_constant_folding": False}),
    ("squeezenet1_1", "squeezenet1_1", 12, 2, {}),
    ("mobilenet_v2", "mobilenet_v2", 15, 1, {}),
    ("mobilenet_v3_small", "mobilenet_v3_small", 17, 1, {}),
    ("efficientnet_b0", "efficientnet_b0", 16, 1, {}),
    ("resnet50", "resnet50", 17, 1, {}),
    # At 64 px the last stage's maps are 2x2, and with 6 images the executor runs those
    # convolutions (3x3, and the 1x1 stride-2 shortcut) as its small-map products.
    ("resnet18_64", "resnet18", 13, 6, {}, 64),
    # torch.onnx writes y.view(y.size(0), -1) as Shape -> Gather -> Unsqueeze -> Concat -> Reshape,
    # the shape arithmetic the executor folds at compile time; opset 11 also writes its
    # Unsqueeze axes as an attribute, 13 as an input.
    ("viewnet_11", "viewnet", 11, 3, {}),
    ("viewnet_13", "viewnet", 13, 3, {}),
]


def viewnet():
    import torch

    class ViewNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
            self.bn = torch.nn.BatchNorm2d(8)
            self.pool = torch.nn.MaxPool2d(2)
            self.fc = torch.nn.Linear(8 * 56 * 56, 10)

        def forward(self, x):
            y = self.pool(torch.relu(self.bn(self.conv(x))))
            return self.fc(y.view(y.size(0), -1))

    return ViewNet()


def randomize_batchnorm(model, gen):
    import torch
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            m.weight.data = torch.rand(c, generator=gen) + 0.5
            m.bias.data = torch.randn(c, generator=gen) * 0.1
            m.running_mean = torch.randn(c, generator=gen) * 0.1
            m.running_var = torch.rand(c, generator=gen) + 0.5


def export_case(out_dir, name, ctor, opset, batch, options, size=224):
    import torch
    import torchvision
    torch.manual_seed(1234)
    gen = torch.Generator().manual_seed(4321)
    model = (viewnet() if ctor == "viewnet" else getattr(torchvision.models, ctor)()).eval()
    randomize_batchnorm(model, gen)
    x = torch.rand(batch, 3, size, size, generator=gen) * 2 - 1
    # ResNets also check a tap: the activation after layer1, as a perceptual metric reads it.
    tapped = {}
    def keep_layer1(module, inputs, output):
        tapped.setdefault("layer1", output.detach().clone())  # returns None: output unchanged
    hook = model.layer1.register_forward_hook(keep_layer1) if hasattr(model, "layer1") else None
    with torch.no_grad():
        logits = model(x)
    if hook:
        hook.remove()
    path = os.path.join(out_dir, name + ".onnx")
    torch.onnx.export(model, x, path, opset_version=opset, input_names=["x"],
                      output_names=["logits"], dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}},
                      **options)
    x.numpy().astype("<f4").tofile(os.path.join(out_dir, name + ".input"))
    logits.numpy().astype("<f4").tofile(os.path.join(out_dir, name + ".expected"))
    case = {"name": name, "model": name + ".onnx", "opset": opset,
            "input": name + ".input", "input_shape": list(x.shape),
            "expected": name + ".expected", "expected_shape": list(logits.shape), "taps": []}
    if "layer1" in tapped:
        import onnx
        graph = onnx.load(path, load_external_data=False).graph
        last = [n for n in graph.node if n.name.startswith("/layer1/")][-1]
        tapped["layer1"].numpy().astype("<f4").tofile(os.path.join(out_dir, name + ".layer1"))
        case["taps"].append({"name": last.output[0], "expected": name + ".layer1",
                             "shape": list(tapped["layer1"].shape)})
    return case


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "torchvision-models"
    started = generated.start(__file__, out_dir, "manifest.json", "cases", ["torch", "torchvision"],
                              "python3-torch or python3-torchvision is missing: ")
    if not started:
        return
    manifest_path, version = started
    cases = [export_case(out_dir, *case) for case in CASES]
    with open(manifest_path, "w") as f:
        json.dump({"version": version, "cases": cases}, f, indent=1)


if __name__ == "__main__":
    main()
