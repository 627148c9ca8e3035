"""The long run's database: old delivered messages written in bulk, readable as any."""

from __future__ import annotations

import httpx
import pytest

from bench import prefill as prefill_module
from bench.prefill import prefill
from tests.conftest import Tenant, stored_counts
from tidings.runtime import Runtime


async def test_prefill_writes_delivered_messages_the_api_reads(
        rt: Runtime, client: httpx.AsyncClient, acme: Tenant,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prefill_module, "CHUNK", 10)  # three transactions for 25
    before = await stored_counts(rt)
    await prefill(rt.settings, acme.id, 25)
    after = await stored_counts(rt)
    assert after["messages"] - before["messages"] == 25
    assert after["message_events"] - before["message_events"] == 25
    assert after["jobs"] == before["jobs"]  # nothing for the workers to do

    found = await client.get("/v1/messages", headers=acme.headers,
                             params={"to": "+12023000007"})
    assert found.status_code == 200, found.text
    [message] = found.json()["data"]
    assert (message["to"], message["from"], message["body"], message["status"]) == (
        "+12023000007", "Bench", "Hello", "delivered")
    read = await client.get(f"/v1/messages/{message['id']}", headers=acme.headers)
    assert [e["status"] for e in read.json()["events"]] == ["delivered"]


@pytest.mark.parametrize("count", [-1, -1_000_000])
async def test_prefill_refuses_a_negative_count_and_writes_nothing(
        rt: Runtime, acme: Tenant, count: int) -> None:
    before = await stored_counts(rt)
    with pytest.raises(ValueError, match="cannot pre-fill"):
        await prefill(rt.settings, acme.id, count)
    assert await stored_counts(rt) == before
