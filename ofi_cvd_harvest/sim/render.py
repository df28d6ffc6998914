"""``depthUpdate`` payloads rendered straight to JSON bytes: one ``%``-format per message.

Formatting 40 decimal strings and serialising nested lists was the generator's largest cost per
100 ms window; here integer ticks/lots are split into integer and fractional parts
and a cached template (per level count) does the rest in C.
"""

from __future__ import annotations


class DepthRenderer:
    def __init__(self, symbol: str, tick_decimals: int, lot_decimals: int):
        self.td, self.ld = tick_decimals, lot_decimals
        self.st, self.sl = 10 ** tick_decimals, 10 ** lot_decimals
        px = f'"%d.%0{tick_decimals}d"' if tick_decimals else '"%d"'
        qt = f'"%d.%0{lot_decimals}d"' if lot_decimals else '"%d"'
        self.level = f"[{px},{qt}]"
        self.head = ('{"e":"depthUpdate","E":%d,"T":%d,"s":"' + symbol +
                     '","U":%d,"u":%d,"pu":%d,"b":[')
        self.k = (2 if tick_decimals else 1) + (2 if lot_decimals else 1)   # ints per level
        self._templates: dict[tuple[int, int], str] = {}

    def values(self, ticks: list[int], lots: list[int]) -> list[int]:
        """Flat format arguments of these levels, level by level."""
        st, sl = self.st, self.sl
        out: list[int] = []
        if self.td and self.ld:
            for t, q in zip(ticks, lots):
                out += (t // st, t % st, q // sl, q % sl)
        else:
            for t, q in zip(ticks, lots):
                out += ((t // st, t % st) if self.td else (t,)) + \
                       ((q // sl, q % sl) if self.ld else (q,))
        return out

    def render(self, E: int, T: int, U: int, u: int, pu: int, bvals: list[int],
               avals: list[int]) -> bytes:
        nb, na = len(bvals) // self.k, len(avals) // self.k
        tmpl = self._templates.get((nb, na))
        if tmpl is None:
            if len(self._templates) > 4096:
                self._templates.clear()
            tmpl = self._templates[(nb, na)] = (
                self.head + ",".join([self.level] * nb) + '],"a":[' +
                ",".join([self.level] * na) + "]}")
        return (tmpl % (E, T, U, u, pu, *bvals, *avals)).encode()
