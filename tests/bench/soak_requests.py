#!/usr/bin/python3
"""Writes the request mix of the soak benchmark (tests/bench/soak.sh) for soak.lua to replay.

Usage: soak_requests.py OUT_DIR [--etag ETAG] [--lpips]

Every request is written whole (request line, headers, body) to OUT_DIR/<n>.http, and described
by one line of OUT_DIR/requests.tsv: name, class, route, expected statuses, file. soak.lua sends
the files as they are, so hostile bodies and lying headers reach the server byte for byte.

- class `valid`: a request every route should answer with success (the README's examples,
  mostly), each 6 times in the cycle, so that about half the traffic is ordinary;
- class `invalid`: bad JSON, unknown ops, missing fields, wrong content types, unknown routes and
  methods, oversized parameters, each with the 4xx it should get;
- class `hostile`: the fuzz corpora (tests/fuzz/corpus/*, and the image codec fixtures that
  fuzz_decode starts from), as they are, cut in half and with bytes flipped, posted to the routes
  that parse them; any status but a 5xx is acceptable.

Expected statuses are a `|`-separated list of codes or classes (`200`, `2xx`, `201|409`). 429
(queue full) and 503 (deadline passed) are load answers and are counted apart by soak.lua.

Model uploads create models, so every name uploaded here (`soak-upload`, `soak-onnx-<file>`) also
has a DELETE in the mix: at most one extra model per corpus file exists at any time.

Each request carries `X-Request-Id: soak-<n>`, which the server echoes, so soak.lua can tell which
request a response answers. The order is shuffled with a fixed seed (the first request, which wrk
checks before starting, stays `GET /healthz`), so runs are reproducible.
"""

import argparse
import base64
import json
import os
import random
import re
import struct
import sys
from urllib.parse import quote

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
FIX = os.path.join(ROOT, "tests", "parity", "fixtures")
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")
VALID_WEIGHT = 6
SEED = 14


def read(*path):
    with open(os.path.join(*path), "rb") as f:
        return f.read()


def image(name):
    return read(FIX, "codec", name)


def photo(name):
    return read(FIX, "predict", name)


def clip(name):
    return read(FIX, "audio", name)


def multipart(parts, boundary="soak-boundary-7MA4YWxkTrZu0gW"):
    """parts: (name, bytes or str, filename or None). Returns (content type, body)."""
    out = bytearray()
    for name, value, filename in parts:
        if isinstance(value, str):
            value = value.encode()
        out += b"--" + boundary.encode() + b"\r\n"
        disposition = 'Content-Disposition: form-data; name="%s"' % name
        if filename:
            disposition += '; filename="%s"' % filename
        out += disposition.encode() + b"\r\n"
        if filename:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n" + value + b"\r\n"
    out += b"--" + boundary.encode() + b"--\r\n"
    return "multipart/form-data; boundary=" + boundary, bytes(out)


def file_part(name, data, filename="file"):
    return (name, data, filename)


def cut(data):
    """The first half: a decoder meets the end of its input mid-structure."""
    return data[: len(data) // 2]


def flip(data):
    """Every byte at seven evenly spaced offsets inverted, headers included."""
    out = bytearray(data)
    for k in range(1, 8):
        i = len(out) * k // 8
        if i < len(out):
            out[i] ^= 0xFF
    return bytes(out)


def mutations(data):
    return [("", data), ("-cut", cut(data)), ("-flip", flip(data))]


def corpus(target):
    folder = os.path.join(CORPUS, target)
    if not os.path.isdir(folder):
        return []
    return [(n, read(folder, n)) for n in sorted(os.listdir(folder))
            if os.path.isfile(os.path.join(folder, n))]


def targets_json(data):
    """fuzz_targets.c's input read as that harness reads it, written as the targets field a client
    would send: the image size is dropped (the request's image has its own), the values stay."""
    pos = 0

    def byte():
        nonlocal pos
        b = data[pos] if pos < len(data) else 0
        pos = min(pos + 1, len(data))
        return b

    def double():
        nonlocal pos
        chunk = data[pos:pos + 8].ljust(8, b"\0")
        pos = min(pos + 8, len(data))
        return struct.unpack("<d", chunk)[0]

    byte(), byte()  # width, height
    flags = byte()
    n_boxes, n_keypoints = byte() % 9, byte() % 9
    formats = ["coco", "pascal_voc", "yolo", "albumentations"]
    boxes = []
    for _ in range(n_boxes):
        boxes.append([double() for _ in range(4)])
        if flags & 4:
            for _ in range(4):
                byte()
    keypoints = [[double(), double()] for _ in range(n_keypoints)]
    doc = {"boxes": boxes, "box_format": formats[flags & 3],
           "labels": list(range(len(boxes))), "keypoints": keypoints}
    # NaN and infinities are written as Python writes them (NaN, Infinity): not JSON, as a
    # careless client would send them.
    return json.dumps(doc)


class Mix:
    def __init__(self):
        self.entries = []

    def add(self, cls, name, method, path, route, expect, body=b"", content_type=None,
            headers=()):
        self.entries.append(dict(cls=cls, name=name, method=method, path=path, route=route,
                                 expect=expect, body=body, content_type=content_type,
                                 headers=list(headers)))

    def valid(self, name, method, path, route=None, expect="2xx", **kw):
        self.add("valid", name, method, path, route or path, expect, **kw)

    def invalid(self, name, method, path, route, expect, **kw):
        self.add("invalid", name, method, path, route, expect, **kw)

    def hostile(self, name, method, path, route, **kw):
        self.add("hostile", name, method, path, route, "2xx|4xx", **kw)

    def form(self, cls, name, path, parts, expect=None, **kw):
        """A multipart POST, as curl -F sends it."""
        content_type, body = multipart(parts)
        expect = expect or {"valid": "2xx", "hostile": "2xx|4xx"}[cls]
        self.add(cls, name, "POST", path, path.split("?")[0], expect, body=body,
                 content_type=content_type, **kw)


def valid_requests(mix, etag, lpips):
    jpeg, png = image("jpeg_baseline.jpg"), photo("photo.png")
    for path in ["/healthz", "/readyz", "/metrics", "/v1", "/openapi.json", "/v1/ops",
                 "/v1/policies", "/v1/models", "/v2", "/v2/health/live", "/v2/health/ready"]:
        mix.valid("get " + path, "GET", path)
    mix.valid("get ops audio", "GET", "/v1/ops?domain=audio", "/v1/ops")
    mix.valid("get policy", "GET", "/v1/policies/autoaugment-imagenet", "/v1/policies/{name}")
    mix.valid("validate policy", "POST", "/v1/policies/validate",
              body=b'{"seq": [{"op": "Rotate", "degrees": 30}]}', content_type="application/json")
    mix.valid("get model", "GET", "/v1/models/tiny-cnn", "/v1/models/{name}")
    mix.valid("get v2 model", "GET", "/v2/models/tiny", "/v2/models/{model}")
    mix.valid("get v2 model ready", "GET", "/v2/models/tiny/ready", "/v2/models/{model}/ready")
    mix.valid("get /", "GET", "/", "/*", "200")
    mix.valid("get static file", "GET", "/js/api.js", "/*", "200")
    if etag:
        mix.valid("get / not modified", "GET", "/", "/*", "304",
                  headers=["If-None-Match: " + etag])

    mix.valid("augment raw jpeg", "POST", "/v1/augment?policy=randaugment&seed=42",
              "/v1/augment", body=jpeg, content_type="image/jpeg", headers=["Accept: image/jpeg"])
    mix.form("valid", "augment two images x4", "/v1/augment",
             [file_part("image", jpeg), file_part("image", png),
              ("policy", "trivialaugment-wide", None), ("samples", "4", None),
              ("seed", "1", None)])
    mix.form("valid", "augment targets and masks", "/v1/augment",
             [file_part("image", jpeg), file_part("mask_0", image("png_l.png")),
              file_part("mask_0", image("png_gray4.png")),
              ("targets", '{"boxes": [[1, 2, 20, 15], [34, 24, 6, 6]], "box_format": "coco", '
                          '"labels": ["car", "dog"]}', None),
              ("policy", "detection-v0", None), ("min_visibility", "0.3", None)])
    mix.form("valid", "augment augmix jsd", "/v1/augment",
             [file_part("image", png), ("policy", '{"preset": "augmix", "jsd": true}', None)])
    mix.form("valid", "copy-paste", "/v1/augment/copy-paste",
             [file_part("image_a", jpeg), file_part("mask_a", image("png_l.png")),
              file_part("mask_a", image("png_gray4.png")),
              ("targets_a", '{"box_format": "coco", "labels": ["car", "person"]}', None),
              file_part("image_b", image("png_rgb.png")),
              file_part("mask_b", image("png_gray4.png")),
              ("targets_b", '{"labels": [{"name": "dog", "id": 18}]}', None),
              ("jitter", "ssj", None), ("blend_sigma", "2", None)])
    mix.valid("augment audio raw", "POST",
              "/v1/augment/audio?policy=specaugment-LD&output=features", "/v1/augment/audio",
              body=clip("speech.wav"), content_type="audio/wav")
    mix.form("valid", "augment audio multistyle flac", "/v1/augment/audio",
             [file_part("audio", clip("speech.wav")), file_part("noise", clip("stereo.flac")),
              ("policy", '{"preset":"multistyle","noise_clips":1}', None),
              ("output", "flac", None)])
    mix.form("valid", "augment audio json x2", "/v1/augment/audio",
             [file_part("audio", clip("speech.wav")), file_part("audio", clip("stereo.flac")),
              ("policy", "specaugment-SM", None), ("samples", "2", None), ("n_mels", "64", None)])
    mix.valid("predict", "POST", "/v1/predict?model=tiny-cnn&top_k=3", "/v1/predict",
              body=png, content_type="image/png")
    mix.form("valid", "pseudo-label ensemble", "/v1/pseudo-label",
             [file_part("image", png), file_part("image", photo("gray.png")),
              ("model", "tiny-cnn", None), ("model", "tiny-linear", None)])
    metrics = "lpips,ssim" if lpips else "ssim,psnr"
    mix.form("valid", "similarity", "/v1/similarity",
             [file_part("a", png), file_part("b", jpeg), ("resize", "true", None),
              ("metrics", "all", None)])
    mix.valid("similarity json", "POST", "/v1/similarity", content_type="application/json",
              body=json.dumps({"a": base64.b64encode(image("png_rgb.png")).decode(),
                               "b": base64.b64encode(jpeg).decode(),
                               "metrics": ["ssim", "psnr"]}).encode())
    mix.form("valid", "similarity batch", "/v1/similarity/batch",
             [file_part("a", png), file_part("b", png), file_part("a", png),
              file_part("b", jpeg), ("resize", "true", None), ("metrics", metrics, None)])
    mix.form("valid", "similarity 2afc", "/v1/similarity/2afc",
             [file_part("ref", png), file_part("p0", jpeg), file_part("p1", photo("gray.png")),
              ("resize", "true", None), ("metrics", metrics, None)])
    tiny_input = [[[[0.1 * (i + 4 * r) for i in range(4)] for r in range(4)]] * 3]
    mix.valid("v2 infer json", "POST", "/v2/models/tiny/infer", "/v2/models/{model}/infer",
              content_type="application/json",
              body=json.dumps({"id": "42", "inputs": [{"name": "x", "shape": [1, 3, 4, 4],
                                                       "datatype": "FP32",
                                                       "data": tiny_input}]}).encode())
    mix.valid("v2 infer uint8", "POST", "/v2/models/pixels/infer", "/v2/models/{model}/infer",
              content_type="application/json",
              body=b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "UINT8", '
                   b'"data": [[0, 255, 128, 7]]}]}')
    header = (b'{"inputs":[{"name":"input0","shape":[2,2],"datatype":"FP32",'
              b'"parameters":{"binary_data_size":16}},{"name":"input1","shape":[3],'
              b'"datatype":"UINT8","parameters":{"binary_data_size":3}}],'
              b'"outputs":[{"name":"output0","parameters":{"binary_data":true}}]}')
    mix.valid("v2 infer binary", "POST", "/v2/models/mymodel/infer", "/v2/models/{model}/infer",
              content_type="application/octet-stream",
              headers=["Inference-Header-Content-Length: %d" % len(header)],
              body=header + struct.pack("<4f", 1, 2, 3, 4) + bytes([1, 0, 1]))
    model = os.path.join(FIX, "predict", "tiny-cnn")
    mix.form("valid", "upload model", "/v1/models",
             [("name", "soak-upload", None), file_part("model", read(model, "model.onnx")),
              file_part("config", read(model, "config.json")),
              file_part("labels", read(model, "labels.txt"), "labels.txt")],
             expect="201|409")
    mix.valid("delete model", "DELETE", "/v1/models/soak-upload", "/v1/models/{name}",
              "204|404")


def invalid_requests(mix):
    jpeg = image("jpeg_baseline.jpg")
    js = "application/json"
    mix.invalid("validate bad json", "POST", "/v1/policies/validate", "/v1/policies/validate",
                "4xx", body=b'{"seq": [{"op": "Rotate", ', content_type=js)
    mix.invalid("validate unknown op", "POST", "/v1/policies/validate",
                "/v1/policies/validate", "422", body=b'{"op": "Frobnicate"}', content_type=js)
    mix.invalid("validate out of range", "POST", "/v1/policies/validate",
                "/v1/policies/validate", "422",
                body=b'{"seq": [{"op": "Rotate", "degrees": 999}]}', content_type=js)
    mix.invalid("validate empty body", "POST", "/v1/policies/validate", "/v1/policies/validate",
                "4xx", content_type=js)
    mix.invalid("augment without policy", "POST", "/v1/augment", "/v1/augment", "422",
                body=jpeg, content_type="image/jpeg")
    mix.invalid("augment unknown preset", "POST", "/v1/augment?policy=nosuch", "/v1/augment",
                "422", body=jpeg, content_type="image/jpeg")
    mix.invalid("augment text body", "POST", "/v1/augment?policy=randaugment", "/v1/augment",
                "415", body=b"not an image at all", content_type="text/plain")
    mix.invalid("augment no body", "POST", "/v1/augment?policy=randaugment", "/v1/augment",
                "4xx")
    mix.invalid("augment samples too many", "POST",
                "/v1/augment?policy=randaugment&samples=100000", "/v1/augment", "422",
                body=jpeg, content_type="image/jpeg")
    mix.invalid("augment quality 1000", "POST",
                "/v1/augment?policy=randaugment&quality=1000", "/v1/augment", "422",
                body=jpeg, content_type="image/jpeg")
    mix.invalid("augment seed past 2^53", "POST",
                "/v1/augment?policy=randaugment&seed=18446744073709551616", "/v1/augment",
                "422", body=jpeg, content_type="image/jpeg")
    resize = {"op": "Resize", "height": 16384, "width": 16384}
    mix.invalid("augment resize past max_pixels", "POST",
                "/v1/augment?policy=" + quote(json.dumps(resize)), "/v1/augment", "413",
                body=jpeg, content_type="image/jpeg")
    # 6000x6000 pixels x 1024 Rotates x 32 samples: past max_work, refused before any op runs.
    rotates = {"repeat": 16, "do": {"repeat": 16, "do": {"repeat": 4, "do": {"op": "Rotate"}}}}
    work = {"seq": [{"op": "Resize", "height": 6000, "width": 6000}, rotates]}
    mix.invalid("augment past max_work", "POST",
                "/v1/augment?samples=32&policy=" + quote(json.dumps(work)), "/v1/augment",
                "413", body=jpeg, content_type="image/jpeg")
    mix.form("invalid", "augment 65 parts", "/v1/augment",
             [("policy", "randaugment", None)] + [("x%d" % i, "y", None) for i in range(65)],
             expect="413")
    content_type, body = multipart([("policy", "randaugment", None), file_part("image", jpeg)])
    mix.invalid("augment truncated multipart", "POST", "/v1/augment", "/v1/augment", "400",
                body=body[: len(body) - 30], content_type=content_type)
    mix.invalid("augment multipart without boundary", "POST", "/v1/augment", "/v1/augment",
                "400", body=body, content_type="multipart/form-data")
    mix.invalid("augment declares 100 GB", "POST", "/v1/augment?policy=randaugment",
                "/v1/augment", "413", content_type="image/jpeg",
                headers=["Content-Length: 100000000000", "Connection: close"])
    mix.invalid("audio image body", "POST", "/v1/augment/audio?policy=specaugment-LD",
                "/v1/augment/audio", "415", body=jpeg, content_type="image/jpeg")
    mix.invalid("audio n_mels 5000", "POST",
                "/v1/augment/audio?policy=specaugment-LD&n_mels=5000", "/v1/augment/audio",
                "422", body=clip("speech.wav"), content_type="audio/wav")
    mix.invalid("audio image policy", "POST", "/v1/augment/audio?policy=randaugment",
                "/v1/augment/audio", "422", body=clip("speech.wav"), content_type="audio/wav")
    mix.form("invalid", "copy-paste without image_b", "/v1/augment/copy-paste",
             [file_part("image_a", jpeg), file_part("mask_a", image("png_l.png"))],
             expect="422")
    mix.invalid("predict without model", "POST", "/v1/predict", "/v1/predict", "422",
                body=photo("photo.png"), content_type="image/png")
    mix.invalid("predict unknown model", "POST", "/v1/predict?model=nosuch", "/v1/predict",
                "404", body=photo("photo.png"), content_type="image/png")
    mix.invalid("predict top_k huge", "POST", "/v1/predict?model=tiny-cnn&top_k=99999999999",
                "/v1/predict", "422", body=photo("photo.png"), content_type="image/png")
    mix.invalid("pseudo-label views 1000", "POST",
                "/v1/pseudo-label?model=tiny-cnn&views=1000", "/v1/pseudo-label", "422",
                body=photo("photo.png"), content_type="image/png")
    mix.invalid("similarity unknown metric", "POST", "/v1/similarity", "/v1/similarity", "422",
                content_type=js, body=json.dumps({
                    "a": base64.b64encode(jpeg).decode(), "b": base64.b64encode(jpeg).decode(),
                    "metrics": ["nosuch"]}).encode())
    mix.invalid("similarity bad base64", "POST", "/v1/similarity", "/v1/similarity", "4xx",
                content_type=js, body=b'{"a": "@@@@", "b": "!!"}')
    mix.invalid("v2 unknown input", "POST", "/v2/models/tiny/infer", "/v2/models/{model}/infer",
                "400", content_type=js,
                body=b'{"inputs": [{"name": "y", "shape": [1], "datatype": "FP32", "data": [1]}]}')
    mix.invalid("v2 shape disagrees", "POST", "/v2/models/tiny/infer",
                "/v2/models/{model}/infer", "400", content_type=js,
                body=b'{"inputs": [{"name": "x", "shape": [1, 3, 4, 4], "datatype": "FP32", '
                     b'"data": [1, 2, 3]}]}')
    mix.invalid("v2 unknown model", "POST", "/v2/models/nosuch/infer",
                "/v2/models/{model}/infer", "404", content_type=js, body=b'{"inputs": []}')
    mix.invalid("v2 header length past body", "POST", "/v2/models/mymodel/infer",
                "/v2/models/{model}/infer", "400", content_type="application/octet-stream",
                headers=["Inference-Header-Content-Length: 99999"], body=b'{"inputs": []}')
    mix.invalid("ops unknown domain", "GET", "/v1/ops?domain=video", "/v1/ops", "422")
    mix.invalid("unknown policy", "GET", "/v1/policies/nosuch", "/v1/policies/{name}", "404")
    mix.invalid("unknown model", "GET", "/v1/models/nosuch", "/v1/models/{name}", "404")
    mix.form("invalid", "upload bad name", "/v1/models?name=..%2Fescape",
             [file_part("model", read(CORPUS, "onnx", "relu.onnx"))], expect="422")
    mix.invalid("unknown route", "GET", "/v1/nosuch", "unmatched", "404")
    mix.invalid("unknown post route", "POST", "/v3/anything", "unmatched", "404",
                body=b"{}", content_type=js)
    mix.invalid("path traversal", "GET", "/%2e%2e/%2e%2e/etc/passwd", "/*", "404")
    mix.invalid("delete augment", "DELETE", "/v1/augment", "unmatched", "405")
    mix.invalid("put healthz", "PUT", "/healthz", "unmatched", "405", body=b"x",
                content_type="text/plain")
    mix.invalid("patch policies", "PATCH", "/v1/policies", "unmatched", "405")


def hostile_requests(mix):
    jpeg = image("jpeg_baseline.jpg")
    speech = clip("speech.wav")
    for name, data in corpus("policy"):
        for suffix, body in [("", data), ("-cut", cut(data))]:
            mix.hostile("policy %s%s validate" % (name, suffix), "POST", "/v1/policies/validate",
                        "/v1/policies/validate", body=body, content_type="application/json")
        mix.form("hostile", "policy %s augment" % name, "/v1/augment",
                 [file_part("image", jpeg), ("policy", data, None)])
        mix.form("hostile", "policy %s audio" % name, "/v1/augment/audio",
                 [file_part("audio", speech), file_part("noise", clip("stereo.flac")),
                  file_part("rir", clip("stereo_pcm16.wav")), ("policy", data, None)])
    for name, data in corpus("audio"):
        for suffix, body in mutations(data):
            mix.hostile("audio %s%s" % (name, suffix), "POST",
                        "/v1/augment/audio?policy=specaugment-LD&output=features",
                        "/v1/augment/audio", body=body, content_type="application/octet-stream")
    for name, data in corpus("onnx"):
        model = "soak-onnx-" + os.path.splitext(name)[0]
        for suffix, body in mutations(data):
            mix.form("hostile", "onnx %s%s upload" % (name, suffix), "/v1/models",
                     [("name", model, None), file_part("model", body, "model.onnx")])
        mix.hostile("onnx %s delete" % name, "DELETE", "/v1/models/" + model,
                    "/v1/models/{name}")
    for name, data in corpus("targets"):
        for suffix, targets in [("json", targets_json(data).encode()), ("bytes", data)]:
            mix.form("hostile", "targets %s %s" % (name, suffix), "/v1/augment",
                     [file_part("image", jpeg), ("targets", targets, None),
                      ("policy", "detection-v0", None)])
    # fuzz_decode's corpus is the codec fixtures.
    for name in sorted(os.listdir(os.path.join(FIX, "codec"))):
        if name.endswith(".augf"):
            continue
        for suffix, body in mutations(image(name)):
            mix.hostile("image %s%s" % (name, suffix), "POST",
                        "/v1/augment?policy=randaugment&format=same", "/v1/augment", body=body,
                        content_type="image/" + name.rsplit(".", 1)[1])
    # A multipart corpus, when there is one: each file is a body, its boundary read from its first
    # line.
    for name, data in corpus("multipart"):
        first = data.split(b"\r\n", 1)[0].split(b"\n", 1)[0]
        boundary = first[2:].decode("latin-1") if first.startswith(b"--") else "soak"
        boundary = re.sub(r"[^\x21-\x7e]", "", boundary) or "soak"
        mix.hostile("multipart %s" % name, "POST", "/v1/augment", "/v1/augment", body=data,
                    content_type="multipart/form-data; boundary=" + boundary)
    # Hand-made: nesting past any parser's depth, and an op name of 100 kB.
    mix.hostile("policy nested 100000 deep", "POST", "/v1/policies/validate",
                "/v1/policies/validate", content_type="application/json",
                body=b'{"seq": [' * 100000 + b"]}" * 100000)
    mix.hostile("policy long op name", "POST", "/v1/policies/validate", "/v1/policies/validate",
                content_type="application/json", body=b'{"op": "' + b"A" * 100000 + b'"}')


def routes_in_app():
    """(method, pattern) of every route of server/app.c's table but the debug ones."""
    with open(os.path.join(ROOT, "server", "app.c")) as f:
        text = f.read()
    return {(m, p) for m, p in re.findall(r'\{"([A-Z]+)", "(/[^"]*)", handle_', text)
            if not p.startswith("/v1/debug/")}


def raw_request(entry, index):
    lines = ["%s %s HTTP/1.1" % (entry["method"], entry["path"]), "Host: soak",
             "X-Request-Id: soak-%d" % index]
    if entry["content_type"]:
        lines.append("Content-Type: " + entry["content_type"])
    lines += entry["headers"]
    if not any(h.lower().startswith("content-length:") for h in entry["headers"]) and (
            entry["body"] or entry["method"] in ("POST", "PUT", "PATCH")):
        lines.append("Content-Length: %d" % len(entry["body"]))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + entry["body"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--etag", help="the ETag of GET /, for a conditional request answered 304")
    ap.add_argument("--lpips", action="store_true", help="an LPIPS model is in models_dir")
    args = ap.parse_args()
    mix = Mix()
    valid_requests(mix, args.etag, args.lpips)
    invalid_requests(mix)
    hostile_requests(mix)

    covered = {(e["method"], e["route"]) for e in mix.entries if e["cls"] == "valid"}
    missing = sorted(routes_in_app() - covered)
    for method, pattern in missing:
        print("soak_requests.py: no valid request for %s %s in the mix" % (method, pattern),
              file=sys.stderr)

    weighted = [e for e in mix.entries for _ in range(VALID_WEIGHT if e["cls"] == "valid" else 1)]
    random.Random(SEED).shuffle(weighted)
    first = next(i for i, e in enumerate(weighted) if e["path"] == "/healthz")
    weighted.insert(0, weighted.pop(first))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "requests.tsv"), "w") as tsv:
        for index, entry in enumerate(weighted, 1):
            path = os.path.join(args.out, "%d.http" % index)
            with open(path, "wb") as f:
                f.write(raw_request(entry, index))
            tsv.write("\t".join([entry["name"], entry["cls"], "%s %s" % (entry["method"],
                                 entry["route"]), entry["expect"], path]) + "\n")
    counts = {c: sum(e["cls"] == c for e in mix.entries) for c in ("valid", "invalid", "hostile")}
    print("%d distinct requests (%d valid, each %d times in the cycle; %d invalid; %d hostile), "
          "%d routes without a valid one" % (len(mix.entries), counts["valid"], VALID_WEIGHT,
                                            counts["invalid"], counts["hostile"], len(missing)))
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
