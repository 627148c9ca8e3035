"""Comparing systems round by round (see ``bench/smpp.py``).

The machine's speed drifts by tens of percent within an hour, and the runs of one
round are minutes apart: a ratio of two systems taken within each round, then the
median and the spread of those ratios, says more than a ratio of two medians. A round
in which other work used the cores is flagged, not dropped: the reader sees it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# A run is "busy" when work outside the measured processes used more than this share
# of one core on average during its flat-out phase.
BUSY_CORES = 0.1
DASH = "\N{EN DASH}"


def other_cores(elsewhere_seconds: float, seconds: float) -> float:
    """Cores' worth of CPU that other work used on average over ``seconds``."""
    if seconds <= 0 or elsewhere_seconds < 0:
        raise ValueError(f"cannot average {elsewhere_seconds} CPU s over {seconds} s")
    return elsewhere_seconds / seconds


def busy(run: Mapping[str, Any], threshold: float = BUSY_CORES) -> bool:
    """Whether other work used more than ``threshold`` cores during ``run``'s flat-out
    phase (its ``cpu_seconds_elsewhere`` over its ``flat_out_seconds``)."""
    return other_cores(run["cpu_seconds_elsewhere"], run["flat_out_seconds"]) > threshold


@dataclass(frozen=True)
class Ratios:
    """``numerator`` / ``denominator`` of one figure in each round, and which rounds
    were busy (either run)."""

    per_round: list[float]
    busy_rounds: list[bool]

    @property
    def median(self) -> float:
        found = [r for r in self.per_round if not math.isnan(r)]
        return statistics.median(found) if found else math.nan

    @property
    def spread(self) -> tuple[float, float]:
        found = [r for r in self.per_round if not math.isnan(r)]
        return (min(found), max(found)) if found else (math.nan, math.nan)


def ratio(numerator: float, denominator: float) -> float:
    """NaN where there is nothing to divide by or the figure is missing."""
    if math.isnan(numerator) or math.isnan(denominator) or denominator <= 0:
        return math.nan
    return numerator / denominator


def round_ratios(numerator_runs: Sequence[Mapping[str, Any]],
                 denominator_runs: Sequence[Mapping[str, Any]], key: str,
                 threshold: float = BUSY_CORES) -> Ratios:
    """The ratio of ``key`` in each round; run i of each system is round i."""
    if len(numerator_runs) != len(denominator_runs):
        raise ValueError(f"rounds differ: {len(numerator_runs)} against "
                         f"{len(denominator_runs)} runs")
    pairs = list(zip(numerator_runs, denominator_runs, strict=True))
    return Ratios([ratio(a[key], b[key]) for a, b in pairs],
                  [busy(a, threshold) or busy(b, threshold) for a, b in pairs])


def describe(ratios: Ratios) -> str:
    """``0.91 · 1.02* · 0.97 → 0.97 (0.91-1.02)`` (with an en dash); a star marks a busy
    round, a dash a round without the figure."""
    rounds = " · ".join((DASH if math.isnan(r) else f"{r:.2f}") + ("*" if flagged else "")
                        for r, flagged in zip(ratios.per_round, ratios.busy_rounds,
                                              strict=True))
    low, high = ratios.spread
    if math.isnan(ratios.median):
        return rounds
    return f"{rounds} → {ratios.median:.2f} ({low:.2f}{DASH}{high:.2f})"
