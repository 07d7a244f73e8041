"""What the search benchmarks share (search_autoaugment_affinity.py, search_randaugment_grid.py):
their server options (the server itself is train_cifar10.py's serve), splits derived, a search
job followed to its end, and models trained with policies. Python 3 standard library only."""
import json
import sys
import time
import types

from augserve_server import HTTPError, request
from cifar_folder import add_archive_option
from train_cifar10 import duration, events, follow, serve, train_params

__all__ = ["add_server_options", "serve", "derive_split", "run_search", "train_each"]


def add_server_options(parser):
    """The archive, the binary or a running server, and the started server's threads."""
    add_archive_option(parser)
    parser.add_argument("--augserve", default="build/augserve", help="the binary to start")
    parser.add_argument("--url", help="a running server to use instead of starting one")
    parser.add_argument("--dataset", help="with --url: a dataset of that server, not imported")
    parser.add_argument("--threads", type=int, default=0,
                        help="the started server's job_threads (0: every core)")


def derive_split(base, dataset, name, rest, source, fraction):
    """name and rest from source (stratified, seed 1); kept when a run on the same server made
    them already."""
    try:
        request(base, "POST", f"/v1/datasets/{dataset}/splits",
                {"name": name, "rest": rest, "from": source, "fraction": fraction,
                 "stratified": True, "seed": 1})
    except HTTPError as e:
        if e.status != 409:
            raise
        print(f"splits {name} and {rest} exist already: used as they are", flush=True)


def run_search(base, params):
    """Submits a search, prints its log lines (a line per trial) as they come, then the trials per
    hour and the best: its result, or None after saying why it failed."""
    job = request(base, "POST", "/v1/jobs", {"kind": "search", "params": params})
    print(f"search job {job['id']}: {json.dumps(params)}", flush=True)
    started = None
    for kind, data in events(base, job["id"]):
        if kind == "state" and data["state"] == "running" and started is None:
            started = time.time()
        elif kind == "log":
            print(data["message"], flush=True)
    wall = time.time() - (started or time.time())
    job = request(base, "GET", "/v1/jobs/" + job["id"])
    if job["state"] != "succeeded":
        print(f"the search job {job['state']}: {job.get('error')}", file=sys.stderr)
        return None
    result = job["result"]
    trials = result["trials"]
    busy = sum(t["seconds"] for t in trials)
    print(f"{len(trials)} trials in {duration(wall)} of the job's wall clock: "
          f"{3600 * len(trials) / wall:.0f} trials per hour ({3600 * len(trials) / busy:.0f} "
          f"counting the trials' own time, {busy / len(trials):.2f} s each)")
    best = result["best"]
    print(f"best: trial {best['trial']}, value {best['value']:.4f}, "
          f"policy {json.dumps(best['policy'])}", flush=True)
    return result


def train_policy(base, dataset, arch, epochs, seed, policy, val_split):
    """Trains arch on the dataset's train split with policy (None: no augmentation) for epochs
    (train_cifar10.py's recipe), tested on val_split: its accuracy there, or None after saying
    why the job failed."""
    options = types.SimpleNamespace(
        eval_every=epochs, arch=arch, epochs=epochs, batch=128, lr=0.1, weight_decay=5e-4,
        warmup_epochs=min(2, epochs), seed=seed, output=f"search-bench-{time.time_ns()}",
        policy="none" if policy is None else json.dumps(policy))
    params = train_params(options, dataset["id"], len(dataset["classes"]))
    params["val_split"] = val_split
    job = request(base, "POST", "/v1/jobs", {"kind": "train", "params": params})
    print(f"train job {job['id']}: {arch}, {epochs} epochs, policy {json.dumps(policy)}",
          flush=True)
    job = follow(base, job["id"], epochs)
    if job["state"] != "succeeded":
        print(f"the train job {job['state']}: {job.get('error')}", file=sys.stderr)
        return None
    return job["result"]["final"]["val_accuracy"]


def train_each(base, dataset, arch, epochs, seed, val_split, policies):
    """A model per policy of policies ({what it is: the policy}), each as train_policy trains it,
    and one line with their accuracies on val_split: the exit status."""
    accuracies = {name: train_policy(base, dataset, arch, epochs, seed, policy, val_split)
                  for name, policy in policies.items()}
    if None in accuracies.values():
        return 1
    print(f"{val_split} accuracy after {epochs} epochs of {arch}: " +
          ", ".join(f"{name} {accuracy:.4f}" for name, accuracy in accuracies.items()))
    return 0
