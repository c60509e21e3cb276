"""API key commands take a key id or, pasted by mistake, a whole token — whose secret is never echoed."""

import pytest

from vigie.auth import UnknownKeyError, authenticate, create_key, key_id_of, revoke_key, rotate_key
from vigie.db import make_engine, make_sessionmaker
from vigie.registry import RegistryRow, upsert_rows


@pytest.fixture
def sm(sqlite_url):
    sm = make_sessionmaker(make_engine(sqlite_url))
    with sm() as s:
        upsert_rows(s, [RegistryRow("h1", person_id="p1")])
    return sm


def test_revoke_and_rotate_accept_a_whole_token(sm):
    with sm() as s:
        issued = create_key(s, "resident", person_id="p1")
        assert key_id_of(issued.token) == issued.key_id and key_id_of(issued.key_id) == issued.key_id
        new = rotate_key(s, issued.token)
        revoke_key(s, new.token)
        assert authenticate(s, issued.token) is None and authenticate(s, new.token) is None


def test_an_unknown_token_is_named_by_its_id_only(sm):
    secret = "S" * 43
    with sm() as s, pytest.raises(UnknownKeyError) as err:
        revoke_key(s, f"vigie_0123456789ab_{secret}")
    assert "0123456789ab" in str(err.value) and secret not in str(err.value)
