"""capture.event_loop: the capture really runs on the loop the setting names, and is complete
on either (capture/eventloop.py)."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from ofi_cvd_harvest.capture import eventloop
from ofi_cvd_harvest.capture.runner import run_capture_sync
from ofi_cvd_harvest.settings import SettingsError, load_settings

from .miniexchange import MiniExchange
from .rawcheck import assert_trades_complete, capture_settings, read

SYMS = ["BTCUSDT", "ETHUSDT"]


async def _loop_class() -> str:
    loop = asyncio.get_running_loop()
    return f"{type(loop).__module__}.{type(loop).__name__}"


def test_run_uses_the_named_loop():
    assert eventloop.run(_loop_class(), "uvloop").startswith("uvloop")
    assert eventloop.run(_loop_class(), "asyncio").startswith("asyncio.")
    with pytest.raises(SettingsError, match="uvlop"):
        eventloop.run(_loop_class(), "uvlop")


def test_a_misspelt_loop_is_refused_by_name():
    with pytest.raises(SettingsError, match="CAPTURE_EVENT_LOOP.*uvlop"):
        load_settings(env={"CAPTURE_EVENT_LOOP": "uvlop"})
    assert load_settings(env={}).event_loop == "asyncio"
    assert load_settings(env={"CAPTURE_EVENT_LOOP": "uvloop"}).event_loop == "uvloop"


def test_uvloop_missing_is_one_clear_line(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "uvloop", None)   # as if not installed
    with pytest.raises(SettingsError, match=r"pip install -e '\.\[uvloop\]'"):
        eventloop.run(_loop_class(), "uvloop")


@pytest.mark.parametrize("kind", ["asyncio", "uvloop"])
def test_capture_is_complete_on_either_loop(kind, tmp_path):
    with MiniExchange(SYMS, seed=5) as ex:
        s = capture_settings(tmp_path, ex.ws_url, ex.rest_url).replace(event_loop=kind)
        run_capture_sync(s, run_seconds=2)
        for sym in SYMS:
            trades = read(s.data_dir, "agg_trade", sym)
            assert len(trades) > 10
            assert_trades_complete(trades, ex.ground_truth_ids(sym))
    ops = read(s.data_dir, "ops", "BTCUSDT")
    start = ops.filter(ops["event_type"] == "capture_start")["meta_json"][0]
    assert orjson.loads(start)["event_loop"] == kind
