#!/usr/bin/python3
"""Inference speed: augserve's executor against PyTorch on the same models, threads and batches.

Exports torchvision models (random weights; the speed does not depend on them) to ONNX with a
dynamic batch dim, times PyTorch (torch.set_num_threads(T), no_grad, eval) and then
`augserve bench infer --model M --batch B --threads T`, and prints median latency, images per
second and the ratios. Needs Debian's python3-torch and python3-torchvision.

    /usr/bin/python3 tests/bench/infer_vs_torch.py [--augserve build/augserve] [--threads 2]
        [--seconds 5] [--models resnet18,squeezenet1_1,alexnet] [--batches 1,16]
"""
import argparse
import json
import os
import subprocess
import tempfile
import time


def torch_bench(model, batch, seconds):
    import torch
    x = torch.rand(batch, 3, 224, 224)
    with torch.no_grad():
        model(x)
        times = []
        start = time.perf_counter()
        while time.perf_counter() - start < seconds or len(times) < 3:
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2] * 1000, batch * len(times) / sum(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--augserve", default="build/augserve")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--models", default="resnet18,squeezenet1_1,alexnet")
    ap.add_argument("--batches", default="1,16")
    args = ap.parse_args()

    import warnings
    import torch
    import torchvision
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    print(f"threads {args.threads}, torch {torch.__version__}, {args.seconds} s per figure")
    print(f"{'model':<16}{'batch':>6}{'torch ms':>10}{'ours ms':>9}{'torch img/s':>13}"
          f"{'ours img/s':>12}{'speed-up':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            model = getattr(torchvision.models, name)().eval()
            path = os.path.join(tmp, name + ".onnx")
            torch.onnx.export(model, torch.rand(1, 3, 224, 224), path, opset_version=13,
                              input_names=["x"], output_names=["logits"],
                              dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}})
            for batch in (int(b) for b in args.batches.split(",")):
                torch_ms, torch_ips = torch_bench(model, batch, args.seconds)
                out = subprocess.run([args.augserve, "bench", "infer", "--model", path,
                                      "--batch", str(batch), "--threads", str(args.threads),
                                      "--seconds", str(args.seconds)],
                                     check=True, capture_output=True, text=True).stdout
                ours = json.loads(out)
                print(f"{name:<16}{batch:>6}{torch_ms:>10.2f}{ours['latency_ms']:>9.2f}"
                      f"{torch_ips:>13.1f}{ours['images_per_second']:>12.1f}"
                      f"{ours['images_per_second'] / torch_ips:>9.2f}x", flush=True)


if __name__ == "__main__":
    main()
