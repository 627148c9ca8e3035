"""How fast the portal's pages answer on an account that holds many messages.

The requirement (docs/portal.md): every page in under 200 ms with 100,000 messages in
the account. Measured here, on a real ``tidings serve`` process, never in a timed test::

    .venv/bin/python -m bench.portal_pages --messages 100000 --requests 50

The account is pre-filled with ``--messages`` old delivered messages
(``bench/prefill.py``), then a few are sent through the API so that some failed. Two
people are created with the CLI and log in as a browser does (the log-in form, then the
change of the temporary password): an analyst for the dashboard (``reports:read``) and a
developer for the message log (neither needs a second factor). Each page is then asked
for ``--requests`` times in a row, one at a time, with the session cookie: the wall time
of each answer, from the first byte sent to the last one read. p50, p95 and max per page
are printed and written to ``bench/results/<UTC timestamp>-portal.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.prefill import FIRST_OLD_NUMBER, prefill
from bench.run import ROOT, database, machine
from bench.server import LAYOUTS, Server, make_server
from tidings.core.ids import id_floor
from tidings.core.settings import Settings
from tidings.messaging.service import encode_cursor

NEW_PASSWORD = "Copper-Meadow-Violin-88"
SENT = {"+12025550173": 6, "+12025550101": 3, "+12025550100": 1}  # docs/sandbox.md
DEEP = 0.1  # the deep page starts where only this share of the old messages is older


def log_in(url: str, email: str, temporary_password: str) -> httpx.Client:
    """A browser's session: the log-in form, then the forced change of password."""
    browser = httpx.Client(base_url=url, timeout=30)
    token = form_token(browser.get("/portal/login"))
    done = browser.post("/portal/login", data={"_csrf": token, "email": email,
                                                "password": temporary_password, "next": ""})
    _expect(done, 303)
    token = form_token(browser.get("/portal/password"))
    changed = browser.post("/portal/password", data={
        "_csrf": token, "current_password": temporary_password, "new_password": NEW_PASSWORD})
    _expect(changed, 303)
    return browser


def form_token(page: httpx.Response) -> str:
    found = re.search(r'name="_csrf" value="([^"]+)"', page.text)
    if not found:
        raise RuntimeError(f"no form token in {page.request.url}: {page.status_code}")
    return found.group(1)


def _expect(answer: httpx.Response, status: int) -> None:
    if answer.status_code != status:
        raise RuntimeError(f"{answer.request.method} {answer.request.url}: "
                           f"{answer.status_code} {answer.text[:300]}")


def cli_json(server: Server, *args: str) -> dict[str, Any]:
    """A ``--json`` command's answer; on PostgreSQL a warning line about the database role
    comes first on stdout, so the JSON starts at the first line that opens an object."""
    output = server.cli(*args, "--json")
    found: dict[str, Any] = json.loads(output[output.index("{\n"):] if "{\n" in output
                                       else output)
    return found


def person(server: Server, account_id: str, role: str) -> httpx.Client:
    made = cli_json(server, "users", "create", "--account", account_id, "--email",
                    f"{role}@bench.example", "--role", role)
    return log_in(server.url, made["email"], made["temporary_password"])


def send_some(server: Server, api_key: str) -> str:
    """Messages through the API, some failing; the id of the last one."""
    last = ""
    with httpx.Client(base_url=server.url, timeout=30,
                      headers={"Authorization": f"Bearer {api_key}"}) as api:
        for to, count in SENT.items():
            for _ in range(count):
                sent = api.post("/v1/messages", json={"to": to, "from": "Bench", "body": "Hi"})
                _expect(sent, 201)
                last = sent.json()["id"]
    time.sleep(2)  # the sandbox's receipts (0.2 s) are in
    return last


def timed(browser: httpx.Client, path: str, shows: str, requests: int) -> dict[str, float]:
    """Milliseconds of ``requests`` sequential GETs of ``path``, after one untimed that
    must show ``shows`` (a list that found nothing would measure nothing)."""
    first = browser.get(path)
    _expect(first, 200)
    if shows not in first.text:
        raise RuntimeError(f"{path} does not show {shows!r}")
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        answer = browser.get(path)
        times.append((time.perf_counter() - start) * 1000)
        _expect(answer, 200)
    cuts = statistics.quantiles(times, n=20, method="inclusive") if len(times) > 1 \
        else times * 19
    return {"p50_ms": round(statistics.median(times), 1), "p95_ms": round(cuts[18], 1),
            "max_ms": round(max(times), 1)}


def pages(deep_cursor: str, message_id: str) -> list[tuple[str, str, str]]:
    """(who, path, what it must show) of each page measured: the analyst sees reports,
    the developer messages."""
    row = 'href="/portal/messages/msg_'
    return [("analyst", "/portal/dashboard", 'data-stat="total"'),
            ("developer", "/portal/messages", row),
            ("developer", "/portal/messages?status=delivered", row),
            ("developer", f"/portal/messages?to=%2B{FIRST_OLD_NUMBER + 4242}", row),
            ("developer", f"/portal/messages?cursor={deep_cursor}", row),
            ("developer", f"/portal/messages/{message_id}", 'id="timeline"')]


async def prefilled(server: Server, account_id: str, count: int) -> tuple[float, str]:
    """The seconds the pre-fill took and a cursor deep inside the old messages (their ids
    carry the time they were written, so a time between the first and the last is a
    position among them)."""
    env = server.env
    settings = Settings(data_dir=Path(env["TIDINGS_DATA_DIR"]),
                        database_url=env["TIDINGS_DATABASE_URL"],
                        key_dir=Path(env["TIDINGS_KEY_DIR"]))
    began = time.time()
    seconds = await prefill(settings, account_id, count)
    at = began + (time.time() - began) * DEEP
    return seconds, encode_cursor(id_floor("msg", int(at * 1000)))


def measure(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tidings-portal-") as tmp, \
            database(args.store, Path(tmp)) as url:
        # One person asks for pages back to back, faster than any person clicks: above
        # a session's rate limit (TIDINGS_RATE_LIMIT_USER_SESSION), which is not measured.
        server = make_server(Path(tmp), url, LAYOUTS[args.store],
                             rate_limit_user_session="100000/second")
        server.cli("migrate")
        account = cli_json(server, "accounts", "create", "--name", "Bench")
        prefill_seconds, deep = asyncio.run(prefilled(server, account["id"], args.messages))
        server.start()
        try:
            message_id = send_some(server, account["api_key"])
            people = {role: person(server, account["id"], role)
                      for role in ("analyst", "developer")}
            results = {path: timed(people[who], path, shows, args.requests)
                       for who, path, shows in pages(deep, message_id)}
            for browser in people.values():
                browser.close()
        finally:
            server.stop()
    return {"prefill_seconds": round(prefill_seconds, 1), "pages": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000,
                        help="old messages written into the account first")
    parser.add_argument("--requests", type=int, default=50, help="timed GETs of each page")
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    report: dict[str, Any] = {"when": datetime.now(UTC).isoformat(timespec="seconds"),
                              "machine": machine(), "args": vars(args)}
    report.update(measure(args))
    print(f"{'page':<60} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for path, figures in report["pages"].items():
        print(f"{path[:60]:<60} {figures['p50_ms']:>8} {figures['p95_ms']:>8} "
              f"{figures['max_ms']:>8}")
    out = ROOT / "bench" / "results" / f"{report['when'].replace(':', '')}-portal.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
