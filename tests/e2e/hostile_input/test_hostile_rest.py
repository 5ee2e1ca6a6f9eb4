"""Hostile input over REST, through Envoy's JSON transcoder on the public listener: generated JSON
with wrong types, huge numbers and strings, unknown fields; broken JSON and wrong content types;
odd ids, query strings, methods and paths. Whatever comes in, the answer is never a 5xx (Envoy's own
400/404/413/415 and the services' 4xx are fine), never hangs, and the mesh stays healthy and
consistent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stack import Stack
from tests.e2e import hostile
from tests.e2e.hostile import FUZZ, TIMEOUT, Raw, int32, int64, json_value, short_text, sometimes, text

# The name the case counts are reported under (see conftest.py).
SUITE = "hostile REST"


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.public_url, timeout=TIMEOUT, trust_env=False) as client:
        yield client


# gRPC codes that mean something broke, as a gRPC-speaking client would see them over HTTP.
BROKEN_GRPC = {"2", "4", "13", "14", "15"}


def send(
    client: httpx.Client, ledger: hostile.Ledger, method: str, url: str, **kwargs: Any
) -> httpx.Response:
    """Sends one request and reads the answer (a stream's first chunk only), failing on a 5xx, a
    broken grpc-status (a gRPC content type gets HTTP 200 whatever happened) or a hang; notes what a
    successful create made, for the invariant check."""
    try:
        with client.stream(method, url, **kwargs) as reply:
            if reply.status_code == 200 and url.split("?")[0].endswith(":watch"):
                body = next(reply.iter_raw(), b"")
            else:
                body = reply.read()
    except httpx.TimeoutException as exc:
        raise AssertionError(f"{method} {url[:200]} hung: {exc!r}") from exc
    what = (method, url[:200], reply.status_code, reply.headers, body[:500])
    assert reply.status_code < 500, what
    assert reply.headers.get("grpc-status") not in BROKEN_GRPC, what
    json_reply = reply.headers.get("content-type", "").startswith("application/json")
    if reply.status_code == 200 and json_reply and method == "POST" and url in ("/v1/events", "/v1/orders"):
        made = reply.json()["id"]
        (ledger.events if url == "/v1/events" else ledger.orders).add(made)
    return reply


# -- JSON fields: the right type with wild values, or any JSON at all --------------------------------


def either(typed: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a value of the field's type, now and then any JSON value."""
    return sometimes(typed, json_value(), odds=4)


def number() -> st.SearchStrategy[Any]:
    """A JSON number for an integer field: in range or not, as a number, a string or a raw token."""
    big = st.sampled_from([Raw(t) for t in ("1e400", "-1e400", str(2**70), str(2**64), "1.5", "-0", "1e2")])
    return st.one_of(int32(), int64(), int32().map(str), int64().map(str), big)


def enum(names: list[str]) -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from(names), int32(), text())


def timestamp() -> st.SearchStrategy[Any]:
    edges = [
        "2025-06-01T20:00:00Z",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "10000-01-01T00:00:00Z",
        "2025-13-45T99:99:99Z",
        "yesterday",
        "",
    ]
    return st.one_of(st.sampled_from(edges), text())


def obj(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """A JSON object with any of `fields` (each wild or wrong), and now and then unknown ones."""
    extra = st.dictionaries(
        st.one_of(st.sampled_from(["unknownField", "id", "@type"]), text()), json_value(), max_size=2
    )
    known = st.fixed_dictionaries({}, optional={name: either(value) for name, value in fields.items()})
    return st.builds(lambda k, x: {**x, **k}, known, sometimes(st.just({}), extra, odds=5))


def money() -> st.SearchStrategy[Any]:
    currency = st.one_of(st.sampled_from(["EUR", "eur", "EU", "\u20ac"]), text())
    return obj({"currencyCode": currency, "units": number(), "nanos": number()})


def event_body(known: hostile.Known) -> st.SearchStrategy[Any]:
    ticket_type = obj({"name": st.one_of(st.just("GA"), text()), "price": money(), "capacity": number()})
    return obj(
        {
            "id": st.one_of(st.just(""), text()),
            "displayName": text(),
            "display_name": text(),
            "venue": text(),
            "startTime": timestamp(),
            "ticketTypes": sometimes(
                st.lists(ticket_type, max_size=3), st.lists(ticket_type, min_size=51, max_size=52)
            ),
            "createTime": timestamp(),
        }
    )


def user_body(known: hostile.Known) -> st.SearchStrategy[Any]:
    email = st.one_of(st.emails(), text(), st.builds(lambda s: f"{s}@example.com", text()))
    return obj({"email": email, "name": text(), "id": text(), "createTime": timestamp()})


def order_body(known: hostile.Known) -> st.SearchStrategy[Any]:
    return obj(
        {
            "requestId": text(),
            "userId": hostile.id_text(known["user"]),
            "eventId": hostile.id_text(known["event"]),
            "ticketType": st.one_of(st.just("GA"), text()),
            "quantity": number(),
            "strategy": enum(["COMPARE_AND_SET", "OPTIMISTIC", "PESSIMISTIC", "STRATEGY_UNSPECIFIED"]),
        }
    )


def pay_body(known: hostile.Known) -> st.SearchStrategy[Any]:
    method = enum(["CARD", "BANK_TRANSFER", "PAYMENT_METHOD_UNSPECIFIED", "CASH"])
    return obj({"requestId": text(), "paymentMethod": method, "orderId": hostile.id_text(known["order"])})


def cancel_body(known: hostile.Known) -> st.SearchStrategy[Any]:
    return obj({"requestId": text(), "orderId": hostile.id_text(known["order"])})


def path_id(known: list[str]) -> st.SearchStrategy[str]:
    """A path segment: a real id, anything percent-encoded, or characters that confuse routers."""
    raw = st.sampled_from(["..", ".", "%2F", "%00", "%", "%zz", "a/b", "a;b", "%E2%80%AE", "~", "*", "%20"])
    return st.one_of(st.sampled_from(known), short_text().map(lambda s: quote(s, safe="")), raw)


# (method, path with {id}, the kind of id, the body strategy) for every public POST route.
POSTS = {
    "CreateEvent": ("/v1/events", None, event_body),
    "CreateUser": ("/v1/users", None, user_body),
    "CreateOrder": ("/v1/orders", None, order_body),
    "PayOrder": ("/v1/orders/{id}:pay", "order", pay_body),
    "CancelOrder": ("/v1/orders/{id}:cancel", "order", cancel_body),
}
# (path with {id}, the kind of id, the query parameters it knows) for every public GET route.
GETS = {
    "WhoAmI": ("/v1/whoami", None, []),
    "ListEvents": ("/v1/events", None, ["pageSize", "pageToken"]),
    "GetEvent": ("/v1/events/{id}", "event", []),
    "GetAvailability": ("/v1/events/{id}/availability", "event", []),
    "WatchAvailability": ("/v1/events/{id}/availability:watch", "event", []),
    "GetUser": ("/v1/users/{id}", "user", []),
    "GetOrder": ("/v1/orders/{id}", "order", []),
    "ListOrders": ("/v1/orders", None, ["userId", "eventId", "pageSize", "pageToken"]),
    "ListNotifications": ("/v1/notifications", None, ["userId", "orderId", "pageSize", "pageToken"]),
}


def post_url(known: hostile.Known, route: str) -> st.SearchStrategy[str]:
    path, kind, _ = POSTS[route]
    if kind is None:
        return st.just(path)
    return path_id(known[kind]).map(lambda i: path.replace("{id}", i))


def idempotency_header() -> st.SearchStrategy[dict[str, str]]:
    value = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=140)
    return st.one_of(st.just({}), value.map(lambda v: {"Idempotency-Key": v}))


# -- the tests -------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", sorted(POSTS))
@settings(FUZZ, max_examples=100)
@given(data=st.data())
def test_generated_json_bodies_get_a_client_error_or_succeed(
    client: httpx.Client, known: hostile.Known, ledger: hostile.Ledger, route: str, data: st.DataObject
) -> None:
    url = data.draw(post_url(known, route), label="url")
    body = data.draw(sometimes(POSTS[route][2](known), json_value(), odds=8), label="body")
    headers = {"content-type": "application/json", **data.draw(idempotency_header(), label="headers")}
    ledger.count(f"test_generated_json_bodies[{route}]")
    send(client, ledger, "POST", url, content=hostile.dumps(body).encode(), headers=headers)


CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "application/json; charset=latin-1",
    "text/plain",
    "application/xml",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/grpc",
    "application/grpc+proto",
    "application/grpc-web",
    "application/grpc-web-text",
    "application/octet-stream",
    "application/x-protobuf",
    "",
    "*/*",
    "\u00e9",
]


def broken_body(known: hostile.Known, route: str) -> st.SearchStrategy[bytes]:
    """Bytes that are not the JSON the route wants: cut short, not UTF-8, nested too deep, huge."""
    valid = POSTS[route][2](known).map(lambda b: hostile.dumps(b).encode())
    return st.one_of(
        st.builds(lambda b, cut: b[: cut % max(len(b), 1)], valid, st.integers(0, 10_000)),
        st.binary(max_size=200),
        st.sampled_from(
            [
                b"",
                b"{",
                b'{"',
                b"}",
                b"{'displayName': 'single quotes'}",
                b'{"name": "\xff\xfe"}',
                b'\xef\xbb\xbf{"name": "BOM"}',
                b'{"a":1,"a":2}',
                b"[" * 5000 + b"]" * 5000,
                b'{"x":' * 3000 + b"1" + b"}" * 3000,
                b'{"displayName": "' + b"x" * 3_000_000 + b'"}',
                b"null",
                b"\x00" * 10,
            ]
        ),
    )


@pytest.mark.parametrize("route", sorted(POSTS))
@settings(FUZZ, max_examples=40)
@given(data=st.data())
def test_broken_bodies_and_content_types_are_4xx(
    client: httpx.Client, known: hostile.Known, ledger: hostile.Ledger, route: str, data: st.DataObject
) -> None:
    url = data.draw(post_url(known, route), label="url")
    body = data.draw(broken_body(known, route) | POSTS[route][2](known).map(lambda b: json.dumps(b).encode()))
    content_type = data.draw(st.sampled_from(CONTENT_TYPES), label="content-type")
    ledger.count(f"test_broken_bodies[{route}]")
    send(client, ledger, "POST", url, content=body, headers={"content-type": content_type.encode("latin-1")})


def query(names: list[str], known: hostile.Known) -> st.SearchStrategy[list[tuple[str, str]]]:
    """Query parameters: the route's own with wild values, and unknown ones."""
    value = st.one_of(
        short_text(), number().map(str), st.sampled_from(known["user"] + known["event"] + known["order"])
    )
    name = st.one_of(
        st.sampled_from([*names, "pageSize", "page_size", "filter", "$alt", "fields"]), short_text()
    )
    return st.lists(st.tuples(name, value), max_size=5)


@pytest.mark.parametrize("route", sorted(GETS))
@settings(FUZZ, max_examples=50)
@given(data=st.data())
def test_generated_paths_and_queries_get_a_client_error_or_succeed(
    client: httpx.Client, known: hostile.Known, ledger: hostile.Ledger, route: str, data: st.DataObject
) -> None:
    path, kind, names = GETS[route]
    if kind is not None:
        path = path.replace("{id}", data.draw(path_id(known[kind]), label="id"))
    params = data.draw(query(names, known), label="query")
    ledger.count(f"test_generated_paths_and_queries[{route}]")
    send(client, ledger, "GET", path, params=params)


WEIRD_PATHS = [
    "/",
    "/v1",
    "/v1/",
    "/v1/events/",
    "/v1/events//availability",
    "/v1/orders/x:refund",
    "/v1/orders/x:pay:pay",
    "/v1/events/%2e%2e/%2e%2e/admin",
    "/V1/EVENTS",
    "/v2/events",
    "/admin/v1/payments/mode",
    "/ticketing.inventory.v1.InventoryService/GetEvent",
    "/ticketing.inventory.v1.ReservationService/Reserve",
    "/ticketing.payments.v1.PaymentService/CreateCharge",
    "/grpc.health.v1.Health/Check",
    "/stats/prometheus",
    "/clusters",
    "/" + "a" * 20_000,
]


@settings(FUZZ, max_examples=200)
@given(
    method=st.sampled_from(
        ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE", "PROPFIND", "FOO"]
    ),
    path=st.one_of(
        st.sampled_from(WEIRD_PATHS),
        st.sampled_from([p for p, _, _ in POSTS.values()] + [p for p, _, _ in GETS.values()]).map(
            lambda p: p.replace("{id}", "x")
        ),
        st.lists(short_text().map(lambda s: quote(s, safe="")), min_size=1, max_size=4).map(
            # A leading "//" would name a host, not a path: httpx refuses to send it.
            lambda s: "/" + "/".join(s) if s[0] else "/./" + "/".join(s[1:])
        ),
    ),
    body=st.one_of(st.none(), st.just(b"{}"), st.binary(max_size=50)),
)
def test_wrong_methods_and_weird_paths_are_4xx(
    client: httpx.Client, ledger: hostile.Ledger, method: str, path: str, body: bytes | None
) -> None:
    ledger.count("test_wrong_methods_and_weird_paths")
    send(client, ledger, method, path, content=body, headers={"content-type": "application/json"})


INTERNAL_PATHS = [
    "/ticketing.inventory.v1.ReservationService/Reserve",
    "/ticketing.inventory.v1.ReservationService/Release",
    "/ticketing.payments.v1.PaymentService/CreateCharge",
    "/ticketing.payments.v1.PaymentService/GetCharge",
    "/ticketing.payments.v1.PaymentAdminService/SetMode",
    "/admin/v1/payments/mode",
]


@pytest.mark.parametrize("path", INTERNAL_PATHS)
def test_internal_services_are_404_on_the_public_listener(
    client: httpx.Client, ledger: hostile.Ledger, path: str
) -> None:
    reply = send(
        client,
        ledger,
        "POST",
        path,
        content=b'{"declineRate": 1}',
        headers={"content-type": "application/json"},
    )
    assert reply.status_code == 404, reply.text


def test_zz_after_the_barrage_the_mesh_is_healthy_and_consistent(
    stack: Stack, ledger: hostile.Ledger
) -> None:
    """Runs last in this module (pytest keeps file order): the fuzz above did not hurt anything."""
    hostile.assert_healthy(stack)
    hostile.assert_invariants_hold(stack, ledger)
