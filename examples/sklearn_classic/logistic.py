"""StandardScaler → LogisticRegression on the wine data set, deployed to CPU; prints accuracy, precision,
recall and F1 (macro) of scikit-learn's predictions and of the deployed model.

Run: python -m examples.sklearn_classic.logistic
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from examples.sklearn_classic.common import deploy_pipeline


def main(out: Path | None = None) -> dict[str, Any]:
    x, y = load_wine(return_X_y=True)
    data = train_test_split(x.astype(np.float32), y, test_size=0.3, random_state=0, stratify=y)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(data[0], data[2])
    out = out or Path(tempfile.mkdtemp(prefix="edgeopt-logreg-")) / "wine-logreg.edgeopt"
    return deploy_pipeline(model, data, kind="classification", out=out, title="logistic regression (wine)")


if __name__ == "__main__":
    main()
