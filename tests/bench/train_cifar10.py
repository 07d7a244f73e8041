#!/usr/bin/env python3
"""Trains a model on the reduced CIFAR-10 with a `train` job of the real server, over HTTP, and
prints one line per epoch and the final test accuracy. Python 3 standard library only.

Two uses, one recipe (the defaults are exactly the default model's, models/cifar10-resnet20):
- the default model's reproduction: `tests/bench/train_cifar10.py --out models/cifar10-resnet20`
  (ResNet-20, 100 epochs, batch 128, SGD 0.1 with Nesterov momentum 0.9 and weight decay 5e-4,
  cosine schedule after 2 warm-up epochs, fixmatch-weak then autoaugment-cifar10, seed 1);
- the learning benchmark: a short budget, `--epochs 3`, reaches the accuracy the README's
  Benchmarks section states.

Without --url it starts build/augserve (--augserve) on a free port of 127.0.0.1 with a temporary
data_dir and models_dir, and imports the archive as a server-side path (datasets_dir is the
archive's folder). With --url it uses that server: the archive is uploaded, or --dataset names a
dataset it has; --out then needs --models-dir, the folder that server registers models in.

    tests/bench/train_cifar10.py [--archive ../shared/data/cifar10-jpeg-20k.tar] [--epochs 100]
        [--arch resnet-20] [--policy fixmatch-weak,autoaugment-cifar10] [--seed 1] [--batch 128]
        [--threads 0] [--out DIR] [--url http://127.0.0.1:8080 [--dataset ID] [--models-dir DIR]]

Exit status 0 when the job succeeded, 1 when the server or the job failed (its error printed), 2
for a usage error (a missing archive included).
"""
import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from augserve_server import HTTPError, Server, ServerError, request
from cifar_folder import add_archive_option, check_archive

# The job's own log line for an epoch ("training, epoch 3/100: ..."), which the metrics repeat.
EPOCH_LOG = re.compile(r"\bepoch \d+/\d+: ")
# The repository's models, which a started server's models_dir may get copies of.
MODELS = os.path.join(os.path.dirname(__file__), "..", "..", "models")
# What the repository serves a model from; the job writes all four.
MODEL_FILES = ("model.onnx", "config.json", "labels.txt", "training.json")


def policy_of(text):
    """--policy: a JSON document, "none", or preset names joined by commas (applied in turn)."""
    if text == "none":
        return None
    if text[:1] in "{[\"":
        return json.loads(text)
    names = text.split(",")
    return names[0] if len(names) == 1 else {"seq": names}


def train_params(args, dataset, classes):
    """The train job's params: the default model's recipe, with the flags' values."""
    params = {
        "dataset": dataset, "split": "train", "val_split": "test", "eval_every": args.eval_every,
        "model": {"arch": args.arch, "classes": classes},
        "epochs": args.epochs, "batch": args.batch,
        "optimizer": {"name": "sgd", "lr": args.lr, "momentum": 0.9, "nesterov": True,
                      "weight_decay": args.weight_decay},
        "schedule": {"name": "cosine", "warmup_epochs": args.warmup_epochs},
        "label_smoothing": 0, "ema": 0, "seed": args.seed, "output": args.output}
    policy = policy_of(args.policy)
    if policy is not None:
        params["policy"] = policy
    return params


def wait_dataset(base, dataset):
    """Polls the dataset until its import ends: its document, or exits with its error."""
    while True:
        doc = request(base, "GET", "/v1/datasets/" + dataset)
        if doc["state"] == "ready":
            return doc
        if doc["state"] != "importing":
            sys.exit(f"the import of {dataset} {doc['state']}: {doc.get('error')}")
        time.sleep(1)


def import_dataset(base, archive, server_side):
    """The archive imported: as a path under the server's datasets_dir, or uploaded."""
    name = os.path.basename(archive)
    query = urllib.parse.urlencode({"name": name, "filename": name} if not server_side else
                                   {"name": name, "path": name})
    if server_side:
        accepted = request(base, "POST", "/v1/datasets?" + query, data=b"")
    else:
        with open(archive, "rb") as f:
            accepted = request(base, "POST", "/v1/datasets?" + query, data=f.read(),
                               content_type="application/x-tar")
    print(f"importing {archive} as dataset {accepted['id']}", flush=True)
    return wait_dataset(base, accepted["id"])


def events(base, job):
    """The job's Server-Sent Events as (type, data) until the stream ends, reconnecting after
    the last event seen when the connection drops before the job ends."""
    last = 0
    while True:
        url = f"{base}/v1/jobs/{job}/events?last_event_id={last}"
        ended = True
        try:
            # Keep-alive comments come every 15 s at most; a minute of silence is a dead link.
            with urllib.request.urlopen(url, timeout=60) as stream:
                kind = None
                for raw in stream:
                    line = raw.decode().rstrip("\n")
                    if line.startswith("id: "):
                        last = int(line[4:])
                    elif line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: ") and kind:
                        data = json.loads(line[6:])
                        yield kind, data
                        if kind == "state" and data["state"] not in ("queued", "running",
                                                                     "interrupted"):
                            return
        except urllib.error.HTTPError:  # an answer, not a dropped link
            raise
        except OSError:  # timeouts and resets: reconnect
            ended = False
        if ended and request(base, "GET", "/v1/jobs/" + job)["state"] not in ("queued", "running"):
            return


def duration(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m{seconds % 60:02d}s"


def follow(base, job, epochs):
    """Prints one line per epoch from the job's metrics, and its other log lines; the job's
    document once it has ended."""
    metrics = {}
    for kind, data in events(base, job):
        if kind == "metric":
            metrics[data["name"]] = data["value"]
            if data["name"] != "eta_seconds":  # the last metric of an epoch
                continue
            val = (f"test loss {metrics['val_loss']:.4f} accuracy {metrics['val_accuracy']:.4f}"
                   if "val_loss" in metrics else "(no test pass)")
            print(f"epoch {data['step']:>3}/{epochs}: train loss {metrics['train_loss']:.4f} "
                  f"accuracy {metrics['train_accuracy']:.4f}, {val}, "
                  f"{metrics['images_per_second']:.1f} images/s, "
                  f"ETA {duration(metrics['eta_seconds'])}", flush=True)
            metrics = {}
        elif kind == "log" and not EPOCH_LOG.search(data["message"]):
            print(data["message"], flush=True)
        elif kind == "state" and data["state"] == "interrupted":
            print(f"the job was interrupted ({data.get('reason')}); it resumes", flush=True)
    return request(base, "GET", "/v1/jobs/" + job)


def copy_model(models_dir, name, out):
    os.makedirs(out, exist_ok=True)
    for file in MODEL_FILES:
        shutil.copyfile(os.path.join(models_dir, name, file), os.path.join(out, file))
    print(f"copied {', '.join(MODEL_FILES)} of {name} into {out}")


def train(args, base, dataset, models_dir):
    """Submits the job, follows it and reports; the exit status."""
    classes = len(dataset["classes"])
    params = train_params(args, dataset["id"], classes)
    job = request(base, "POST", "/v1/jobs", {"kind": "train", "params": params})
    splits = ", ".join(f"{s['name']} {s['count']}" for s in dataset["splits"])
    print(f"train job {job['id']}: {args.arch} on {splits}, {args.epochs} epochs, "
          f"batch {args.batch}, policy {json.dumps(params.get('policy'))}, seed {args.seed}",
          flush=True)
    start = time.time()
    job = follow(base, job["id"], args.epochs)
    if job["state"] != "succeeded":
        print(f"the train job {job['state']}: {job.get('error')}", file=sys.stderr)
        return 1
    final = job["result"]["final"]
    print(f"final test accuracy {final['val_accuracy']:.4f} (test loss {final['val_loss']:.4f}), "
          f"train accuracy {final['train_accuracy']:.4f}, after {args.epochs} epochs in "
          f"{duration(job['result']['duration_seconds'])} of training "
          f"({duration(time.time() - start)} wall clock)")
    if args.out:
        copy_model(models_dir, args.output, args.out)
    return 0


def serve(parser, args, models, run):
    """run(base, dataset, models_dir) on the server: one started on a free port of 127.0.0.1 (a
    temporary data_dir, a models_dir holding copies of the repository's models named in models,
    the archive imported as a server-side path) or --url's (the archive uploaded unless --dataset
    names one; models_dir is then --models-dir's, if the parser has it). Its exit status: run's,
    or 1 when the server failed, 2 for a usage error (a missing archive included)."""
    if args.dataset and not args.url:
        parser.error("--dataset names a dataset of the server --url gives")
    if not args.dataset:
        check_archive(args.archive)
    args.archive = os.path.abspath(args.archive)
    with tempfile.TemporaryDirectory(prefix="augserve-bench-") as tmp:
        server, base = None, args.url and args.url.rstrip("/")
        models_dir = getattr(args, "models_dir", None)
        try:
            if not args.url:
                models_dir = os.path.join(tmp, "models")
                os.makedirs(models_dir)
                for name in models:
                    shutil.copytree(os.path.join(MODELS, name), os.path.join(models_dir, name))
                server = Server(args.augserve, tmp, {
                    "data_dir": os.path.join(tmp, "data"), "models_dir": models_dir,
                    "datasets_dir": os.path.dirname(args.archive), "job_workers": 1,
                    "job_threads": args.threads})
                base = server.base
            if args.dataset:
                dataset = wait_dataset(base, args.dataset)
            else:
                dataset = import_dataset(base, args.archive, server is not None)
            return run(base, dataset, models_dir)
        except ServerError as e:
            print(e, file=sys.stderr)
            return 1
        except (HTTPError, OSError) as e:
            print(f"{base}: {e}", file=sys.stderr)
            if server:
                print("the server's log ends with:\n" + server.tail(), file=sys.stderr)
            return 1
        finally:
            if server:
                server.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_archive_option(parser)
    parser.add_argument("--augserve", default="build/augserve", help="the binary to start")
    parser.add_argument("--url", help="a running server to use instead of starting one")
    parser.add_argument("--dataset", help="with --url: a dataset of that server, not imported")
    parser.add_argument("--models-dir", help="with --url and --out: that server's models_dir")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--arch", default="resnet-20", help="a zoo arch (README, Job kind: train)")
    parser.add_argument("--policy", default="fixmatch-weak,autoaugment-cifar10",
                        help="preset names applied in turn, a JSON policy, or none")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--warmup-epochs", type=int,
                        help="epochs of linear warm-up: 2, or --epochs when fewer")
    parser.add_argument("--eval-every", type=int, default=10,
                        help="epochs between test passes (the last epoch always has one)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0,
                        help="the started server's job_threads (0: every core)")
    parser.add_argument("--output", default="cifar10-resnet20", help="the name it registers")
    parser.add_argument("--out", help="a folder to copy the registered model's files into")
    args = parser.parse_args()
    if args.url and args.out and not args.models_dir:
        parser.error("--out with --url needs --models-dir (the server's models_dir)")
    if args.warmup_epochs is None:
        args.warmup_epochs = min(2, args.epochs)
    return serve(parser, args, [], lambda base, dataset, models_dir: train(args, base, dataset,
                                                                           models_dir))


if __name__ == "__main__":
    sys.exit(main())
