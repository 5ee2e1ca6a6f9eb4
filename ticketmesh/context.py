"""The current call's context (request id, deadline), carried across awaits by contextvars so that
logs and outgoing mesh calls pick it up without threading it through every function."""

from __future__ import annotations

import time
from contextvars import ContextVar

# Envoy assigns x-request-id at the edge; every hop passes it on.
request_id: ContextVar[str] = ContextVar("request_id", default="")
# The order the current call or message is about, once known ("" before): logs carry it.
order_id: ContextVar[str] = ContextVar("order_id", default="")
# (gRPC service, method) of the call being served, ("", "") outside one.
method: ContextVar[tuple[str, str]] = ContextVar("method", default=("", ""))
# Absolute deadline (time.monotonic()) of the call being served, or None without one.
deadline: ContextVar[float | None] = ContextVar("deadline", default=None)


def time_left(default: float) -> float:
    """Seconds left before the current call's deadline, capped by a default for calls without one."""
    end = deadline.get()
    if end is None:
        return default
    return min(default, end - time.monotonic())
