"""JSON logs through loguru: one line per event, with service, replica and the call's context."""

from __future__ import annotations

import json
import logging
import sys
from typing import TYPE_CHECKING, Any

from loguru import logger

from ticketmesh import context

if TYPE_CHECKING:
    from loguru import Message

# Never written to logs, whatever a caller binds.
_SECRET_KEYS = frozenset({"card_number", "cvc", "password"})


def _json_sink(message: Message) -> None:
    record = message.record
    line: dict[str, Any] = {
        "time": record["time"].isoformat(),
        "level": record["level"].name,
        "message": record["message"],
    }
    line.update((k, v) for k, v in record["extra"].items() if k not in _SECRET_KEYS)
    # The call's or message's ids, wherever the line is logged from (a bound value wins): one grep
    # of a request id finds its whole story, across services.
    for key, var in (("request_id", context.request_id), ("order_id", context.order_id)):
        if not line.get(key):
            value = var.get()
            if value:
                line[key] = value
    if record["exception"] is not None:
        line["exception"] = "".join(_format_exception(record["exception"]))
    sys.stdout.write(json.dumps(line, default=str) + "\n")
    sys.stdout.flush()


def _format_exception(exc: Any) -> list[str]:
    import traceback

    return traceback.format_exception(exc.type, exc.value, exc.traceback)


class _InterceptHandler(logging.Handler):
    """Routes stdlib logging (grpc, alembic, nats) into loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(exception=record.exc_info, depth=6).log(level, record.getMessage())


def configure_logging(service: str, replica: str, level: str = "INFO") -> None:
    """Sends every log line to stdout as JSON, tagged with the process's service and replica."""
    logger.remove()
    logger.configure(extra={"service": service, "replica": replica})
    logger.add(_json_sink, level=level.upper(), enqueue=False)
    logging.basicConfig(handlers=[_InterceptHandler()], level=logging.WARNING, force=True)
    logging.getLogger("alembic").setLevel(logging.INFO)
