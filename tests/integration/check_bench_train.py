#!/usr/bin/python3
"""Smoke test of `augserve bench train` (no timing asserted: the machine's load decides those):
the command runs full training steps and prints its fields, on random data and through the data
loader, runs Winograd's convolutions or only direct ones as --convolution says, and refuses bad
arguments with status 2.

    /usr/bin/python3 tests/integration/check_bench_train.py AUGSERVE
"""
import json
import math
import os
import subprocess
import sys
import tempfile

# small-cnn's trainable parameters (engine/train/train.h's table), counted by hand: conv1 3x32x3x3,
# conv2 32x64x3x3, conv3 64x128x3x3 (no bias), bn1..3 a weight and a bias each, fc 128 x classes
# plus its bias.
CONVS = 3 * 32 * 9 + 32 * 64 * 9 + 64 * 128 * 9
BNS = 2 * (32 + 64 + 128)


def small_cnn_parameters(classes):
    return CONVS + BNS + 128 * classes + classes


def run(augserve, *args):
    return subprocess.run([augserve, "bench", "train", *args], capture_output=True, text=True,
                          timeout=120)


def check_line(p, arch, batch, classes, optimizer, convolution="auto"):
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 1, p.stdout
    r = json.loads(lines[0])
    assert (r["arch"], r["batch"], r["classes"], r["size"], r["optimizer"], r["convolution"]) == \
        (arch, batch, classes, 32, optimizer, convolution), r
    assert r["parameters"] == small_cnn_parameters(classes), r
    assert isinstance(r["steps"], int) and r["steps"] >= 1, r
    assert r["seconds"] > 0 and r["images_per_second"] > 0, r
    # images/s is the steps' images over their time, and a step's time holds its phases.
    assert math.isclose(r["images_per_second"], r["steps"] * batch / r["seconds"], rel_tol=1e-4)
    assert math.isclose(r["step_ms"], 1000 * r["seconds"] / r["steps"], rel_tol=1e-4), r
    phases = [r["forward_ms"], r["backward_ms"], r["optimizer_ms"]]
    assert all(ms >= 0 for ms in phases) and sum(phases) <= r["step_ms"] * 1.0001, r
    assert math.isfinite(r["loss"]) and r["loss"] >= 0, r
    assert 0 < r["plan_mb"] and 0 < r["peak_rss_mb"], r
    return r


def winograd_runs(augserve, convolution):
    """How many of the primitives a small-cnn bench ran were Winograd convolutions, from
    ONEDNN_VERBOSE's lines (oneDNN prints them to stdout, before the bench's own line)."""
    p = subprocess.run([augserve, "bench", "train", "--seconds", "0.1", "--arch", "small-cnn",
                        "--batch", "8", "--threads", "1", "--convolution", convolution],
                       capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, ONEDNN_VERBOSE="1"))
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    assert json.loads(lines[-1])["convolution"] == convolution, lines[-1]
    return sum(",alg:convolution_winograd," in line for line in lines
               if line.startswith("onednn_verbose,exec,"))


def has_avx512_core():
    """Whether this CPU has what oneDNN's Winograd kernels need (AVX-512 F, BW, VL, DQ)."""
    with open("/proc/cpuinfo") as f:
        flags = next((line.split() for line in f if line.startswith("flags")), [])
    return all(f in flags for f in ("avx512f", "avx512bw", "avx512vl", "avx512dq"))


def cifar_batch(path, n):
    """A CIFAR-10 binary batch of n records: a label byte (i % 10), then 3 x 32 x 32 pixels."""
    with open(path, "wb") as f:
        for i in range(n):
            f.write(bytes([i % 10]) + bytes((i * 7 + k) % 256 for k in range(3072)))


def main():
    augserve = sys.argv[1]
    r = check_line(run(augserve, "--seconds", "0.5", "--arch", "small-cnn", "--batch", "8",
                       "--threads", "2"), "small-cnn", 8, 10, "sgd")
    assert "loader_ms" not in r and "dataset" not in r, r
    check_line(run(augserve, "--seconds", "0.2", "--arch", "small-cnn", "--batch", "4",
                   "--classes", "3", "--optimizer", "adamw", "--threads", "1"),
               "small-cnn", 4, 3, "adamw")

    # small-cnn's conv2 (32 -> 64 channels) and conv3 (64 -> 128) are 3x3 stride-1 Convs that
    # take Winograd's algorithm (engine/train/conv.c) where oneDNN has it; --convolution direct
    # makes every Conv direct.
    check_line(run(augserve, "--seconds", "0.2", "--arch", "small-cnn", "--batch", "4",
                   "--threads", "1", "--convolution", "direct"),
               "small-cnn", 4, 10, "sgd", "direct")
    assert winograd_runs(augserve, "direct") == 0
    if has_avx512_core():
        assert winograd_runs(augserve, "auto") > 0
    else:
        print("no AVX-512: oneDNN has no Winograd kernels here, auto runs direct too")

    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "cifar")
        os.mkdir(src)
        cifar_batch(os.path.join(src, "data_batch_1.bin"), 20)
        imp = subprocess.run([augserve, "dataset", "import", src, "--out",
                              os.path.join(tmp, "datasets")],
                             capture_output=True, text=True, timeout=120)
        assert imp.returncode == 0, imp.stderr
        path = json.loads(imp.stdout)["path"]
        r = check_line(run(augserve, "--seconds", "0.5", "--arch", "small-cnn", "--batch", "8",
                           "--threads", "2", "--dataset", path, "--policy", "randaugment"),
                       "small-cnn", 8, 10, "sgd")  # 10 classes: the dataset's
        assert (r["dataset"], r["split"], r["policy"]) == (path, "train", "randaugment"), r
        assert r["loader_ms"] >= 0 and 0 <= r["loader_share"] <= 1, r
        # 20 images make no full batch of 32: said, not looped on.
        p = run(augserve, "--seconds", "0.5", "--arch", "small-cnn", "--batch", "32",
                "--dataset", path, "--policy", "randaugment")
        assert p.returncode == 1 and "fewer samples than a batch" in p.stderr, p
        p = run(augserve, "--arch", "small-cnn", "--dataset", path, "--policy", "no-such-policy")
        assert p.returncode == 2 and "no-such-policy" in p.stderr, p

    # Refusals: an arch not in the zoo (the zoo's list named), a dataset without a policy, a
    # batch of 0, no time, a convolution choice other than auto or direct, an optimiser that does
    # not exist.
    p = run(augserve, "--arch", "resnet-21")
    assert p.returncode == 2 and "resnet-21" in p.stderr and "small-cnn" in p.stderr, p
    for args in (["--dataset", "x"], ["--batch", "0"], ["--seconds", "0"],
                 ["--convolution", "winograd"]):
        p = run(augserve, *args)
        assert p.returncode == 2 and "usage: augserve bench train" in p.stderr, (args, p)
    p = run(augserve, "--arch", "small-cnn", "--optimizer", "lbfgs")
    assert p.returncode == 2 and "sgd" in p.stderr, p
    print("bench train: fields, loader path and refusals as expected")


if __name__ == "__main__":
    main()
