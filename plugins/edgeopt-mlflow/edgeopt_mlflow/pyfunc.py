"""The ``python_function`` flavor of an edgeopt artifact, so MLflow users load it as they load any model:
``mlflow.pyfunc.load_model("models:/NAME/3").predict(inputs)``.

A registered version's folder holds ``MLmodel`` (loader module: this one), the ``requirements.txt`` MLflow
installs for it, and ``artifact/``: the edgeopt artifact exactly as ``edgeopt deploy`` wrote it. Loading calls
``edgeopt.load``, which verifies every file's sha256 against the manifest before the runtime sees the model,
so a model changed in the store is refused, not run.

``predict`` takes a dict of input name to array, or one array (or a pandas DataFrame, as rows of numbers)
for a single-input model, with any number of samples on axis 0 (a model built for batch ``b`` runs them
``b`` at a time); it returns the one output as an array, or a dict of output name to array.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

DATA_DIR = "artifact"
"""Where the edgeopt artifact sits inside the registered model's folder."""


class EdgeoptPyfuncModel:
    """What ``mlflow.pyfunc.load_model`` returns for an edgeopt model (wrapped by MLflow's ``PyFuncModel``)."""

    def __init__(self, artifact: Path) -> None:
        import edgeopt

        self.predictor = edgeopt.load(artifact)

    def predict(self, model_input: Any, params: Mapping[str, Any] | None = None) -> Any:
        feeds = self._feeds(model_input)
        batch = self._batch()
        rows = {len(v) for v in feeds.values() if np.ndim(v)}
        if batch and len(rows) == 1 and (n := rows.pop()) > batch and n % batch == 0:
            parts = [self.predictor({k: v[i:i + batch] for k, v in feeds.items()}) for i in range(0, n, batch)]
            outputs = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        else:
            outputs = self.predictor(feeds)
        return next(iter(outputs.values())) if len(outputs) == 1 else outputs

    def _batch(self) -> int | None:
        """The batch the artifact was built for (its inputs' fixed leading dimension), or None."""
        leads = {s.shape[0] for s in self.predictor.inputs if s.shape and isinstance(s.shape[0], int)}
        return leads.pop() if len(leads) == 1 else None

    def _feeds(self, model_input: Any) -> dict[str, np.ndarray]:
        names = [s.name for s in self.predictor.inputs]
        if isinstance(model_input, Mapping):
            return {k: np.asarray(v) for k, v in model_input.items()}
        if hasattr(model_input, "to_numpy"):  # a pandas DataFrame of numbers
            model_input = model_input.to_numpy()
        if len(names) != 1:
            raise ValueError(f"this model has inputs {names}: give a dict of input name to array")
        spec = self.predictor.inputs[0]
        array = np.asarray(model_input, dtype=np.dtype(spec.dtype))
        sample = tuple(int(d) for d in spec.shape[1:])
        if array.ndim == 2 and len(sample) > 1 and array.shape[1] == int(np.prod(sample)):
            array = array.reshape(len(array), *sample)  # DataFrame rows of flattened samples
        return {names[0]: array}


def _load_pyfunc(data_path: str) -> EdgeoptPyfuncModel:
    """MLflow's loader entry point: ``data_path`` is the artifact folder inside the downloaded model."""
    return EdgeoptPyfuncModel(Path(data_path))


def requirements() -> list[str]:
    """The distributions a loading environment needs: edgeopt, this plugin and the installed target plugins,
    at the versions that wrote the model."""
    reqs = []
    for dist in metadata.distributions():
        name = dist.metadata["Name"] or ""
        if name == "edgeopt" or name.startswith("edgeopt-"):
            reqs.append(f"{name}=={dist.version}")
    return sorted(set(reqs))


def write_model_dir(artifact: Path, out: Path) -> Path:
    """Lay out ``out`` as an MLflow model folder around a copy of ``artifact`` (``out/artifact``) and return it."""
    import shutil

    from mlflow.models import Model
    from mlflow.pyfunc import add_to_model

    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(artifact, out / DATA_DIR)
    (out / "requirements.txt").write_text("\n".join(requirements()) + "\n")
    model = Model()
    add_to_model(model, loader_module=__name__, data=DATA_DIR, python_env=None)
    model.save(str(out / "MLmodel"))
    return out
