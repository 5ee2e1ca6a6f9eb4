"""What `make up` shows: a table of endpoints, then every process's log lines, prefixed and short."""

from __future__ import annotations

import json
import os
import time
from contextlib import ExitStack
from typing import TextIO

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from stack.launcher import Stack

_COLOURS = ["cyan", "magenta", "green", "yellow", "blue", "bright_cyan", "bright_magenta", "bright_green"]
_LEVEL_STYLE = {"WARNING": "yellow", "ERROR": "bold red", "CRITICAL": "bold red", "DEBUG": "dim"}


def metrics_endpoints(stack: Stack) -> dict[str, str]:
    """Every process's Prometheus endpoint, by process name: each service replica's /metrics and
    Envoy's /stats/prometheus (what observability/prometheus.yml scrapes on the default ports)."""
    found = {name: proc.metrics_url for name, proc in stack.processes.items() if proc.metrics_url}
    found["envoy"] = f"{stack.envoy_admin_url}/stats/prometheus"
    return found


def endpoints_table(stack: Stack) -> Table:
    table = Table(title="ticketmesh is up", title_justify="left")
    table.add_column("what")
    table.add_column("where")
    table.add_column("notes", style="dim")
    table.add_row("public REST", stack.public_url, f"e.g. curl {stack.public_url}/v1/whoami")
    table.add_row("public gRPC", stack.public_grpc, f"e.g. grpcurl -plaintext {stack.public_grpc} list")
    table.add_row("mesh gRPC", stack.mesh_grpc, "service-to-service calls only")
    table.add_row("admin API", stack.admin_api_url, "POST/GET /admin/v1/payments/mode")
    table.add_row("Envoy admin", stack.envoy_admin_url, "/stats/prometheus  /clusters  /ready")
    for name, proc in stack.processes.items():
        if proc.grpc_address:
            table.add_row(f"{name} (pid {proc.pid})", f"grpc {proc.grpc_address}", "")
    for name, url in metrics_endpoints(stack).items():
        table.add_row(f"metrics: {name}", url, "Prometheus text; see observability/prometheus.yml")
    table.add_row("PostgreSQL", stack.database_url, f"pid {stack.process('postgres').pid}")
    table.add_row("NATS", stack.nats_url, f"monitor {stack.nats_monitor_url}")
    table.add_row("logs", str(stack.log_dir), "one file per process")
    return table


def _short(line: str) -> tuple[str, str]:
    """A service's JSON log line as (level, message); other lines as they are."""
    try:
        record = json.loads(line)
        level = str(record.get("level", ""))
        message = str(record.get("message", line))
        if record.get("exception"):
            message += "\n" + str(record["exception"]).rstrip()
        return level, message
    except (ValueError, AttributeError):
        return "", line


def _open_at_end(stack: Stack, files: ExitStack) -> dict[str, TextIO]:
    """Each process's log, positioned at its end: only what happens from now on is shown."""
    handles: dict[str, TextIO] = {}
    for name, proc in stack.processes.items():
        handle = files.enter_context(proc.log_path.open(errors="replace"))
        handle.seek(0, os.SEEK_END)
        handles[name] = handle
    return handles


def follow_logs(stack: Stack, console: Console, poll_seconds: float = 0.2) -> None:
    """Prints each process's new log lines as `name | LEVEL message`, until interrupted."""
    width = max(len(name) for name in stack.processes)
    colours = {name: _COLOURS[i % len(_COLOURS)] for i, name in enumerate(stack.processes)}
    with ExitStack() as files:
        handles = _open_at_end(stack, files)
        partial = dict.fromkeys(handles, "")
        while True:
            for name, handle in handles.items():
                chunk = handle.read()
                if not chunk:
                    continue
                *lines, partial[name] = (partial[name] + chunk).split("\n")
                for line in filter(str.strip, lines):
                    level, message = _short(line)
                    text = escape(f"{level:<7} {message}" if level else message)
                    style = _LEVEL_STYLE.get(level)
                    body = f"[{style}]{text}[/]" if style else text
                    console.print(
                        f"[{colours[name]}]{name:<{width}}[/] | {body}", highlight=False, soft_wrap=True
                    )
            time.sleep(poll_seconds)
