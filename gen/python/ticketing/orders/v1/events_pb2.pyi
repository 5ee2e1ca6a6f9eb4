import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from ticketing.orders.v1 import order_service_pb2 as _order_service_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OrderConfirmed(_message.Message):
    __slots__ = ("id", "occur_time", "order", "user_email", "user_name")
    ID_FIELD_NUMBER: _ClassVar[int]
    OCCUR_TIME_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    USER_EMAIL_FIELD_NUMBER: _ClassVar[int]
    USER_NAME_FIELD_NUMBER: _ClassVar[int]
    id: str
    occur_time: _timestamp_pb2.Timestamp
    order: _order_service_pb2.Order
    user_email: str
    user_name: str
    def __init__(self, id: _Optional[str] = ..., occur_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., order: _Optional[_Union[_order_service_pb2.Order, _Mapping]] = ..., user_email: _Optional[str] = ..., user_name: _Optional[str] = ...) -> None: ...

class OrderCancelled(_message.Message):
    __slots__ = ("id", "occur_time", "order", "user_email", "user_name")
    ID_FIELD_NUMBER: _ClassVar[int]
    OCCUR_TIME_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    USER_EMAIL_FIELD_NUMBER: _ClassVar[int]
    USER_NAME_FIELD_NUMBER: _ClassVar[int]
    id: str
    occur_time: _timestamp_pb2.Timestamp
    order: _order_service_pb2.Order
    user_email: str
    user_name: str
    def __init__(self, id: _Optional[str] = ..., occur_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., order: _Optional[_Union[_order_service_pb2.Order, _Mapping]] = ..., user_email: _Optional[str] = ..., user_name: _Optional[str] = ...) -> None: ...

class OrderExpired(_message.Message):
    __slots__ = ("id", "occur_time", "order", "user_email", "user_name")
    ID_FIELD_NUMBER: _ClassVar[int]
    OCCUR_TIME_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    USER_EMAIL_FIELD_NUMBER: _ClassVar[int]
    USER_NAME_FIELD_NUMBER: _ClassVar[int]
    id: str
    occur_time: _timestamp_pb2.Timestamp
    order: _order_service_pb2.Order
    user_email: str
    user_name: str
    def __init__(self, id: _Optional[str] = ..., occur_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., order: _Optional[_Union[_order_service_pb2.Order, _Mapping]] = ..., user_email: _Optional[str] = ..., user_name: _Optional[str] = ...) -> None: ...
