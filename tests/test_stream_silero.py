"""The real Silero VAD (the silero-vad 6.2.3 wheel from PyPI) deployed as a stream, on synthesized speech-like audio.

Slow (a pip download and a full ``--precision auto`` search); skipped when PyPI cannot be reached. The wheel's
``silero_vad_16k_op15.onnx`` is used: ``silero_vad.onnx`` (both sample rates behind an ``If``) cannot be loaded
by ONNX Runtime once its input length is fixed (its other branch's LSTM fails static shape inference), and
edgeopt's normalization fixes every input dimension.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import edgeopt

pytestmark = pytest.mark.slow
SR, CHUNK, CONTEXT = 16000, 512, 64
"""silero-vad's ``OnnxWrapper`` feeds each 512-sample chunk behind the previous chunk's last 64 samples."""


@pytest.fixture(scope="module")
def silero(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("silero")
    got = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(tmp),
                          "silero-vad==6.2.3"], capture_output=True, text=True, timeout=300)
    wheels = list(tmp.glob("silero_vad-6.2.3-*.whl"))
    if got.returncode != 0 or not wheels:
        pytest.skip(f"silero-vad could not be downloaded from PyPI: {got.stderr.strip()[-200:]}")
    with zipfile.ZipFile(wheels[0]) as wheel:
        wheel.extract("silero_vad/data/silero_vad_16k_op15.onnx", tmp)
    return tmp / "silero_vad" / "data" / "silero_vad_16k_op15.onnx"


def speech_like(seconds: float, seed: int) -> np.ndarray:
    """Voiced bursts (a harmonic source under three formant resonances and a syllable envelope, plus breath
    noise) between pauses of room noise, at 16 kHz."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    audio = rng.normal(0, 0.003, n)
    t = int(rng.uniform(0.2, 0.6) * SR)
    while t < n:
        dur = min(int(rng.uniform(0.3, 1.2) * SR), n - t)
        tt = np.arange(dur) / SR
        f0 = rng.uniform(100, 220) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(2, 5) * tt))
        phase = 2 * np.pi * np.cumsum(f0) / SR
        source = sum(np.sin(k * phase) / k for k in range(1, 30))
        freqs = np.fft.rfftfreq(dur, 1 / SR)
        gain = sum(1 / (1 + ((freqs - rng.uniform(lo, hi)) / bw) ** 2)
                   for lo, hi, bw in ((500, 800, 120), (1000, 1800, 150), (2300, 3000, 200)))
        shaped = np.fft.irfft(np.fft.rfft(source) * gain, n=dur)
        syllables = np.abs(np.sin(np.pi * tt * rng.uniform(3, 6))) ** 0.5
        edges = np.minimum(1, np.minimum(tt, tt[::-1]) / 0.03)
        audio[t : t + dur] += shaped / (np.abs(shaped).max() + 1e-9) * syllables * edges * rng.uniform(0.1, 0.5)
        audio[t : t + dur] += rng.normal(0, 0.01, dur) * syllables
        t += dur + int(rng.uniform(0.2, 0.8) * SR)
    return audio.astype(np.float32)


def chunked(audio: np.ndarray, path: Path) -> Path:
    steps = len(audio) // CHUNK
    padded = np.concatenate([np.zeros(CONTEXT, np.float32), audio[: steps * CHUNK]])
    x = np.stack([padded[i * CHUNK : i * CHUNK + CHUNK + CONTEXT] for i in range(steps)])
    np.savez(path, input=x, sr=np.full(steps, SR, np.int64))  # the state is left out: it starts from zeros
    return path


def test_silero_vad_deploys_to_cpu_as_a_stream(silero, tmp_path) -> None:
    calib = chunked(speech_like(3, seed=0), tmp_path / "c.npz")
    evaluation = chunked(speech_like(5, seed=1), tmp_path / "e.npz")
    deployment = edgeopt.deploy(silero, target="cpu", precision="auto", calib=calib, eval=evaluation,
                                input_shapes={"input": (1, CHUNK + CONTEXT)}, batch=(1, 8), timing_s=0.2,
                                out=tmp_path / "vad.edgeopt")
    m = deployment.manifest
    assert m["stream"]["state"] == [{"output": "stateN", "input": "state"}]
    assert m["stream"]["steps"] == len(np.load(evaluation)["input"])
    assert m["profile"]["latency"]["8"] == {"error": "not batchable: stateful input 'state'"}
    assert m["metrics"]["drop"] <= 1.0 and m["metrics"]["fidelity"]["sqnr_db"] > 20
    steps = np.load(evaluation)["input"]
    with edgeopt.load(deployment.path) as vad:
        probs = np.concatenate([o["output"].ravel() for o in vad.stream({"input": x[None], "sr": np.array(SR)}
                                                                           for x in steps)])
    assert probs.max() > 0.5 and probs.min() < 0.1  # it hears the bursts and the pauses
