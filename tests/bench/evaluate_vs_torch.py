#!/usr/bin/python3
"""Images per second of an `evaluate` job against a PyTorch evaluation loop, on the same model,
images and normalisation.

The model is a small CIFAR-sized CNN built in PyTorch (random weights from a fixed seed; the speed
does not depend on them), exported to ONNX for the server. PyTorch's side is torchvision's
ImageFolder + DataLoader(num_workers=2, batch 128) with ToTensor and ImageNet's Normalize, and the
model under no_grad, counting top-1 as it goes. augserve's side: the archive imported with
`augserve dataset import` into a server's data_dir (once, as a dataset is), then an evaluate job
over the same split through POST /v1/jobs, timed from the job's start to its end (its own
`started` and `finished`). Both top-1 accuracies are printed too: the same model on the same
pixels, they must agree. Each figure is the median of --rounds alternating runs. Needs Debian's
python3-torch and python3-torchvision, and a built augserve.

    /usr/bin/python3 tests/bench/evaluate_vs_torch.py [--archive ../shared/data/cifar10-jpeg-20k.tar]
        [--augserve build/augserve] [--split test] [--rounds 3] [--threads 2]

The archive is the reduced CIFAR-10 of ../shared/data (32x32 JPEG files in
cifar10-jpeg/{train,test}/<class>/), which is not part of the project.
"""
import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import time

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision import transforms as T

from augserve_server import job_server
from cifar_folder import MEAN, STD, add_archive_option, check_archive, extract_split


BATCH = 128


def cnn(classes):
    """conv-relu-pool twice, then global average pooling and a linear layer: a CIFAR-sized model
    whose cost is of the order of the loading, as in the issue's comparison."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, classes)).eval()




def torch_run(model, folder):
    """images/s and top-1 of one pass of PyTorch's loop over the folder."""
    data = datasets.ImageFolder(folder, transform=T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)]))
    loader = DataLoader(data, batch_size=BATCH, shuffle=False, num_workers=2)
    count = correct = 0
    start = time.perf_counter()
    with torch.no_grad():
        for images, labels in loader:
            correct += (model(images).argmax(1) == labels).sum().item()
            count += images.shape[0]
    return count / (time.perf_counter() - start), correct / count


def seconds_between(job):
    parse = lambda t: datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ")
    return (parse(job["finished"]) - parse(job["started"])).total_seconds()


def augserve_run(server, dataset, split):
    """images/s and top-1 of one evaluate job."""
    job = server.request("POST", "/v1/jobs", {"kind": "evaluate", "params": {
        "model": "bench", "dataset": dataset, "split": split, "batch_size": BATCH}})
    while job["state"] in ("queued", "running"):
        time.sleep(0.05)
        job = server.request("GET", "/v1/jobs/" + job["id"])
    if job["state"] != "succeeded":
        sys.exit(f"the evaluate job {job['state']}: {job['error']}")
    return job["result"]["count"] / seconds_between(job), job["result"]["top1"]


def main():
    parser = argparse.ArgumentParser()
    add_archive_option(parser)
    parser.add_argument("--augserve", default="build/augserve")
    parser.add_argument("--split", default="test")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    check_archive(args.archive)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = extract_split(args.archive, os.path.join(tmp, "images"), args.split)
        classes = datasets.ImageFolder(folder).classes
        model = cnn(len(classes))
        bench = os.path.join(tmp, "models", "bench")
        os.makedirs(bench)
        torch.onnx.export(model, torch.rand(1, 3, 32, 32), os.path.join(bench, "model.onnx"),
                          opset_version=13, input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}})
        with open(os.path.join(bench, "labels.txt"), "w") as f:
            f.write("\n".join(classes) + "\n")
        with open(os.path.join(bench, "config.json"), "w") as f:
            json.dump({"labels": "labels.txt",
                       "preprocess": {"mean": list(MEAN), "std": list(STD)}}, f)
        server, report = job_server(args.augserve, tmp, args.archive,
                                    os.path.join(tmp, "models"), args.threads)
        try:
            ours_runs, theirs_runs = [], []
            for _ in range(args.rounds):
                ours_runs.append(augserve_run(server, report["id"], args.split))
                theirs_runs.append(torch_run(model, folder))
        finally:
            server.stop()
        ours = statistics.median(r[0] for r in ours_runs)
        theirs = statistics.median(r[0] for r in theirs_runs)
        print(f"{report['images']} images, split {args.split}: "
              f"{len(datasets.ImageFolder(folder))}, batch {BATCH}, {args.threads} threads")
        print(f"top-1: augserve {ours_runs[0][1]:.4f}, PyTorch {theirs_runs[0][1]:.4f}")
        print(f"augserve evaluate job {ours:10.1f} img/s  PyTorch ImageFolder + DataLoader "
              f"(2 workers) {theirs:10.1f} img/s  ratio {ours / theirs:6.2f}")


if __name__ == "__main__":
    main()
