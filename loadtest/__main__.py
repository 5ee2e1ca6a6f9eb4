"""CLI: `python -m loadtest --buyers 5000 --seats 1000 --concurrency 200` simulates an on-sale.

Without --target it starts its own stack on free ports in a temporary folder and stops it at the
end; with --target it uses a running `make up` (or the URLs given). It prints a live progress bar,
then a table of throughput, latency percentiles and outcomes, checks the invariants, and writes
NAME.json and NAME.png into --out. Exit status 1 when an invariant breaks or an unexpected error
occurred (SOLD_OUT and declined cards are outcomes, not errors); 2 when the stack could not start.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from loadtest.chart import write_chart
from loadtest.clients import STRATEGIES, TRANSPORTS, make_client
from loadtest.report import print_report, to_json, write_json
from loadtest.scenario import Scenario, Target, run_sale
from stack import Stack, StackError, StackSettings
from stack import postgres as stack_postgres

DEFAULT_OUT = Path(".loadtest")


class _Rate(ProgressColumn):
    """Completed per second over the task's life so far."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        rate = task.completed / elapsed if elapsed > 0 else 0.0
        return Text(f"{rate:7.0f}/s", style="progress.data.speed")


class LiveProgress:
    """A rich progress bar per phase (register users, then buy) with its rate and outcomes."""

    def __init__(self, console: Console, buyers: int):
        self._bar = Progress(
            TextColumn("{task.description:>9}"),
            BarColumn(),
            MofNCompleteColumn(),
            _Rate(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[counts]}"),
            console=console,
            refresh_per_second=4,
        )
        self._buyers = buyers
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> LiveProgress:
        self._bar.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._bar.stop()

    def __call__(self, phase: str, done: int, counts: dict[str, int]) -> None:
        if phase not in self._tasks:
            self._tasks[phase] = self._bar.add_task(phase, total=self._buyers, counts="")
        text = "  ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(counts.items()))
        self._bar.update(self._tasks[phase], completed=done, counts=text)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m loadtest", description=__doc__.split("\n")[0])
    sale = p.add_argument_group("the sale")
    sale.add_argument("--buyers", type=int, default=5000, help="buyers, each with their own account")
    sale.add_argument("--seats", type=int, default=1000, help="tickets on sale, over all ticket types")
    sale.add_argument("--concurrency", type=int, default=200, help="buyers in flight at once")
    sale.add_argument("--ticket-types", type=int, default=1, help="seats split over this many types")
    sale.add_argument("--quantity", type=int, default=1, help="tickets per order")
    sale.add_argument("--strategy", choices=STRATEGIES, default="COMPARE_AND_SET")
    sale.add_argument("--transport", choices=TRANSPORTS, default="rest")
    sale.add_argument("--never-pay", type=float, default=0.1, help="share of buyers who never pay")
    sale.add_argument("--pay-twice", type=float, default=0.05, help="share who double-click Pay")
    sale.add_argument(
        "--retry-same-key",
        type=float,
        default=0.05,
        help="share who re-send create and pay with one request id",
    )
    sale.add_argument("--decline-rate", type=float, default=0.0, help="share of cards the gateway declines")
    sale.add_argument("--seed", type=int, help="seed for the buyers' behaviour")
    sale.add_argument("--settle-seconds", type=float, default=60.0, help="wait for rest at most this long")
    where = p.add_argument_group("where")
    where.add_argument(
        "--target",
        nargs="?",
        const="default",
        help="use a running stack: its public URL, or no value for `make up`'s defaults; "
        "without --target a stack is started on free ports and stopped at the end",
    )
    where.add_argument("--grpc-target", help="host:port of the public gRPC listener (default: --target's)")
    where.add_argument("--admin-url", help="the admin API's URL (default: `make up`'s)")
    where.add_argument("--database-url", help="for the invariant check (default: `make up`'s)")
    where.add_argument("--replicas", type=int, default=2, help="inventory replicas of a started stack")
    where.add_argument("--state-dir", type=Path, help="a started stack's folder (default: a temporary one)")
    out = p.add_argument_group("results")
    out.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for NAME.json and NAME.png")
    out.add_argument("--name", help="file name stem (default loadtest-DATE-TIME)")
    out.add_argument("--no-progress", action="store_true", help="no live progress bar")
    args = p.parse_args(argv)
    if args.buyers < 1 or args.seats < 1 or args.concurrency < 1 or args.quantity < 1:
        p.error("--buyers, --seats, --concurrency and --quantity must be at least 1")
    if not 1 <= args.ticket_types <= args.seats:
        p.error("--ticket-types must be between 1 and --seats")
    for share in ("never_pay", "pay_twice", "retry_same_key", "decline_rate"):
        if not 0.0 <= getattr(args, share) <= 1.0:
            p.error(f"--{share.replace('_', '-')} is a share between 0 and 1")
    return args


def scenario_from(args: argparse.Namespace) -> Scenario:
    return Scenario(
        buyers=args.buyers,
        seats=args.seats,
        concurrency=args.concurrency,
        ticket_types=args.ticket_types,
        quantity=args.quantity,
        strategy=args.strategy,
        transport=args.transport,
        never_pay=args.never_pay,
        pay_twice=args.pay_twice,
        retry_same_key=args.retry_same_key,
        decline_rate=args.decline_rate,
        seed=args.seed,
        settle_seconds=args.settle_seconds,
    )


def target_of(stack: Stack) -> Target:
    return Target(stack.public_url, stack.public_grpc, stack.admin_api_url, stack.database_url)


def given_target(args: argparse.Namespace) -> Target:
    """--target and friends, defaulting to what `make up` listens on."""
    defaults = StackSettings.from_env()
    host = "127.0.0.1" if defaults.bind_address in ("0.0.0.0", "::") else defaults.bind_address
    public_url = f"http://{host}:{defaults.public_port}" if args.target == "default" else args.target
    return Target(
        public_url=public_url.rstrip("/"),
        public_grpc=args.grpc_target or urlsplit(public_url).netloc,
        admin_api_url=args.admin_url or f"http://{host}:{defaults.admin_api_port}",
        database_url=args.database_url or stack_postgres.url(defaults.postgres_port),
    )


@contextlib.contextmanager
def own_stack(console: Console, replicas: int, state_dir: Path | None) -> Iterator[Stack]:
    """A whole stack on free ports for this run only; its folder goes unless it was given."""
    folder = state_dir.resolve() if state_dir else Path(tempfile.mkdtemp(prefix="ticketmesh-loadtest-"))
    settings = StackSettings(state_dir=folder, inventory_replicas=replicas).with_free_ports()
    console.print("starting a stack for this run ...", highlight=False)
    try:
        with Stack(settings, report=lambda m: console.print(f"[green]✓[/] {m}", highlight=False)) as stack:
            yield stack
            console.print("stopping the stack ...")
    finally:
        if state_dir is None:
            shutil.rmtree(folder, ignore_errors=True)


async def sale(target: Target, scenario: Scenario, console: Console | None) -> dict[str, Any]:
    """Runs one sale against `target` and answers its JSON figures."""
    client = make_client(scenario.transport, target.public_url, target.public_grpc, scenario.concurrency)
    try:
        if console is None:
            result = await run_sale(client, target, scenario)
        else:
            with LiveProgress(console, scenario.buyers) as progress:
                result = await run_sale(client, target, scenario, progress)
    finally:
        await client.aclose()
    return to_json(result)


def finish(data: dict[str, Any], out: Path, name: str, console: Console) -> int:
    """Prints the tables, writes NAME.json and NAME.png, answers the exit status."""
    print_report(data, console)
    write_json(data, out / f"{name}.json")
    write_chart(data, out / f"{name}.png")
    console.print(f"results: {out / (name + '.json')}, chart: {out / (name + '.png')}", highlight=False)
    return 0 if data["passed"] else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 150))  # whole table rows in logs and pipes
    scenario = scenario_from(args)
    name = args.name or time.strftime("loadtest-%Y%m%d-%H%M%S")
    live = None if args.no_progress else console
    if args.target:
        data = asyncio.run(sale(given_target(args), scenario, live))
        return finish(data, args.out, name, console)
    try:
        with own_stack(console, args.replicas, args.state_dir) as stack:
            data = asyncio.run(sale(target_of(stack), scenario, live))
    except StackError as exc:
        console.print(f"[bold red]could not start the stack:[/] {exc}", highlight=False)
        return 2
    return finish(data, args.out, name, console)


if __name__ == "__main__":
    raise SystemExit(main())
