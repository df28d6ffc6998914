"""The capture under a lease: take it before anything is written, keep it while capturing,
stop writing when it is gone (docs/capture.md "Leases").

:func:`held` takes the shard's lease before the capture touches the data directory (not even
the start-up sweep of temp files or the segment recovery may run beside another holder), so a
second capture of a held shard ends at once with :class:`ShardHeld`. :func:`run_guarded` runs
the capture with a watcher that renews (s3) or checks (PostgreSQL) the lease; when it is lost
for sure, or could not be renewed until :meth:`Lease.fence_at`, the watcher stops the capture
(no final heal: the new holder heals), which finalises what it has and ends with
:class:`LeaseLost` (exit 5).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from typing import Any, Awaitable, Callable

from ...monitoring import metrics
from ...settings import SettingsError
from ..health import CaptureError
from . import Lease, LeaseLost, ShardHeld, open_lease, redact

ACQUIRE_TIMEOUT_SEC = 30.0


def leased(settings: Any) -> bool:
    """Whether this capture runs under a shard lease."""
    return bool(getattr(settings, "lease_url", "") and getattr(settings, "shard", ""))


async def in_thread(fn: Callable[[], Any], timeout: float) -> Any:
    """``fn()`` on a daemon thread: a client blocked on a dead network must neither block the
    loop nor keep the process alive at exit (asyncio's default executor would be joined)."""
    fut: concurrent.futures.Future = concurrent.futures.Future()

    def work() -> None:
        if not fut.set_running_or_notify_cancel():
            return
        try:
            res = fn()
        except BaseException as exc:   # handed to the awaiting side (unless it gave up)
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                fut.set_exception(exc)
            return
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            fut.set_result(res)

    threading.Thread(target=work, name="capture-lease", daemon=True).start()
    return await asyncio.wait_for(asyncio.wrap_future(fut), timeout)


@contextlib.asynccontextmanager
async def held(settings: Any, log: Any = None):
    """The shard's lease for the duration of the block (None without a lease URL)."""
    if not getattr(settings, "lease_url", ""):
        yield None
        return
    if not settings.shard:
        raise SettingsError("setting capture.lease_url (CAPTURE_LEASE_URL) needs a shard: "
                            "--shard NAME or CAPTURE_SHARD")
    lease = open_lease(settings.lease_url, settings.shard, settings.lease_ttl_sec,
                       settings.lease_renew_sec)
    try:
        how = await in_thread(lease.acquire, ACQUIRE_TIMEOUT_SEC)
    except (ShardHeld, SettingsError):
        raise
    except ImportError as exc:          # a missing component, like a bad setting (exit 2)
        raise SettingsError(str(exc)) from None
    except Exception as exc:            # unreachable store: not capturing, in one line (exit 1)
        why = "no answer" if isinstance(exc, asyncio.TimeoutError) else \
            (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise CaptureError(f"shard {settings.shard}: cannot take the lease at "
                           f"{redact(settings.lease_url)}: {why}; not capturing") from None
    lease.how = how   # type: ignore[attr-defined]
    metrics.lease_held.set(1)
    try:
        yield lease
    finally:
        metrics.lease_held.set(0)
        with contextlib.suppress(Exception):
            await in_thread(lease.release, 2.0)


async def run_guarded(cap: Any, lease: Lease | None, run: Awaitable):
    """Await the capture's ``run`` while a watcher keeps ``lease`` (plain await without one)."""
    if lease is None:
        return await run
    cap.ops.emit("lease_acquired", {"shard": lease.shard, "holder": lease.holder,
                                    "how": getattr(lease, "how", "")})
    cap.log.info("shard %s: lease acquired (%s) as %s", lease.shard, getattr(lease, "how", ""),
                 lease.holder)
    watcher = asyncio.create_task(_watch(cap, lease), name="lease")
    try:
        return await run
    finally:
        watcher.cancel()


async def _watch(cap: Any, lease: Lease) -> None:
    interval = float(getattr(lease, "check_sec", 1.0))
    failing_since: float | None = None
    while True:
        fence = lease.fence_at()
        now = time.monotonic()
        wait = interval if failing_since is None or fence is None else \
            max(0.0, min(interval, fence - now))
        await asyncio.sleep(wait)
        fence = lease.fence_at()
        budget = interval if fence is None else max(0.05, min(interval, fence - time.monotonic()))
        try:
            await in_thread(lease.keep, budget)
            if failing_since is not None:
                cap.log.info("shard %s: lease renewed again", lease.shard)
            failing_since = None
            continue
        except LeaseLost as exc:
            return fence_capture(cap, lease, str(exc))
        except asyncio.TimeoutError:
            why = f"no answer within {budget:.1f} s"
        except Exception as exc:   # could not be told (store or server unreachable)
            why = f"{type(exc).__name__}: {str(exc)[:160]}"
        if fence is not None and time.monotonic() >= fence:
            return fence_capture(cap, lease, f"the lease could not be renewed until the fencing "
                                             f"deadline ({why}); another process may take it")
        if failing_since is None:
            failing_since = time.monotonic()
            cap.log.warning("shard %s: lease renewal failed (%s); retrying, stopping in %.0f s "
                            "if it keeps failing", lease.shard, why,
                            (fence or time.monotonic()) - time.monotonic())
            cap.ops.emit("lease_renew_failed", {"shard": lease.shard, "error": why})


def fence_capture(cap: Any, lease: Lease, reason: str) -> None:
    """Stop capturing now: the capture finalises its files and ends with :class:`LeaseLost`."""
    msg = f"shard {lease.shard}: lease lost ({reason}); stopped capturing"
    cap.summary.stop_reason = cap.summary.stop_reason or f"lease lost: {reason}"
    if cap.health.fatal is None:
        cap.health.fatal = LeaseLost(msg)
    cap.final_heal_sec = 0     # the next holder heals; finalise within the fencing margin
    cap.log.error("%s", msg)
    cap.ops.emit("lease_lost", {"shard": lease.shard, "reason": reason[:300]})
    metrics.lease_lost_total.inc()
    cap._stop.set()


__all__ = ["fence_capture", "held", "in_thread", "leased", "run_guarded"]
