"""What to compress and how to recover: the typed options every compression pass reads."""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgeopt.errors import InputSpecError

PRUNE_KINDS = ("structured", "unstructured", "unstructured-global", "2:4")
OPTIMIZERS = ("adam", "sgd")
LR_SCHEDULES = ("cosine", "step", "none")
_PRUNE_HINT = "give --prune structured:0.5, unstructured:0.5, unstructured-global:0.5 or 2:4"


@dataclass(frozen=True)
class PruneSpec:
    """One pruning request, parsed from ``KIND[:RATIO]``."""

    kind: str
    """``structured`` (whole channels/filters, graph kept consistent by torch-pruning), ``unstructured``
    (smallest weights per layer), ``unstructured-global`` (smallest weights over all layers) or ``2:4``
    (two of every four input weights, the semi-structured pattern NVIDIA sparse tensor cores run)."""
    ratio: float
    """Fraction of channels (structured) or weights (unstructured) removed; 0.5 for ``2:4``."""

    @property
    def label(self) -> str:
        return "2:4" if self.kind == "2:4" else f"{self.kind}:{self.ratio:g}"


def parse_prune(text: str) -> PruneSpec:
    """``structured:0.5`` → ``PruneSpec("structured", 0.5)``; ``2:4`` → ``PruneSpec("2:4", 0.5)``."""
    text = text.strip().lower()
    if text == "2:4":
        return PruneSpec("2:4", 0.5)
    kind, _, ratio_text = text.partition(":")
    if kind not in PRUNE_KINDS[:3]:
        raise InputSpecError(f"unknown pruning kind {kind!r}", hint=_PRUNE_HINT)
    try:
        ratio = float(ratio_text) if ratio_text else 0.5
    except ValueError as exc:
        raise InputSpecError(f"pruning ratio must be a number, got {ratio_text!r}", hint=_PRUNE_HINT) from exc
    if not (0.0 < ratio < 1.0):
        raise InputSpecError(f"pruning ratio must lie strictly between 0 and 1, got {ratio:g}", hint=_PRUNE_HINT)
    return PruneSpec(kind, ratio)


@dataclass(frozen=True)
class TrainConfig:
    """How the recovery fine-tuning runs (``edgeopt.compression.train_loop.fit``)."""

    epochs: int = 10
    """Upper bound on epochs; early stopping may end sooner."""
    optimizer: str = "adam"
    """``adam`` or ``sgd`` (momentum 0.9)."""
    lr: float = 1e-3
    """Initial learning rate."""
    lr_schedule: str = "cosine"
    """``cosine`` (to zero over ``epochs``), ``step`` (×0.3 every third of the epochs) or ``none``."""
    batch_size: int = 64
    """Samples per optimizer step."""
    seed: int = 0
    """Seeds torch and the data order: the same inputs give the same model."""
    patience: int = 3
    """Stop after this many epochs without a better eval metric; the best epoch's weights are kept."""
    temperature: float = 4.0
    """Distillation temperature for the soft targets."""
    alpha: float = 0.7
    """Weight of the distillation loss; ``1 - alpha`` goes to the task loss."""

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 1 or self.patience < 1:
            raise InputSpecError("--epochs must be >= 0, batch size and patience >= 1")
        if self.optimizer not in OPTIMIZERS:
            raise InputSpecError(f"unknown optimizer {self.optimizer!r}", hint=f"choose one of {', '.join(OPTIMIZERS)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise InputSpecError(
                f"unknown learning-rate schedule {self.lr_schedule!r}", hint=f"choose one of {', '.join(LR_SCHEDULES)}"
            )
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise InputSpecError(f"--lr must be a positive number, got {self.lr}")
        if not (self.temperature > 0 and 0.0 <= self.alpha <= 1.0):
            raise InputSpecError("distillation needs temperature > 0 and 0 <= alpha <= 1")


@dataclass(frozen=True)
class CompressionSpec:
    """Which compression steps to run on a torch model, in this order: prune, cluster or binarize, QAT.

    Every step that changes weights is followed by fine-tuning on ``train`` (with distillation from the
    original model when ``distill``)."""

    prune: PruneSpec | None = None
    """Pruning to apply, or None."""
    distill: bool = False
    """Fine-tune with knowledge distillation from the original model (soft targets + task loss)."""
    cluster: int | None = None
    """Per-layer k-means weight sharing with this many clusters (2..256), stored as codebook + uint8 indices."""
    binarize: bool = False
    """Experimental: sign weights with a per-channel scale (first and last layer stay float)."""
    qat: bool = False
    """Quantization-aware training when post-training int8 misses ``max_drop``; the model leaves as QDQ."""
    qat_always: bool = False
    """Run QAT even when post-training int8 already meets the budget."""
    train: object = None
    """Training data: an ``.npz`` (inputs + ``labels``), an image folder, or a mapping of arrays with ``labels``."""
    training: TrainConfig = TrainConfig()
    """Fine-tuning settings."""

    def __post_init__(self) -> None:
        if self.cluster is not None and not (2 <= self.cluster <= 256):
            raise InputSpecError(f"--cluster needs 2..256 clusters, got {self.cluster}",
                                 hint="indices are stored as uint8: at most 256 clusters")
        if self.cluster is not None and self.binarize:
            raise InputSpecError("--cluster and --binarize both replace the weights; choose one")
        if self.qat and (self.cluster is not None or self.binarize):
            raise InputSpecError("--qat re-quantizes the weights to int8, undoing --cluster/--binarize; choose one")

    @property
    def active(self) -> bool:
        """True when any step is requested."""
        return bool(self.prune or self.cluster or self.binarize or self.qat or self.distill)

    @property
    def needs_training(self) -> bool:
        """Steps that only make sense with fine-tuning (everything except post-training clustering)."""
        return bool(self.prune or self.binarize or self.qat or self.distill)

    def describe(self) -> dict:
        """JSON-ready summary for the manifest."""
        t = self.training
        return {
            "prune": self.prune.label if self.prune else None,
            "distill": self.distill,
            "cluster": self.cluster,
            "binarize": self.binarize,
            "qat": "always" if self.qat_always else self.qat,
            "training": {
                "epochs": t.epochs, "optimizer": t.optimizer, "lr": t.lr, "lr_schedule": t.lr_schedule,
                "batch_size": t.batch_size, "seed": t.seed, "patience": t.patience,
                "temperature": t.temperature, "alpha": t.alpha,
            },
        }
