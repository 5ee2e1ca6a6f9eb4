"""Page sizes and signed, typed page tokens (AIP-158)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import stat
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from stack.settings import PAGE_TOKEN_KEY_FILE, page_token_key
from ticketmesh import paging
from ticketmesh.config import ConfigError, ServiceSettings
from ticketmesh.errors import InvalidArgument
from ticketmesh.paging import PageTokens

KEY = bytes(range(32))
FILTERS = {"user_id": "USR-1", "event_id": ""}


@dataclass(frozen=True)
class RowsAfter:
    create_time: datetime
    id: str


@dataclass(frozen=True)
class SeqAfter:
    seq: int


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def _signed(payload: bytes, position: type = RowsAfter, filters: dict[str, str] = FILTERS) -> str:
    """A token for any payload, signed the way the service signs (as a holder of the key could)."""
    context = json.dumps([position.__name__, sorted(filters.items())]).encode()
    return _b64(hmac.new(KEY, context + b"\0" + payload, hashlib.sha256).digest() + payload)


def _refused(token: str, position: type = RowsAfter, filters: dict[str, str] = FILTERS) -> str:
    """The description of the page_token violation decoding `token` raises."""
    with pytest.raises(InvalidArgument) as err:
        PageTokens(KEY).decode(token, position, filters)
    [(field, why)] = err.value.violations
    assert field == "page_token"
    return why


def test_page_size_defaults_and_coerces() -> None:
    assert paging.page_size(0) == paging.DEFAULT_PAGE_SIZE
    assert paging.page_size(-5) == paging.DEFAULT_PAGE_SIZE
    assert paging.page_size(7) == 7
    assert paging.page_size(10**9) == paging.MAX_PAGE_SIZE


def test_token_round_trips_into_typed_values() -> None:
    tokens = PageTokens(KEY)
    local = datetime(2025, 6, 1, 20, 30, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    back = tokens.decode(tokens.encode(RowsAfter(local, "ORD-1"), FILTERS), RowsAfter, FILTERS)
    assert back == RowsAfter(local, "ORD-1")
    assert back is not None and back.create_time.tzinfo == UTC
    assert tokens.decode(tokens.encode(SeqAfter(2**63 - 1), {}), SeqAfter, {}) == SeqAfter(2**63 - 1)
    assert tokens.decode("", RowsAfter, FILTERS) is None


def test_tokens_fit_the_request_field() -> None:
    """page_token is at most 512 characters in the protos; filters are signed, not carried."""
    longest = RowsAfter(datetime.max.replace(tzinfo=UTC), "x" * paging.MAX_ID_LENGTH)
    assert len(PageTokens(KEY).encode(longest, {"user_id": "u" * 64, "order_id": "o" * 64})) <= 512


def test_every_flipped_bit_is_refused() -> None:
    raw = _unb64(PageTokens(KEY).encode(RowsAfter(datetime.now(UTC), "ORD-1"), FILTERS))
    for bit in range(len(raw) * 8):
        flipped = bytearray(raw)
        flipped[bit // 8] ^= 1 << (bit % 8)
        assert _refused(_b64(bytes(flipped))) == paging.NOT_OURS


def test_other_spellings_of_the_same_bytes_are_refused() -> None:
    token = PageTokens(KEY).encode(SeqAfter(7), {})
    for spelling in (token + "=" * (-len(token) % 4), token + "\n", " " + token, token.replace("-", "+")):
        if spelling != token:
            assert _refused(spelling, SeqAfter, {}) == paging.NOT_OURS
    # The last character's unused low bits: another character, same bytes when decoded leniently.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twins = [token[:-1] + c for c in alphabet if c != token[-1]]
    lenient_twins = [t for t in twins if _unb64(t) == _unb64(token)]
    assert lenient_twins or len(token) % 4 == 0
    for twin in lenient_twins:
        assert _refused(twin, SeqAfter, {}) == paging.NOT_OURS


@pytest.mark.parametrize("garbage", ["%%%", "bm90IGpzb24", "WzFd", "A", "é", "\0", "a" * 43])
def test_garbage_is_refused(garbage: str) -> None:
    assert _refused(garbage) == paging.NOT_OURS


def test_truncated_and_extended_tokens_are_refused() -> None:
    token = PageTokens(KEY).encode(RowsAfter(datetime.now(UTC), "ORD-1"), FILTERS)
    for cut in range(1, len(token)):
        assert _refused(token[:cut]) == paging.NOT_OURS
    for tail in ("A", "AA", "AAAA", token):
        assert _refused(token + tail) == paging.NOT_OURS


def test_a_token_signed_with_another_key_is_refused() -> None:
    other = PageTokens(secrets.token_bytes(32)).encode(RowsAfter(datetime.now(UTC), "ORD-1"), FILTERS)
    assert _refused(other) == paging.NOT_OURS


def test_a_token_only_continues_its_own_query_and_listing() -> None:
    token = PageTokens(KEY).encode(RowsAfter(datetime.now(UTC), "ORD-1"), FILTERS)
    assert _refused(token, filters={**FILTERS, "user_id": "USR-2"}) == paging.NOT_OURS
    assert _refused(token, filters={"user_id": "USR-1"}) == paging.NOT_OURS

    @dataclass(frozen=True)
    class OtherRowsAfter:
        create_time: datetime
        id: str

    assert _refused(token, OtherRowsAfter) == paging.NOT_OURS


@pytest.mark.parametrize(
    "position",
    [
        {"create_time": "not-a-time", "id": "ORD-1"},
        {"create_time": "10000-01-01T00:00:00+00:00", "id": "ORD-1"},
        {"create_time": "0000-12-31T00:00:00+00:00", "id": "ORD-1"},
        # Valid as written, but past year 9999 (or before year 1) once in UTC.
        {"create_time": "9999-12-31T23:00:00-05:00", "id": "ORD-1"},
        {"create_time": "0001-01-01T00:00:00+05:00", "id": "ORD-1"},
        {"create_time": "2025-01-01T00:00:00", "id": "ORD-1"},  # no offset
        {"create_time": 1735689600, "id": "ORD-1"},
        {"create_time": None, "id": "ORD-1"},
        {"create_time": "2025-01-01T00:00:00+00:00", "id": "ORD\u00001"},
        {"create_time": "2025-01-01T00:00:00+00:00", "id": "\ud800"},
        {"create_time": "2025-01-01T00:00:00+00:00", "id": ""},
        {"create_time": "2025-01-01T00:00:00+00:00", "id": "x" * (paging.MAX_ID_LENGTH + 1)},
        {"create_time": "2025-01-01T00:00:00+00:00", "id": 7},
        {"create_time": "2025-01-01T00:00:00+00:00", "id": ["ORD-1"]},
        {"create_time": "2025-01-01T00:00:00+00:00"},
        {"create_time": "2025-01-01T00:00:00+00:00", "id": "ORD-1", "seq": 1},
    ],
)
def test_signed_values_that_do_not_parse_are_refused(position: dict[str, object]) -> None:
    assert _refused(_signed(json.dumps(position).encode())) == paging.UNREADABLE


@pytest.mark.parametrize(
    "payload",
    [b'{"seq": -1}', b'{"seq": 9223372036854775808}', b'{"seq": 1.0}', b'{"seq": true}', b'{"seq": "1"}',
     b'{"seq": NaN}', b'{"seq": 1e400}', b'{"seq": ' + b"9" * 5000 + b"}", b"[1]", b"null", b"{",
     b"\xff", b"[" * 100_000 + b"]" * 100_000],
)  # fmt: skip
def test_signed_integers_and_payloads_that_do_not_parse_are_refused(payload: bytes) -> None:
    assert _refused(_signed(payload, SeqAfter, {}), SeqAfter, {}) == paging.UNREADABLE


def test_a_position_must_be_a_dataclass_of_known_types() -> None:
    @dataclass(frozen=True)
    class FloatAfter:
        score: float

    with pytest.raises(TypeError):
        PageTokens(KEY).encode(FloatAfter(1.0), {})
    with pytest.raises(TypeError):
        PageTokens(KEY).decode("x", dict, {})


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError):
        PageTokens(b"k" * 31)


def _settings_env(monkeypatch: pytest.MonkeyPatch, key: str | None) -> None:
    for name, value in {"GRPC_PORT": "0", "METRICS_PORT": "0", "DATABASE_URL": "x", "NATS_URL": "x"}.items():
        monkeypatch.setenv(name, value)
    if key is None:
        monkeypatch.delenv("PAGE_TOKEN_KEY", raising=False)
    else:
        monkeypatch.setenv("PAGE_TOKEN_KEY", key)


@pytest.mark.parametrize(
    ("key", "says"),
    [
        (None, "PAGE_TOKEN_KEY is not set"),
        ("", "PAGE_TOKEN_KEY is not set"),
        ("ab" * 31, "PAGE_TOKEN_KEY is 31 bytes; it needs at least 32"),
        ("zz" * 32, "PAGE_TOKEN_KEY is not hex digits"),
        (base64.b64encode(b"\xff" * 48).decode(), "PAGE_TOKEN_KEY is not hex digits"),
    ],
)
def test_a_missing_or_short_key_stops_the_process(
    monkeypatch: pytest.MonkeyPatch, key: str | None, says: str
) -> None:
    _settings_env(monkeypatch, key)
    with pytest.raises(ConfigError) as err:
        ServiceSettings.from_env("notify")
    assert says in str(err.value)
    if key:
        assert key not in str(err.value)


def test_the_key_is_read_as_hex_and_kept_out_of_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    key = secrets.token_bytes(32)
    _settings_env(monkeypatch, key.hex())
    settings = ServiceSettings.from_env("notify")
    assert settings.page_token_key == key
    assert key.hex() not in repr(settings)


def test_the_stack_makes_one_private_key_per_state_dir_and_keeps_it(tmp_path: Path) -> None:
    first = page_token_key(tmp_path / "state")
    path = tmp_path / "state" / PAGE_TOKEN_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(bytes.fromhex(first)) >= paging.MIN_KEY_BYTES
    assert page_token_key(tmp_path / "state") == first
    assert page_token_key(tmp_path / "other") != first
    assert sorted(p.name for p in path.parent.iterdir()) == [PAGE_TOKEN_KEY_FILE]
