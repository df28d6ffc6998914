"""IdRanges against a plain Python set (random operations), the page count against a brute
force greedy walk, and the scale it exists for (a storm's 100,000 holes)."""

from __future__ import annotations

import random

from ofi_cvd_harvest.protocol.idranges import IdRanges


def _intervals(ids: set[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for i in sorted(ids):
        if out and i == out[-1][1] + 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out


def _pages_brute(ids: set[int], page: int) -> int:
    n, left = 0, sorted(ids)
    k = 0
    while k < len(left):
        reach = left[k] + page - 1
        n += 1
        while k < len(left) and left[k] <= reach:
            k += 1
    return n


def test_random_operations_match_a_set():
    rng = random.Random(7)
    r, ref = IdRanges(), set()
    for step in range(4000):
        op = rng.random()
        a = rng.randrange(0, 3000)
        b = a + rng.randrange(0, 40)
        if op < 0.4:
            added = r.add(a, b, step)
            assert added == len(set(range(a, b + 1)) - ref)
            ref |= set(range(a, b + 1))
        elif op < 0.7:
            assert r.remove(a, b) == len(ref & set(range(a, b + 1)))
            ref -= set(range(a, b + 1))
        elif op < 0.9:
            assert r.discard(a) == (a in ref)
            ref.discard(a)
        else:
            assert r.count_in(a, b) == len(ref & set(range(a, b + 1)))
        assert r.total == len(ref)
        assert (a in r) == (a in ref)
        if step % 97 == 0:
            assert r.snapshot() == _intervals(ref)
            for page in (1, 7, 50, 1000):
                assert r.pages(page) == _pages_brute(ref, page), (step, page)
    assert r.snapshot() == _intervals(ref)
    assert all(x < y for x, y in zip(r.starts, r.starts[1:]))


def test_merge_keeps_the_oldest_opening_time():
    r = IdRanges()
    r.add(10, 20, 500)
    r.add(30, 40, 100)
    r.add(21, 29, 900)                # bridges both: one interval, owed since 100
    assert r.snapshot() == [[10, 40]] and r.opened == [100]
    r.discard(25)                     # a split keeps it on both halves
    assert r.snapshot() == [[10, 24], [26, 40]] and r.opened == [100, 100]
    assert r.pages(1000) == 1 and r.pages(10) == 4


def test_a_storm_of_holes_is_not_quadratic():
    """100,000 one-id holes appended, then filled out of order: each step a bisection; a
    quadratic structure needs minutes here (the issue's 5½ minutes at exit)."""
    r = IdRanges()
    for k in range(100_000):
        r.add(10 * k, 10 * k + 1, k)
    assert len(r) == 100_000 and r.total == 200_000
    order = list(range(100_000))
    random.Random(3).shuffle(order)
    for k in order:
        assert r.discard(10 * k)
    assert r.total == 100_000 and r.pages(1000) == 1000
    for k in order:
        assert r.remove(10 * k + 1, 10 * k + 1) == 1
    assert not r and r.total == 0
