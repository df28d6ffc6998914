"""ZParams.from_settings maps every engine knob from the setting of the same meaning, by name."""

from __future__ import annotations

import dataclasses

import pytest

from ofi_cvd_harvest.settings import SignalSettings
from ofi_cvd_harvest.signals.zparams import ZParams

# ZParams field -> signals.* setting, written out here independently of the code under test
EXPECTED = {"scale_mode": "scale_mode", "half_life_sec": "half_life_sec",
            "fast_half_life_sec": "fast_half_life_sec", "fast_weight": "scale_fast_weight",
            "mad_multiplier": "mad_multiplier", "winsor_limit": "winsor_limit",
            "floor_window": "floor_window", "warmup_rows": "warmup_rows",
            "silence_sec": "silence_sec", "silence_warmup_rows": "silence_warmup_rows"}


def test_every_field_comes_from_its_own_setting():
    """Each setting gets a value no other one has, so a swapped or shifted field shows."""
    distinct = {"scale_mode": "mad", "half_life_sec": 601.5, "fast_half_life_sec": 61.5,
                "scale_fast_weight": 0.37, "mad_multiplier": 2.25, "winsor_limit": 7.5,
                "floor_window": 123, "warmup_rows": 17, "silence_sec": 4.25,
                "silence_warmup_rows": 3}
    sig = dataclasses.replace(SignalSettings(), **distinct)
    p = ZParams.from_settings(sig)
    assert {f.name for f in dataclasses.fields(ZParams)} == set(EXPECTED)
    for field, setting in EXPECTED.items():
        assert getattr(p, field) == distinct[setting], field


def test_defaults_agree_with_the_settings_defaults():
    assert ZParams.from_settings(SignalSettings()) == ZParams()


def test_a_field_without_a_setting_is_refused():
    @dataclasses.dataclass(frozen=True)
    class WithNewKnob(ZParams):
        new_knob: float = 1.0

    with pytest.raises(AttributeError, match="new_knob"):
        WithNewKnob.from_settings(SignalSettings())
