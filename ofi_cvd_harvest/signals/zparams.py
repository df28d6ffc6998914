"""Parameters of the robust z engine (docs/signals.md "Robust z engine"), shared by its batch
form (``zengine.py``, polars) and its streaming form (``zstream.py``, no polars/numpy), so both
read the knobs from one place."""

from __future__ import annotations

from dataclasses import dataclass, fields

from ..settings import SignalSettings

MAD_TO_SIGMA = 1.4826
MIN_SCALE = 1e-9


@dataclass(frozen=True)
class ZParams:
    scale_mode: str = "hybrid"
    half_life_sec: float = 600.0
    fast_half_life_sec: float = 60.0
    fast_weight: float = 0.20
    mad_multiplier: float = 1.8
    winsor_limit: float = 8.0
    floor_window: int = 200
    warmup_rows: int = 20
    silence_sec: float = 5.0
    silence_warmup_rows: int = 2

    @classmethod
    def from_settings(cls, sig: SignalSettings) -> "ZParams":
        """Each field from the setting of the same name (by name, so a new or reordered field
        cannot silently take another's value; a field without a setting raises)."""
        return cls(**{f.name: getattr(sig, SETTING_OF.get(f.name, f.name)) for f in fields(cls)})


# ZParams fields whose setting is named otherwise (``signals.<name>`` in settings/table.py)
SETTING_OF = {"fast_weight": "scale_fast_weight"}
