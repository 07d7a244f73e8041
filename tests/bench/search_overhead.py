#!/usr/bin/python3
"""The search's own cost per trial (queueing a child, claiming it, recording its end, telling the
algorithm, the checkpoints) against the trial's time: issue 18 wants it at most 1%.

A random search with the affinity objective over Solarize's threshold, on the default model
(models/cifar10-resnet20) and a small val split: --per-class images of each class of the reduced
CIFAR-10's test split (../shared/data), imported with `augserve dataset import`. Each trial is a
child job; its time is its own run (its `started` to its `finished`, in ms). Two figures:
- per trial, between trials: with one trial at a time, the gap from a trial's end to the next
  one's start (the search reads the ended child, tells the algorithm, writes its row and two
  checkpoints, asks, queues the next child, which a thread claims): the median over the trials;
- in all: the search's wall time (its own `started` to `finished`) x parallel / trials, less the
  mean trial time; this also holds what a search does once (opening the model and the dataset,
  the leaderboard, the chart), spread over the trials, and with parallel > 1 the trials' slowdown
  from sharing the cores.
Python 3 standard library only.

    python3 tests/bench/search_overhead.py [--archive ../shared/data/cifar10-jpeg-20k.tar]
        [--augserve build/augserve] [--trials 20] [--per-class 50] [--parallel 1] [--threads 2]

Prints the figures as one JSON line and a sentence; it never asserts a timing.
"""
import argparse
import datetime
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

from augserve_server import job_server
from cifar_folder import add_archive_option, check_archive, extract_split

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def when(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")


def seconds(job):
    return (when(job["finished"]) - when(job["started"])).total_seconds()


def small_split(archive, tmp, per_class):
    """A folder val/<class>/ of the first per_class images of each class of the test split."""
    test = extract_split(archive, os.path.join(tmp, "images"), "test")
    source = os.path.join(tmp, "small")
    for name in sorted(os.listdir(test)):
        os.makedirs(os.path.join(source, "val", name))
        for image in sorted(os.listdir(os.path.join(test, name)))[:per_class]:
            shutil.copy(os.path.join(test, name, image), os.path.join(source, "val", name))
    return source


def children(server, parent):
    """Every child of the job, by pages."""
    found, after = [], None
    while True:
        page = server.request("GET", f"/v1/jobs?parent={parent}&limit=100" +
                              (f"&after={after}" if after else ""))
        found += page["jobs"]
        after = page["next"]
        if not after:
            return found


def main():
    parser = argparse.ArgumentParser()
    add_archive_option(parser)
    parser.add_argument("--augserve", default="build/augserve")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    check_archive(args.archive)
    with tempfile.TemporaryDirectory() as tmp:
        source = small_split(args.archive, tmp, args.per_class)
        server, dataset = job_server(args.augserve, tmp, source, os.path.join(ROOT, "models"),
                                     args.threads)
        try:
            job = server.request("POST", "/v1/jobs", {"kind": "search", "params": {
                "space": {"op": "Solarize", "threshold": {"$search": {"int": [0, 256]}}},
                "algorithm": "random", "objective": "affinity",
                "budget": {"trials": args.trials}, "parallel": args.parallel,
                "dataset": dataset["id"], "splits": {"val": "val"},
                "model": "cifar10-resnet20", "seed": 1}})
            while job["state"] in ("queued", "running"):
                time.sleep(0.1)
                job = server.request("GET", "/v1/jobs/" + job["id"])
            if job["state"] != "succeeded":
                sys.exit(f"the search {job['state']}: {job['error']}")
            trials = children(server, job["id"])
        finally:
            server.stop()
    trial = sum(seconds(t) for t in trials) / len(trials)
    wall = seconds(job) * args.parallel / len(trials)
    overhead = wall - trial
    ordered = sorted(trials, key=lambda t: t["params"]["trial"])
    gaps = [(when(b["started"]) - when(a["finished"])).total_seconds()
            for a, b in zip(ordered, ordered[1:])]
    gap = statistics.median(gaps) if args.parallel == 1 and gaps else None
    print(json.dumps({"trials": len(trials), "images": dataset["images"],
                      "parallel": args.parallel, "threads": args.threads,
                      "trial_s": round(trial, 4), "gap_s": gap,
                      "wall_per_trial_s": round(wall, 4), "overhead_s": round(overhead, 4)}))
    print(f"{len(trials)} trials of {dataset['images']} images, parallel {args.parallel}: a trial "
          f"runs {trial * 1000:.1f} ms (mean)")
    if gap is not None:
        print(f"between trials: {gap * 1000:.1f} ms (median), {100 * gap / trial:.2f}% of a trial")
    print(f"in all: {wall * 1000:.1f} ms of the search's wall time per trial (x parallel), "
          f"{overhead * 1000:.1f} ms beyond the trial, {100 * overhead / trial:.2f}% of it")


if __name__ == "__main__":
    main()
