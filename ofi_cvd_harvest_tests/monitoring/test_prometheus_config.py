"""The shipped Prometheus config and alert rules pass the real ``promtool`` (check config,
check rules, rule unit tests), and every docs/monitoring.md alert has a firing and a silent test case."""

from __future__ import annotations

import subprocess

import yaml

from .promtools import CONFIG, JOB, PROMTOOL, need

SPEC_ALERTS = {  # docs/monitoring.md "Alerts": the six rules (plus the stale-stream rule we add)
    "HarvesterLatencyP99High", "HarvesterReconnectsHigh", "CvdFloorHitRateHigh",
    "HarvesterWriteErrors", "HarvesterRecvRateLow", "HarvesterDown",
}


def _promtool(*args: str) -> str:
    binary = need(PROMTOOL, "promtool")
    proc = subprocess.run([binary, *args], cwd=CONFIG.parent, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, f"promtool {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def _rules() -> list[dict]:
    doc = yaml.safe_load((CONFIG / "alert_rules.yml").read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def test_promtool_check_config():
    out = _promtool("check", "config", "config/prometheus.yml")
    assert "SUCCESS" in out


def test_promtool_check_rules():
    out = _promtool("check", "rules", "config/alert_rules.yml")
    assert f"SUCCESS: {len(_rules())} rules found" in out


def test_promtool_rule_unit_tests():
    out = _promtool("test", "rules", "config/alert_rules_test.yml")
    assert "SUCCESS" in out and "FAILED" not in out


def test_rules_are_complete_and_annotated():
    rules = {r["alert"]: r for r in _rules()}
    assert SPEC_ALERTS <= set(rules)
    for name, r in rules.items():
        assert r["labels"]["severity"] in ("warning", "critical"), name
        assert r["annotations"].get("summary") and r["annotations"].get("description"), name
        assert "for" in r, name
        assert f'job="{JOB}"' in r["expr"], name


def test_every_alert_has_firing_and_silent_unit_tests():
    doc = yaml.safe_load((CONFIG / "alert_rules_test.yml").read_text())
    fires, silent = set(), set()
    for group in doc["tests"]:
        for case in group.get("alert_rule_test", []):
            (fires if case.get("exp_alerts") else silent).add(case["alertname"])
    names = {r["alert"] for r in _rules()}
    assert names - fires == set(), "alerts never shown to fire"
    assert names - silent == set(), "alerts never shown to stay silent"


def test_prometheus_yml_scrapes_the_harvester_with_the_rules():
    doc = yaml.safe_load((CONFIG / "prometheus.yml").read_text())
    assert doc["rule_files"] == ["alert_rules.yml"]
    job = next(j for j in doc["scrape_configs"] if j["job_name"] == JOB)
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:8009"]  # PROMETHEUS_PORT default


def test_every_alert_is_documented():
    doc = (CONFIG.parent / "docs" / "monitoring.md").read_text()
    for rule in _rules():
        assert f"`{rule['alert']}`" in doc, rule["alert"]
