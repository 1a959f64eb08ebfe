"""Pruning of torch modules: structured channels (torch-pruning), unstructured magnitude, 2:4 semi-structured.

Structured pruning removes whole filters and the matching input channels of every layer that reads
them; torch-pruning's dependency graph keeps residual additions and concatenations consistent, so the
result is a smaller dense model that runs faster everywhere. Unstructured and 2:4 pruning zero weights
through ``torch.nn.utils.prune`` masks (kept during fine-tuning, made permanent by ``finalize``): they
shrink nothing on CPUs; 2:4 is the pattern NVIDIA sparse tensor cores (TensorRT) turn into speed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgeopt.compression.spec import PruneSpec
from edgeopt.errors import ModelError
from edgeopt.extras import import_optional

if TYPE_CHECKING:
    import torch

_LEAF_TYPES = ("Conv1d", "Conv2d", "Conv3d", "Linear")


@dataclass(frozen=True)
class PruneReport:
    """What pruning did: kind, parameters before/after (``nonzero`` counts zeros as removed), notes."""

    kind: str
    params_before: int
    params_after: int
    nonzero_after: int
    layers: int
    notes: tuple[str, ...] = ()


def _weighted(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """Conv/Linear modules (parametrized ones too: their class is a generated subclass) in definition order."""
    import torch

    kinds = tuple(getattr(torch.nn, name) for name in _LEAF_TYPES)
    return [(n, m) for n, m in model.named_modules() if isinstance(m, kinds)]


def count_params(model: torch.nn.Module) -> tuple[int, int]:
    """(parameters, nonzero parameters) of ``model``, masks applied."""
    total = nonzero = 0
    for _, module in model.named_modules():
        for name, p in module.named_parameters(recurse=False):
            value = getattr(module, name[:-5]) if name.endswith("_orig") else p
            total += value.numel()
            nonzero += int((value != 0).sum())
    return total, nonzero


def output_layer(model: torch.nn.Module) -> torch.nn.Module | None:
    """The last Conv/Linear module in definition order: the classifier, never pruned."""
    layers = _weighted(model)
    return layers[-1][1] if layers else None


def prune_structured(
    model: torch.nn.Module, example_inputs: tuple[torch.Tensor, ...], *, ratio: float, round_to: int | None = None
) -> list[str]:
    """Remove ``ratio`` of the output channels of every prunable layer in place (L2 group magnitude, one
    ratio per layer), keeping the classifier's outputs; return notes. Raises ``ModelError`` when
    torch-pruning cannot trace the model."""
    tp = import_optional("torch_pruning", extra="compress", feature=f"--prune structured:{ratio:g}")
    ignored = [m for m in (output_layer(model),) if m is not None]
    try:
        pruner = tp.pruner.BasePruner(
            model,
            example_inputs if len(example_inputs) > 1 else example_inputs[0],
            importance=tp.importance.GroupMagnitudeImportance(p=2),
            pruning_ratio=ratio,
            ignored_layers=ignored,
            round_to=round_to,
        )
        groups = 0
        for group in pruner.step(interactive=True):
            group.prune()
            groups += 1
    except Exception as exc:  # torch-pruning raises many kinds on graphs it cannot trace
        raise ModelError(
            f"structured pruning could not trace {type(model).__name__}: {str(exc).splitlines()[0][:200]}",
            hint="torch-pruning needs a traceable forward(); try --prune unstructured:RATIO",
        ) from exc
    return [f"structured: {groups} channel group(s) pruned by {ratio:.0%} (torch-pruning {tp.__version__})"]


def _two_four_mask(weight: torch.Tensor) -> torch.Tensor | None:
    """Keep the 2 largest of every 4 consecutive input weights; None when the input dim is not a multiple of 4."""
    import torch

    w = weight.detach().reshape(weight.shape[0], -1) if weight.dim() == 2 else weight.detach().permute(
        0, *range(2, weight.dim()), 1).reshape(weight.shape[0], -1)
    if w.shape[1] % 4:
        return None
    groups = w.abs().reshape(-1, 4)
    keep = groups.topk(2, dim=1).indices
    mask = torch.zeros_like(groups).scatter_(1, keep, 1.0).reshape(w.shape)
    if weight.dim() == 2:
        return mask
    shape = (weight.shape[0], *weight.shape[2:], weight.shape[1])
    return mask.reshape(shape).permute(0, weight.dim() - 1, *range(1, weight.dim() - 1)).contiguous()


def prune_masked(model: torch.nn.Module, spec: PruneSpec) -> list[str]:
    """Mask weights in place (unstructured per layer or global, or 2:4); masks stay until ``finalize``."""
    import torch.nn.utils.prune as tprune

    layers = _weighted(model)
    notes: list[str] = []
    if spec.kind == "unstructured-global":
        tprune.global_unstructured([(m, "weight") for _, m in layers], pruning_method=tprune.L1Unstructured,
                                   amount=spec.ratio)
    elif spec.kind == "unstructured":
        for _, m in layers:
            tprune.l1_unstructured(m, "weight", amount=spec.ratio)
    else:
        skipped = []
        for name, m in layers:
            mask = _two_four_mask(m.weight)
            if mask is None:
                skipped.append(name)
                continue
            tprune.custom_from_mask(m, "weight", mask)
        if skipped:
            notes.append(f"2:4: left dense (input size not a multiple of 4): {', '.join(skipped)}")
    notes.append(
        f"{spec.label}: weights zeroed, not removed; the dense model is as fast as before on CPU"
        + (" (2:4 runs faster on NVIDIA sparse tensor cores with TensorRT)" if spec.kind == "2:4" else "")
    )
    return notes


def finalize(model: torch.nn.Module) -> None:
    """Make pruning masks permanent (``weight = weight_orig * mask``) so the model exports as a plain module."""
    import torch.nn.utils.prune as tprune

    for _, m in _weighted(model):
        if tprune.is_pruned(m) and hasattr(m, "weight_mask"):
            tprune.remove(m, "weight")


def apply_pruning(
    model: torch.nn.Module, spec: PruneSpec, example_inputs: tuple[torch.Tensor, ...]
) -> tuple[torch.nn.Module, PruneReport]:
    """Prune ``model`` in place per ``spec``; return it and a report (fine-tune afterwards, then ``finalize``)."""
    before, _ = count_params(model)
    if spec.kind == "structured":
        notes = prune_structured(model, example_inputs, ratio=spec.ratio)
    else:
        notes = prune_masked(model, spec)
    after, nonzero = count_params(model)
    return model, PruneReport(spec.label, before, after, nonzero, len(_weighted(model)), tuple(notes))
