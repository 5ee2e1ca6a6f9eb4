"""Settings read from the environment; a missing or malformed setting stops the process at start."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ticketmesh.paging import MIN_KEY_BYTES


class ConfigError(SystemExit):
    """A setting is missing or malformed. Exits the process with a message naming it."""

    def __init__(self, message: str) -> None:
        super().__init__(f"configuration error: {message}")


def env_str(name: str, default: str | None = None) -> str:
    """Returns a setting; without a default, a missing one is an error."""
    value = os.environ.get(name, default)
    if value is None or value == "":
        raise ConfigError(f"{name} is not set")
    return value


def env_int(name: str, default: int | None = None, *, minimum: int | None = None) -> int:
    """Returns an integer setting, checked against a lower bound."""
    raw = env_str(name, None if default is None else str(default))
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name}={value} is below {minimum}")
    return value


def env_float(name: str, default: float | None = None, *, minimum: float = 0.0) -> float:
    """Returns a non-negative number setting."""
    raw = env_str(name, None if default is None else str(default))
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} is below {minimum}")
    return value


def env_secret_hex(name: str, *, min_bytes: int) -> bytes:
    """Returns a secret given as hex digits, at least `min_bytes` long; messages never show it."""
    try:
        secret = bytes.fromhex(env_str(name))
    except ValueError:
        raise ConfigError(f"{name} is not hex digits") from None
    if len(secret) < min_bytes:
        raise ConfigError(
            f"{name} is {len(secret)} bytes; it needs at least {min_bytes} ({2 * min_bytes} hex digits,"
            f" e.g. from `python -c 'import secrets; print(secrets.token_hex({min_bytes}))'`)"
        )
    return secret


@dataclass(frozen=True)
class ServiceSettings:
    """What every service process needs, whatever its job.

    PAGE_TOKEN_KEY, the secret that signs page tokens, is given as hex digits: at least 64 of them
    (32 bytes). It is required; a missing or short one stops the process at start.
    """

    service: str
    replica: str
    host: str
    grpc_port: int
    metrics_port: int
    database_url: str
    nats_url: str
    log_level: str
    # How long a leaving process answers NOT_SERVING before it stops taking calls: longer than
    # Envoy needs to see it (health check interval x unhealthy threshold), so no call is lost.
    drain_seconds: float
    # How long in-flight calls may finish once the server stops.
    grace_seconds: float
    db_pool_size: int
    # Every replica of a service must share it, or a next page asked of another replica is refused.
    # Kept out of repr, so printing the settings cannot leak it.
    page_token_key: bytes = field(repr=False)

    @classmethod
    def from_env(cls, service: str) -> ServiceSettings:
        return cls(
            service=service,
            replica=env_str("REPLICA_NAME", f"{service}-1"),
            host=env_str("GRPC_HOST", "127.0.0.1"),
            grpc_port=env_int("GRPC_PORT", minimum=0),
            metrics_port=env_int("METRICS_PORT", minimum=0),
            database_url=env_str("DATABASE_URL"),
            nats_url=env_str("NATS_URL"),
            log_level=env_str("LOG_LEVEL", "INFO"),
            drain_seconds=env_float("SHUTDOWN_DRAIN_SECONDS", 3.0),
            grace_seconds=env_float("SHUTDOWN_GRACE_SECONDS", 5.0),
            db_pool_size=env_int("DB_POOL_SIZE", 8, minimum=1),
            page_token_key=env_secret_hex("PAGE_TOKEN_KEY", min_bytes=MIN_KEY_BYTES),
        )
