"""Fixtures: one ``moto_server`` process per test module, a proxy and a fresh bucket per test,
the AWS environment pointing at the proxy (docs/deploy.md, "Object storage")."""

from __future__ import annotations

import itertools
import os

import pytest

from ofi_cvd_harvest.storage import objectstore

from .s3env import MotoServer, TcpProxy, make_bucket, s3_env

_n = itertools.count()


@pytest.fixture(scope="module")
def moto():
    server = MotoServer()
    yield server
    server.stop()


@pytest.fixture
def lake(moto, monkeypatch):
    """(url, proxy): ``s3://<fresh bucket>/lake`` reached through a proxy the test controls."""
    proxy = TcpProxy(moto.port)
    bucket = f"lake-{os.getpid()}-{next(_n)}"
    make_bucket(moto.url, bucket)
    for k, v in s3_env(proxy.url).items():
        monkeypatch.setenv(k, v)
    objectstore._fsspec.cache_clear()
    yield f"s3://{bucket}/lake", proxy
    proxy.close()
    objectstore._fsspec.cache_clear()
