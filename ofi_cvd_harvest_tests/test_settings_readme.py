"""README.md's settings table is generated from the settings table; this fails when it is stale."""

from pathlib import Path

from ofi_cvd_harvest.settings import TABLE
from ofi_cvd_harvest.settings.markdown import markdown_table, readme_section, update_readme

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_settings_table_is_up_to_date():
    section = readme_section(README.read_text())
    assert section is not None, "README.md lacks the settings-table markers"
    assert section == markdown_table(), (
        "README.md's settings table is stale: run "
        "`ofi-cvd-harvest settings --write-readme README.md`")


def test_markdown_table_has_one_row_per_setting_and_update_rewrites(tmp_path):
    rows = markdown_table().splitlines()
    assert len(rows) == 2 + len(TABLE)
    for e, row in zip(TABLE, rows[2:]):
        assert row.startswith(f"| `{e.key}` | ") and row.count(" | ") == 5
    stale = tmp_path / "README.md"
    text = README.read_text()
    stale.write_text(text.replace("| `dedup_lru` |", "| `dedup_lruu` |"))
    assert readme_section(stale.read_text()) != markdown_table()
    assert update_readme(stale) is True
    assert stale.read_text() == text
    assert update_readme(stale) is False
