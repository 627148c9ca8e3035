"""Fixtures for the functional tests: a fresh PostgreSQL database per test, and the
``backend`` a test runs on, each of SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.functional.backends import Backend
from tests.pg import PG_ADMIN_URL, PgDatabase, fresh_database


@pytest.fixture
def postgres_database() -> Iterator[PgDatabase]:
    """A fresh database ``func_<random>`` with its roles' URLs, dropped afterwards."""
    if not PG_ADMIN_URL:
        pytest.skip("TIDINGS_TEST_POSTGRES_URL is not set")
    with fresh_database("func") as urls:
        yield urls


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite", "")
    database = request.getfixturevalue("postgres_database")
    return Backend("postgres", database.app_url, database.admin_dsn)
