"""Parity fixtures for images with an embedded ICC profile (Adobe RGB, Display P3): what
torchvision makes of Pillow's decode of each tagged file under every op that has a torchvision
reference and no random draw, checked by tests/integration/test_colour.c through POST /v1/augment
with the default color=keep, so the whole path (decode, op, PNG out) must give these pixels bit for
bit, and the PNG must carry the input's profile.

The inputs are gen_codec.py's tagged files (tests/parity/fixtures/codec/*_icc_*), read here as
Pillow reads them, profile ignored. The references are the ones the op parity tests use:
gen_color.OPS (torchvision 0.14's functional on PIL images), gen_geometry.reference (with
ShearX/ShearY/TranslateX/TranslateY spelled as torchvision's autoaugment._apply_op spells them) and
gen_noise.gaussian_blur (F.gaussian_blur). Ops whose arguments are drawn at random (the random
crops and erasing, the noise ops) are left out: their draws come from the engine's own streams.

Re-run with Debian's Python, which has torch, torchvision, Pillow and skimage:

    /usr/bin/python3 tests/parity/gen_tagged.py

It is deterministic: it empties tests/parity/fixtures/tagged/ and writes the same AUGF files and
manifest.json again.
"""
import os
import sys

import numpy as np
import PIL
import torchvision
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import augf  # noqa: E402
import gen_color  # noqa: E402
import gen_geometry  # noqa: E402
import gen_noise  # noqa: E402

OUT = os.path.join(HERE, "fixtures", "tagged")
CODEC = os.path.join(HERE, "fixtures", "codec")
# Tagged file -> its profile (both under fixtures/codec): each decoder's path (TurboJPEG,
# libspng) and each profile once; the profile never changes the values kept, which the codec's
# own tests check for the other pairs.
INPUTS = {
    "jpeg_icc_adobe.jpg": "adobe.icc",
    "png_icc_p3.png": "p3.icc",
}


def geometry(op, **args):
    return lambda im: gen_geometry.reference(im, op, args)


# (policy node, reference on the PIL image): every op node spells its arguments, so no default
# of either side decides the result.
CASES = [
    ({"op": "Identity"}, lambda im: im),
    ({"op": "AutoContrast"}, gen_color.OPS["autocontrast"]),
    ({"op": "Equalize"}, gen_color.OPS["equalize"]),
    ({"op": "Invert"}, gen_color.OPS["invert"]),
    ({"op": "Grayscale"}, lambda im: gen_color.OPS["grayscale"](im, keep_channels=1)),
    ({"op": "Posterize", "bits": 3}, lambda im: gen_color.OPS["posterize"](im, 3)),
    ({"op": "Solarize", "threshold": 100}, lambda im: gen_color.OPS["solarize"](im, 100.0)),
    ({"op": "Brightness", "factor": 1.6}, lambda im: gen_color.OPS["brightness"](im, 1.6)),
    ({"op": "Color", "factor": 0.4}, lambda im: gen_color.OPS["color"](im, 0.4)),
    ({"op": "Contrast", "factor": 1.7}, lambda im: gen_color.OPS["contrast"](im, 1.7)),
    ({"op": "Sharpness", "factor": 1.9}, lambda im: gen_color.OPS["sharpness"](im, 1.9)),
    ({"op": "Rotate", "degrees": 30, "interpolation": "bilinear", "fill": [10, 20, 30]},
     geometry("rotate", degrees=30, interp="bilinear", fill=[10, 20, 30])),
    ({"op": "ShearX", "factor": 0.3, "interpolation": "bilinear"},
     geometry("shear_x", factor=0.3, interp="bilinear", fill=None)),
    ({"op": "ShearY", "factor": -0.2, "interpolation": "nearest"},
     geometry("shear_y", factor=-0.2, interp="nearest", fill=None)),
    ({"op": "TranslateX", "pixels": 7, "interpolation": "nearest"},
     geometry("translate_x", pixels=7, interp="nearest", fill=None)),
    ({"op": "TranslateY", "pixels": -5, "interpolation": "nearest"},
     geometry("translate_y", pixels=-5, interp="nearest", fill=None)),
    ({"op": "FlipLR"}, geometry("flip_lr")),
    ({"op": "FlipUD"}, geometry("flip_ud")),
    ({"op": "CenterCrop", "height": 20, "width": 24},
     geometry("center_crop", height=20, width=24)),
    ({"op": "Resize", "height": 23, "width": 31, "interpolation": "bilinear"},
     geometry("resize", height=23, width=31, interp="bilinear")),
    ({"op": "Pad", "left": 3, "top": 2, "right": 4, "bottom": 1, "mode": "reflect"},
     geometry("pad", padding=[3, 2, 4, 1], mode="reflect", fill=None)),
    ({"op": "GaussianBlur", "sigma": 1.2, "kernel_size": 5},
     lambda im: Image.fromarray(gen_noise.gaussian_blur(np.asarray(im), 5, 1.2, 1.2))),
]


def main():
    os.makedirs(OUT, exist_ok=True)
    for name in os.listdir(OUT):
        os.remove(os.path.join(OUT, name))
    cases = []
    for file, icc in INPUTS.items():
        im = Image.open(os.path.join(CODEC, file))
        im.load()
        with open(os.path.join(CODEC, icc), "rb") as f:
            assert im.info["icc_profile"] == f.read(), file
        assert im.mode == "RGB", file
        for node, reference in CASES:
            expected = "%s_%s.augf" % (file.rsplit(".", 1)[0], node["op"].lower())
            augf.write(os.path.join(OUT, expected), np.asarray(reference(im)))
            cases.append({"input": file, "icc": icc, "policy": node, "expected": expected})
    manifest = {
        "generator": "tests/parity/gen_tagged.py",
        "reference": {"torchvision": torchvision.__version__, "Pillow": PIL.__version__},
        "cases": cases,
    }
    augf.write_manifest(OUT, manifest)


if __name__ == "__main__":
    main()
