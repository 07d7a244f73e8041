#!/usr/bin/env python3
"""Semi-supervised learning on the reduced CIFAR-10 (issue 20's demonstration): 40 labels per class
(400 labeled images) of the train split, the rest of it unlabeled, and a ResNet-20 trained at the
same budget (optimiser steps, batch, model, seed) by three methods, each tested on the test split:
  fixmatch     the `fixmatch` job kind (README "Job kinds: fixmatch, supervised"), its defaults
               (FixMatch's: mu 7, tau 0.95, lambda_u 1, SGD 0.03 Nesterov, EMA 0.999, the
               fixmatch-weak and fixmatch-strong views; --strong ctaugment: CTAugment learnt from
               probes, the reference's CTA run);
  supervised   the `supervised` kind: the same params on the 400 labels alone;
  self-training  the `self-training` kind (README "Job kind: self-training"): the supervised
               run's model is the first teacher; it soft-labels the unlabeled images, keeps those
               at --threshold (Noisy Student's 0.3) and, with --per-class, balances them; a
               student (the same zoo model, RandAugment, and with --dropout and
               --stochastic-depth Noisy Student's other noise) learns from the 400 labels and the
               kept images, for --rounds rounds of --steps / --rounds steps each at batch
               batch * (1 + mu), the images a fixmatch step reads (labeled and unlabeled, one view
               each). The teacher's own training is the supervised run's, reported beside it: the
               method's whole cost is both. It runs after supervised (which it runs first when
               --methods leaves supervised out, without reporting it).
Prints each method's per-epoch line (test accuracy when evaluated, mask rate and pseudo-label
accuracy for fixmatch) and a last line with the three test accuracies. Python 3 standard library
only.

Without --url it starts build/augserve (--augserve) on a free port of 127.0.0.1 with a temporary
data_dir and the archive imported as a server-side path (train_cifar10.py's serve); with --url it
uses that server (--dataset names a dataset it has, else the archive is uploaded).

    tests/bench/semi_supervised.py [--archive ../shared/data/cifar10-jpeg-20k.tar]
        [--labels-per-class 40] [--arch resnet-20] [--steps 1500] [--batch 32] [--mu 7]
        [--evaluations 10] [--methods fixmatch,supervised,self-training] [--seed 1]
        [--strong fixmatch-strong|ctaugment] [--ema 0.999] [--bn-momentum 0.999]
        [--student-bn-momentum 0.9]
        [--rounds 2] [--threshold 0.3] [--per-class 0] [--dropout 0] [--stochastic-depth 0]
        [--threads 0] [--url http://127.0.0.1:8080 [--dataset ID]]

A smoke run (a few steps of a small CNN):
    tests/bench/semi_supervised.py --arch small-cnn --steps 4 --batch 8 --mu 2 --evaluations 1

Exit status 0 when the jobs succeeded, 1 when the server or a job failed (its error printed), 2
for a usage error (a missing archive included).
"""
import argparse
import json
import sys
import time

from augserve_server import HTTPError, request
from search_bench import add_server_options, serve
from train_cifar10 import duration, events

METHODS = ("fixmatch", "supervised", "self-training")


def derive_labels(base, dataset, per_class, seed):
    """labels-<n> (n of each class of train) and labels-<n>-rest (the others, unlabeled, their
    labels kept by the dataset: the hidden labels); kept when a run on the same server made them."""
    name = f"labels-{per_class}"
    try:
        request(base, "POST", f"/v1/datasets/{dataset}/splits",
                {"name": name, "from": "train", "per_class": per_class, "seed": seed})
    except HTTPError as e:
        if e.status != 409:
            raise
        print(f"splits {name} and {name}-rest exist already: used as they are", flush=True)
    return name, name + "-rest"


def params_of(args, dataset, labeled, unlabeled, method):
    """The params the three methods share: fixmatch's (supervised takes them as they are)."""
    per_epoch = (args.labels_per_class * len(dataset["classes"])) // args.batch
    epochs = -(-args.steps // per_epoch)
    params = {"dataset": dataset["id"], "split": labeled, "unlabeled_split": unlabeled,
              "val_split": "test", "model": {"arch": args.arch, "classes": len(dataset["classes"])},
              "steps": args.steps, "batch": args.batch, "mu": args.mu, "seed": args.seed,
              "eval_every": max(1, epochs // max(1, args.evaluations)),
              "output": f"semi-{method}-{time.time_ns()}"}
    if method == "fixmatch":
        params["strong"] = args.strong
    if args.ema is not None:
        params["ema"] = args.ema
    if args.bn_momentum is not None:
        params["model"]["bn_momentum"] = args.bn_momentum
    return params


def self_training_params(args, shared, teacher):
    """Self-training's params from the shared ones: the teacher, the labelling, the rounds, and the
    student's budget (the same steps in all, at the images of a fixmatch step)."""
    params = {k: v for k, v in shared.items() if k not in ("mu",)}
    params["model"] = {k: v for k, v in shared["model"].items() if k != "bn_momentum"}
    if args.student_bn_momentum is not None:
        params["model"]["bn_momentum"] = args.student_bn_momentum
    params.update({"teacher": teacher, "labels": "soft", "threshold": args.threshold,
                   "rounds": args.rounds, "steps": max(1, args.steps // args.rounds),
                   "batch": args.batch * (1 + args.mu)})
    if args.per_class:
        params["per_class"] = args.per_class
    if args.dropout:
        params["dropout"] = args.dropout
    if args.stochastic_depth:
        params["stochastic_depth"] = args.stochastic_depth
    return params


def run_job(base, kind, params):
    """Submits a job, prints a line per evaluated epoch, and returns its final test accuracy
    (None after saying why it failed)."""
    job = request(base, "POST", "/v1/jobs", {"kind": kind, "params": params})
    print(f"{kind} job {job['id']}: {json.dumps(params)}", flush=True)
    started, metrics = time.time(), {}
    for event, data in events(base, job["id"]):
        if event != "metric":
            continue
        metrics[data["name"]] = data["value"]
        if data["name"] != "eta_seconds":  # the last metric of an epoch
            continue
        parts = [f"epoch {data['step']}: train loss {metrics.get('train_loss', float('nan')):.4f}"]
        if "val_accuracy" in metrics:
            parts.append(f"test accuracy {metrics['val_accuracy']:.4f}")
        if "mask_rate" in metrics:
            parts.append(f"mask rate {metrics['mask_rate']:.3f}")
        if "pseudo_label_accuracy" in metrics:
            parts.append(f"pseudo-label accuracy {metrics['pseudo_label_accuracy']:.3f}")
        if "probe_proximity" in metrics:
            parts.append(f"probe proximity {metrics['probe_proximity']:.3f}")
        if "images_per_second" in metrics:
            parts.append(f"{metrics['images_per_second']:.0f} images/s")
        parts.append(f"ETA {duration(metrics['eta_seconds'])}")
        if "val_accuracy" in metrics or "mask_rate" in metrics:
            print(", ".join(parts), flush=True)
        metrics = {}
    job = request(base, "GET", "/v1/jobs/" + job["id"])
    if job["state"] != "succeeded":
        print(f"the {kind} job {job['state']}: {job.get('error')}", file=sys.stderr)
        return None
    result = job["result"]
    if kind == "self-training":  # a result per round, the last round's student's accuracy
        for r in result["rounds"]:
            pseudo = r["pseudo"]
            print(f"round {r['round']}: test accuracy {r['val_accuracy']:.4f}, pseudo-labels kept "
                  f"{pseudo['kept']} of {pseudo['unlabeled']} (accuracy "
                  f"{pseudo['accuracy'] if pseudo['accuracy'] is None else round(pseudo['accuracy'], 4)}"
                  f"), {pseudo['images']} images, {duration(r['duration_seconds'])}", flush=True)
        accuracy, seconds = result["val_accuracy"], sum(r["duration_seconds"] for r in result["rounds"])
    else:
        accuracy, seconds = result["final"]["val_accuracy"], result["duration_seconds"]
    print(f"{kind}: test accuracy {accuracy:.4f} after {params['steps']} steps, "
          f"{duration(seconds)} of training ({duration(time.time() - started)} wall clock)",
          flush=True)
    return accuracy, params.get("output")


def run(args, base, dataset):
    labeled, unlabeled = derive_labels(base, dataset["id"], args.labels_per_class, args.seed)
    listed = {k["name"] for k in request(base, "GET", "/v1")["jobs"]["kinds"]}
    accuracies, models = {}, {}
    methods = list(args.methods)
    if "self-training" in methods and "supervised" not in methods:
        methods.insert(methods.index("self-training"), "teacher")  # supervised, not reported
    for method in methods:
        kind = "supervised" if method == "teacher" else method
        if kind not in listed:
            print(f"{method}: skipped, this server has no job kind {kind}", flush=True)
            continue
        params = params_of(args, dataset, labeled, unlabeled, kind)
        if kind == "self-training":
            if "supervised" not in models:
                print("self-training: skipped, it has no teacher", flush=True)
                continue
            params = self_training_params(args, params, models["supervised"])
        outcome = run_job(base, kind, params)
        if outcome is None:
            return 1
        models[kind] = outcome[1]
        if method != "teacher":
            accuracies[method] = outcome[0]
    print(f"{args.arch}, {args.labels_per_class} labels per class, {args.steps} steps of "
          f"batch {args.batch} (mu {args.mu}): test accuracy " +
          ", ".join(f"{m} {a:.4f}" for m, a in accuracies.items()), flush=True)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_server_options(parser)
    parser.add_argument("--labels-per-class", type=int, default=40)
    parser.add_argument("--arch", default="resnet-20", help="the zoo model")
    parser.add_argument("--steps", type=int, default=1500, help="each method's optimiser steps")
    parser.add_argument("--batch", type=int, default=32, help="labeled images a step")
    parser.add_argument("--mu", type=int, default=7, help="fixmatch's unlabeled images per labeled")
    parser.add_argument("--evaluations", type=int, default=10,
                        help="test passes over a run (and one after its last step)")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="a comma-separated subset of " + ", ".join(METHODS))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--strong", default="fixmatch-strong",
                        help="fixmatch's strong view: a policy, or ctaugment")
    parser.add_argument("--ema", type=float,
                        help="every method's EMA decay of the weights (0: none; default: the "
                             "kinds', FixMatch's 0.999)")
    parser.add_argument("--bn-momentum", type=float,
                        help="fixmatch's and supervised's BatchNorm momentum, ONNX's (the running "
                             "statistics' share; FixMatch's reference: 0.999; default: the zoo's, "
                             "PyTorch's 0.9 for resnet-20)")
    parser.add_argument("--student-bn-momentum", type=float,
                        help="the self-training student's BatchNorm momentum (default: the zoo's)")
    parser.add_argument("--rounds", type=int, default=2, help="self-training's rounds")
    parser.add_argument("--threshold", type=float, default=0.3,
                        help="self-training's confidence threshold for a pseudo-label")
    parser.add_argument("--per-class", type=int, default=0,
                        help="self-training's pseudo-labeled images per class (0: unbalanced)")
    parser.add_argument("--dropout", type=float, default=0,
                        help="the self-training student's dropout before its classifier "
                             "(Noisy Student: 0.5; 0: none)")
    parser.add_argument("--stochastic-depth", type=float, default=0,
                        help="the self-training student's drop probability of its last residual "
                             "block (Noisy Student: 0.2; 0: none)")
    args = parser.parse_args()
    if args.rounds < 1 or not 0 <= args.threshold <= 1 or args.per_class < 0:
        parser.error("--rounds at least 1, --threshold in [0, 1], --per-class at least 0")
    if not 0 <= args.dropout < 1 or not 0 <= args.stochastic_depth < 1:
        parser.error("--dropout and --stochastic-depth in [0, 1)")
    args.methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown methods {', '.join(unknown)}; known: {', '.join(METHODS)}")
    return serve(parser, args, [], lambda base, dataset, models: run(args, base, dataset))


if __name__ == "__main__":
    sys.exit(main())
