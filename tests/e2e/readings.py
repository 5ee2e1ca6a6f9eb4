"""What the running stack says about itself: a metric summed over a service's replicas, and one of
Envoy's stats. Shared by the metrics, Envoy and fault tests."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families


async def samples(stack: Any, service: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample on the /metrics of every replica of `service`."""
    found: list[tuple[str, dict[str, str], float]] = []
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        for replica in stack.replicas(service):
            text = (await http.get(stack.metrics_url(replica))).text
            for family in text_string_to_metric_families(text):
                found.extend((s.name, dict(s.labels), s.value) for s in family.samples)
    return found


async def metric_total(stack: Any, service: str, name: str, **labels: str) -> float:
    """`name` summed over the service's replicas and every series whose labels include `labels`."""
    return sum(
        value
        for sample, have, value in await samples(stack, service)
        if sample == name and all(have.get(k) == v for k, v in labels.items())
    )


async def envoy_stat(admin_url: str, name: str) -> int:
    """One of Envoy's counters or gauges by its exact name (0 before Envoy has created it)."""
    async with httpx.AsyncClient(trust_env=False) as client:
        text = (await client.get(f"{admin_url}/stats", params={"filter": f"^{name}$"})).text
    return int(text.split(":")[1]) if text.strip() else 0
