#!/usr/bin/env python3
"""The AutoAugment space searched with the affinity objective (Fast AutoAugment's density
matching) on the reduced CIFAR-10, with a `search` job of the real server over HTTP: prints each
trial as it ends, then the trials per hour and the best policy. Python 3 standard library only.

The search scores each trial by the accuracy, with the trial's policy applied, of a model trained
beforehand (the default model, models/cifar10-resnet20) on half of the test split (stratified,
seed 1: the split "search"); the other half ("holdout") is left for --train-epochs, which then
trains a model on the train split with the best policy found and one with RandAugment's default
(the randaugment preset: N 2, M 9) and prints both accuracies on the holdout half.

Without --url it starts build/augserve (--augserve) on a free port of 127.0.0.1 with a temporary
data_dir, a models_dir holding a copy of models/cifar10-resnet20, and the archive imported as a
server-side path; with --url it uses that server (its models_dir must hold --model; --dataset
names a dataset it has, else the archive is uploaded).

    tests/bench/search_autoaugment_affinity.py [--archive ../shared/data/cifar10-jpeg-20k.tar]
        [--trials 30] [--algorithm tpe] [--k 5] [--search-fraction 0.5] [--seed 1]
        [--threads 0] [--train-epochs 0 [--train-arch resnet-20]]
        [--url http://127.0.0.1:8080 [--dataset ID]]

Exit status 0 when the jobs succeeded, 1 when the server or a job failed (its error printed), 2
for a usage error (a missing archive included).
"""
import argparse
import sys

from search_bench import add_server_options, derive_split, run_search, serve, train_each


def run(args, base, dataset):
    derive_split(base, dataset["id"], "search", "holdout", "test", args.search_fraction)
    result = run_search(base, {
        "space": {"space": "autoaugment", "k": args.k}, "algorithm": args.algorithm,
        "objective": "affinity", "budget": {"trials": args.trials}, "dataset": dataset["id"],
        "splits": {"val": "search"}, "model": args.model, "seed": args.seed})
    if result is None:
        return 1
    if args.train_epochs == 0:
        return 0
    return train_each(base, dataset, args.train_arch, args.train_epochs, args.seed, "holdout",
                      {"the best policy found": result["best"]["policy"],
                       "RandAugment's default (N 2, M 9)": "randaugment"})


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_server_options(parser)
    parser.add_argument("--model", default="cifar10-resnet20",
                        help="the clean model the affinity is measured with")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--algorithm", default="tpe", help="grid, random, evolution or tpe")
    parser.add_argument("--k", type=int, default=5, help="sub-policies per policy")
    parser.add_argument("--search-fraction", type=float, default=0.5,
                        help="the share of the test split the trials are scored on")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--train-epochs", type=int, default=0,
                        help="then train with the best policy and RandAugment's (0: do not)")
    parser.add_argument("--train-arch", default="resnet-20",
                        help="the model --train-epochs trains (README, Job kind: train)")
    args = parser.parse_args()
    return serve(parser, args, [args.model], lambda base, dataset, _: run(args, base, dataset))


if __name__ == "__main__":
    sys.exit(main())
