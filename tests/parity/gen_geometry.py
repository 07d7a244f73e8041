"""Writes the geometry parity fixtures: inputs, torchvision's outputs and manifest.json.

Re-run (deterministic; needs Debian's python3 with torchvision 0.14, Pillow 9.4, numpy and
python3-skimage, which the pyenv python3 on PATH lacks):

    /usr/bin/python3 tests/parity/gen_geometry.py

It replaces tests/parity/fixtures/geometry/. tests/unit/test_ops_geometry.c replays every case in
manifest.json through engine/image/geometry.c and wants identical pixels: each case's
"budget_pixels" is the number of pixels allowed to differ, and every case here is exact (0).

Reference: torchvision.transforms.functional on PIL images (what AutoAugment and the transforms
call), with ShearX/ShearY/TranslateX/TranslateY spelled as torchvision's autoaugment._apply_op
spells them; "transform" and "resize_filter" are Pillow's own Image.transform(AFFINE) and
Image.resize with each of its filters (CTAugment's ops call them).
"""
import math
import os
import shutil
import sys

import numpy as np
import PIL
import skimage
import skimage.data
import torchvision
import torchvision.transforms.functional as F
from PIL import Image
from torchvision.transforms import InterpolationMode

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import augf  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "geometry")
INTERP = {"nearest": InterpolationMode.NEAREST, "bilinear": InterpolationMode.BILINEAR}


def make_inputs():
    """name -> uint8 array (HxW for L, HxWxC otherwise)."""
    astronaut = skimage.data.astronaut()
    photo = astronaut[80:128, 180:244].copy()  # 64x48, an eye: edges, texture, highlights
    rng = np.random.default_rng(20240601)
    # RGBA: another crop with alpha that ramps, has flat 0 and 255 areas, and noise.
    rgb = astronaut[300:332, 240:288]
    yy, xx = np.mgrid[0:32, 0:48]
    alpha = np.clip(xx * 6 + yy * 3 - 40 + rng.integers(-25, 26, (32, 48)), 0, 255)
    alpha[:6, :10] = 0
    alpha[-6:, -10:] = 255
    rgba = np.dstack([rgb, alpha.astype(np.uint8)])
    # Every (value, alpha) pair, for the premultiply round trip of RGBA bilinear ops.
    av, vv = np.mgrid[0:256, 0:86]
    rgba_all = np.dstack([np.minimum(3 * vv + c, 255) for c in range(3)] + [av]).astype(np.uint8)
    return {
        "photo": photo,
        "tiny": astronaut[200:201, 250:251].copy(),  # 1x1
        "gray": skimage.data.camera()[200:232, 230:262].copy(),  # 32x32 L: square fast paths
        "rgba": rgba,
        "odd": skimage.data.coffee()[150:173, 300:337].copy(),  # 37x23
        "rgba_all": rgba_all,
    }


def cases():
    """(input, op, args) in a fixed order; args are what the C API takes, named as in the JSON."""
    out = []

    def add(inp, op, **args):
        out.append((inp, op, args))

    for interp in ("nearest", "bilinear"):
        for deg in (0, 1, 30, -30, 45, 90, 180, 271.5, 359.9):
            add("photo", "rotate", degrees=deg, interp=interp, fill=None)
        for deg in (30, -77.7, 271.5):
            add("photo", "rotate", degrees=deg, interp=interp, fill=[255, 128, 0])
        for deg in (90, 270, 33, -45):
            add("gray", "rotate", degrees=deg, interp=interp, fill=None)
        add("gray", "rotate", degrees=20, interp=interp, fill=[200])
        for deg in (30, 90, 180):
            add("rgba", "rotate", degrees=deg, interp=interp, fill=[100, 50, 255, 128])
        add("rgba", "rotate", degrees=-15, interp=interp, fill=None)
        for deg in (90, 270, 33):
            add("odd", "rotate", degrees=deg, interp=interp, fill=None)
        add("tiny", "rotate", degrees=45, interp=interp, fill=None)

        add("photo", "affine", angle=20, translate=[3, -2], scale=1.2, shear=[10, -5],
            center=None, interp=interp, fill=None)
        add("photo", "affine", angle=-35, translate=[0.5, 7.25], scale=0.8, shear=[0, 0],
            center=None, interp=interp, fill=[0, 0, 255])
        add("photo", "affine", angle=15, translate=[0, 0], scale=1.0, shear=[0, 30],
            center=[10, 5], interp=interp, fill=None)
        # Corners past +-32768: PIL's floating-point nearest path instead of 16.16 fixed point.
        add("photo", "affine", angle=7, translate=[0, 0], scale=0.0005, shear=[0, 0],
            center=None, interp=interp, fill=None)
        # No rotation or shear: PIL's scale-only nearest path.
        add("photo", "affine", angle=0, translate=[-4, 3], scale=2.5, shear=[0, 0],
            center=None, interp=interp, fill=[9, 9, 9])
        add("rgba", "affine", angle=12, translate=[2, 1], scale=0.9, shear=[5, 5], center=None,
            interp=interp, fill=[30, 60, 90, 200])
        add("gray", "affine", angle=0, translate=[2.5, -1.5], scale=1.0, shear=[0, 0],
            center=None, interp=interp, fill=None)

        for m in (0.3, -0.3, -0.65):
            add("photo", "shear_x", factor=m, interp=interp, fill=None)
            add("photo", "shear_y", factor=m, interp=interp, fill=None)
        add("rgba", "shear_x", factor=0.3, interp=interp, fill=[255, 0, 0, 64])
        add("odd", "shear_y", factor=-0.5, interp=interp, fill=[1, 2, 3])
        add("gray", "shear_x", factor=0.99, interp=interp, fill=[77])

        add("photo", "translate_x", pixels=5, interp=interp, fill=None)
        add("photo", "translate_y", pixels=-7, interp=interp, fill=[0, 255, 0])
    for px in (-12, 10.7, -3.9, 100):
        add("photo", "translate_x", pixels=px, interp="nearest", fill=None)
    add("photo", "translate_y", pixels=30, interp="nearest", fill=None)
    add("rgba", "translate_y", pixels=4, interp="bilinear", fill=[10, 20, 30, 40])
    add("rgba_all", "affine", angle=0, translate=[0, 0], scale=1.0, shear=[0, 0], center=None,
        interp="bilinear", fill=None)

    for op in ("flip_lr", "flip_ud"):
        add("photo", op)
        add("rgba", op)
        add("odd", op)
    add("gray", "flip_lr")
    add("tiny", "flip_ud")

    for mode in ("constant", "edge", "reflect", "symmetric"):
        add("photo", "pad", padding=[4, 2, 6, 3], mode=mode, fill=None)
        add("photo", "pad", padding=[-3, 2, 5, -4], mode=mode, fill=None)
        add("tiny", "pad", padding=[2, 1, 3, 2], mode=mode, fill=None)
    for mode in ("reflect", "symmetric"):
        # Wider than the image: numpy's piecewise reflection.
        add("odd", "pad", padding=[50, 3, 41, 30], mode=mode, fill=None)
    add("photo", "pad", padding=[3, 3, 3, 3], mode="constant", fill=[255, 0, 128])
    add("rgba", "pad", padding=[5, 0, 2, 4], mode="constant", fill=[1, 2, 3, 4])
    add("gray", "pad", padding=[7, 7, 0, 1], mode="reflect", fill=None)

    add("photo", "crop", top=5, left=9, height=20, width=30)
    add("photo", "crop", top=-6, left=50, height=20, width=30)
    add("photo", "crop", top=60, left=-80, height=4, width=5)
    add("photo", "crop", top=-2, left=-3, height=55, width=70)
    add("rgba", "crop", top=-4, left=-4, height=12, width=60)
    add("gray", "crop", top=31, left=31, height=3, width=3)

    add("photo", "center_crop", height=21, width=31)
    add("photo", "center_crop", height=50, width=70)
    add("photo", "center_crop", height=60, width=20)
    add("odd", "center_crop", height=10, width=20)
    add("tiny", "center_crop", height=3, width=4)
    add("rgba", "center_crop", height=35, width=41)

    for interp in ("nearest", "bilinear"):
        for h, w in ((24, 32), (13, 20), (60, 80), (90, 48), (48, 17)):
            add("photo", "resize", height=h, width=w, interp=interp)
        add("rgba", "resize", height=16, width=20, interp=interp)
        add("rgba", "resize", height=40, width=56, interp=interp)
        add("gray", "resize", height=7, width=50, interp=interp)
        add("odd", "resize", height=40, width=64, interp=interp)
        add("tiny", "resize", height=5, width=7, interp=interp)
        add("photo", "resized_crop", top=5, left=8, height=30, width=40, out_height=24,
            out_width=24, interp=interp)
        add("photo", "resized_crop", top=-5, left=40, height=30, width=40, out_height=50,
            out_width=33, interp=interp)
        add("rgba", "resized_crop", top=2, left=3, height=20, width=20, out_height=9,
            out_width=31, interp=interp)
    for interp in ("nearest", "bilinear"):
        for m in ([1, 0.2, -3, 0.1, 0.9, 2], [1, -0.3, 0, 0, 1, 0], [0.7, 0.1, 10.5, -0.2, 1.3, -4]):
            add("photo", "transform", matrix=m, interp=interp, fill=None)
        add("rgba", "transform", matrix=[1, 0.25, -2, 0, 1, 0.5], interp=interp, fill=[9, 8, 7, 200])
    for f in FILTERS:
        for h, w in ((24, 32), (13, 20), (90, 48), (48, 17)):
            add("photo", "resize_filter", height=h, width=w, filter=f)
        add("rgba", "resize_filter", height=16, width=56, filter=f)
        add("gray", "resize_filter", height=7, width=50, filter=f)
        add("tiny", "resize_filter", height=5, width=7, filter=f)
    return out


# Image.resize's filters by the names the C test maps to enum img_filter.
FILTERS = {"nearest": Image.NEAREST, "box": Image.BOX, "bilinear": Image.BILINEAR,
           "hamming": Image.HAMMING, "bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS}


def pil_fill(fill):
    if fill is None:
        return None
    return fill[0] if len(fill) == 1 else list(fill)


def reference(img, op, a):
    """torchvision's result for one case, as a uint8 array."""
    if op in ("rotate", "affine", "shear_x", "shear_y", "translate_x", "translate_y"):
        interp, fill = INTERP[a["interp"]], pil_fill(a["fill"])
    if op == "rotate":
        out = F.rotate(img, a["degrees"], interp, fill=fill)
    elif op == "affine":
        out = F.affine(img, a["angle"], a["translate"], a["scale"], a["shear"], interp,
                       fill=fill, center=a["center"])
    elif op in ("shear_x", "shear_y"):
        deg = math.degrees(math.atan(a["factor"]))
        shear = [deg, 0.0] if op == "shear_x" else [0.0, deg]
        out = F.affine(img, 0.0, [0, 0], 1.0, shear, interp, fill=fill, center=[0, 0])
    elif op in ("translate_x", "translate_y"):
        t = int(a["pixels"])
        translate = [t, 0] if op == "translate_x" else [0, t]
        out = F.affine(img, 0.0, translate, 1.0, [0.0, 0.0], interp, fill=fill)
    elif op == "flip_lr":
        out = F.hflip(img)
    elif op == "flip_ud":
        out = F.vflip(img)
    elif op == "pad":
        fill = 0 if a["fill"] is None else pil_fill(a["fill"])
        out = F.pad(img, a["padding"], fill=fill, padding_mode=a["mode"])
    elif op == "crop":
        out = F.crop(img, a["top"], a["left"], a["height"], a["width"])
    elif op == "center_crop":
        out = F.center_crop(img, [a["height"], a["width"]])
    elif op == "resize":
        out = F.resize(img, [a["height"], a["width"]], INTERP[a["interp"]])
    elif op == "resized_crop":
        out = F.resized_crop(img, a["top"], a["left"], a["height"], a["width"],
                             [a["out_height"], a["out_width"]], INTERP[a["interp"]])
    elif op == "transform":
        resample = Image.NEAREST if a["interp"] == "nearest" else Image.BILINEAR
        fill = pil_fill(a["fill"])
        out = img.transform(img.size, Image.AFFINE, a["matrix"], resample,
                            fillcolor=tuple(fill) if isinstance(fill, list) else fill)
    elif op == "resize_filter":
        out = img.resize((a["width"], a["height"]), FILTERS[a["filter"]])
    else:
        raise ValueError(op)
    return np.asarray(out)


def case_name(inp, op, a):
    parts = [op, inp]
    for k, v in a.items():
        if v is None:
            continue
        if isinstance(v, list):
            v = "x".join(str(x) for x in v)
        parts.append(f"{k}{v}")
    name = "_".join(str(p) for p in parts)
    return name.replace("-", "m").replace(".", "p")


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    inputs = make_inputs()
    manifest = {
        "generator": "tests/parity/gen_geometry.py",
        "reference": {
            "torchvision": torchvision.__version__,
            "pillow": PIL.__version__,
            "numpy": np.__version__,
            "skimage": skimage.__version__,
        },
        "inputs": {},
        "cases": [],
    }
    for name, arr in inputs.items():
        augf.write(os.path.join(OUT, f"in_{name}.augf"), arr)
        manifest["inputs"][name] = f"in_{name}.augf"
    seen = set()
    for inp, op, args in cases():
        name = case_name(inp, op, args)
        assert name not in seen, name
        seen.add(name)
        expected = reference(Image.fromarray(inputs[inp]), op, args)
        augf.write(os.path.join(OUT, f"{name}.augf"), expected)
        manifest["cases"].append({
            "name": name,
            "op": op,
            "input": f"in_{inp}.augf",
            "args": args,
            "expected": f"{name}.augf",
            "budget_pixels": 0,
        })
    augf.write_manifest(OUT, manifest)


if __name__ == "__main__":
    main()
