"""A real PostgreSQL for tests: a throw-away cluster in a temp dir on a loopback port.

Debian's ``postgresql`` package (``.ci/run`` installs it when ``initdb`` is missing). initdb and
the server refuse to run as root, so when the tests run as root the cluster is owned by and run
as the ``postgres`` user (``runuser``). Trust authentication on 127.0.0.1 only: the cluster
lives for one test session and listens on nothing else (no unix socket directory is shared).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from ..procs import free_port


def _bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    cands = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return cands[-1] if cands else None


def available() -> bool:
    return _bin("initdb") is not None and _bin("pg_ctl") is not None


class PostgresServer:
    """``start()`` → ``url(db)`` (``postgresql+psycopg2://postgres@127.0.0.1:<port>/<db>``),
    ``create_db(name)``, ``stop()``."""

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="ofi-pg-"))
        self.data = self.root / "data"
        self.as_root = os.geteuid() == 0

    def _run(self, *argv: str, check: bool = True, timeout: float = 60
             ) -> subprocess.CompletedProcess:
        cmd = list(argv)
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=check, timeout=timeout, capture_output=True, text=True)

    def start(self) -> "PostgresServer":
        if not available():
            raise RuntimeError("PostgreSQL is not installed (initdb not found): "
                               "apt-get install postgresql, or run .ci/run")
        if self.as_root:
            shutil.chown(self.root, "postgres")
        self._run(_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                  "--no-sync", "-E", "UTF8", "--locale=C")
        opts = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                f"-c unix_socket_directories={self.root} -c fsync=off "
                f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-o", opts, "-l",
                  str(self.root / "server.log"), "-w", "-t", "60", "start")
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.sql("select 1", check=False).returncode == 0:
                return self
            time.sleep(0.2)
        raise RuntimeError("PostgreSQL did not accept connections: "
                           + (self.root / "server.log").read_text()[-2000:])

    def sql(self, statement: str, db: str = "postgres", check: bool = True
            ) -> subprocess.CompletedProcess:
        return subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                               "-d", db, "-v", "ON_ERROR_STOP=1", "-Atc", statement],
                              check=check, capture_output=True, text=True, timeout=60)

    def create_db(self, name: str) -> str:
        self.sql(f'create database "{name}"')
        return self.url(name)

    def url(self, db: str = "postgres") -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        if self.data.exists():
            self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop",
                      check=False)
        shutil.rmtree(self.root, ignore_errors=True)
