import datetime

from buf.validate import validate_pb2 as _validate_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.type import money_pb2 as _money_pb2
from ticketing.type.v1 import payment_method_pb2 as _payment_method_pb2
from ticketing.type.v1 import reservation_strategy_pb2 as _reservation_strategy_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Order(_message.Message):
    __slots__ = ("id", "user_id", "event_id", "ticket_type", "quantity", "status", "amount", "strategy", "expire_time", "payment_method", "charge_id", "refunded", "create_time", "update_time")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[Order.Status]
        PENDING_PAYMENT: _ClassVar[Order.Status]
        PAYMENT_IN_PROGRESS: _ClassVar[Order.Status]
        CONFIRMED: _ClassVar[Order.Status]
        CANCELLED: _ClassVar[Order.Status]
        EXPIRED: _ClassVar[Order.Status]
    STATUS_UNSPECIFIED: Order.Status
    PENDING_PAYMENT: Order.Status
    PAYMENT_IN_PROGRESS: Order.Status
    CONFIRMED: Order.Status
    CANCELLED: Order.Status
    EXPIRED: Order.Status
    ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    TICKET_TYPE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_METHOD_FIELD_NUMBER: _ClassVar[int]
    CHARGE_ID_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    user_id: str
    event_id: str
    ticket_type: str
    quantity: int
    status: Order.Status
    amount: _money_pb2.Money
    strategy: _reservation_strategy_pb2.ReservationStrategy
    expire_time: _timestamp_pb2.Timestamp
    payment_method: _payment_method_pb2.PaymentMethod
    charge_id: str
    refunded: bool
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., user_id: _Optional[str] = ..., event_id: _Optional[str] = ..., ticket_type: _Optional[str] = ..., quantity: _Optional[int] = ..., status: _Optional[_Union[Order.Status, str]] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., strategy: _Optional[_Union[_reservation_strategy_pb2.ReservationStrategy, str]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., payment_method: _Optional[_Union[_payment_method_pb2.PaymentMethod, str]] = ..., charge_id: _Optional[str] = ..., refunded: _Optional[bool] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateOrderRequest(_message.Message):
    __slots__ = ("request_id", "user_id", "event_id", "ticket_type", "quantity", "strategy")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    TICKET_TYPE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    user_id: str
    event_id: str
    ticket_type: str
    quantity: int
    strategy: _reservation_strategy_pb2.ReservationStrategy
    def __init__(self, request_id: _Optional[str] = ..., user_id: _Optional[str] = ..., event_id: _Optional[str] = ..., ticket_type: _Optional[str] = ..., quantity: _Optional[int] = ..., strategy: _Optional[_Union[_reservation_strategy_pb2.ReservationStrategy, str]] = ...) -> None: ...

class GetOrderRequest(_message.Message):
    __slots__ = ("order_id",)
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    def __init__(self, order_id: _Optional[str] = ...) -> None: ...

class ListOrdersRequest(_message.Message):
    __slots__ = ("user_id", "event_id", "page_size", "page_token")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    event_id: str
    page_size: int
    page_token: str
    def __init__(self, user_id: _Optional[str] = ..., event_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListOrdersResponse(_message.Message):
    __slots__ = ("orders", "next_page_token")
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    orders: _containers.RepeatedCompositeFieldContainer[Order]
    next_page_token: str
    def __init__(self, orders: _Optional[_Iterable[_Union[Order, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class PayOrderRequest(_message.Message):
    __slots__ = ("order_id", "request_id", "payment_method")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_METHOD_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    request_id: str
    payment_method: _payment_method_pb2.PaymentMethod
    def __init__(self, order_id: _Optional[str] = ..., request_id: _Optional[str] = ..., payment_method: _Optional[_Union[_payment_method_pb2.PaymentMethod, str]] = ...) -> None: ...

class CancelOrderRequest(_message.Message):
    __slots__ = ("order_id", "request_id")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    request_id: str
    def __init__(self, order_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...
