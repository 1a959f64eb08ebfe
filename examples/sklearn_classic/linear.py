"""StandardScaler → LinearRegression on the diabetes data set, deployed to CPU; prints MSE, MAE and R² of
scikit-learn's predictions and of the deployed model.

Run: python -m examples.sklearn_classic.linear
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from examples.sklearn_classic.common import deploy_pipeline


def main(out: Path | None = None) -> dict[str, Any]:
    x, y = load_diabetes(return_X_y=True)
    data = train_test_split(x.astype(np.float32), y.astype(np.float32), test_size=0.3, random_state=0)
    model = make_pipeline(StandardScaler(), LinearRegression()).fit(data[0], data[2])
    out = out or Path(tempfile.mkdtemp(prefix="edgeopt-linreg-")) / "diabetes-linreg.edgeopt"
    return deploy_pipeline(model, data, kind="regression", out=out, title="linear regression (diabetes)")


if __name__ == "__main__":
    main()
