"""Sign-up open, a small trial allowance, and the steps a new client takes, as helpers."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pyotp
import pytest

from tests.conftest import codes_sent, settle
from tidings.core.clock import FakeClock
from tidings.core.settings import Settings
from tidings.mail.mailbox import KeptMail, Mailbox, mailbox_path
from tidings.runtime import Runtime

ALLOWANCE = 3
PASSWORD = "Copper-Kettle-Meadow-93"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"signup": "open", "trial_message_allowance": ALLOWANCE,
                                       "public_url": "https://tidings.example"})


async def mailbox(rt: Runtime, clock: FakeClock) -> list[KeptMail]:
    """The platform's mail, once the workers sent what was queued (no relay: kept)."""
    await settle(rt, clock)
    return Mailbox(mailbox_path(rt.settings.data_dir)).read(await rt.vault.platform_keys())


def token_in(mail: KeptMail) -> str:
    found = re.search(r"/signup/confirm\?token=([A-Za-z0-9_-]+)", mail.body)
    assert found is not None, mail.body
    return found.group(1)


def signup_body(**changes: Any) -> dict[str, Any]:
    return {"company": "Nimbus Labs", "email": "founder@nimbus.example",
            "password": PASSWORD, "country": "DE", **changes}


async def logged_in(client: httpx.AsyncClient, clock: FakeClock, email: str) -> dict[str, str]:
    """Log in and enrol an authenticator app, as an owner must: the bearer header."""
    answer = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    headers = {"Authorization": f"Bearer {answer.json()['token']}"}
    enrol = await client.post("/v1/auth/mfa/totp", headers=headers)
    assert enrol.status_code == 200, enrol.text
    confirmed = await client.post("/v1/auth/mfa/totp/confirm", headers=headers, json={
        "code": pyotp.TOTP(enrol.json()["secret"]).at(clock.now())})
    assert confirmed.status_code == 200, confirmed.text
    return headers


async def verify_number(client: httpx.AsyncClient, rt: Runtime, headers: dict[str, str],
                        number: str) -> dict[str, Any]:
    started = await client.post("/v1/verified-numbers", headers=headers, json={"number": number})
    assert started.status_code == 202, started.text
    code = (await codes_sent(rt, number))[-1]
    confirmed = await client.post(f"/v1/verified-numbers/{started.json()['id']}/confirm",
                                  headers=headers, json={"code": code})
    assert confirmed.status_code == 200, confirmed.text
    return dict(confirmed.json())


DETAILS = {"legal_name": "Nimbus Labs GmbH", "country": "DE",
           "registration_number": "HRB 123456", "contact_name": "Ada Nimbus",
           "contact_email": "ada@nimbus.example", "contact_phone": "+4915123456789",
           "intended_use": "Appointment reminders for our clinics."}
