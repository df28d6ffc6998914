"""Damaging a Parquet file the way a disk does: bytes flipped inside a data page, the footer
intact (so only a full read with page CRCs notices)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq


def flip_inside_page(path: Path, column: str = "qty") -> None:
    """Flip bytes in the middle of ``column``'s first data page; the footer stays intact."""
    md = pq.ParquetFile(path).metadata
    rg = md.row_group(0)
    col = next(rg.column(i) for i in range(rg.num_columns) if rg.column(i).path_in_schema == column)
    start = col.dictionary_page_offset if col.has_dictionary_page else col.data_page_offset
    off = start + col.total_compressed_size // 2
    b = bytearray(path.read_bytes())
    for k in range(4):
        b[off + k] ^= 0x5A
    path.write_bytes(bytes(b))
