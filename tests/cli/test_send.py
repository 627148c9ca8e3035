"""``tidings send`` against a fake batch API: what it reports when the server stops
answering half-way, and which ``Idempotency-Key`` each request carries."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tidings.cli.send import send


class FakeBatchApi(ThreadingHTTPServer):
    """Accepts every recipient of the first ``accept_requests`` requests, then answers 503."""

    def __init__(self, accept_requests: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.accept_requests = accept_requests
        self.requests: list[tuple[str, dict[str, Any]]] = []  # (Idempotency-Key, body)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: FakeBatchApi

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.headers["Idempotency-Key"], body))
        if len(self.server.requests) > self.server.accept_requests:
            self._answer(503, {"code": "unavailable", "detail": "Try again later."})
            return
        results = [{"index": i, "status": "accepted", "message_id": f"msg_{i}"}
                   for i in range(len(body["recipients"]))]
        self._answer(200, {"accepted": len(results), "rejected": 0, "results": results})

    def _answer(self, status: int, data: dict[str, Any]) -> None:
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def fake_api(request: pytest.FixtureRequest) -> Iterator[FakeBatchApi]:
    server = FakeBatchApi(accept_requests=getattr(request, "param", 100))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def people(tmp_path: Path) -> Path:
    path = tmp_path / "people.csv"
    path.write_text("to,name\n" + "".join(f"+1202555{150 + i:04d},P{i}\n" for i in range(5)),
                    encoding="utf-8")
    return path


def run_send(api: FakeBatchApi, csv_path: Path, *extra: str) -> Any:
    return CliRunner().invoke(send, ["--csv", str(csv_path), "--body", "Hi {name}", "--from",
                                     "Acme", "--api-key", "tdk_x_y", "--url", api.url,
                                     "--chunk", "2", *extra])


@pytest.mark.parametrize("fake_api", [1], indirect=True)
def test_an_error_half_way_reports_what_was_sent_and_where_it_stopped(
        fake_api: FakeBatchApi, people: Path) -> None:
    result = run_send(fake_api, people)
    assert result.exit_code == 1
    assert "accepted 2 of 5 rows, rejected 0; nothing sent from line 4 on" in result.output
    assert "503 unavailable: Try again later." in result.output
    assert "Run the same command again" in result.output
    assert len(fake_api.requests) == 2  # it stopped at the first error


def test_each_chunk_has_a_key_from_what_it_sends_the_same_on_a_rerun(
        fake_api: FakeBatchApi, people: Path) -> None:
    assert run_send(fake_api, people).exit_code == 0
    assert run_send(fake_api, people).exit_code == 0
    assert run_send(fake_api, people, "--run-id", "monday").exit_code == 0
    keys = [key for key, _ in fake_api.requests]
    first, rerun, monday = keys[0:3], keys[3:6], keys[6:9]
    assert len(set(first)) == 3
    assert all(key.startswith("csv-") and len(key) <= 255 for key in first)
    assert rerun == first
    assert not set(monday) & set(first)


def test_a_rows_key_changes_only_for_its_own_chunk(fake_api: FakeBatchApi,
                                                   people: Path, tmp_path: Path) -> None:
    assert run_send(fake_api, people).exit_code == 0
    changed = tmp_path / "changed.csv"
    changed.write_text(people.read_text(encoding="utf-8").replace("P3", "Q3"),
                       encoding="utf-8")
    assert run_send(fake_api, changed).exit_code == 0
    keys = [key for key, _ in fake_api.requests]
    assert keys[3] == keys[0]
    assert keys[5] == keys[2]
    assert keys[4] != keys[1]


def test_a_bad_row_is_not_sent_and_its_chunk_goes_without_it(fake_api: FakeBatchApi,
                                                            tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("to,name\n+12025550150,A\n,B\nnot a number,C\n", encoding="utf-8")
    result = run_send(fake_api, path)
    assert result.exit_code == 1
    assert "accepted 1 of 3 rows, rejected 2" in result.output
    assert "line 3: to: is empty (invalid_phone_number)" in result.output
    assert "line 4: to: phone number must start with '+'" in result.output
    assert [[r["to"] for r in body["recipients"]] for _, body in fake_api.requests] == [
        ["+12025550150"]]
