"""storage/objectstore.py without a store: what names an object-store lake, how a lake URL joins
like a Path, and which URLs are refused. (The S3 operations themselves run against a real
moto_server in lake/.)"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from ofi_cvd_harvest.storage import objectstore as osx
from ofi_cvd_harvest.storage.objectstore import LakeUrl


def test_is_url_and_split():
    assert osx.is_url("s3://bucket/lake") and not osx.is_url("/data") and not osx.is_url(None)
    assert not osx.is_url(Path("s3:/bucket"))                  # a Path is never a lake URL
    assert osx.split("s3://bucket/a/b/") == ("bucket", "a/b")
    assert osx.split("s3://bucket") == ("bucket", "")
    with pytest.raises(ValueError, match="no bucket"):
        osx.split("s3:///key")


def test_lake_url_joins_like_a_path():
    root = LakeUrl("s3://bucket//lake/")                       # doubled and trailing slashes
    assert root == "s3://bucket/lake" and isinstance(root, str)
    raw = root / "raw" / "/date=2024-07-19/"
    assert raw == "s3://bucket/lake/raw/date=2024-07-19" and isinstance(raw, LakeUrl)
    assert raw.name == "date=2024-07-19" and raw.parent == "s3://bucket/lake/raw"
    assert raw.key == "bucket/lake/raw/date=2024-07-19"
    assert raw.parts == ("bucket", "lake", "raw", "date=2024-07-19")
    assert raw.relative_to(root) == PurePosixPath("raw/date=2024-07-19")
    assert raw.resolve() is raw
    assert LakeUrl("s3://bucket").parent == "s3://bucket"    # the bucket is the top
    with pytest.raises(ValueError, match="not under"):
        raw.relative_to("s3://bucket/other")
    with pytest.raises(ValueError, match="not under"):
        LakeUrl("s3://bucket/lakehouse").relative_to(root)    # a prefix of the name is not a parent


@pytest.mark.parametrize("bad", ["/data", "http://host/b", "s3://", "s3:///key",
                                 "s3://bucket/../other", "s3://bucket/a/./b", "s3://.."])
def test_bad_lake_urls_are_refused(bad):
    with pytest.raises(ValueError):
        LakeUrl(bad)


def test_data_root_is_a_lake_url_or_a_path(tmp_path):
    assert isinstance(osx.data_root("s3://bucket/x"), LakeUrl)
    same = LakeUrl("s3://bucket/x")
    assert osx.data_root(same) is same
    assert osx.data_root(str(tmp_path)) == tmp_path and isinstance(osx.data_root(tmp_path), Path)


def test_polars_storage_options_follow_the_environment(monkeypatch):
    for var in ("AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(var, raising=False)
    assert osx.polars_storage_options() == {"aws_region": "us-east-1"}
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    assert osx.polars_storage_options() == {"aws_region": "eu-west-1",
                                            "aws_endpoint_url": "http://127.0.0.1:9000",
                                            "aws_allow_http": "true"}
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://s3.example")
    assert "aws_allow_http" not in osx.polars_storage_options()
