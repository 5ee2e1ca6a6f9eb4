"""Notify's gRPC servicer: translates protos to store calls and back; no SQL here."""

from __future__ import annotations

from datetime import datetime

import grpc

from services.notify.domain import Notification
from services.notify.store import NotifyStore
from ticketing.notify.v1 import notification_service_pb2 as pb
from ticketing.notify.v1 import notification_service_pb2_grpc as pb_grpc
from ticketmesh import paging
from ticketmesh.errors import InvalidArgument
from ticketmesh.values import timestamp


def _notification_pb(n: Notification) -> pb.Notification:
    create_time = timestamp(n.create_time)
    return pb.Notification(
        id=n.id,
        kind=n.kind.value,  # enum fields take their value names
        user_id=n.user_id,
        order_id=n.order_id,
        recipient=n.recipient,
        subject=n.subject,
        body=n.body,
        create_time=create_time,
    )


def _after(position: dict[str, object] | None) -> tuple[datetime, str] | None:
    """The (create_time, id) a page token continues after."""
    if position is None:
        return None
    time, last_id = position.get("t"), position.get("id")
    if not isinstance(time, str) or not isinstance(last_id, str):
        raise InvalidArgument([("page_token", "is not a token this API gave out")])
    try:
        return datetime.fromisoformat(time), last_id
    except ValueError:
        raise InvalidArgument([("page_token", "is not a token this API gave out")]) from None


class NotificationApi(pb_grpc.NotificationServiceServicer):
    """The public NotificationService: read-only, newest first."""

    def __init__(self, store: NotifyStore):
        self.store = store

    async def ListNotifications(
        self, request: pb.ListNotificationsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListNotificationsResponse:
        # The interceptor has checked the request's rules, so at least one filter is given.
        size = paging.page_size(request.page_size)
        filters = {"user_id": request.user_id, "order_id": request.order_id}
        after = _after(paging.decode_token(request.page_token, expect=filters))
        rows = await self.store.list_notifications(
            user_id=request.user_id, order_id=request.order_id, after=after, limit=size + 1
        )
        page, more = rows[:size], len(rows) > size
        token = ""
        if more:
            last = page[-1]
            assert last.create_time is not None, "stored rows carry their create_time"
            token = paging.encode_token({**filters, "t": last.create_time.isoformat(), "id": last.id})
        return pb.ListNotificationsResponse(
            notifications=[_notification_pb(n) for n in page], next_page_token=token
        )
