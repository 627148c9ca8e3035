"""Two builds of Tidings in one sitting, interleaved: A, B, A, B, ...

A change that must not slow the send path is measured against the build before it,
run by run in turns, so that the machine's drift (tens of percent within an hour)
falls on both alike. Each build runs ``bench.run``'s measure (one layout) from its own
checkout and venv:

    git worktree add /tmp/before <commit> && make -C /tmp/before .venv/.installed
    .venv/bin/python -m bench.ab --a /tmp/before --b . --pairs 3

Raw runs go to ``bench/results/<when>-ab.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MEASURE = ("import argparse, json; from bench.run import one_run; "
           "a = argparse.Namespace(seconds={seconds}, concurrency=32, batch_total=30000, "
           "batch_size=1000, rate=200.0); print('RESULT ' + json.dumps(one_run({layout!r}, a)))")
SHOWN = ("single_accepted_per_s", "batch_accepted_per_s", "batch_delivered_per_s",
         "receipt_to_webhook_p50_ms", "receipt_to_webhook_p99_ms")


def one_run(checkout: Path, layout: str, seconds: float) -> dict[str, Any]:
    """``bench.run``'s measure, run by the checkout's own venv from its own folder."""
    done = subprocess.run(
        [str(checkout / ".venv" / "bin" / "python"), "-c",
         MEASURE.format(seconds=seconds, layout=layout)],
        cwd=checkout, capture_output=True, text=True, check=False)
    results = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if not results:
        raise RuntimeError(f"{checkout}: no result\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(results[-1].removeprefix("RESULT "))
    return result


def commit_of(checkout: Path) -> str:
    return subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--a", type=Path, required=True, help="the checkout before")
    parser.add_argument("--b", type=Path, required=True, help="the checkout after")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--layout", default="sqlite")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    sides = {"a": args.a.resolve(), "b": args.b.resolve()}
    runs: dict[str, list[dict[str, Any]]] = {"a": [], "b": []}
    for pair in range(args.pairs):
        for side, checkout in sides.items():
            runs[side].append(one_run(checkout, args.layout, args.seconds))
            shown = {k: round(runs[side][-1][k]) for k in SHOWN}
            print(f"pair {pair + 1} {side}: {shown}", flush=True)
    when = datetime.now(UTC).isoformat(timespec="seconds")
    report = {"when": when, "layout": args.layout, "seconds": args.seconds,
              "commits": {side: commit_of(path) for side, path in sides.items()},
              "runs": runs}
    out = ROOT / "bench" / "results" / f"{when.replace(':', '')}-ab.json"
    out.write_text(json.dumps(report, indent=2))
    for key in SHOWN:
        a, b = (statistics.median(r[key] for r in runs[s]) for s in ("a", "b"))
        print(f"{key}: a {a:,.0f}, b {b:,.0f} ({(b / a - 1) * 100:+.1f} %)")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
