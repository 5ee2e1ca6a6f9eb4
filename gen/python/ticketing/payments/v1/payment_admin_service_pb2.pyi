from buf.validate import validate_pb2 as _validate_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class Mode(_message.Message):
    __slots__ = ("failure_rate", "decline_rate", "latency_ms", "settle_delay_ms")
    FAILURE_RATE_FIELD_NUMBER: _ClassVar[int]
    DECLINE_RATE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    SETTLE_DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    failure_rate: float
    decline_rate: float
    latency_ms: int
    settle_delay_ms: int
    def __init__(self, failure_rate: _Optional[float] = ..., decline_rate: _Optional[float] = ..., latency_ms: _Optional[int] = ..., settle_delay_ms: _Optional[int] = ...) -> None: ...

class SetModeRequest(_message.Message):
    __slots__ = ("failure_rate", "decline_rate", "latency_ms", "settle_delay_ms")
    FAILURE_RATE_FIELD_NUMBER: _ClassVar[int]
    DECLINE_RATE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    SETTLE_DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    failure_rate: float
    decline_rate: float
    latency_ms: int
    settle_delay_ms: int
    def __init__(self, failure_rate: _Optional[float] = ..., decline_rate: _Optional[float] = ..., latency_ms: _Optional[int] = ..., settle_delay_ms: _Optional[int] = ...) -> None: ...

class GetModeRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
