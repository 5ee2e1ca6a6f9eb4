"""A sale on one PNG: throughput and latency over time per operation, and the outcomes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display on a server or in CI

import matplotlib.pyplot as plt

_SALE_OPS = ("create_order", "pay")


def write_chart(data: dict[str, Any], path: Path) -> None:
    """Three panels: calls/s over the sale, p50/p99 latency over the sale, outcome counts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (rate, latency, outcomes) = plt.subplots(3, 1, figsize=(11, 12), constrained_layout=True)
    sc = data["scenario"]
    fig.suptitle(
        f"{sc['buyers']} buyers, {sc['seats']} seats, concurrency {sc['concurrency']}, "
        f"{sc['strategy']}, {sc['transport']} — "
        + ("invariants hold" if data["invariants"]["passed"] else "INVARIANTS BROKEN"),
        fontsize=13,
    )
    series = data["timeline"]
    for op in _SALE_OPS:
        rows = series.get(op, [])
        if not rows:
            continue
        t = [r["t"] for r in rows]
        rate.plot(t, [r["per_second"] for r in rows], marker=".", label=op)
        (line,) = latency.plot(t, [r["p50_ms"] for r in rows], marker=".", label=f"{op} p50")
        latency.plot(
            t, [r["p99_ms"] for r in rows], linestyle="--", color=line.get_color(), label=f"{op} p99"
        )
    rate.set(title="throughput (calls started per second)", xlabel="seconds into the sale", ylabel="calls/s")
    latency.set(title="latency by start second", xlabel="seconds into the sale", ylabel="ms")
    for ax in (rate, latency):
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right")
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)

    counts: dict[str, int] = {
        f"buyers {k.replace('_', ' ')}": v for k, v in data["outcomes"]["buyers"].items()
    }
    for op in _SALE_OPS:
        for name, count in data["operations"][op]["outcomes"].items():
            counts[f"{op} {name.removeprefix('error:')}"] = count
    names = list(counts)
    errors = {*data["errors"], "buyers error", "buyers no user"}
    colors = ["tab:red" if n in errors else "tab:blue" for n in names]
    bars = outcomes.barh(names, [counts[n] for n in names], color=colors)
    outcomes.bar_label(bars, padding=3)
    outcomes.invert_yaxis()
    outcomes.set(title="outcomes (red: errors)", xlabel="count")
    outcomes.grid(axis="x", alpha=0.3)
    fig.savefig(path, dpi=100)
    plt.close(fig)
