"""Make ``edgeopt_ncnn`` (and this folder's helpers) importable from a source checkout.

Installed (``pip install -e examples/edgeopt-ncnn``) the plugin comes through its entry point, as in
any deploy; from a checkout ``ncnn_manager`` registers it directly under the same name and version.
"""

from __future__ import annotations

import sys
from pathlib import Path

for folder in (Path(__file__).resolve().parents[1], Path(__file__).resolve().parent):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
