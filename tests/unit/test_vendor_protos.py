"""The validate.proto we print from protovalidate's descriptor compiles to the same structure."""

from google.protobuf import descriptor_pb2

from buf.validate import validate_pb2
from tools.vendor_protos import _validate_descriptor


def test_printed_validate_proto_keeps_every_message_and_field_number() -> None:
    original = _validate_descriptor()
    compiled = descriptor_pb2.FileDescriptorProto()
    validate_pb2.DESCRIPTOR.CopyToProto(compiled)
    assert compiled.package == original.package

    def shape(fd: descriptor_pb2.FileDescriptorProto) -> dict[str, set[tuple[str, int, int]]]:
        return {m.name: {(f.name, f.number, f.type) for f in m.field} for m in fd.message_type}

    assert shape(compiled) == shape(original)
    assert {(e.name, e.number) for e in compiled.extension} == {
        (e.name, e.number) for e in original.extension
    }
