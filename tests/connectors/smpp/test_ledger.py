"""The SMPP connector's answer ledger, on a real SQLite file."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from pathlib import Path

import pytest

from tidings.connectors.base import SubmitResult
from tidings.connectors.smpp import ledger as ledger_module
from tidings.connectors.smpp.ledger import SubmitLedger
from tidings.connectors.smpp.matching import MatchKeys, ReceiptMatcher


def answer(message_id: str) -> SubmitResult:
    return SubmitResult(message_id, "accepted", carrier_message_id=f"c-{message_id}")


async def test_answers_written_in_overlapping_groups_while_read_are_all_kept(
        tmp_path: Path) -> None:
    ledger = SubmitLedger(tmp_path / "ledger.db")
    await ledger.open()
    ids = [f"msg_{i}" for i in range(3_000)]
    seen: list[int] = []

    async def write(message_id: str) -> None:
        await asyncio.sleep(random.random() * 0.05)
        await ledger.record(answer(message_id))

    async def read() -> None:
        for start in range(0, len(ids), 100):
            seen.append(len(await ledger.known(ids[start:start + 500])))
            await asyncio.sleep(0.001)

    try:
        await asyncio.gather(*(write(i) for i in ids), read(), read())
        stored = await ledger.known(ids)
    finally:
        await ledger.close()
    assert stored == {i: answer(i) for i in ids}
    assert seen  # the reads ran between the writes


async def test_answers_outlive_the_process(tmp_path: Path) -> None:
    first = SubmitLedger(tmp_path / "ledger.db")
    await first.open()
    await first.record(SubmitResult("msg_r", "rejected", error_code="smpp:ESME_RINVDSTADR"))
    await first.close()
    again = SubmitLedger(tmp_path / "ledger.db")
    await again.open()
    try:
        assert await again.known(["msg_r", "msg_unknown"]) == {
            "msg_r": SubmitResult("msg_r", "rejected", error_code="smpp:ESME_RINVDSTADR")}
    finally:
        await again.close()


async def test_a_write_the_file_refuses_fails_its_callers_and_the_next_one_works(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger_module, "LOCK_WAIT_SECONDS", 0.05)
    path = tmp_path / "ledger.db"
    ledger = SubmitLedger(path)
    await ledger.open()
    holder = sqlite3.connect(path, isolation_level=None)  # another process's lock
    try:
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            await ledger.record(answer("msg_locked"))
        holder.execute("ROLLBACK")
        await ledger.record(answer("msg_after"))
        assert set(await ledger.known(["msg_locked", "msg_after"])) == {"msg_after"}
    finally:
        holder.close()
        await ledger.close()


async def test_a_closed_ledger_says_so(tmp_path: Path) -> None:
    ledger = SubmitLedger(tmp_path / "ledger.db")
    with pytest.raises(RuntimeError, match="not open"):
        await ledger.known(["msg_x"])


def keys_for(body: str) -> MatchKeys:
    return ReceiptMatcher(bytes(range(32))).for_submit("12025550173", "Acme", body)


async def test_what_left_without_an_answer_is_unknown_after_a_restart(tmp_path: Path) -> None:
    first = SubmitLedger(tmp_path / "ledger.db")
    await first.open()
    await asyncio.gather(first.leaving("msg_answered", keys_for("one")),
                         first.leaving("msg_lost", keys_for("two")))
    await first.record(answer("msg_answered"))
    await first.close()
    again = SubmitLedger(tmp_path / "ledger.db")
    await again.open()
    try:
        unknown = await again.unknown()
    finally:
        await again.close()
    assert [(u.message_id, u.keys) for u in unknown] == [("msg_lost", keys_for("two"))]


async def test_leaving_rows_and_answers_arriving_together_share_one_commit(
        tmp_path: Path) -> None:
    ledger = SubmitLedger(tmp_path / "ledger.db")
    await ledger.open()
    try:
        await asyncio.gather(*(ledger.leaving(f"msg_{i}", keys_for(str(i))) for i in range(50)),
                             *(ledger.record(answer(f"msg_{i}")) for i in range(50, 100)))
        assert ledger.commits == 1
        await ledger.leaving("msg_late", keys_for("late"))
        assert ledger.commits == 2
    finally:
        await ledger.close()


async def test_the_ledger_file_holds_no_number_and_no_text(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    ledger = SubmitLedger(path)
    await ledger.open()
    body = "Your code is 123456"
    try:
        await ledger.leaving("msg_secret", ReceiptMatcher(bytes(range(32))).for_submit(
            "12025550173", "Acme", body))
    finally:
        await ledger.close()
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("ledger"))
    assert b"msg_secret" in stored  # the row is there
    for clear in (b"12025550173", b"123456", body.encode()):
        assert clear not in stored


async def test_a_leaving_row_on_a_closed_ledger_says_so(tmp_path: Path) -> None:
    ledger = SubmitLedger(tmp_path / "ledger.db")
    with pytest.raises(RuntimeError, match="not open"):
        await ledger.leaving("msg_x", keys_for("x"))
    with pytest.raises(RuntimeError, match="not open"):
        await ledger.unknown()
