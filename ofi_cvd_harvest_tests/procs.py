"""Process helpers shared by the tests that run real subprocesses and servers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess


def free_port() -> int:
    """A loopback port free right now (for servers that cannot be told to use port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def terminate(proc: subprocess.Popen, timeout: float = 30.0) -> tuple[str, str]:
    """SIGTERM (the graceful stop under test), then the process's output."""
    proc.send_signal(signal.SIGTERM)
    return proc.communicate(timeout=timeout)


def reap(proc: subprocess.Popen) -> None:
    """Never leave a test's process running: kill it if it has not exited."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def reap_group(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """Like :func:`reap` for a process started in its own session (``start_new_session``):
    the whole group goes, so its children (Dagster's run worker) do not outlive the test."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)
