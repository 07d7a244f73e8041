#!/usr/bin/python3
"""Images per second, one thread, for augserve's engine and torchvision on the same pipeline:
JPEG decode -> policy -> JPEG q90 encode, at 224 and 512 px. Prints one line per policy and size
with both figures and their ratio, each the median of --rounds alternating runs (a shared machine
drifts by 10-20% between runs). Needs Debian's python3-torchvision and a built augserve.

    /usr/bin/python3 tests/bench/augment_vs_torchvision.py [--augserve build/augserve]
        [--seconds 5] [--rounds 3]
"""
import argparse
import io
import json
import os
import statistics
import subprocess
import tempfile
import time

import torch
from PIL import Image
from torchvision import transforms as T

POLICIES = {
    "randaugment": lambda: T.RandAugment(num_ops=2, magnitude=9),
    "autoaugment-imagenet": lambda: T.AutoAugment(T.AutoAugmentPolicy.IMAGENET),
    "trivialaugment-wide": lambda: T.TrivialAugmentWide(),
    "augmix": lambda: T.AugMix(),
}


def test_image(size):
    """The astronaut photograph from scikit-image when present, else a smooth synthetic one."""
    try:
        from skimage import data
        image = Image.fromarray(data.astronaut())
    except ImportError:
        image = Image.radial_gradient("L").convert("RGB")
    return image.resize((size, size), Image.BILINEAR)


def torchvision_rate(policy, jpeg, seconds):
    transform = POLICIES[policy]()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        image = Image.open(io.BytesIO(jpeg)).convert("RGB")
        out = transform(image)
        buffer = io.BytesIO()
        out.save(buffer, format="JPEG", quality=90)
        count += 1
    return count / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--augserve", default="build/augserve")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        for size in (224, 512):
            buffer = io.BytesIO()
            test_image(size).save(buffer, format="JPEG", quality=90)
            jpeg = buffer.getvalue()
            path = os.path.join(tmp, f"input{size}.jpg")
            with open(path, "wb") as f:
                f.write(jpeg)
            for policy in POLICIES:
                ours_runs, theirs_runs = [], []
                for _ in range(args.rounds):
                    ours_runs.append(json.loads(subprocess.run(
                        [args.augserve, "bench", "augment", "-p", policy, "--size", str(size),
                         "--seconds", str(args.seconds), "--image", path],
                        check=True, capture_output=True, text=True).stdout)["images_per_second"])
                    theirs_runs.append(torchvision_rate(policy, jpeg, args.seconds))
                ours, theirs = statistics.median(ours_runs), statistics.median(theirs_runs)
                print(f"{policy:22s} {size:4d} px  augserve {ours:8.1f} img/s  "
                      f"torchvision {theirs:8.1f} img/s  ratio {ours / theirs:5.2f}")


if __name__ == "__main__":
    main()
