"""InventoryService and ReservationService through real Envoy in front of two real replicas."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

import grpc
import httpx
import pytest

from ticketing.inventory.v1 import inventory_service_pb2 as inv
from ticketing.inventory.v1 import inventory_service_pb2_grpc as inv_grpc
from ticketing.inventory.v1 import reservation_service_pb2 as res
from ticketing.inventory.v1 import reservation_service_pb2_grpc as res_grpc
from ticketing.type.v1 import reservation_strategy_pb2 as strategy_pb2
from ticketmesh.errors import error_info
from ticketmesh.server import PUBLIC_SERVICES


def _event_json(capacity: int, event_id: str = "") -> dict:
    return {
        "id": event_id,
        "displayName": "Rock in the Park",
        "ticketTypes": [
            {"name": "GA", "price": {"currencyCode": "EUR", "units": "50"}, "capacity": capacity}
        ],
    }


async def _create_event(rest: httpx.AsyncClient, capacity: int) -> str:
    reply = await rest.post("/v1/events", json=_event_json(capacity))
    assert reply.status_code == 200, reply.text
    return str(reply.json()["id"])


def _reason(err: grpc.aio.AioRpcError) -> str:
    info = error_info(err)
    return info.reason if info is not None else ""


def _handled(stack, replica: str, method: str) -> float:
    """grpc_server_handled_total for one method on one replica, summed over codes."""
    text = httpx.get(stack.metrics_url(replica)).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("grpc_server_handled_total{") and f'grpc_method="{method}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_rest_and_grpc_reach_inventory(stack, rest: httpx.AsyncClient) -> None:
    event_id = await _create_event(rest, 10)
    async with grpc.aio.insecure_channel(stack.public_grpc) as channel:
        event = await inv_grpc.InventoryServiceStub(channel).GetEvent(inv.GetEventRequest(event_id=event_id))
    assert event.ticket_types[0].capacity == 10
    listed = (await rest.get("/v1/events", params={"pageSize": 1000})).json()
    assert event_id in [e["id"] for e in listed["events"]]
    availability = (await rest.get(f"/v1/events/{event_id}/availability")).json()
    assert availability["ticketTypes"][0] == {
        "ticketType": "GA",
        "capacity": 10,
        "available": 10,
        "held": 0,
        "sold": 0,
    }


async def test_paging_walks_every_event_once(rest: httpx.AsyncClient) -> None:
    made = {await _create_event(rest, 1) for _ in range(5)}
    seen: list[str] = []
    token = ""
    while True:
        page = (await rest.get("/v1/events", params={"pageSize": 2, "pageToken": token})).json()
        assert len(page["events"]) <= 2
        seen += [e["id"] for e in page["events"]]
        token = page["nextPageToken"]
        if not token:
            break
    assert made <= set(seen)
    assert len(seen) == len(set(seen))


def test_grpcurl_lists_public_services_only(stack) -> None:
    grpcurl = Path(sys.executable).with_name("grpcurl")
    out = subprocess.run(
        [str(grpcurl), "-plaintext", stack.public_grpc, "list"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.split()
    assert set(out) == {*PUBLIC_SERVICES, "grpc.reflection.v1alpha.ServerReflection"}


async def test_internal_service_is_not_reachable_on_the_public_listener(
    stack, rest: httpx.AsyncClient
) -> None:
    before = sum(_handled(stack, r, "Reserve") for r in stack.replicas("inventory"))
    async with grpc.aio.insecure_channel(stack.public_grpc) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await res_grpc.ReservationServiceStub(channel).Reserve(
                res.ReserveRequest(reservation_id="x", event_id="E-1", ticket_type="GA", quantity=1),
                timeout=5,
            )
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    reply = await rest.post("/ticketing.inventory.v1.ReservationService/Reserve", json={})
    assert reply.status_code == 404
    assert sum(_handled(stack, r, "Reserve") for r in stack.replicas("inventory")) == before


@pytest.mark.parametrize("strategy", ["COMPARE_AND_SET", "OPTIMISTIC", "PESSIMISTIC"])
async def test_200_buyers_for_50_seats_get_exactly_50_holds(
    stack, rest: httpx.AsyncClient, strategy: str
) -> None:
    event_id = await _create_event(rest, 50)
    before = {r: _handled(stack, r, "Reserve") for r in stack.replicas("inventory")}
    async with grpc.aio.insecure_channel(stack.mesh_grpc) as channel:
        stub = res_grpc.ReservationServiceStub(channel)

        async def buy(i: int) -> str:
            request = res.ReserveRequest(
                reservation_id=f"{event_id}-{i}",
                event_id=event_id,
                ticket_type="GA",
                quantity=1,
                strategy=strategy_pb2.ReservationStrategy.Value(strategy),
            )
            try:
                await stub.Reserve(request, timeout=30)
                return "held"
            except grpc.aio.AioRpcError as err:
                assert err.code() == grpc.StatusCode.ABORTED, err
                return _reason(err)

        outcomes = await asyncio.gather(*(buy(i) for i in range(200)))
    assert outcomes.count("held") == 50
    assert outcomes.count("SOLD_OUT") == 150
    for replica, count in before.items():
        assert _handled(stack, replica, "Reserve") > count, f"{replica} served no Reserve"
    [stock] = (await rest.get(f"/v1/events/{event_id}/availability")).json()["ticketTypes"]
    assert (stock["available"], stock["held"], stock["sold"]) == (0, 50, 0)
    assert stock["available"] + stock["held"] + stock["sold"] == stock["capacity"]

    reply = await rest.post(
        "/v1/events", json=_event_json(1, event_id="EVNT-SOLD-" + uuid.uuid4().hex[:6].upper())
    )
    assert reply.status_code == 200


async def test_reserve_release_confirm_repeat_change_nothing(stack, rest: httpx.AsyncClient) -> None:
    event_id = await _create_event(rest, 10)

    async def stock() -> tuple[int, int, int]:
        [s] = (await rest.get(f"/v1/events/{event_id}/availability")).json()["ticketTypes"]
        return s["available"], s["held"], s["sold"]

    async with grpc.aio.insecure_channel(stack.mesh_grpc) as channel:
        stub = res_grpc.ReservationServiceStub(channel)
        reserve = res.ReserveRequest(
            reservation_id=f"{event_id}-a", event_id=event_id, ticket_type="GA", quantity=3
        )
        first = await stub.Reserve(reserve)
        again = await stub.Reserve(reserve)
        assert again.id == first.id and again.state == res.Reservation.HELD
        assert await stock() == (7, 3, 0)

        await stub.Confirm(res.ConfirmRequest(reservation_id=first.id))
        confirmed = await stub.Confirm(res.ConfirmRequest(reservation_id=first.id))
        assert confirmed.state == res.Reservation.SOLD
        assert await stock() == (7, 0, 3)

        other = res.ReserveRequest(
            reservation_id=f"{event_id}-b", event_id=event_id, ticket_type="GA", quantity=2
        )
        await stub.Reserve(other)
        await stub.Release(res.ReleaseRequest(reservation_id=other.reservation_id))
        released = await stub.Release(res.ReleaseRequest(reservation_id=other.reservation_id))
        assert released.state == res.Reservation.RELEASED
        assert await stock() == (7, 0, 3)
        late = await stub.Reserve(other)  # a late retry of a released hold takes nothing
        assert late.state == res.Reservation.RELEASED
        assert await stock() == (7, 0, 3)

        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Confirm(res.ConfirmRequest(reservation_id=other.reservation_id))
        assert _reason(err.value) == "RESERVATION_RELEASED"


async def test_create_event_with_a_request_id_is_replayed(rest: httpx.AsyncClient) -> None:
    key = uuid.uuid4().hex
    body = _event_json(5)
    first = await rest.post("/v1/events", json=body, headers={"Idempotency-Key": key})
    second = await rest.post("/v1/events", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    assert second.headers.get("idempotent-replayed") == "true"
    body["ticketTypes"][0]["capacity"] = 6
    reused = await rest.post("/v1/events", json=body, headers={"Idempotency-Key": key})
    assert reused.status_code == 400
    assert reused.json()["details"][0]["reason"] == "IDEMPOTENCY_KEY_REUSED"


async def test_duplicate_event_id_is_409(rest: httpx.AsyncClient) -> None:
    event_id = "EVNT-DUP-" + uuid.uuid4().hex[:8].upper()
    assert (await rest.post("/v1/events", json=_event_json(1, event_id))).status_code == 200
    again = await rest.post("/v1/events", json=_event_json(1, event_id))
    assert again.status_code == 409
    assert again.json()["details"][0]["reason"] == "EVENT_EXISTS"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**_event_json(5), "displayName": ""}, "event.display_name"),
        (_event_json(-5), "event.ticket_types[0].capacity"),
        ({**_event_json(5), "ticketTypes": []}, "event.ticket_types"),
        ({**_event_json(5), "id": "lower case!"}, "event.id"),
    ],
)
async def test_bad_event_is_400_naming_the_field(rest: httpx.AsyncClient, body: dict, field: str) -> None:
    reply = await rest.post("/v1/events", json=body)
    assert reply.status_code == 400, reply.text
    violations = next(d for d in reply.json()["details"] if d["@type"].endswith("BadRequest"))[
        "fieldViolations"
    ]
    assert field in [v["field"] for v in violations]


async def test_malformed_json_is_400(rest: httpx.AsyncClient) -> None:
    reply = await rest.post(
        "/v1/events", content=b'{"displayName": ', headers={"content-type": "application/json"}
    )
    assert reply.status_code == 400
    wrong_type = await rest.post("/v1/events", json={"displayName": "x", "ticketTypes": "GA"})
    assert wrong_type.status_code == 400


async def test_unknown_event_is_404_with_reason(rest: httpx.AsyncClient) -> None:
    for path in ("/v1/events/EVNT-NOPE", "/v1/events/EVNT-NOPE/availability"):
        reply = await rest.get(path)
        assert reply.status_code == 404
        assert reply.json()["details"][0]["reason"] == "EVENT_NOT_FOUND"


@pytest.mark.parametrize("quantity", [0, -3, 1_000_000])
async def test_bad_quantity_is_invalid_argument(stack, quantity: int) -> None:
    async with grpc.aio.insecure_channel(stack.mesh_grpc) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await res_grpc.ReservationServiceStub(channel).Reserve(
                res.ReserveRequest(reservation_id="q", event_id="E-1", ticket_type="GA", quantity=quantity)
            )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_watch_pushes_a_new_snapshot_when_stock_changes(stack, rest: httpx.AsyncClient) -> None:
    event_id = await _create_event(rest, 5)
    async with (
        grpc.aio.insecure_channel(stack.public_grpc) as public,
        grpc.aio.insecure_channel(stack.mesh_grpc) as mesh,
    ):
        stream = inv_grpc.InventoryServiceStub(public).WatchAvailability(
            inv.WatchAvailabilityRequest(event_id=event_id), timeout=30
        )
        first = await stream.read()
        assert first.ticket_types[0].available == 5
        for i in range(2):  # round robin: the change is made on either replica
            await res_grpc.ReservationServiceStub(mesh).Reserve(
                res.ReserveRequest(
                    reservation_id=f"{event_id}-w{i}", event_id=event_id, ticket_type="GA", quantity=1
                )
            )
        seen = first.ticket_types[0].available
        while seen != 3:
            seen = (await asyncio.wait_for(stream.read(), 10)).ticket_types[0].available
        stream.cancel()
