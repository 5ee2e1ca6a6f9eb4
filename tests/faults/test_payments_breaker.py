"""The payments breaker with the real services: a failing gateway is retried, then cut off (pays fail
fast without reaching it), then probed and used again; declines never trip it; the orders involved
stay payable and are confirmed once paid."""

from __future__ import annotations

import asyncio
import statistics
import time

import httpx

from stack import Stack
from stack.invariants import violations
from tests.e2e.readings import envoy_stat, metric_total
from tests.e2e.shop import eventually, new_event, new_order, new_user, payments_mode

EJECTION_SECONDS = 5.0  # the payments cluster's base_ejection_time in envoy/envoy.yaml.j2


async def _charges_reaching_payments(stack: Stack) -> float:
    return await metric_total(stack, "payments", "grpc_server_handled_total", grpc_method="CreateCharge")


async def _breaker_open(stack: Stack) -> bool:
    return await envoy_stat(stack.envoy_admin_url, "cluster.payments.outlier_detection.ejections_active") == 1


async def _pay(rest: httpx.AsyncClient, order_id: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    reply = await rest.post(
        f"/v1/orders/{order_id}:pay", json={"requestId": f"pay-{order_id}", "paymentMethod": "CARD"}
    )
    return reply, time.monotonic() - started


def _reason(reply: httpx.Response) -> str:
    return str(reply.json()["details"][0]["reason"])


async def test_a_failing_gateway_is_retried_then_cut_off_then_used_again(stack: Stack, rest) -> None:
    user_id, event_id = await new_user(rest), await new_event(rest, 10)
    orders = [(await new_order(rest, user_id, event_id))["id"] for _ in range(6)]
    retries = await envoy_stat(stack.envoy_admin_url, "cluster.payments.upstream_rq_retry")
    cut_off_before = await metric_total(stack, "orders", "orders_payment_calls_total", outcome="breaker_open")

    async with payments_mode(stack, failureRate=1.0):
        charges = await _charges_reaching_payments(stack)
        # The first pay: Envoy tries the gateway three times (two retries), then orders answers 503.
        first, _ = await _pay(rest, orders[0])
        assert first.status_code == 503, first.text
        assert _reason(first) == "PAYMENTS_UNAVAILABLE"
        assert first.headers["retry-after"] == "1"
        assert await _charges_reaching_payments(stack) == charges + 3
        assert await envoy_stat(stack.envoy_admin_url, "cluster.payments.upstream_rq_retry") == retries + 2
        # The second: the fifth failure in a row opens the breaker. Envoy ejects a host on its main
        # thread, after the worker saw the fifth failure; a retry sent within that moment (retry
        # backoff is fully jittered, so it may be immediate) still reaches the gateway.
        second, _ = await _pay(rest, orders[1])
        assert second.status_code == 503, second.text
        reached = await _charges_reaching_payments(stack) - charges
        assert reached in (5, 6), reached
        await eventually(lambda: _breaker_open(stack), 1.0)  # the main thread's ejection, a moment later
        opened = time.monotonic()

        # Open: pays fail fast, nothing reaches the gateway, the client is told when to come back.
        fast = [await _pay(rest, order_id) for order_id in orders[2:]]
        took = [seconds for _, seconds in fast]
        print(f"\npays while the breaker is open took {[round(t * 1000, 1) for t in took]} ms")
        for reply, _ in fast:
            assert reply.status_code == 503, reply.text
            assert _reason(reply) == "PAYMENTS_UNAVAILABLE"
            assert reply.headers["retry-after"] == str(int(EJECTION_SECONDS))
        assert statistics.median(took) < 0.05
        assert await _charges_reaching_payments(stack) == charges + reached
        cut_off = await metric_total(stack, "orders", "orders_payment_calls_total", outcome="breaker_open")
        # The second pay's last retry already found the breaker open, unless it slipped through.
        assert cut_off == cut_off_before + (1 if reached == 5 else 0) + len(orders[2:])

    # The gateway is well again (the admin API reaches it around the breaker). After the ejection
    # time, a probe gets through and every order, still payable, is paid with its own request id.
    for order_id in orders:
        while True:
            reply, _ = await _pay(rest, order_id)
            if reply.status_code == 200:
                break
            assert reply.status_code == 503 and _reason(reply) == "PAYMENTS_UNAVAILABLE", reply.text
            assert time.monotonic() - opened < EJECTION_SECONDS + 3, "the breaker never closed"
            await asyncio.sleep(0.2)
        assert reply.json()["status"] == "CONFIRMED", reply.text
    print(f"paid again {time.monotonic() - opened:.1f} s after the breaker opened")
    assert not await _breaker_open(stack)

    async def at_rest() -> bool:  # the confirmations arrive through JetStream, a moment later
        return await violations(stack.database_url, [event_id]) == []

    await eventually(at_rest, 15)


async def test_declines_never_open_the_breaker(stack: Stack, rest) -> None:
    user_id, event_id = await new_user(rest), await new_event(rest, 10)
    orders = [(await new_order(rest, user_id, event_id))["id"] for _ in range(8)]
    async with payments_mode(stack, declineRate=1.0):
        charges = await _charges_reaching_payments(stack)
        for order_id in orders:
            reply, _ = await _pay(rest, order_id)
            assert reply.status_code == 400, reply.text
            assert _reason(reply) == "PAYMENT_DECLINED"
        # Every one reached the gateway once, and the breaker stayed closed.
        assert await _charges_reaching_payments(stack) == charges + len(orders)
        assert not await _breaker_open(stack)

    async def at_rest() -> bool:  # the confirmations arrive through JetStream, a moment later
        return await violations(stack.database_url, [event_id]) == []

    await eventually(at_rest, 15)
