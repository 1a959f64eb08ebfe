"""Built-in importer: a fitted scikit-learn estimator or pipeline -> ONNX (skl2onnx) -> Graph.

Sources it claims: an estimator object whose class lives in ``sklearn``, a ``.skops`` file (skops' safe
format: loaded with skops' trusted types only — scikit-learn, numpy and scipy classes — and refused in one
line, naming the rest, when it holds any other type), or a ``.joblib``/``.pkl`` path (loaded only with
``options.trust_pickle``). Classifiers are converted without ZipMap, so
probabilities come out as a plain ``[batch, classes]`` tensor. sklearn/skl2onnx are imported lazily.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from edgeopt.errors import ModelError, UnsafeModelError, UnsupportedModelError
from edgeopt.extras import import_optional, require
from edgeopt.graph.normalize import normalize
from edgeopt.hashing import sha256_bytes, sha256_file
from edgeopt.plugin import hookimpl
from edgeopt.types import Graph, ImportOptions

EDGEOPT_HOOK_API = 1
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
INPUT_NAME = "input"
_PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
SKOPS_SUFFIX = ".skops"


def is_estimator(source: object) -> bool:
    """True for a scikit-learn estimator (sklearn's own classes or BaseEstimator subclasses).

    Never imports sklearn itself: an object can only be a subclass instance once sklearn is loaded.
    """
    module = type(source).__module__ or ""
    if (module == "sklearn" or module.startswith("sklearn.")) and hasattr(source, "fit"):
        return True
    if "sklearn" not in sys.modules:  # no sklearn subclass can exist before sklearn was imported
        return False
    from sklearn.base import BaseEstimator

    return isinstance(source, BaseEstimator)


def _load_pickle(path: Path, options: ImportOptions) -> Any:
    if not path.is_file():
        raise ModelError(f"model file {path} not found", hint="check the path (and the current directory)")
    if not options.trust_pickle:
        raise UnsafeModelError(
            f"{path} is a pickle; loading it runs code from the file",
            hint="use --trust-pickle only if you trust where the file came from",
        )
    joblib = import_optional("joblib", extra="sklearn", feature=f"importing the scikit-learn model {path}")
    try:
        estimator = joblib.load(path)
    except Exception as exc:  # unpickling raises anything the pickled code raises
        raise ModelError(f"cannot load {path}: {type(exc).__name__}: {exc}") from exc
    return _checked_estimator(estimator, path)


def _checked_estimator(estimator: Any, path: Path) -> Any:
    """``estimator`` when it is a scikit-learn estimator, else ``ModelError`` naming what ``path`` held."""
    if not is_estimator(estimator):
        raise ModelError(f"{path} holds a {type(estimator).__name__}, not a scikit-learn estimator")
    return estimator


def _load_skops(path: Path) -> Any:
    """The estimator in a ``.skops`` file, built from skops' default-trusted types only."""
    if not path.is_file():
        raise ModelError(f"model file {path} not found", hint="check the path (and the current directory)")
    sio = import_optional("skops.io", extra="sklearn", feature=f"importing the skops file {path}")
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # a damaged archive: zipfile/json errors of any kind
        raise ModelError(f"cannot read {path} as a skops file: {type(exc).__name__}: {exc}") from exc
    if untrusted:
        shown = ", ".join(untrusted[:5]) + (f" and {len(untrusted) - 5} more" if len(untrusted) > 5 else "")
        raise UnsafeModelError(
            f"{path} holds types outside skops' trusted set ({shown}); building them could run their code",
            hint="if you trust them, load the file with skops.io.load(path, trusted=[...]) yourself and pass the "
                 "estimator to edgeopt.deploy",
        )
    try:
        estimator = sio.load(path)
    except Exception as exc:  # skops raises many kinds for inconsistent archives
        raise ModelError(f"cannot load {path}: {type(exc).__name__}: {exc}") from exc
    return _checked_estimator(estimator, path)


def _n_features(estimator: Any, options: ImportOptions) -> int:
    n = getattr(estimator, "n_features_in_", None)
    if n is None:
        shape = options.input_shapes.get("") or options.input_shapes.get(INPUT_NAME)
        if shape is None or len(shape) != 2:
            raise ModelError(
                f"{type(estimator).__name__} does not say how many features it takes",
                hint="pass --input-shape BATCHxFEATURES, e.g. 1x4",
            )
        n = shape[1]
    return int(n)


def to_onnx_model(estimator: Any, options: ImportOptions) -> Any:
    """Convert a fitted estimator with skl2onnx (float32 input ``[None, n_features]``, no ZipMap)."""
    require("sklearn", feature=f"converting the scikit-learn {type(estimator).__name__}")
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.base import is_classifier
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(estimator)
    except NotFittedError as exc:
        raise ModelError(f"{type(estimator).__name__} is not fitted", hint="call fit() before deploying") from exc
    except TypeError:  # check_is_fitted refuses some meta-estimators; conversion will tell
        pass
    n = _n_features(estimator, options)
    conv_options = {id(estimator): {"zipmap": False}} if is_classifier(estimator) else None
    try:
        return convert_sklearn(
            estimator,
            initial_types=[(INPUT_NAME, FloatTensorType([None, n]))],
            options=conv_options,
            target_opset=TARGET_OPSET,
        )
    except Exception as exc:  # skl2onnx raises RuntimeError/NotImplementedError/... for unsupported parts
        text = str(exc).strip().splitlines()
        raise UnsupportedModelError(
            f"skl2onnx cannot convert {type(estimator).__name__}: {text[0] if text else type(exc).__name__}",
            hint="see skl2onnx's supported estimators; custom steps need a registered converter",
        ) from exc


@hookimpl
def edgeopt_import(source: object, options: ImportOptions, workdir: Path) -> Graph | None:
    """Convert a fitted estimator (or a ``.skops`` file, or a trusted joblib/pickle file) and normalize it; None
    otherwise."""
    if isinstance(source, str | os.PathLike) and os.fspath(source).lower().endswith(SKOPS_SUFFIX):
        path = Path(os.fspath(source))  # type: ignore[call-overload]
        estimator = _load_skops(path)
        fingerprint = sha256_file(path)
    elif isinstance(source, str | os.PathLike) and os.fspath(source).lower().endswith(_PICKLE_SUFFIXES):
        path = Path(os.fspath(source))  # type: ignore[call-overload]
        estimator = _load_pickle(path, options)
        fingerprint = sha256_file(path)
    elif is_estimator(source):
        estimator, fingerprint = source, None
    else:
        return None
    model = to_onnx_model(estimator, options)
    return normalize(
        model,
        source_fingerprint=fingerprint or sha256_bytes(model.SerializeToString()),
        source_format="sklearn",
        options=options,
        workdir=Path(workdir),
    )
