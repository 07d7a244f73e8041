"""Reads and writes the AUGF fixture format of tests/unit/fixture.h, and loads reference images;
writes the manifest.json of a folder of op cases."""
import json
import os
import struct

import numpy as np


def write(path, array):
    """array: uint8, HxW (one channel) or HxWxC."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    h, w, c = a.shape
    with open(path, "wb") as f:
        f.write(b"AUGF" + struct.pack("<III", w, h, c))
        f.write(a.tobytes())


def read(path):
    with open(path, "rb") as f:
        head = f.read(16)
        assert head[:4] == b"AUGF", path
        w, h, c = struct.unpack("<III", head[4:])
        return np.frombuffer(f.read(), dtype=np.uint8).reshape(h, w, c)


def fresh(out):
    """Creates folder out, or empties it, so a generator leaves only what it writes now."""
    os.makedirs(out, exist_ok=True)
    for name in os.listdir(out):
        os.remove(os.path.join(out, name))


def saver(out):
    """save(name, array) -> the file name out holds array under: the first name an identical
    array was saved with, so identical outputs share one file."""
    written = {}  # (shape, bytes) -> file name

    def save(name, array):
        a = np.ascontiguousarray(array)
        key = (a.shape, a.tobytes())
        if key not in written:
            write(os.path.join(out, name), a)
            written[key] = name
        return written[key]

    return save


def write_manifest(out, manifest):
    """out/manifest.json (tests/unit/fixture.h's format), then a line saying what out holds."""
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    size = sum(os.path.getsize(os.path.join(out, n)) for n in os.listdir(out))
    print(f"{len(manifest['cases'])} cases, {len(os.listdir(out))} files, {size} bytes in {out}")
