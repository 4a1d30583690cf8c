"""Connection options derived from DATABASE_URL (no database needed)."""

from __future__ import annotations

from gridmap import db


def test_read_only_option_is_added_to_the_urls_own_options():
    url = db.sqlalchemy_url("postgresql://u:p@h:5432/d?options=-c%20search_path%3Dgis")
    assert db.read_only_options(url) == "-c search_path=gis -c default_transaction_read_only=on"


def test_read_only_option_alone_when_the_url_has_none():
    url = db.sqlalchemy_url("postgresql://u:p@h:5432/d?application_name=x")
    assert db.read_only_options(url) == "-c default_transaction_read_only=on"
