"""Field monitoring pieces: per-sample features, PSI and KS, the field log."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeopt.errors import DataError
from edgeopt.monitoring.drift import compare_features, compare_latency, ks_2samp, psi, psi_noise
from edgeopt.monitoring.fieldlog import FieldRecorder, read_log
from edgeopt.monitoring.stats import MAX_CHANNELS, sample_features, summarize


def test_features_per_channel_for_images_and_per_column_for_tables():
    images = np.stack([np.full((3, 4, 4), c, np.float32) + np.arange(3)[:, None, None] for c in (0.0, 1.0)])
    f = sample_features({"img": images})
    assert set(f) == {f"img[c{c}].{s}" for c in range(3) for s in ("mean", "std", "min", "max")}
    np.testing.assert_allclose(f["img[c2].mean"], [2.0, 3.0])
    table = np.array([[1.0, 5.0], [2.0, 6.0]])
    assert set(sample_features({"x": table})) == {"x[c0].mean", "x[c1].mean"}  # one value per column
    wide = np.zeros((4, MAX_CHANNELS + 1))
    assert set(sample_features({"w": wide})) == {f"w[c0].{s}" for s in ("mean", "std", "min", "max")}
    assert sample_features({"s": np.array(["a", "b"])}) == {}


def test_summary_keeps_a_bounded_sketch():
    big = {"x": np.random.default_rng(0).normal(size=(5000, 2))}
    summary = summarize(big, source="mem")
    assert summary["samples"] == 5000 and summary["features"]["x[c0].mean"]["n"] == 5000
    assert len(summary["features"]["x[c0].mean"]["values"]) == 512
    json.dumps(summary)


def test_psi_and_ks_separate_same_from_shifted():
    rng = np.random.default_rng(1)
    ref, same, shifted = rng.normal(size=400), rng.normal(size=300), rng.normal(0.8, 1.0, size=300)
    assert psi(ref, same) < psi_noise(10, 400, 300) * 2.5
    assert psi(ref, shifted) > 0.5
    d_same, p_same = ks_2samp(ref, same)
    d_shift, p_shift = ks_2samp(ref, shifted)
    assert p_same > 0.01 and p_shift < 1e-10 and d_shift > d_same
    assert psi(np.zeros(100), np.zeros(50)) == pytest.approx(0.0)  # a constant reference: two bins, no error
    assert psi(np.zeros(100), -np.ones(50)) > 5


def test_compare_needs_enough_samples_and_both_tests():
    rng = np.random.default_rng(2)
    reference = {"a": {"n": 500, "values": sorted(rng.normal(size=500).tolist())}}
    found, notes = compare_features(reference, {"a": rng.normal(size=10)}, alpha=0.001, psi_threshold=0.25,
                                    min_samples=30)
    assert found == [] and "fewer than 30" in notes[0]
    found, _ = compare_features(reference, {"a": rng.normal(0.3, 1, size=200_000)}, alpha=0.001, psi_threshold=0.25,
                                min_samples=30)
    assert found[0].p_value < 1e-4 and not found[0].drifted  # significant but negligible: PSI says no


def test_latency_against_profiled_p90():
    profile = {"latency": {"1": {"p90": 0.001}}}
    lat, _ = compare_latency([(1, 0.0009)] * 50, profile, tolerance=2.0)
    assert not lat[0].drifted and lat[0].ratio == pytest.approx(0.9)
    lat, _ = compare_latency([(1, 0.003)] * 50, profile, tolerance=2.0)
    assert lat[0].drifted
    lat, notes = compare_latency([(4, 0.003)] * 5, profile, tolerance=2.0)
    assert lat[0].ratio is None and not lat[0].drifted and "no profiled latency" in notes[0]


def test_field_log_round_trip_and_damaged_lines(tmp_path):
    log = tmp_path / "field.jsonl"
    rec = FieldRecorder(log, artifact="/a", manifest_sha256="abc", every=2)
    for i in range(6):
        rec.record({"x": np.full((2, 3), float(i), np.float32)}, 0.001 * (i + 1))
    rec.close()
    with open(log, "a") as f:
        f.write('{"t": 1, "latency_s": 0.1, "fea')  # a write cut short
    got = read_log(log)
    assert len(got.calls) == 3 and got.samples == 6  # every second call, two samples each
    np.testing.assert_allclose(got.features["x[c0].mean"], [0, 0, 2, 2, 4, 4])
    assert got.bad_lines == 1 and got.headers[0]["manifest_sha256"] == "abc"
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match="no recorded calls"):
        read_log(empty)
    with pytest.raises(DataError, match="no field log"):
        read_log(tmp_path / "missing.jsonl")
