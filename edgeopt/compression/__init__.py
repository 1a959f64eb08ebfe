"""Model compression for torch models: pruning, distillation, weight sharing, binarization, QAT — measured.

``edgeopt.compression.compress`` runs the steps a ``CompressionSpec`` asks for and returns every stage's
params, FLOPs, size on disk, metric and latency; ``run_deploy`` calls ``compress_for_deploy`` before import.
Names load on first use, so the CLI's option parsing (``edgeopt.compression.spec``) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeopt.lazy import lazy_names

if TYPE_CHECKING:
    from edgeopt.compression.pipeline import CompressionResult
    from edgeopt.compression.sdk import compress, compress_for_deploy
    from edgeopt.compression.spec import CompressionSpec, PruneSpec, TrainConfig, parse_prune

_WHERE = {
    "CompressionResult": "edgeopt.compression.pipeline",
    "compress": "edgeopt.compression.sdk",
    "compress_for_deploy": "edgeopt.compression.sdk",
    "CompressionSpec": "edgeopt.compression.spec",
    "PruneSpec": "edgeopt.compression.spec",
    "TrainConfig": "edgeopt.compression.spec",
    "parse_prune": "edgeopt.compression.spec",
}

__all__ = ["CompressionResult", "CompressionSpec", "PruneSpec", "TrainConfig", "compress", "compress_for_deploy",
           "parse_prune"]

__getattr__, __dir__ = lazy_names(__name__, _WHERE)
