"""``edgeopt deploy`` options for compressing a torch model first (``edgeopt.compress``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edgeopt.compression.spec import CompressionSpec, TrainConfig, parse_prune
from edgeopt.errors import InputSpecError

if TYPE_CHECKING:
    from rich.console import Console

PANEL = "Compression (torch models, before the search)"

PruneOpt = Annotated[
    str | None,
    typer.Option("--prune", help="Prune first: structured:RATIO, unstructured:RATIO, unstructured-global:RATIO "
                 "or 2:4 (needs --train)", rich_help_panel=PANEL),
]
DistillOpt = Annotated[
    bool, typer.Option("--distill", help="Fine-tune with distillation from the original", rich_help_panel=PANEL)
]
ClusterOpt = Annotated[
    int | None, typer.Option("--cluster", help="Share weights: k-means per layer to N clusters (2..256)",
                             rich_help_panel=PANEL)
]
BinarizeOpt = Annotated[
    bool, typer.Option("--binarize", help="Experimental: sign weights, per-channel scales", rich_help_panel=PANEL)
]
QatOpt = Annotated[
    bool, typer.Option("--qat", help="Quantization-aware training when int8 misses --max-drop", rich_help_panel=PANEL)
]
TrainOpt = Annotated[
    Path | None, typer.Option("--train", help="Fine-tuning data: .npz (inputs + labels) or image folder",
                              rich_help_panel=PANEL)
]
EpochsOpt = Annotated[
    int, typer.Option("--epochs", help="Fine-tuning epochs per step (may stop early)", rich_help_panel=PANEL)
]
OptimizerOpt = Annotated[str, typer.Option("--optimizer", help="adam or sgd", rich_help_panel=PANEL)]
LrOpt = Annotated[float, typer.Option("--lr", help="Fine-tuning learning rate", rich_help_panel=PANEL)]
ScheduleOpt = Annotated[str, typer.Option("--lr-schedule", help="cosine, step or none", rich_help_panel=PANEL)]
SeedOpt = Annotated[
    int, typer.Option("--seed", help="Fine-tuning seed (same inputs, same model)", rich_help_panel=PANEL)
]


def compression_spec(
    *,
    prune: str | None,
    distill: bool,
    cluster: int | None,
    binarize: bool,
    qat: bool,
    train: Path | None,
    epochs: int,
    optimizer: str,
    lr: float,
    lr_schedule: str,
    seed: int,
) -> CompressionSpec | None:
    """The spec the options ask for, or None when no compression option was given."""
    spec = CompressionSpec(
        prune=parse_prune(prune) if prune else None, distill=distill, cluster=cluster, binarize=binarize, qat=qat,
        train=train,
        training=TrainConfig(epochs=epochs, optimizer=optimizer, lr=lr, lr_schedule=lr_schedule, seed=seed),
    )
    if not spec.active:
        if train is not None:
            raise InputSpecError("--train is only used with --prune, --distill, --cluster, --binarize or --qat")
        return None
    return spec


def print_compression(console: Console, manifest: dict) -> None:
    """One line per compression stage (params, FLOPs, size, metric, p50) and the deployed model's drop against
    the uncompressed one; nothing when the deploy did not compress."""
    from edgeopt.cli.render import fmt_bytes, fmt_num

    record = manifest.get("compression") or {}
    stages = record.get("stages") or []
    if not stages:
        return
    for s in stages:
        p50 = (s.get("latency") or {}).get("p50_s")
        console.print(
            f"compression {s['name']}: {s['params']} params ({s['nonzero_params']} nonzero), {s['flops']} FLOPs, "
            f"{fmt_bytes(s['size_bytes'])}, {s['metric_name']} {fmt_num(s['metric'])}, "
            f"p50 {fmt_num(p50 * 1e3 if p50 is not None else None, 3)} ms"
        )
    deployed = record.get("deployed")
    if deployed:
        console.print(
            f"deployed against the uncompressed model: {stages[0]['metric_name']} {fmt_num(stages[0]['metric'])} → "
            f"{fmt_num(deployed['metric'])}, drop {fmt_num(deployed['drop_vs_uncompressed'], 3)}"
        )
