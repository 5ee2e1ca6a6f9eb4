"""The launcher itself: it starts every part, routes through Envoy, and leaves nothing behind."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest

from stack import Stack, StackError, StackSettings
from stack.settings import free_ports


def _infra_only(tmp_path: Path) -> StackSettings:
    return StackSettings(state_dir=tmp_path / "state", services=()).with_free_ports()


def test_infra_starts_restarts_and_stops_leaving_no_process(tmp_path: Path) -> None:
    stack = Stack(_infra_only(tmp_path))
    with stack:
        assert set(stack.processes) == {"postgres", "nats", "envoy"}
        with psycopg.connect(stack.database_url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("ticketmesh",)
        health = httpx.get(f"{stack.nats_monitor_url}/healthz?js-enabled-only=true", trust_env=False)
        assert health.status_code == 200
        assert httpx.get(f"{stack.envoy_admin_url}/ready", trust_env=False).status_code == 200
        # A cluster without replicas answers 503, never hangs.
        assert httpx.get(f"{stack.public_url}/v1/whoami", trust_env=False).status_code == 503

        # What fault tests do: a crash, and a clean restart, of each part.
        postmaster = stack.process("postgres").pid
        backends = psutil.Process(postmaster).children()
        stack.kill("postgres")
        assert not psutil.pid_exists(postmaster)
        assert not any(b.is_running() and b.status() != psutil.STATUS_ZOMBIE for b in backends)
        stack.restart("postgres")
        with psycopg.connect(stack.database_url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        stack.kill("nats")
        stack.restart("nats")
        stack.terminate("envoy")
        stack.restart("envoy")
        assert httpx.get(f"{stack.envoy_admin_url}/ready", trust_env=False).status_code == 200
        started = stack.all_pids()
        assert len(started) >= 6  # three processes, each started twice, plus Postgres' children
    assert stack.alive_pids() == set(), "processes left behind"
    # Postgres data is kept between runs: a second start reuses it (no initdb).
    with Stack(_infra_only(tmp_path)) as again, psycopg.connect(again.database_url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert again.alive_pids() == set()


def test_a_failed_start_stops_what_it_started(tmp_path: Path) -> None:
    # A repo whose only service dies at start: Postgres and NATS are up by then and must be stopped.
    broken = tmp_path / "repo"
    (broken / "services" / "inventory").mkdir(parents=True)
    (broken / "services" / "inventory" / "__main__.py").write_text('raise SystemExit("boom at start")\n')
    settings = replace(_infra_only(tmp_path), repo_root=broken, services=("inventory",)).with_free_ports()
    stack = Stack(settings)
    with pytest.raises(StackError, match="boom at start"):
        stack.start()
    assert {"postgres", "nats", "inventory-1"} <= set(stack.processes)
    assert stack.alive_pids() == set()


def test_free_ports_are_distinct() -> None:
    ports = free_ports(20)
    assert len(set(ports)) == 20


async def test_whoami_alternates_between_two_replicas(stack: Stack) -> None:
    assert len(stack.replicas("inventory")) >= 2, "services/inventory is missing"
    async with httpx.AsyncClient(base_url=stack.public_url, trust_env=False) as client:
        replies = [await client.get("/v1/whoami") for _ in range(4)]
    assert all(reply.status_code == 200 for reply in replies), replies[0].text
    assert len({reply.json()["replica"] for reply in replies}) == 2
    assert all(reply.headers.get("x-request-id") for reply in replies)


async def test_every_replica_is_up_where_the_stack_says(stack: Stack) -> None:
    hosts = await asyncio.to_thread(stack.envoy_hosts)
    for name in stack.replicas():
        proc = stack.processes[name]
        assert proc.running, name
        assert hosts[name.rsplit("-", 1)[0]][stack.grpc_address(name)] == "healthy"
        async with httpx.AsyncClient(trust_env=False) as client:
            metrics = await client.get(stack.metrics_url(name))
        assert metrics.status_code == 200
