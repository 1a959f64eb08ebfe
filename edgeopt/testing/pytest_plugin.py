"""The ``edgeopt`` pytest plugin (entry point ``pytest11``): ``--edgeopt-target`` and ``--edgeopt-device``.

``pytest --edgeopt-target NAME`` adds the conformance suite (``edgeopt.testing.suite``) to the run,
checking the installed target ``NAME``. Subclasses of ``ConformanceSuite`` without their own
``target`` take ``NAME`` too. Importing this module stays cheap: the suite loads only when used.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

SUITE = Path(__file__).with_name("suite.py")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("edgeopt", "edgeopt plugin conformance")
    group.addoption(
        "--edgeopt-target",
        dest="edgeopt_target",
        default=None,
        metavar="NAME",
        help="run the edgeopt conformance suite against the installed target NAME",
    )
    group.addoption(
        "--edgeopt-device",
        dest="edgeopt_device",
        default=None,
        metavar="PROFILE",
        help="device profile for the conformance suite (default: host for CPU targets)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "edgeopt_conformance: a test of the edgeopt plugin conformance suite")
    if config.getoption("edgeopt_target", default=None) and str(SUITE) not in config.args:
        config.args.append(str(SUITE))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    conformance = sys.modules.get("edgeopt.testing.conformance")
    if conformance is None:  # no suite collected: nothing to mark, and nothing heavy imported
        return
    ConformanceSuite = conformance.ConformanceSuite  # noqa: N806 - a class
    for item in items:
        cls = getattr(item, "cls", None)
        if cls is not None and issubclass(cls, ConformanceSuite):
            item.add_marker("edgeopt_conformance")
