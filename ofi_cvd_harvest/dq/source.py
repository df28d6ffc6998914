"""The files a DQ evaluation reads, opened as DuckDB views.

A *scope* is one symbol over one or more UTC dates (a Dagster partition is one date; the report
covers a whole run). Files are listed per hive partition path (``raw/date=…/symbol=…/stream=…``,
``ofi_cvd/date=…/symbol=…/kind=…``) so DuckDB only ever touches the scope, and streams the rows
instead of loading a 72 h dataset into memory. Every file's Parquet footer is read first, so a
truncated or foreign file is reported by name (:class:`UnusableInput`) instead of surfacing as an
obscure engine error halfway through a metric. Raw files are verified in full once
(:mod:`..storage.verify`); a damaged one is left out of the views and named by the
``raw_files_readable`` metric (:mod:`.readable`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ..schemas import DERIVED_KINDS, RAW_STREAMS
from ..storage import layout, verify
from ..storage.fs import Storage
from ..storage.objectstore import LakeUrl, data_root as as_root, fsspec_filesystem

# DuckDB view name -> (area, table) ; raw views are prefixed so they never clash with derived kinds
VIEWS: dict[str, tuple[str, str]] = {
    **{f"raw_{s}": ("raw", s) for s in RAW_STREAMS},
    **{k: ("derived", k) for k in DERIVED_KINDS},
}


class UnusableInput(Exception):
    """The data cannot be evaluated at all (missing directory, no files, unreadable file)."""


@dataclass
class Scope:
    """One symbol over ``dates`` under the data root ``data_root`` (holding ``raw/`` and ``ofi_cvd/``;
    ``raw_root`` / ``derived_root`` point elsewhere when the two trees are not in one root;
    ``derived_roots`` overrides ``derived_root`` per date, e.g. a date the gate quarantined is
    read from ``quarantine/``, which has the lake's ``date=/symbol=/kind=`` shape)."""

    data_root: Path
    symbol: str
    dates: tuple[str, ...]
    raw_root: Path | None = None
    derived_root: Path | None = None
    derived_roots: dict[str, Path] = field(default_factory=dict)
    memory_limit: str = "512MB"      # DuckDB spills beyond this (a 72 h scope peaks < 0.7 GB RSS)
    threads: int = 2
    _schemas: dict[str, pa.Schema] = field(default_factory=dict, repr=False)
    damaged: dict[str, str] = field(default_factory=dict)    # raw path -> reason (left out)

    def __post_init__(self) -> None:
        # a local Path, or an s3:// LakeUrl with the same path operations (docs/deploy.md)
        self.data_root = as_root(self.data_root)
        self.raw_root = as_root(self.raw_root or self.data_root / "raw")
        self.derived_root = as_root(self.derived_root or self.data_root / "ofi_cvd")
        self.dates = tuple(sorted(self.dates))

    def files(self, view: str) -> list[str]:
        """Final Parquet files of ``view`` in the scope, in chronological (path) order."""
        area, table = VIEWS[view]
        out: list[str] = []
        for d in self.dates:
            if area == "raw":
                folder = self.raw_root / layout.raw_dir(d, self.symbol, table).split("/", 1)[1]
            else:
                root = as_root(self.derived_roots[d]) if d in self.derived_roots else self.derived_root
                folder = root / layout.derived_dir(d, self.symbol, table).split("/", 1)[1]
            if folder.is_dir():
                out.extend(str(p) for p in sorted(folder.glob("*.parquet")) if p.is_file())
        if area == "raw" and out:
            if isinstance(self.raw_root, LakeUrl):   # pyarrow's S3 filesystem names bucket/key
                keys = {LakeUrl(p).key: p for p in out}
                verdict = verify.verify(Storage(self.raw_root.parent), list(keys))
                self.damaged.update({keys[k]: r for k, r in verdict.damaged.items()})
                out = [keys[k] for k in verdict.good]
            else:
                verdict = verify.verify(Storage(self.raw_root.parent), out)
                self.damaged.update(verdict.damaged)
                out = verdict.good
        return out

    def schema_of(self, path: str) -> pa.Schema:
        """The Arrow schema in a file's footer (cached); raises :class:`UnusableInput` if unreadable."""
        if path not in self._schemas:
            try:
                self._schemas[path] = pq.read_schema(path)
            except (OSError, pa.ArrowException) as exc:
                raise UnusableInput(f"unreadable Parquet file {path}: {exc}") from None
        return self._schemas[path]

    def has(self, view: str) -> bool:
        return view in self.views

    @cached_property
    def views(self) -> dict[str, list[str]]:
        """Views with at least one file (footers validated)."""
        found = {}
        for view in VIEWS:
            files = self.files(view)
            for f in files:
                self.schema_of(f)
            if files:
                found[view] = files
        return found

    @cached_property
    def con(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with one view per table present in the scope."""
        con = duckdb.connect(config={"memory_limit": self.memory_limit, "threads": self.threads})
        con.execute("SET enable_progress_bar = false")
        if any(isinstance(r, LakeUrl) for r in (self.raw_root, self.derived_root)):
            # s3:// through s3fs: DuckDB's httpfs extension cannot be installed offline
            con.register_filesystem(fsspec_filesystem())
        for view, files in self.views.items():
            listing = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
            # file_index (position in `files`) + file_row_number give each row's stored order
            # cheaply; the file's name is looked up in Python only for the few offenders shown
            con.execute(f"CREATE VIEW {view} AS SELECT *, file_index FROM read_parquet([{listing}], "
                        "file_row_number = true)")
        return con

    def sql(self, query: str, params: list | None = None) -> list[tuple]:
        """Run a query; an engine error on file contents becomes :class:`UnusableInput`."""
        try:
            return self.con.execute(query, params or []).fetchall()
        except (duckdb.IOException, duckdb.InvalidInputException) as exc:
            raise UnusableInput(f"cannot read {self.symbol} {','.join(self.dates)}: {exc}") from None

    def one(self, query: str, params: list | None = None) -> tuple:
        rows = self.sql(query, params)
        return rows[0] if rows else ()

    def close(self) -> None:
        if "con" in self.__dict__:
            self.con.close()
            del self.__dict__["con"]
