"""Every column of every table has a description, in one place (schemas.COLUMN_DOCS), and the
Dagster column schemas of the raw and derived assets carry it."""

import dagster as dg

from ofi_cvd_harvest import read, schemas
from ofi_cvd_harvest.definitions import defs


def test_every_column_described_exactly():
    tables = {**schemas.RAW_SCHEMAS, **schemas.DERIVED_SCHEMAS, **schemas.RESEARCH_SCHEMAS}
    assert set(schemas.COLUMN_DOCS) == set(tables)
    for name, schema in tables.items():
        docs = schemas.COLUMN_DOCS[name]
        assert set(docs) == set(schema.names), name          # no stale, no missing entry
        for col in schema.names:
            assert len(docs[col].strip()) >= 10, (name, col)
    for kind in read.KINDS:                                   # the readers' extra columns too
        for col in read.empty(kind, include_quarantine=True).columns:
            table = kind[4:] if kind.startswith("raw_") else kind
            assert schemas.column_doc(table, col).strip(), (kind, col)


def test_dagster_column_schema_descriptions():
    graph = defs.resolve_asset_graph()
    seen = 0
    for key in graph.get_all_asset_keys():
        md = graph.get(key).metadata or {}
        schema = md.get("dagster/column_schema")
        if schema is None:
            continue
        schema = schema.schema if isinstance(schema, dg.TableSchemaMetadataValue) else schema
        for col in schema.columns:
            assert col.description and col.description.strip(), (key, col.name)
        seen += 1
    assert seen == len(schemas.DERIVED_KINDS) + len(schemas.RAW_STREAMS) + len(schemas.RESEARCH_SCHEMAS)


def test_reading_doc_has_the_current_column_tables():
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "docs" / "reading.md").read_text()
    begin = text.index("\n", text.index("<!-- columns:begin")) + 1
    end = text.index("<!-- columns:end -->")
    assert text[begin:end] == schemas.columns_markdown(), \
        "docs/reading.md column tables are stale: paste ofi_cvd_harvest.schemas.columns_markdown()"
