"""Parity fixtures for CTAugment (engine/policy/ctaugment*.c), checked by
tests/unit/test_ctaugment.c.

The reference is google-research/fixmatch's libml/ctaugment.py: its op functions (Pillow 9.4
calls) and its CTAugment class's rate_to_p and update_rates, transcribed below, with the
settings cta/lib/train.py passes (depth 2, decay 0.99, threshold 0.8). Re-run with Debian's
Python, which has numpy, Pillow and skimage:

    /usr/bin/python3 tests/parity/gen_ctaugment.py

It is deterministic: it empties tests/parity/fixtures/ctaugment/ and writes
- manifest.json and AUGF images: every op at several levels (and a few two-op policies) on two
  images, as fixture.h's manifest, the op "ctaug" with args {"policy": [[name, [values]], ...]};
- algorithm.json: a fixed sequence of feedback updates from the initial state, the rates after
  it and every argument's probabilities (rate_to_p, then p / p.sum()), computed with the
  reference's float32 arrays.
Before writing, it asserts the integer forms of ImageFilter.BLUR and SMOOTH that
engine/image/filter.c uses against Pillow.
"""
import json
import os

import numpy as np
import PIL
import skimage.data
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

import augf

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "ctaugment")

# ---- The reference's ops, transcribed (cutout draws its centre, so its pixels are checked by
# hand in the C test instead). ----


def _enhance(x, op, level):
    return op(x).enhance(0.1 + 1.9 * level)


def _imageop(x, op, level):
    return Image.blend(x, op(x), level)


def _filter(x, op, level):
    return Image.blend(x, x.filter(op), level)


def autocontrast(x, level):
    return _imageop(x, ImageOps.autocontrast, level)


def blur(x, level):
    return _filter(x, ImageFilter.BLUR, level)


def brightness(x, b):
    return _enhance(x, ImageEnhance.Brightness, b)


def color(x, c):
    return _enhance(x, ImageEnhance.Color, c)


def contrast(x, c):
    return _enhance(x, ImageEnhance.Contrast, c)


def equalize(x, level):
    return _imageop(x, ImageOps.equalize, level)


def invert(x, level):
    return _imageop(x, ImageOps.invert, level)


def identity(x):
    return x


def posterize(x, level):
    return ImageOps.posterize(x, 1 + int(level * 7.999))


def rescale(x, scale, method):
    s = x.size
    scale *= 0.25
    crop = (scale * s[0], scale * s[1], s[0] * (1 - scale), s[1] * (1 - scale))
    methods = (Image.LANCZOS, Image.BICUBIC, Image.BILINEAR, Image.BOX, Image.HAMMING,
               Image.NEAREST)  # the reference's first, Image.ANTIALIAS, is LANCZOS
    return x.crop(crop).resize(x.size, methods[int(method * 5.99)])


def rotate(x, angle):
    return x.rotate(int(np.round((2 * angle - 1) * 45)))


def sharpness(x, s):
    return _enhance(x, ImageEnhance.Sharpness, s)


def shear_x(x, shear):
    shear = (2 * shear - 1) * 0.3
    return x.transform(x.size, Image.AFFINE, (1, shear, 0, 0, 1, 0))


def shear_y(x, shear):
    shear = (2 * shear - 1) * 0.3
    return x.transform(x.size, Image.AFFINE, (1, 0, 0, shear, 1, 0))


def smooth(x, level):
    return _filter(x, ImageFilter.SMOOTH, level)


def solarize(x, th):
    return ImageOps.solarize(x, int(th * 255.999))


def translate_x(x, delta):
    delta = (2 * delta - 1) * 0.3
    return x.transform(x.size, Image.AFFINE, (1, 0, delta, 0, 1, 0))


def translate_y(x, delta):
    delta = (2 * delta - 1) * 0.3
    return x.transform(x.size, Image.AFFINE, (1, 0, 0, 0, 1, delta))


# name: (function, bins per argument), in the reference's registration order.
OPS = {
    "autocontrast": (autocontrast, (17,)),
    "blur": (blur, (17,)),
    "brightness": (brightness, (17,)),
    "color": (color, (17,)),
    "contrast": (contrast, (17,)),
    "cutout": (None, (17,)),
    "equalize": (equalize, (17,)),
    "invert": (invert, (17,)),
    "identity": (identity, ()),
    "posterize": (posterize, (8,)),
    "rescale": (rescale, (17, 6)),
    "rotate": (rotate, (17,)),
    "sharpness": (sharpness, (17,)),
    "shear_x": (shear_x, (17,)),
    "shear_y": (shear_y, (17,)),
    "smooth": (smooth, (17,)),
    "solarize": (solarize, (17,)),
    "translate_x": (translate_x, (17,)),
    "translate_y": (translate_y, (17,)),
}

# ---- The reference's CTAugment arithmetic, transcribed. ----
DECAY, THRESHOLD = 0.99, 0.80


def rate_to_p(rate):
    p = rate + (1 - DECAY)
    p = p / p.max()
    p[p < THRESHOLD] = 0
    return p


def update_rates(rates, policy, proximity):
    for k, bins in policy:
        for p, rate in zip(bins, rates[k]):
            p = int(p * len(rate) * 0.999)
            rate[p] = rate[p] * DECAY + proximity * (1 - DECAY)


def updates():
    """A fixed sequence: poor feedback on rotate's and rescale's high bins and on posterize, good
    feedback elsewhere, enough of it to push bins across the threshold and some right next to it;
    values at a bin's lower edge exercise the 0.999 in update_rates (16.01 / 17 updates bin 15)."""
    rng = np.random.default_rng(20)
    seq = []
    for step in range(200):
        if step % 4 == 0:
            policy = [["rotate", [(13 + rng.random()) / 17]], ["rescale", [(16.01) / 17, 0.95]]]
            proximity = 0.1 + 0.05 * rng.random()
        elif step % 4 == 1:
            policy = [["posterize", [(int(rng.integers(0, 3)) + rng.random()) / 8]],
                      ["identity", []]]
            proximity = 0.2
        elif step % 4 == 2:
            policy = [["rotate", [rng.random()]], ["shear_x", [rng.random()]]]
            proximity = 0.9 + 0.1 * rng.random()
        else:
            policy = [["rotate", [rng.random()]], ["rotate", [rng.random()]]]
            proximity = float(rng.random())
        seq.append({"policy": policy, "proximity": proximity})
    return seq


def probabilities(rates):
    out = {}
    for k, rs in rates.items():
        out[k] = []
        for r in rs:
            p = rate_to_p(r)
            out[k].append([float(v) for v in p / p.sum()])
    return out


def as_lists(rates):
    return {k: [[float(v) for v in r] for r in rs] for k, rs in rates.items()}


def edge_rates():
    """rotate's rates around the threshold: with a top rate of 1, p / max(p) is
    (r + 0.01) / 1.01, which is 0.8 at r = 0.798; float32 rounding puts each of these on one side
    or the other, and the reference's side is the one to match. Solarize has a single bin left."""
    rates = {k: tuple(np.ones(n, "f") for n in bins) for k, (_, bins) in OPS.items()}
    rates["rotate"][0][:] = [1, 0.798, 0.79799, 0.79801, 0.7979999, 0.7980001, 0.5, 0, 0.9,
                             0.81, 0.8, 0.79, 0.798, 0.798, 0.7981, 0.7979, 1]
    rates["solarize"][0][:] = 0
    rates["solarize"][0][3] = 0.25
    return rates


def algorithm():
    settings = {"depth": 2, "decay": DECAY, "threshold": THRESHOLD}
    rates = {k: tuple(np.ones(n, "f") for n in bins) for k, (_, bins) in OPS.items()}
    seq = updates()
    for u in seq:
        update_rates(rates, u["policy"], u["proximity"])
    edge = edge_rates()
    return {
        "generator": "tests/parity/gen_ctaugment.py",
        "settings": settings,
        "updates": seq,
        "rates": as_lists(rates),
        "probabilities": probabilities(rates),
        "edge_state": {**settings, "rates": as_lists(edge)},
        "edge_probabilities": probabilities(edge),
    }


def check_filters():
    """BLUR is (ring sum of the 5x5 square + 8) // 16 and SMOOTH (3x3 sum + 4 centre + 6) // 13
    inside, the source on a 2- and 1-wide border and in images smaller than the kernel; all
    bands, alpha too."""
    rng = np.random.default_rng(7)
    for mode, c in (("L", 1), ("RGB", 3), ("RGBA", 4)):
        for h, w in ((1, 1), (2, 9), (4, 9), (9, 4), (5, 5), (30, 41)):
            a = rng.integers(0, 256, (h, w, c), dtype=np.uint8)
            a[: h // 2] = rng.choice(np.array([0, 255], np.uint8), (h // 2, w, c))
            im = Image.fromarray(a[:, :, 0] if c == 1 else a, mode)
            A = a.astype(np.int64)
            for filt, r, d, centre in ((ImageFilter.BLUR, 2, 16, 0), (ImageFilter.SMOOTH, 1, 13, 4)):
                want = A.copy()
                if h > 2 * r and w > 2 * r:
                    n = sum(A[r + dy : h - r + dy, r + dx : w - r + dx]
                            for dy in range(-r, r + 1) for dx in range(-r, r + 1)
                            if r == 1 or max(abs(dy), abs(dx)) == 2)
                    n = n + centre * A[r : h - r, r : w - r]
                    want[r : h - r, r : w - r] = (n + d // 2) // d
                got = np.array(im.filter(filt)).reshape(h, w, c)
                assert np.array_equal(got, want), (filt.name, mode, h, w)


def inputs():
    astro = skimage.data.astronaut()[100:132, 200:232]  # 32x32, CIFAR's size: a face
    y, x = np.mgrid[0:23, 0:37]
    odd = np.dstack([(x * 7 + y * 3) % 256, (x * y) % 256, (255 - x * 5 - y * 9) % 256])
    return {"astro32": astro, "odd37x23": odd.astype(np.uint8)}


LEVELS = [0.0, 0.1, 0.37, 0.5, 0.74, 0.999]


def cases():
    out = []
    for name, (f, bins) in OPS.items():
        if f is None:
            continue
        if not bins:
            out.append([[name, []]])
        elif len(bins) == 1:
            out += [[[name, [l]]] for l in LEVELS]
        else:
            out += [[[name, [s, (m + 0.5) / 6]]] for s in (0.0, 0.3, 0.77, 0.999) for m in range(6)]
    # rotate's angle at halves (np.round to even): (2 l - 1) * 45 = -22.5 and 0.5.
    out += [[["rotate", [(1 - 22.5 / 45) / 2]]], [["rotate", [(1 + 0.5 / 45) / 2]]]]
    # rescale's method at int(m * 5.99)'s edges.
    out += [[["rescale", [0.5, 5 / 6]]], [["rescale", [0.5, 5.01 / 6]]]]
    out += [[["rotate", [0.9]], ["equalize", [0.6]]], [["rescale", [0.6, 0.1]], ["smooth", [0.8]]],
            [["shear_y", [0.05]], ["solarize", [0.3]]]]
    return out


def main():
    check_filters()
    augf.fresh(OUT)
    save = augf.saver(OUT)

    arrays = inputs()
    images = {name: save(name + ".augf", a) for name, a in arrays.items()}
    manifest_cases = []
    for i, policy in enumerate(cases()):
        for name, a in arrays.items():
            y = Image.fromarray(a)
            for op, args in policy:
                y = OPS[op][0](y, *args)
            stem = "_".join(op for op, _ in policy)
            manifest_cases.append({
                "name": f"{json.dumps(policy)} on {name}",
                "op": "ctaug",
                "args": {"policy": policy},
                "input": images[name],
                "expected": save(f"{stem}_{i}_{name}.augf", np.array(y)),
            })
    augf.write_manifest(OUT, {
        "generator": "tests/parity/gen_ctaugment.py",
        "reference": {"libml/ctaugment.py": "google-research/fixmatch", "Pillow": PIL.__version__,
                      "numpy": np.__version__},
        "cases": manifest_cases,
    })
    with open(os.path.join(OUT, "algorithm.json"), "w") as f:
        json.dump(algorithm(), f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
