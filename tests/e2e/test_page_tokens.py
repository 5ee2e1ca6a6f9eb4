"""Page tokens through Envoy's REST listener: a real next_page_token of every listing, mutated by
hypothesis (bits flipped, cut, extended, its JSON position re-encoded with other or broken values,
with its MAC kept, dropped, forged, or made with the stack's real key), is refused with 400
INVALID_ARGUMENT on `page_token` unless it is the original token, which still pages correctly."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
import httpx
import pytest
import pytest_asyncio
from hypothesis import assume, given
from hypothesis import strategies as st

from stack import Stack
from stack.settings import PAGE_TOKEN_KEY_FILE
from tests.e2e import shop
from tests.e2e.hostile import FUZZ, TIMEOUT
from ticketing.inventory.v1 import inventory_service_pb2 as inv
from ticketing.inventory.v1 import inventory_service_pb2_grpc as inv_grpc
from ticketmesh import paging

MAC_BYTES = 32
# page_token's max_len in the protos.
MAX_TOKEN_CHARS = 512
B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# Any character a REST client can put in a query string (lone surrogates cannot be sent).
ANY_CHARACTER = st.characters(blacklist_categories=("Cs",))


@dataclass(frozen=True)
class Listing:
    """One List method, a real token from it, and the page that token leads to."""

    path: str
    # The request's filters as REST query parameters, and as the service signs them.
    params: dict[str, str]
    signed_filters: dict[str, str]
    # The name of the position class the service signs the token for.
    position: str
    token: str
    next_page_ids: list[str]

    def page(self, client: httpx.Client, token: str) -> httpx.Response:
        return client.get(self.path, params={**self.params, "pageSize": 1, "pageToken": token})


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def _mac(key: bytes, listing: Listing, payload: bytes) -> bytes:
    """The MAC as the services make it: over the listing, the query's filters and the position."""
    context = json.dumps([listing.position, sorted(listing.signed_filters.items())]).encode()
    return hmac.new(key, context + b"\0" + payload, hashlib.sha256).digest()


def _ids(reply: httpx.Response, items: str) -> list[str]:
    assert reply.status_code == 200, reply.text
    return [item["id"] for item in reply.json()[items]]


async def _listing(
    rest: httpx.AsyncClient,
    path: str,
    items: str,
    params: dict[str, str],
    signed: dict[str, str],
    position: str,
) -> Listing:
    first = await rest.get(path, params={**params, "pageSize": 1})
    assert first.status_code == 200, first.text
    token = first.json()["nextPageToken"]
    second = await rest.get(path, params={**params, "pageSize": 1, "pageToken": token})
    return Listing(path, params, signed, position, token, _ids(second, items))


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def listings(stack: Stack) -> dict[str, Listing]:
    """Two rows in each listing (more events, made by other tests, do no harm)."""
    async with httpx.AsyncClient(base_url=stack.public_url, timeout=30, trust_env=False) as rest:
        return await _make_listings(rest)


async def _make_listings(rest: httpx.AsyncClient) -> dict[str, Listing]:
    event_id = await shop.new_event(rest, capacity=10)
    await shop.new_event(rest, capacity=10)
    user_id = await shop.new_user(rest)
    orders = [await shop.new_order(rest, user_id, event_id) for _ in range(2)]
    # A cancelled order is announced, and notify writes the buyer one notification for it.
    for order in orders:
        reply = await rest.post(f"/v1/orders/{order['id']}:cancel", json={})
        assert reply.status_code == 200, reply.text

    async def both_notified() -> bool:
        reply = await rest.get("/v1/notifications", params={"userId": user_id})
        return reply.status_code == 200 and len(reply.json().get("notifications", [])) == 2

    await shop.eventually(both_notified, seconds=30)
    by_user = {"userId": user_id}
    return {
        "events": await _listing(rest, "/v1/events", "events", {}, {}, "EventsAfter"),
        "orders": await _listing(
            rest, "/v1/orders", "orders", by_user, {"user_id": user_id, "event_id": ""}, "OrdersAfter"
        ),
        "notifications": await _listing(
            rest,
            "/v1/notifications",
            "notifications",
            by_user,
            {"user_id": user_id, "order_id": ""},
            "NotificationsAfter",
        ),
    }


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.public_url, timeout=TIMEOUT, trust_env=False) as client:
        yield client


@pytest.fixture(scope="module")
def key(stack: Stack) -> bytes:
    return bytes.fromhex((stack.state_dir / PAGE_TOKEN_KEY_FILE).read_text().strip())


# -- mutations ---------------------------------------------------------------------------------------


def _is_time(value: object) -> bool:
    try:
        return isinstance(value, str) and datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


WRONG_TYPES = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
BAD_TIMES = st.one_of(
    st.sampled_from(
        [
            "not-a-time",
            "10000-01-01T00:00:00+00:00",
            "0000-01-01T00:00:00+00:00",
            "9999-12-31T23:30:00-01:00",  # year 10000 in UTC
            "0001-01-01T00:30:00+01:00",  # year 0 in UTC
            "2025-01-01T00:00:00",  # no offset
            "2025-02-30T00:00:00+00:00",
            "",
        ]
    ),
    st.integers(),
    WRONG_TYPES,
)
BAD_IDS = st.one_of(
    st.tuples(st.text(max_size=10), st.text(max_size=10)).map(lambda parts: f"{parts[0]}\0{parts[1]}"),
    st.text(min_size=paging.MAX_ID_LENGTH + 1, max_size=paging.MAX_ID_LENGTH + 40),
    st.just(""),
    st.just("\ud800"),  # JSON can spell a lone surrogate; Postgres cannot store it
    st.integers(),
    WRONG_TYPES,
)
BAD_INTS = st.one_of(
    st.integers(max_value=-1),
    st.integers(min_value=2**63),
    st.sampled_from(["1", "", "9" * 30]),
    WRONG_TYPES,
)


def _bad_value(original: object) -> st.SearchStrategy[Any]:
    """A value the field of `original` must not take."""
    if isinstance(original, int):
        return BAD_INTS
    return BAD_TIMES if _is_time(original) else BAD_IDS


def _any_value(original: object) -> st.SearchStrategy[Any]:
    """Another value of the same kind (a forger's jump elsewhere in the listing), or a bad one."""
    if isinstance(original, int):
        same_kind = st.integers(min_value=0, max_value=2**63 - 1)
    elif _is_time(original):
        same_kind = st.datetimes(timezones=st.just(UTC)).map(datetime.isoformat)
    else:
        same_kind = st.text(min_size=1, max_size=paging.MAX_ID_LENGTH).filter(lambda s: "\0" not in s)
    return st.one_of(same_kind, _bad_value(original))


@st.composite
def _broken_position(draw: st.DrawFn, position: dict[str, Any], value: Any) -> bytes:
    """The position's JSON with one field changed (to a draw from `value`), dropped, or joined by
    another field; or a payload that is not a position at all."""
    field = draw(st.sampled_from(sorted(position)))
    how = draw(st.sampled_from(["change", "change", "change", "drop", "add", "not an object", "not JSON"]))
    if how == "change":
        return json.dumps({**position, field: draw(value(position[field]))}).encode()
    if how == "drop":
        return json.dumps({k: v for k, v in position.items() if k != field}).encode()
    if how == "add":
        extra = draw(st.text(min_size=1, max_size=8).filter(lambda name: name not in position))
        return json.dumps({**position, extra: 1}).encode()
    if how == "not an object":
        return json.dumps(
            draw(st.one_of(st.lists(st.integers(), max_size=3), st.integers(), st.none()))
        ).encode()
    return draw(st.binary(min_size=1, max_size=40))


@st.composite
def forged_tokens(draw: st.DrawFn, listing: Listing, key: bytes) -> tuple[str, str | None]:
    """A mutation of the listing's token, and the refusal it must get when the service reads it
    (None: any refusal; some are refused before the token is read, e.g. a NUL or too long)."""
    token = listing.token
    raw = _unb64(token)
    mac, payload = raw[:MAC_BYTES], raw[MAC_BYTES:]
    position = json.loads(payload)
    kind = draw(
        st.sampled_from(
            ["flip bits", "cut", "extend", "replace a character", "new position", "bad position, real key"]
        )
    )
    if kind == "flip bits":
        bits = draw(st.lists(st.integers(0, len(raw) * 8 - 1), min_size=1, max_size=4, unique=True))
        flipped = bytearray(raw)
        for bit in bits:
            flipped[bit // 8] ^= 1 << (bit % 8)
        return _b64(bytes(flipped)), paging.NOT_OURS
    if kind == "cut":
        # The empty token is the first page, not a mutation of this one.
        return token[: draw(st.integers(1, len(token) - 1))], paging.NOT_OURS
    if kind == "extend":
        tail = draw(
            st.one_of(
                st.text(B64_ALPHABET, min_size=1, max_size=40),
                st.text(ANY_CHARACTER, min_size=1, max_size=100),
            )
        )
        return token + tail, None
    if kind == "replace a character":
        at = draw(st.integers(0, len(token) - 1))
        other = draw(st.one_of(st.sampled_from(B64_ALPHABET), ANY_CHARACTER))
        return token[:at] + other + token[at + 1 :], None
    if kind == "new position":
        # Another position, even a valid one, under a MAC the service did not make for it.
        changed = draw(_broken_position(position, _any_value))
        seal = draw(
            st.sampled_from(["original MAC", "no MAC", "random MAC", "other key", "real key, no context"])
        )
        if seal == "original MAC":
            forged = mac + changed
        elif seal == "no MAC":
            forged = changed
        elif seal == "random MAC":
            forged = secrets.token_bytes(MAC_BYTES) + changed
        elif seal == "other key":
            forged = _mac(secrets.token_bytes(32), listing, changed) + changed
        else:
            forged = hmac.new(key, changed, hashlib.sha256).digest() + changed
        return _b64(forged), paging.NOT_OURS
    # Signed with the stack's own key, as a holder of a leaked key could: the MAC verifies, and the
    # position must still be read strictly, before any SQL.
    broken = draw(_broken_position(position, _bad_value))
    return _b64(_mac(key, listing, broken) + broken), paging.UNREADABLE


def _assert_refused(reply: httpx.Response, token: str, says: str | None) -> None:
    what = (token, reply.status_code, reply.text[:500])
    assert reply.status_code == 400, what
    body = reply.json()
    assert body["code"] == 3, what  # INVALID_ARGUMENT
    violations = [
        violation
        for detail in body.get("details", [])
        if detail["@type"].endswith("google.rpc.BadRequest")
        for violation in detail["fieldViolations"]
    ]
    assert "page_token" in [v["field"] for v in violations], what
    # A longer token is refused by the request's own rule (max_len) before the service reads it.
    if says is not None and len(token) <= MAX_TOKEN_CHARS:
        assert [v["description"] for v in violations if v["field"] == "page_token"] == [says], what


# -- tests -------------------------------------------------------------------------------------------

LISTINGS = ["events", "orders", "notifications"]


@pytest.mark.parametrize("name", LISTINGS)
def test_the_tests_signer_makes_the_services_tokens(
    listings: dict[str, Listing], key: bytes, name: str
) -> None:
    """Else the real-key cases below would be refused for their MAC, proving nothing."""
    listing = listings[name]
    payload = _unb64(listing.token)[MAC_BYTES:]
    assert _b64(_mac(key, listing, payload) + payload) == listing.token


@pytest.mark.parametrize("name", LISTINGS)
@FUZZ
@given(data=st.data())
def test_every_mutated_token_is_refused(
    listings: dict[str, Listing], key: bytes, client: httpx.Client, name: str, data: st.DataObject
) -> None:
    listing = listings[name]
    token, says = data.draw(forged_tokens(listing, key), label="mutation")
    assume(token != listing.token)
    _assert_refused(listing.page(client, token), token, says)


@pytest.mark.parametrize("name", LISTINGS)
def test_the_original_token_still_pages(
    listings: dict[str, Listing], client: httpx.Client, name: str
) -> None:
    listing = listings[name]
    items = listing.path.rsplit("/", 1)[-1]
    assert listing.next_page_ids
    assert _ids(listing.page(client, listing.token), items) == listing.next_page_ids


async def test_a_token_only_continues_its_own_query(
    listings: dict[str, Listing], rest: httpx.AsyncClient
) -> None:
    orders = listings["orders"]
    reply = await rest.get(
        orders.path, params={"userId": await shop.new_user(rest), "pageSize": 1, "pageToken": orders.token}
    )
    _assert_refused(reply, orders.token, paging.NOT_OURS)
    # Another listing's token, however valid there, is not a position here.
    reply = await rest.get(
        "/v1/notifications", params={**listings["notifications"].params, "pageToken": orders.token}
    )
    _assert_refused(reply, orders.token, paging.NOT_OURS)


def test_every_replica_reads_the_others_tokens(listings: dict[str, Listing], stack: Stack) -> None:
    """One key per stack: a next page may land on any replica."""
    events = listings["events"]
    replicas = stack.replicas("inventory")
    assert len(replicas) >= 2
    for replica in replicas:
        with grpc.insecure_channel(stack.grpc_address(replica)) as channel:
            page = inv_grpc.InventoryServiceStub(channel).ListEvents(
                inv.ListEventsRequest(page_size=1, page_token=events.token), timeout=TIMEOUT
            )
        assert [e.id for e in page.events] == events.next_page_ids, replica
