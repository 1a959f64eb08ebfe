"""The child of an ``IsolatedWorker`` (``python -m edgeopt.process.worker_main PRELOAD``): reads framed
``(function, args)`` requests on stdin and writes framed replies, imports the ``PRELOAD`` modules while idle, and
applies the parent's ``RLIMIT_DATA`` backstop (``EDGEOPT_WORKER_DATA_LIMIT``) to itself."""

from __future__ import annotations

import contextlib
import importlib
import os
import selectors
import signal
import sys
from collections.abc import Sequence

from edgeopt import settings
from edgeopt.errors import EdgeoptError
from edgeopt.process.wire import DATA_LIMIT_ENV, error_payload, frame, read_frame, resolve, unframe


def _limit_data() -> None:
    """Apply the parent's ``RLIMIT_DATA`` backstop (see the module) to this child, where the OS allows it."""
    try:
        wanted = settings.size(DATA_LIMIT_ENV)
    except EdgeoptError:
        wanted = None  # the parent writes a plain number of bytes; anything else is not its own: no backstop
    os.environ.pop(DATA_LIMIT_ENV, None)  # this child's own children start without it
    if wanted is None:
        return
    import resource

    with contextlib.suppress(ValueError, OSError):
        _soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
        limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))


_SERVING = False


def in_isolated_worker() -> bool:
    """Whether this process is an ``IsolatedWorker``'s child: code it runs is already isolated (a crash or a
    memory limit ends only this child), so a plugin need not start a worker of its own for its builds."""
    return _SERVING


def _serve(preload: Sequence[str]) -> None:
    """Child main loop: read framed (qualname, args) requests on stdin, write framed replies."""
    import edgeopt.process.worker_main as importable  # this file runs as __main__: mark the module others import

    importable._SERVING = True
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when this child stops
    _limit_data()
    reply_fd = os.dup(1)
    os.dup2(2, 1)  # anything native code prints goes to stderr, never into the reply stream
    in_fd = sys.stdin.fileno()
    pending = [m for m in preload if m]
    sel = selectors.DefaultSelector()
    sel.register(in_fd, selectors.EVENT_READ)
    while True:
        while pending and not sel.select(timeout=0):
            with contextlib.suppress(Exception):
                importlib.import_module(pending.pop(0))
        request = read_frame(in_fd)
        if request is None:
            return
        try:
            fn_qualname, args = unframe(request)
            pieces = frame(("ok", resolve(fn_qualname)(*args)))
        except Exception as exc:
            pieces = frame(("error", error_payload(exc)))
        args = request = None  # the arguments' arrays (and the buffers they use) go before the next call
        for view in pieces:
            while view:
                view = view[os.write(reply_fd, view) :]
        del pieces

if __name__ == "__main__":
    _serve(sys.argv[1].split(",") if len(sys.argv) > 1 else ())
