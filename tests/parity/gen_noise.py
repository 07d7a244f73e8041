"""Parity fixtures for the erasing, noise and blur ops of engine/image/noise.c, checked by
tests/unit/test_ops_noise.c.

References:
- cutout: uoguelph-mlrg/Cutout (DeVries & Taylor 2017): y1 = clip(cy - size // 2, 0, h),
  y2 = clip(cy + size // 2, 0, h), the same for x, and the box set to the fill.
- erase: torchvision 0.14 F.erase on F.pil_to_tensor. Boxes starting above or left of the image
  are clipped to it first: F.erase would slice from the end instead (Python's negative indices).
- gaussian_noise, patch_gaussian, random erase: the pipeline to_tensor -> add noise -> clamp(0, 1)
  -> to_pil_image, which converts back with mul(255).byte(), i.e. truncation. The noise samples
  come from the engine's own Philox streams (engine/core/rng.c, re-implemented below and checked
  against Random123's known answers), so these cases pin the arithmetic and the draw order.
- fourier: Yin et al. 2019's basis: the real part of np.fft.ifft2 of a spectrum that is 1 at
  (i, j) and at (-i, -j), scaled to unit L2 norm, added as eps * sign[c] to channel c.
- gaussian_blur: torchvision 0.14 F.gaussian_blur on a PIL image (torch 1.13's CPU tensor path).
  Before writing, this script asserts that torch's conv2d gives exactly what noise.c computes:
  per output sample, a float32 fused multiply-add over the 2-D kernel in row-major order. The
  1-D kernels torch builds are written to the manifest so the C test can compare its own.
Alpha: every op leaves an RGBA image's alpha as it is; the references are applied to the colour
channels.

Re-run from anywhere with Debian's Python, which has torch, torchvision, Pillow and skimage (the
pyenv python3 on PATH has no torch):

    /usr/bin/python3 tests/parity/gen_noise.py

It is deterministic: it empties tests/parity/fixtures/noise/ and writes the same AUGF files and
manifest.json again.
"""
import json
import math
import os

import numpy as np
import PIL
import skimage.data
import torch
import torchvision
import torchvision.transforms.functional as F
from PIL import Image
from torch.nn.functional import conv2d, pad as torch_pad
from torchvision.transforms import functional_tensor as F_t

import augf

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "noise")
MODES = {1: "L", 3: "RGB", 4: "RGBA"}
MASK32 = 0xFFFFFFFF


class Philox:
    """engine/core/rng.c: Philox4x32-10 keyed by the seed, counter (block, input, sample, stream)."""

    def __init__(self, seed, input_index, sample, stream):
        self.key = [seed & MASK32, seed >> 32 & MASK32]
        self.counter = [0, input_index, sample, stream]
        self.block = []

    @staticmethod
    def block_function(counter, key):
        c0, c1, c2, c3 = counter
        k0, k1 = key
        for _ in range(10):
            p0, p1 = 0xD2511F53 * c0, 0xCD9E8D57 * c2
            c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & MASK32, (p0 >> 32) ^ c3 ^ k1, p0 & MASK32
            k0, k1 = (k0 + 0x9E3779B9) & MASK32, (k1 + 0xBB67AE85) & MASK32
        return [c0, c1, c2, c3]

    def u32(self):
        if not self.block:
            self.block = self.block_function(self.counter, self.key)
            self.counter[0] += 1
        return self.block.pop(0)

    def uniform(self):
        hi, lo = self.u32() >> 5, self.u32() >> 6
        return (hi * 67108864 + lo) / 9007199254740992.0

    def below(self, n):
        m = self.u32() * n
        if m & MASK32 < n:
            threshold = (-n & MASK32) % n
            while m & MASK32 < threshold:
                m = self.u32() * n
        return m >> 32

    def normal(self):
        # Python's math calls the same libm log and cos as the C code.
        u1, u2 = 1.0 - self.uniform(), self.uniform()
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def check_philox():
    kat = [([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
           ([MASK32] * 4, [MASK32] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
           ([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0],
            [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1])]
    for counter, key, want in kat:
        assert Philox.block_function(counter, key) == want, "Philox known answer"


def to_pil(a):
    return Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a, MODES[a.shape[2]])


def to_array(im):
    a = np.array(im, dtype=np.uint8)
    return a[:, :, None] if a.ndim == 2 else a


def colour(a):
    """The colour channels and the alpha plane (None without one)."""
    return (a[:, :, :3], a[:, :, 3:]) if a.shape[2] == 4 else (a, None)


def with_alpha(c, alpha):
    return c if alpha is None else np.dstack([c, alpha])


def clipped_box(c, size, n):
    """The reference Cutout's rows or columns: clip(c - size // 2, 0, n) up to
    clip(c + size // 2, 0, n)."""
    return int(np.clip(c - size // 2, 0, n)), int(np.clip(c + size // 2, 0, n))


def cutout(a, cx, cy, size, fill):
    h, w = a.shape[:2]
    y1, y2 = clipped_box(cy, size, h)
    x1, x2 = clipped_box(cx, size, w)
    c, alpha = colour(a)
    mask = np.ones((h, w, 1), np.uint8)
    mask[y1:y2, x1:x2] = 0
    fill = np.array(fill[: c.shape[2]], np.uint8)
    return with_alpha(np.where(mask == 1, c, fill), alpha)


def erase(a, top, left, height, width, value):
    c, alpha = colour(a)
    bottom, right = top + height, left + width
    top, left = max(top, 0), max(left, 0)
    t = F.pil_to_tensor(to_pil(c))
    v = torch.tensor(value[: c.shape[2]], dtype=torch.uint8).view(-1, 1, 1)
    if bottom > top and right > left:
        t = F.erase(t, top, left, bottom - top, right - left, v)
    return with_alpha(to_array(F.to_pil_image(t)), alpha)


def random_erase(a, top, left, height, width, rng):
    """Each colour sample of the clipped box, row by row and channel by channel, set to
    rng_below(256)."""
    c, alpha = colour(a)
    out = c.copy()
    h, w = c.shape[:2]
    for y in range(max(top, 0), min(top + height, h)):
        for x in range(max(left, 0), min(left + width, w)):
            for k in range(c.shape[2]):
                out[y, x, k] = rng.below(256)
    return with_alpha(out, alpha)


def add_to_tensor(c, noise):
    """to_tensor -> + noise (float32, HWC) -> clamp(0, 1) -> to_pil_image."""
    t = F.to_tensor(to_pil(c))
    t = (t + torch.from_numpy(np.ascontiguousarray(noise.transpose(2, 0, 1)))).clamp(0, 1)
    return to_array(F.to_pil_image(t))


def gaussian_noise(a, sigma, rng, box=None):
    """Noise n = float32(sigma * z), one rng_normal z per colour sample in row-major,
    channel-interleaved order, only inside box (y1, y2, x1, x2) when given."""
    c, alpha = colour(a)
    h, w, nc = c.shape
    y1, y2, x1, x2 = box or (0, h, 0, w)
    noise = np.zeros(c.shape, np.float32)
    for y in range(y1, y2):
        for x in range(x1, x2):
            for k in range(nc):
                noise[y, x, k] = np.float32(sigma * rng.normal())
    return with_alpha(add_to_tensor(c, noise), alpha)


def patch_gaussian(a, cx, cy, patch_size, sigma, rng):
    h, w = a.shape[:2]
    box = clipped_box(cy, patch_size, h) + clipped_box(cx, patch_size, w)
    return gaussian_noise(a, sigma, rng, box)


def fourier_basis(h, w, i, j):
    spectrum = np.zeros((h, w), np.complex128)
    spectrum[i % h, j % w] = 1
    spectrum[-i % h, -j % w] = 1
    u = np.real(np.fft.ifft2(spectrum))
    return u / np.linalg.norm(u)


def fourier(a, i, j, eps, sign):
    c, alpha = colour(a)
    u = fourier_basis(c.shape[0], c.shape[1], i, j)
    noise = np.stack([(eps * sign[k] * u).astype(np.float32) for k in range(c.shape[2])], -1)
    return with_alpha(add_to_tensor(c, noise), alpha)


def gaussian_blur(a, kernel_size, sigma_x, sigma_y):
    c, alpha = colour(a)
    out = F.gaussian_blur(to_pil(c), [kernel_size, kernel_size], [sigma_x, sigma_y])
    return with_alpha(to_array(out), alpha)


def fma32(w, p, acc):
    """float32 fma(w, p, acc) for float32 w, integer samples p and float32 acc, exactly: w * p
    is exact in double, the sum is rounded to odd (TwoSum gives its error), and rounding that
    to float32 is then the single correct rounding."""
    x = np.float64(w) * p
    y = acc.astype(np.float64)
    s = x + y
    bb = s - x
    e = (x - (s - bb)) + (y - bb)
    inexact_even = (e != 0) & ((s.view(np.int64) & 1) == 0)
    s = np.where(inexact_even, np.nextafter(s, np.where(e > 0, np.inf, -np.inf)), s)
    return s.astype(np.float32)


def check_blur_order(a, kernel_size, sigma_x, sigma_y):
    """What noise.c relies on: torch's conv2d (oneDNN here) gives, per output sample, the
    float32 fma chain over the 2-D kernel ky[i] * kx[j] (float32 products) in row-major order
    from 0, on the reflect-padded image; then torch.round (half to even)."""
    t = F.pil_to_tensor(to_pil(a)).float()[None]
    nc = t.shape[1]
    kernel = F_t._get_gaussian_kernel2d([kernel_size] * 2, [sigma_x, sigma_y], torch.float32,
                                        t.device)
    kx = F_t._get_gaussian_kernel1d(kernel_size, sigma_x).numpy()
    ky = F_t._get_gaussian_kernel1d(kernel_size, sigma_y).numpy()
    assert np.array_equal(kernel.numpy(), np.outer(ky, kx).astype(np.float32)), "kernel2d"
    p = kernel_size // 2
    padded = torch_pad(t, [p, p, p, p], mode="reflect")
    ref = conv2d(padded, kernel.expand(nc, 1, kernel_size, kernel_size), groups=nc)
    ref = ref[0].permute(1, 2, 0).numpy()
    src = padded[0].permute(1, 2, 0).numpy().astype(np.float64)
    h, w = a.shape[:2]
    acc = np.zeros(a.shape, np.float32)
    for i in range(kernel_size):
        for j in range(kernel_size):
            acc = fma32(kernel[i, j].item(), src[i : i + h, j : j + w], acc)
    assert np.array_equal(acc, ref), f"conv2d order, kernel {kernel_size}"
    want = to_array(F.gaussian_blur(to_pil(a), [kernel_size] * 2, [sigma_x, sigma_y]))
    assert np.array_equal(np.round(acc).astype(np.uint8).reshape(want.shape), want), "rounding"


def inputs():
    rng = np.random.default_rng(20240611)
    astro = skimage.data.astronaut()[90:138, 190:254]  # 64x48: a face, eyes and skin tones
    alpha = np.add.outer(np.arange(48) * 5, np.arange(64) * 3) + rng.integers(0, 40, (48, 64))
    return {
        "astro": astro,
        "astro_l": to_array(Image.fromarray(astro).convert("L")),
        "astro_rgba": np.dstack([astro, (alpha % 256).astype(np.uint8)]),
        "odd": skimage.data.astronaut()[100:109, 200:215].copy(),  # 15x9: no Nyquist frequency
        "one": np.array([[[200, 30, 90]]], np.uint8),
    }


CUTOUT = [
    ("astro", 32, 24, 16, [0, 0, 0, 0]),
    ("astro", 32, 24, 17, [255, 128, 7, 0]),  # odd: the reference's box is 16 wide
    ("astro", 0, 0, 20, [10, 20, 30, 0]),
    ("astro", 63, 47, 10, [0, 0, 0, 0]),
    ("astro", -5, 10, 16, [99, 99, 99, 0]),
    ("astro", 100, 100, 16, [0, 0, 0, 0]),  # fully outside
    ("astro", 10, 5, 0, [0, 0, 0, 0]),
    ("astro", 30, 20, 200, [1, 2, 3, 0]),
    ("astro_l", 20, 30, 12, [99, 0, 0, 0]),
    ("astro_rgba", 40, 10, 14, [1, 2, 3, 200]),
    ("one", 0, 0, 1, [0, 0, 0, 0]),  # 1 // 2 == 0: an empty box
    ("one", 0, 0, 2, [5, 6, 7, 0]),
]

ERASE = [
    ("astro", 5, 10, 20, 30, [0, 0, 0, 0]),
    ("astro", 0, 0, 48, 64, [124, 116, 104, 0]),
    ("astro", 40, 50, 20, 30, [255, 0, 255, 0]),
    ("astro", -5, -7, 12, 12, [9, 8, 7, 0]),
    ("astro", 60, 70, 5, 5, [0, 0, 0, 0]),
    ("astro", 10, 10, 0, 5, [0, 0, 0, 0]),
    ("astro", 47, 63, 1, 1, [1, 1, 1, 0]),
    ("astro_l", 3, 4, 30, 10, [200, 0, 0, 0]),
    ("astro_rgba", 2, 20, 40, 25, [50, 60, 70, 80]),
    ("one", 0, 0, 1, 1, [3, 2, 1, 0]),
]

RANDOM_ERASE = [("astro", 5, 10, 20, 30, 11), ("astro_rgba", -3, 50, 10, 30, 12),
                ("astro_l", 40, 0, 20, 64, 13)]

GAUSSIAN_NOISE = [("astro", 0.1, 21), ("astro", 0.0, 22), ("astro_l", 0.5, 23),
                  ("astro_rgba", 0.2, 24), ("one", 3.0, 25)]

PATCH_GAUSSIAN = [("astro", 20, 15, 24, 0.3, 31), ("astro", 0, 0, 16, 1.0, 32),
                  ("astro_rgba", 50, 40, 25, 0.2, 33), ("astro_l", 70, 70, 10, 0.5, 34)]

SIGN3 = [1, -1, 1]
FOURIER = [
    ("astro", 0, 0, 4.0, SIGN3),  # DC: a constant shift of eps / sqrt(h * w)
    ("astro", 1, 2, 4.0, SIGN3),
    ("astro", 24, 0, 4.0, [1, 1, 1]),  # Nyquist row frequency, its own conjugate
    ("astro", 0, 32, 4.0, [-1, -1, -1]),
    ("astro", 24, 32, 2.0, SIGN3),
    ("astro", 24, 5, 4.0, SIGN3),  # Nyquist row, not its own conjugate
    ("astro", 5, 60, 4.0, [-1, 1, -1]),
    ("astro", -3, 7, 6.0, SIGN3),
    ("astro", 100, -70, 4.0, SIGN3),
    ("astro", 3, 3, 0.0, SIGN3),
    ("odd", 4, 7, 3.0, SIGN3),
    ("odd", 0, 7, 3.0, [1, 1, -1]),
    ("odd", 8, 14, 3.0, SIGN3),
    ("astro_l", 3, 3, 4.0, [-1, 1, 1]),
    ("astro_rgba", 2, 5, 4.0, SIGN3),
    ("one", 0, 0, 0.5, [1, -1, 1]),
]

BLUR = [
    ("astro", 3, 0.5, 0.5),
    ("astro", 5, 1.0, 1.0),
    ("astro", 9, 2.0, 2.0),
    ("astro", 1, 1.0, 1.0),
    ("astro", 1, 0.3, 5.0),
    ("astro", 7, 0.8, 2.5),
    ("astro", 15, 3.0, 1.2),
    ("astro", 5, 0.01, 0.01),
    ("astro", 9, 50.0, 50.0),
    ("astro", 41, 1.5, 1.5),  # the kernel's tails are subnormal floats
    ("astro", 31, 8.0, 8.0),  # unfused multiply-adds would round two pixels the other way
    ("astro", 61, 10.0, 10.0),  # larger than the height
    ("astro", 95, 30.0, 20.0),  # larger than both sides; padding 47 of 48 rows
    ("astro_l", 5, 1.5, 1.5),
    ("astro_l", 97, 3.0, 3.0),  # padding 48 of 48 rows: torch refuses
    ("astro_rgba", 7, 2.0, 2.0),
    ("odd", 17, 4.0, 2.0),
    ("one", 1, 1.0, 1.0),
    ("one", 3, 1.0, 1.0),  # torch refuses
]

# 1-D kernels. torch's float sum takes rows of 32 weights and cascades them every 16 rows: 1025
# reaches the first level, 9217 (288 rows) the second with rows left over after it.
KERNELS = [(1, 1.0), (3, 0.5), (5, 1.0), (9, 2.0), (15, 3.0), (17, 0.8), (33, 5.0), (41, 1.5),
           (41, 1.3), (63, 7.7), (101, 20.0), (255, 40.0), (1025, 200.0), (9217, 1500.0),
           (5, 1e-30), (7, 1e30), (5, 3.4e38), (3, 1e-44)]


def main():
    check_philox()
    arrays = inputs()
    for name, k, sx, sy in BLUR:
        p = k // 2
        if p < arrays[name].shape[0] and p < arrays[name].shape[1]:
            check_blur_order(colour(arrays[name])[0], k, sx, sy)

    os.makedirs(OUT, exist_ok=True)
    for name in os.listdir(OUT):
        os.remove(os.path.join(OUT, name))
    written = {}  # content -> file name, so identical outputs share one file

    def save(stem, a):
        a = np.ascontiguousarray(a)
        key = (a.shape, a.tobytes())
        if key not in written:
            augf.write(os.path.join(OUT, stem + ".augf"), a)
            written[key] = stem + ".augf"
        return written[key]

    images = {name: save(name, a) for name, a in arrays.items()}
    cases = []

    def add(op, name, args, make, stem):
        case = {"op": op, "input": images[name], "args": args}
        try:
            case["expected"] = save(stem, make())
        except RuntimeError as e:
            case["expected"] = None
            case["raises"] = f"{type(e).__name__}: {e}"
        cases.append(case)

    def rng_args(seed):
        return {"seed": seed, "input": 0, "sample": 0, "stream": 1}

    def rng(seed):
        return Philox(seed, 0, 0, 1)

    for name, cx, cy, size, fill in CUTOUT:
        add("cutout", name, {"cx": cx, "cy": cy, "size": size, "fill": fill},
            lambda: cutout(arrays[name], cx, cy, size, fill), f"cutout_{name}_{cx}_{cy}_{size}")
    for name, top, left, h, w, value in ERASE:
        add("erase", name, {"top": top, "left": left, "height": h, "width": w, "value": value,
                            "random": 0},
            lambda: erase(arrays[name], top, left, h, w, value),
            f"erase_{name}_{top}_{left}_{h}_{w}")
    for name, top, left, h, w, seed in RANDOM_ERASE:
        add("erase", name, {"top": top, "left": left, "height": h, "width": w, "value": None,
                            "random": 1, "rng": rng_args(seed)},
            lambda: random_erase(arrays[name], top, left, h, w, rng(seed)),
            f"erase_random_{name}_{top}_{left}_{h}_{w}")
    for name, sigma, seed in GAUSSIAN_NOISE:
        add("gaussian_noise", name, {"sigma": sigma, "rng": rng_args(seed)},
            lambda: gaussian_noise(arrays[name], sigma, rng(seed)),
            f"gaussian_noise_{name}_{sigma:g}")
    for name, cx, cy, size, sigma, seed in PATCH_GAUSSIAN:
        add("patch_gaussian", name,
            {"cx": cx, "cy": cy, "patch_size": size, "sigma": sigma, "rng": rng_args(seed)},
            lambda: patch_gaussian(arrays[name], cx, cy, size, sigma, rng(seed)),
            f"patch_gaussian_{name}_{cx}_{cy}_{size}")
    for name, i, j, eps, sign in FOURIER:
        add("fourier_noise", name, {"i": i, "j": j, "eps": eps, "sign": sign},
            lambda: fourier(arrays[name], i, j, eps, sign), f"fourier_{name}_{i}_{j}_{eps:g}")
    for name, k, sx, sy in BLUR:
        add("gaussian_blur", name, {"kernel_size": k, "sigma_x": sx, "sigma_y": sy},
            lambda: gaussian_blur(arrays[name], k, sx, sy), f"blur_{name}_{k}_{sx:g}_{sy:g}")

    kernels = []
    for size, sigma in KERNELS:
        weights = F_t._get_gaussian_kernel1d(size, sigma).numpy()
        assert np.array_equal(weights, weights[::-1]), "kernels are symmetric"
        # float32 values are exact as JSON doubles; the second half mirrors the first.
        kernels.append({"size": size, "sigma": sigma,
                        "first_half": [float(v) for v in weights[: size // 2 + 1]]})

    manifest = {
        "generator": "tests/parity/gen_noise.py",
        "reference": {"torch": torch.__version__, "torchvision": torchvision.__version__,
                      "Pillow": PIL.__version__, "numpy": np.__version__},
        "cases": cases,
        "kernels": kernels,
    }
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    size = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print(f"{len(cases)} cases, {len(kernels)} kernels, {len(os.listdir(OUT))} files, "
          f"{size} bytes in {OUT}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
