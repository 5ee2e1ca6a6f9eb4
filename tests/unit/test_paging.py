"""Page sizes and tokens (AIP-158)."""

import pytest

from ticketmesh import paging
from ticketmesh.errors import InvalidArgument


def test_page_size_defaults_and_coerces() -> None:
    assert paging.page_size(0) == paging.DEFAULT_PAGE_SIZE
    assert paging.page_size(-5) == paging.DEFAULT_PAGE_SIZE
    assert paging.page_size(7) == 7
    assert paging.page_size(10**9) == paging.MAX_PAGE_SIZE


def test_token_round_trips() -> None:
    assert paging.decode_token(paging.encode_token({"seq": 42})) == {"seq": 42}
    assert paging.decode_token("") is None


@pytest.mark.parametrize("garbage", ["%%%", "bm90IGpzb24=", "WzFd"])
def test_garbage_token_is_invalid_argument(garbage: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        paging.decode_token(garbage)
    assert err.value.violations[0][0] == "page_token"


def test_token_from_other_filters_is_rejected() -> None:
    token = paging.encode_token({"seq": 1, "user_id": "a"})
    with pytest.raises(InvalidArgument):
        paging.decode_token(token, expect={"user_id": "b"})
