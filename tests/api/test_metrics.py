"""``/metrics``: HTTP requests by route template, method and status."""

from __future__ import annotations

import httpx

from tests.conftest import Tenant

MESSAGE_ROUTE = "/v1/messages/{message_id}"
SEND = {"to": "+12025550173", "from": "Acme", "body": "Hello", "channel": "sms"}


def sample(metrics: str, name: str, **labels: str) -> float | None:
    """The value of one sample of the exposition text, None when it is absent."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in metrics.splitlines():
        if line.startswith(f"{name}{{{wanted}}} "):
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_requests_are_counted_by_route_template_not_by_path(
        client: httpx.AsyncClient, acme: Tenant) -> None:
    sent = await client.post("/v1/messages", headers=acme.headers, json=SEND)
    assert sent.status_code == 201, sent.text
    for message_id in (sent.json()["id"], "msg_01jz0000000000000000000000"):
        await client.get(f"/v1/messages/{message_id}", headers=acme.headers)
    await client.get("/no/such/path/+12025550173")
    await client.request("BREW", "/healthz")

    metrics = (await client.get("/metrics")).text
    assert sample(metrics, "tidings_http_requests_total", method="POST",
                  route="/v1/messages", status="201") == 1
    assert sample(metrics, "tidings_http_requests_total", method="GET",
                  route=MESSAGE_ROUTE, status="200") == 1
    assert sample(metrics, "tidings_http_requests_total", method="GET",
                  route=MESSAGE_ROUTE, status="404") == 1
    assert sample(metrics, "tidings_http_requests_total", method="GET",
                  route="unmatched", status="404") == 1
    assert sample(metrics, "tidings_http_requests_total", method="other",
                  route="/healthz", status="405") == 1
    assert sample(metrics, "tidings_http_request_duration_seconds_count", method="GET",
                  route=MESSAGE_ROUTE) == 2
    assert sent.json()["id"] not in metrics
    assert "12025550173" not in metrics
