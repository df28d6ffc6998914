"""Sensors: keep one capture run alive per symbol group or shard, report raw partitions, trigger
derivation.

- ``capture_sensor``: exactly one capture run per symbol group — or, with
  ``capture.universe = shards``, per shard of the exchange's universe (orchestration/
  capture_groups.py; the shard plan is the sensor's cursor, runs are tagged with the shard and
  routed to a host queue; docs/deploy.md "Capture shards"). A queued/starting/started run
  means "nothing to do" (the tick text shows its health); none → launch; the last one failed or
  was cancelled → relaunch only after ``error_cooldown_sec`` (docs/dagster.md, 300 s); it finished →
  relaunch at once; a live shard run started from an older plan says so in the tick text (its
  new symbols join at its next launch). The symbols of its groups/shards become members of the
  ``symbol`` partitions dimension (orchestration/partitions.py). No fixed ``run_key`` (dagster#15982: keys are remembered forever): the key is
  ``capture:<group>:after:<previous run id>``, unique per launch yet idempotent if a tick is
  retried. The default run launcher cannot health-check run workers, so a STARTED run whose
  worker process is gone (kill -9, OOM) is marked failed here, from the pid the op recorded.
- ``raw_partitions_sensor``: reports raw partitions as they fill (runless materialisations);
  a symbol found in the raw tree that is not a partition yet is added first (its files are
  reported on the next tick, once the partition exists).
- ``derive_sensor``: for every symbol of the partitions dimension, while raw data for today keeps arriving, re-derives today's partitions
  every 15 minutes; after the UTC day closes (plus a grace for the midnight file rotation) it
  requests one final derivation of the closed day. A partition the DQ gate quarantined is
  not re-derived every 15 minutes: it backs off (15 min × 2^failures in a row, up to 4 h, from
  ``quarantine/…/dq.json``) and the tick's skip reason and cursor say so.

The decisions are plain functions of (runs, files, now) so tests can drive them with a real
instance and a fake clock (``now``).
"""


import json
import socket
import time
from dataclasses import dataclass

import dagster as dg
import psutil
from dagster import DagsterRunStatus, RunsFilter

from ..schemas import RAW_STREAMS
from ..settings import load_settings
from ..storage import layout
from ..storage.fs import Storage
from .capture_groups import resolve_groups
from .jobs import capture_job
from .launcher import launcher_checks_workers
from .partitions import SYMBOL_DIMENSION, add_symbols_requests, known_symbols, missing_symbols
from .raw_assets import latest_raw_age_sec, raw_symbols, scan_raw
from .resources import HarvestSettings
from .run_queue import derive_priority_tags
from .tags import GROUP_TAG, HOST_TAG, PARTITION_TAG, PID_START_TAG, PID_TAG, TRIGGER_TAG, group_name

now = time.time  # the sensors' clock; tests replace it

LIVE_STATUSES = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
                 DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING, DagsterRunStatus.SUSPENDED]
CAPTURE_SENSOR_INTERVAL_SEC = 30
RAW_SENSOR_INTERVAL_SEC = 30
DERIVE_SENSOR_INTERVAL_SEC = 60
REFRESH_INTERVAL_SEC = 900.0      # today's partitions re-derived this often while data flows
FINAL_GRACE_SEC = 180.0           # after UTC midnight, wait for the rotated files before finalising
BACKOFF_MAX_EXP = 4               # a failing partition is retried after 15 min × 2^n, n ≤ 4 (4 h)
DERIVE_JOB_NAME = "derive_job"


def _ago(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def _utc_date(ts: float) -> str:
    return layout.utc_date(int(ts * 1000))   # the sensors' clock is in seconds


# --- capture ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class CaptureDecision:
    group: tuple[str, ...]
    launch: bool
    reason: str
    run_key: str | None = None


def worker_alive(run: dg.DagsterRun) -> bool:
    """False only when the run recorded a pid on *this* host and that process is gone."""
    pid, host = run.tags.get(PID_TAG), run.tags.get(HOST_TAG)
    if not pid or host != socket.gethostname():
        return True
    try:
        proc = psutil.Process(int(pid))
        started = run.tags.get(PID_START_TAG)
        return started is None or abs(proc.create_time() - float(started)) < 1.0
    except (psutil.NoSuchProcess, ValueError):
        return False
    except psutil.Error:
        return True


def _ended_at(record) -> float:
    if record.end_time:
        return float(record.end_time)
    return record.update_timestamp.timestamp()


def last_run_rows(instance: dg.DagsterInstance, run_id: str) -> str:
    """``BTCUSDT 1,234 trades / 5,678 book rows`` from a finished capture run's output
    metadata ("" when it produced none, e.g. it crashed)."""
    for rec in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_OUTPUT):
        md = rec.dagster_event.step_output_data.metadata if rec.dagster_event else {}
        parts = [f"{k[:-7]} {md[k].value:,} trades / {md.get(k[:-7] + '_book_rows').value:,} book rows"
                 for k in sorted(md) if k.endswith("_trades") and md.get(k[:-7] + "_book_rows")]
        if parts:
            return "; ".join(parts)
    return ""


def _plan_change(run: dg.DagsterRun, group: tuple[str, ...]) -> str:
    """`` (started with an older shard plan: +NEW -OLD …)`` when the run's symbols differ."""
    try:
        had = set(run.run_config["ops"]["capture"]["config"]["symbols"])
    except (KeyError, TypeError):
        return ""
    added, removed = sorted(set(group) - had), sorted(had - set(group))
    if not added and not removed:
        return ""
    diff = " ".join([f"+{s}" for s in added] + [f"-{s}" for s in removed])
    return f" (started with an older plan: {diff} at its next launch)"


def decide_capture(instance: dg.DagsterInstance, group: tuple[str, ...], cooldown_sec: float,
                   t: float, *, job_name: str = "capture_job", name: str | None = None
                   ) -> CaptureDecision:
    """Whether to launch a capture run for ``group`` (tagged ``name``, default: its symbols) at
    time ``t``, and why (the tick text)."""
    gname = name or group_name(group)
    live = instance.get_run_records(
        RunsFilter(job_name=job_name, tags={GROUP_TAG: gname}, statuses=LIVE_STATUSES), limit=10)
    for rec in live:
        run = rec.dagster_run
        # a launcher that health-checks its workers (Celery, Kubernetes) leaves this to
        # Dagster's run monitoring; the pid check sees only this host (default launcher)
        if (run.status == DagsterRunStatus.STARTED and not launcher_checks_workers(instance)
                and not worker_alive(run)):
            instance.report_run_failed(
                run, f"capture run worker (pid {run.tags.get(PID_TAG)}) is gone; marked failed "
                     "by capture_sensor")
    live = [r for r in live if instance.get_run_by_id(r.dagster_run.run_id).status in LIVE_STATUSES]
    if live:
        run = live[0].dagster_run
        since = live[0].start_time or live[0].create_timestamp.timestamp()
        extra = f" (+{len(live) - 1} more!)" if len(live) > 1 else ""
        extra += _plan_change(run, group) if name else ""
        return CaptureDecision(group, False,
                               f"{gname}: run {run.run_id[:8]} {run.status.value} for "
                               f"{_ago(t - since)}{extra}")
    last = instance.get_run_records(RunsFilter(job_name=job_name, tags={GROUP_TAG: gname}), limit=1)
    if not last:
        return CaptureDecision(group, True, f"{gname}: no capture run yet, launching",
                               f"capture:{gname}:first")
    rec = last[0]
    run = rec.dagster_run
    key = f"capture:{gname}:after:{run.run_id}"
    ended = _ended_at(rec)
    rows = last_run_rows(instance, run.run_id)
    rows = f" ({rows})" if rows else ""
    if run.status == DagsterRunStatus.SUCCESS:
        return CaptureDecision(group, True, f"{gname}: run {run.run_id[:8]} finished "
                               f"{_ago(t - ended)} ago{rows}, relaunching", key)
    wait = ended + cooldown_sec - t
    if wait > 0:
        return CaptureDecision(group, False,
                               f"{gname}: run {run.run_id[:8]} {run.status.value} {_ago(t - ended)} "
                               f"ago{rows}; cool-down, relaunch in {_ago(wait)}")
    return CaptureDecision(group, True, f"{gname}: run {run.run_id[:8]} {run.status.value} "
                           f"{_ago(t - ended)} ago{rows}, cool-down over, relaunching", key)


def _autostart() -> dg.DefaultSensorStatus:
    """``capture.autostart`` (``OFI_CVD_CAPTURE_AUTOSTART``), read when the code loads."""
    on = load_settings().capture_autostart
    return dg.DefaultSensorStatus.RUNNING if on else dg.DefaultSensorStatus.STOPPED


@dg.sensor(
    job=capture_job,
    minimum_interval_seconds=CAPTURE_SENSOR_INTERVAL_SEC,
    default_status=_autostart(),
    description="Keeps exactly one capture_job run alive per symbol group, or per shard of the "
                "exchange's universe (capture.universe = shards; the plan is the cursor); "
                "relaunches after a crash once error_cooldown_sec has passed. Stop this sensor "
                "before terminating a capture you want to stay stopped.",
)
def capture_sensor(context: dg.SensorEvaluationContext, harvest: HarvestSettings):
    settings = harvest.settings()
    t = now()
    requests = []
    groups, cursor, notes = resolve_groups(settings, context.cursor)
    for g in groups:
        d = decide_capture(context.instance, g.symbols, settings.error_cooldown_sec, t,
                           name=g.name if g.shard else None)
        notes.append(d.reason)
        if d.launch:
            requests.append(dg.RunRequest(run_key=d.run_key, run_config=g.run_config(),
                                          tags=g.tags(settings.run_hours * 3600.0)))
    symbols = sorted({s for g in groups for s in g.symbols})
    adds = add_symbols_requests(context.instance, symbols)   # listings get their partitions
    if adds:
        notes.append(f"symbol partitions added: {', '.join(adds[0].partition_keys)}")
    try:
        age = latest_raw_age_sec(Storage(settings.data_dir), _utc_date(t), symbols, t)
        notes.append("no raw file today" if age is None else f"last raw file {_ago(age)} ago")
    except OSError as exc:
        notes.append(f"raw dir unreadable: {exc}")
    context.log.info("; ".join(notes))
    if requests:
        return dg.SensorResult(run_requests=requests, cursor=cursor,
                               dynamic_partitions_requests=adds)
    return dg.SensorResult(skip_reason="; ".join(notes), cursor=cursor,
                           dynamic_partitions_requests=adds)


# --- raw partitions --------------------------------------------------------------------------

@dg.sensor(
    minimum_interval_seconds=RAW_SENSOR_INTERVAL_SEC,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Reports raw_agg_trade / raw_book / raw_ops partitions as the capture fills "
                "data/raw (runless materialisations with file/row counts); adds the symbol "
                "partitions of symbols found there.",
)
def raw_partitions_sensor(context: dg.SensorEvaluationContext, harvest: HarvestSettings):
    storage, t = harvest.storage(), now()
    new = missing_symbols(context.instance, raw_symbols(storage, t))
    adds = [dg.AddDynamicPartitionsRequest(SYMBOL_DIMENSION, new)] if new else []
    updates, cursor = scan_raw(storage, context.cursor, t,
                               symbols=known_symbols(context.instance))
    added = f"symbol partitions added: {', '.join(new)}" if new else ""
    if added:
        context.log.info(added)
    if not updates:
        return dg.SensorResult(cursor=cursor, dynamic_partitions_requests=adds,
                               skip_reason="; ".join(filter(None, ["no new raw files", added])))
    return dg.SensorResult(asset_events=[u.materialization() for u in updates], cursor=cursor,
                           dynamic_partitions_requests=adds)


# --- derivation trigger ----------------------------------------------------------------------

@dataclass(frozen=True)
class DeriveRequest:
    partition_key: str
    run_key: str
    trigger: str  # "refresh" | "final"


def _raw_mtime(storage: Storage, date: str, symbol: str) -> float | None:
    """Newest mtime of the partition's raw stream directories (a finalised file bumps it)."""
    import pyarrow.fs as pafs

    newest = None
    if not storage.local:   # no directory mtimes on an object store (orchestration/raw_objects.py)
        from .raw_objects import newest_mtime

        for stream in RAW_STREAMS:
            ts = newest_mtime(storage, layout.raw_dir(date, symbol, stream))
            newest = ts if newest is None or (ts is not None and ts > newest) else newest
        return newest
    for stream in RAW_STREAMS:
        info = storage.fs.get_file_info(storage.path(layout.raw_dir(date, symbol, stream)))
        if info.type == pafs.FileType.Directory:
            ts = info.mtime.timestamp() if info.mtime is not None else 0.0
            newest = ts if newest is None else max(newest, ts)
    return newest


def quarantine_backoff(storage: Storage, date: str, symbol: str) -> tuple[float, str] | None:
    """(retry-not-before, why) for a partition the gate quarantined, else None. Each failure
    in a row doubles the wait (``consecutive_failures`` in its dq.json)."""
    from ..gate.verdict import read
    from ..storage.objectstore import data_root

    v = read(data_root(storage.url or storage.root), date, symbol)
    if not v or v.get("status") != "quarantined":
        return None
    n = max(1, int(v.get("consecutive_failures") or 1))
    since = float(v.get("time_ms", 0)) / 1000
    failed = ", ".join(v.get("failed_checks") or []) or "checks"
    return (since + REFRESH_INTERVAL_SEC * 2 ** min(n, BACKOFF_MAX_EXP),
            f"quarantined ({failed} failed, {n} in a row)")


def plan_derive(storage: Storage, symbols, t: float, cursor: str | None,
                busy: set[str] = frozenset()) -> tuple[list[DeriveRequest], str, list[str]]:
    """Derive runs due at time ``t``: refreshes of today, finals of closed days.

    Cursor: ``{"refresh": {pk: {"t": requested_at, "m": raw_mtime}}, "final": [pk, …],
    "backoff": {pk: retry_not_before}}`` (``final``: the last two days' finalised keys).
    ``busy`` holds partition keys with a derive run already queued or running (skipped).
    Returns (requests, new cursor, notes for the tick text).
    """
    state = json.loads(cursor) if cursor else {}
    refresh: dict[str, dict] = state.get("refresh", {})
    final: list[str] = state.get("final", [])
    backoff: dict[str, float] = {}
    today = _utc_date(t)
    yesterday = _utc_date(t - 86400)
    out: list[DeriveRequest] = []
    notes: list[str] = []
    idle: list[str] = []   # no raw data today (e.g. delisted symbols): one note for all
    for symbol in symbols:
        # finals: yesterday (if it had data) and any closed day we refreshed but never finalised
        closed = {pk.split("|")[0] for pk in refresh if pk.endswith(f"|{symbol}")} | {yesterday}
        for date in sorted(d for d in closed if d < today):
            pk = f"{date}|{symbol}"
            if pk in final:
                refresh.pop(pk, None)
                continue
            midnight_after = layout.day_bounds_ms(date)[1] / 1000
            if t < midnight_after + FINAL_GRACE_SEC:
                notes.append(f"{pk}: finalising after {_ago(midnight_after + FINAL_GRACE_SEC - t)}")
                continue
            if _raw_mtime(storage, date, symbol) is None:
                refresh.pop(pk, None)
                continue
            if pk in busy:
                notes.append(f"{pk}: derive run in progress, final later")
                continue
            out.append(DeriveRequest(pk, f"derive-final:{pk}", "final"))
            final.append(pk)
            refresh.pop(pk, None)
        # refresh of today while raw data keeps arriving
        pk = f"{today}|{symbol}"
        mtime = _raw_mtime(storage, today, symbol)
        prev = refresh.get(pk)
        if mtime is None:
            idle.append(symbol)
        elif pk in busy:
            notes.append(f"{pk}: derive run in progress")
        elif (held := quarantine_backoff(storage, today, symbol)) and t < held[0]:
            backoff[pk] = held[0]
            notes.append(f"{pk}: {held[1]}; backing off, next try in {_ago(held[0] - t)}")
        elif prev and mtime <= prev["m"]:
            notes.append(f"{pk}: no new raw files since {_ago(t - prev['t'])} ago")
        elif prev and t - prev["t"] < REFRESH_INTERVAL_SEC:
            notes.append(f"{pk}: refreshed {_ago(t - prev['t'])} ago, next in "
                         f"{_ago(prev['t'] + REFRESH_INTERVAL_SEC - t)}")
        else:
            slot = int(t // REFRESH_INTERVAL_SEC)
            out.append(DeriveRequest(pk, f"derive-refresh:{pk}:{slot}", "refresh"))
            refresh[pk] = {"t": t, "m": mtime}
    if idle:
        more = f" and {len(idle) - 5} more" if len(idle) > 5 else ""
        notes.append(f"{today}: no raw data for {', '.join(idle[:5])}{more}")
    # finals of the last two days, however many symbols (a universe has hundreds a day)
    final = [pk for pk in final if pk.split("|")[0] >= _utc_date(t - 2 * 86400)]
    state = {"refresh": refresh, "final": final, "backoff": backoff}
    return out, json.dumps(state, sort_keys=True), notes


def busy_partitions(instance: dg.DagsterInstance, job_name: str = DERIVE_JOB_NAME) -> set[str]:
    recs = instance.get_run_records(RunsFilter(job_name=job_name, statuses=LIVE_STATUSES), limit=100)
    return {r.dagster_run.tags.get(PARTITION_TAG, "") for r in recs} - {""}


@dg.sensor(
    job_name=DERIVE_JOB_NAME,
    minimum_interval_seconds=DERIVE_SENSOR_INTERVAL_SEC,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="While the capture writes today's raw files, re-derives today's partitions (every "
                "symbol partition) every 15 minutes; after UTC midnight (+3 min) requests the final derivation of the "
                "closed day. Older days: backfill derive_job from the UI.",
)
def derive_sensor(context: dg.SensorEvaluationContext, harvest: HarvestSettings):
    settings = harvest.settings()
    t = now()
    requests, cursor, notes = plan_derive(Storage(settings.data_dir), known_symbols(context.instance),
                                          t, context.cursor, busy_partitions(context.instance))
    run_requests = [dg.RunRequest(run_key=r.run_key, partition_key=r.partition_key,
                                  tags={TRIGGER_TAG: r.trigger,
                                        **derive_priority_tags(r.partition_key, t)})
                    for r in requests]
    if run_requests and notes:   # e.g. another partition backing off after quarantines
        context.log.info("; ".join(notes))
    if run_requests:
        return dg.SensorResult(run_requests=run_requests, cursor=cursor)
    return dg.SensorResult(cursor=cursor, skip_reason="; ".join(notes) or "nothing to derive")


all_sensors = [capture_sensor, raw_partitions_sensor, derive_sensor]
