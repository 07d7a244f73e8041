"""Parity fixtures for the colour ops of engine/image/color.c, checked by
tests/unit/test_ops_color.c.

The reference is torchvision 0.14's transforms.functional on PIL images (Pillow 9.4); SolarizeAdd,
which torchvision lacks, follows timm's data/auto_augment.py solarize_add; blur and smooth, the
filters of engine/image/filter.c, are Pillow's ImageFilter.BLUR and SMOOTH. Re-run from anywhere
with Debian's Python, which has torch, torchvision, Pillow and skimage (the pyenv python3 on PATH
has no torch):

    /usr/bin/python3 tests/parity/gen_color.py

It is deterministic: it empties tests/parity/fixtures/color/ and writes the same AUGF files and
manifest.json again. Before writing, it checks the integer and float formulas that color.c
relies on against Pillow itself, so a different Pillow fails here rather than in the C tests.
"""
import os

import numpy as np
import PIL
import skimage.data
import torchvision
import torchvision.transforms.functional as F
from PIL import Image, ImageFilter, ImageStat

import augf

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "color")
MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def to_pil(a):
    return Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a, MODES[a.shape[2]])


def to_array(im):
    a = np.array(im, dtype=np.uint8)
    return a[:, :, None] if a.ndim == 2 else a


def solarize_add(im, addition, threshold):
    """timm's solarize_add: a LUT of min(255, i + addition) below the threshold, which point()
    also clips at 0; images that are not L or RGB come back unchanged."""
    if im.mode not in ("L", "RGB"):
        return im
    lut = [min(255, i + addition) if i < threshold else i for i in range(256)]
    return im.point(lut * len(im.getbands()))


def grayscale(im, keep_channels):
    """keep_channels=1 is RandomGrayscale: as many output channels as the input has."""
    return F.rgb_to_grayscale(im, len(im.getbands()) if keep_channels else 1)


OPS = {
    "invert": lambda im: F.invert(im),
    "posterize": lambda im, bits: F.posterize(im, bits),
    "solarize": lambda im, threshold: F.solarize(im, threshold),
    "solarize_add": solarize_add,
    "brightness": lambda im, factor: F.adjust_brightness(im, factor),
    "color": lambda im, factor: F.adjust_saturation(im, factor),
    "contrast": lambda im, factor: F.adjust_contrast(im, factor),
    "sharpness": lambda im, factor: F.adjust_sharpness(im, factor),
    "autocontrast": lambda im: F.autocontrast(im),
    "equalize": lambda im: F.equalize(im),
    "grayscale": grayscale,
    "blur": lambda im: im.filter(ImageFilter.BLUR),
    "smooth": lambda im: im.filter(ImageFilter.SMOOTH),
}

FACTORS = [0.0, 0.5, 1.0, 1.9, 3.7]
ARGS = {
    "invert": [{}],
    "posterize": [{"bits": b} for b in (0, 1, 4, 7, 8)],
    "solarize": [{"threshold": t} for t in (0.0, 64.5, 128.0, 255.0, 256.0)],
    "solarize_add": [
        {"addition": a, "threshold": t}
        for a, t in ((0, 128), (30, 128), (110, 128), (-40, 128), (255, 256), (50, 0))
    ],
    "brightness": [{"factor": f} for f in FACTORS],
    "color": [{"factor": f} for f in (0.0, 0.3, 1.0, 1.9)],
    "contrast": [{"factor": f} for f in (0.0, 0.5, 1.0, 1.9)],
    "sharpness": [{"factor": f} for f in FACTORS],
    "autocontrast": [{}],
    "equalize": [{}],
    "grayscale": [{"keep_channels": k} for k in (0, 1)],
    "blur": [{}],
    "smooth": [{}],
}


def inputs():
    rng = np.random.default_rng(20240611)
    astro = skimage.data.astronaut()[90:138, 190:254]  # 64x48: a face, eyes and skin tones
    alpha = (np.add.outer(np.arange(48) * 5, np.arange(64) * 3) + rng.integers(0, 40, (48, 64)))
    every = np.arange(256, dtype=np.uint8).reshape(16, 16)
    # Mostly 0 with a few brighter samples: equalize's table then exceeds 255 and is clipped.
    skew = np.zeros((16, 20, 3), np.uint8)
    skew[0, :6] = [[1, 9, 200], [2, 9, 200], [3, 9, 255], [4, 10, 255], [5, 10, 255], [6, 11, 255]]
    return {
        "astro": astro,
        "astro_l": to_array(Image.fromarray(astro).convert("L")),
        "astro_rgba": np.dstack([astro, (alpha % 256).astype(np.uint8)]),
        "flat": np.full((6, 8, 3), 97, np.uint8),
        "one": np.array([[[200, 30, 90]]], np.uint8),
        "thin": rng.integers(0, 256, (2, 5, 3), dtype=np.uint8),
        "every": np.dstack([every, rng.permutation(256).astype(np.uint8).reshape(16, 16),
                            rng.permutation(256).astype(np.uint8).reshape(16, 16)]),
        "every_l": every[:, :, None],
        "skew": skew,
    }


def check_formulas():
    """The facts color.c builds on, asserted against Pillow: the grayscale formula for every
    colour, the blend for every pair of samples at 310 factors, SMOOTH and the contrast mean on
    samples."""
    v = np.arange(1 << 24, dtype=np.uint32)
    rgb = np.stack([v >> 16 & 255, v >> 8 & 255, v & 255], -1).astype(np.uint8)
    rgb = rgb.reshape(4096, 4096, 3)
    r, g, b = (rgb[:, :, i].astype(np.int64) for i in range(3))
    gray = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16
    assert np.array_equal(np.array(Image.fromarray(rgb).convert("L")), gray), "convert('L')"

    # Image.blend(im1, im2, f) = trunc(clip(im1 + f * (im2 - im1))) evaluated in C float.
    s = np.repeat(np.arange(256, dtype=np.uint8), 256).reshape(256, 256)
    t = s.T.copy()
    for f in [0.0, 0.1, 0.3, 0.5, 1.0, 1.1, 1.9, 3.7, 1e-8, 1e6] + [k / 97 for k in range(300)]:
        f32 = np.float32(f)
        x = s.astype(np.float32) + f32 * (t.astype(np.float32) - s.astype(np.float32))
        want = np.trunc(np.clip(x, 0, 255)).astype(np.uint8)
        got = np.array(Image.blend(Image.fromarray(s), Image.fromarray(t), f))
        assert np.array_equal(got, want), f"Image.blend at {f}"

    # ImageFilter.SMOOTH: (sum of the 3x3 neighbourhood + 4 * centre + 6) // 13 inside, the
    # source on the border and everywhere in images narrower or shorter than 3.
    rng = np.random.default_rng(5)
    for h, w in ((1, 1), (2, 9), (9, 2), (3, 3), (40, 50)):
        a = rng.integers(0, 256, (h, w), dtype=np.uint8)
        a[: h // 2] = rng.choice(np.array([0, 255], np.uint8), (h // 2, w))
        want = a.astype(np.int64)
        if h >= 3 and w >= 3:
            n = sum(want[1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx]
                    for dy in (-1, 0, 1) for dx in (-1, 0, 1))
            want[1:-1, 1:-1] = (n + 4 * want[1:-1, 1:-1] + 6) // 13
        assert np.array_equal(np.array(Image.fromarray(a).filter(ImageFilter.SMOOTH)), want)

    # ImageEnhance.Contrast's mean: int(mean + 0.5) = (2 * sum + count) // (2 * count).
    for h, w in ((1, 1), (3, 5), (17, 13)):
        halves = rng.choice(np.array([10, 11], np.uint8), (h, w))  # means near x.5
        for a in (rng.integers(0, 256, (h, w), dtype=np.uint8), halves):
            mean = int(ImageStat.Stat(Image.fromarray(a)).mean[0] + 0.5)
            assert mean == (2 * int(a.sum()) + a.size) // (2 * a.size), "contrast mean"


def arg_name(args):
    return "_".join(f"{k}{v:g}" if isinstance(v, float) else f"{k}{v}" for k, v in args.items())


def main():
    check_formulas()
    augf.fresh(OUT)
    save = augf.saver(OUT)

    arrays = inputs()
    images = {name: save(name + ".augf", a) for name, a in arrays.items()}
    cases = []
    for op, arg_list in ARGS.items():
        for args in arg_list:
            for name, a in arrays.items():
                case = {"op": op, "args": args, "input": images[name]}
                try:
                    out = to_array(OPS[op](to_pil(a), **args))
                except (OSError, ValueError) as e:
                    case["expected"] = None
                    case["raises"] = f"{type(e).__name__}: {e}"
                else:
                    stem = "_".join(filter(None, [op, arg_name(args), name]))
                    case["expected"] = save(stem + ".augf", out)
                cases.append(case)

    manifest = {
        "generator": "tests/parity/gen_color.py",
        "reference": {"torchvision": torchvision.__version__, "Pillow": PIL.__version__},
        "cases": cases,
    }
    augf.write_manifest(OUT, manifest)


if __name__ == "__main__":
    main()
