from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor

class ReservationStrategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESERVATION_STRATEGY_UNSPECIFIED: _ClassVar[ReservationStrategy]
    COMPARE_AND_SET: _ClassVar[ReservationStrategy]
    OPTIMISTIC: _ClassVar[ReservationStrategy]
    PESSIMISTIC: _ClassVar[ReservationStrategy]
RESERVATION_STRATEGY_UNSPECIFIED: ReservationStrategy
COMPARE_AND_SET: ReservationStrategy
OPTIMISTIC: ReservationStrategy
PESSIMISTIC: ReservationStrategy
