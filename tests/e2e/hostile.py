"""Hostile input for the fuzz suites (test_hostile_grpc.py, test_hostile_rest.py): hypothesis
strategies for odd-but-valid and plainly wrong values, the outcomes a healthy mesh may give, and the
end-of-suite checks (cases counted, services healthy, I1-I5 hold) both suites share."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import time
import uuid
from typing import Any, TypeVar

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from services.inventory.domain import MAX_PRICE_UNITS
from stack import Stack
from stack.invariants import violations

T = TypeVar("T")

# Every fuzz test runs under these: the mesh is slow next to hypothesis's default 200 ms deadline,
# and the strategies build big values on purpose. Failing examples are kept in .hypothesis/
# (gitignored), so the next run tries them first.
FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    print_blob=True,
)

# A call that takes longer than this has hung: nothing in the public API is that slow when healthy.
TIMEOUT = 10.0

# What a healthy mesh may answer to any request. UNAVAILABLE, INTERNAL, UNKNOWN, DATA_LOSS and
# DEADLINE_EXCEEDED mean something broke (or hung), whatever the input was.
ACCEPTABLE_CODES = frozenset(
    {
        grpc.StatusCode.OK,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# Strings people type at APIs to break them, and strings that break parsers, databases and logs.
NASTY_STRINGS = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "EVNT-\x00",
    "\t\r\n",
    "\ufeff",
    "\u202etxet",
    "\U0001f3ab" * 40,
    "Z\u0351\u0352\u0353" * 20,
    "' OR 1=1 --",
    "'; DROP TABLE orders; --",
    "%00",
    "%s%s%s%n",
    "{}",
    "../../../etc/passwd",
    "${jndi:ldap://x/a}",
    "<script>alert(1)</script>",
    "EVNT-ROCK-2025",
    "usr_" + "0" * 60,
    "ord_nope",
    "a" * 64,
    "a" * 65,
    "a" * 129,
    "x@y",
    "a@b.co",
    "\u0130stanbul@example.com",
    "NaN",
    "-1",
    "9" * 40,
]


def sometimes(
    common: st.SearchStrategy[T], rare: st.SearchStrategy[T], odds: int = 12
) -> st.SearchStrategy[T]:
    """`rare` about once in `odds` draws, else `common`: huge values are worth trying, but a request
    with one in every field only ever tests the length check."""
    return st.integers(1, odds).flatmap(lambda n: rare if n == 1 else common)


def huge_text() -> st.SearchStrategy[str]:
    """Far longer than any field allows: up to a few hundred kilobytes."""
    return st.builds(
        lambda unit, times: unit * times, st.text(min_size=1, max_size=3), st.integers(300, 100_000)
    )


def short_text() -> st.SearchStrategy[str]:
    """Any string short enough for a URL (clients refuse to send longer ones)."""
    return st.one_of(
        st.sampled_from(NASTY_STRINGS),
        st.text(max_size=40),
        st.text(alphabet=st.characters(codec="ascii"), max_size=70),
        st.from_regex(r"[A-Z0-9][A-Z0-9-]{2,20}", fullmatch=True),
        st.builds(lambda s: s + "\x00", st.text(max_size=5)),
    )


def text() -> st.SearchStrategy[str]:
    """Any string a client could send: unicode of every category but surrogates (protobuf cannot
    carry them), NUL bytes, the nasty classics, and now and then a huge one."""
    return sometimes(short_text(), huge_text())


def id_text(known: list[str]) -> st.SearchStrategy[str]:
    """An id field: often one that exists (so the request gets past NOT_FOUND), else anything."""
    return st.one_of(st.sampled_from(known), text()) if known else text()


def int32() -> st.SearchStrategy[int]:
    """Any int32, with the edges and the limits the API names drawn often."""
    edges = [0, 1, -1, 2, 10, 11, 50, 51, 999, 1000, 1001, 1_000_000, 1_000_001, INT32_MIN, INT32_MAX]
    return st.one_of(st.sampled_from(edges), st.integers(-20, 20), st.integers(INT32_MIN, INT32_MAX))


def int64() -> st.SearchStrategy[int]:
    edges = [0, 1, -1, INT64_MIN, INT64_MAX, INT32_MAX + 1, 10**15, 253402300799, 253402300800, -62135596801]
    return st.one_of(st.sampled_from(edges), st.integers(-1000, 1000), st.integers(INT64_MIN, INT64_MAX))


class Raw(str):
    """A JSON token written out as it is, to say what json.dumps will not (1e400, NaN, "\\ud800")."""


RAW_TOKENS = [
    "1e400",
    "-1e400",
    "1e-400",
    str(2**70),
    str(-(2**70)),
    str(2**64),
    "1.5",
    "-0",
    "0.0000001",
    "NaN",
    "Infinity",
    "-Infinity",
    "0x10",
    "00012",
    "1e2",
    '"1e400"',
    f'"{2**70}"',
    '"\\ud800"',
    '"\\udfff\\ud800"',
    '"\\u0000"',
    "true",
    "null",
    "[]",
    "{}",
]


def json_value() -> st.SearchStrategy[Any]:
    """Any JSON value, plus tokens a JSON parser should refuse or find too big (see dumps)."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**80), 2**80),
        st.floats(allow_nan=False, allow_infinity=False),
        text(),
        st.sampled_from([Raw(t) for t in RAW_TOKENS]),
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
        max_leaves=8,
    )


def dumps(value: Any) -> str:
    """JSON text for `value`, with Raw tokens copied in as they are."""

    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    return json.dumps(value)


# Real ids by kind (user, event, ticket_type, order), for strategies to draw from.
Known = dict[str, list[str]]


class Ledger:
    """What a suite created (so the invariants can be checked for exactly that) and how many cases
    each test ran (so the run can say so)."""

    def __init__(self) -> None:
        self.events: set[str] = set()
        self.orders: set[str] = set()
        self.cases: collections.Counter[str] = collections.Counter()

    def count(self, test: str) -> None:
        self.cases[test] += 1

    def report(self, config: pytest.Config, suite: str) -> None:
        """One line per test with its number of cases, shown even when pytest captures output."""
        total = sum(self.cases.values())
        lines = [f"{suite}: {n} cases in {name}" for name, n in sorted(self.cases.items())]
        lines.append(f"{suite}: {total} generated cases in total")
        capture = config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            print("\n" + "\n".join(lines))


def seed(stack: Stack) -> dict[str, list[str]]:
    """Real ids for the strategies to draw from: a user, an event with roomy stock (and a ticket type
    priced at the top of Money's range), an order."""
    with httpx.Client(base_url=stack.public_url, timeout=TIMEOUT, trust_env=False) as rest:
        user = rest.post(
            "/v1/users", json={"email": f"fuzz-{uuid.uuid4().hex[:10]}@example.com", "name": "F"}
        )
        assert user.status_code == 200, user.text
        event = rest.post(
            "/v1/events",
            json={
                "displayName": "Hostile input",
                "ticketTypes": [
                    {"name": "GA", "price": {"currencyCode": "EUR", "units": "10"}, "capacity": 1_000_000},
                    # The dearest ticket an event may have (EUR counts whole cents): orders of it
                    # must still be priced.
                    {
                        "name": "PRICEY",
                        "price": {"currencyCode": "EUR", "units": str(MAX_PRICE_UNITS), "nanos": 990_000_000},
                        "capacity": 1_000_000,
                    },
                ],
            },
        )
        assert event.status_code == 200, event.text
        user_id, event_id = user.json()["id"], event.json()["id"]
        order = rest.post(
            "/v1/orders", json={"userId": user_id, "eventId": event_id, "ticketType": "GA", "quantity": 1}
        )
        assert order.status_code == 200, order.text
    return {
        "user": [user_id],
        "event": [event_id],
        "order": [order.json()["id"]],
        "ticket_type": ["GA", "PRICEY"],
    }


def assert_healthy(stack: Stack) -> None:
    """Every service replica says SERVING and Envoy routes to every one of them."""
    for replica in stack.replicas():
        with grpc.insecure_channel(stack.grpc_address(replica)) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=TIMEOUT
            )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, replica
    for cluster, hosts in stack.envoy_hosts().items():
        for host, flags in hosts.items():
            assert flags == "healthy", (cluster, host, flags)


def assert_invariants_hold(stack: Stack, ledger: Ledger) -> None:
    """Cancels what the suite left unpaid, then waits (payments and notifications travel through
    JetStream) until I1-I5 hold for every event the suite created."""
    with httpx.Client(base_url=stack.public_url, timeout=TIMEOUT, trust_env=False) as rest:
        for order_id in sorted(ledger.orders):
            reply = rest.post(f"/v1/orders/{order_id}:cancel", json={})
            assert reply.status_code < 500, reply.text
    events = sorted(ledger.events)
    deadline = time.monotonic() + 30
    found = asyncio.run(violations(stack.database_url, events))
    while found and time.monotonic() < deadline:
        time.sleep(0.5)
        found = asyncio.run(violations(stack.database_url, events))
    assert found == [], found
