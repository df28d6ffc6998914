"""The capture's event loop: the standard library's asyncio loop (the default) or uvloop.

Why a choice: at 300 symbols the loop's own work (epoll, socket transports, a future per
received frame) is a visible part of the capture's CPU, and uvloop does it in C on libuv. Measured
with both loops side by side on one simulator (``benchmarks/bench_pair.py``), uvloop saved only
~2 % of the capture's CPU (docs/performance.md §12), too little to make it the default or a
required package: it is the ``uvloop`` extra, chosen with ``capture.event_loop = uvloop``.
"""

from __future__ import annotations

import asyncio
from typing import Any, Coroutine, TypeVar

from ..settings.kinds import SettingsError
from ..settings.table import LOOPS

T = TypeVar("T")
MISSING = "capture.event_loop = uvloop needs uvloop: pip install -e '.[uvloop]'"


def run(main: Coroutine[Any, Any, T], kind: str) -> T:
    """``asyncio.run(main)`` on the loop ``kind`` names."""
    if kind == "uvloop":
        try:
            import uvloop
        except ImportError:
            main.close()
            raise SettingsError(MISSING) from None
        return uvloop.run(main)
    if kind != "asyncio":
        main.close()
        raise SettingsError(f"capture.event_loop: {kind!r} is not one of {', '.join(LOOPS)}")
    return asyncio.run(main)


def running() -> str:
    """The running loop's family, ``uvloop`` or ``asyncio`` (recorded in ``capture_start``)."""
    return type(asyncio.get_running_loop()).__module__.partition(".")[0]
