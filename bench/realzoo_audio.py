"""Synthesized 16 kHz audio for the voice-activity detector of the real-model corpus.

No recording ships in a PyPI wheel we use, so the stream is built from the parts speech is made of: voiced
segments (a glottal pulse train at 90-260 Hz with jitter, shaped by three formant resonances that move from
syllable to syllable, under a 3-6 Hz syllable envelope), unvoiced bursts (high-passed noise, as fricatives),
pauses of near silence, and background noise (white or low-passed hum) at a random level. It is not speech,
but it has speech's spectral and temporal structure, which is what a VAD's activations respond to.
"""

from __future__ import annotations

import numpy as np

SR = 16000


def _voiced(rng: np.random.Generator, n: int) -> np.ndarray:
    f0 = rng.uniform(90, 260) * (1 + 0.08 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * np.arange(n) / SR))
    phase = np.cumsum(f0 * (1 + rng.normal(0, 0.01, n)) / SR)
    pulses = np.diff(np.floor(phase), prepend=0.0)  # one impulse per glottal period
    spec = np.fft.rfft(pulses)
    freqs = np.fft.rfftfreq(n, 1 / SR)
    envelope = np.zeros_like(freqs)
    for centre, width, gain in ((rng.uniform(300, 850), 80, 1.0), (rng.uniform(850, 2300), 120, 0.6),
                                (rng.uniform(2300, 3200), 180, 0.3)):  # fmt: skip
        envelope += gain * np.exp(-0.5 * ((freqs - centre) / width) ** 2)
    wave = np.fft.irfft(spec * (envelope + 0.02), n)
    return wave / (np.abs(wave).max() + 1e-9)


def _unvoiced(rng: np.random.Generator, n: int) -> np.ndarray:
    spec = np.fft.rfft(rng.normal(0, 1, n))
    freqs = np.fft.rfftfreq(n, 1 / SR)
    wave = np.fft.irfft(spec * (freqs > rng.uniform(2500, 4500)), n)
    return wave / (np.abs(wave).max() + 1e-9)


def _utterance(rng: np.random.Generator, seconds: float) -> np.ndarray:
    parts = []
    total = int(seconds * SR)
    while sum(len(p) for p in parts) < total:
        syllable = int(SR / rng.uniform(3, 6))
        ramp = np.sin(np.linspace(0, np.pi, syllable)) ** 0.7
        sound = _unvoiced(rng, syllable) * 0.3 if rng.random() < 0.2 else _voiced(rng, syllable)
        parts.append(sound * ramp * rng.uniform(0.3, 1.0))
    return np.concatenate(parts)[:total]


def stream(rng: np.random.Generator, *, seconds: float) -> np.ndarray:
    """``seconds`` of mono float32 audio in [-1, 1]: utterances of 0.4-2.5 s between pauses of 0.2-1.5 s,
    over background noise, at a random overall level."""
    total = int(seconds * SR)
    out = np.zeros(total, np.float64)
    t = int(rng.uniform(0.05, 0.6) * SR)
    while t < total:
        utt = _utterance(rng, rng.uniform(0.4, 2.5))[: total - t]
        out[t : t + len(utt)] = utt
        t += len(utt) + int(rng.uniform(0.2, 1.5) * SR)
    noise = rng.normal(0, 1, total)
    if rng.random() < 0.5:  # a low hum instead of hiss
        noise = np.fft.irfft(np.fft.rfft(noise) * (np.fft.rfftfreq(total, 1 / SR) < 400), total)
        noise /= np.abs(noise).max() + 1e-9
    out = out * rng.uniform(0.2, 0.8) + noise * 10 ** rng.uniform(-3.5, -1.7)
    return np.clip(out, -1, 1).astype(np.float32)
