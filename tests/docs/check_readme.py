#!/usr/bin/python3
"""Runs the curl examples of README.md's Quick start and API sections against the real server and
checks them.

Usage: check_readme.py AUGSERVE_BINARY SOURCE_DIR [LPIPS_MODEL_DIR]

Exit status 77 (ctest's skip) when LPIPS_MODEL_DIR holds no model.onnx.

The convention it enforces (README.md, "Quick start" and "API" sections):
- every ```sh block of those sections that has a line starting with `curl` is runnable; it runs in
  bash from a scratch folder in which `tests/` is the repository's and `build/augserve` the binary, with `http://127.0.0.1:8080`
  replaced by the server's address, `$ADMIN_KEY` and `$KEY` set to keys the server accepts, and
  `$DATA_DIR` to the server's data_dir (examples import datasets into its datasets/ folder);
- every `curl` command there is followed by a comment line `# STATUS [sketch]`: the expected HTTP
  status, then optionally a media type (`# 200 image/jpeg`) or a JSON sketch of the body, which
  may run over further `#  ...` lines and contain `...` and `<placeholders>`;
- the check: the status is the one written; a JSON body validates against the response schema
  config/openapi.json gives for that path, method and status (the Error envelope for a /v1 error
  without its own schema), and against the standalone config/*.schema.json of the route if it has
  one; every member name in the sketch occurs in the real body; a media type in the comment is the
  response's Content-Type;
- internal links (`](#anchor)`) lead to a heading, and the Configuration table lists exactly
  `augserve --print-config`'s settings with their defaults;
- every route of server/app.c's table has a `###`/`####` heading in the API section naming it (as
  `` `METHOD /path` ``) with at least one runnable curl example that requests it, and a path in
  config/openapi.json.

The server is started on a free port (`listen 127.0.0.1:0`, the port read from its `listening`
log line) with a temporary data_dir, a models_dir holding the repository's models/* (the default
model a first start serves), tests/parity/fixtures/models/*, tests/parity/fixtures/predict/* and
the LPIPS model `alex` (from gen_lpips.py), debug routes on
and an admin key. Exit status 0 when everything matches, 1 with every mismatch listed otherwise.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BASE_IN_README = "http://127.0.0.1:8080"
# The server runs without api_keys (so the examples need none); a key an example sends is ignored.
ADMIN_KEY = "readme-example-key"

failures = []


def fail(msg):
    failures.append(msg)


# --- JSON Schema (the subset config/ uses: draft 2020-12 keywords without formats) -------------

class Validator:
    def __init__(self, root):
        self.root = root

    def resolve(self, ref, root):
        if not ref.startswith("#/"):
            raise ValueError("unsupported $ref " + ref)
        node = root
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    @staticmethod
    def type_ok(value, t):
        if t == "object":
            return isinstance(value, dict)
        if t == "array":
            return isinstance(value, list)
        if t == "string":
            return isinstance(value, str)
        if t == "boolean":
            return isinstance(value, bool)
        if t == "null":
            return value is None
        if t == "integer":
            return (isinstance(value, int) and not isinstance(value, bool)) or (
                isinstance(value, float) and value.is_integer())
        if t == "number":
            return isinstance(value, (int, float)) and not isinstance(value, bool)
        raise ValueError("unknown type " + t)

    def errors(self, value, schema, path="$", root=None):
        root = root if root is not None else self.root
        if schema is True or schema == {}:
            return []
        if schema is False:
            return ["%s: not allowed" % path]
        errs = []
        if "$ref" in schema:
            errs += self.errors(value, self.resolve(schema["$ref"], root), path, root)
        if "type" in schema:
            types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            if not any(self.type_ok(value, t) for t in types):
                return errs + ["%s: %s is not of type %s" % (path, short(value), "/".join(types))]
        if "const" in schema and value != schema["const"]:
            errs.append("%s: %s is not %s" % (path, short(value), short(schema["const"])))
        if "enum" in schema and value not in schema["enum"]:
            errs.append("%s: %s is not one of %s" % (path, short(value), schema["enum"]))
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if "minimum" in schema and value < schema["minimum"]:
                errs.append("%s: %s < minimum %s" % (path, value, schema["minimum"]))
            if "maximum" in schema and value > schema["maximum"]:
                errs.append("%s: %s > maximum %s" % (path, value, schema["maximum"]))
            if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
                errs.append("%s: %s <= exclusiveMinimum %s" % (path, value, schema["exclusiveMinimum"]))
        if isinstance(value, str):
            if "minLength" in schema and len(value) < schema["minLength"]:
                errs.append("%s: shorter than %d" % (path, schema["minLength"]))
            if "pattern" in schema and not re.search(schema["pattern"], value):
                errs.append("%s: %s does not match %s" % (path, short(value), schema["pattern"]))
        if isinstance(value, dict):
            props = schema.get("properties", {})
            for key in schema.get("required", []):
                if key not in value:
                    errs.append("%s: required member %r missing" % (path, key))
            for key, sub in value.items():
                if key in props:
                    errs += self.errors(sub, props[key], "%s.%s" % (path, key), root)
                    continue
                matched = False
                for pattern, psub in schema.get("patternProperties", {}).items():
                    if re.search(pattern, key):
                        matched = True
                        errs += self.errors(sub, psub, "%s.%s" % (path, key), root)
                if matched:
                    continue
                extra = schema.get("additionalProperties", True)
                if extra is False:
                    errs.append("%s: member %r is not in the schema" % (path, key))
                elif isinstance(extra, dict):
                    errs += self.errors(sub, extra, "%s.%s" % (path, key), root)
            if "minProperties" in schema and len(value) < schema["minProperties"]:
                errs.append("%s: fewer than %d members" % (path, schema["minProperties"]))
        if isinstance(value, list):
            if "items" in schema:
                for i, item in enumerate(value):
                    errs += self.errors(item, schema["items"], "%s[%d]" % (path, i), root)
            if "minItems" in schema and len(value) < schema["minItems"]:
                errs.append("%s: fewer than %d items" % (path, schema["minItems"]))
            if "maxItems" in schema and len(value) > schema["maxItems"]:
                errs.append("%s: more than %d items" % (path, schema["maxItems"]))
        for sub in schema.get("allOf", []):
            errs += self.errors(value, sub, path, root)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                results = [self.errors(value, sub, path, root) for sub in schema[key]]
                good = sum(1 for r in results if not r)
                if good == 0:
                    best = min(results, key=len)
                    errs.append("%s: matches none of %s (closest: %s)" % (path, key, "; ".join(best[:3])))
                elif key == "oneOf" and good > 1:
                    errs.append("%s: matches %d branches of oneOf" % (path, good))
        return errs


def short(value):
    text = json.dumps(value)
    return text if len(text) < 60 else text[:57] + "..."


# --- README parsing -----------------------------------------------------------------------------

def readme_section(readme, title):
    """The lines of the `## <title>` section, with their line numbers."""
    lines = readme.split("\n")
    start = next(i for i, line in enumerate(lines) if line.strip() == "## " + title)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return [(i + 1, lines[i]) for i in range(start, end)]


def runnable_blocks(section):
    """[(heading, first line number, block text)] for every ```sh block with a curl command; a
    block indented under a list item is read without the fence's indent."""
    blocks, heading, inside, current, first, indent = [], None, False, [], 0, 0
    for number, line in section:
        if not inside and re.match(r"#{2,5} ", line):
            heading = line
        if line.lstrip().startswith("```"):
            if inside:
                inside = False
                text = "\n".join(current)
                if any(l.startswith("curl ") for l in current):
                    blocks.append((heading, first, text))
            elif line.strip() == "```sh":
                inside, current, first = True, [], number + 1
                indent = len(line) - len(line.lstrip())
            continue
        if inside:
            current.append(line[indent:] if line[:indent].isspace() else line)
    return blocks


def commands(block):
    """The curl commands of a block in order, each with (line offset, expected status, sketch)."""
    out = []
    lines = block.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith("curl "):
            i += 1
            continue
        start = i
        # The command's continuation lines: until a comment line or the next curl.
        i += 1
        while i < len(lines) and not lines[i].startswith("#") and not lines[i].startswith("curl "):
            i += 1
        comment = []
        while i < len(lines) and lines[i].startswith("#"):
            comment.append(lines[i][1:].strip())
            i += 1
        m = re.match(r"(\d{3})\b\s*(.*)", comment[0]) if comment else None
        if not m:
            out.append((start, None, None))
            continue
        sketch = " ".join([m.group(2)] + comment[1:]).strip()
        out.append((start, int(m.group(1)), sketch))
    return out


# --- The server --------------------------------------------------------------------------------

def check_structure(readme, binary):
    """Internal links resolve to headings; the Configuration table is --print-config's settings."""
    text = re.sub(r"```.*?```", "", readme, flags=re.S)
    anchors = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, re.M):
        anchors.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    for link in sorted(set(re.findall(r"\]\(#([^)]+)\)", readme))):
        if link not in anchors:
            fail("README: the link #%s leads to no heading" % link)
    start, end = readme.find("\n## Configuration"), readme.find("\n## API")
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| ([^|]+) \|", readme[start:end], re.M))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUGSERVE_")}
    settings = json.loads(subprocess.run([binary, "--print-config"], env=env, check=True,
                                         stdout=subprocess.PIPE).stdout)
    for key, value in settings.items():
        # An empty text is written "" in the table.
        written = value if isinstance(value, str) and value else json.dumps(value)
        if key not in rows:
            fail("README: the Configuration table lacks `%s` (default %s)" % (key, written))
        elif rows[key].strip().strip("`") != written:
            fail("README: the Configuration table gives `%s` the default %s; the binary's is %s"
                 % (key, rows[key].strip(), written))
    for key in rows:
        if key not in settings:
            fail("README: the Configuration table lists `%s`, which is no setting" % key)


def start_server(binary, source, scratch, lpips):
    models = os.path.join(scratch, "models")
    os.makedirs(models)
    for folder in ("models", "tests/parity/fixtures/models", "tests/parity/fixtures/predict"):
        root = os.path.join(source, folder)
        for name in sorted(os.listdir(root)):
            if os.path.isfile(os.path.join(root, name, "model.onnx")):
                shutil.copytree(os.path.join(root, name), os.path.join(models, name))
    if lpips:
        shutil.copytree(lpips, os.path.join(models, "alex"))
    config = {"listen": "127.0.0.1:0", "data_dir": os.path.join(scratch, "data"),
              "models_dir": models, "static_dir": os.path.join(source, "static"),
              "debug_routes": True, "access_log": "off", "workers": 2, "nn_threads": 1}
    with open(os.path.join(scratch, "augserve.json"), "w") as f:
        json.dump(config, f)
    log = open(os.path.join(scratch, "server.log"), "w+")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUGSERVE_")}
    proc = subprocess.Popen([binary, "--config", os.path.join(scratch, "augserve.json")],
                            stdout=log, stderr=log, env=env)
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            sys.exit("the server exited at start-up:\n" + log.read())
        log.seek(0)
        for line in log.read().splitlines():
            m = re.search(r'"event":"listening".*on port (\d+)', line)
            if m:
                return proc, int(m.group(1))
        time.sleep(0.05)
    proc.kill()
    sys.exit("the server did not log `listening` within 30 s")


# The curl wrapper: records status, content type, method, URL, headers and body of every call,
# whatever output options the example passes (they are honoured: -o FILE gets the body too).
PRELUDE = r'''
set -e
__n=0
curl() {
  local args=() out="" dump=""
  while [ $# -gt 0 ]; do
    case "$1" in
      -o|--output) out="$2"; shift 2 ;;
      -D|--dump-header) dump="$2"; shift 2 ;;
      -i|--include|-s|--silent|-sS|-S) shift ;;
      *) args+=("$1"); shift ;;
    esac
  done
  __n=$((__n + 1))
  command curl -sS -o "$__OUT/$__n.body" -D "$__OUT/$__n.head" \
    -w '%{http_code} %{method} %{url_effective} %{content_type}' "${args[@]}" > "$__OUT/$__n.meta"
  if [ -n "$out" ] && [ "$out" != "-" ] && [ "$out" != "/dev/null" ]; then cp "$__OUT/$__n.body" "$out"; fi
  return 0
}
'''


def route_of(method, path, routes):
    for m, pattern in routes:
        if m != method or pattern == "/*":
            continue
        regex = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(pattern)) + "$"
        if re.match(regex, path):
            return pattern
    return "/*" if method == "GET" else None


def json_keys(value, into):
    if isinstance(value, dict):
        for k, v in value.items():
            into.add(k)
            json_keys(v, into)
    elif isinstance(value, list):
        for v in value:
            json_keys(v, into)
    return into


STANDALONE = {
    ("POST", "/v1/predict"): "predict.schema.json",
    ("POST", "/v1/pseudo-label"): "pseudo-label.schema.json",
    ("POST", "/v1/augment/audio"): "augment-audio.schema.json",
    ("POST", "/v1/augment/copy-paste"): "copy-paste.schema.json",
    ("GET", "/v1/jobs/{id}"): "job.schema.json",
    ("GET", "/v1/datasets/{id}"): "dataset.schema.json",
    ("POST", "/v1/policies"): "saved-policy.schema.json",
    ("PUT", "/v1/policies/{name}"): "saved-policy.schema.json",
    ("POST", "/v1/ctaugment"): "ctaugment.schema.json",
    ("GET", "/v1/ctaugment/{id}"): "ctaugment.schema.json",
    ("POST", "/v1/ctaugment/{id}/feedback"): "ctaugment.schema.json",
}


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    binary, source = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    lpips = os.path.abspath(sys.argv[3]) if len(sys.argv) > 3 else None
    if lpips and not os.path.isfile(os.path.join(lpips, "model.onnx")):
        # The similarity examples name it; gen_lpips.py cannot write it without python3-torch.
        print("skipped: no LPIPS model at %s (ctest's parity.lpips.generate writes it)" % lpips)
        return 77
    readme = open(os.path.join(source, "README.md")).read()
    openapi = json.load(open(os.path.join(source, "config/openapi.json")))
    validator = Validator(openapi)
    app = open(os.path.join(source, "server/app.c")).read()
    routes = re.findall(r'\{"(GET|POST|PUT|DELETE|PATCH)", "([^"]+)", handle_', app)
    if not routes:
        sys.exit("no routes found in server/app.c")

    check_structure(readme, binary)
    section = readme_section(readme, "API")
    blocks = runnable_blocks(readme_section(readme, "Quick start")) + runnable_blocks(section)

    # Every route: a heading naming it, and a path in openapi.json.
    headings = [line for _, line in section if re.match(r"#{3,5} ", line)]
    for method, pattern in routes:
        name = "`%s %s`" % (method, "/" if pattern == "/*" else pattern)
        if not any(name in h for h in headings):
            fail("README: no API heading names %s" % name)
        api_path = "/{path}" if pattern == "/*" else pattern
        if method.lower() not in openapi["paths"].get(api_path, {}):
            fail("openapi.json: no %s %s" % (method, api_path))

    scratch = tempfile.mkdtemp(prefix="augserve-readme-")
    proc = None
    requested = set()
    try:
        proc, port = start_server(binary, source, scratch, lpips)
        work = os.path.join(scratch, "work")
        os.makedirs(work)
        os.symlink(os.path.join(source, "tests"), os.path.join(work, "tests"))
        os.makedirs(os.path.join(work, "build"))
        os.symlink(binary, os.path.join(work, "build", "augserve"))
        base = "http://127.0.0.1:%d" % port
        for index, (heading, first_line, text) in enumerate(blocks):
            where = "README.md:%d (%s)" % (first_line, heading)
            expected = commands(text)
            for offset, status, _ in expected:
                if status is None:
                    fail("README.md:%d: a curl example without a `# STATUS ...` comment after it"
                         % (first_line + offset))
            out = os.path.join(scratch, "out%d" % index)
            os.makedirs(out)
            env = dict(os.environ, __OUT=out, ADMIN_KEY=ADMIN_KEY, KEY=ADMIN_KEY,
                       DATA_DIR=os.path.join(scratch, "data"))
            script = PRELUDE + text.replace(BASE_IN_README, base) + "\n"
            run = subprocess.run(["bash", "-c", script], cwd=work, env=env, timeout=60,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            if run.returncode != 0:
                fail("%s: the block exits %d: %s" % (where, run.returncode,
                                                      run.stdout.decode(errors="replace")[-400:]))
            calls = len([f for f in os.listdir(out) if f.endswith(".meta")])
            if calls != len(expected):
                fail("%s: %d curl calls ran, %d are written" % (where, calls, len(expected)))
            for k, (offset, status, sketch) in enumerate(expected[:calls]):
                line = first_line + offset
                meta = open(os.path.join(out, "%d.meta" % (k + 1))).read().split(" ", 3)
                got, method, url = int(meta[0]), meta[1], meta[2]
                ctype = meta[3] if len(meta) > 3 else ""
                body_file = os.path.join(out, "%d.body" % (k + 1))
                body = open(body_file, "rb").read() if os.path.exists(body_file) else b""
                path = re.sub(r"^https?://[^/]+", "", url).split("?")[0] or "/"
                pattern = route_of(method, path, routes)
                requested.add((method, pattern))
                what = "README.md:%d: %s %s" % (line, method, path)
                if status is not None and got != status:
                    fail("%s answered %d, the README says %d: %s" % (
                        what, got, status, body[:300].decode(errors="replace")))
                if sketch:
                    m = re.match(r"([a-z]+/[A-Za-z0-9.+-]+)", sketch)
                    if m and not ctype.startswith(m.group(1)):
                        fail("%s answered %s, the README says %s" % (what, ctype, m.group(1)))
                # JSON Lines (a job's artifact) are no one document: each line is checked below.
                if ctype.startswith("application/jsonl"):
                    for n, text in enumerate(body.decode(errors="replace").splitlines()):
                        try:
                            json.loads(text)
                        except ValueError as e:
                            fail("%s: line %d is no JSON (%s)" % (what, n + 1, e))
                    continue
                if "json" not in ctype or (got == 204 and not body):
                    continue
                try:
                    doc = json.loads(body)
                except ValueError as e:
                    fail("%s: the body is no JSON (%s)" % (what, e))
                    continue
                api_path = "/{path}" if pattern == "/*" else pattern
                op = openapi["paths"].get(api_path, {}).get(method.lower())
                if op is None:
                    fail("%s: openapi.json has no such operation" % what)
                    continue
                response = op["responses"].get(str(got))
                if response is None:
                    fail("%s: openapi.json does not list status %d" % (what, got))
                    continue
                schema = response.get("content", {}).get("application/json", {}).get("schema")
                if schema is None and got >= 400:
                    schema = {"$ref": "#/components/schemas/Error"}
                if schema is None:
                    fail("%s: openapi.json has no JSON schema for status %d" % (what, got))
                    continue
                for e in validator.errors(doc, schema)[:8]:
                    fail("%s: openapi.json %s %d: %s" % (what, api_path, got, e))
                standalone = STANDALONE.get((method, pattern))
                if standalone and got == 200:
                    s = json.load(open(os.path.join(source, "config", standalone)))
                    for e in Validator(s).errors(doc, s)[:8]:
                        fail("%s: config/%s: %s" % (what, standalone, e))
                if sketch and sketch.lstrip().startswith("{"):
                    keys = json_keys(doc, set())
                    for key in re.findall(r'"([A-Za-z_][A-Za-z0-9_]*)"\s*:', sketch):
                        if key not in keys:
                            fail("%s: the README's sketch names %r, which the response lacks"
                                 % (what, key))
        for method, pattern in routes:
            if (method, pattern) not in requested:
                fail("README: no runnable curl example requests %s %s" % (method, pattern))
    finally:
        if proc:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(scratch, ignore_errors=True)

    if failures:
        print("README.md drifted from the server (%d):" % len(failures))
        for f in failures:
            print("  " + f)
        return 1
    print("README.md: %d runnable blocks, %d routes, all as written" % (len(blocks), len(routes)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
