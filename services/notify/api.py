"""Notify's gRPC servicer: translates protos to store calls and back; no SQL here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import grpc

from services.notify.domain import Notification
from services.notify.store import NotifyStore
from ticketing.notify.v1 import notification_service_pb2 as pb
from ticketing.notify.v1 import notification_service_pb2_grpc as pb_grpc
from ticketmesh import paging
from ticketmesh.paging import PageTokens
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


@dataclass(frozen=True)
class NotificationsAfter:
    """Where a ListNotifications page ended: its last row in (create_time, id) order."""

    create_time: datetime
    id: str


class NotificationApi(pb_grpc.NotificationServiceServicer):
    """The public NotificationService: read-only, newest first."""

    def __init__(self, store: NotifyStore, page_tokens: PageTokens):
        self.store = store
        self.page_tokens = page_tokens

    async def ListNotifications(
        self, request: pb.ListNotificationsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListNotificationsResponse:
        # The interceptor has checked the request's rules, so at least one filter is given.
        size = paging.page_size(request.page_size)
        filters = {"user_id": request.user_id, "order_id": request.order_id}
        after = self.page_tokens.decode(request.page_token, NotificationsAfter, filters)
        rows = await self.store.list_notifications(
            user_id=request.user_id,
            order_id=request.order_id,
            after=(after.create_time, after.id) if after else None,
            limit=size + 1,
        )
        page, more = rows[:size], len(rows) > size
        token = ""
        if more:
            last = page[-1]
            assert last.create_time is not None, "stored rows carry their create_time"
            token = self.page_tokens.encode(NotificationsAfter(last.create_time, last.id), filters)
        return pb.ListNotificationsResponse(
            notifications=[_notification_pb(n) for n in page], next_page_token=token
        )
