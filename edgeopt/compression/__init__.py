"""Model compression for torch models: pruning, distillation, weight sharing, binarization, QAT — measured.

``edgeopt.compression.compress`` runs the steps a ``CompressionSpec`` asks for and returns every stage's
params, FLOPs, size on disk, metric and latency; ``run_deploy`` calls ``compress_for_deploy`` before import.
"""

from __future__ import annotations

from edgeopt.compression.pipeline import CompressionResult
from edgeopt.compression.sdk import compress, compress_for_deploy
from edgeopt.compression.spec import CompressionSpec, PruneSpec, TrainConfig, parse_prune

__all__ = ["CompressionResult", "CompressionSpec", "PruneSpec", "TrainConfig", "compress", "compress_for_deploy",
           "parse_prune"]
