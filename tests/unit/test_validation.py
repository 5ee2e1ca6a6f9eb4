"""protovalidate rules in the protos reach clients as INVALID_ARGUMENT with field violations."""

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from ticketing.inventory.v1 import inventory_service_pb2 as inv
from ticketing.inventory.v1 import reservation_service_pb2 as res
from ticketmesh.errors import InvalidArgument
from ticketmesh.interceptor import validate


def test_valid_request_passes() -> None:
    validate(res.ReserveRequest(reservation_id="o1", event_id="E-1", ticket_type="GA", quantity=1))


@pytest.mark.parametrize("quantity", [0, -1, 1001, 2**31 - 1])
def test_quantity_out_of_range_names_the_field(quantity: int) -> None:
    with pytest.raises(InvalidArgument) as err:
        validate(res.ReserveRequest(reservation_id="o1", event_id="E-1", ticket_type="GA", quantity=quantity))
    assert [field for field, _ in err.value.violations] == ["quantity"]


def test_nested_violations_have_paths() -> None:
    request = inv.CreateEventRequest(
        event=inv.Event(display_name="", ticket_types=[inv.TicketType(name="GA", capacity=-1)])
    )
    with pytest.raises(InvalidArgument) as err:
        validate(request)
    fields = {field for field, _ in err.value.violations}
    assert fields == {"event.display_name", "event.ticket_types[0].price", "event.ticket_types[0].capacity"}


def test_status_carries_error_info_and_bad_request() -> None:
    with pytest.raises(InvalidArgument) as err:
        validate(inv.CreateEventRequest())
    status = err.value.to_status()
    kinds = [detail.type_url.rsplit("/", 1)[1] for detail in status.details]
    assert kinds == ["google.rpc.ErrorInfo", "google.rpc.BadRequest"]


def test_nul_in_any_string_is_invalid_argument_naming_the_field() -> None:
    # Postgres text cannot hold NUL: without this check such a request fails in a query, as INTERNAL.
    request = inv.CreateEventRequest(
        event=inv.Event(display_name="Rock\x00", ticket_types=[inv.TicketType(name="G\x00A")]),
        request_id="\x00",
    )
    with pytest.raises(InvalidArgument) as err:
        validate(request)
    nul = {field for field, why in err.value.violations if "NUL" in why}
    assert nul == {"event.display_name", "event.ticket_types[0].name", "request_id"}


@pytest.mark.parametrize(
    ("seconds", "nanos"), [(2**63 - 1, 0), (253_402_300_800, 0), (-62_135_596_801, 0), (0, -1), (0, 10**9)]
)
def test_timestamp_outside_its_range_is_invalid_argument(seconds: int, nanos: int) -> None:
    # No datetime can hold it: without this check CreateEvent failed converting it, as INTERNAL.
    event = inv.Event(id="", display_name="x", start_time=Timestamp(seconds=seconds, nanos=nanos))
    with pytest.raises(InvalidArgument) as err:
        validate(inv.CreateEventRequest(event=event))
    assert "event.start_time" in {field for field, _ in err.value.violations}
