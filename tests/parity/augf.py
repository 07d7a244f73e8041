"""Reads and writes the AUGF fixture format of tests/unit/fixture.h, and loads reference images."""
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
