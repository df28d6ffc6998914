"""Helpers for the monitoring tests: run the real ``promtool``/``prometheus`` binaries, scrape a
real /metrics endpoint, and pull metric names out of PromQL.

Tests skip (never fake) when Debian's prometheus binaries are absent.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml
from ..procs import free_port  # noqa: F401  (re-exported for the monitoring tests)

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config"
JOB = "ofi_cvd_harvest"

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")


def need(binary: str | None, name: str) -> str:
    if binary is None:
        pytest.skip(f"{name} binary not installed (apt-get install prometheus)")
    return binary


def http_get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read()


def exported_sample_names(exposition: str) -> set[str]:
    """Sample names a scrape of ``exposition`` can yield, from its ``# TYPE`` lines (which list
    every registered family, even one whose labelled children do not exist yet) and samples."""
    names: set[str] = set()
    suffixes = {"counter": ("_total", "_created"), "gauge": ("",), "untyped": ("",),
                "histogram": ("_bucket", "_sum", "_count", "_created"),
                "summary": ("", "_sum", "_count", "_created")}
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(None, 3)
            base = family[:-6] if kind == "counter" and family.endswith("_total") else family
            names.update(base + s for s in suffixes.get(kind, ("",)))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
             "and", "or", "unless", "inf", "nan", "atan2"}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names selected by a PromQL expression (Grafana variables allowed)."""
    s = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', expr)     # strings
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)                                              # ranges
    s = re.sub(r"\{[^}]*\}", "{}", s)                                              # matchers
    s = re.sub(r"\$\{?\w+\}?", " ", s)                                             # $vars
    names = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\(?)", s):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in _KEYWORDS or re.fullmatch(r"\d+[smhdwy]", word):
            continue
        names.add(word)
    return names


def load_dashboard() -> dict:
    return json.loads((CONFIG / "grafana" / "dashboards" / "ofi_cvd_harvest.json").read_text())


def dashboard_exprs(dash: dict) -> list[tuple[str, str]]:
    """(panel title, expr) for every query in every panel (rows included) and template var."""
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                out.append((p.get("title", ""), t.get("expr", "")))
            walk(p.get("panels", []))

    walk(dash.get("panels", []))
    for var in dash.get("templating", {}).get("list", []):
        q = var.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\)\s*", q or "")
        if m:
            out.append((f"variable {var['name']}", m.group(1)))
    return out


def grafana_to_promql(expr: str, rate_interval: str = "15s") -> str:
    """Substitute the Grafana variables the dashboard uses, as Grafana would."""
    return (expr.replace("$__rate_interval", rate_interval)
            .replace("$symbol", ".*").replace("$instance", ".*"))


class PrometheusServer:
    """A real Prometheus on loopback (ephemeral port, temp TSDB), killed on exit."""

    def __init__(self, workdir: Path, targets: list[str], *, scrape_interval: str = "1s",
                 rule_files: list[Path] | None = None, evaluation_interval: str = "1s"):
        self.workdir = Path(workdir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = {
            "global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval},
            "rule_files": [str(p) for p in (rule_files or [])],
            "scrape_configs": [{"job_name": JOB, "scrape_interval": scrape_interval,
                                "scrape_timeout": scrape_interval,
                                "static_configs": [{"targets": targets}]}],
        }
        self.config_path = self.workdir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(cfg))
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "PrometheusServer":
        for attempt in range(3):  # the free port can be taken between probe and bind: retry
            try:
                return self._start()
            except RuntimeError as err:
                if "address already in use" not in str(err) or attempt == 2:
                    raise
                self.port = free_port()
                self.url = f"http://127.0.0.1:{self.port}"
        raise AssertionError("unreachable")

    def _start(self) -> "PrometheusServer":
        binary = need(PROMETHEUS, "prometheus")
        self.log = open(self.workdir / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            [binary, f"--config.file={self.config_path}",
             f"--storage.tsdb.path={self.workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}",
             "--storage.tsdb.retention.time=1h", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=self.workdir)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.close()
                raise RuntimeError(f"prometheus exited: {self.logtext()}")
            try:
                http_get(self.url + "/-/ready", timeout=1)
                return self
            except OSError:
                time.sleep(0.2)
        self.__exit__(None, None, None)
        raise RuntimeError(f"prometheus not ready in 30 s: {self.logtext()}")

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()

    def logtext(self) -> str:
        return (self.workdir / "prometheus.log").read_text(errors="replace")[-3000:]

    def api(self, path: str, **params) -> dict:
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            body = json.loads(http_get(url))
        except urllib.error.HTTPError as err:  # 400 carries the PromQL error in JSON
            body = json.loads(err.read())
        return body

    def query(self, expr: str) -> list[dict]:
        body = self.api("query", query=expr)
        if body.get("status") != "success":
            raise AssertionError(f"query {expr!r} failed: {body}")
        return body["data"]["result"]

    def values(self, expr: str) -> dict[str, float]:
        """label-set string -> value of an instant vector query."""
        return {json.dumps(r["metric"], sort_keys=True): float(r["value"][1]) for r in self.query(expr)}

    def wait_for(self, expr: str, cond, timeout: float = 30.0, poll: float = 0.5) -> dict[str, float]:
        """Poll ``expr`` until ``cond(values)`` holds; return the values or fail with them."""
        deadline = time.monotonic() + timeout
        vals: dict[str, float] = {}
        while True:
            vals = self.values(expr)
            if cond(vals):
                return vals
            if time.monotonic() > deadline:
                raise AssertionError(f"timeout waiting on {expr!r}; last values {vals}")
            time.sleep(poll)

    def wait_for_rules(self, timeout: float = 20.0) -> list[dict]:
        """Alerting rules once each has been evaluated at least once."""
        deadline = time.monotonic() + timeout
        while True:
            body = self.api("rules", type="alert")
            rules = [r for g in body["data"]["groups"] for r in g["rules"]]
            if rules and all(r.get("health") != "unknown" for r in rules):
                return rules
            if time.monotonic() > deadline:
                return rules
            time.sleep(0.5)
