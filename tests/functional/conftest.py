"""Fixtures for the functional tests: a fresh PostgreSQL database per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pg import PG_ADMIN_URL, PgDatabase, fresh_database


@pytest.fixture
def postgres_database() -> Iterator[PgDatabase]:
    """A fresh database ``func_<random>`` with its roles' URLs, dropped afterwards."""
    if not PG_ADMIN_URL:
        pytest.skip("TIDINGS_TEST_POSTGRES_URL is not set")
    with fresh_database("func") as urls:
        yield urls
