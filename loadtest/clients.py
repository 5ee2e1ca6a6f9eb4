"""Two clients of the public API, one per transport: REST/JSON over HTTP/1.1 keep-alive (httpx) and
gRPC (grpc.aio), both through Envoy's public listener. Each call answers an `Answer`, never raises
for an error status: the scenario classifies what came back."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
import httpx
from google.protobuf import json_format
from google.type import money_pb2

from ticketing.inventory.v1 import inventory_service_pb2 as inv_pb2
from ticketing.inventory.v1 import inventory_service_pb2_grpc as inv_grpc
from ticketing.orders.v1 import order_service_pb2 as order_pb2
from ticketing.orders.v1 import order_service_pb2_grpc as order_grpc
from ticketing.orders.v1 import user_service_pb2 as user_pb2
from ticketing.orders.v1 import user_service_pb2_grpc as user_grpc
from ticketing.type.v1 import payment_method_pb2
from ticketmesh.errors import error_info
from ticketmesh.idempotency import REPLAYED

TRANSPORTS = ("rest", "grpc")
STRATEGIES = ("COMPARE_AND_SET", "OPTIMISTIC", "PESSIMISTIC")
# gRPC status numbers to names; REST error bodies are google.rpc.Status with the number.
_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


@dataclass(frozen=True)
class Answer:
    """One call's result. `code` is the gRPC status name ("OK", "ABORTED", ...) whichever the
    transport; a call that got no status at all (connection reset, timeout, a proxy's own text
    error) has a code such as "TRANSPORT_ReadTimeout" or "HTTP_503"."""

    code: str
    reason: str = ""
    replayed: bool = False
    body: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.code == "OK"


@dataclass(frozen=True)
class TicketTypeSpec:
    name: str
    capacity: int
    price_units: int = 50


class ShopClient(Protocol):
    """What a buyer does, over one transport."""

    async def create_event(self, display_name: str, ticket_types: list[TicketTypeSpec]) -> Answer: ...
    async def create_user(self, email: str, name: str) -> Answer: ...
    async def create_order(
        self, request_id: str, user_id: str, event_id: str, ticket_type: str, quantity: int, strategy: str
    ) -> Answer: ...
    async def pay_order(self, order_id: str, request_id: str) -> Answer: ...
    async def availability(self, event_id: str) -> Answer: ...
    async def aclose(self) -> None: ...


def _event_json(display_name: str, ticket_types: list[TicketTypeSpec]) -> dict[str, Any]:
    return {
        "displayName": display_name,
        "ticketTypes": [
            {
                "name": t.name,
                "price": {"currencyCode": "EUR", "units": str(t.price_units)},
                "capacity": t.capacity,
            }
            for t in ticket_types
        ],
    }


class RestClient:
    """REST/JSON through Envoy's transcoder; one keep-alive pool as large as the concurrency."""

    def __init__(self, base_url: str, concurrency: int, timeout: float = 30.0):
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self._http = httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout, trust_env=False)

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Answer:
        started = time.perf_counter()
        try:
            reply = await self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            return Answer(f"TRANSPORT_{type(exc).__name__}", seconds=time.perf_counter() - started)
        seconds = time.perf_counter() - started
        try:
            data = reply.json()
        except ValueError:
            data = None
        if reply.status_code == 200 and isinstance(data, dict):
            replayed = reply.headers.get(REPLAYED) == "true"
            return Answer("OK", replayed=replayed, body=data, seconds=seconds)
        if isinstance(data, dict) and "code" in data:
            reason = next((d.get("reason", "") for d in data.get("details", []) if "reason" in d), "")
            return Answer(_CODE_NAMES.get(int(data["code"]), str(data["code"])), reason, seconds=seconds)
        return Answer(f"HTTP_{reply.status_code}", seconds=seconds)

    async def create_event(self, display_name: str, ticket_types: list[TicketTypeSpec]) -> Answer:
        return await self._call("POST", "/v1/events", _event_json(display_name, ticket_types))

    async def create_user(self, email: str, name: str) -> Answer:
        return await self._call("POST", "/v1/users", {"email": email, "name": name})

    async def create_order(
        self, request_id: str, user_id: str, event_id: str, ticket_type: str, quantity: int, strategy: str
    ) -> Answer:
        body = {
            "requestId": request_id,
            "userId": user_id,
            "eventId": event_id,
            "ticketType": ticket_type,
            "quantity": quantity,
            "strategy": strategy,
        }
        return await self._call("POST", "/v1/orders", body)

    async def pay_order(self, order_id: str, request_id: str) -> Answer:
        return await self._call(
            "POST", f"/v1/orders/{order_id}:pay", {"requestId": request_id, "paymentMethod": "CARD"}
        )

    async def availability(self, event_id: str) -> Answer:
        return await self._call("GET", f"/v1/events/{event_id}/availability")

    async def aclose(self) -> None:
        await self._http.aclose()


class GrpcClient:
    """Native gRPC through the same listener; one HTTP/2 channel multiplexes every buyer's calls.
    Answers carry the message as JSON (camelCase), so the scenario reads both transports alike."""

    def __init__(self, target: str, timeout: float = 30.0):
        self._channel = grpc.aio.insecure_channel(target)
        self._timeout = timeout
        self._inventory = inv_grpc.InventoryServiceStub(self._channel)
        self._users = user_grpc.UserServiceStub(self._channel)
        self._orders = order_grpc.OrderServiceStub(self._channel)

    async def _call(self, method: Any, request: Any) -> Answer:
        started = time.perf_counter()
        call = method(request, timeout=self._timeout)
        try:
            reply = await call
        except grpc.aio.AioRpcError as err:
            info = error_info(err)
            return Answer(err.code().name, info.reason if info else "", seconds=time.perf_counter() - started)
        seconds = time.perf_counter() - started
        metadata = await call.initial_metadata()
        replayed = any(k == REPLAYED and v == "true" for k, v in (metadata or ()))
        body = json_format.MessageToDict(reply)
        return Answer("OK", replayed=replayed, body=body, seconds=seconds)

    async def create_event(self, display_name: str, ticket_types: list[TicketTypeSpec]) -> Answer:
        event = inv_pb2.Event(
            display_name=display_name,
            ticket_types=[
                inv_pb2.TicketType(
                    name=t.name,
                    price=money_pb2.Money(currency_code="EUR", units=t.price_units),
                    capacity=t.capacity,
                )
                for t in ticket_types
            ],
        )
        return await self._call(self._inventory.CreateEvent, inv_pb2.CreateEventRequest(event=event))

    async def create_user(self, email: str, name: str) -> Answer:
        request = user_pb2.CreateUserRequest(user=user_pb2.User(email=email, name=name))
        return await self._call(self._users.CreateUser, request)

    async def create_order(
        self, request_id: str, user_id: str, event_id: str, ticket_type: str, quantity: int, strategy: str
    ) -> Answer:
        request = order_pb2.CreateOrderRequest(
            request_id=request_id,
            user_id=user_id,
            event_id=event_id,
            ticket_type=ticket_type,
            quantity=quantity,
            strategy=strategy,  # the enum accepts its value names
        )
        return await self._call(self._orders.CreateOrder, request)

    async def pay_order(self, order_id: str, request_id: str) -> Answer:
        request = order_pb2.PayOrderRequest(
            order_id=order_id, request_id=request_id, payment_method=payment_method_pb2.CARD
        )
        return await self._call(self._orders.PayOrder, request)

    async def availability(self, event_id: str) -> Answer:
        return await self._call(
            self._inventory.GetAvailability, inv_pb2.GetAvailabilityRequest(event_id=event_id)
        )

    async def aclose(self) -> None:
        await self._channel.close()


def make_client(transport: str, public_url: str, public_grpc: str, concurrency: int) -> ShopClient:
    if transport == "rest":
        return RestClient(public_url, concurrency)
    if transport == "grpc":
        return GrpcClient(public_grpc)
    raise ValueError(f"unknown transport {transport!r}; choose from {', '.join(TRANSPORTS)}")
