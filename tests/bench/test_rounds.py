"""The SMPP bench's comparison: ratios taken round by round, and busy rounds flagged."""

from __future__ import annotations

import math
from typing import Any

import pytest

from bench.rounds import BUSY_CORES, busy, describe, other_cores, ratio, round_ratios


def run(submitted: float, *, elsewhere: float = 0.0, seconds: float = 10.0) -> dict[str, Any]:
    return {"submitted_per_s": submitted, "cpu_seconds_elsewhere": elsewhere,
            "flat_out_seconds": seconds}


def test_ratios_are_taken_within_each_round_not_between_medians() -> None:
    # Tidings is ahead in a slow round and behind in a fast one; the ratio of the two
    # medians (2,000 / 2,000 = 1.0) would hide both.
    tidings = [run(1_000), run(2_000), run(3_300)]
    kannel = [run(800), run(2_000), run(3_000)]
    ratios = round_ratios(tidings, kannel, "submitted_per_s")
    assert ratios.per_round == pytest.approx([1.25, 1.0, 1.1])
    assert ratios.median == pytest.approx(1.1)
    assert ratios.spread == pytest.approx((1.0, 1.25))


def test_a_ratio_below_one_stays_below_one() -> None:
    ratios = round_ratios([run(700), run(900)], [run(1_000), run(1_000)], "submitted_per_s")
    assert ratios.per_round == pytest.approx([0.7, 0.9])
    assert ratios.median == pytest.approx(0.8)


def test_a_round_is_busy_when_either_run_shared_the_cores() -> None:
    quiet, noisy = run(1_000, elsewhere=0.5), run(1_000, elsewhere=3.0)  # 0.05 and 0.3 cores
    ratios = round_ratios([quiet, noisy, quiet], [quiet, quiet, noisy], "submitted_per_s")
    assert ratios.busy_rounds == [False, True, True]


def test_busy_is_other_work_in_cores_against_the_threshold() -> None:
    assert other_cores(2.0, 10.0) == pytest.approx(0.2)
    assert not busy(run(1, elsewhere=BUSY_CORES * 10, seconds=10))  # at the threshold
    assert busy(run(1, elsewhere=BUSY_CORES * 10 + 0.1, seconds=10))
    assert busy(run(1, elsewhere=1.0, seconds=10), threshold=0.05)


@pytest.mark.parametrize(("elsewhere", "seconds"), [(1.0, 0.0), (1.0, -5.0), (-1.0, 10.0)])
def test_other_cores_refuses_nonsense(elsewhere: float, seconds: float) -> None:
    with pytest.raises(ValueError, match="cannot average"):
        other_cores(elsewhere, seconds)


def test_missing_figures_and_zero_denominators_are_not_ratios() -> None:
    assert math.isnan(ratio(1_000, 0))
    assert math.isnan(ratio(math.nan, 1_000))
    ratios = round_ratios([run(1_000), run(math.nan)], [run(500), run(1_000)],
                          "submitted_per_s")
    assert ratios.median == pytest.approx(2.0)  # the missing round is left out
    assert describe(ratios) == "2.00 · \N{EN DASH} → 2.00 (2.00\N{EN DASH}2.00)"


def test_rounds_must_pair_up() -> None:
    with pytest.raises(ValueError, match="rounds differ"):
        round_ratios([run(1), run(1)], [run(1)], "submitted_per_s")


def test_describe_shows_each_round_then_median_and_spread_with_busy_marks() -> None:
    ratios = round_ratios([run(900), run(1_100, elsewhere=5)], [run(1_000), run(1_000)],
                          "submitted_per_s")
    assert describe(ratios) == "0.90 · 1.10* → 1.00 (0.90\N{EN DASH}1.10)"
