"""capture/checkpoint.py on its own: the resume point round-trips exactly, is replaced
atomically, and a damaged file is refused with a ValueError naming it (never half-read)."""

from __future__ import annotations

import json

import pytest

from ofi_cvd_harvest.capture import checkpoint as ckpt
from ofi_cvd_harvest.capture.checkpoint import Checkpoint, SymbolCheckpoint


def sample() -> Checkpoint:
    return Checkpoint({"ETHUSDT": SymbolCheckpoint(900, [], 1_721_347_200_000, None),
                       "BTCUSDT": SymbolCheckpoint(2**62, [[5, 9], [20, 20]], 1_721_347_200_123,
                                                   77)})


def test_path_is_under_state(tmp_path):
    assert ckpt.path_in(tmp_path) == tmp_path / "state" / "checkpoint.json"


def test_absent_is_none(tmp_path):
    assert ckpt.load(tmp_path / "state" / "checkpoint.json") is None


def test_round_trip_is_exact_and_stamped(tmp_path):
    path = ckpt.path_in(tmp_path)          # the state directory does not exist yet
    cp = sample()
    ckpt.save(path, cp)
    got = ckpt.load(path)
    assert got.symbols == cp.symbols and got.version == ckpt.VERSION
    assert got.updated_ms == cp.updated_ms > 0
    assert list(json.loads(path.read_text())["symbols"]) == ["BTCUSDT", "ETHUSDT"]   # sorted
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.json"]            # no temp


def test_save_replaces_the_previous_version_whole(tmp_path):
    path = ckpt.path_in(tmp_path)
    ckpt.save(path, sample())
    ckpt.save(path, Checkpoint({"SOLUSDT": SymbolCheckpoint(1)}))
    assert list(ckpt.load(path).symbols) == ["SOLUSDT"]


def test_a_leftover_temp_file_does_not_matter(tmp_path):
    path = ckpt.path_in(tmp_path)
    ckpt.save(path, sample())
    (path.parent / "checkpoint.json.12345.tmp").write_text('{"symbols": {"X')   # a crash mid-save
    assert ckpt.load(path).symbols == sample().symbols


def test_missing_fields_take_their_defaults(tmp_path):
    path = tmp_path / "checkpoint.json"
    path.write_text('{"symbols": {"BTCUSDT": {}}}')
    got = ckpt.load(path)
    assert got.symbols == {"BTCUSDT": SymbolCheckpoint()} and got.version == 1
    assert got.updated_ms == 0


GOOD = json.dumps({"version": 1, "updated_ms": 5,
                   "symbols": {"BTCUSDT": {"last_trade_id": 10, "open_gaps": [[1, 2]]}}})


@pytest.mark.parametrize("text", [
    GOOD[: len(GOOD) // 2],                                        # truncated mid-write
    "",                                                             # zero bytes
    "\x00" * 64,                                                    # a zeroed block
    "null",                                                         # not an object
    "[1, 2]",
    '{"symbols": [1, 2]}',                                          # symbols not a mapping
    '{"symbols": {"BTCUSDT": 5}}',                                  # an entry not a mapping
    '{"symbols": {"BTCUSDT": {"last_trade_id": "ten"}}}',           # not an id
    '{"symbols": {"BTCUSDT": {"open_gaps": [[1, 2, 3]]}}}',         # not a pair
    '{"symbols": {"BTCUSDT": {"open_gaps": [["a", 2]]}}}',
    '{"symbols": {"BTCUSDT": {"open_gaps": 7}}}',
    '{"updated_ms": "yesterday"}',
])
def test_damaged_file_raises_value_error_naming_it(tmp_path, text):
    path = tmp_path / "checkpoint.json"
    path.write_text(text)
    with pytest.raises(ValueError, match="checkpoint .*checkpoint.json: unreadable"):
        ckpt.load(path)
    assert path.read_text() == text        # loading never changes the evidence


def test_undecodable_bytes_raise_value_error(tmp_path):
    path = tmp_path / "checkpoint.json"
    path.write_bytes(b'{"symbols": {"\xff\xfe": {}}}')
    with pytest.raises(ValueError, match="unreadable"):
        ckpt.load(path)
