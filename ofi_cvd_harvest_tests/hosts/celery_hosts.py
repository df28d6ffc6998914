"""The "hosts" of the Celery tests: a Dagster home with deploy/dagster.celery.yaml and Celery worker
processes, each listening on its own queue under its own node name (docs/deploy.md, "Many hosts").

All hosts live on this machine; what makes them different hosts to Dagster and Celery is the
queue, the node name and the per-host environment (artifacts directory), exactly what differs
between real hosts. The lake (``DATA_DIR``) is shared, as an object store would be.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import psutil

from ..procs import reap_group

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TERMINAL = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE,
            dg.DagsterRunStatus.CANCELED)


def make_home(tmp_path: Path, postgres_url: str, redis_url: str) -> tuple[Path, dict[str, str]]:
    """DAGSTER_HOME with the shipped Celery instance config; the environment every host shares."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(ROOT / "deploy" / "dagster.celery.yaml", home / "dagster.yaml")
    env = {"DAGSTER_HOME": str(home), "DAGSTER_POSTGRES_URL": postgres_url,
           "DAGSTER_CELERY_BROKER_URL": redis_url, "DAGSTER_CELERY_BACKEND_URL": redis_url}
    return home, env


class Worker:
    """``dagster-celery worker start -q <queue> -n <queue>`` in its own process group."""

    def __init__(self, queue: str, env: dict[str, str], log: Path) -> None:
        self.queue, self.log = queue, log
        self._out = open(log, "w")
        self.proc = subprocess.Popen(
            [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
             "-y", str(ROOT / "deploy" / "celery-worker.yaml"), "-q", queue, "-n", queue,
             "--", "--concurrency=1", "--without-gossip", "--without-mingle"],
            env=env, cwd=ROOT, stdout=self._out, stderr=subprocess.STDOUT,
            start_new_session=True)

    @property
    def nodename_prefix(self) -> str:
        return f"{self.queue}@"

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if " ready." in self.text():
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"worker {self.queue} exited: {self.text()[-3000:]}")
            time.sleep(0.3)
        raise AssertionError(f"worker {self.queue} not ready in {timeout} s: {self.text()[-3000:]}")

    def pids(self) -> set[int]:
        """This worker's process tree (the celery main process and its pool children)."""
        try:
            top = psutil.Process(self.proc.pid)
            return {top.pid, *(c.pid for c in top.children(recursive=True))}
        except psutil.NoSuchProcess:
            return set()

    def pool_children(self) -> list[psutil.Process]:
        """The prefork pool processes that execute the tasks (children of the celery process)."""
        procs = [psutil.Process(p) for p in self.pids()]
        celery = [p for p in procs if "worker" in p.cmdline() and p.pid != self.proc.pid
                  and p.parent() and p.parent().pid == self.proc.pid]
        return [c for main in celery for c in main.children()]

    def stop(self) -> None:
        try:
            reap_group(self.proc, timeout=30)
        finally:
            self._out.close()


@contextmanager
def workers(queues: list[str], env: dict[str, str], log_dir: Path):
    """Start one worker per queue (in parallel), wait until all are ready; kill their groups."""
    started = []
    try:
        for q in queues:
            started.append(Worker(q, {**env, "ARTIFACTS_DIR": str(log_dir / q / "artifacts")},
                                  log_dir / f"worker-{q}.log"))
        for w in started:
            w.wait_ready()
        yield started
    finally:
        for w in started:
            w.stop()


def launch(instance: dg.DagsterInstance, job_name: str, *, tags: dict[str, str],
           run_config: dict | None = None) -> str:
    """Create a run of the code location's job and hand it to the instance's run launcher
    (what the daemon does for a dequeued run)."""
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    repo = ReconstructableRepository.for_module("ofi_cvd_harvest.definitions",
                                                fn_name="defs", working_directory=str(ROOT))
    recon = repo.get_reconstructable_job(job_name)
    job_def = recon.get_definition()
    run = instance.create_run_for_job(job_def, run_config=run_config or {}, tags=tags,
                                      job_code_origin=recon.get_python_origin())
    instance.launch_run(run.run_id, workspace=None)
    return run.run_id


def wait_terminal(instance: dg.DagsterInstance, run_ids: list[str], timeout: float,
                  logs: list[Worker]) -> dict[str, dg.DagsterRun]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        runs = {r: instance.get_run_by_id(r) for r in run_ids}
        if all(run.status in TERMINAL for run in runs.values()):
            return runs
        time.sleep(0.5)
    detail = "\n".join(f"--- {w.queue}\n{w.text()[-3000:]}" for w in logs)
    raise AssertionError(f"runs not finished in {timeout} s: "
                         f"{ {r: instance.get_run_by_id(r).status for r in run_ids} }\n{detail}")


def env_for_hosts(base: dict[str, str]) -> dict[str, str]:
    """The environment of the worker processes: this interpreter's bin first (the launcher CLI
    execs ``celery``), the worktree importable, no capture autostart."""
    env = {**os.environ, **base}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.pop("OFI_CVD_CAPTURE_AUTOSTART", None)
    return env
