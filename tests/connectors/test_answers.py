"""SubmitOnce: the idempotency by message id every connector relies on."""

from __future__ import annotations

import asyncio

import pytest

from tidings.connectors.answers import SubmitOnce
from tidings.connectors.base import SubmitResult


class Carrier:
    """Counts submits; answers with the outcome it is told, after an optional pause."""

    def __init__(self, outcome: str = "accepted", pause: float = 0.0,
                 message_id: str = "m1") -> None:
        self.outcome, self.pause, self.calls = outcome, pause, 0
        self.message_id = message_id

    async def submit(self) -> SubmitResult:
        self.calls += 1
        await asyncio.sleep(self.pause)
        return SubmitResult(self.message_id, self.outcome,  # type: ignore[arg-type]
                            carrier_message_id=f"c{self.calls}")


@pytest.mark.parametrize("outcome", ["accepted", "rejected"])
async def test_a_final_answer_is_given_again_without_a_second_submit(outcome: str) -> None:
    once, carrier = SubmitOnce(), Carrier(outcome)
    first = await once.run("m1", carrier.submit)
    assert await once.run("m1", carrier.submit) == first
    assert carrier.calls == 1


async def test_a_retry_is_not_remembered() -> None:
    once, carrier = SubmitOnce(), Carrier("retry")
    await once.run("m1", carrier.submit)
    await once.run("m1", carrier.submit)
    assert carrier.calls == 2


async def test_repeats_while_running_share_the_one_submit() -> None:
    once, carrier = SubmitOnce(), Carrier(pause=0.05)
    results = await asyncio.gather(*(once.run("m1", carrier.submit) for _ in range(5)))
    assert carrier.calls == 1
    assert len(set(results)) == 1


async def test_a_cancelled_caller_does_not_cut_the_submit_off() -> None:
    once, carrier = SubmitOnce(), Carrier(pause=0.05)
    caller = asyncio.ensure_future(once.run("m1", carrier.submit))
    await asyncio.sleep(0.01)
    caller.cancel()
    await once.wait_running()
    assert once.known("m1") is not None
    assert carrier.calls == 1


async def test_only_the_newest_answers_are_kept() -> None:
    once = SubmitOnce(remembered=2)
    for name in ("a", "b", "c"):
        once.remember(SubmitResult(name, "accepted"))
    assert [once.known(n) is not None for n in ("a", "b", "c")] == [False, True, True]


async def test_start_gives_known_answers_at_once_and_shares_a_running_submit() -> None:
    once, carrier = SubmitOnce(), Carrier(pause=0.05)
    known = SubmitResult("m0", "accepted", carrier_message_id="c0")
    once.remember(known)
    answered = once.start("m0", carrier.submit)
    assert answered.done()
    assert answered.result() == known
    first, repeat = once.start("m1", carrier.submit), once.start("m1", carrier.submit)
    assert first is repeat
    assert (await first).carrier_message_id == "c1"
    assert carrier.calls == 1


async def test_a_cancelled_batch_caller_does_not_cut_its_submits_off() -> None:
    once = SubmitOnce()
    carriers = [Carrier(pause=0.05, message_id=f"m{i}") for i in range(3)]

    async def batch() -> list[SubmitResult]:
        answers = [once.start(f"m{i}", c.submit) for i, c in enumerate(carriers)]
        return list(await asyncio.shield(asyncio.gather(*answers)))

    caller = asyncio.ensure_future(batch())
    await asyncio.sleep(0.01)
    caller.cancel()
    await once.wait_running()
    assert [c.calls for c in carriers] == [1, 1, 1]
    assert all(once.known(f"m{i}") is not None for i in range(3))
