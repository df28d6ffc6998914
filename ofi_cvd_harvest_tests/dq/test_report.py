"""The report's figures against an independent polars/numpy recomputation from the files."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from ofi_cvd_harvest.dq.report import build_report, summary_text, write_report
from ofi_cvd_harvest.storage import layout

from . import dataset as ds


def load(root, area, date, sym, table):
    rel = layout.raw_dir(date, sym, table) if area == "raw" else layout.derived_dir(date, sym, table)
    return pl.read_parquet(str(root / rel / "*.parquet"))


def recompute(root, date, sym, connect, disconnect):
    """Every figure straight from the Parquet files, without DuckDB."""
    # a boundary minute is judged when connected for >= 30 s of it
    lo = next(m for m in range(connect // 60_000 * 60_000, disconnect, 60_000) if m + 60_000 - connect >= 30_000)
    hi = max(m for m in range(lo, disconnect, 60_000) if disconnect - m >= 30_000) + 60_000
    prices = load(root, "derived", date, sym, "prices")
    inwin = prices.filter(pl.col("event_ts_ms").is_between(lo, hi - 1))
    minutes = (hi - lo) // 60_000
    used = set((inwin["event_ts_ms"] // 60_000).to_list())
    empty = sum(1 for m in range(lo // 60_000, hi // 60_000) if m not in used)
    raw = load(root, "raw", date, sym, "agg_trade")
    ws = prices.filter((pl.col("source") == "ws") & pl.col("latency_ms").is_not_null())["latency_ms"].to_numpy()
    ids = np.unique(inwin["agg_trade_id"].to_numpy())
    cvd = load(root, "derived", date, sym, "cvd")
    z = cvd.filter(pl.col("z_raw").is_not_null() & pl.col("z_cvd").is_not_null())
    events = load(root, "derived", date, sym, "events")
    signal = events.filter(pl.col("meta_json").str.json_path_match("$.category") == "signal").height
    book = load(root, "raw", date, sym, "book")
    hours = (disconnect - connect) / 3_600_000     # the exact connected span
    return {
        "empty_bucket_rate": empty / minutes,
        "duplicate_rate": (raw.height - raw["agg_trade_id"].n_unique()) / raw.height,
        "latency_p50_ms": float(np.percentile(ws, 50)), "latency_p99_ms": float(np.percentile(ws, 99)),
        "events_per_72h": signal * 72 / hours,
        "winsor_effect": 1 - z["z_cvd"].std() / z["z_raw"].std(),
        "share_clipped": float(((z["z_cvd"] - z["z_raw"]).abs() > 1e-12).mean()),
        "floor_hit_rate": float(cvd["floor_used"].cast(pl.Float64).mean()),
        "scale_median": float(np.percentile(cvd["scale"].to_numpy(), 50)),
        "missing_trades": int(ids[-1] - ids[0] + 1 - len(ids)),
        "gap_rows": int(book["gap"].sum()), "coverage_hours": hours, "signal_events": signal,
        "raw_rows": raw.height, "prices_rows": prices.height,
    }


@pytest.fixture
def two_symbols(tmp_path):
    root = tmp_path / "data"
    btc = ds.build_partition(root, symbol="BTCUSDT", seed=1)
    eth = ds.build_partition(root, symbol="ETHUSDT", seed=2, minutes=55, first_id=90_000, signal_events=40)
    ds.delete_minute(eth, k=20)                     # make ETH fail with non-trivial figures
    ds.drop_ids(eth, 90_500, 90_504)
    ds.inflate_latency(btc, add_ms=37, every=3)
    return root, {"BTCUSDT": btc, "ETHUSDT": eth}


def test_report_figures_equal_independent_recomputation(two_symbols, settings, tmp_path):
    root, built = two_symbols
    report = build_report(root / "ofi_cvd", root / "raw", settings, ["BTCUSDT", "ETHUSDT"], [ds.DATE])
    for sym, b in built.items():
        exp = recompute(root, ds.DATE, sym, b.connect_ms, b.disconnect_ms)
        sec = report["per_symbol"][sym]
        c = sec["criteria"]
        for name in ("empty_bucket_rate", "duplicate_rate", "latency_p50_ms", "latency_p99_ms",
                     "events_per_72h", "winsor_effect", "missing_trades"):
            assert c[name]["value"] == pytest.approx(exp[name], rel=1e-9, abs=1e-12), (sym, name)
        assert sec["consistency"]["share_clipped"] == pytest.approx(exp["share_clipped"])
        assert sec["consistency"]["floor_hit_rate"] == pytest.approx(exp["floor_hit_rate"])
        assert sec["consistency"]["scale_median"] == pytest.approx(exp["scale_median"])
        assert sec["book"]["gap_rows"] == exp["gap_rows"]
        assert sec["coverage_hours"] == pytest.approx(exp["coverage_hours"], abs=1e-6)
        assert sec["signals"]["signal_events"] == exp["signal_events"]
        assert sec["dedup"]["raw_rows"] == exp["raw_rows"]
        assert sec["dedup"]["prices_rows"] == exp["prices_rows"]
    assert report["per_symbol"]["BTCUSDT"]["verdict"] == "PASS"
    eth = report["per_symbol"]["ETHUSDT"]
    assert eth["verdict"] == "FAIL" and {"empty_bucket_rate", "missing_trades"} <= set(eth["failed"])
    assert eth["completeness"]["missing_trades"] == 5 + 120    # the dropped ids + the deleted minute


def test_overall_takes_the_worst_symbol_and_fails_if_any_fails(two_symbols, settings):
    root, _ = two_symbols
    report = build_report(root / "ofi_cvd", root / "raw", settings, ["BTCUSDT", "ETHUSDT"], [ds.DATE])
    o, ps = report["overall"], report["per_symbol"]
    assert o["verdict"] == "FAIL" and "ETHUSDT:empty_bucket_rate" in o["failed"]
    assert o["criteria"]["latency_p99_ms"]["value"] == max(ps[s]["criteria"]["latency_p99_ms"]["value"] for s in ps)
    assert o["criteria"]["winsor_effect"]["value"] == min(ps[s]["criteria"]["winsor_effect"]["value"] for s in ps)
    assert o["criteria"]["empty_bucket_rate"]["worst_symbol"] == "ETHUSDT"
    assert o["totals"]["prices_rows"] == sum(ps[s]["dedup"]["prices_rows"] for s in ps)
    assert set(o["dod"]) == {"empty_bucket_rate", "duplicate_rate", "latency_p99_ms", "latency_p50_ms",
                             "events_per_72h", "winsor_effect", "events_per_hour"}
    assert report["thresholds"]["max_latency_p99_ms"] == settings.acceptance.max_latency_p99_ms


def test_too_many_events_warn_in_the_report_without_failing_it(two_symbols, settings):
    root, built = two_symbols
    ds.flood_events(built["BTCUSDT"], per_hour=1000)
    report = build_report(root / "ofi_cvd", root / "raw", settings, ["BTCUSDT"], [ds.DATE])
    sec = report["per_symbol"]["BTCUSDT"]
    assert sec["verdict"] == "PASS" and sec["failed"] == [] and sec["warnings"] == ["events_per_hour"]
    assert sec["criteria"]["events_per_hour"]["severity"] == "warn"
    assert sec["criteria"]["events_per_hour"]["passed"] is False
    assert sec["signals"]["events_per_hour"] > 1000 and sec["signals"]["max_events_per_hour"] == 300
    assert sec["signals"]["by_type_per_hour"]["cvd_extreme"] > 990
    assert report["overall"]["verdict"] == "PASS"
    assert report["overall"]["warnings"] == ["BTCUSDT:events_per_hour"]
    text = summary_text(report)
    assert "WARN events_per_hour" in text and "look like noise" in text and "OVERALL: PASS" in text


def test_report_shows_winsor_percentiles_and_level_mode_reason(two_symbols):
    from ofi_cvd_harvest.settings import load_settings
    root, _ = two_symbols
    level = load_settings(env={"Z_MODE": "level"})
    report = build_report(root / "ofi_cvd", root / "raw", level, ["BTCUSDT"], [ds.DATE])
    cons = report["per_symbol"]["BTCUSDT"]["consistency"]
    assert set(cons["abs_z_raw_percentiles"]) == {"p50", "p90", "p99", "p99_9", "max"}
    assert cons["z_mode"] == "level" and "Z_MODE=level" in cons["not_gated"]
    assert "winsor_effect" not in report["per_symbol"]["BTCUSDT"]["criteria"]
    assert "reported, not gated: Z_MODE=level" in summary_text(report)


def test_written_report_is_strict_json_with_timestamped_name(two_symbols, settings, tmp_path):
    import datetime as dt
    root, _ = two_symbols
    report = build_report(root / "ofi_cvd", root / "raw", settings, ["BTCUSDT"], [ds.DATE])
    path = write_report(report, tmp_path / "out", now=dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.timezone.utc))
    assert path.name == "dq_20260102_0304.json"
    doc = json.loads(path.read_text())
    assert doc["overall"]["verdict"] == "PASS"
    assert doc["per_symbol"]["BTCUSDT"]["clock_drift"]["max_abs_drift_ms"] == 250.0
    assert not list((tmp_path / "out").glob("*.tmp"))
    text = summary_text(report)
    assert "OVERALL: PASS" in text and "extrapolated" in text


def test_report_run_writes_under_artifacts(two_symbols, tmp_path):
    from ofi_cvd_harvest.dq.report import report_run
    from ofi_cvd_harvest.settings import load_settings
    root, _ = two_symbols
    s = load_settings(env={}, data_dir=root, artifacts_dir=tmp_path / "art")
    path, report = report_run(s, ["BTCUSDT"], [ds.DATE], mode="capture")
    assert path.parent == tmp_path / "art" / "dq_reports"
    assert json.loads(path.read_text())["mode"] == "capture" and report["overall"]["verdict"] == "PASS"


def test_multi_date_report_has_per_date_verdicts(tmp_path, settings):
    root = tmp_path / "data"
    ds.build_partition(root, date="2024-07-19", seed=1)
    day2 = ds.build_partition(root, date="2024-07-20", seed=2, first_id=900_000)
    ds.delete_minute(day2, k=3)
    report = build_report(root / "ofi_cvd", root / "raw", settings, ["BTCUSDT"], ["2024-07-19", "2024-07-20"])
    sec = report["per_symbol"]["BTCUSDT"]
    assert sec["by_date"]["2024-07-19"]["verdict"] == "PASS"
    assert sec["by_date"]["2024-07-20"]["verdict"] == "FAIL"
    assert "empty_bucket_rate" in sec["by_date"]["2024-07-20"]["failed"]
    assert sec["verdict"] == "FAIL"
    # the run window spans both connections (01:00 on the 19th to 01:41 on the 20th)
    assert sec["window"]["source"] == "ops" and sec["coverage_hours"] > 24
