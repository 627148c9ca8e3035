"""``tidings webhooks listen``: prints each event on a line, checks signatures when given
the secret, and answers 204."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.functional.server import TIDINGS, tidings_env
from tidings.webhooks.signing import SIGNATURE_HEADER, sign

SECRET = "whsec_listen-test"
EVENT = {"id": "evt_1", "type": "message.inbound", "account_id": "acc_1", "sequence": 1,
         "data": {"message_id": "msg_1", "body": "Hi"}}


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    env = {**tidings_env(tmp_path), "HOOK_SECRET": SECRET}
    proc = subprocess.Popen([TIDINGS, "webhooks", "listen", "--port", "0",
                             "--secret-env", "HOOK_SECRET"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    found = re.search(r"listening for webhooks on (http://\S+)", first)
    assert found, first
    yield proc, found.group(1)
    proc.terminate()
    proc.wait(timeout=10)


def test_each_event_is_printed_with_its_signature_checked(
        receiver: tuple[subprocess.Popen[str], str]) -> None:
    proc, url = receiver
    body = json.dumps(EVENT).encode()
    good = sign(SECRET, body, timestamp=int(time.time()))
    bad = sign("whsec_another", body, timestamp=int(time.time()))
    for header in (good, bad):
        answer = httpx.post(f"{url}hook", content=body, headers={SIGNATURE_HEADER: header})
        assert answer.status_code == 204
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(2)]
    assert lines[0] == ('message.inbound {"message_id": "msg_1", "body": "Hi"}  '
                        "[signature ok]\n")
    assert lines[1].startswith('message.inbound {"message_id": "msg_1", "body": "Hi"}  '
                               "[signature BAD")
