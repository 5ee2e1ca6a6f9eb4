"""A sale's figures: throughput and latency percentiles per operation, outcomes, the invariant check;
as a rich table for the terminal and as JSON for the results folder."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console, Group
from rich.table import Table

from loadtest.scenario import Result, Sample, summary_counts

PERCENTILES = (50, 95, 99)
# Operations in the order a buyer meets them.
OPERATIONS = ("create_user", "create_order", "pay")


def latency_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds (numpy's linear interpolation); zeros when there are none."""
    if not seconds:
        return {"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
    ms = np.asarray(seconds, dtype=float) * 1000.0
    p50, p95, p99 = np.percentile(ms, PERCENTILES)
    return {"p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99), "max_ms": float(ms.max())}


def operation_stats(samples: Sequence[Sample]) -> dict[str, Any]:
    """Count, rate over the operation's own span (first start to last end) and latency."""
    if not samples:
        return {"count": 0, "per_second": 0.0, **latency_ms([])}
    first = min(s.start for s in samples)
    last = max(s.start + s.seconds for s in samples)
    span = max(last - first, 1e-9)
    return {
        "count": len(samples),
        "per_second": len(samples) / span,
        **latency_ms([s.seconds for s in samples]),
    }


def timeline(samples: Sequence[Sample], bucket: float = 1.0) -> dict[str, list[dict[str, float]]]:
    """Per operation, per `bucket` seconds of start time: calls started and their latency."""
    series: dict[str, list[dict[str, float]]] = {}
    for op in sorted({s.op for s in samples}):
        mine = [s for s in samples if s.op == op]
        buckets = np.floor(np.asarray([s.start for s in mine]) / bucket).astype(int)
        seconds = np.asarray([s.seconds for s in mine])
        rows = []
        for b in range(int(buckets.max()) + 1):
            inside = seconds[buckets == b]
            rows.append({"t": b * bucket, "per_second": len(inside) / bucket, **latency_ms(list(inside))})
        series[op] = rows
    return series


def to_json(result: Result) -> dict[str, Any]:
    """Everything a later reader needs: the scenario, the figures, the outcomes, the verdict."""
    ops = {
        op: {
            **operation_stats([s for s in (*result.setup, *result.samples) if s.op == op]),
            "outcomes": summary_counts(result).get(op, {}),
        }
        for op in OPERATIONS
    }
    held = sum(1 for s in result.samples if s.op == "create_order" and s.outcome == "held")
    sale = max(result.sale_seconds, 1e-9)
    return {
        "scenario": asdict(result.scenario),
        "event_id": result.event_id,
        "ticket_types": [asdict(t) for t in result.ticket_types],
        "wall_seconds": result.wall_seconds,
        "setup_seconds": result.setup_seconds,
        "sale_seconds": result.sale_seconds,
        "settle_seconds": result.settle_seconds,
        "throughput": {
            "buyers_per_second": result.scenario.buyers / sale,
            "requests_per_second": len(result.samples) / sale,
            "holds_per_second": held / sale,
            "tickets_sold_per_second": result.tickets_confirmed / sale,
        },
        "operations": ops,
        "outcomes": {
            "buyers": dict(result.buyers.most_common()),
            "holds": held,
            "tickets_confirmed": result.tickets_confirmed,
            "seats": result.scenario.seats,
            "availability": result.availability,
        },
        "errors": dict(result.errors.most_common()),
        "invariants": {
            "passed": not result.violations and not result.client_checks,
            "violations": result.violations,
            "client_checks": result.client_checks,
        },
        "timeline": timeline(result.samples),
        "passed": result.passed,
    }


def write_json(data: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def render(data: dict[str, Any]) -> Group:
    """The end-of-run tables."""
    sc = data["scenario"]
    ops = Table(
        title=(
            f"{sc['buyers']} buyers, {sc['seats']} seats in {len(data['ticket_types'])} ticket type(s), "
            f"concurrency {sc['concurrency']}, {sc['strategy']}, {sc['transport']}"
        ),
        title_justify="left",
    )
    ops.add_column("operation")
    for name in ("calls", "per s", "p50 ms", "p95 ms", "p99 ms", "max ms"):
        ops.add_column(name, justify="right")
    ops.add_column("outcomes")
    for op, s in data["operations"].items():
        if not s["count"]:
            continue
        outcomes = ", ".join(f"{k} {v}" for k, v in s["outcomes"].items())
        ops.add_row(
            op,
            str(s["count"]),
            f"{s['per_second']:.0f}",
            *(f"{s[k]:.1f}" for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")),
            outcomes,
        )
    t = data["throughput"]
    ops.caption = (
        f"sale {data['sale_seconds']:.1f} s: {t['buyers_per_second']:.0f} buyers/s, "
        f"{t['requests_per_second']:.0f} requests/s, {t['holds_per_second']:.0f} holds/s; "
        f"users set up in {data['setup_seconds']:.1f} s; at rest after {data['settle_seconds']:.1f} s; "
        f"wall {data['wall_seconds']:.1f} s"
    )
    ops.caption_justify = "left"

    out = Table(title="outcomes", title_justify="left")
    out.add_column("what")
    out.add_column("count", justify="right")
    o = data["outcomes"]
    for name, count in o["buyers"].items():
        out.add_row(f"buyers {name.replace('_', ' ')}", str(count))
    out.add_row("tickets sold (buyers told)", str(o["tickets_confirmed"]))
    for stock in o["availability"]:
        out.add_row(
            f"stock {stock['ticket_type']}",
            f"sold {stock['sold']}, held {stock['held']}, available {stock['available']} of {stock['capacity']}",
        )
    for name, count in data["errors"].items():
        out.add_row(f"[red]error {name}[/]", f"[red]{count}[/]")
    if not data["errors"]:
        out.add_row("errors", "0")

    inv = data["invariants"]
    problems = [*inv["violations"], *inv["client_checks"]]
    if inv["passed"]:
        verdict = (
            "[bold green]invariants hold[/]: I1-I5 on this event, and sold = tickets buyers were told of"
        )
    else:
        shown = "\n".join(f"  {p}" for p in problems[:20])
        verdict = f"[bold red]invariants broken ({len(problems)})[/]\n{shown}"
    return Group(ops, out, verdict)


def print_report(data: dict[str, Any], console: Console | None = None) -> None:
    (console or Console()).print(render(data))
