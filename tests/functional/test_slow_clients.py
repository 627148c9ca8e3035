"""``tidings serve`` times out a client that sends its request too slowly and says so in
its log, while it keeps serving everyone else."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from tests.functional.server import TidingsServer, tidings_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def test_a_half_sent_request_gets_408_and_a_log_line(tmp_path: Path) -> None:
    env = tidings_env(tmp_path / "data", http_header_timeout_seconds=1,
                      http_body_timeout_seconds=1)
    with TidingsServer(tmp_path / "data", env, log_path=tmp_path / "server.log") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as slow:
            slow.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\n")  # and no more
            assert httpx.get(f"{server.url}/healthz").status_code == 200
            answer = b""
            while chunk := slow.recv(4096):  # until the server closes the connection
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert '"event": "http_client_too_slow"' in server.log_tail()
