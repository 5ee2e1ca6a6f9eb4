import datetime

from buf.validate import validate_pb2 as _validate_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.type import money_pb2 as _money_pb2
from ticketing.type.v1 import payment_method_pb2 as _payment_method_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Charge(_message.Message):
    __slots__ = ("id", "key", "order_id", "amount", "method", "status", "decline_reason", "create_time", "update_time")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[Charge.Status]
        APPROVED: _ClassVar[Charge.Status]
        DECLINED: _ClassVar[Charge.Status]
        PENDING: _ClassVar[Charge.Status]
        REFUNDED: _ClassVar[Charge.Status]
        VOIDED: _ClassVar[Charge.Status]
    STATUS_UNSPECIFIED: Charge.Status
    APPROVED: Charge.Status
    DECLINED: Charge.Status
    PENDING: Charge.Status
    REFUNDED: Charge.Status
    VOIDED: Charge.Status
    ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DECLINE_REASON_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    key: str
    order_id: str
    amount: _money_pb2.Money
    method: _payment_method_pb2.PaymentMethod
    status: Charge.Status
    decline_reason: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., key: _Optional[str] = ..., order_id: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., method: _Optional[_Union[_payment_method_pb2.PaymentMethod, str]] = ..., status: _Optional[_Union[Charge.Status, str]] = ..., decline_reason: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateChargeRequest(_message.Message):
    __slots__ = ("key", "order_id", "amount", "method")
    KEY_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    key: str
    order_id: str
    amount: _money_pb2.Money
    method: _payment_method_pb2.PaymentMethod
    def __init__(self, key: _Optional[str] = ..., order_id: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., method: _Optional[_Union[_payment_method_pb2.PaymentMethod, str]] = ...) -> None: ...

class RefundChargeRequest(_message.Message):
    __slots__ = ("charge_id",)
    CHARGE_ID_FIELD_NUMBER: _ClassVar[int]
    charge_id: str
    def __init__(self, charge_id: _Optional[str] = ...) -> None: ...

class GetChargeRequest(_message.Message):
    __slots__ = ("charge_id", "key")
    CHARGE_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    charge_id: str
    key: str
    def __init__(self, charge_id: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class VoidChargeRequest(_message.Message):
    __slots__ = ("key", "order_id")
    KEY_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    key: str
    order_id: str
    def __init__(self, key: _Optional[str] = ..., order_id: _Optional[str] = ...) -> None: ...

class ListChargesRequest(_message.Message):
    __slots__ = ("updated_after", "after_id", "updated_before", "page_size")
    UPDATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    AFTER_ID_FIELD_NUMBER: _ClassVar[int]
    UPDATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    updated_after: _timestamp_pb2.Timestamp
    after_id: str
    updated_before: _timestamp_pb2.Timestamp
    page_size: int
    def __init__(self, updated_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., after_id: _Optional[str] = ..., updated_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ...) -> None: ...

class ListChargesResponse(_message.Message):
    __slots__ = ("charges",)
    CHARGES_FIELD_NUMBER: _ClassVar[int]
    charges: _containers.RepeatedCompositeFieldContainer[Charge]
    def __init__(self, charges: _Optional[_Iterable[_Union[Charge, _Mapping]]] = ...) -> None: ...
