"""The verification snippets of docs/webhooks.md, run as a client would run them, against
a webhook Tidings really signed and sent: Python in-process, JavaScript under ``node``."""

from __future__ import annotations

import base64
import json
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import HookServer, assign, make_tenant, settle
from tidings.core.clock import FakeClock
from tidings.runtime import Runtime
from tidings.webhooks.signing import SIGNATURE_HEADER

DOCS = Path(__file__).parents[2] / "docs" / "webhooks.md"
TOLERANCE_SECONDS = 300
NODE_DRIVER = """
const cases = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
console.log(JSON.stringify(cases.map((c) => tidingsSignatureOk(
  c.secret, Buffer.from(c.body, "base64"), c.header, 300, c.now))));
"""


def snippet(language: str, defines: str) -> str:
    """The fenced ``language`` block of the docs that defines ``defines``."""
    blocks = re.findall(rf"```{language}\n(.*?)```", DOCS.read_text(), re.DOTALL)
    [found] = [b for b in blocks if defines in b]
    return found


@dataclass
class Case:
    secret: str
    body: bytes
    header: str
    now: float


@pytest.fixture
async def signed_webhook(client: httpx.AsyncClient, rt: Runtime, clock: FakeClock,
                         hooks: HookServer) -> Case:
    acme = await make_tenant(rt, "Acme", webhook_url=hooks.url)
    await assign(rt, acme.id, "+12025550173")
    inbound = await client.post("/v1/sandbox/inbound", headers=acme.headers, json={
        "from": "+14155550100", "to": "+12025550173", "body": "ping"})
    assert inbound.status_code == 201, inbound.text
    await settle(rt, clock)
    [request] = hooks.requests
    return Case(acme.made.webhook_secret, request["raw"], request["headers"][SIGNATURE_HEADER],
                clock.now().timestamp())


def variants(good: Case) -> list[tuple[Case, bool]]:
    signed_at = int(good.header.split(",")[0].removeprefix("t="))
    return [
        (good, True),
        (Case(good.secret, good.body, good.header, signed_at + TOLERANCE_SECONDS), True),
        (Case(good.secret, good.body.replace(b"ping", b"pong"), good.header, good.now), False),
        (Case(good.secret, good.body, good.header, signed_at + TOLERANCE_SECONDS + 1), False),
        (Case(good.secret + "x", good.body, good.header, good.now), False),
        (Case(good.secret.removeprefix("whsec_"), good.body, good.header, good.now), False),
        (Case(good.secret, good.body, "", good.now), False),
        (Case(good.secret, good.body, "t=garbage,v1=zz", good.now), False),
    ]


def python_verifier() -> Callable[..., bool]:
    namespace: dict[str, Any] = {}
    exec(snippet("python", "def tidings_signature_ok"), namespace)  # as a client copies it
    verifier: Callable[..., bool] = namespace["tidings_signature_ok"]
    return verifier


def node_results(cases: list[Case]) -> list[bool]:
    program = snippet("js", "function tidingsSignatureOk") + NODE_DRIVER
    given = [{"secret": c.secret, "body": base64.b64encode(c.body).decode(),
              "header": c.header, "now": c.now} for c in cases]
    done = subprocess.run(["node", "-e", program], input=json.dumps(given), text=True,
                          capture_output=True, timeout=60, check=True)
    results: list[bool] = json.loads(done.stdout)
    return results


async def test_the_python_snippet_accepts_a_real_webhook_and_nothing_else(
        signed_webhook: Case) -> None:
    verifier = python_verifier()
    for case, expected in variants(signed_webhook):
        assert verifier(case.secret, case.body, case.header, TOLERANCE_SECONDS,
                        now=case.now) is expected, case


async def test_the_node_snippet_accepts_a_real_webhook_and_nothing_else(
        signed_webhook: Case) -> None:
    cases = variants(signed_webhook)
    assert node_results([c for c, _ in cases]) == [expected for _, expected in cases]
