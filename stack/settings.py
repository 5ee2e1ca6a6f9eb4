"""What a local stack looks like: ports, replicas, state dir; defaults, env overrides, free ports."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# The stack's page token key (hex), in its state dir: see page_token_key.
PAGE_TOKEN_KEY_FILE = "page-token.key"
SERVICES = ("inventory", "orders", "payments", "notify")
# Fixed default ports, all below the ephemeral range (32768+) and clear of a system Postgres/NATS.
_BASE_PORTS = {
    "inventory": (7000, 9100),
    "orders": (7010, 9110),
    "payments": (7020, 9120),
    "notify": (7030, 9130),
}


@dataclass(frozen=True)
class Replica:
    """One service process: inventory-2 is replica 2 of inventory."""

    service: str
    name: str
    grpc_port: int
    metrics_port: int


@dataclass(frozen=True)
class StackSettings:
    """Everything the launcher needs; every port is a setting so tests can run on free ones."""

    state_dir: Path = REPO_ROOT / ".stack"
    repo_root: Path = REPO_ROOT
    # Where Envoy's listeners and admin bind; backends, Postgres and NATS always use loopback.
    bind_address: str = "127.0.0.1"
    postgres_port: int = 15432
    nats_port: int = 14222
    nats_monitor_port: int = 18222
    public_port: int = 8080
    mesh_port: int = 8081
    admin_api_port: int = 8082
    envoy_admin_port: int = 9901
    inventory_replicas: int = 2
    # Envoy worker threads. Round robin is per worker: with several, separate connections (one curl
    # after another) need not alternate between replicas. One is plenty on this machine.
    envoy_concurrency: int = 1
    # Services wanted; only those with a services/<name>/__main__.py are started.
    services: tuple[str, ...] = SERVICES
    # Replica name -> (grpc port, metrics port), overriding the 7000+N / 9100+N scheme.
    replica_ports: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    # Extra environment per service name or replica name (the replica's wins), e.g. HOLD_TTL_SECONDS.
    service_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # Replica name -> the port Envoy reaches it on instead of its gRPC port: a proxy in between
    # (the fault tests' lossy link). The launcher's own probes still go straight to the replica.
    envoy_upstream_ports: Mapping[str, int] = field(default_factory=dict)
    log_level: str = "INFO"
    # Longer than a service's drain + grace (3 s + 5 s by default), so a clean stop is never cut short.
    stop_grace_seconds: float = 15.0
    start_timeout_seconds: float = 90.0

    @classmethod
    def from_env(cls, **overrides: object) -> StackSettings:
        """Defaults, then STACK_* / INVENTORY_REPLICAS / LOG_LEVEL from the environment, then overrides."""
        env: dict[str, object] = {}
        ints = {
            "STACK_POSTGRES_PORT": "postgres_port",
            "STACK_NATS_PORT": "nats_port",
            "STACK_NATS_MONITOR_PORT": "nats_monitor_port",
            "STACK_PUBLIC_PORT": "public_port",
            "STACK_MESH_PORT": "mesh_port",
            "STACK_ADMIN_API_PORT": "admin_api_port",
            "STACK_ENVOY_ADMIN_PORT": "envoy_admin_port",
            "STACK_ENVOY_CONCURRENCY": "envoy_concurrency",
            "INVENTORY_REPLICAS": "inventory_replicas",
        }
        for var, name in ints.items():
            if os.environ.get(var):
                try:
                    env[name] = int(os.environ[var])
                except ValueError:
                    raise SystemExit(f"{var}={os.environ[var]!r} is not an integer") from None
        if os.environ.get("STACK_STATE_DIR"):
            env["state_dir"] = Path(os.environ["STACK_STATE_DIR"]).resolve()
        if os.environ.get("STACK_BIND_ADDRESS"):
            env["bind_address"] = os.environ["STACK_BIND_ADDRESS"]
        if os.environ.get("LOG_LEVEL"):
            env["log_level"] = os.environ["LOG_LEVEL"]
        env.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**env)  # type: ignore[arg-type]
        settings.check()
        return settings

    def check(self) -> None:
        if self.inventory_replicas < 1:
            raise SystemExit(f"inventory needs at least one replica, not {self.inventory_replicas}")
        unknown = set(self.services) - set(SERVICES)
        if unknown:
            raise SystemExit(f"unknown services {sorted(unknown)}; known: {', '.join(SERVICES)}")

    def replicas(self) -> list[Replica]:
        """Every process of the wanted services that exist in the repo, in start order."""
        found = []
        for service in self.services:
            if not (self.repo_root / "services" / service / "__main__.py").exists():
                continue
            count = self.inventory_replicas if service == "inventory" else 1
            grpc_base, metrics_base = _BASE_PORTS[service]
            for n in range(1, count + 1):
                name = f"{service}-{n}"
                grpc_port, metrics_port = self.replica_ports.get(name, (grpc_base + n, metrics_base + n))
                found.append(Replica(service, name, grpc_port, metrics_port))
        return found

    def fixed_ports(self) -> dict[str, int]:
        """Every port the stack binds, by owner, to check for clashes before starting."""
        ports = {
            "postgres": self.postgres_port,
            "nats": self.nats_port,
            "nats monitor": self.nats_monitor_port,
            "envoy public": self.public_port,
            "envoy mesh": self.mesh_port,
            "envoy admin-api": self.admin_api_port,
            "envoy admin": self.envoy_admin_port,
        }
        for replica in self.replicas():
            ports[f"{replica.name} grpc"] = replica.grpc_port
            ports[f"{replica.name} metrics"] = replica.metrics_port
        return ports

    def with_free_ports(self) -> StackSettings:
        """The same stack on ports the kernel says are free now (for tests running side by side)."""
        names = [
            f"{s}-{n}"
            for s in SERVICES
            for n in range(1, (self.inventory_replicas if s == "inventory" else 1) + 1)
        ]
        ports = iter(free_ports(7 + 2 * len(names)))
        return replace(
            self,
            postgres_port=next(ports),
            nats_port=next(ports),
            nats_monitor_port=next(ports),
            public_port=next(ports),
            mesh_port=next(ports),
            admin_api_port=next(ports),
            envoy_admin_port=next(ports),
            replica_ports={name: (next(ports), next(ports)) for name in names},
        )


def free_ports(count: int) -> list[int]:
    """Ports the kernel hands out for port 0; all sockets stay open until the end so none repeats."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something already listens on (or holds) host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR: a port left in TIME_WAIT by a just-stopped process is free to listen on.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def page_token_key(state_dir: Path) -> str:
    """The stack's PAGE_TOKEN_KEY (hex): made on the first start into the state dir, readable by its
    owner only, and read again on later starts, so that every replica and every restart of a
    service accepts the page tokens the others gave out."""
    path = state_dir / PAGE_TOKEN_KEY_FILE
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f"{PAGE_TOKEN_KEY_FILE}.new")
        draft.unlink(missing_ok=True)
        with os.fdopen(os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
            out.write(secrets.token_hex(32) + "\n")
        # A link cannot replace a file: whoever was first keeps their key, and a crash mid-write
        # leaves only the draft, never a short key.
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()
