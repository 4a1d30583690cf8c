"""The sign-in check's cache without a database: generations, expiry and size."""

from __future__ import annotations

import pytest

from gridmap import accounts, notify

ACTOR = accounts.Actor(user_id=7, username="probe", role="viewer", unit_id=1,
                       unit_name="区指挥中心", unit_kind="district", tier=1)
LOADED = ("token", ACTOR)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(accounts.time, "monotonic", c)
    return c


def test_an_entry_lives_while_the_generation_does(clock):
    generation = [3]
    cache = accounts.ActorCache(lambda: generation[0], ttl_s=60)
    cache.put((7, "token", False), LOADED, 3)
    assert cache.get((7, "token", False)) == LOADED
    assert cache.get((7, "other", False)) is None
    generation[0] = 4
    assert cache.get((7, "token", False)) is None


def test_an_entry_expires_after_its_ttl(clock):
    cache = accounts.ActorCache(lambda: 1, ttl_s=60)
    cache.put((7, "token", False), LOADED, 1)
    clock.now += 59.9
    assert cache.get((7, "token", False)) == LOADED
    clock.now += 0.2
    assert cache.get((7, "token", False)) is None


def test_what_was_read_across_a_change_is_not_kept(clock):
    cache = accounts.ActorCache(lambda: 5, ttl_s=60)
    cache.put((7, "token", False), LOADED, 4)  # read under 4, a change landed meanwhile
    assert cache.get((7, "token", False)) is None


def test_while_not_listening_nothing_is_kept(clock):
    cache = accounts.ActorCache(lambda: None, ttl_s=60)
    assert cache.generation() is None
    cache.put((7, "token", False), LOADED, 1)
    assert cache.get((7, "token", False)) is None


def test_a_full_cache_starts_over(clock):
    cache = accounts.ActorCache(lambda: 1, ttl_s=60, max_entries=3)
    for i in range(3):
        cache.put((i, "t", False), LOADED, 1)
    cache.put((99, "t", False), LOADED, 1)
    assert cache.get((0, "t", False)) is None
    assert cache.get((99, "t", False)) == LOADED


@pytest.mark.parametrize(("statement", "writes"), [
    ("UPDATE users SET session_token = %(t)s WHERE users.id = %(id)s", True),
    ("INSERT INTO dispatch_targets (order_id, unit_id) VALUES (1, 2)", True),
    ("  delete from units where id = 3", True),
    ("TRUNCATE dispatch_orders CASCADE", True),
    ("SELECT * FROM users", False),
    ("UPDATE cameras SET status = 'online'", False),
])
def test_writes_to_the_actor_tables_are_recognised(statement, writes):
    assert notify._writes_actor_tables(statement) is writes
