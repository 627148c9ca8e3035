"""Rate limits over HTTP: a key past its limit gets a 429 with Retry-After and the
RateLimit fields, on the fast send path and through the framework alike; the key's
bucket and the account's; a request counted once however it is answered; bad limits
stop the start; failed logins from an address get its logins refused.

The limits here are per day: the library counts in wall-clock time, and no test may
depend on how fast it runs."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_ACTOR, Tenant, assert_problem, stored_counts
from tidings.app import create_app
from tidings.cli.main import main
from tidings.core.settings import Settings
from tidings.runtime import Runtime
from tidings.users.service import create_user

GOOD = {"to": "+12025550173", "from": "Acme", "body": "Hello"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"rate_limit_api_key": "3/day",
                                       "rate_limit_account": "5/day",
                                       "rate_limit_failed_logins_per_ip": "3/day"})


def remaining(response: httpx.Response) -> int:
    return int(response.headers["RateLimit-Remaining"])


def assert_rate_limited(response: httpx.Response, *, limit: int) -> None:
    assert_problem(response, 429, "rate_limited")
    assert 1 <= int(response.headers["Retry-After"]) <= 86400
    assert response.headers["RateLimit-Limit"] == str(limit)
    assert response.headers["RateLimit-Remaining"] == "0"
    assert response.headers["RateLimit-Reset"] == response.headers["Retry-After"]
    assert response.headers["RateLimit-Policy"] == f"{limit};w=86400"


async def test_a_key_past_its_limit_gets_429_on_the_fast_send_path_and_nothing_is_stored(
        rt: Runtime, client: httpx.AsyncClient, acme: Tenant, globex: Tenant) -> None:
    answers = [await client.post("/v1/messages", json=GOOD, headers=acme.headers)
               for _ in range(4)]
    assert [a.status_code for a in answers[:3]] == [201, 201, 201]
    assert [remaining(a) for a in answers[:3]] == [2, 1, 0]
    assert answers[0].headers["RateLimit-Limit"] == "3"
    assert_rate_limited(answers[3], limit=3)
    assert answers[3].json()["instance"] == "/v1/messages"
    assert (await stored_counts(rt))["messages"] == 3
    # Another account's key is not affected.
    other = await client.post("/v1/messages", json=GOOD, headers=globex.headers)
    assert other.status_code == 201
    assert remaining(other) == 2


async def test_the_framework_routes_share_the_keys_bucket_and_say_so_in_their_answers(
        client: httpx.AsyncClient, acme: Tenant) -> None:
    first = await client.get("/v1/account", headers=acme.headers)
    assert first.status_code == 200
    assert (first.headers["RateLimit-Limit"], remaining(first)) == ("3", 2)
    idempotent = await client.post("/v1/messages", json=GOOD,
                                   headers={**acme.headers, "Idempotency-Key": "one"})
    assert idempotent.status_code == 201  # through the framework, not the fast path
    assert remaining(idempotent) == 1
    fast = await client.post("/v1/messages", json=GOOD, headers=acme.headers)
    assert remaining(fast) == 0
    assert_rate_limited(await client.get("/v1/account", headers=acme.headers), limit=3)
    assert_rate_limited(await client.post("/v1/messages", json=GOOD, headers={
        **acme.headers, "Idempotency-Key": "two"}), limit=3)


async def test_another_key_of_the_account_has_its_own_bucket_until_the_account_is_spent(
        client: httpx.AsyncClient, acme: Tenant) -> None:
    made = await client.post("/v1/keys", json={"name": "second"}, headers=acme.headers)
    assert made.status_code == 201
    second = {"Authorization": f"Bearer {made.json()['key']}"}
    for _ in range(2):
        assert (await client.get("/v1/account", headers=acme.headers)).status_code == 200
    assert_rate_limited(await client.get("/v1/account", headers=acme.headers), limit=3)
    # The account's 5 a day: 3 taken by the first key, 2 left for the second.
    assert (await client.get("/v1/account", headers=second)).status_code == 200
    assert (await client.post("/v1/messages", json=GOOD, headers=second)).status_code == 201
    assert_rate_limited(await client.get("/v1/account", headers=second), limit=5)


async def test_a_send_the_fast_path_hands_over_is_counted_once(
        client: httpx.AsyncClient, acme: Tenant) -> None:
    bad = await client.post("/v1/messages", json={**GOOD, "to": "not a number"},
                            headers=acme.headers)
    assert bad.status_code == 400
    broken = await client.post("/v1/messages", content=b"{", headers={
        **acme.headers, "Content-Type": "application/json"})
    assert_problem(broken, 400, "malformed_json")
    good = await client.post("/v1/messages", json=GOOD, headers=acme.headers)
    assert good.status_code == 201
    assert remaining(good) == 0  # 3 requests, 3 counted: not 5
    assert_rate_limited(await client.post("/v1/messages", json=GOOD, headers=acme.headers),
                        limit=3)


async def test_a_request_without_a_valid_key_is_not_counted_against_anyone(
        client: httpx.AsyncClient, acme: Tenant) -> None:
    for _ in range(5):
        response = await client.get("/v1/account", headers={"Authorization": "Bearer nope"})
        assert_problem(response, 401, "invalid_api_key")
        assert "RateLimit-Limit" not in response.headers
    assert remaining(await client.get("/v1/account", headers=acme.headers)) == 2


async def test_failed_logins_from_an_address_get_even_the_right_password_refused(
        rt: Runtime, client: httpx.AsyncClient, acme: Tenant) -> None:
    ann = await create_user(rt, account_id=acme.id, email="ann@example.com",
                            role="developer", actor=TEST_ACTOR)
    right = {"email": "ann@example.com", "password": ann.temporary_password}
    assert (await client.post("/v1/auth/login", json=right)).status_code == 200
    for attempt in ({**right, "password": "wrong"},
                    {"email": "nobody@example.com", "password": "wrong"},
                    {**right, "password": "wrong again"}):
        failed = await client.post("/v1/auth/login", json=attempt)
        assert_problem(failed, 401, "invalid_credentials")
    refused = await client.post("/v1/auth/login", json=right)
    assert_problem(refused, 429, "too_many_failed_logins")
    assert 1 <= int(refused.headers["Retry-After"]) <= 86400
    assert refused.headers["RateLimit-Limit"] == "3"


async def test_good_logins_do_not_count_against_the_address(
        rt: Runtime, client: httpx.AsyncClient, acme: Tenant) -> None:
    ann = await create_user(rt, account_id=acme.id, email="ann@example.com",
                            role="developer", actor=TEST_ACTOR)
    right = {"email": "ann@example.com", "password": ann.temporary_password}
    for _ in range(4):
        assert (await client.post("/v1/auth/login", json=right)).status_code == 200


def test_the_api_description_declares_the_429_and_its_fields(tmp_path: Path) -> None:
    schema = create_app(Settings(data_dir=tmp_path / "data")).openapi()
    refused = schema["paths"]["/v1/messages"]["post"]["responses"]["429"]
    assert {"Retry-After", "RateLimit-Limit", "RateLimit-Remaining",
            "RateLimit-Reset"} <= set(refused["headers"])


@pytest.mark.parametrize(("name", "value"), [
    ("TIDINGS_RATE_LIMIT_API_KEY", "plenty"),
    ("TIDINGS_RATE_LIMIT_ACCOUNT", "0/second"),
    ("TIDINGS_RATE_LIMIT_STRATEGY", "token-bucket"),
    ("TIDINGS_REDIS_URL", "localhost:6379"),
])
def test_a_bad_limit_in_the_environment_stops_the_start_and_names_the_variable(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path, name: str, value: str) -> None:
    monkeypatch.setenv("TIDINGS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv(name, value)
    monkeypatch.setattr("sys.argv", ["tidings", "serve"])
    with pytest.raises(SystemExit) as stopped:
        main()
    assert stopped.value.code == 2
    assert f"Error: {name}:" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()  # stopped before anything was made
