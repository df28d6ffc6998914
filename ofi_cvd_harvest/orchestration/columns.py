"""Dagster column schemas of every table, with the descriptions of ``schemas.COLUMN_DOCS``.

One builder for the raw, derived and research assets, so the UI's column tab and the lake's
docs (docs/reading.md) say the same thing.
"""

import dagster as dg

from ..schemas import DERIVED_SCHEMAS, RAW_SCHEMAS, RESEARCH_SCHEMAS, column_doc

_TABLES = {**RAW_SCHEMAS, **DERIVED_SCHEMAS, **RESEARCH_SCHEMAS}


def column_schema(table: str) -> dg.TableSchema:
    """``table``: a raw stream (``agg_trade``), a derived kind (``cvd``) or ``study``."""
    return dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type), description=column_doc(table, f.name))
                                   for f in _TABLES[table]])
