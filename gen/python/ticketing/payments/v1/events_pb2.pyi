import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from ticketing.payments.v1 import payment_service_pb2 as _payment_service_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ChargeSettled(_message.Message):
    __slots__ = ("id", "occur_time", "charge")
    ID_FIELD_NUMBER: _ClassVar[int]
    OCCUR_TIME_FIELD_NUMBER: _ClassVar[int]
    CHARGE_FIELD_NUMBER: _ClassVar[int]
    id: str
    occur_time: _timestamp_pb2.Timestamp
    charge: _payment_service_pb2.Charge
    def __init__(self, id: _Optional[str] = ..., occur_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., charge: _Optional[_Union[_payment_service_pb2.Charge, _Mapping]] = ...) -> None: ...
