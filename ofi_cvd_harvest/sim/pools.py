"""Pre-drawn random numbers: one numpy call fills thousands of values, consumed one by one.

A numpy call costs ~1 µs whatever its size, so per-window draws of a few values dominate the
generator's cost; pools amortise them. Consumption order is deterministic, so a pool changes
nothing about reproducibility: same seed, same sequence.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np


class ListPool:
    """Python scalars (for per-event use)."""
    __slots__ = ("draw", "size", "buf", "i")

    def __init__(self, draw: Callable[[int], np.ndarray], size: int = 4096):
        self.draw, self.size = draw, size
        self.buf: list[Any] = draw(size).tolist()
        self.i = 0

    def next(self) -> Any:
        if self.i >= len(self.buf):
            self.buf, self.i = self.draw(self.size).tolist(), 0
        v = self.buf[self.i]
        self.i += 1
        return v

    def take(self, n: int) -> list[Any]:
        if self.i + n > len(self.buf):
            self.buf = self.buf[self.i:] + self.draw(max(self.size, n)).tolist()
            self.i = 0
        out = self.buf[self.i:self.i + n]
        self.i += n
        return out


class ArrayPool:
    """Rows of a numpy array (for vectorised use); ``take`` returns a view."""
    __slots__ = ("draw", "size", "buf", "i")

    def __init__(self, draw: Callable[[int], np.ndarray], size: int = 4096):
        self.draw, self.size = draw, size
        self.buf = draw(size)
        self.i = 0

    def take(self, n: int) -> np.ndarray:
        if self.i + n > len(self.buf):
            self.buf = np.concatenate([self.buf[self.i:], self.draw(max(self.size, n))])
            self.i = 0
        out = self.buf[self.i:self.i + n]
        self.i += n
        return out


def poisson(lam: float, u: float, rng: np.random.Generator) -> int:
    """Poisson(lam) by inversion of the uniform ``u`` (small lam), numpy above 30."""
    if lam <= 0:
        return 0
    if lam > 30:
        return int(rng.poisson(lam))
    p = math.exp(-lam)
    cdf = p
    k = 0
    while u > cdf and k < 200:
        k += 1
        p *= lam / k
        cdf += p
    return k
