"""``ofi-cvd-harvest-ui`` (``make ui``): the Dagster UI with the embedded simulator as source.

What a new user needs in one command: a project-local Dagster instance (``DAGSTER_HOME``,
with the project's ``dagster.yaml`` copied in), the local exchange simulator running in the
background, the capture pointed at it (``WS_BASE_URL`` / ``REST_BASE_URL`` are inherited by
``dagster dev`` and every run it launches) and the capture sensor started, then
``dagster dev`` at http://127.0.0.1:3000. ``dagster dev`` runs in its own process group so
Ctrl-C / SIGTERM here stops it and all its children, then the simulator.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHUTDOWN_GRACE_SEC = 20.0


def prepare_dagster_home(home: Path, template: Path = PROJECT_ROOT / "dagster.yaml") -> Path:
    """Create ``home`` and put the project's instance config there unless one exists."""
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if not target.exists() and template.exists():
        shutil.copyfile(template, target)
    return home


def dagster_dev_command(host: str, port: int) -> list[str]:
    exe = Path(sys.executable).with_name("dagster")
    base = [str(exe)] if exe.exists() else [sys.executable, "-m", "dagster"]
    return [*base, "dev", "-m", "ofi_cvd_harvest.definitions", "-h", host, "-p", str(port)]


def stop_process_group(proc: subprocess.Popen, grace: float = SHUTDOWN_GRACE_SEC) -> None:
    """SIGINT the whole group (dagster dev shuts its webserver, daemon and code servers down),
    then SIGKILL whatever is left after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


def restore_signals() -> None:
    """preexec_fn: a child started from a non-interactive shell may inherit SIGINT/SIGTERM as
    ignored or blocked, and ``dagster dev`` would then never stop; give it the defaults."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="ofi-cvd-harvest-ui",
        description="Start the Dagster UI (dagster dev) for ofi_cvd_harvest.definitions with the "
                    "local exchange simulator as the capture's source and capture_sensor on.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3000)
    p.add_argument("--dagster-home", default=os.environ.get("DAGSTER_HOME")
                   or str(PROJECT_ROOT / ".dagster_home"))
    p.add_argument("--no-simulator", action="store_true",
                   help="do not start the simulator; capture from WS_BASE_URL/REST_BASE_URL as set")
    p.add_argument("--seed", type=int, default=7, help="simulator seed")
    p.add_argument("--speed", type=float, default=1.0, help="simulator speed factor")
    p.add_argument("--no-autostart", action="store_true", help="leave capture_sensor stopped")
    args = p.parse_args(argv)

    env = os.environ.copy()
    home = prepare_dagster_home(Path(args.dagster_home).resolve())
    from ..deploy.instance import instance_problems
    problems = instance_problems(home)   # e.g. a PostgreSQL instance without psycopg2 in its URL
    if problems:
        print(f"ofi-cvd-harvest-ui: {problems[0]}", file=sys.stderr)
        return 2
    env["DAGSTER_HOME"] = str(home)
    if not args.no_autostart:
        env["OFI_CVD_CAPTURE_AUTOSTART"] = "1"

    sim = None
    if not args.no_simulator:
        from ..settings import load_settings
        from ..sim.server import SimulatorThread

        symbols = list(load_settings().symbols)
        sim = SimulatorThread(symbols, seed=args.seed, speed=args.speed)
        sim.start()
        env["WS_BASE_URL"], env["REST_BASE_URL"] = sim.ws_url, sim.rest_url
        print(f"simulator for {','.join(symbols)}: {sim.ws_url} / {sim.rest_url}", flush=True)

    cmd = dagster_dev_command(args.host, args.port)
    print(f"DAGSTER_HOME={home}\n{' '.join(cmd)}\nUI: http://{args.host}:{args.port}", flush=True)
    proc = subprocess.Popen(cmd, env=env, cwd=PROJECT_ROOT, start_new_session=True,
                            preexec_fn=restore_signals)

    def _terminate(signum, _frame):  # SIGTERM to us: stop like Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        print("stopping dagster dev ...", flush=True)
        return 0
    finally:
        stop_process_group(proc)
        if sim is not None:
            sim.stop()


if __name__ == "__main__":
    sys.exit(main())
