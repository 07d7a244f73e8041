#!/usr/bin/python3
"""Images per second of augserve's data loader and of torchvision's ImageFolder + DataLoader on the
same images, policy and normalisation: the split's images, shuffled, RandAugment (num_ops=2,
magnitude=9: the "randaugment" preset, parity-tested against torchvision), ToTensor and ImageNet's
Normalize, in batches of 128. torchvision's DataLoader has num_workers=2 (worker processes
decoding the JPEGs each epoch); augserve's loader has --threads loader threads (default 2) over the
cache `augserve dataset import` makes once (decoded pixels, mapped). Prints both figures and their
ratio, each the median of --rounds alternating runs. Needs Debian's python3-torchvision and a built
augserve.

    /usr/bin/python3 tests/bench/loader_vs_torchvision.py [--archive ../shared/data/cifar10-jpeg-20k.tar]
        [--augserve build/augserve] [--split train] [--seconds 10] [--rounds 3] [--threads 2]

The archive is the reduced CIFAR-10 of ../shared/data (32x32 JPEG files in
cifar10-jpeg/{train,test}/<class>/), which is not part of the project.
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

import torch
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision import transforms as T

from cifar_folder import MEAN, STD, add_archive_option, check_archive, extract_split


def torchvision_rate(folder, batch, seconds):
    transform = T.Compose([T.RandAugment(num_ops=2, magnitude=9), T.ToTensor(), T.Normalize(MEAN, STD)])
    loader = DataLoader(datasets.ImageFolder(folder, transform=transform), batch_size=batch,
                        shuffle=True, num_workers=2, persistent_workers=True)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for images, _ in loader:
            count += images.shape[0]
            if time.perf_counter() - start >= seconds:
                break
    return count / (time.perf_counter() - start)


def augserve_rate(args, dataset):
    out = subprocess.run([args.augserve, "bench", "loader", "--dataset", dataset, "--policy",
                          "randaugment", "--split", args.split, "--batch", str(args.batch),
                          "--threads", str(args.threads), "--seconds", str(args.seconds)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["images_per_second"]


def main():
    parser = argparse.ArgumentParser()
    add_archive_option(parser)
    parser.add_argument("--augserve", default="build/augserve")
    parser.add_argument("--split", default="train")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    check_archive(args.archive)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = extract_split(args.archive, os.path.join(tmp, "images"), args.split)
        report = json.loads(subprocess.run(
            [args.augserve, "dataset", "import", args.archive, "--out", os.path.join(tmp, "cache")],
            check=True, capture_output=True, text=True).stdout)
        ours_runs, theirs_runs = [], []
        for _ in range(args.rounds):
            ours_runs.append(augserve_rate(args, report["path"]))
            theirs_runs.append(torchvision_rate(folder, args.batch, args.seconds))
        ours, theirs = statistics.median(ours_runs), statistics.median(theirs_runs)
        print(f"{report['images']} images ({args.split}: {len(datasets.ImageFolder(folder))}), "
              f"randaugment, batch {args.batch}")
        print(f"augserve loader ({args.threads} threads) {ours:10.1f} img/s  "
              f"torchvision DataLoader (2 workers) {theirs:10.1f} img/s  ratio {ours / theirs:6.2f}")


if __name__ == "__main__":
    main()
