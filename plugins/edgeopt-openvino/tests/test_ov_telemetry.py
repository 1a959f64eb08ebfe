"""OpenVINO/NNCF telemetry is declined in the build worker: no forked sender processes while converting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from ov_models import no_weights_net

CHILD = textwrap.dedent("""
    import json, sys, threading, time
    import psutil
    from edgeopt_openvino.telemetry import quiet_telemetry
    if sys.argv[2] == "quiet":
        quiet_telemetry()
    me, kids, done = psutil.Process(), set(), threading.Event()
    def watch():
        while not done.is_set():
            kids.update(c.pid for c in me.children(recursive=True))
            time.sleep(0.01)
    threading.Thread(target=watch, daemon=True).start()
    import openvino as ov
    ov.convert_model(sys.argv[1])
    done.set()
    import os
    print(json.dumps({"children": len(kids), "ci": os.environ.get("CI")}))
""")


def _run(model: Path, mode: str, env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(model), mode], capture_output=True, text=True,
                         env=env, stdin=subprocess.DEVNULL, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_quiet_telemetry_stops_the_sender_processes(tmp_path: Path) -> None:
    model = no_weights_net(tmp_path / "m.onnx").path
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TF_BUILD", "JENKINS_URL")}
    quiet = _run(model, "quiet", env)
    assert quiet == {"children": 0, "ci": "true"}
    env["CI"] = "false"  # a value the user set is theirs: left as it is
    assert _run(model, "quiet", env)["ci"] == "false"
