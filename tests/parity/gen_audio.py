"""Parity fixtures for the audio front end (engine/audio/audio.c, engine/audio/features.c),
checked by tests/unit/test_audio.c.

References:
- Mel features: torchaudio 0.13 transforms.MelSpectrogram (float32, CPU) on speech.wav, a clip of
  espeak-ng speech resampled to 16 kHz by torchaudio and stored as 16-bit PCM, so the C side
  decodes exactly the waveform torchaudio saw (int16 / 32768). One case per argument set in
  manifest.json; "expected" is the mel energies before any log, frames x n_mels, raw
  little-endian float32, computed in float64 (see mel_cases).
- Decoding: a short stereo clip (440 Hz left, 1 kHz right, different amplitudes) written by
  torchaudio's sox_io backend as WAV 16-bit, 24-bit and float, FLAC and Ogg/Vorbis, plus a
  3-channel WAV; the expected mono waveform is torchaudio.load(file).mean(0) (sox's decoders,
  not libsndfile's), raw float32.
- Ogg Opus: the same two tones sampled at 48 kHz (the one rate Opus decodes at), encoded by the
  reference encoder, opusenc (Debian's opus-tools), as stereo_opus.ogg. The expected waveform is
  FFmpeg's decode through torchaudio.io.StreamReader: FFmpeg's own Ogg demuxer and Opus decoder,
  neither libopusfile nor libopus, which the C side uses.
- MP3: sox here cannot write MP3, so mono.mp3 (1 s of 440 Hz at 16 kHz) is written through
  libsndfile's own LAME encoder via ctypes; the test checks its properties (rate, length, pitch)
  rather than samples.
Resampling has no fixture: torchaudio.functional.resample is a different filter from libsoxr's,
so the test checks properties instead (duration, a sine's frequency, its energy).

Re-run with Debian's Python, which has torch and torchaudio (the python3 on PATH has not), with
espeak-ng, opus-tools and libsox-fmt-base (sox's FLAC and Vorbis writers) installed:

    /usr/bin/python3 tests/parity/gen_audio.py

It empties tests/parity/fixtures/audio/ and writes everything again. The espeak-ng voice and
Vorbis and Opus encoders make speech.wav, stereo.ogg and stereo_opus.ogg depend on the installed
versions; the expected files are always regenerated with them, so the fixtures stay consistent.
"""
import ctypes
import ctypes.util
import json
import math
import os
import shutil
import subprocess
import tempfile

import numpy as np
import torch
import torchaudio
from torchaudio.io import StreamReader

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "audio")
SPEECH_TEXT = "Open the pod bay doors, please."
SPEECH_SECONDS = 1.0
CLIP_RATE = 22050
CLIP_SECONDS = 0.1
OPUS_RATE = 48000
# Relative errors are measured against max(|expected|, floor * the clip's largest power value)
# (for power 1, floor ** 0.5 of the largest magnitude): FFT rounding is absolute, about float
# epsilon times the frame's energy, so bins far below the loudest carry a large relative error
# in any float32 implementation. Mirrors test_audio.c.
FLOOR = 1e-6

# Argument sets: torchaudio.transforms.MelSpectrogram keywords. Names match the C test's parser.
MEL_CASES = [
    ("defaults", dict(n_fft=400, hop_length=160, n_mels=80)),
    ("slaney", dict(n_fft=400, hop_length=160, n_mels=80, mel_scale="slaney", norm="slaney")),
    ("power1", dict(n_fft=400, hop_length=160, n_mels=64, power=1.0, f_min=20.0, f_max=7600.0)),
    ("nfft512", dict(n_fft=512, win_length=400, hop_length=160, n_mels=80)),
    ("nocenter", dict(n_fft=400, hop_length=160, n_mels=40, center=False)),
]


def write_f32(name, array):
    np.ascontiguousarray(array, dtype="<f4").tofile(os.path.join(OUT, name))


def make_speech():
    """espeak-ng's 22.05 kHz speech, resampled to 16 kHz, first SPEECH_SECONDS, int16."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "speech.wav")
        subprocess.run(["espeak-ng", "-w", raw, SPEECH_TEXT], check=True)
        wave, rate = torchaudio.load(raw)
    wave = torchaudio.functional.resample(wave, rate, 16000)
    wave = wave[:, : int(16000 * SPEECH_SECONDS)]
    quantised = torch.clamp(torch.round(wave * 32768), -32768, 32767) / 32768
    path = os.path.join(OUT, "speech.wav")
    torchaudio.save(path, quantised, 16000, encoding="PCM_S", bits_per_sample=16)
    loaded, _ = torchaudio.load(path)
    assert torch.equal(loaded, quantised)
    return loaded


def mel_cases(wave):
    """The reference is MelSpectrogram run in float64 (on the same float32 samples): the exact
    value of torchaudio's definition, so the test measures the engine's own rounding. The
    manifest records how far float32 torchaudio is from it by the test's measure, for scale."""
    cases = []
    for name, args in MEL_CASES:
        exact = torchaudio.transforms.MelSpectrogram(sample_rate=16000, **args).double()(
            wave.double())[0].T
        mel32 = torchaudio.transforms.MelSpectrogram(sample_rate=16000, **args)(wave)[0].T
        power = args.get("power", 2.0)
        floor = FLOOR ** (power / 2) * float(exact.max())
        ref_err = float(((mel32.double() - exact).abs() / exact.abs().clamp(min=floor)).max())
        write_f32(name + ".f32", exact.numpy())
        cases.append({"name": name, "input": "speech.wav", "args": args,
                      "frames": exact.shape[0], "n_mels": exact.shape[1],
                      "expected": name + ".f32", "torchaudio_float32_error": ref_err})
    return cases


def tones(rate):
    """The stereo clip: 440 Hz left, 1 kHz right, at different amplitudes."""
    t = torch.arange(int(rate * CLIP_SECONDS), dtype=torch.float64) / rate
    left = 0.5 * torch.sin(2 * math.pi * 440 * t)
    right = 0.25 * torch.sin(2 * math.pi * 1000 * t)
    return t, torch.stack([left, right]).float()


def write_opus(path, wave):
    """opusenc (fixed serial number, so the file is the same every run) from a float WAV."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = os.path.join(tmp, "in.wav")
        torchaudio.save(wav, wave, OPUS_RATE, encoding="PCM_F", bits_per_sample=32)
        subprocess.run(["opusenc", "--quiet", "--serial", "1", "--bitrate", "64", wav, path],
                       check=True)


def ffmpeg_load(path):
    """FFmpeg's decode of path: channels x frames, and the rate."""
    reader = StreamReader(path)
    reader.add_basic_audio_stream(frames_per_chunk=-1)
    wave = torch.cat([chunk[0] for chunk in reader.stream()]).T
    return wave, int(reader.get_src_stream_info(0).sample_rate)


def clip_case(name, loaded, rate):
    """Writes loaded's channel mean as name's expected waveform; the manifest's entry."""
    expected = os.path.splitext(name)[0] + "." + name.rsplit(".", 1)[1] + ".f32"
    write_f32(expected, loaded.mean(0).numpy())
    return {"input": name, "rate": rate, "channels": loaded.shape[0],
            "frames": loaded.shape[1], "expected": expected}


def make_clips():
    t, stereo = tones(CLIP_RATE)
    third = 0.125 * torch.sin(2 * math.pi * 3000 * t).float()
    files = [
        ("stereo_pcm16.wav", stereo, dict(encoding="PCM_S", bits_per_sample=16)),
        ("stereo_pcm24.wav", stereo, dict(encoding="PCM_S", bits_per_sample=24)),
        ("stereo_float.wav", stereo, dict(encoding="PCM_F", bits_per_sample=32)),
        ("stereo.flac", stereo, dict(bits_per_sample=16)),
        ("stereo.ogg", stereo, dict(compression=-1)),
        ("three_channels.wav", torch.cat([stereo, third[None]]),
         dict(encoding="PCM_S", bits_per_sample=16)),
    ]
    clips = []
    for name, wave, kwargs in files:
        path = os.path.join(OUT, name)
        torchaudio.save(path, wave, CLIP_RATE, **kwargs)
        clips.append(clip_case(name, *torchaudio.load(path)))
    opus = os.path.join(OUT, "stereo_opus.ogg")
    write_opus(opus, tones(OPUS_RATE)[1])
    clips.append(clip_case("stereo_opus.ogg", *ffmpeg_load(opus)))
    return clips


class SF_INFO(ctypes.Structure):
    _fields_ = [("frames", ctypes.c_int64), ("samplerate", ctypes.c_int),
                ("channels", ctypes.c_int), ("format", ctypes.c_int),
                ("sections", ctypes.c_int), ("seekable", ctypes.c_int)]


def make_mp3():
    """1 s of 440 Hz at 16 kHz, through libsndfile's MPEG writer (LAME)."""
    sf = ctypes.CDLL(ctypes.util.find_library("sndfile"))
    sf.sf_open.restype = ctypes.c_void_p
    sf.sf_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(SF_INFO)]
    sf.sf_write_float.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_float), ctypes.c_int64]
    sf.sf_write_float.restype = ctypes.c_int64
    sf.sf_close.argtypes = [ctypes.c_void_p]
    SFM_WRITE, SF_FORMAT_MPEG, SF_FORMAT_MPEG_LAYER_III = 0x20, 0x230000, 0x0082
    info = SF_INFO(0, 16000, 1, SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III, 0, 0)
    handle = sf.sf_open(os.path.join(OUT, "mono.mp3").encode(), SFM_WRITE, ctypes.byref(info))
    assert handle, "libsndfile cannot write MP3 here"
    t = np.arange(16000) / 16000
    samples = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    written = sf.sf_write_float(handle, samples.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                                len(samples))
    assert written == len(samples)
    sf.sf_close(handle)
    return {"input": "mono.mp3", "rate": 16000, "seconds": 1.0, "frequency": 440}


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    torch.manual_seed(0)
    manifest = {
        "mel": mel_cases(make_speech()),
        "decode": make_clips(),
        "mp3": make_mp3(),
    }
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total // 1024} KB, to {OUT}")
    for case in manifest["mel"]:
        print(f"  {case['name']}: torchaudio float32 vs float64 {case['torchaudio_float32_error']:.2e}")


if __name__ == "__main__":
    main()
