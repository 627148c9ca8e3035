"""The record of processing activities (issue 16, item 10; ROPA-1) on both databases:
made from the code's declarations, with the account's own retention and the platform's
carriers, as JSON and PDF, for the account's privacy people only."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from tests.conftest import Tenant
from tidings.cli.main import cli
from tidings.core.settings import Settings
from tidings.runtime import Runtime

pytestmark = pytest.mark.pg_keystore


async def test_ropa_1_the_record_says_what_the_code_stores_and_keeps(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    assert (await client.put("/v1/privacy/retention", headers=acme.headers,
                             json={"message_body_days": 45})).status_code == 200
    record = (await client.get("/v1/privacy/ropa", headers=acme.headers)).json()
    assert record["controller"] == {"account_id": acme.id, "name": "Acme"}
    by_category = {c["category"]: c for c in record["data_categories"]}
    phone = by_category["user.contact.phone_number"]
    assert {"messages.to_enc", "messages.from_enc"} <= set(
        by_category["user.contact"]["stored_in"] + phone["stored_in"])
    body = by_category["user.content.private"]
    assert "messages.body_enc" in body["stored_in"]
    assert ("45 days", "delete", "contract") in {
        (r["period"], r["action"], r["legal_basis"]) for r in body["retention"]}
    assert all(c["category"].startswith("user.") for c in record["data_categories"])
    assert record["message_retention_days"] == 45
    assert {p["id"] for p in record["purposes"]} >= {"message_delivery", "audit"}
    assert {m["measure"] for m in record["measures"]} >= {"Encryption at rest", "Erasure"}
    assert {r["right"] for r in record["rights"]} >= {"access", "erasure", "objection"}
    pdf = await client.get("/v1/privacy/ropa", headers={**acme.headers,
                                                        "Accept": "application/pdf"})
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")


async def test_the_record_is_the_accounts_own_and_refuses_garbage(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, globex: Tenant) -> None:
    theirs = (await client.get("/v1/privacy/ropa", headers=globex.headers)).json()
    assert theirs["controller"]["account_id"] == globex.id
    bad = await client.get("/v1/privacy/ropa?account=" + acme.id, headers=globex.headers)
    assert bad.status_code == 400
    assert (await client.get("/v1/privacy/ropa")).status_code == 401


async def test_the_command_writes_json_and_pdf(rt: Runtime, acme: Tenant, settings: Settings,
                                               tmp_path: Path) -> None:
    env = {"TIDINGS_DATA_DIR": str(settings.data_dir),
           "TIDINGS_DATABASE_URL": settings.database_url,
           "TIDINGS_SYSTEM_DATABASE_URL": settings.system_database_url,
           "TIDINGS_KEY_DIR": str(settings.resolved_key_dir()),
           "TIDINGS_KEYSTORE_URL": settings.keystore_url,
           "TIDINGS_MASTER_KEY": settings.master_key}

    def run(*args: str) -> tuple[int, str]:
        done = CliRunner().invoke(cli, ["privacy", "ropa", "--account", acme.id, *args],
                                  env=env)
        return done.exit_code, done.output

    code, out = await asyncio.to_thread(run)
    assert code == 0, out
    assert json.loads(out[out.index("{"):])["controller"]["account_id"] == acme.id
    target = tmp_path / "ropa.pdf"
    code, out = await asyncio.to_thread(run, "--pdf", "-o", str(target))
    assert code == 0, out
    assert target.read_bytes().startswith(b"%PDF")
    code, out = await asyncio.to_thread(run, "--pdf")
    assert code == 2
    assert "--output" in out
