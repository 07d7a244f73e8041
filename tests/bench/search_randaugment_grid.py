#!/usr/bin/env python3
"""RandAugment's grid, N in {1, 2, 3} x M in {3, 7, 11, 15}, searched with the val_accuracy
objective on the reduced CIFAR-10 (the RandAugment protocol: a small WRN trained per cell with
that (N, M) on part of the train split and tested on the rest), with a `search` job of the real
server over HTTP; then the best (N, M) against no augmentation, each trained on the whole train
split and tested on the test split. Prints the heatmap (the mean val accuracy per cell, the
search result's "heatmap"), the best cell and the two test accuracies. Python 3 standard library
only.

It uses the val_accuracy objective's params (params.objective {"name": "val_accuracy", "epochs",
"batch", "optimizer", "schedule"}, params.model the proxy model as the train kind takes it,
params.splits {"train", "val"}; README "Objectives that train").

Without --url it starts build/augserve (--augserve) on a free port of 127.0.0.1 with a temporary
data_dir and models_dir and the archive imported as a server-side path; with --url it uses that
server (--dataset names a dataset it has, else the archive is uploaded).

    tests/bench/search_randaugment_grid.py [--archive ../shared/data/cifar10-jpeg-20k.tar]
        [--arch wrn-16-2] [--epochs 10] [--val-fraction 0.2] [--final-epochs 30]
        [--parallel 1] [--seed 1] [--threads 0] [--url http://127.0.0.1:8080 [--dataset ID]]

Exit status 0 when the jobs succeeded, 1 when the server or a job failed (its error printed), 2
for a usage error (a missing archive included).
"""
import argparse
import sys

from search_bench import add_server_options, derive_split, run_search, serve, train_each

N, M = [1, 2, 3], [3, 7, 11, 15]


def objective(args):
    """The val_accuracy objective: the proxy's training recipe (train_cifar10.py's, shorter)."""
    return {"name": "val_accuracy", "epochs": args.epochs, "batch": 128,
            "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True,
                          "weight_decay": 5e-4},
            "schedule": {"name": "cosine", "warmup_epochs": min(2, args.epochs)}}


def print_heatmap(heatmap):
    """The heatmap as a table: a row per N, a column per M, each cell's mean val accuracy."""
    print("val accuracy  " + "".join(f"  M={m:<5}" for m in heatmap["m"]))
    for n, row in zip(heatmap["n"], heatmap["value"]):
        print(f"N={n:<11}" + "".join(f"  {v:.4f} " if v is not None else "  -      "
                                     for v in row))


def run(args, base, dataset):
    derive_split(base, dataset["id"], "search-val", "search-train", "train", args.val_fraction)
    result = run_search(base, {
        "space": {"space": "randaugment", "n": N, "m": M}, "algorithm": "grid",
        "objective": objective(args), "budget": {"trials": len(N) * len(M)},
        "parallel": args.parallel, "dataset": dataset["id"],
        "splits": {"train": "search-train", "val": "search-val"},
        "model": {"arch": args.arch, "classes": len(dataset["classes"])}, "seed": args.seed})
    if result is None:
        return 1
    print_heatmap(result["heatmap"])
    best = result["best"]["params"]
    n, m = best["/n"], best["/m"]
    print(f"best cell: N {n}, M {m} (val accuracy {result['best']['value']:.4f})", flush=True)
    if args.final_epochs == 0:
        return 0
    return train_each(base, dataset, args.arch, args.final_epochs, args.seed, "test",
                      {f"RandAugment N {n} M {m}": {"preset": "randaugment", "n": n, "m": m},
                       "no augmentation": None})


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_server_options(parser)
    parser.add_argument("--arch", default="wrn-16-2", help="the proxy and final model (zoo)")
    parser.add_argument("--epochs", type=int, default=10, help="each trial's training epochs")
    parser.add_argument("--val-fraction", type=float, default=0.2,
                        help="the share of the train split the trials are tested on")
    parser.add_argument("--final-epochs", type=int, default=30,
                        help="the two final models' epochs (0: no final training)")
    parser.add_argument("--parallel", type=int, default=1, help="trials at once")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    return serve(parser, args, [], lambda base, dataset, _: run(args, base, dataset))


if __name__ == "__main__":
    sys.exit(main())
