"""Hostile input over gRPC, through Envoy's public listener: generated requests with wild field
values for every public RPC, and bytes that are no message at all. Whatever comes in, the mesh
answers with a client error (or does the odd-but-valid thing), never INTERNAL/UNKNOWN/UNAVAILABLE,
never hangs, and stays healthy and consistent."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from google.type import money_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from stack import Stack
from tests.e2e import hostile
from tests.e2e.hostile import FUZZ, INT64_MAX, TIMEOUT, int32, int64, sometimes, text
from ticketing.inventory.v1 import inventory_service_pb2 as inv
from ticketing.inventory.v1 import inventory_service_pb2_grpc as inv_grpc
from ticketing.inventory.v1 import reservation_service_pb2 as res
from ticketing.notify.v1 import notification_service_pb2 as notify
from ticketing.notify.v1 import notification_service_pb2_grpc as notify_grpc
from ticketing.orders.v1 import order_service_pb2 as orders
from ticketing.orders.v1 import order_service_pb2_grpc as orders_grpc
from ticketing.orders.v1 import user_service_pb2 as users
from ticketing.orders.v1 import user_service_pb2_grpc as users_grpc
from ticketing.payments.v1 import payment_admin_service_pb2 as admin
from ticketing.payments.v1 import payment_service_pb2 as pay

# The name the case counts are reported under (see conftest.py).
SUITE = "hostile gRPC"


@pytest.fixture(scope="module")
def channel(stack: Stack) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(stack.public_grpc) as channel:
        yield channel


# -- requests --------------------------------------------------------------------------------------


def money() -> st.SearchStrategy[money_pb2.Money]:
    currency = st.one_of(st.sampled_from(["EUR", "USD", "eur", "EU", "EURO", "\u20ac\u20ac\u20ac"]), text())
    return st.builds(money_pb2.Money, currency_code=currency, units=int64(), nanos=int32())


def timestamp() -> st.SearchStrategy[Timestamp | None]:
    return st.none() | st.builds(Timestamp, seconds=int64(), nanos=int32())


def ticket_type() -> st.SearchStrategy[inv.TicketType]:
    name = st.one_of(st.just("GA"), st.from_regex(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,8}", fullmatch=True), text())
    return st.builds(inv.TicketType, name=name, price=st.none() | money(), capacity=int32())


def event() -> st.SearchStrategy[inv.Event]:
    """Wild events, and events valid but for odd corners (start time, duplicate names, prices)."""
    wild = st.builds(
        inv.Event,
        id=st.one_of(st.just(""), text()),
        display_name=text(),
        venue=text(),
        start_time=timestamp(),
        ticket_types=sometimes(
            st.lists(ticket_type(), max_size=4), st.lists(ticket_type(), min_size=51, max_size=52)
        ),
        create_time=timestamp(),
    )
    # Mostly whole cents (what EUR allows), so the valid path is reached; now and then any nanos.
    cents = st.integers(0, 99).map(lambda c: c * 10_000_000)
    price = st.builds(
        money_pb2.Money,
        currency_code=st.just("EUR"),
        units=st.integers(0, INT64_MAX),
        nanos=sometimes(cents, int32(), odds=4),
    )
    sane_type = st.builds(
        inv.TicketType,
        name=st.sampled_from(["GA", "VIP", "ga"]),
        price=price,
        capacity=st.integers(1, 1_000_000),
    )
    nearly_valid = st.builds(
        inv.Event,
        id=st.one_of(st.just(""), st.from_regex(r"[A-Z0-9][A-Z0-9-]{2,20}", fullmatch=True)),
        display_name=st.text(min_size=1, max_size=40),
        venue=st.text(max_size=40),
        start_time=timestamp(),
        ticket_types=st.lists(sane_type, min_size=1, max_size=3),
    )
    return st.one_of(wild, nearly_valid)


def user() -> st.SearchStrategy[users.User]:
    email = st.one_of(
        st.emails().map(lambda e: e[:254]), text(), st.builds(lambda s: f"{s}@example.com", text())
    )
    return st.builds(users.User, id=text(), email=email, name=text(), create_time=timestamp())


def request_id() -> st.SearchStrategy[str]:
    return st.one_of(st.just(""), st.uuids().map(str), text())


def idempotency_metadata() -> st.SearchStrategy[tuple[tuple[str, str], ...]]:
    """No header, or an Idempotency-Key that may clash with the request_id field."""
    value = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=140)
    return st.one_of(st.just(()), value.map(lambda v: (("idempotency-key", v),)))


def requests(known: hostile.Known) -> dict[str, st.SearchStrategy[Any]]:
    """A request strategy for every public RPC, by "Service/Method"."""
    event_id = hostile.id_text(known["event"])
    user_id = hostile.id_text(known["user"])
    order_id = hostile.id_text(known["order"])
    page = {"page_size": int32(), "page_token": text()}
    return {
        "InventoryService/WhoAmI": st.just(inv.WhoAmIRequest()),
        "InventoryService/CreateEvent": st.builds(
            inv.CreateEventRequest, event=st.none() | event(), request_id=request_id()
        ),
        "InventoryService/GetEvent": st.builds(inv.GetEventRequest, event_id=event_id),
        "InventoryService/ListEvents": st.builds(inv.ListEventsRequest, **page),
        "InventoryService/GetAvailability": st.builds(inv.GetAvailabilityRequest, event_id=event_id),
        "InventoryService/WatchAvailability": st.builds(inv.WatchAvailabilityRequest, event_id=event_id),
        "UserService/CreateUser": st.builds(
            users.CreateUserRequest, user=st.none() | user(), request_id=request_id()
        ),
        "UserService/GetUser": st.builds(users.GetUserRequest, user_id=user_id),
        "OrderService/CreateOrder": st.builds(
            orders.CreateOrderRequest,
            request_id=request_id(),
            user_id=user_id,
            event_id=event_id,
            ticket_type=hostile.id_text(known["ticket_type"]),
            quantity=int32(),
            strategy=int32(),
        )
        | st.builds(
            orders.CreateOrderRequest,
            request_id=st.one_of(st.just(""), st.uuids().map(str)),
            user_id=st.sampled_from(known["user"] or [""]),
            event_id=st.sampled_from(known["event"] or [""]),
            ticket_type=st.sampled_from(known["ticket_type"] or [""]),
            quantity=st.integers(-1, 12),
            strategy=st.integers(0, 4),
        ),
        "OrderService/GetOrder": st.builds(orders.GetOrderRequest, order_id=order_id),
        "OrderService/ListOrders": st.builds(
            orders.ListOrdersRequest, user_id=user_id, event_id=event_id, **page
        ),
        "OrderService/PayOrder": st.builds(
            orders.PayOrderRequest,
            order_id=order_id,
            request_id=request_id(),
            payment_method=st.one_of(st.integers(0, 3), int32()),
        ),
        "OrderService/CancelOrder": st.builds(
            orders.CancelOrderRequest, order_id=order_id, request_id=request_id()
        ),
        "NotificationService/ListNotifications": st.builds(
            notify.ListNotificationsRequest, user_id=user_id, order_id=order_id, **page
        ),
    }


STUBS: dict[str, Callable[[grpc.Channel], Any]] = {
    "InventoryService": inv_grpc.InventoryServiceStub,
    "UserService": users_grpc.UserServiceStub,
    "OrderService": orders_grpc.OrderServiceStub,
    "NotificationService": notify_grpc.NotificationServiceStub,
}
PACKAGES = {
    "InventoryService": "ticketing.inventory.v1",
    "UserService": "ticketing.orders.v1",
    "OrderService": "ticketing.orders.v1",
    "NotificationService": "ticketing.notify.v1",
}
STREAMING = {"InventoryService/WatchAvailability"}
RPCS = sorted(requests({"event": [], "user": [], "order": [], "ticket_type": []}))
MUTATING = {"CreateEvent", "CreateUser", "CreateOrder", "PayOrder", "CancelOrder"}


def call(channel: grpc.Channel, rpc: str, request: Any, metadata: tuple[tuple[str, str], ...] = ()) -> Any:
    """Calls `rpc` and returns its reply (a streaming call's first one), or raises grpc.RpcError."""
    service, method = rpc.split("/")
    stub_method = getattr(STUBS[service](channel), method)
    if rpc not in STREAMING:
        return stub_method(request, timeout=TIMEOUT, metadata=metadata)
    stream = stub_method(request, timeout=TIMEOUT, metadata=metadata)
    try:
        return next(stream)
    finally:
        stream.cancel()


def outcome(thunk: Callable[[], Any]) -> tuple[grpc.StatusCode, Any]:
    try:
        return grpc.StatusCode.OK, thunk()
    except grpc.RpcError as err:
        return err.code(), err.details()


def assert_acceptable(code: grpc.StatusCode, detail: Any, what: object) -> None:
    assert code in hostile.ACCEPTABLE_CODES, (code, detail, what)


# -- the tests -------------------------------------------------------------------------------------


@pytest.mark.parametrize("rpc", RPCS)
@settings(FUZZ, max_examples=100)
@given(data=st.data())
def test_generated_requests_get_a_client_error_or_succeed(
    channel: grpc.Channel, known: hostile.Known, ledger: hostile.Ledger, rpc: str, data: st.DataObject
) -> None:
    request = data.draw(requests(known)[rpc], label="request")
    metadata = data.draw(idempotency_metadata(), label="metadata") if rpc.split("/")[1] in MUTATING else ()
    ledger.count(f"test_generated_requests[{rpc}]")
    code, reply = outcome(lambda: call(channel, rpc, request, metadata))
    assert_acceptable(code, reply, request)
    if code == grpc.StatusCode.OK and rpc == "InventoryService/CreateEvent":
        ledger.events.add(reply.id)
    if code == grpc.StatusCode.OK and rpc == "OrderService/CreateOrder":
        ledger.orders.add(reply.id)


def raw_payload(known: hostile.Known, rpc: str) -> st.SearchStrategy[bytes]:
    """Bytes for `rpc`: random ones, or a real request's serialization cut short or corrupted."""
    valid = requests(known)[rpc].map(lambda m: m.SerializeToString())

    def corrupt(blob: bytes, at: int, byte: int) -> bytes:
        return blob[: at % (len(blob) + 1)] + bytes([byte]) + blob[at % (len(blob) + 1) + 1 :]

    return st.one_of(
        st.binary(max_size=64),
        st.binary(min_size=64, max_size=4096),
        st.sampled_from(
            [
                b"\x00",
                b"\xff" * 16,
                b"\x0a\xff\xff\xff\xff\x0f",
                b"\x12\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01",
            ]
        ),
        st.builds(lambda blob, cut: blob[: cut % (len(blob) + 1)], valid, st.integers(0, 10_000)),
        st.builds(corrupt, valid, st.integers(0, 10_000), st.integers(0, 255)),
    )


@pytest.mark.parametrize("rpc", RPCS)
@settings(FUZZ, max_examples=40)
@given(data=st.data())
def test_malformed_bytes_are_never_an_internal_error(
    channel: grpc.Channel, known: hostile.Known, ledger: hostile.Ledger, rpc: str, data: st.DataObject
) -> None:
    payload = data.draw(raw_payload(known, rpc), label="payload")
    ledger.count(f"test_malformed_bytes[{rpc}]")
    service, method = rpc.split("/")
    path = f"/{PACKAGES[service]}.{service}/{method}"
    identity: Callable[[bytes], bytes] = lambda b: b  # noqa: E731
    if rpc in STREAMING:
        stream = channel.unary_stream(path, request_serializer=identity, response_deserializer=identity)

        def first() -> bytes:
            replies = stream(payload, timeout=TIMEOUT)
            try:
                return next(replies)
            finally:
                replies.cancel()

        code, reply = outcome(first)
    else:
        unary = channel.unary_unary(path, request_serializer=identity, response_deserializer=identity)
        code, reply = outcome(lambda: unary(payload, timeout=TIMEOUT))
    assert_acceptable(code, reply, payload)


INTERNAL_RPCS = [
    (
        "/ticketing.inventory.v1.ReservationService/Reserve",
        res.ReserveRequest(reservation_id="x", quantity=1),
    ),
    ("/ticketing.inventory.v1.ReservationService/Release", res.ReleaseRequest(reservation_id="x")),
    ("/ticketing.inventory.v1.ReservationService/Confirm", res.ConfirmRequest(reservation_id="x")),
    (
        "/ticketing.inventory.v1.ReservationService/GetReservation",
        res.GetReservationRequest(reservation_id="x"),
    ),
    ("/ticketing.payments.v1.PaymentService/CreateCharge", pay.CreateChargeRequest(order_id="x")),
    ("/ticketing.payments.v1.PaymentService/RefundCharge", pay.RefundChargeRequest()),
    ("/ticketing.payments.v1.PaymentService/GetCharge", pay.GetChargeRequest()),
    ("/ticketing.payments.v1.PaymentService/VoidCharge", pay.VoidChargeRequest(key="x", order_id="x")),
    ("/ticketing.payments.v1.PaymentService/ListCharges", pay.ListChargesRequest()),
    ("/ticketing.payments.v1.PaymentAdminService/SetMode", admin.SetModeRequest(decline_rate=1.0)),
    ("/ticketing.nope.v1.NoService/Nothing", res.GetReservationRequest()),
]


@pytest.mark.parametrize(("path", "request_message"), INTERNAL_RPCS, ids=[p for p, _ in INTERNAL_RPCS])
def test_internal_rpcs_are_unimplemented_on_the_public_listener(
    channel: grpc.Channel, path: str, request_message: Any
) -> None:
    unary = channel.unary_unary(path, request_serializer=lambda m: m.SerializeToString())
    code, _ = outcome(lambda: unary(request_message, timeout=TIMEOUT))
    assert code == grpc.StatusCode.UNIMPLEMENTED


def test_zz_after_the_barrage_the_mesh_is_healthy_and_consistent(
    stack: Stack, ledger: hostile.Ledger
) -> None:
    """Runs last in this module (pytest keeps file order): the fuzz above did not hurt anything."""
    hostile.assert_healthy(stack)
    hostile.assert_invariants_hold(stack, ledger)
