#!/usr/bin/python3
"""Claim throughput: how fast job runners take no-op jobs off the queue, on SQLite (one node) and
on PostgreSQL, with 1, 4 and 8 runners.

    python3 tests/bench/claim_throughput.py [--augserve build/augserve] [--jobs 400]
        [--probes 100] [--runners 1,4,8] [--backends sqlite,postgresql]
        [--pg-bin /usr/lib/postgresql/15/bin | --store postgresql://...] [--processes]

The job is the debug kind `count` with one unit of no time: a claim, a run that writes one
checkpoint, the end recorded. For each backend and runner count:

  - throughput: --jobs jobs are queued through a server with job_workers 0, then the runners
    start (a server with job_workers N on SQLite; `augserve worker` on PostgreSQL, with N runner
    threads, or N processes of one runner with --processes, which needs several processes per
    store: leases) and drain the queue. Claims per second = jobs / (last job's end - first job's
    start), from the jobs' own times in the store.
  - claim latency: with the runners idle, --probes jobs submitted one at a time, 20 ms apart, each
    job's start - its creation: the wake-up and the claim (in process on SQLite; through another
    process's NOTIFY on PostgreSQL, where the API server that queues runs no job). p50 and p99.

Times are the store's milliseconds, so a latency under 1 ms reads as 0 or 1. On PostgreSQL the
script starts its own server with tests/pg/pg-start.sh (fsync off, a Unix socket: the figures of
a database that need not be durable) unless --store names one. Prints one JSON line per run. It
never asserts a timing."""
import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from augserve_server import Server  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOOP = {"kind": "count", "params": {"units": 1}}


def ms(text):
    """A job document's time (2026-12-07T04:03:41.021Z) in milliseconds since the epoch."""
    t = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
    return t.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000


def all_jobs(server):
    """Every job's document, page by page."""
    jobs, after = [], None
    while True:
        page = server.request("GET", "/v1/jobs?limit=100" + (f"&after={after}" if after else ""))
        jobs += page["jobs"]
        after = page["next"]
        if not after:
            return jobs


def wait_done(server, ids, timeout=600):
    """Polls until every job of ids has succeeded; their documents."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        jobs = [j for j in all_jobs(server) if j["id"] in ids]
        if len(jobs) == len(ids) and all(j["state"] == "succeeded" for j in jobs):
            return jobs
        if any(j["state"] in ("failed", "cancelled", "interrupted") for j in jobs):
            sys.exit("a no-op job did not succeed: " + json.dumps(jobs[0]))
        time.sleep(0.2)
    sys.exit(f"the jobs did not end within {timeout} s")


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def run(args, backend, store, runners, tmp):
    """One backend and runner count: its figures as a dict."""
    data = os.path.join(tmp, "data")
    base = {"debug_routes": True, "store": store, "data_dir": data, "job_threads": 1,
            "workers": 2}

    def start(name, settings, command=()):
        folder = os.path.join(tmp, name)
        os.makedirs(folder)
        return Server(args.augserve, folder, dict(base, **settings), command)

    api = start("api", {"job_workers": 0})
    ids = {api.request("POST", "/v1/jobs", NOOP)["id"] for _ in range(args.jobs)}
    if backend == "sqlite":
        # One process per SQLite store: the server that queued stops, one with runners starts.
        api.stop()
        api = start("runners", {"job_workers": runners})
        procs = [api]
    elif args.processes:
        procs = [start(f"worker{i}", {"job_workers": 1}, ("worker",)) for i in range(runners)]
    else:
        procs = [start("worker", {"job_workers": runners}, ("worker",))]
    try:
        jobs = wait_done(api, ids)
        first = min(ms(j["started"]) for j in jobs)
        last = max(ms(j["finished"]) for j in jobs)
        probes = set()
        for _ in range(args.probes):
            probes.add(api.request("POST", "/v1/jobs", NOOP)["id"])
            time.sleep(0.02)
        latency = [ms(j["started"]) - ms(j["created"]) for j in wait_done(api, probes)]
    finally:
        for p in procs + [api]:
            p.stop()
    return {"backend": backend, "runners": runners,
            "layout": "processes" if args.processes and backend != "sqlite" else "threads",
            "jobs": args.jobs, "claims_per_s": round(args.jobs / max(last - first, 1) * 1000, 1),
            "probes": args.probes, "claim_latency_ms_p50": percentile(latency, 50),
            "claim_latency_ms_p99": percentile(latency, 99)}


def postgresql(args):
    """The server's URL without a database: --store's, or a server started in a folder of /tmp
    (and a function that stops it). The folder is its own, not in the script's private one: as
    root, pg-start.sh runs PostgreSQL as the postgres user, who must reach it."""
    if args.store:
        return args.store.rstrip("/") + "/", lambda: None
    folder = f"/tmp/claims-pg-{os.getpid()}"
    subprocess.run([os.path.join(ROOT, "tests", "pg", "pg-start.sh"), folder, args.pg_bin],
                   check=True, stdout=subprocess.DEVNULL)
    if not os.path.exists(os.path.join(folder, "url")):
        sys.exit(f"no PostgreSQL binaries in {args.pg_bin}: --pg-bin or --store")
    with open(os.path.join(folder, "url")) as f:
        url = f.read()
    return url, lambda: subprocess.run(
        [os.path.join(ROOT, "tests", "pg", "pg-stop.sh"), folder, args.pg_bin], check=False,
        stdout=subprocess.DEVNULL)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--augserve", default=os.path.join(ROOT, "build", "augserve"))
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--probes", type=int, default=100)
    parser.add_argument("--runners", default="1,4,8")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pg-bin", default="/usr/lib/postgresql/15/bin")
    parser.add_argument("--store", help="a PostgreSQL server's URL, without a database")
    parser.add_argument("--processes", action="store_true",
                        help="on PostgreSQL, N worker processes of one runner (needs leases)")
    args = parser.parse_args()
    # /tmp: the socket's path (in PostgreSQL's folder) must stay short.
    with tempfile.TemporaryDirectory(prefix="claims-", dir="/tmp") as tmp:
        stop = lambda: None  # noqa: E731
        try:
            url = None
            for backend in args.backends.split(","):
                for n in (int(r) for r in args.runners.split(",")):
                    run_dir = os.path.join(tmp, f"{backend}-{n}")
                    os.makedirs(run_dir)
                    store = "sqlite"
                    if backend == "postgresql":
                        if url is None:
                            url, stop = postgresql(args)
                        database = f"claims_{os.getpid()}_{n}"
                        subprocess.run([os.path.join(args.pg_bin, "psql"), url + "postgres",
                                        "-qc", f"CREATE DATABASE {database}"], check=True)
                        store = url + database
                    print(json.dumps(run(args, backend, store, n, run_dir)), flush=True)
        finally:
            stop()


if __name__ == "__main__":
    main()
