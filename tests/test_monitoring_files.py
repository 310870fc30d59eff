"""The monitoring profile, checked statically: compose against the Compose Specification's
JSON schema, Prometheus' config and rules with promtool, every alert unit-tested and in
the runbook, the files compose mounts present. (Which metrics the rules and the dashboard
use is checked against a live shop in tests/e2e/test_monitoring_e2e.py.)

promtool comes with Debian's ``prometheus`` package; ``.ci/run`` installs it and sets
``TEST_PROMTOOL=1``, and then a missing promtool fails instead of skipping (likewise
amtool, from ``prometheus-alertmanager``).
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

from tests.stack import WORKERS

ROOT = Path(__file__).resolve().parent.parent
MONITORING = ROOT / "deploy" / "monitoring"
MONITORING_SERVICES = ("prometheus", "alertmanager", "blackbox", "grafana")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    schema = json.loads((ROOT / "tests" / "data" / "compose-spec.json").read_text())
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((MONITORING / "rules" / "shop.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def prometheus_config() -> dict[str, Any]:
    return dict(yaml.safe_load((MONITORING / "prometheus.yml").read_text()))


def test_compose_validates_against_the_compose_specification(compose, validator):
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []


def test_the_schema_rejects_a_broken_compose_file(compose, validator):
    """The validation above can fail: a misspelt key or a wrong type is caught."""
    broken = copy.deepcopy(compose)
    broken["services"]["prometheus"]["profile"] = ["monitoring"]  # "profiles"
    broken["services"]["grafana"]["ports"] = "3000:3000"  # a list
    broken["configs"]["metrics_token"]["contents"] = ""  # "content"
    messages = " | ".join(e.message for e in validator.iter_errors(broken))
    assert "'profile' does not match any of the regexes: '^x-'" in messages
    assert "'contents' does not match any of the regexes: '^x-'" in messages
    assert "is not of type 'array'" in messages


def test_the_monitoring_profile_runs_prometheus_alertmanager_and_grafana(compose):
    services = compose["services"]
    for name in MONITORING_SERVICES:
        assert services[name]["profiles"] == ["monitoring"], name
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", services[name]["image"]), name
    for name in set(services) - set(MONITORING_SERVICES):
        assert "monitoring" not in services[name].get("profiles", []), name
    # every file compose mounts is in the repository
    for name in MONITORING_SERVICES:
        for volume in services[name].get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), volume
    prometheus = services["prometheus"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert compose["configs"]["metrics_token"] == {"content": "${METRICS_TOKEN:-}"}
    (token,) = prometheus["configs"]
    assert token["source"] == "metrics_token"
    # the token file sits where prometheus.yml's relative credentials_file points
    for job in prometheus_config()["scrape_configs"]:
        if "authorization" in job:
            path = Path("/etc/prometheus") / job["authorization"]["credentials_file"]
            assert str(path) == token["target"], job["job_name"]
    grafana = services["grafana"]["volumes"]
    assert "./deploy/monitoring/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana


def test_prometheus_scrapes_the_web_and_every_consumer_with_the_token(compose):
    jobs = {job["job_name"]: job for job in prometheus_config()["scrape_configs"]}
    web = jobs["shop-web"]
    assert web["static_configs"] == [{"targets": ["web:8000"]}]
    assert web["metrics_path"] == "/metrics"
    assert web["authorization"]["type"] == "Bearer"
    consumers = jobs["shop-consumers"]
    assert consumers["authorization"] == web["authorization"]
    (discovery,) = consumers["dns_sd_configs"]
    assert sorted(discovery["names"]) == sorted(WORKERS)  # every consumer service
    for worker in WORKERS:
        service = compose["services"][worker]
        port = service["environment"]["WORKER_METRICS_PORT"]
        assert int(port) == discovery["port"], worker
        assert port in service["expose"]
    readiness = jobs["shop-readiness"]
    assert readiness["static_configs"] == [{"targets": ["http://web:8000/readyz"]}]
    assert {"target_label": "__address__", "replacement": "blackbox:9115"} in readiness[
        "relabel_configs"
    ]
    (manager,) = prometheus_config()["alerting"]["alertmanagers"]
    assert manager["static_configs"] == [{"targets": ["alertmanager:9093"]}]


def test_every_alert_has_a_firing_unit_test_and_a_runbook_section():
    alerts = {rule["alert"] for rule in rules()}
    assert {
        "ShopNoConsumer",
        "ShopJobsWaitingTooLong",
        "ShopFailedJobsRising",
        "ShopCheckoutsNeedAttention",
        "ShopPaymentBreakerOpen",
        "ShopCheckoutErrorRate",
        "ShopNotReady",
    } <= alerts
    tests = yaml.safe_load((MONITORING / "tests" / "shop_test.yml").read_text())
    fired = {
        case["alertname"]
        for test in tests["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert fired == alerts
    runbook = (ROOT / "docs" / "operations.md").read_text()
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in runbook.splitlines()
        if line.startswith("#")
    }
    for rule in rules():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        anchor = rule["annotations"]["runbook_url"].split("#")[1]
        assert rule["annotations"]["runbook_url"] == f"docs/operations.md#{anchor}"
        assert anchor in headings, rule["alert"]


def test_grafana_provisions_the_datasource_and_the_dashboard():
    provisioning = MONITORING / "grafana" / "provisioning"
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["url"] == "http://prometheus:9090" and source["isDefault"]
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "shop.yml").read_text())[
        "providers"
    ]
    assert provider["options"]["path"] == "/etc/grafana/dashboards"
    dashboard = json.loads((MONITORING / "grafana" / "dashboards" / "shop.json").read_text())
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert {"Queues", "Checkout funnel", "Latency", "Payment breaker", "Workers"} <= set(rows)
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == source["uid"], panel["title"]
            assert target["expr"].strip(), panel["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("TEST_PROMTOOL") == "1":
            pytest.fail(f"TEST_PROMTOOL=1 but {name} is missing (apt-get install {package})")
        pytest.skip(f"{name} is not installed (Debian: apt-get install {package})")
    return path


def promtool() -> str:
    return tool("promtool", "prometheus")


def run(*argv: str, cwd: Path = ROOT) -> str:
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_promtool_checks_the_config_and_the_rules(tmp_path):
    tool = promtool()
    # the token file compose mounts beside prometheus.yml (promtool checks it exists)
    shutil.copy(MONITORING / "prometheus.yml", tmp_path)
    shutil.copytree(MONITORING / "rules", tmp_path / "rules")
    (tmp_path / "metrics_token").write_text("")
    assert "SUCCESS" in run(tool, "check", "config", str(tmp_path / "prometheus.yml"))
    output = run(tool, "check", "rules", str(MONITORING / "rules" / "shop.yml"))
    assert f"SUCCESS: {len(rules())} rules found" in output


def test_promtool_runs_the_alert_unit_tests():
    output = run(promtool(), "test", "rules", "tests/shop_test.yml", cwd=MONITORING)
    assert "SUCCESS" in output


def test_amtool_checks_the_alertmanager_config():
    amtool = tool("amtool", "prometheus-alertmanager")
    output = run(amtool, "check-config", str(MONITORING / "alertmanager.yml"))
    assert "SUCCESS" in output and "1 receivers" in output


def test_promtool_catches_a_wrong_expectation(tmp_path):
    """The unit tests can fail: one wrong expected value and promtool says so."""
    tool = promtool()
    tests = (MONITORING / "tests" / "shop_test.yml").read_text()
    broken = tests.replace('summary: "2 checkout(s) need', 'summary: "3 checkout(s) need')
    assert broken != tests
    rules_path = str(MONITORING / "rules" / "shop.yml")
    (tmp_path / "shop_test.yml").write_text(broken.replace("../rules/shop.yml", rules_path))
    result = subprocess.run(
        [tool, "test", "rules", "shop_test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "ShopCheckoutsNeedAttention" in result.stdout + result.stderr


EXTERNAL = {"up": "Prometheus (every target)", "probe_success": "the blackbox exporter"}
"""Series the rules and panels read that the shop does not serve."""
_KEYWORDS = {"and", "or", "unless", "offset", "bool", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (not functions, labels or keywords)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        if expr[match.end() :].lstrip().startswith("(") or match.group() in _KEYWORDS:
            continue
        names.add(match.group())
    return names


def used_metrics() -> dict[str, set[str]]:
    """metric name -> where it is used (alert names, dashboard panel titles)."""
    used: dict[str, set[str]] = {}
    for rule in rules():
        for name in metric_names(rule["expr"]):
            used.setdefault(name, set()).add(rule["alert"])
    dashboard = json.loads((MONITORING / "grafana" / "dashboards" / "shop.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            for name in metric_names(target["expr"]):
                used.setdefault(name, set()).add(panel["title"])
    return used


def test_metric_names_are_read_from_promql():
    expr = (
        "histogram_quantile(0.95, sum by (le, type) (rate(shop_job_duration_seconds_bucket"
        '{queue="a b", type!~"x|y"}[5m]))) > 0.5 and on (queue) up{job="w"} == 0 '
        "or vector(0) unless max without (instance) (process_open_fds offset 5m)"
    )
    assert metric_names(expr) == {"shop_job_duration_seconds_bucket", "up", "process_open_fds"}


def test_rules_and_panels_read_shop_metrics_or_known_outside_ones():
    used = used_metrics()
    assert len(used) > 15
    strangers = {
        name: places
        for name, places in used.items()
        if not name.startswith(("shop_", "process_")) and name not in EXTERNAL
    }
    assert strangers == {}
