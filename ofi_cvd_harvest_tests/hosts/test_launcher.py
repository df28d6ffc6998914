"""orchestration/launcher.py: which deployments need the project's pid check, and the run tags
that place runs (Celery queue per host)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from ofi_cvd_harvest.orchestration.launcher import QUEUE_TAG, launcher_checks_workers, queue_tags

ROOT = Path(__file__).resolve().parents[2]


def test_default_launcher_keeps_the_pid_check():
    """The one-box instance (DefaultRunLauncher) cannot health-check run workers."""
    with dg.instance_for_test(overrides={"run_monitoring": {"enabled": True}}) as instance:
        assert not instance.run_launcher.supports_check_run_worker_health
        assert not launcher_checks_workers(instance)


def test_celery_launcher_without_monitoring_keeps_the_pid_check():
    """A launcher that could health-check is not enough: the daemon only asks it when run
    monitoring is on."""
    launcher = {"module": "dagster_celery.launcher", "class": "CeleryRunLauncher",
                "config": {"broker": "redis://127.0.0.1:1/0", "backend": "redis://127.0.0.1:1/0"}}
    with dg.instance_for_test(overrides={"run_launcher": launcher,
                                         "run_monitoring": {"enabled": False}}) as instance:
        assert instance.run_launcher.supports_check_run_worker_health
        assert not launcher_checks_workers(instance)
    with dg.instance_for_test(overrides={"run_launcher": launcher,
                                         "run_monitoring": {"enabled": True}}) as instance:
        assert launcher_checks_workers(instance)


def test_queue_tag_is_dagster_celerys():
    from dagster_celery.tags import DAGSTER_CELERY_QUEUE_TAG
    assert QUEUE_TAG == DAGSTER_CELERY_QUEUE_TAG
    assert queue_tags(" host-a ") == {QUEUE_TAG: "host-a"}
    for bad in ("", "   ", "host a", "host\ta", "a\nb"):
        with pytest.raises(ValueError, match="one word"):
            queue_tags(bad)


def test_dockerfile_builds_from_what_the_repo_has():
    """No Docker daemon here: the image's inputs exist, its lock pins the matched Dagster set
    installed here, and its command is one `dagster code-server start` accepts."""
    text = (ROOT / "deploy/k8s/Dockerfile").read_text()
    copies = re.findall(r"^COPY\s+(\S+)\s+\S+\s*$", text, flags=re.M)
    assert copies and all((ROOT / src).exists() for src in copies), copies
    ignore = (ROOT / "deploy/k8s/Dockerfile.dockerignore").read_text().split()
    assert all(f"!{src.rstrip('/')}" in {i.rstrip('/') for i in ignore} for src in copies)
    lock = dict(line.split("==", 1) for line in (ROOT / "requirements.lock").read_text().split()
                if "==" in line)
    assert lock["dagster"] == dg.__version__
    major, minor, patch = dg.__version__.split(".")
    for pkg in ("dagster-k8s", "dagster-postgres", "dagster-celery"):   # 0.(minor+16).N for 1.minor.N
        assert lock[pkg] == f"0.{int(minor) + 16}.{patch}", (pkg, lock[pkg])
    cmd = re.search(r'^CMD \[(.*)\]\s*$', text, flags=re.M).group(1)
    argv = [a.strip().strip('"') for a in cmd.split(",")]
    assert argv[:3] == ["dagster", "code-server", "start"] and "ofi_cvd_harvest.definitions" in argv
    helptext = subprocess.run([str(Path(sys.executable).with_name("dagster")), *argv[1:3],
                               "--help"], capture_output=True, text=True, timeout=120).stdout
    for opt in (a for a in argv[3:] if a.startswith("-")):
        assert re.search(rf"(^|\s|,){re.escape(opt)}[\s,]", helptext), opt
