"""A real Redis for tests: a throw-away ``redis-server`` in a temp dir on a loopback port.

Debian's ``redis-server`` package (``.ci/run`` installs it when missing). Bound to 127.0.0.1,
no persistence (no RDB snapshots, no AOF), no unix socket: it lives for one test and holds only
the Celery broker queues and task results of that test (docs/deploy.md, "Many hosts").
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from ..procs import free_port, reap


def available() -> bool:
    return shutil.which("redis-server") is not None


class RedisServer:
    """``start()`` → ``url(db)`` (``redis://127.0.0.1:<port>/<db>``), ``log()``, ``stop()``."""

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="ofi-redis-"))
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> "RedisServer":
        if not available():
            raise RuntimeError("redis-server is not installed: apt-get install redis-server, "
                               "or run .ci/run")
        self.proc = subprocess.Popen(
            [shutil.which("redis-server"), "--bind", "127.0.0.1", "--port", str(self.port),
             "--dir", str(self.root), "--save", "", "--appendonly", "no",
             "--protected-mode", "yes", "--logfile", str(self.root / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited {self.proc.returncode}: {self.log()}")
            if self.ping():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("redis-server did not answer PING: " + self.log())

    def ping(self) -> bool:
        """One PING over the wire protocol (no client library needed to check the server)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def log(self) -> str:
        path = self.root / "redis.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None:
            reap(self.proc)
        shutil.rmtree(self.root, ignore_errors=True)
