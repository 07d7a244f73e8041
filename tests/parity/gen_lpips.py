#!/usr/bin/python3
"""Fixtures for the perceptual metrics (tests/unit/test_metric.c, tests/integration/
test_similarity.c): LPIPS as the lpips package defines it, computed here in PyTorch, and SSIM from
skimage.metrics.structural_similarity.

The lpips package is not installed, so its definition is written out below (lpips/
pretrained_networks.py and lpips/lpips.py, v0.1): the input x in [-1, 1] is scaled as
(x - shift) / scale; the backbone's taps are read (AlexNet: the outputs of relu1..relu5;
SqueezeNet 1.1: the ends of its seven slices); each tap is unit-normalised over channels
(x / (sqrt(sum x^2) + 1e-10)), the squared difference is weighted per channel by the 'lin' 1x1
convolution (no bias) and averaged over space, and the layers are summed. spatial=True upsamples
each layer's map bilinearly (align_corners=False) to the input size and sums them. Backbones have
seeded random weights and the lin weights are random and non-negative, so no download is needed.

Each backbone is exported to ONNX with the taps kept as the names torch.onnx gives them; the
model folder gets a config.json whose "perceptual" section lists them and the lin weights as
lin<k>.npy (float32, shape (1, C, 1, 1) as the lpips checkpoints store them).

    /usr/bin/python3 tests/parity/gen_lpips.py OUT_DIR

OUT_DIR/expected.json lists the image pairs (PNG files) and, per pair, the LPIPS of each model
(scalar; the spatial map as a float32 .npy) and skimage's SSIM (per channel and on PIL's "L").
The output is a few MB, so ctest writes it into the build folder; re-running with the same script
is a no-op. Without torch or skimage it writes a manifest saying why, and the tests skip.
"""
import json
import os
import sys

import generated

SHIFT = [-0.030, -0.088, -0.188]
SCALE = [0.458, 0.448, 0.450]
# model name, torchvision constructor, indices into .features whose outputs the lpips package taps
BACKBONES = [
    ("alex", "alexnet", [1, 4, 7, 9, 11]),
    ("squeeze", "squeezenet1_1", [1, 4, 7, 9, 10, 11, 12]),
]
# (width, height) of the image pairs: square, odd and non-square, and the smallest the tests use.
SIZES = [(64, 64), (67, 45), (40, 52)]


class Taps:
    """The backbone's .features up to the last tap, returning every tapped output."""

    def __init__(self, features, taps):
        import torch

        class Module(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.features = features[: taps[-1] + 1]

            def forward(self, x):
                out = []
                for i, layer in enumerate(self.features):
                    x = layer(x)
                    if i in taps:
                        out.append(x)
                return out

        self.module = Module().eval()


def normalize(t, eps=1e-10):
    import torch
    return t / (torch.sqrt(torch.sum(t ** 2, dim=1, keepdim=True)) + eps)


def lpips(feats0, feats1, lins, out_hw):
    import torch
    total, spatial = 0, 0
    for f0, f1, lin in zip(feats0, feats1, lins):
        diff = (normalize(f0) - normalize(f1)) ** 2
        layer = torch.nn.functional.conv2d(diff, lin)
        total = total + layer.mean(dim=[2, 3], keepdim=True)
        spatial = spatial + torch.nn.Upsample(size=out_hw, mode="bilinear",
                                              align_corners=False)(layer)
    return total, spatial


def image_tensor(pixels):
    """lpips.im2tensor: HWC uint8 -> NCHW in [-1, 1], then the scaling layer."""
    import numpy as np
    import torch
    x = torch.Tensor((pixels / (255.0 / 2) - 1)[:, :, :, np.newaxis].transpose((3, 2, 0, 1)))
    shift = torch.Tensor(SHIFT)[None, :, None, None]
    scale = torch.Tensor(SCALE)[None, :, None, None]
    return (x - shift) / scale


def tap_names(path, count):
    """The ONNX names of the module's outputs, in order: the values torch.onnx gave the taps."""
    import onnx
    graph = onnx.load(path).graph
    producers = {o: n for n in graph.node for o in n.output}
    names = []
    for out in graph.output:
        # Each graph output is renamed by torch.onnx to "out<k>"; the tap is the value an
        # Identity copies, or the output itself when a node writes it directly.
        node = producers[out.name]
        names.append(node.input[0] if node.op_type == "Identity" else out.name)
    assert len(names) == count
    return names


def export_backbone(out_dir, name, ctor, taps):
    import numpy as np
    import torch
    import torchvision
    torch.manual_seed(1234)
    taps_module = Taps(getattr(torchvision.models, ctor)().features, taps).module
    gen = torch.Generator().manual_seed(99)
    x = torch.rand(2, 3, 64, 64, generator=gen) * 2 - 1
    folder = os.path.join(out_dir, "models", name)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "model.onnx")
    outputs = ["out%d" % k for k in range(len(taps))]
    torch.onnx.export(taps_module, x, path, opset_version=13, input_names=["x"],
                      output_names=outputs,
                      dynamic_axes={"x": {0: "N", 2: "H", 3: "W"},
                                    **{o: {0: "N", 2: "h", 3: "w"} for o in outputs}})
    with torch.no_grad():
        shapes = [f.shape[1] for f in taps_module(x)]
    lins, files = [], []
    for k, channels in enumerate(shapes):
        w = (torch.rand(1, channels, 1, 1, generator=gen) * 0.2).float()
        lins.append(w)
        files.append("lin%d.npy" % k)
        np.save(os.path.join(folder, files[-1]), w.numpy().astype("<f4"))
    # Only the last tap is the network's real output: every other output is dropped again, so
    # the server taps intermediate values, as it does on a full torchvision export.
    names = tap_names(path, len(taps))
    strip_outputs(path)
    config = {"perceptual": {"taps": names, "lin": files, "shift": SHIFT, "scale": SCALE}}
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    return taps_module, lins, names


def strip_outputs(path):
    import onnx
    model = onnx.load(path)
    graph = model.graph
    last = "out%d" % (len(graph.output) - 1)
    dropped = {o.name for o in graph.output if o.name != last}
    keep = [o for o in graph.output if o.name == last]
    del graph.output[:]
    graph.output.extend(keep)
    # The Identity nodes that copied a tap into a dropped output go with it.
    nodes = [n for n in graph.node if n.op_type != "Identity" or n.output[0] not in dropped]
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, path)


def make_images(gen, width, height):
    """A smooth random image and a distorted copy (noise and a shifted block), as uint8 HWC."""
    import numpy as np
    base = np.cumsum(np.cumsum(gen.normal(size=(height, width, 3)), 0), 1)
    base = (base - base.min()) / (np.ptp(base) + 1e-9) * 200 + 20
    other = base + gen.normal(scale=12, size=base.shape)
    other[height // 4: height // 2, width // 3: width // 2] += 40
    return [np.clip(np.round(i), 0, 255).astype(np.uint8) for i in (base, other)]


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "lpips-fixtures"
    started = generated.start(__file__, out_dir, "expected.json", "pairs",
                              ["numpy", "onnx", "torch", "torchvision", "PIL.Image",
                               "skimage.metrics"], "a Python package is missing: ")
    if not started:
        return
    manifest_path, version = started
    import numpy as np
    import torch
    from PIL import Image
    from skimage.metrics import structural_similarity
    nets = {name: export_backbone(out_dir, name, ctor, taps) for name, ctor, taps in BACKBONES}
    rng = np.random.default_rng(7)
    pairs = []
    for index, (width, height) in enumerate(SIZES):
        images = make_images(rng, width, height)
        files = []
        for side, pixels in zip("ab", images):
            files.append("pair%d_%s.png" % (index, side))
            Image.fromarray(pixels).save(os.path.join(out_dir, files[-1]))
        gray = [np.asarray(Image.fromarray(p).convert("L")) for p in images]
        ssim = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                    data_range=255)
        case = {"a": files[0], "b": files[1], "width": width, "height": height,
                "ssim_rgb": structural_similarity(images[0], images[1], channel_axis=2, **ssim),
                "ssim_luma": structural_similarity(gray[0], gray[1], **ssim),
                "lpips": {}}
        x = torch.cat([image_tensor(p) for p in images])
        for name, (module, lins, _) in nets.items():
            with torch.no_grad():
                feats = module(x)
                total, spatial = lpips([f[:1] for f in feats], [f[1:] for f in feats], lins,
                                       (height, width))
            map_file = "pair%d_%s_map.npy" % (index, name)
            np.save(os.path.join(out_dir, map_file), spatial[0, 0].numpy().astype("<f4"))
            case["lpips"][name] = {"distance": float(total.flatten()[0]), "map": map_file}
        pairs.append(case)
    with open(manifest_path, "w") as f:
        json.dump({"version": version, "models": [b[0] for b in BACKBONES], "pairs": pairs}, f,
                  indent=1)


if __name__ == "__main__":
    main()
