"""The capture's event loop: uvloop (the default) or the standard library's asyncio loop.

Why: at 300 symbols the loop's own work — epoll, socket transports, a future per received
frame — is about a fifth of the capture's CPU. uvloop does that work in C on libuv; measured
side by side at 300 symbols it cut the capture's CPU by about a tenth (docs/performance.md
§12). The choice is the ``capture.event_loop`` setting, so a platform without uvloop (or a
suspected loop bug) can go back to asyncio's own loop without a code change.
"""

from __future__ import annotations

import asyncio
from typing import Any, Coroutine, TypeVar

T = TypeVar("T")
LOOPS = ("uvloop", "asyncio")    # the setting's choices (settings/table.py)


def run(main: Coroutine[Any, Any, T], kind: str) -> T:
    """``asyncio.run(main)`` on the loop ``kind`` names."""
    if kind == "uvloop":
        import uvloop   # only the capture's process needs it
        return uvloop.run(main)
    if kind != "asyncio":
        raise ValueError(f"capture.event_loop: {kind!r} is not one of {', '.join(LOOPS)}")
    return asyncio.run(main)


def running() -> str:
    """The running loop's family, ``uvloop`` or ``asyncio`` (recorded in ``capture_start``)."""
    return type(asyncio.get_running_loop()).__module__.partition(".")[0]
