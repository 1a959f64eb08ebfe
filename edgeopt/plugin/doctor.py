"""``edgeopt plugins doctor``: every plugin with what it declares and offers, and everything wrong with it; and
every core setting (``EDGEOPT_*`` variable) with its value now and what is wrong with it."""

from __future__ import annotations

from dataclasses import dataclass

from edgeopt import settings
from edgeopt.plugin.manager import TARGET_HOOKS, PluginManager
from edgeopt.types import TargetInfo


@dataclass(frozen=True)
class PluginDiagnosis:
    """One plugin as ``edgeopt plugins doctor`` shows it: what it is, what it offers, what is wrong."""

    name: str
    version: str
    status: str
    builtin: bool
    api_version: object
    hooks: tuple[str, ...]
    targets: tuple[TargetInfo, ...]
    problems: tuple[str, ...]
    """Everything a user or the plugin's author should fix; empty when the plugin is healthy."""


def diagnose(pm: PluginManager) -> list[PluginDiagnosis]:
    """Every plugin of ``pm`` with its declared hook API, targets and problems (registers targets first)."""
    targets = pm.targets()
    owners: dict[str, str] = {}
    for t in targets:
        owners.setdefault(t.name, t.plugin)
    found = []
    for status in pm.plugins():
        mine = tuple(t for t in targets if t.plugin == status.name)
        problems: list[str] = [status.error] if status.error else []
        missing = [h for h in TARGET_HOOKS if h not in status.hooks]
        if mine and missing:
            problems.append(f"registers targets but does not implement {', '.join(missing)}")
        for t in mine:
            if not t.available:
                problems.append(f"target {t.name!r} is unavailable: {t.reason}")
            if owners[t.name] != status.name:
                problems.append(f"target {t.name!r} is also registered by {owners[t.name]!r}, which wins")
        found.append(PluginDiagnosis(
            name=status.name, version=status.version, status=status.status, builtin=status.builtin,
            api_version=status.api_version, hooks=status.hooks, targets=mine, problems=tuple(problems),
        ))
    return found


@dataclass(frozen=True)
class SettingDiagnosis:
    """One core setting as ``edgeopt plugins doctor`` shows it."""

    name: str
    kind: str
    value: str | None
    """The raw value in the environment; None when unset."""
    unset: str
    """What applies when it is unset, in words."""
    meaning: str
    problem: str | None
    """Why the value cannot be read (message and hint), None when it reads fine."""


def diagnose_settings() -> list[SettingDiagnosis]:
    """Every ``edgeopt.settings.SETTINGS`` entry with its current value, read through its kind's reader."""
    found = []
    for s, value in settings.current():
        error = settings.problem(s.name)
        problem = None if error is None else error.message + (f"; {error.hint}" if error.hint else "")
        found.append(SettingDiagnosis(s.name, s.kind, value, s.unset, s.meaning, problem))
    return found
