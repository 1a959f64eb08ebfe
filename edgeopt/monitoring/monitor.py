"""``edgeopt monitor``: a field log against the deployment it came from."""

from __future__ import annotations

from pathlib import Path

from edgeopt.errors import DataError
from edgeopt.monitoring.drift import DriftReport, compare_features, compare_latency
from edgeopt.monitoring.fieldlog import read_log

DEFAULT_ALPHA = 0.001
DEFAULT_PSI = 0.25
DEFAULT_LATENCY_TOLERANCE = 2.0
"""Field p90 may reach this multiple of the profiled p90 (the predictor adds a little Python per call)."""
DEFAULT_MIN_SAMPLES = 30


def monitor(
    ref: str,
    log: str | Path,
    *,
    alpha: float = DEFAULT_ALPHA,
    psi_threshold: float = DEFAULT_PSI,
    latency_tolerance: float = DEFAULT_LATENCY_TOLERANCE,
    min_samples: int = DEFAULT_MIN_SAMPLES,
) -> DriftReport:
    """Compare the field log at ``log`` with the calibration summary and profile registered for ``ref``.

    ``ref`` is a registry ref (``NAME``, ``NAME:3``, ``NAME@production``). See ``edgeopt.monitoring.drift``
    for the tests. Raises ``DataError`` for an unreadable log, ``RegistryError`` for an unknown ref.
    """
    from edgeopt.registry.store import require_registry

    if not 0 < alpha < 1 or psi_threshold <= 0 or latency_tolerance <= 0 or min_samples < 2:
        raise DataError("monitor thresholds out of range",
                        hint="0 < alpha < 1, psi_threshold > 0, latency_tolerance > 0, min_samples >= 2")
    record = require_registry().resolve(ref)
    field_log = read_log(log)
    notes: list[str] = []
    if field_log.bad_lines:
        notes.append(f"{field_log.bad_lines} unreadable line(s) in the log were skipped")
    hashes = {h.get("manifest_sha256") for h in field_log.headers if h.get("manifest_sha256")}
    if hashes and record.manifest_sha256 not in hashes:
        notes.append(f"the log was recorded with a different artifact than {record.ref} (manifest hash differs)")
    reference = dict((record.calibration or {}).get("features") or {})
    if not reference:
        notes.append(f"{record.ref} has no calibration summary; only latency is checked")
    elif record.calibration.get("synthetic"):
        notes.append(f"{record.ref} was calibrated on synthetic data: drift is measured against random inputs")
    features, feature_notes = compare_features(
        reference, field_log.features, alpha=alpha, psi_threshold=psi_threshold, min_samples=min_samples
    )
    latency, latency_notes = compare_latency(field_log.calls, record.profile, tolerance=latency_tolerance)
    report = DriftReport(
        deployment=record.ref,
        samples=field_log.samples,
        calls=len(field_log.calls),
        features=tuple(sorted(features, key=lambda f: (not f.drifted, -f.psi))),
        latency=tuple(latency),
        alpha=alpha,
        psi_threshold=psi_threshold,
        latency_tolerance=latency_tolerance,
        notes=tuple(notes + feature_notes + latency_notes),
    )
    return _with_advice(report, record.name, record.ref)


def _with_advice(report: DriftReport, name: str, ref: str) -> DriftReport:
    from dataclasses import replace

    advice = []
    if report.input_drift:
        drifted = ", ".join(f.feature for f in report.features if f.drifted)
        advice.append(
            f"inputs drifted from the calibration data ({drifted}): check the input pipeline (scaling, colour "
            f"inversion, sensor noise); if the field data is right, collect representative samples and "
            f"re-calibrate: edgeopt redeploy {ref} --calib FIELD.npz --eval LABELLED.npz"
        )
    if report.latency_drift:
        slow = ", ".join(f"batch {lat.batch} p90 {lat.ratio:.1f}x" for lat in report.latency if lat.drifted)
        advice.append(
            f"field latency exceeds the profiled p90 ({slow}): check the device's load and thermal state, "
            f"then re-profile there (edgeopt profile ARTIFACT) or re-run the optimization: edgeopt redeploy {ref}"
        )
    if not advice:
        advice.append(f"no drift: {name} runs on data like its calibration data, as fast as profiled")
    return replace(report, advice=tuple(advice))
