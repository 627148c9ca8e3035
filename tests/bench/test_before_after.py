"""The SMPP bench's ``--before``: each Tidings system also runs on an earlier build, in
the same rounds, and the table gives this build / that one round by round."""

from __future__ import annotations

from typing import Any

import pytest

from bench.smpp import BEFORE, before_after, labels, ratio_table, with_before


def run(per_s: float) -> dict[str, Any]:
    return {"submitted_per_s": per_s, "delivered_per_s": per_s, "http_accepted_per_s": per_s,
            "cpu_seconds_elsewhere": 0.0, "flat_out_seconds": 10.0}


def test_each_tidings_system_is_followed_by_its_twin_on_the_earlier_build() -> None:
    assert with_before(["tidings-sqlite-webhooks", "kannel", "tidings-sqlite-single"]) == [
        "tidings-sqlite-webhooks", "tidings-sqlite-webhooks" + BEFORE, "kannel",
        "tidings-sqlite-single", "tidings-sqlite-single" + BEFORE]


def test_the_change_is_taken_round_by_round_against_the_earlier_build() -> None:
    report = {"args": {"busy_cores": 0.1}, "systems": {
        "tidings-sqlite": {"runs": [run(1_000), run(1_800)]},
        "tidings-sqlite" + BEFORE: {"runs": [run(1_250), run(1_500)]},
        "kannel": {"runs": [run(2_000), run(2_000)]}}}
    change = before_after(report)
    assert list(change) == [f"tidings-sqlite/tidings-sqlite{BEFORE}"]
    assert change[f"tidings-sqlite/tidings-sqlite{BEFORE}"]["submitted_per_s"].per_round == \
        pytest.approx([0.8, 1.2])


def test_the_table_names_the_earlier_build_and_keeps_the_kannel_ratios() -> None:
    report = {"args": {"busy_cores": 0.1}, "labels": labels("1.4.5", "96b4df4"), "systems": {
        "tidings-sqlite": {"runs": [run(1_000)]},
        "tidings-sqlite" + BEFORE: {"runs": [run(1_250)]},
        "kannel": {"runs": [run(2_000)]}}}
    text = "\n".join(ratio_table(report))
    assert "| Tidings, sqlite / Kannel 1.4.5 | 0.50" in text
    assert "| Tidings, sqlite / Tidings, sqlite, build 96b4df4 | 0.80" in text
