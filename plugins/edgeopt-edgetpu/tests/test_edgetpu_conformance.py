"""``edgetpu`` and ``tflite`` against edgeopt's conformance suite, loaded through the installed entry point.

Both targets register as unavailable (and the suite skips them with that reason) until the ONNX → TFLite
converter toolchain exists: ``edgeopt edgetpu toolchain --create``. Every test converts at least once
(3-20 s each through the kept converter process). ``edgetpu`` (one precision, 12 tests, 1-3 min on two
cores) runs by default; ``tflite`` converts for each of its four precisions (36 tests) and is marked slow.
"""

from __future__ import annotations

import pytest
from edgeopt.testing import ConformanceSuite


class TestEdgeTpuConformance(ConformanceSuite):
    target = "edgetpu"


@pytest.mark.slow
class TestTfliteConformance(ConformanceSuite):
    target = "tflite"
