"""OpenVINO's and NNCF's usage telemetry, off in edgeopt's OpenVINO build worker.

``openvino_telemetry`` sends an event per conversion and quantization step, on by default. On Linux each
send forks a child process and waits up to 3 s for it (``backend_ga4.send``): measured here, about 1 s per
``convert_model`` and 2 s per ``nncf.quantize`` on a host without internet access, and every fork copies the
worker's memory into the process tree (about 0.5 GiB each on a 70 MB encoder). OpenVINO's converter and NNCF
both create their telemetry with ``disable_in_ci=True``, which declines when the ``CI`` variable is ``true``:
``quiet_telemetry`` sets it in the build worker's own environment (never in the user's process; a ``CI``
already set is left as it is). The user's own OpenVINO use is not affected.
"""

from __future__ import annotations

import os

SWITCH = "CI"
"""The variable ``openvino_telemetry`` reads for ``disable_in_ci`` (``OptInChecker._run_in_ci``)."""


def quiet_telemetry() -> None:
    """Decline OpenVINO/NNCF telemetry for this process (call it only in a worker process edgeopt owns)."""
    os.environ.setdefault(SWITCH, "true")
