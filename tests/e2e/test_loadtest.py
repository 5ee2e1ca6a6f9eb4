"""The load tool end to end: a small on-sale through the session's stack over each transport, with
the tool's own invariant check, table, JSON and chart."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from loadtest.__main__ import main
from stack import Stack

SEATS = 40


@pytest.mark.parametrize("transport", ["rest", "grpc"])
async def test_a_small_sale_sells_every_seat_once(stack: Stack, tmp_path: Path, transport: str) -> None:
    argv = [
        "--buyers", "150", "--seats", str(SEATS), "--concurrency", "20", "--ticket-types", "2",
        "--transport", transport,
        # Everyone who gets a hold pays, so every seat ends sold; many double-click or re-send.
        "--never-pay", "0", "--pay-twice", "0.2", "--retry-same-key", "0.2", "--seed", "7",
        "--target", stack.public_url, "--grpc-target", stack.public_grpc,
        "--admin-url", stack.admin_api_url, "--database-url", stack.database_url,
        "--out", str(tmp_path), "--name", "sale", "--no-progress", "--settle-seconds", "20",
    ]  # fmt: skip
    # The tool runs its own event loop; give it a thread so this test's loop stays free.
    assert await asyncio.to_thread(main, argv) == 0

    data = json.loads((tmp_path / "sale.json").read_text())
    assert {"scenario", "operations", "outcomes", "errors", "invariants", "throughput", "timeline"} <= set(
        data
    )
    assert data["passed"] and data["errors"] == {}
    assert data["invariants"] == {"passed": True, "violations": [], "client_checks": []}
    assert sum(t["sold"] for t in data["outcomes"]["availability"]) == SEATS
    assert data["outcomes"]["tickets_confirmed"] == SEATS
    assert data["outcomes"]["buyers"]["bought"] == SEATS
    assert data["outcomes"]["buyers"]["sold_out"] == 150 - SEATS
    for op in ("create_user", "create_order", "pay"):
        stats = data["operations"][op]
        assert (
            stats["count"] > 0
            and 0 < stats["p50_ms"] <= stats["p95_ms"] <= stats["p99_ms"] <= stats["max_ms"]
        )
    assert data["operations"]["create_order"]["outcomes"]["replayed"] > 0
    assert (tmp_path / "sale.png").stat().st_size > 10_000
