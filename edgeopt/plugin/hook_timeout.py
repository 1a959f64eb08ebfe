"""Timed hook calls: a hook declared ``timed`` that has not returned after ``EDGEOPT_HOOK_TIMEOUT_S`` seconds
is abandoned in its thread, and the manager quarantines its plugin."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edgeopt import settings
from edgeopt.errors import PluginError

if TYPE_CHECKING:

    pass


DEFAULT_HOOK_TIMEOUT_S = 60.0
"""Seconds a timed hook may take when ``EDGEOPT_HOOK_TIMEOUT_S`` is unset."""


class HookTimeout(PluginError):
    """A hook did not return within ``EDGEOPT_HOOK_TIMEOUT_S``; its plugin was quarantined."""

    default_hint = "raise EDGEOPT_HOOK_TIMEOUT_S if the plugin is merely slow, or block it with EDGEOPT_BLOCKED_PLUGINS"


def hook_timeout_s() -> float | None:
    """Seconds from ``EDGEOPT_HOOK_TIMEOUT_S`` (default 60); None when set to 0 (no timeout)."""
    return settings.seconds("EDGEOPT_HOOK_TIMEOUT_S", DEFAULT_HOOK_TIMEOUT_S)  # PluginError when unreadable


def call_with_timeout(plugin: str, hook: str, call: Callable[[], Any]) -> Any:
    """``call()`` in a worker thread; past ``hook_timeout_s()`` abandon it and raise ``HookTimeout``.

    Python cannot stop a thread, so a hung call keeps running (as a daemon) but its result is never used;
    the caller quarantines the plugin so nothing calls into it again.
    """
    timeout = hook_timeout_s()
    if timeout is None:
        return call()
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["result"] = call()
        except BaseException as exc:  # handed to the calling thread below
            box["error"] = exc

    worker = threading.Thread(target=work, name=f"edgeopt:{plugin}:{hook}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise HookTimeout(f"plugin {plugin!r} did not return from {hook} within {timeout:g} s and was quarantined")
    if "error" in box:
        raise box["error"]
    return box.get("result")
