from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor

class PaymentMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYMENT_METHOD_UNSPECIFIED: _ClassVar[PaymentMethod]
    CARD: _ClassVar[PaymentMethod]
    BANK_TRANSFER: _ClassVar[PaymentMethod]
PAYMENT_METHOD_UNSPECIFIED: PaymentMethod
CARD: PaymentMethod
BANK_TRANSFER: PaymentMethod
