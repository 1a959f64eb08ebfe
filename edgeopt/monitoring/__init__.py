"""Field monitoring: record cheap input summaries and latency in the field, compare them with deploy time.

``FieldRecorder`` (used by ``edgeopt.load(..., monitor_log=...)``) appends one JSON line per call;
``monitor(ref, log)`` compares a log with the calibration summary and profile the registry holds.
"""

from edgeopt.monitoring.drift import DriftReport, FeatureDrift, LatencyDrift
from edgeopt.monitoring.fieldlog import FieldLog, FieldRecorder, read_log
from edgeopt.monitoring.monitor import monitor
from edgeopt.monitoring.stats import sample_features, summarize

__all__ = [
    "DriftReport",
    "FeatureDrift",
    "FieldLog",
    "FieldRecorder",
    "LatencyDrift",
    "monitor",
    "read_log",
    "sample_features",
    "summarize",
]
