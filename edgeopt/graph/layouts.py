"""Input layouts (``NHWC``, ``NCHW``...) an importer knows and records in the normalized model.

An importer that knows how its inputs are laid out (Keras models are channels-last by default) stamps
the layout into the ONNX model's ``metadata_props`` under ``LAYOUTS_KEY`` before normalizing; the
metadata travels with the model file, so the manifest and the data loaders read it back from there.
Models without the key have no declared layout (nothing is guessed here).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

__all__ = ["LAYOUTS_KEY", "layout_for_rank", "read_layouts", "stamp_layouts"]

LAYOUTS_KEY = "edgeopt.input_layouts"
"""``metadata_props`` key holding a JSON object ``{input name: layout}``."""

_CHANNELS_LAST = {3: "NWC", 4: "NHWC", 5: "NDHWC"}
_CHANNELS_FIRST = {3: "NCW", 4: "NCHW", 5: "NCDHW"}


def layout_for_rank(data_format: str, rank: int) -> str | None:
    """The layout name of a ``rank``-D input under Keras' ``channels_last``/``channels_first``; None when
    the rank has no spatial layout (e.g. a 2-D feature vector)."""
    table = _CHANNELS_FIRST if data_format == "channels_first" else _CHANNELS_LAST
    return table.get(rank)


def stamp_layouts(model: onnx.ModelProto, layouts: Mapping[str, str]) -> None:
    """Record ``layouts`` (by input name) in ``model``'s metadata, replacing any earlier record."""
    kept = [(p.key, p.value) for p in model.metadata_props if p.key != LAYOUTS_KEY]
    del model.metadata_props[:]
    for key, value in kept:
        model.metadata_props.add(key=key, value=value)
    if layouts:
        model.metadata_props.add(key=LAYOUTS_KEY, value=json.dumps(dict(layouts), sort_keys=True))


def read_layouts(path: str | Path) -> dict[str, str]:
    """The layouts recorded in the ONNX model at ``path`` (weights are not read); ``{}`` when none are, or when
    ``path`` is not a readable ONNX file (e.g. a target's own model format)."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (OSError, ValueError, DecodeError):
        return {}
    for prop in model.metadata_props:
        if prop.key == LAYOUTS_KEY:
            try:
                value = json.loads(prop.value)
            except ValueError:
                return {}
            if isinstance(value, dict):
                return {str(k): str(v) for k, v in value.items() if isinstance(v, str)}
    return {}
