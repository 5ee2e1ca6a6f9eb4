"""The observability files in the repo stay true to the live stack: every metric the Grafana
dashboard queries exists on a service's /metrics or Envoy's /stats/prometheus, and the Prometheus
scrape config names every service process and Envoy on the default ports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from stack.settings import SERVICES, StackSettings

ROOT = Path(__file__).resolve().parents[2]
OBSERVABILITY = ROOT / "observability"
DASHBOARD = OBSERVABILITY / "grafana" / "dashboards" / "ticketmesh.json"

# Words in PromQL that are not metric names: aggregations, functions, keywords.
_PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group", "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "bool", "offset", "le", "inf", "nan",
}  # fmt: skip
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_STRINGS = re.compile(r'"[^"]*"')
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (functions, keywords, labels left out)."""
    text = _LABEL_LIST.sub(" ", expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _STRINGS.sub(" ", text)
    names = set()
    for match in _NAME.finditer(text):
        word = match.group()
        following = text[match.end() :].lstrip()
        if following.startswith("(") or word.lower() in _PROMQL_WORDS:
            continue  # a function call or a keyword
        if text[max(0, match.start() - 1) : match.start()].isdigit() or word[0].isdigit():
            continue  # part of a number (1e3)
        names.add(word)
    return names


def _exprs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            else:
                yield from _exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _exprs(item)


def _names_in(text: str) -> set[str]:
    """Every family and sample name a Prometheus text page defines (a histogram gives its
    _bucket, _sum and _count; a labelled metric with no sample yet is still defined)."""
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
        names.update(sample.name for sample in family.samples)
    return names


def test_the_expression_parser_finds_metric_names_only() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, grpc_method) (rate(grpc_server_handling_seconds_bucket"
        '{grpc_code!="OK"}[$__rate_interval]))) / scalar(sum(rate(envoy_cluster_endpoint_rq_total[5m]))) * 60'
    )
    assert metric_names(expr) == {"grpc_server_handling_seconds_bucket", "envoy_cluster_endpoint_rq_total"}


async def test_every_metric_the_dashboard_queries_exists_on_the_live_stack(stack) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = list(_exprs(dashboard))
    assert len(exprs) >= 10
    wanted = set().union(*(metric_names(e) for e in exprs))
    live: set[str] = set()
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        # Envoy creates a cluster's response-code stats (upstream_rq_xx) at its first answer: on a
        # fresh stack (this test may run first) one call must go through.
        assert (await http.get(f"{stack.public_url}/v1/whoami")).status_code == 200
        for replica in stack.replicas():
            live |= _names_in((await http.get(stack.metrics_url(replica))).text)
        live |= _names_in((await http.get(f"{stack.envoy_admin_url}/stats/prometheus")).text)
    assert wanted - live == set(), "the dashboard queries metrics that no process exposes"
    # What the issue asks the dashboard to show, each by its real metric.
    for needed in (
        "grpc_server_handled_total",
        "grpc_server_handling_seconds_bucket",
        "tickets_sold_total",
        "reservation_conflicts_total",
        "orders_expired_total",
        "outbox_backlog",
        "notification_lag_seconds_bucket",
        "envoy_cluster_endpoint_rq_total",
    ):
        assert needed in wanted, needed


def test_every_panel_reads_the_provisioned_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    datasource = (OBSERVABILITY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    uid = re.search(r"^\s*uid:\s*(\S+)", datasource, re.M)
    assert uid is not None
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == uid.group(1), panel["title"]
        assert panel["targets"], panel["title"]
    provider = (OBSERVABILITY / "grafana" / "provisioning" / "dashboards" / "ticketmesh.yml").read_text()
    assert re.search(r"^\s*path:\s*\S+", provider, re.M)


def _scrape_jobs(text: str) -> dict[str, tuple[str, set[str]]]:
    """job name -> (metrics path, targets) from the scrape config (its simple, flat layout)."""
    jobs: dict[str, tuple[str, set[str]]] = {}
    for block in re.split(r"^\s*-\s*job_name:\s*", text, flags=re.M)[1:]:
        name = block.split()[0]
        path = re.search(r"^\s*metrics_path:\s*(\S+)", block, re.M)
        targets = set(re.findall(r'"([\w.-]+:\d+)"', block))
        jobs[name] = (path.group(1) if path else "/metrics", targets)
    return jobs


def test_the_scrape_config_names_every_service_and_envoy_on_the_default_ports() -> None:
    jobs = _scrape_jobs((OBSERVABILITY / "prometheus.yml").read_text())
    defaults = StackSettings()
    for service in SERVICES:
        path, targets = jobs[service]
        assert path == "/metrics"
        expected = {f"127.0.0.1:{r.metrics_port}" for r in defaults.replicas() if r.service == service}
        assert expected and targets == expected, service
    path, targets = jobs["envoy"]
    assert path == "/stats/prometheus"
    assert targets == {f"127.0.0.1:{defaults.envoy_admin_port}"}
