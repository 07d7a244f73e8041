#!/usr/bin/python3
"""LPIPS speed: `augserve bench similarity` against the same LPIPS computed by PyTorch on the same
threads, batch and image size.

The backbones and lin weights are tests/parity/gen_lpips.py's (torchvision's AlexNet and
SqueezeNet 1.1 features with seeded random weights; the speed does not depend on them), exported
into a temporary folder. PyTorch runs the lpips package's definition (scaling layer, taps,
unit-normalisation, lin, spatial mean, sum) with torch.set_num_threads(T) and no_grad on B pairs
of SIZE x SIZE images, all 2B images in one batch as augserve runs them. Prints pairs per second
on each side and the ratio. Needs Debian's python3-torch, python3-torchvision and python3-onnx.

    /usr/bin/python3 tests/bench/similarity_vs_torch.py [--augserve build/augserve] [--threads 2]
        [--seconds 5] [--size 64] [--batch 32] [--models alex,squeeze]
"""
import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time


def load_gen_lpips():
    here = os.path.dirname(os.path.abspath(__file__))
    parity = os.path.join(here, "..", "parity")
    sys.path.insert(0, parity)  # gen_lpips imports its neighbour generated.py
    path = os.path.join(parity, "gen_lpips.py")
    spec = importlib.util.spec_from_file_location("gen_lpips", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def torch_bench(gen, taps_module, lins, size, batch, seconds):
    import torch
    x = torch.rand(2 * batch, 3, size, size) * 2 - 1
    shift = torch.Tensor(gen.SHIFT)[None, :, None, None]
    scale = torch.Tensor(gen.SCALE)[None, :, None, None]

    def once():
        feats = taps_module((x - shift) / scale)
        total = 0
        for f, lin in zip(feats, lins):
            n = gen.normalize(f)
            diff = (n[:batch] - n[batch:]) ** 2
            total = total + torch.nn.functional.conv2d(diff, lin).mean(dim=[2, 3])
        return total

    with torch.no_grad():
        once()
        runs, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds or runs < 3:
            once()
            runs += 1
        elapsed = time.perf_counter() - start
    return runs * batch / elapsed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--augserve", default="build/augserve")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--models", default="alex,squeeze")
    args = ap.parse_args()
    import torch
    import warnings
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    gen = load_gen_lpips()
    backbones = {name: (ctor, taps) for name, ctor, taps in gen.BACKBONES}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            ctor, taps = backbones[name]
            module, lins, _ = gen.export_backbone(tmp, name, ctor, taps)
            theirs = torch_bench(gen, module, lins, args.size, args.batch, args.seconds)
            out = subprocess.run(
                [args.augserve, "bench", "similarity", "--model", os.path.join(tmp, "models", name),
                 "--size", str(args.size), "--batch", str(args.batch), "--threads",
                 str(args.threads), "--seconds", str(args.seconds)],
                check=True, capture_output=True, text=True).stdout
            ours = json.loads(out.strip().splitlines()[-1])["pairs_per_second"]
            print(json.dumps({"model": name, "size": args.size, "batch": args.batch,
                              "threads": args.threads, "augserve_pairs_per_second": round(ours, 1),
                              "torch_pairs_per_second": round(theirs, 1),
                              "ratio": round(ours / theirs, 2)}))


if __name__ == "__main__":
    main()
