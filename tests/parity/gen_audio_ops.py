"""Parity fixtures for the audio ops of engine/audio/wave.c and spec.c, checked by
tests/unit/test_ops_audio.c.

References:
- masks: torchaudio 0.13's torchaudio.functional.mask_along_axis itself, run on a spectrogram
  (1, bins, frames) with torch.rand replaced by the two uniforms of the case, in the order it
  draws them (the width's, then the start's). The C test feeds the same uniforms to
  spec_mask_draw and spec_mask and must give the same matrix, bit for bit. mask_value is 0, or
  the spectrogram's mean as float32 for the "mean" cases.
- time warp: ESPnet's espnet2/layers/time_warp.py time_warp with mode="bilinear" and the given
  centre and warped point (its two torch.randint draws), re-typed below since ESPnet is not
  packaged: torch.nn.functional.interpolate of the frames before and after the centre, with
  align_corners=False. Compared within 1e-5.
- biquads: torchaudio 0.13's torchaudio.functional.lowpass_biquad and highpass_biquad (float32,
  lfilter with its default clamp to [-1, 1]). Compared within 1e-5.

Re-run from anywhere with Debian's Python, which has torch and torchaudio (the pyenv python3 on
PATH has neither):

    /usr/bin/python3 tests/parity/gen_audio_ops.py

It is deterministic: it rewrites tests/parity/fixtures/audio_ops/manifest.json the same way.
"""
import json
import os
from unittest import mock

import numpy as np
import torch
import torchaudio.functional as AF

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "audio_ops")


def floats(array):
    """float32 values as JSON numbers that read back to the same float32."""
    return [float(v) for v in np.asarray(array, dtype=np.float32).ravel()]


def spectrogram(rng, frames, bins):
    return rng.standard_normal((frames, bins)).astype(np.float32)


def mask_case(rng, frames, bins, axis, mask_param, p, u_width, u_start, value):
    spec = spectrogram(rng, frames, bins)
    torch_spec = torch.from_numpy(spec.T.copy())[None]  # (1, bins, frames)
    fill = float(torch_spec.mean()) if value == "mean" else 0.0
    draws = iter([torch.tensor([u_width]), torch.tensor([u_start])])
    with mock.patch.object(torch, "rand", lambda *args, **kwargs: next(draws)):
        out = AF.mask_along_axis(torch_spec, mask_param, fill, 2 if axis == "time" else 1, p=p)
    return {
        "kind": "mask",
        "frames": frames,
        "bins": bins,
        "axis": axis,
        "mask_param": mask_param,
        "p": p,
        "u_width": float(np.float32(u_width)),
        "u_start": float(np.float32(u_start)),
        "value": value,
        "input": floats(spec),
        "expected": floats(out[0].numpy().T),
    }


def espnet_time_warp(x, centre, warped):
    """espnet2.layers.time_warp.time_warp after its draws, mode "bilinear"; x: (batch, time, freq)."""
    x = x[:, None]
    t = x.shape[2]
    left = torch.nn.functional.interpolate(
        x[:, :, :centre], (warped, x.shape[3]), mode="bilinear", align_corners=False
    )
    right = torch.nn.functional.interpolate(
        x[:, :, centre:], (t - warped, x.shape[3]), mode="bilinear", align_corners=False
    )
    x = x.clone()
    x[:, :, :warped] = left
    x[:, :, warped:] = right
    return x[:, 0]


def warp_case(rng, frames, bins, centre, warped):
    spec = spectrogram(rng, frames, bins)
    out = espnet_time_warp(torch.from_numpy(spec)[None], centre, warped)[0]
    return {
        "kind": "time_warp",
        "frames": frames,
        "bins": bins,
        "centre": centre,
        "warped": warped,
        "input": floats(spec),
        "expected": floats(out.numpy()),
    }


def biquad_case(rng, kind, rate, cutoff, q):
    t = np.arange(400) / rate
    wave = 0.4 * np.sin(2 * np.pi * 440 * t) + 0.3 * rng.standard_normal(400)
    wave = wave.astype(np.float32)
    fn = AF.lowpass_biquad if kind == "lowpass" else AF.highpass_biquad
    out = fn(torch.from_numpy(wave), rate, cutoff, q)
    return {
        "kind": kind,
        "rate": rate,
        "cutoff_hz": cutoff,
        "q": q,
        "input": floats(wave),
        "expected": floats(out.numpy()),
    }


def main():
    rng = np.random.default_rng(20240505)
    cases = [
        mask_case(rng, 40, 6, "time", 10, 1.0, 0.73, 0.41, "zero"),
        mask_case(rng, 40, 6, "time", 100, 1.0, 0.5, 0.5, "zero"),  # wider than the utterance
        mask_case(rng, 40, 6, "time", 100, 1.0, 0.9, 0.99, "mean"),  # negative start, clamped
        mask_case(rng, 40, 6, "time", 100, 0.2, 0.999, 0.0, "zero"),  # p caps it at 8 frames
        mask_case(rng, 40, 6, "time", 70, 0.02, 0.6, 0.6, "zero"),  # int(40 * 0.02) = 0: none
        mask_case(rng, 40, 6, "frequency", 27, 1.0, 0.31, 0.77, "zero"),
        mask_case(rng, 40, 6, "frequency", 27, 1.0, 0.95, 0.25, "mean"),  # past the 6 bins
        mask_case(rng, 40, 6, "frequency", 5, 1.0, 0.999999, 0.999999, "zero"),
        mask_case(rng, 40, 6, "frequency", 1, 1.0, 0.5, 0.5, "zero"),  # width 0
        warp_case(rng, 30, 8, 12, 17),
        warp_case(rng, 30, 8, 20, 9),
        warp_case(rng, 25, 5, 1, 2),
        warp_case(rng, 50, 3, 25, 25),
        biquad_case(rng, "lowpass", 16000, 1000.0, 0.707),
        biquad_case(rng, "lowpass", 16000, 3000.0, 2.0),
        biquad_case(rng, "highpass", 16000, 300.0, 0.707),
        biquad_case(rng, "highpass", 8000, 2000.0, 0.5),
    ]
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump({"cases": cases}, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
