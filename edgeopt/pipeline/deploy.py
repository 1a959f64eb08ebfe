"""One deploy: import → plan → compile candidates → guard → profile → atomic artifact; ``--target auto``
is decided here and handed to ``edgeopt.pipeline.compare.deploy_auto``.

Nothing is written to the output location until a verified model exists; a failure at any step
leaves no directory behind.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from edgeopt.artifact.write import check_destination, verify_artifact
from edgeopt.compression.deploy_guard import speedup_warnings, target_request
from edgeopt.compression.target_timing import stages_on_target
from edgeopt.pipeline.compare import deploy_auto
from edgeopt.pipeline.finish import deploy_warnings, finish
from edgeopt.pipeline.request import (
    AUTO_TARGET,
    Deployment,
    DeployRequest,
    LogEvents,
    check_deploy_request,
    default_out,
    resolve_device,
)
from edgeopt.pipeline.stages import check_target, feeds_for_batch, prepare, search_target, time_searches
from edgeopt.plugin.manager import PluginManager, get_plugin_manager
from edgeopt.search.candidates import Events
from edgeopt.search.selection import select


def run_deploy(request: DeployRequest, *, pm: PluginManager | None = None, events: Events | None = None) -> Deployment:
    """Deploy ``request.source`` to ``request.target`` and return the verified artifact.

    ``target="auto"`` searches every available target and deploys the winner (``edgeopt.compare``)."""
    events = events or LogEvents()
    pm = pm or get_plugin_manager()
    check_deploy_request(request, pm)
    if request.target == AUTO_TARGET:
        return deploy_auto(request, pm=pm, events=events)
    target = check_target(pm, request.target, request.precision)
    device = resolve_device(request.device, target)
    out = Path(request.out) if request.out else default_out(request.source, target.name)
    check_destination(out)  # fail before the work, not after it: user files at --out are never replaced
    speedup = speedup_warnings(request.compression, target, pm.targets())
    for note in speedup:
        events.warn(note)

    with tempfile.TemporaryDirectory(prefix="edgeopt-") as tmp:
        prepared = prepare(request, pm, events, Path(tmp))
        request = target_request(request, prepared.compression)  # --max-drop less what compression used
        prepared = stages_on_target(prepared, target, device, pm=pm, request=request, events=events,
                                    feeds=feeds_for_batch(prepared.evaluation, prepared.batch))
        found = search_target(request, prepared, target, device, pm=pm, events=events)
        try:
            time_searches([found], prepared, budget_s=request.timing_s, events=events)
        finally:
            found.close()
        selection = select(
            found.candidates, precision=request.precision, force_precision=request.force_precision,
            max_drop=request.max_drop,
        )
        path = finish(request, prepared, found, selection, out=out, pm=pm, events=events, extra_warnings=speedup)
    return Deployment(path=path, manifest=verify_artifact(path),
                      warnings=tuple(deploy_warnings(prepared, selection, speedup)))
