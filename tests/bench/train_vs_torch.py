#!/usr/bin/python3
"""Training speed: `augserve bench train` against PyTorch 1.13 on the same models, batch, threads,
optimiser and random data, measured in one run (the machine's load moves both figures alike).

For each arch, in rounds that alternate the two sides, each side runs in its own process for the
given seconds after one warm-up step: augserve's bench, then this script's PyTorch worker (the
architecture from tests/parity/gen_zoo.py, which the zoo's exports are checked against;
torch.set_num_threads(T); forward in training mode, F.cross_entropy, backward, then SGD with
lr 0.01, Nesterov momentum 0.9 and weight decay 5e-4, or AdamW with lr 0.001 and weight decay
0.01, as the bench's). It prints each round's images/s, then per arch the medians over the rounds,
the ratio (augserve / PyTorch), each side's ms per step split into forward (with the loss),
backward and optimiser, and each process's peak RSS (getrusage's ru_maxrss: for PyTorch that
includes the interpreter and torch's libraries, ~0.3 GB before any tensor). Needs Debian's
python3-torch and python3-onnx (gen_zoo.py imports it).

    /usr/bin/python3 tests/bench/train_vs_torch.py [--augserve build/augserve] [--threads 2]
        [--batch 128] [--seconds 30] [--rounds 3] [--optimizer sgd|adamw]
        [--archs wrn-28-2,wrn-16-2,wrn-10-1,resnet-20]
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CLASSES, SIZE = 10, 32


def torch_worker(args):
    """One timed PyTorch run, printed as one JSON line with the fields the bench prints."""
    sys.path.insert(0, os.path.join(HERE, "..", "parity"))
    import torch
    import torch.nn.functional as F
    from gen_zoo import reference
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    model = reference({"arch": args.torch_worker, "classes": CLASSES})[0].train()
    if args.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True,
                              weight_decay=5e-4)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=0.001, weight_decay=0.01)
    x = torch.rand(args.batch, 3, SIZE, SIZE) * 2 - 1
    y = torch.arange(args.batch) % CLASSES
    phases = [0.0, 0.0, 0.0]

    def step():
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        for i, t in enumerate((t1 - t0, t2 - t1, t3 - t2)):
            phases[i] += t
        return loss.item()

    step()
    phases[:] = [0.0, 0.0, 0.0]
    steps, start = 0, time.perf_counter()
    while steps == 0 or time.perf_counter() - start < args.seconds:
        loss = step()
        steps += 1
    elapsed = time.perf_counter() - start
    ms = 1000.0 / steps
    print(json.dumps({"steps": steps, "seconds": elapsed,
                      "images_per_second": steps * args.batch / elapsed,
                      "step_ms": elapsed * ms, "forward_ms": phases[0] * ms,
                      "backward_ms": phases[1] * ms, "optimizer_ms": phases[2] * ms,
                      "loss": loss,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def ours(args, arch):
    return run_json([args.augserve, "bench", "train", "--arch", arch, "--batch", str(args.batch),
                     "--seconds", str(args.seconds), "--threads", str(args.threads),
                     "--classes", str(CLASSES), "--size", str(SIZE),
                     "--optimizer", args.optimizer])


def theirs(args, arch):
    return run_json([sys.executable, os.path.abspath(__file__), "--torch-worker", arch,
                     "--batch", str(args.batch), "--seconds", str(args.seconds),
                     "--threads", str(args.threads), "--optimizer", args.optimizer])


def phases(r):
    return "%.0f / %.0f / %.0f" % (r["forward_ms"], r["backward_ms"], r["optimizer_ms"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--augserve", default="build/augserve")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd")
    ap.add_argument("--archs", default="wrn-28-2,wrn-16-2,wrn-10-1,resnet-20")
    ap.add_argument("--torch-worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.torch_worker:
        return torch_worker(args)

    import torch
    print(f"batch {args.batch}, threads {args.threads}, {args.optimizer}, torch "
          f"{torch.__version__}, {args.seconds} s per figure, {args.rounds} rounds", flush=True)
    summary = []
    for arch in args.archs.split(","):
        a, t = [], []
        for r in range(args.rounds):
            # Alternate which side goes first, so a load that drifts weighs on both alike.
            for side in ((ours, a), (theirs, t)) if r % 2 == 0 else ((theirs, t), (ours, a)):
                side[1].append(side[0](args, arch))
            print(f"{arch} round {r + 1}: augserve {a[-1]['images_per_second']:.1f} img/s, "
                  f"PyTorch {t[-1]['images_per_second']:.1f} img/s", flush=True)
        summary.append((arch, a, t))
    print(f"\n{'arch':<10}{'augserve img/s':>15}{'PyTorch img/s':>15}{'ratio':>7}"
          f"{'augserve ms fwd/bwd/opt':>26}{'PyTorch ms fwd/bwd/opt':>25}"
          f"{'augserve MB':>13}{'PyTorch MB':>12}")
    for arch, a, t in summary:
        ips_a = statistics.median(r["images_per_second"] for r in a)
        ips_t = statistics.median(r["images_per_second"] for r in t)
        print(f"{arch:<10}{ips_a:>15.1f}{ips_t:>15.1f}{ips_a / ips_t:>6.2f}x"
              f"{phases(a[-1]):>26}{phases(t[-1]):>25}"
              f"{max(r['peak_rss_mb'] for r in a):>13.0f}"
              f"{max(r['peak_rss_mb'] for r in t):>12.0f}")


if __name__ == "__main__":
    main()
