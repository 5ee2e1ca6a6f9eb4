"""CLI: `python -m stack up [--replicas N]` runs the mesh in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from rich.console import Console

from stack.console import endpoints_table, follow_logs
from stack.launcher import Stack
from stack.processes import StackError
from stack.settings import StackSettings


def up(settings: StackSettings, follow: bool) -> int:
    console = Console()
    # SIGTERM is handled like Ctrl-C: a KeyboardInterrupt that unwinds into stop().
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    stack = Stack(settings, report=lambda message: console.print(f"[green]✓[/] {message}", highlight=False))
    console.print(f"starting ticketmesh; state and logs in {settings.state_dir}", highlight=False)
    try:
        stack.start()  # on failure or Ctrl-C it stops what it started, then raises
    except StackError as exc:
        console.print(f"[bold red]could not start:[/] {exc}", highlight=False)
        return 1
    except KeyboardInterrupt:
        console.print("interrupted during start; everything started was stopped")
        return 130
    try:
        console.print(endpoints_table(stack))
        console.print("[bold]Ctrl-C to stop[/]")
        if follow:
            follow_logs(stack, console)
        else:
            threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        # A second Ctrl-C must not cut the clean stop short and leave processes behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        console.print("\nstopping (services get a few seconds to drain) ...")
        stack.stop()
        console.print("stopped; nothing left running")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m stack", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("up", help="start everything; Ctrl-C stops it all")
    run.add_argument("--replicas", type=int, help="inventory replicas (default 2, or INVENTORY_REPLICAS)")
    run.add_argument("--state-dir", type=Path, help="Postgres data, NATS store, logs (default .stack/)")
    run.add_argument("--no-follow", action="store_true", help="do not print the processes' logs")
    args = parser.parse_args()
    settings = StackSettings.from_env(
        inventory_replicas=args.replicas, state_dir=args.state_dir.resolve() if args.state_dir else None
    )
    return up(settings, follow=not args.no_follow)


if __name__ == "__main__":
    raise SystemExit(main())
