"""Lost replies: for each hop orders makes through the mesh (Reserve and Release on inventory;
CreateCharge, RefundCharge and the payment checks GetCharge/VoidCharge on payments) the callee acts
and its answer is lost on the way back (late, dropped, internal), for one purchase step and under
the purchase load. At rest: I1-I4 and the money check hold, the orders the buyers were told are
confirmed are the confirmed orders, and a buyer who retries with the same request id gets the right
answer. The lossy link itself is checked first: armed it answers as armed, disarmed it is invisible."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import TYPE_CHECKING, Any

import grpc
import httpx
import psycopg
import pytest
from google.rpc import error_details_pb2, status_pb2
from google.type import money_pb2

from stack import Stack
from stack.invariants import violations
from tests.e2e.shop import eventually, new_event, new_order, new_user, stock
from tests.faults.lossy_link import LOSSES, Arming
from tests.faults.lost_replies.cancel_load import CancelLoad
from tests.faults.purchase_load import RETRY_STATUS, PurchaseLoad
from ticketing.inventory.v1 import inventory_service_pb2 as inv
from ticketing.inventory.v1 import inventory_service_pb2_grpc as inv_grpc
from ticketing.inventory.v1 import reservation_service_pb2 as res
from ticketing.inventory.v1 import reservation_service_pb2_grpc as res_grpc
from ticketing.payments.v1 import payment_service_pb2 as pay
from ticketing.payments.v1 import payment_service_pb2_grpc as pay_grpc
from ticketing.type.v1 import payment_method_pb2

if TYPE_CHECKING:
    from tests.faults.lost_replies.conftest import LossyMesh

RESERVE = "/ticketing.inventory.v1.ReservationService/Reserve"
RELEASE = "/ticketing.inventory.v1.ReservationService/Release"
CONFIRM = "/ticketing.inventory.v1.ReservationService/Confirm"
CREATE_CHARGE = "/ticketing.payments.v1.PaymentService/CreateCharge"
REFUND_CHARGE = "/ticketing.payments.v1.PaymentService/RefundCharge"
GET_CHARGE = "/ticketing.payments.v1.PaymentService/GetCharge"
VOID_CHARGE = "/ticketing.payments.v1.PaymentService/VoidCharge"
# What the caller sees for each way of losing an answer.
SEEN = {
    "late": grpc.StatusCode.DEADLINE_EXCEEDED,
    "dropped": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "internal": grpc.StatusCode.INTERNAL,
}
# The buyer's deadline for the step whose answer is lost: a late answer then costs seconds, not the
# route's 15 s (Envoy takes a REST client's grpc-timeout as the call's deadline).
SHORT_DEADLINE = {"grpc-timeout": "4S"}
# A hold nobody retries ends after HOLD_TTL_SECONDS (20 s here); a payment whose outcome is unknown
# may wait for its hold's end and a grace before it is checked; each owed step is retried with backoff.
REST_SECONDS = 75.0
# How long a careful buyer keeps retrying one step.
RETRY_SECONDS = 60.0
_UNPAID = ("PENDING_PAYMENT", "PAYMENT_IN_PROGRESS")


# -- steps -----------------------------------------------------------------------------------------


class Buyer:
    """One careful client on Envoy's REST listener; counts what it sent and what failed."""

    def __init__(self, rest: httpx.AsyncClient):
        self.rest = rest
        self.requests = 0
        self.failed = 0

    async def once(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> str:
        """One call; returns what it answered ("200", "503 PAYMENT_OUTCOME_UNKNOWN", "ReadTimeout")."""
        self.requests += 1
        try:
            reply = await self.rest.post(path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            self.failed += 1
            return type(exc).__name__
        if reply.status_code != 200:
            self.failed += 1
        return f"{reply.status_code} {_reason(reply)}".strip()

    async def until_answered(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """Retries with the same body (the same request id) until an answer that is not a retryable
        failure; asserts it is a 200 and returns it."""
        give_up = time.monotonic() + RETRY_SECONDS
        while True:
            self.requests += 1
            try:
                reply: httpx.Response | None = await self.rest.post(path, json=body)
            except httpx.HTTPError:
                reply = None
            if reply is not None and reply.status_code not in RETRY_STATUS:
                assert reply.status_code == 200, reply.text
                return dict(reply.json())
            self.failed += 1
            assert time.monotonic() < give_up, f"{path} never answered: {reply and reply.text}"
            await asyncio.sleep(0.2)


def _reason(reply: httpx.Response) -> str:
    if reply.status_code == 200:
        return ""
    try:
        return str(reply.json()["details"][0]["reason"])
    except (ValueError, KeyError, IndexError, TypeError):
        return reply.text[:60]


async def _rows(database_url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        return await (await conn.execute(sql, params)).fetchall()


async def _order(database_url: str, order_id: str) -> dict[str, Any]:
    [row] = await _rows(
        database_url,
        "SELECT status, stock_released, refund_due, refunded FROM orders.orders WHERE id = %s",
        order_id,
    )
    return dict(zip(("status", "stock_released", "refund_due", "refunded"), row, strict=True))


async def _charges(database_url: str, order_id: str) -> list[str]:
    """The statuses of the order's charges (VOIDED ones took no money)."""
    rows = await _rows(database_url, "SELECT status FROM payments.charges WHERE order_id = %s", order_id)
    return sorted(r[0] for r in rows)


async def _orders_by_status(database_url: str, event_id: str, statuses: tuple[str, ...]) -> set[str]:
    rows = await _rows(
        database_url,
        "SELECT id FROM orders.orders WHERE event_id = %s AND status = ANY(%s)",
        event_id,
        list(statuses),
    )
    return {r[0] for r in rows}


async def _at_rest(stack: Stack, event_id: str, settled: Any = None, since: float | None = None) -> float:
    """Waits until I1-I4 hold for the event and `settled()` (if given) is true; returns how long
    that took from `since` (default: now). A mesh that never gets there fails with what is still
    wrong."""
    started = time.monotonic() if since is None else since

    async def resting() -> bool:
        if await violations(stack.database_url, [event_id]):
            return False
        return settled is None or bool(await settled())

    try:
        await eventually(resting, REST_SECONDS)
    except AssertionError:
        wrong = await violations(stack.database_url, [event_id])
        raise AssertionError(f"not at rest after {REST_SECONDS:.0f} s; violations: {wrong}") from None
    return time.monotonic() - started


def _report(fault: str, requests: int, failed: int, confirmed: int, rest_seconds: float) -> None:
    print(
        f"\nlost-reply | {fault:<58} | requests {requests:>5} | failed {failed:>4}"
        f" | confirmed {confirmed:>4} | at rest in {rest_seconds:5.1f} s"
    )


def _money(units: int) -> money_pb2.Money:
    return money_pb2.Money(currency_code="EUR", units=units)


def _status_details(err: grpc.aio.AioRpcError) -> bytes | None:
    return dict(err.trailing_metadata() or ()).get("grpc-status-details-bin")


# -- the lossy link itself ---------------------------------------------------------------------------


async def test_a_disarmed_link_passes_calls_status_and_metadata_unchanged(
    lossy: LossyMesh, rest: httpx.AsyncClient, arming: Arming
) -> None:
    stack = lossy.stack
    # Envoy's health checks pass through the links: it routes to every linked replica.
    hosts = await asyncio.to_thread(stack.envoy_hosts)
    assert len(lossy.links) == 3
    for name, link in lossy.links.items():
        assert hosts[name.split("-")[0]][link.address] == "healthy", hosts

    unknown = pay.GetChargeRequest(key=f"nobody:{uuid.uuid4().hex}")
    async with (
        grpc.aio.insecure_channel(stack.mesh_grpc) as mesh,
        grpc.aio.insecure_channel(stack.grpc_address("payments-1")) as direct,
    ):
        errors = []
        for channel in (mesh, direct):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await pay_grpc.PaymentServiceStub(channel).GetCharge(unknown, timeout=5)
            errors.append(caught.value)
        through, straight = errors
        assert through.code() == straight.code() == grpc.StatusCode.NOT_FOUND
        assert through.details() == straight.details()
        details = _status_details(through)
        assert details is not None and details == _status_details(straight)
        info = error_details_pb2.ErrorInfo()
        assert status_pb2.Status.FromString(details).details[0].Unpack(info)
        assert info.reason == "CHARGE_NOT_FOUND", info

        # Request metadata reaches the callee, the callee's initial metadata comes back.
        payments = pay_grpc.PaymentServiceStub(mesh)
        request_id, key = f"lossy-{uuid.uuid4().hex}", f"ord_{uuid.uuid4().hex[:12]}:link"
        charge_request = pay.CreateChargeRequest(
            key=key, order_id=key.split(":")[0], amount=_money(5), method=payment_method_pb2.CARD
        )
        made = await payments.CreateCharge(
            charge_request, timeout=5, metadata=(("x-request-id", request_id),)
        )
        call = payments.CreateCharge(charge_request, timeout=5)
        assert (await call).id == made.id
        assert ("idempotent-replayed", "true") in tuple(await call.initial_metadata())
        [(stored_request_id,)] = await _rows(
            stack.database_url, "SELECT request_id FROM payments.charges WHERE key = %s", key
        )
        assert stored_request_id == request_id

    # A stream passes through too: a watch through Envoy and inventory's link.
    event_id = await new_event(rest, 7)
    async with grpc.aio.insecure_channel(stack.public_grpc) as public:
        watch = inv_grpc.InventoryServiceStub(public).WatchAvailability(
            inv.WatchAvailabilityRequest(event_id=event_id), timeout=10
        )
        first = await anext(aiter(watch))
        watch.cancel()
    assert first.ticket_types[0].available == 7, first
    assert arming.lost(GET_CHARGE) == arming.lost(CREATE_CHARGE) == 0
    assert arming.answered(GET_CHARGE) >= 1 and arming.answered(CREATE_CHARGE) >= 2


@pytest.mark.parametrize("loss", LOSSES)
async def test_an_armed_link_loses_the_answer_after_the_callee_answered(
    stack: Stack, arming: Arming, loss: str
) -> None:
    async with grpc.aio.insecure_channel(stack.mesh_grpc) as mesh:
        payments = pay_grpc.PaymentServiceStub(mesh)
        key = f"ord_{uuid.uuid4().hex[:12]}:armed"
        made = await payments.CreateCharge(
            pay.CreateChargeRequest(
                key=key, order_id=key.split(":")[0], amount=_money(7), method=payment_method_pb2.CARD
            ),
            timeout=5,
        )
        answered = arming.answered(GET_CHARGE)
        arming.arm(GET_CHARGE, loss, count=1)
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await payments.GetCharge(pay.GetChargeRequest(key=key), timeout=2)
        took = time.monotonic() - started
        assert caught.value.code() == SEEN[loss], caught.value
        assert _status_details(caught.value) is None  # no ErrorInfo: nothing says what happened
        if loss == "late":
            assert took >= 1.9, took
        assert arming.lost(GET_CHARGE, loss) == 1
        assert arming.answered(GET_CHARGE) == answered + 1  # the callee did answer
        # Armed for one call: the next passes.
        found = await payments.GetCharge(pay.GetChargeRequest(key=key), timeout=5)
        assert found.id == made.id


@pytest.mark.parametrize("loss", LOSSES)
async def test_a_lost_confirm_answer_sells_the_tickets_once(
    stack: Stack, rest: httpx.AsyncClient, arming: Arming, loss: str
) -> None:
    """Not a hop of the purchase (inventory confirms from order.confirmed, and its answer is the
    JetStream ack), but callable through the mesh: a retried Confirm must not sell twice. The event
    has no orders, so it is not checked against them."""
    event_id = await new_event(rest, 3)
    reservation_id = f"ord_{uuid.uuid4().hex[:12]}"
    async with grpc.aio.insecure_channel(stack.mesh_grpc) as mesh:
        reservations = res_grpc.ReservationServiceStub(mesh)
        await reservations.Reserve(
            res.ReserveRequest(
                reservation_id=reservation_id, event_id=event_id, ticket_type="GA", quantity=2
            ),
            timeout=5,
        )
        assert await stock(rest, event_id) == (1, 2, 0)
        with arming.armed(CONFIRM, loss, count=1), pytest.raises(grpc.aio.AioRpcError) as caught:
            await reservations.Confirm(res.ConfirmRequest(reservation_id=reservation_id), timeout=2)
        assert caught.value.code() == SEEN[loss]
        assert arming.lost(CONFIRM) >= 1
        assert await stock(rest, event_id) == (1, 0, 2)  # the callee acted
        again = await reservations.Confirm(res.ConfirmRequest(reservation_id=reservation_id), timeout=5)
    assert again.state == res.Reservation.SOLD
    assert await stock(rest, event_id) == (1, 0, 2)


# -- one purchase step at a time ---------------------------------------------------------------------


@pytest.mark.parametrize("loss", LOSSES)
async def test_a_lost_reserve_answer_then_the_retry_gets_the_one_order_and_its_hold(
    stack: Stack, rest: httpx.AsyncClient, arming: Arming, loss: str
) -> None:
    user_id, event_id = await new_user(rest), await new_event(rest, 5)
    buyer = Buyer(rest)
    body = {
        "requestId": uuid.uuid4().hex,
        "userId": user_id,
        "eventId": event_id,
        "ticketType": "GA",
        "quantity": 2,
    }
    arming.arm(RESERVE, loss, count=1)
    first = await buyer.once("/v1/orders", body, SHORT_DEADLINE)
    assert arming.lost(RESERVE, loss) == 1, "the Reserve answer was not lost"

    order = await buyer.until_answered("/v1/orders", body)
    assert order["status"] == "PENDING_PAYMENT", order
    listed = (await rest.get("/v1/orders", params={"userId": user_id, "eventId": event_id})).json()
    assert [o["id"] for o in listed.get("orders", [])] == [order["id"]], listed
    assert await stock(rest, event_id) == (3, 2, 0)
    took = await _at_rest(stack, event_id)
    print(f"\nfirst CreateOrder answered {first}")
    _report(f"Reserve answer {loss}, buyer retries", buyer.requests, buyer.failed, 0, took)


@pytest.mark.parametrize("loss", LOSSES)
async def test_a_keyless_create_whose_reserve_answer_is_lost_holds_nothing_at_rest(
    stack: Stack, rest: httpx.AsyncClient, arming: Arming, loss: str
) -> None:
    """Without a request id nobody can retry: a hold made for an order that was never written must
    be given back (I1: held = what unpaid orders hold)."""
    user_id, event_id = await new_user(rest), await new_event(rest, 5)
    buyer = Buyer(rest)
    arming.arm(RESERVE, loss, count=1)
    first = await buyer.once(
        "/v1/orders",
        {"userId": user_id, "eventId": event_id, "ticketType": "GA", "quantity": 1},
        SHORT_DEADLINE,
    )
    assert arming.lost(RESERVE, loss) == 1, "the Reserve answer was not lost"

    async def held_by_orders_only() -> bool:
        orders = await _orders_by_status(stack.database_url, event_id, _UNPAID)
        return await stock(rest, event_id) == (5 - len(orders), len(orders), 0)

    took = await _at_rest(stack, event_id, held_by_orders_only)
    print(f"\nkeyless CreateOrder answered {first}; stock at rest {await stock(rest, event_id)}")
    _report(f"Reserve answer {loss}, keyless, nobody retries", buyer.requests, buyer.failed, 0, took)


@pytest.mark.parametrize("loss", LOSSES)
async def test_a_lost_release_answer_on_cancel_still_gives_the_stock_back(
    stack: Stack, rest: httpx.AsyncClient, arming: Arming, loss: str
) -> None:
    user_id, event_id = await new_user(rest), await new_event(rest, 4)
    order_id = (await new_order(rest, user_id, event_id, quantity=3))["id"]
    buyer = Buyer(rest)
    body = {"requestId": uuid.uuid4().hex}
    arming.arm(RELEASE, loss, count=1)
    first = await buyer.once(f"/v1/orders/{order_id}:cancel", body, SHORT_DEADLINE)
    assert arming.lost(RELEASE, loss) == 1, "the Release answer was not lost"

    cancelled = await buyer.until_answered(f"/v1/orders/{order_id}:cancel", body)
    assert cancelled["status"] == "CANCELLED", cancelled

    async def stock_back() -> bool:
        return (
            await stock(rest, event_id) == (4, 0, 0)
            and (await _order(stack.database_url, order_id))["stock_released"]
        )

    took = await _at_rest(stack, event_id, stock_back)
    print(f"\nfirst CancelOrder answered {first}")
    _report(f"Release answer {loss}, on cancel", buyer.requests, buyer.failed, 0, took)


@pytest.mark.parametrize("loss", LOSSES)
async def test_a_lost_refund_answer_on_cancelling_a_paid_order_refunds_it_once(
    stack: Stack, rest: httpx.AsyncClient, arming: Arming, loss: str
) -> None:
    user_id, event_id = await new_user(rest), await new_event(rest, 2)
    order_id = (await new_order(rest, user_id, event_id))["id"]
    buyer = Buyer(rest)
    paid = await buyer.until_answered(
        f"/v1/orders/{order_id}:pay", {"requestId": uuid.uuid4().hex, "paymentMethod": "CARD"}
    )
    assert paid["status"] == "CONFIRMED", paid

    async def sold() -> bool:
        return await stock(rest, event_id) == (1, 0, 1)

    await eventually(sold, 15)  # inventory has sold it (order.confirmed): the buyer cancels later
    body = {"requestId": uuid.uuid4().hex}
    arming.arm(REFUND_CHARGE, loss, count=1)
    first = await buyer.once(f"/v1/orders/{order_id}:cancel", body, SHORT_DEADLINE)
    assert arming.lost(REFUND_CHARGE, loss) == 1, "the RefundCharge answer was not lost"

    cancelled = await buyer.until_answered(f"/v1/orders/{order_id}:cancel", body)
    assert cancelled["status"] == "CANCELLED", cancelled

    async def refunded_once() -> bool:
        order = await _order(stack.database_url, order_id)
        money_taken = [s for s in await _charges(stack.database_url, order_id) if s != "VOIDED"]
        return (
            money_taken == ["REFUNDED"]
            and order["refunded"]
            and not order["refund_due"]
            and await stock(rest, event_id) == (2, 0, 0)
        )

    took = await _at_rest(stack, event_id, refunded_once)
    print(f"\nfirst CancelOrder of the paid order answered {first}")
    _report(f"RefundCharge answer {loss}, on cancelling a paid order", buyer.requests, buyer.failed, 1, took)


@pytest.mark.parametrize("loss", LOSSES)
async def test_a_lost_charge_answer_then_the_retry_confirms_with_one_charge(
    stack: Stack, rest: httpx.AsyncClient, arming: Arming, loss: str
) -> None:
    user_id, event_id = await new_user(rest), await new_event(rest, 2)
    order_id = (await new_order(rest, user_id, event_id))["id"]
    buyer = Buyer(rest)
    body = {"requestId": uuid.uuid4().hex, "paymentMethod": "CARD"}
    arming.arm(CREATE_CHARGE, loss, count=1)
    first = await buyer.once(f"/v1/orders/{order_id}:pay", body, SHORT_DEADLINE)
    assert arming.lost(CREATE_CHARGE, loss) == 1, "the CreateCharge answer was not lost"

    paid = await buyer.until_answered(f"/v1/orders/{order_id}:pay", body)
    assert paid["status"] == "CONFIRMED", paid
    assert (await _charges(stack.database_url, order_id)).count("APPROVED") == 1

    async def sold() -> bool:
        return await stock(rest, event_id) == (1, 0, 1)

    took = await _at_rest(stack, event_id, sold)
    assert (await _charges(stack.database_url, order_id)).count("APPROVED") == 1
    print(f"\nfirst PayOrder answered {first}")
    _report(f"CreateCharge answer {loss}, buyer retries", buyer.requests, buyer.failed, 1, took)


@pytest.mark.parametrize("loss", LOSSES)
async def test_a_lost_charge_answer_and_a_lost_first_check_still_end_settled(
    stack: Stack, rest: httpx.AsyncClient, arming: Arming, loss: str
) -> None:
    """The buyer pays once and never retries; orders must learn what became of the charge from
    payments (GetCharge or VoidCharge, by the charge's key), and that first check loses its answer
    too. At rest the order is either confirmed with its one charge or ended with no money taken."""
    user_id, event_id = await new_user(rest), await new_event(rest, 2)
    order_id = (await new_order(rest, user_id, event_id))["id"]
    buyer = Buyer(rest)
    for method in (CREATE_CHARGE, GET_CHARGE, VOID_CHARGE):
        arming.arm(method, loss, count=1)
    first = await buyer.once(
        f"/v1/orders/{order_id}:pay", {"requestId": uuid.uuid4().hex, "paymentMethod": "CARD"}, SHORT_DEADLINE
    )
    assert arming.lost(CREATE_CHARGE, loss) == 1, "the CreateCharge answer was not lost"

    async def settled() -> bool:
        return (await _order(stack.database_url, order_id))["status"] not in _UNPAID

    took = await _at_rest(stack, event_id, settled)
    status = (await _order(stack.database_url, order_id))["status"]
    approved = (await _charges(stack.database_url, order_id)).count("APPROVED")
    assert approved == (1 if status == "CONFIRMED" else 0), (
        status,
        await _charges(stack.database_url, order_id),
    )
    if first.startswith("200"):
        assert status == "CONFIRMED"
    print(
        f"\nPayOrder answered {first}; at rest the order is {status}; checks lost: "
        f"GetCharge {arming.lost(GET_CHARGE)}, VoidCharge {arming.lost(VOID_CHARGE)}"
    )
    _report(
        f"CreateCharge + first check {loss}, nobody retries",
        buyer.requests,
        buyer.failed,
        int(status == "CONFIRMED"),
        took,
    )


# -- under the purchase load -------------------------------------------------------------------------

# Hop -> the methods armed together while the load runs.
HOPS = {
    "Reserve": (RESERVE,),
    "Release": (RELEASE,),
    "CreateCharge": (CREATE_CHARGE,),
    "RefundCharge": (REFUND_CHARGE,),
    "CreateCharge+check": (CREATE_CHARGE, GET_CHARGE, VOID_CHARGE),
}


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("hop", list(HOPS))
async def test_lost_answers_under_the_purchase_load_lose_nothing(
    stack: Stack, rest: httpx.AsyncClient, arming: Arming, hop: str, loss: str
) -> None:
    """Buyers purchase (and a few create, pay and cancel, which makes orders release and refund)
    while every answer of the hop is lost for a few seconds in the middle."""
    event_id = await new_event(rest, 100_000)
    users = [await new_user(rest) for _ in range(4)]
    methods = HOPS[hop]
    async with (
        PurchaseLoad(stack.public_url, event_id, users, buyers=6) as load,
        CancelLoad(stack.public_url, event_id, users, buyers=2) as cancels,
    ):
        await asyncio.sleep(2.0)
        for method in methods:
            arming.arm(method, loss)
        await asyncio.sleep(3.0)
        arming.disarm()
        fault_ended = time.monotonic()
        if hop == "CreateCharge+check":
            # A late charge holds its caller past the window: its check comes after it, and must
            # lose its answer too. (Checks the window already caught are not armed again.)
            unchecked = arming.lost(CREATE_CHARGE, loss) - arming.lost(GET_CHARGE) - arming.lost(VOID_CHARGE)
            if unchecked > 0:
                for method in (GET_CHARGE, VOID_CHARGE):
                    arming.arm(method, loss, count=unchecked)
        await asyncio.sleep(2.0)
        tally = await load.stop()
        cancelled = await cancels.stop()
    print(f"\n{hop} answers {loss} under load: {tally.summary()}")
    assert arming.lost(methods[0], loss) > 0, "no answer was lost: the fault did not happen"
    assert tally.unfinished == [], f"purchases that never got an answer: {tally.unfinished}"
    assert cancelled.unfinished == 0, "cancels that never got an answer"
    assert tally.confirmed, "the load confirmed nothing"
    assert len(set(tally.confirmed)) == len(tally.confirmed)

    async def settled() -> bool:
        if await _orders_by_status(stack.database_url, event_id, _UNPAID):
            return False
        owed = await _rows(
            stack.database_url,
            "SELECT id FROM orders.orders WHERE id = ANY(%s) AND (NOT stock_released OR refund_due)",
            list(cancelled.orders),
        )
        return not owed

    took = await _at_rest(stack, event_id, settled, since=fault_ended)
    confirmed = await _orders_by_status(stack.database_url, event_id, ("CONFIRMED",))
    assert confirmed == set(tally.confirmed)
    assert await _orders_by_status(stack.database_url, event_id, ("CANCELLED",)) >= set(cancelled.orders)
    for order_id, paid in cancelled.orders.items():
        money = [s for s in await _charges(stack.database_url, order_id) if s not in ("VOIDED", "DECLINED")]
        # Unpaid as far as its buyer knew, it may still have been charged (a lost answer): refunded.
        assert (money == ["REFUNDED"]) if paid else (set(money) <= {"REFUNDED"}), (order_id, paid, money)
    assert await violations(stack.database_url, [event_id]) == []
    print(f"answers lost: { {m.rsplit('/', 1)[1]: arming.lost(m, loss) for m in methods} }")
    _report(
        f"{hop} answers {loss}, 3 s under load",  # at rest: counted from the fault's end
        tally.requests + cancelled.requests,
        tally.failed + cancelled.failed,
        len(tally.confirmed),
        took,
    )
