"""augserve run by a benchmark script: the binary on a free port of 127.0.0.1 with the settings
given, and JSON requests to it. Python 3 standard library only, so a script that needs nothing else
runs with any python3."""
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request


class ServerError(Exception):
    """The server did not start; the message holds its log."""


class HTTPError(Exception):
    """A request answered with an error status: the status and the error's message."""

    def __init__(self, status, message):
        super().__init__(f"{status}: {message}")
        self.status = status


def request(base, method, path, body=None, data=None, content_type="application/json"):
    """method path on base (http://host:port): a JSON body (body), raw bytes (data) or none; the
    answer's JSON (None when it has no body). An error status raises HTTPError with the
    envelope's message."""
    if body is not None:
        data = json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Content-Type": content_type} if data else {})
    try:
        with urllib.request.urlopen(req) as r:
            text = r.read()
    except urllib.error.HTTPError as e:
        text = e.read().decode(errors="replace")
        try:
            text = json.loads(text)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            pass
        raise HTTPError(e.code, text) from None
    return json.loads(text) if text else None


class Server:
    """augserve --config FILE, FILE written into tmp with these settings over listen
    127.0.0.1:0 and access_log off; the log in tmp/server.log. command: words before --config
    (("worker",): augserve worker)."""

    def __init__(self, binary, tmp, settings, command=()):
        config = dict({"listen": "127.0.0.1:0", "access_log": "off"}, **settings)
        path = os.path.join(tmp, "augserve.json")
        with open(path, "w") as f:
            json.dump(config, f)
        self.log = open(os.path.join(tmp, "server.log"), "w+")
        try:
            self.proc = subprocess.Popen([binary, *command, "--config", path], stdout=self.log,
                                         stderr=self.log)
        except OSError as e:
            raise ServerError(f"{binary}: {e.strerror}") from None
        deadline = time.time() + 30
        while time.time() < deadline:
            self.log.seek(0)
            m = re.search(r"on port (\d+)", self.log.read())
            if m:
                self.base = "http://127.0.0.1:" + m.group(1)
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise ServerError("the server did not start:\n" + self.tail())

    def request(self, method, path, body=None):
        return request(self.base, method, path, body)

    def tail(self, lines=20):
        """The log's last lines."""
        self.log.seek(0)
        return "\n".join(self.log.read().splitlines()[-lines:])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


def job_server(binary, tmp, source, models_dir, threads):
    """source (a folder or an archive) imported with `augserve dataset import` into tmp/data, and
    a server on that data_dir and models_dir with one job runner of `threads` threads: (the server,
    the import's report). Exits with the server's log when it does not start."""
    data = os.path.join(tmp, "data")
    os.makedirs(os.path.join(data, "datasets"))
    report = json.loads(subprocess.run(
        [binary, "dataset", "import", source, "--out", os.path.join(data, "datasets")],
        check=True, capture_output=True, text=True).stdout)
    try:
        return Server(binary, tmp, {"data_dir": data, "models_dir": models_dir, "job_workers": 1,
                                    "job_threads": threads, "nn_threads": threads}), report
    except ServerError as e:
        sys.exit(str(e))
