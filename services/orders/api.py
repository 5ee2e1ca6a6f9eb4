"""Orders' gRPC servicers: requests in, use cases called, protos out; no SQL here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
from loguru import logger

from services.orders import keys
from services.orders.domain import new_user_id
from services.orders.purchase import Outcome, Purchase
from services.orders.store import OrdersStore
from ticketing.orders.v1 import order_service_pb2 as order_pb2
from ticketing.orders.v1 import order_service_pb2_grpc as order_grpc
from ticketing.orders.v1 import user_service_pb2 as user_pb2
from ticketing.orders.v1 import user_service_pb2_grpc as user_grpc
from ticketmesh import context as call_context
from ticketmesh import idempotency, paging
from ticketmesh.errors import AlreadyExists, ServiceError
from ticketmesh.paging import PageTokens


async def _answer(outcome: Outcome, context: grpc.aio.ServicerContext, step: str) -> order_pb2.Order:
    """The order as the answer; logs the step (with the order id, from here on in every line)."""
    order = outcome.order
    call_context.order_id.set(order.id)
    if outcome.replayed:
        await idempotency.mark_replayed(context)
    status = order_pb2.Order.Status.Name(order.status)
    logger.bind(
        status=status, event_id=order.event_id, ticket_type=order.ticket_type, quantity=order.quantity
    ).info("order {}{}", step, " (stored answer given again)" if outcome.replayed else "")
    return order


def _log_failure(step: str, err: ServiceError) -> None:
    logger.info("order not {}: {} ({})", step, err.reason, err.message)


class UserApi(user_grpc.UserServiceServicer):
    def __init__(self, store: OrdersStore):
        self.store = store

    async def CreateUser(
        self, request: user_pb2.CreateUserRequest, context: grpc.aio.ServicerContext
    ) -> user_pb2.User:
        key = idempotency.request_key(request.request_id, context)
        user_id = new_user_id()
        if key:
            claim = await keys.claim(
                self.store.pool, "CreateUser", key, idempotency.fingerprint(request), user_id
            )
            if claim.error is not None:
                raise keys.StoredError(claim.error)
            if claim.replay is not None:
                await idempotency.mark_replayed(context)
                return user_pb2.User.FromString(claim.replay)
            user_id = claim.resource_id
        try:
            async with self.store.pool.connection() as conn, conn.transaction():
                user = await self.store.create_user(
                    conn, user_id, request.user.email.strip(), request.user.name
                )
                if key:
                    await keys.finish(conn, "CreateUser", key, user.SerializeToString())
        except AlreadyExists as err:
            if key:  # a final answer: a repeat gets it again
                async with self.store.pool.connection() as conn:
                    await keys.finish_with_error(conn, "CreateUser", key, err)
            raise
        except BaseException:
            if key:
                keys.let_go_after(self.store.pool, "CreateUser", key)
            raise
        return user

    async def GetUser(
        self, request: user_pb2.GetUserRequest, context: grpc.aio.ServicerContext
    ) -> user_pb2.User:
        return await self.store.get_user(request.user_id)


@dataclass(frozen=True)
class OrdersAfter:
    """Where a ListOrders page ended: its last order in (create_time, id) order."""

    create_time: datetime
    id: str


class OrderApi(order_grpc.OrderServiceServicer):
    def __init__(self, store: OrdersStore, purchase: Purchase, page_tokens: PageTokens):
        self.store = store
        self.purchase = purchase
        self.page_tokens = page_tokens

    async def CreateOrder(
        self, request: order_pb2.CreateOrderRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.Order:
        key = idempotency.request_key(request.request_id, context)
        try:
            outcome = await self.purchase.create(request, key, idempotency.fingerprint(request))
        except ServiceError as err:
            _log_failure("created", err)
            raise
        return await _answer(outcome, context, "created")

    async def GetOrder(
        self, request: order_pb2.GetOrderRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.Order:
        return await self.store.get_order(request.order_id)

    async def ListOrders(
        self, request: order_pb2.ListOrdersRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.ListOrdersResponse:
        size = paging.page_size(request.page_size)
        filters = {"user_id": request.user_id, "event_id": request.event_id}
        after = self.page_tokens.decode(request.page_token, OrdersAfter, filters)
        orders = await self.store.list_orders(
            request.user_id, request.event_id, (after.create_time, after.id) if after else None, size + 1
        )
        page, more = orders[:size], len(orders) > size
        token = ""
        if more:
            last = page[-1]
            token = self.page_tokens.encode(
                OrdersAfter(last.create_time.ToDatetime(tzinfo=UTC), last.id), filters
            )
        return order_pb2.ListOrdersResponse(orders=page, next_page_token=token)

    async def PayOrder(
        self, request: order_pb2.PayOrderRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.Order:
        key = idempotency.request_key(request.request_id, context)
        call_context.order_id.set(request.order_id)
        try:
            outcome = await self.purchase.pay(request, key)
        except ServiceError as err:
            _log_failure("paid", err)
            raise
        confirmed = outcome.order.status == order_pb2.Order.CONFIRMED
        return await _answer(outcome, context, "paid and confirmed" if confirmed else "payment pending")

    async def CancelOrder(
        self, request: order_pb2.CancelOrderRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.Order:
        idempotency.request_key(request.request_id, context)  # cancelling is idempotent by itself
        call_context.order_id.set(request.order_id)
        try:
            outcome = await self.purchase.cancel(request.order_id)
        except ServiceError as err:
            _log_failure("cancelled", err)
            raise
        return await _answer(outcome, context, "cancelled")
