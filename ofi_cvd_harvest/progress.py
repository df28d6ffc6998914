"""Progress of long CLI work (``derive``, ``validate`` over many partitions): done / total,
rate, ETA (README "Commands").

On a terminal one line is redrawn in place (carriage return) and is wiped before anything
else is printed, so the command's own lines stay clean; otherwise (CI, a log file, a pipe) a
plain line at most every ``plain_every_sec`` (the first after that long) plus the last. No dependency:
a few ANSI-free bytes (``\\r`` and padding) that every terminal understands.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _dur(sec: float) -> str:
    if sec < 90:
        return f"{sec:.0f} s"
    if sec < 5400:
        return f"{sec / 60:.0f} min"
    return f"{sec / 3600:.1f} h"


class _Wiping:
    """Wraps stdout/stderr while a progress line is on screen: the first write wipes it."""

    def __init__(self, inner: TextIO, progress: "Progress"):
        self._inner, self._p = inner, progress

    def write(self, text: str) -> int:
        if text:
            self._p.wipe()
        return self._inner.write(text)

    def __getattr__(self, name):
        return getattr(self._inner, name)


class Progress:
    plain_every_sec = 10.0

    def __init__(self, total: int, what: str = "partitions", label: str = "",
                 stream: TextIO | None = None, tty: bool | None = None,
                 clock=time.monotonic):
        self.total, self.what, self.label = max(0, int(total)), what, label
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)()) if tty is None else tty
        self.clock = clock
        self.done = 0
        self.t0 = clock()
        self._last_plain = self.t0    # a short run prints only its final line
        self._shown = 0          # width of the line on screen (tty)
        self._saved: tuple | None = None

    # -- figures ------------------------------------------------------------------------------
    def text(self, current: str = "", verb: str = "now") -> str:
        elapsed = self.clock() - self.t0
        parts = [f"{self.label + ': ' if self.label else ''}{self.done}/{self.total} {self.what}"]
        if self.total:
            parts[0] += f" ({100 * self.done / self.total:.0f} %)"
        if self.done and elapsed > 0:
            rate = self.done / elapsed
            parts.append(f"{rate:.2f}/s" if rate >= 0.1 else f"{60 * rate:.1f}/min")
            left = self.total - self.done
            parts.append(f"ETA {_dur(left / rate)}" if left > 0 else f"took {_dur(elapsed)}")
        else:
            parts.append(f"elapsed {_dur(elapsed)}")
        if current:
            parts.append(f"{verb} {current}")
        return ", ".join(parts)

    # -- drawing ------------------------------------------------------------------------------
    def wipe(self) -> None:
        if self._shown:
            self.stream_write("\r" + " " * self._shown + "\r")
            self._shown = 0

    def stream_write(self, s: str) -> None:
        self.stream.write(s)      # the stream as it was before __enter__ wrapped sys.stderr
        self.stream.flush()

    def _draw(self, line: str) -> None:
        self.wipe()
        self.stream_write("\r" + line)
        self._shown = len(line)

    def start(self, current: str) -> None:
        """Working on ``current`` now (drawn on a terminal only)."""
        if self.tty:
            self._draw(self.text(current))

    def step(self, current: str = "", n: int = 1) -> None:
        """``n`` more done."""
        self.done += n
        if self.tty:
            self._draw(self.text())
            return
        now = self.clock()
        if now - self._last_plain >= self.plain_every_sec or self.done >= self.total:
            self._last_plain = now
            self.stream_write(f"progress: {self.text(current, 'last')}\n")

    def each(self, items, name=str):
        """Yield ``items``, showing each as current and counting it done when the loop moves on
        (also after a ``continue``); the progress context is entered for the loop's life."""
        with self:
            for item in items:
                label = name(item)
                self.start(label)
                yield item
                self.step(label)

    # -- context: wipe before other output, end the line at the end ---------------------------
    def __enter__(self) -> "Progress":
        if self.tty:
            self._saved = (sys.stdout, sys.stderr)
            sys.stdout, sys.stderr = _Wiping(sys.stdout, self), _Wiping(sys.stderr, self)
        return self

    def __exit__(self, *exc) -> None:
        if self._saved is not None:
            self.wipe()
            sys.stdout, sys.stderr = self._saved
            self._saved = None
        if self.tty and self.done:
            self.stream_write(f"{self.text()}\n")
