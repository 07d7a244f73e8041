#!/usr/bin/python3
"""SpecAugment throughput: augserve against torchaudio, one thread each, on the same clip.

The pipeline of `augserve bench audio`: decode a 16 kHz WAV, 80-mel log features (n_fft 400,
hop 160, log(x + 1e-6)), the policy, float32 out. torchaudio's side is torchaudio.load,
MelSpectrogram, log, ESPnet's time warp (torchaudio has no TimeWarp transform; this is the
function augserve's TimeWarp matches), then FrequencyMasking and TimeMasking as the preset says.

    /usr/bin/python3 tests/bench/audio_vs_torchaudio.py [--augserve build/augserve]
        [--preset specaugment-LD] [--seconds 5] [--clip-seconds 7]

The clip is tests/parity/fixtures/audio/speech.wav (espeak-ng speech) repeated to --clip-seconds
and written as 16-bit WAV to a temporary file, which both sides read. Prints one JSON line per
side and the ratio. It never asserts a timing.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch
import torchaudio

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPEECH = os.path.join(ROOT, "tests", "parity", "fixtures", "audio", "speech.wav")

# (W, F, mF, T, p, mT) of Park et al. 2019, as engine/policy/presets.c has them.
PRESETS = {
    "specaugment-LB": (80, 27, 1, 100, 1.0, 1),
    "specaugment-LD": (80, 27, 2, 100, 1.0, 2),
    "specaugment-SM": (40, 15, 2, 70, 0.2, 2),
    "specaugment-SS": (40, 27, 2, 70, 0.2, 2),
}


def time_warp(x, window):
    """ESPnet's espnet2/layers/time_warp.py time_warp with mode "bilinear", on (1, time, mels)."""
    t = x.shape[1]
    if t - window <= window:
        return x
    x = x[:, None]
    center = torch.randint(window, t - window, (1,))[0]
    warped = torch.randint(center - window, center + window, (1,))[0] + 1
    interpolate = torch.nn.functional.interpolate
    left = interpolate(x[:, :, :center], (warped, x.shape[3]), mode="bilinear",
                       align_corners=False)
    right = interpolate(x[:, :, center:], (t - warped, x.shape[3]), mode="bilinear",
                        align_corners=False)
    return torch.cat([left, right], dim=2)[:, 0]


def make_clip(path, seconds):
    speech, rate = torchaudio.load(SPEECH)
    assert rate == 16000, rate
    repeats = int(seconds * rate) // speech.shape[1] + 1
    clip = speech.repeat(1, repeats)[:, : int(seconds * rate)]
    torchaudio.save(path, clip, rate, encoding="PCM_S", bits_per_sample=16)


def bench_torchaudio(path, preset, seconds):
    torch.set_num_threads(1)
    w, f, mf, t, p, mt = PRESETS[preset]
    mel = torchaudio.transforms.MelSpectrogram(sample_rate=16000, n_fft=400, hop_length=160,
                                               n_mels=80)
    freq_mask = torchaudio.transforms.FrequencyMasking(f)
    time_mask = torchaudio.transforms.TimeMasking(t, p=p)

    def once():
        wave, rate = torchaudio.load(path)
        assert rate == 16000
        features = torch.log(mel(wave.mean(0, keepdim=True)) + 1e-6)  # (1, mels, frames)
        features = time_warp(features.transpose(1, 2), w).transpose(1, 2)
        for _ in range(mf):
            features = freq_mask(features)
        for _ in range(mt):
            features = time_mask(features)
        return features[0].T.contiguous().numpy().astype("float32").tobytes(), wave.shape[1]

    once()  # warm-up
    runs, audio, start = 0, 0.0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, samples = once()
        audio += samples / 16000
        runs += 1
    elapsed = time.perf_counter() - start
    return {"side": "torchaudio " + torchaudio.__version__, "runs": runs, "seconds": elapsed,
            "audio_seconds_per_second": audio / elapsed}


def bench_augserve(binary, path, preset, seconds):
    out = subprocess.run([binary, "bench", "audio", "-p", preset, "--seconds", str(seconds),
                          "--audio", path], check=True, capture_output=True, text=True).stdout
    line = json.loads(out.strip().splitlines()[-1])
    line["side"] = "augserve"
    return line


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--augserve", default=os.path.join(ROOT, "build", "augserve"))
    parser.add_argument("--preset", default="specaugment-LD", choices=sorted(PRESETS))
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--clip-seconds", type=float, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "clip.wav")
        make_clip(path, args.clip_seconds)
        ours = bench_augserve(args.augserve, path, args.preset, args.seconds)
        theirs = bench_torchaudio(path, args.preset, args.seconds)
    for line in (ours, theirs):
        print(json.dumps(line))
    ratio = ours["audio_seconds_per_second"] / theirs["audio_seconds_per_second"]
    print(json.dumps({"preset": args.preset, "clip_seconds": args.clip_seconds,
                      "augserve_over_torchaudio": round(ratio, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
