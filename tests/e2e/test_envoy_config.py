"""The rendered Envoy config: `envoy --mode validate`, then real Envoy in front of fake backends to
check what the services rely on (transcoding, routing, retries' targets, headers as metadata)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
import pytest
import pytest_asyncio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from stack.envoy_config import EnvoySettings, render_envoy_config
from stack.probes import http_ok, wait_until
from stack.processes import ManagedProcess
from stack.settings import free_ports
from tests.e2e.readings import envoy_stat
from ticketing.inventory.v1 import inventory_service_pb2 as inv
from ticketing.inventory.v1 import inventory_service_pb2_grpc as inv_grpc
from ticketing.inventory.v1 import reservation_service_pb2 as res
from ticketing.inventory.v1 import reservation_service_pb2_grpc as res_grpc
from ticketing.payments.v1 import payment_admin_service_pb2 as admin
from ticketing.payments.v1 import payment_admin_service_pb2_grpc as admin_grpc
from ticketing.payments.v1 import payment_service_pb2 as pay
from ticketing.payments.v1 import payment_service_pb2_grpc as pay_grpc

ENVOY = Path(sys.executable).with_name("envoy")


def _validate(config: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "envoy.yaml"
    path.write_text(config)
    return subprocess.run(
        [str(ENVOY), "--mode", "validate", "-c", str(path), "--disable-hot-restart", "--log-level", "warn"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_rendered_config_passes_envoy_validate(tmp_path: Path) -> None:
    settings = EnvoySettings(
        clusters={
            "inventory": [("127.0.0.1", 7001), ("127.0.0.1", 7002), ("127.0.0.1", 7003)],
            "orders": [("127.0.0.1", 7011)],
            "payments": [("127.0.0.1", 7021)],
            "notify": [],
        },
        public_port=18080,
        mesh_port=18081,
        admin_api_port=18082,
        admin_port=19901,
    )
    done = _validate(render_envoy_config(settings), tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_clusters_without_backends_still_validate(tmp_path: Path) -> None:
    # A stack without orders, payments or notify (not written yet, or left out) still runs Envoy.
    done = _validate(render_envoy_config(EnvoySettings(clusters={})), tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_unknown_cluster_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown clusters"):
        render_envoy_config(EnvoySettings(clusters={"inventroy": [("127.0.0.1", 7001)]}))


# -- real Envoy, fake backends ---------------------------------------------------------------------


@dataclass
class Calls:
    """What the fake backends saw: per method, the metadata of each call, and who answered."""

    metadata: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    replicas: list[str] = field(default_factory=list)
    # Per method, the seconds each call had left when it arrived (None: no deadline).
    time_left: dict[str, list[float | None]] = field(default_factory=dict)

    def record(self, method: str, context: grpc.aio.ServicerContext) -> dict[str, str]:
        seen = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        self.metadata.setdefault(method, []).append(seen)
        self.time_left.setdefault(method, []).append(context.time_remaining())
        return seen


class FakeInventory(inv_grpc.InventoryServiceServicer):
    def __init__(self, replica: str, calls: Calls) -> None:
        self.replica, self.calls = replica, calls

    async def WhoAmI(
        self, request: inv.WhoAmIRequest, context: grpc.aio.ServicerContext
    ) -> inv.WhoAmIResponse:
        seen = self.calls.record("WhoAmI", context)
        self.calls.replicas.append(self.replica)
        if "idempotency-key" in seen:
            # As a service replaying a stored response does: the header must reach REST clients.
            await context.send_initial_metadata((("idempotent-replayed", "true"),))
        return inv.WhoAmIResponse(service="inventory", replica=self.replica, host="fake", pid=os.getpid())

    async def GetEvent(self, request: inv.GetEventRequest, context: grpc.aio.ServicerContext) -> inv.Event:
        self.calls.record("GetEvent", context)
        context.set_trailing_metadata((("idempotent-replayed", "true"),))
        return inv.Event(id=request.event_id, display_name="Fake")

    async def GetAvailability(
        self, request: inv.GetAvailabilityRequest, context: grpc.aio.ServicerContext
    ) -> inv.Availability:
        # inventory-1 is "leaving": Envoy must retry the call on the other replica.
        self.calls.record(f"GetAvailability@{self.replica}", context)
        if self.replica == "inventory-1":
            await context.abort(grpc.StatusCode.UNAVAILABLE, "shutting down")
        return inv.Availability(event_id=request.event_id)

    async def WatchAvailability(
        self, request: inv.WatchAvailabilityRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[inv.Availability]:
        for available in (5, 4, 3):
            yield inv.Availability(
                event_id=request.event_id,
                ticket_types=[inv.TicketTypeAvailability(ticket_type="GA", capacity=5, available=available)],
            )


class FakeReservations(res_grpc.ReservationServiceServicer):
    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    async def GetReservation(
        self, request: res.GetReservationRequest, context: grpc.aio.ServicerContext
    ) -> res.Reservation:
        self.calls.record("GetReservation", context)
        return res.Reservation(id=request.reservation_id)


class FakePayments(pay_grpc.PaymentServiceServicer):
    """A gateway that is down (UNAVAILABLE) while `down` is set, and otherwise declines every
    refund (FAILED_PRECONDITION, a business answer) and finds every charge."""

    def __init__(self, calls: Calls) -> None:
        self.calls = calls
        self.down = True

    async def GetCharge(self, request: pay.GetChargeRequest, context: grpc.aio.ServicerContext) -> pay.Charge:
        self.calls.record("GetCharge", context)
        if self.down:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "gateway down")
        return pay.Charge(id=request.charge_id)

    async def RefundCharge(
        self, request: pay.RefundChargeRequest, context: grpc.aio.ServicerContext
    ) -> pay.Charge:
        self.calls.record("RefundCharge", context)
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "not refundable")


class FakePaymentAdmin(admin_grpc.PaymentAdminServiceServicer):
    async def GetMode(self, request: admin.GetModeRequest, context: grpc.aio.ServicerContext) -> admin.Mode:
        return admin.Mode(failure_rate=0.25, latency_ms=7)


@dataclass
class Mesh:
    public_url: str
    public_grpc: str
    mesh_grpc: str
    admin_api_url: str
    admin_url: str
    calls: Calls
    gateway: FakePayments


async def _fake_server(*servicers: object) -> tuple[grpc.aio.Server, int]:
    # so_reuseport off: a second server on a taken port must fail, not share it.
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    for servicer in servicers:
        if isinstance(servicer, inv_grpc.InventoryServiceServicer):
            inv_grpc.add_InventoryServiceServicer_to_server(servicer, server)
        elif isinstance(servicer, res_grpc.ReservationServiceServicer):
            res_grpc.add_ReservationServiceServicer_to_server(servicer, server)
        elif isinstance(servicer, pay_grpc.PaymentServiceServicer):
            pay_grpc.add_PaymentServiceServicer_to_server(servicer, server)
        elif isinstance(servicer, admin_grpc.PaymentAdminServiceServicer):
            admin_grpc.add_PaymentAdminServiceServicer_to_server(servicer, server)
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def mesh(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Mesh]:
    """Real Envoy in front of two fake inventory replicas and a fake payments admin."""
    calls = Calls()
    servers = [
        await _fake_server(FakeInventory(f"inventory-{n}", calls), FakeReservations(calls)) for n in (1, 2)
    ]
    gateway = FakePayments(calls)
    payments = await _fake_server(gateway, FakePaymentAdmin())
    public, mesh_port, admin_api, admin_port = free_ports(4)
    config = render_envoy_config(
        EnvoySettings(
            clusters={
                "inventory": [("127.0.0.1", port) for _, port in servers],
                "payments": [("127.0.0.1", payments[1])],
            },
            public_port=public,
            mesh_port=mesh_port,
            admin_api_port=admin_api,
            admin_port=admin_port,
        )
    )
    tmp = tmp_path_factory.mktemp("envoy")
    (tmp / "envoy.yaml").write_text(config)
    # Started from this (the event loop's) thread, which lives for the whole session.
    envoy = ManagedProcess(
        name="envoy",
        argv=[str(ENVOY), "-c", str(tmp / "envoy.yaml"), "--disable-hot-restart", "--log-level", "warn"],
        log_path=tmp / "envoy.log",
    )
    envoy.start()
    admin_url = f"http://127.0.0.1:{admin_port}"
    try:
        async with httpx.AsyncClient(trust_env=False) as client:
            await wait_until(
                lambda: http_ok(client, f"{admin_url}/ready"), what="Envoy", seconds=30, process=envoy
            )

            async def all_healthy() -> bool:
                text = (await client.get(f"{admin_url}/clusters")).text
                # Two inventory replicas, and payments behind the breaker and behind the admin API.
                return text.count("health_flags::healthy") == 4

            await wait_until(all_healthy, what="healthy backends", seconds=30, process=envoy)
        yield Mesh(
            public_url=f"http://127.0.0.1:{public}",
            public_grpc=f"127.0.0.1:{public}",
            mesh_grpc=f"127.0.0.1:{mesh_port}",
            admin_api_url=f"http://127.0.0.1:{admin_api}",
            admin_url=admin_url,
            calls=calls,
            gateway=gateway,
        )
    finally:
        await envoy.stop(grace=5)
        for server, _ in [*servers, payments]:
            await server.stop(None)


@pytest_asyncio.fixture(loop_scope="session")
async def rest(mesh: Mesh) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=mesh.public_url, trust_env=False, timeout=10) as client:
        yield client


async def test_rest_is_transcoded_and_round_robin(mesh: Mesh, rest: httpx.AsyncClient) -> None:
    replies = [await rest.get("/v1/whoami") for _ in range(4)]
    assert all(r.status_code == 200 for r in replies), replies[0].text
    assert {r.json()["replica"] for r in replies} == {"inventory-1", "inventory-2"}
    assert replies[0].json()["service"] == "inventory"


async def test_request_id_is_generated_and_returned(mesh: Mesh, rest: httpx.AsyncClient) -> None:
    reply = await rest.get("/v1/whoami")
    request_id = reply.headers.get("x-request-id")
    assert request_id
    assert mesh.calls.metadata["WhoAmI"][-1]["x-request-id"] == request_id


async def test_every_call_reaches_a_service_with_a_deadline(mesh: Mesh, rest: httpx.AsyncClient) -> None:
    # REST has no deadline of its own: the route's timeout (15 s) becomes the call's deadline.
    assert (await rest.get("/v1/whoami")).status_code == 200
    left = mesh.calls.time_left["WhoAmI"][-1]
    assert left is not None and 13 < left <= 15
    # A gRPC client's shorter deadline travels as it is.
    async with grpc.aio.insecure_channel(mesh.public_grpc) as channel:
        await inv_grpc.InventoryServiceStub(channel).WhoAmI(inv.WhoAmIRequest(), timeout=2)
    left = mesh.calls.time_left["WhoAmI"][-1]
    assert left is not None and 1 < left <= 2


async def test_idempotency_key_reaches_the_service_and_replayed_reaches_the_client(
    mesh: Mesh, rest: httpx.AsyncClient
) -> None:
    reply = await rest.get("/v1/whoami", headers={"Idempotency-Key": "key-123"})
    assert mesh.calls.metadata["WhoAmI"][-1]["idempotency-key"] == "key-123"
    # Sent as initial metadata it becomes a response header.
    assert reply.headers.get("idempotent-replayed") == "true"


async def test_trailing_metadata_does_not_become_a_rest_header(rest: httpx.AsyncClient) -> None:
    # The transcoder turns only initial metadata into headers of a 200: a service must send
    # idempotent-replayed with send_initial_metadata, not set_trailing_metadata.
    reply = await rest.get("/v1/events/EVNT-1")
    assert reply.status_code == 200
    assert reply.json()["id"] == "EVNT-1"
    assert "idempotent-replayed" not in reply.headers


async def test_watch_streams_ndjson(rest: httpx.AsyncClient) -> None:
    async with rest.stream("GET", "/v1/events/EVNT-1/availability:watch") as reply:
        assert reply.status_code == 200
        lines = [json.loads(line) async for line in reply.aiter_lines() if line.strip()]
    assert [line["ticketTypes"][0]["available"] for line in lines] == [5, 4, 3]
    # always_print_primitive_fields: zero values are present.
    assert lines[0]["ticketTypes"][0]["sold"] == 0


async def test_unavailable_is_retried_on_the_other_replica(mesh: Mesh) -> None:
    async with grpc.aio.insecure_channel(mesh.public_grpc) as channel:
        stub = inv_grpc.InventoryServiceStub(channel)
        for _ in range(6):
            await stub.GetAvailability(inv.GetAvailabilityRequest(event_id="EVNT-1"), timeout=5)
    assert len(mesh.calls.metadata["GetAvailability@inventory-2"]) == 6


async def test_payments_breaker_retries_opens_fails_fast_and_closes(mesh: Mesh) -> None:
    calls = mesh.calls.metadata

    def seen(method: str) -> int:
        return len(calls.get(method, []))

    async with grpc.aio.insecure_channel(mesh.mesh_grpc) as channel:
        stub = pay_grpc.PaymentServiceStub(channel)

        async def get_charge() -> grpc.StatusCode:
            try:
                await stub.GetCharge(pay.GetChargeRequest(charge_id="CHG-1"), timeout=5)
            except grpc.aio.AioRpcError as err:
                return err.code()
            return grpc.StatusCode.OK

        # Declines are answers, not failures: ten in a row leave the breaker closed.
        for _ in range(10):
            with pytest.raises(grpc.aio.AioRpcError) as declined:
                await stub.RefundCharge(pay.RefundChargeRequest(charge_id="CHG-1"), timeout=5)
            assert declined.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert seen("RefundCharge") == 10
        assert await envoy_stat(mesh.admin_url, "cluster.payments.outlier_detection.ejections_active") == 0

        # UNAVAILABLE is retried twice, with backoff: three attempts reach the gateway.
        retries = await envoy_stat(mesh.admin_url, "cluster.payments.upstream_rq_retry")
        before = seen("GetCharge")
        assert await get_charge() == grpc.StatusCode.UNAVAILABLE
        assert seen("GetCharge") == before + 3
        assert await envoy_stat(mesh.admin_url, "cluster.payments.upstream_rq_retry") == retries + 2

        # The fifth failure in a row opens the breaker; from then on nothing reaches the gateway
        # and a call fails at once.
        assert await get_charge() == grpc.StatusCode.UNAVAILABLE
        assert seen("GetCharge") == before + 5
        assert await envoy_stat(mesh.admin_url, "cluster.payments.outlier_detection.ejections_active") == 1
        started = time.monotonic()
        assert await get_charge() == grpc.StatusCode.UNAVAILABLE
        assert time.monotonic() - started < 0.05
        assert seen("GetCharge") == before + 5

        # The admin API goes around the breaker: an operator can still reach the gateway.
        async with grpc.aio.insecure_channel(mesh.admin_api_url.removeprefix("http://")) as admin_channel:
            admin_stub = admin_grpc.PaymentAdminServiceStub(admin_channel)
            assert (await admin_stub.GetMode(admin.GetModeRequest(), timeout=5)).latency_ms == 7

        # Half-open after the ejection time: the gateway has recovered, and the next call gets through.
        mesh.gateway.down = False
        deadline = time.monotonic() + 8
        while await get_charge() != grpc.StatusCode.OK:
            assert time.monotonic() < deadline, "the breaker never closed"
            await asyncio.sleep(0.2)
        assert await envoy_stat(mesh.admin_url, "cluster.payments.outlier_detection.ejections_active") == 0


async def test_internal_service_is_unimplemented_on_the_public_listener(
    mesh: Mesh, rest: httpx.AsyncClient
) -> None:
    before = len(mesh.calls.metadata.get("GetReservation", []))
    async with grpc.aio.insecure_channel(mesh.public_grpc) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await res_grpc.ReservationServiceStub(channel).GetReservation(
                res.GetReservationRequest(reservation_id="r-1"), timeout=5
            )
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert (
        await rest.post("/ticketing.inventory.v1.ReservationService/GetReservation", json={})
    ).status_code == 404
    assert (await rest.get("/v1/nowhere")).status_code == 404
    assert (await rest.get("/admin/v1/payments/mode")).status_code == 404
    assert len(mesh.calls.metadata.get("GetReservation", [])) == before


async def test_mesh_routes_internal_services_and_keeps_the_callers_request_id(mesh: Mesh) -> None:
    async with grpc.aio.insecure_channel(mesh.mesh_grpc) as channel:
        reply = await res_grpc.ReservationServiceStub(channel).GetReservation(
            res.GetReservationRequest(reservation_id="r-2"),
            metadata=(("x-request-id", "caller-id"),),
            timeout=5,
        )
    assert reply.id == "r-2"
    assert mesh.calls.metadata["GetReservation"][-1]["x-request-id"] == "caller-id"


async def test_grpc_reaches_public_services_with_health_left_out(mesh: Mesh) -> None:
    async with grpc.aio.insecure_channel(mesh.public_grpc) as channel:
        reply = await inv_grpc.InventoryServiceStub(channel).WhoAmI(inv.WhoAmIRequest(), timeout=5)
        assert reply.replica.startswith("inventory-")
        # Health is each replica's business with Envoy, not a public API.
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_admin_api_transcodes_payment_admin_only(mesh: Mesh) -> None:
    async with httpx.AsyncClient(base_url=mesh.admin_api_url, trust_env=False, timeout=10) as client:
        reply = await client.get("/admin/v1/payments/mode")
        assert reply.status_code == 200, reply.text
        assert reply.json() == {"failureRate": 0.25, "declineRate": 0, "latencyMs": 7, "settleDelayMs": 0}
        assert (await client.get("/v1/whoami")).status_code == 404


async def test_per_method_and_per_endpoint_stats(mesh: Mesh, rest: httpx.AsyncClient) -> None:
    await rest.get("/v1/whoami")
    async with httpx.AsyncClient(trust_env=False) as client:
        stats = (await client.get(f"{mesh.admin_url}/stats/prometheus")).text
    per_method = [
        line
        for line in stats.splitlines()
        if line.startswith("envoy_cluster_grpc_total{")
        and 'grpc_service="ticketing.inventory.v1.InventoryService"' in line
        and 'grpc_method="WhoAmI"' in line
    ]
    assert per_method and float(per_method[0].rsplit(" ", 1)[1]) >= 1
    endpoints = [
        line
        for line in stats.splitlines()
        if line.startswith('envoy_cluster_endpoint_rq_total{envoy_cluster_name="inventory"')
    ]
    assert len(endpoints) == 2
