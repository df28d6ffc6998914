"""storage/layout.py: partition paths and UTC dates, and names that could escape the data root
refused."""

from __future__ import annotations

import pytest

from ofi_cvd_harvest.storage import layout

MIDNIGHT = 1_721_347_200_000   # 2024-07-19 00:00 UTC


def test_utc_date_turns_at_midnight_utc():
    assert layout.utc_date(MIDNIGHT - 1) == "2024-07-18"
    assert layout.utc_date(MIDNIGHT) == "2024-07-19"
    assert layout.utc_date(MIDNIGHT + 86_400_000 - 1) == "2024-07-19"


@pytest.mark.parametrize("date", ["2024-07-19", "2024-02-29", "2023-12-31", "1970-01-01"])
def test_day_bounds_are_a_half_open_day(date):
    start, end = layout.day_bounds_ms(date)
    assert end - start == 86_400_000
    assert layout.utc_date(start) == date and layout.utc_date(end - 1) == date
    assert layout.utc_date(end) != date


@pytest.mark.parametrize("date, before", [("2024-07-19", "2024-07-18"),
                                          ("2024-03-01", "2024-02-29"),
                                          ("2023-03-01", "2023-02-28"),
                                          ("2024-01-01", "2023-12-31")])
def test_previous_date_across_months_years_and_leap_days(date, before):
    assert layout.previous_date(date) == before


def test_paths():
    assert layout.raw_dir("2024-07-19", "BTCUSDT", "agg_trade") == (
        "raw/date=2024-07-19/symbol=BTCUSDT/stream=agg_trade")
    assert layout.raw_file("2024-07-19", "BTCUSDT", "book", MIDNIGHT, 7) == (
        f"raw/date=2024-07-19/symbol=BTCUSDT/stream=book/part-{MIDNIGHT}-000007.parquet")
    assert layout.derived_dir("2024-07-19", "ETHUSDT", "cvd") == (
        "ofi_cvd/date=2024-07-19/symbol=ETHUSDT/kind=cvd")
    assert layout.derived_file("2024-07-19", "ETHUSDT", "cvd") == (
        "ofi_cvd/date=2024-07-19/symbol=ETHUSDT/kind=cvd/part-00000.parquet")


def test_file_names_sort_by_first_receipt_then_sequence():
    names = [layout.raw_file("2024-07-19", "BTCUSDT", "ops", ms, seq)
             for ms, seq in ((MIDNIGHT + 5, 2), (MIDNIGHT + 5, 10), (MIDNIGHT + 6, 1))]
    assert sorted(names) == names


@pytest.mark.parametrize("date", ["2024-7-19", "19-07-2024", "2024-07-19/..", "../x", "",
                                  "2024-07-19\n", "٢٠٢٤-٠٧-١٩"])
def test_a_bad_date_is_refused(date):
    for make in (lambda: layout.raw_dir(date, "BTCUSDT", "agg_trade"),
                 lambda: layout.derived_file(date, "BTCUSDT", "prices")):
        with pytest.raises(ValueError, match="bad partition date"):
            make()


@pytest.mark.parametrize("symbol", ["btcusdt", "BTC/USDT", "..", "BTCUSDT/../../etc", "",
                                    "BTC USDT", "BTCUSDT\n"])
def test_a_bad_symbol_is_refused(symbol):
    for make in (lambda: layout.raw_file("2024-07-19", symbol, "agg_trade", 0, 1),
                 lambda: layout.derived_dir("2024-07-19", symbol, "prices")):
        with pytest.raises(ValueError, match="bad partition symbol"):
            make()
