"""edgeopt plugin: mirror every registered deployment to an MLflow tracking server.

Implements only ``edgeopt_deployment_registered``. Off unless a tracking server is configured:
``EDGEOPT_MLFLOW_TRACKING_URI`` (or MLflow's own ``MLFLOW_TRACKING_URI``). Then each deploy becomes an
MLflow run in the experiment ``EDGEOPT_MLFLOW_EXPERIMENT`` (default ``edgeopt``) with the plan as
params, the figures as metrics and the artifact directory as run artifacts, and a new version of the
registered model named like the deployment. MLflow is imported only when there is something to log.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from edgeopt.plugin import hookimpl

if TYPE_CHECKING:
    from edgeopt.plugin import DeploymentRecord

EDGEOPT_HOOK_API = 1

__all__ = ["EDGEOPT_HOOK_API", "tracking_uri"]


def tracking_uri() -> str | None:
    """The tracking server to log to, or None (the plugin then does nothing)."""
    return os.environ.get("EDGEOPT_MLFLOW_TRACKING_URI") or os.environ.get("MLFLOW_TRACKING_URI") or None


@hookimpl
def edgeopt_deployment_registered(record: DeploymentRecord) -> Mapping[str, str] | None:
    uri = tracking_uri()
    if uri is None:
        return None
    from edgeopt_mlflow.tracking import log_deployment

    return log_deployment(record, tracking_uri=uri, experiment=os.environ.get("EDGEOPT_MLFLOW_EXPERIMENT", "edgeopt"))
